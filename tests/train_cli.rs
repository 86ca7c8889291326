//! `t2s train` end to end on the CPU with a tiny network on the synthetic benchmark: the run
//! folder, checkpoints, evaluation, and exact continuation with `--until` + `--resume`.

use std::path::Path;
use std::process::Command;

const CONFIG: &str = r#"
[model.network]
num_classes = 19
[model.network.backbone]
type = "resnet"
depth = 0
layers = [1, 1, 1, 1]
block = "bottleneck"
stem = "deep"
stem_width = 8
base_width = 4
[model.network.decode_head]
type = "deeplabv2"

[uda]
method = "source_only"

[data]
batch_size = 2
crop = [32, 64]
workers = 2

[data.source]
kind = "synthetic"
domain = "source"
len = 16
size = [64, 32]

[[data.eval]]
kind = "synthetic"
domain = "target"
len = 2
size = [64, 32]

[optim]
lr = 1e-3

[schedule]
max_iters = 4
warmup_iters = 1

[eval]
interval = 0

[run]
log_interval = 1
checkpoint_interval = 2
"#;

fn t2s(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_t2s"));
    c.current_dir(dir).args(["--device", "cpu"]);
    c
}

fn losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| Some((v["iter"].as_u64()?, v.get("loss_source")?.as_f64()?)))
        .collect()
}

#[test]
fn train_writes_a_run_and_resume_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), CONFIG).unwrap();
    let run = |args: &[&str]| {
        let o = t2s(dir.path()).arg("train").args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    run(&["--config", "tiny.toml", "--set", "run.name=straight"]);
    let straight = dir.path().join("runs/straight");
    for f in [
        "config.toml",
        "command.txt",
        "metrics.jsonl",
        "checkpoints/latest",
        "checkpoints/iter_000004/student.safetensors",
        "best.safetensors",
    ] {
        assert!(straight.join(f).is_file(), "{f} missing");
    }
    assert!(std::fs::read_to_string(straight.join("command.txt")).unwrap().contains("git revision"));
    let a = losses(&straight);
    assert_eq!(a.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert!(a.iter().all(|(_, l)| l.is_finite() && *l > 0.0));

    // Half, then resume: the same four losses.
    let stderr = run(&["--config", "tiny.toml", "--set", "run.name=halves", "--until", "2"]);
    assert!(stderr.contains("--resume"), "{stderr}");
    let halves = dir.path().join("runs/halves");
    assert_eq!(std::fs::read_to_string(halves.join("checkpoints/latest")).unwrap().trim(), "iter_000002");
    run(&["--resume", "runs/halves"]);
    let b = losses(&halves);
    assert_eq!(b.len(), 4, "{b:?}");
    for ((ia, la), (ib, lb)) in a.iter().zip(&b) {
        assert_eq!(ia, ib);
        assert!((la - lb).abs() <= 1e-6 * la.abs().max(1.0), "iteration {ia}: {la} straight vs {lb} resumed");
    }
    // The eval report of the last iteration exists, and the weights load in `t2s eval`.
    assert!(halves.join("eval").read_dir().unwrap().count() >= 2);
}

#[test]
fn bad_runs_fail_before_training() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tiny.toml"), CONFIG).unwrap();
    // Resuming a folder that is not a run.
    let o = t2s(dir.path()).args(["train", "--resume", "nowhere"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nowhere"));
    // A missing dataset root is named before any iteration.
    let o = t2s(dir.path())
        .args([
            "train",
            "--config",
            "tiny.toml",
            "--set",
            "data.source.kind=gta5",
            "--set",
            "data.source.root=/no/gta",
            "--set",
            "data.source.domain=source",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("data.source"), "{e}");
    // Methods whose steps are not in the loop yet say so.
    std::fs::write(
        dir.path().join("dacs.toml"),
        CONFIG.replace("source_only", "dacs") + "\n[data.target]\nkind = \"synthetic\"\ndomain = \"target\"\n",
    )
    .unwrap();
    let o = t2s(dir.path()).args(["train", "--config", "dacs.toml", "--set", "run.name=d"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("source_only"));
}
