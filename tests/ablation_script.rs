//! `scripts/ablation.sh` (issue 30's study) on a three-row grid of 6-iteration demos, two at once:
//! a finished run appends its mIoU to the record with its build and CPU; what this build on this CPU
//! recorded is not run again, nor is a row another (build, CPU) holds complete with its baselines;
//! the baselines are run here so that every row is compared on one platform; the JSON is written
//! from the record with each row's differences from the baseline of its own platform.

use std::path::Path;
use std::process::Command;

const SMALL: &str = "data.eval.0.len=4 data.source.len=40 data.target.len=40";

fn ablation(dir: &Path, grid: &Path) -> std::process::Output {
    Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ablation.sh"))
        .arg(grid)
        .env("T2S", env!("CARGO_BIN_EXE_t2s"))
        .env("OUT", dir.join("runs"))
        .env("SEEDS", "0 1")
        .env("ITERS", "6")
        .env("RECORD", dir.join("record.tsv"))
        .env("JSON", dir.join("ablation.json"))
        .env("JOBS", "2")
        .env("BASELINES", "base")
        .output()
        .unwrap()
}

#[test]
fn the_study_records_each_run_and_compares_rows_on_one_platform() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid.tsv");
    let rows = format!(
        "# three rows\n#base t2s.fda_beta=0.07\nbase\t{SMALL}\ndacs_row\t{SMALL} method=dacs t2s.contrastive_weight=0 t2s.fda_beta=0.09\ndone_there\t{SMALL} t2s.temperature=0.2\n"
    );
    std::fs::write(&grid, rows).unwrap();
    // Another build on another CPU measured the baseline and `done_there` on both seeds (so that row
    // is not run here), and `dacs_row` on seed 1 only (so it is run here on both, beside the baseline).
    let header = "name\tseed\tmiou\tmeasured\tbinary\tcpu\n";
    let there = "\t2026-01-01\tfeedface0000\tsome_cpu/avx2\n";
    let old: String = [("base", 0, "40"), ("base", 1, "41"), ("done_there", 0, "44"), ("done_there", 1, "45.5"), ("dacs_row", 1, "42.5")]
        .iter()
        .map(|(n, s, m)| format!("{n}\t{s}\t{m}{there}"))
        .collect();
    std::fs::write(dir.path().join("record.tsv"), format!("{header}{old}")).unwrap();

    let o = ablation(dir.path(), &grid);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    let sum = Command::new("sha256sum").arg(env!("CARGO_BIN_EXE_t2s")).output().unwrap();
    let binary = String::from_utf8_lossy(&sum.stdout)[..12].to_string();
    assert!(stderr.contains("holds runs of 2 builds or CPUs") && stderr.contains("feedface0000") && stderr.contains(&binary), "{stderr}");
    assert!(!dir.path().join("runs/done_there").exists(), "a row complete elsewhere was trained again: {stdout}");

    let record = std::fs::read_to_string(dir.path().join("record.tsv")).unwrap();
    assert!(record.starts_with(&format!("{header}{old}")), "earlier lines changed: {record}");
    let new: Vec<&str> = record.lines().skip(6).collect();
    assert_eq!(new.len(), 4, "{record}");
    // A row's `method=` setting picks the demo method it trains (the others train t2s).
    let miou = |name: &str, seed: u32| -> f64 {
        let f = dir.path().join(format!("runs/{name}/seed_{seed}/results.json"));
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        let method = if name == "dacs_row" { "dacs" } else { "t2s" };
        assert_eq!(r["methods"].as_object().unwrap().len(), 1, "{r}");
        (100.0 * r["methods"][method]["miou"].as_f64().unwrap() * 100.0).round() / 100.0
    };
    let mut here = std::collections::HashMap::new();
    for (name, seed) in [("base", 0), ("base", 1), ("dacs_row", 0), ("dacs_row", 1)] {
        let line = new.iter().find(|l| l.starts_with(&format!("{name}\t{seed}\t"))).unwrap_or_else(|| panic!("{name} {seed}: {record}"));
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.get(4), Some(&binary.as_str()), "{line}");
        assert!(fields.get(5).is_some_and(|cpu| cpu.contains('/') && *cpu != "some_cpu/avx2"), "{line}");
        let got: f64 = fields[2].parse().unwrap();
        // Half a unit of the record's last digit: Python and Rust may round a tie differently.
        assert!((got - miou(name, seed)).abs() < 0.0051, "{name} {seed}: recorded {got}");
        here.insert((name, seed), got);
    }

    // The `#base` line's settings reach every run; a row's own setting of the same key wins.
    let config = |name: &str| std::fs::read_to_string(dir.path().join(format!("runs/{name}/seed_0/demo_config.toml"))).unwrap();
    assert!(config("base").contains("fda_beta = 0.07"), "{}", config("base"));
    assert!(config("dacs_row").contains("fda_beta = 0.09"), "{}", config("dacs_row"));

    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("ablation.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["base", "dacs_row", "done_there"]);
    assert_eq!(json["base"]["t2s.fda_beta"], 0.07);
    assert_eq!(rows[1]["settings"]["method"], "dacs");
    assert_eq!(rows[1]["settings"]["t2s.contrastive_weight"], 0);
    assert_eq!(rows[1]["settings"]["data.source.len"], 40);
    let nums = |v: &serde_json::Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect() };
    let close = |a: f64, b: f64| (a - b).abs() < 0.0051;
    // Both platforms hold two complete rows; the one first in the record gives the baseline row.
    assert_eq!(rows[0]["platform"], "feedface0000 on some_cpu/avx2");
    assert_eq!(nums(&rows[0]["seeds"]), [40.0, 41.0]);
    assert_eq!(rows[2]["platform"], "feedface0000 on some_cpu/avx2");
    assert_eq!(nums(&rows[2]["seeds"]), [44.0, 45.5]);
    assert_eq!(nums(&rows[2]["delta"]), [4.0, 4.5]);
    assert!(close(rows[2]["delta_mean"].as_f64().unwrap(), 4.25));
    // `dacs_row` is complete only here, so it is compared with this platform's baseline runs.
    assert!(rows[1]["platform"].as_str().unwrap().starts_with(&binary));
    let (b, n) = ([here[&("base", 0)], here[&("base", 1)]], [here[&("dacs_row", 0)], here[&("dacs_row", 1)]]);
    assert_eq!(nums(&rows[1]["seeds"]), n);
    let delta = nums(&rows[1]["delta"]);
    assert!(close(delta[0], n[0] - b[0]) && close(delta[1], n[1] - b[1]), "{delta:?}");
    assert!(close(rows[1]["mean"].as_f64().unwrap(), (n[0] + n[1]) / 2.0));
    assert_eq!(json["rows"][1]["reference"], "base");
    assert_eq!(json["platforms"].as_array().unwrap().len(), 2);
    assert_eq!(nums(&json["platforms"][1]["baselines"]["base"]), b);

    // The same rows as the Markdown table docs/results.md shows.
    let table = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ablation_json.py"))
        .args([grid.as_os_str(), dir.path().join("record.tsv").as_os_str()])
        .args(["0 1", "base", "--markdown"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    let line = table.lines().find(|l| l.starts_with("| done_there |")).unwrap_or_else(|| panic!("{table}"));
    assert!(line.ends_with("`t2s.temperature=0.2` | 44.00 | 45.50 | 44.75 | +4.00 / +4.50 | +4.25 | 1 |"), "{line}");
    assert!(table.contains("Platform 1: feedface0000 on some_cpu/avx2."), "{table}");

    // A second invocation finds everything recorded: it trains nothing and changes no line.
    std::fs::remove_dir_all(dir.path().join("runs")).unwrap();
    let again = ablation(dir.path(), &grid);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(!dir.path().join("runs/base").exists(), "{}", String::from_utf8_lossy(&again.stdout));
    assert_eq!(std::fs::read_to_string(dir.path().join("record.tsv")).unwrap(), record);
}
