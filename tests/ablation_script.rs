//! `scripts/ablation.sh` (issue 30's study) on a two-row grid of 6-iteration demos, two at once:
//! a finished run appends its mIoU to the record, a (row, seed) already in the record is not run
//! again, and the JSON is written from the record.

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
        .output()
        .unwrap()
}

#[test]
fn the_study_records_each_run_and_skips_recorded_ones() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("grid.tsv");
    std::fs::write(&grid, format!("# two rows\nbase\t{SMALL}\nno_term\t{SMALL} t2s.contrastive_weight=0\n")).unwrap();
    // Seed 1 of `no_term` is in the record already (measured elsewhere): it must not be run.
    let header = "name\tseed\tmiou\tmeasured\tbinary\tcpu\n";
    std::fs::write(dir.path().join("record.tsv"), format!("{header}no_term\t1\t42.5\t2026-01-01\tfeedface0000\tsome_cpu/avx2\n")).unwrap();

    let o = ablation(dir.path(), &grid);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    // The record names the build of each run; mixing builds is reported.
    let sum = Command::new("sha256sum").arg(env!("CARGO_BIN_EXE_t2s")).output().unwrap();
    let binary = String::from_utf8_lossy(&sum.stdout)[..12].to_string();
    assert!(stderr.contains("mixes runs of 2 builds or CPUs") && stderr.contains("feedface0000") && stderr.contains(&binary), "{stderr}");
    assert!(!dir.path().join("runs/no_term/seed_1").exists(), "a recorded run was trained again");

    let record = std::fs::read_to_string(dir.path().join("record.tsv")).unwrap();
    let mut lines: Vec<&str> = record.lines().collect();
    assert_eq!(lines.remove(0), header.trim_end());
    assert_eq!(lines.len(), 4, "{record}");
    let miou = |name: &str, seed: u32| -> f64 {
        let f = dir.path().join(format!("runs/{name}/seed_{seed}/results.json"));
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        (100.0 * r["methods"]["t2s"]["miou"].as_f64().unwrap() * 100.0).round() / 100.0
    };
    let mut expected = vec![("no_term", 1, 42.5)];
    for (name, seed) in [("base", 0), ("base", 1), ("no_term", 0)] {
        expected.push((name, seed, miou(name, seed)));
    }
    let mut recorded = std::collections::HashMap::new();
    for (name, seed, value) in &expected {
        let line = lines.iter().find(|l| l.starts_with(&format!("{name}\t{seed}\t"))).unwrap_or_else(|| panic!("{name} {seed}: {record}"));
        let fields: Vec<&str> = line.split('\t').collect();
        let got: f64 = fields[2].parse().unwrap();
        if *name != "no_term" || *seed != 1 {
            assert_eq!(fields.get(4), Some(&binary.as_str()), "{line}");
            assert!(fields.get(5).is_some_and(|cpu| cpu.contains('/')), "{line}");
        }
        // Half a unit of the record's last digit: Python and Rust may round a tie differently.
        assert!((got - value).abs() < 0.0051, "{name} {seed}: recorded {got}, results.json {value}");
        recorded.insert((*name, *seed), got);
    }

    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("ablation.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["name"], "no_term");
    assert_eq!(rows[1]["settings"]["t2s.contrastive_weight"], 0);
    assert_eq!(rows[1]["settings"]["data.source.len"], 40);
    let (b0, b1, n0) = (recorded[&("base", 0)], recorded[&("base", 1)], recorded[&("no_term", 0)]);
    let seeds = |row: &serde_json::Value| -> Vec<f64> { row["seeds"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect() };
    assert_eq!(seeds(&rows[0]), [b0, b1]);
    assert_eq!(seeds(&rows[1]), [n0, 42.5]);
    let mean = rows[1]["mean"].as_f64().unwrap();
    assert!((mean - (n0 + 42.5) / 2.0).abs() < 0.0051, "mean {mean}");

    // A second invocation finds everything recorded: it trains nothing and changes no line.
    std::fs::remove_dir_all(dir.path().join("runs")).unwrap();
    let again = ablation(dir.path(), &grid);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(!dir.path().join("runs/base").exists(), "{}", String::from_utf8_lossy(&again.stdout));
    assert_eq!(std::fs::read_to_string(dir.path().join("record.tsv")).unwrap(), record);
}
