//! `t2s eval` end to end on the synthetic benchmark: the report covers every labelled pixel of
//! the split, and bad configurations fail with messages naming the setting.

mod common;

use t2s_data::synth::{Domain, Split, SynthConfig, SyntheticDataset};
use t2s_data::Dataset;

use common::t2s;

const CONFIG: &str = r#"
[model]
preset = "deeplabv2-r18"
[uda]
method = "source_only"
[data]
crop = [128, 256]
[data.source]
kind = "synthetic"
domain = "source"
[[data.eval]]
kind = "synthetic"
domain = "target"
split = "val"
len = 3
size = [96, 48]
[eval]
save_images = 1
"#;

#[test]
fn eval_counts_every_labelled_pixel_and_writes_reports() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let out = dir.path().join("out");
    let o = t2s(dir.path()).args(["eval", "--config"]).arg(&cfg).arg("--output").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    // The mean says over which classes: those with an IoU (in the labels or the predictions).
    let line = stdout.lines().find(|l| l.starts_with("mIoU19 ")).unwrap_or_else(|| panic!("{stdout}"));
    // No weights: the table says whose numbers these are.
    assert!(stdout.contains("synthetic target val (randomly initialised weights, 3 images)"), "{stdout}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval_synthetic_target_val.json")).unwrap()).unwrap();
    let counts: u64 = report["confusion"]["counts"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
    // Independently: the labelled pixels of the same three generated images.
    let data =
        SyntheticDataset::new(SynthConfig { domain: Domain::Target, split: Split::Val, len: 3, width: 96, height: 48, seed: 0 }).unwrap();
    let labelled: u64 = (0..3).map(|i| data.get(i).unwrap().label.unwrap().as_raw().iter().filter(|&&v| v != 255).count() as u64).sum();
    assert_eq!(counts, labelled);
    assert_eq!(report["images"], 3);
    assert_eq!(report["classes"].as_array().unwrap().len(), 19);
    let with_iou: Vec<&str> =
        report["classes"].as_array().unwrap().iter().filter(|c| !c["iou"].is_null()).map(|c| c["name"].as_str().unwrap()).collect();
    let averaged: Vec<&str> = report["miou"][0]["averaged"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(averaged, with_iou);
    let over = if with_iou.len() == 19 {
        "over all 19 classes".to_string()
    } else {
        format!("over {} classes present in the ground truth or the predictions, of 19", with_iou.len())
    };
    assert!(line.ends_with(&over), "{line}");
    assert!(out.join("eval_synthetic_target_val.md").is_file());
    let name = data.name(0);
    assert!(out.join(format!("{name}_pred.png")).is_file() && out.join(format!("{name}_gt.png")).is_file());

    // In bf16 and in f32, with the same (random) weights: the same pixels counted, and most of
    // them predicted alike (an untrained network's logits are near ties that bf16 rounding can flip).
    let network = t2s_model::SegmentorConfig::preset("deeplabv2-r18").unwrap();
    let weights = dir.path().join("r18.safetensors");
    t2s_model::save_t2s(&network.init::<burn::backend::Flex>(&Default::default()).unwrap(), &network, &weights).unwrap();
    let report_at = |precision: &str| -> serde_json::Value {
        let out = dir.path().join(precision);
        let o = t2s(dir.path())
            .args(["eval", "--precision", precision, "--config"])
            .arg(&cfg)
            .arg("--weights")
            .arg(&weights)
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_str(&std::fs::read_to_string(out.join("eval_synthetic_target_val.json")).unwrap()).unwrap()
    };
    let counts =
        |r: &serde_json::Value| -> Vec<u64> { r["confusion"]["counts"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect() };
    let (a, b) = (counts(&report_at("f32")), counts(&report_at("bf16")));
    assert_eq!(b.iter().sum::<u64>(), labelled);
    // Confusion counts are [truth][prediction], 19 × 19: the predictions per class summed over truths.
    let predicted = |c: &[u64]| -> Vec<u64> { (0..19).map(|p| (0..19).map(|t| c[t * 19 + p]).sum()).collect() };
    let moved: u64 = predicted(&a).iter().zip(predicted(&b)).map(|(x, y)| x.abs_diff(y)).sum();
    assert!(moved * 10 < labelled, "{moved} of {labelled} pixels changed class");
}

#[test]
fn eval_rejects_configs_without_eval_sets_and_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, CONFIG.replace("[[data.eval]]", "[data.unused]")).unwrap();
    let o = t2s(dir.path()).args(["eval", "--config"]).arg(&cfg).output().unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("run.toml: unknown key `unused`"), "{e}");
    // The evaluation table left out, nothing else wrong.
    let (head, tail) = CONFIG.split_once("[[data.eval]]").unwrap();
    let tail = tail.find("\n[").map_or("", |i| &tail[i..]);
    std::fs::write(&cfg, format!("{head}{tail}")).unwrap();
    let o = t2s(dir.path()).args(["eval", "--config"]).arg(&cfg).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("run.toml: no evaluation set; add a [[data.eval]] table"), "{e}");
    std::fs::write(&cfg, CONFIG).unwrap();
    let o = t2s(dir.path()).args(["eval", "--config"]).arg(&cfg).args(["--set", "eval.intervall=3"]).output().unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("unknown key `intervall` (from --set eval.intervall=3)"), "{e}");
}

/// `--hrda-output detail|context` scores one scale of an HRDA network alone (its numbers are
/// checked against the attention's extremes in t2s-model); the tables say so in their names and
/// labels, and a single-scale network is refused.
#[test]
fn eval_scores_one_hrda_scale_alone_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let hrda = common::tiny_source_only_run() + "\n[model.network.hrda]\ndetail_crop = [16, 32]\ncrop_divisible = 16\n";
    std::fs::write(dir.path().join("hrda.toml"), hrda).unwrap();
    let eval = |args: &[&str]| {
        let o = t2s(dir.path()).args(["eval", "--config", "hrda.toml", "--images", "1"]).args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    eval(&["--output", "out"]);
    eval(&["--output", "out", "--hrda-output", "context"]);
    eval(&["--output", "out", "--hrda-output", "detail"]);
    let report = |path: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(dir.path().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap()
    };
    let pixels = |r: &serde_json::Value| -> u64 { r["confusion"]["counts"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum() };
    let fused = report("out/eval_synthetic_target_val.json");
    // No weights: a randomly initialised network (drawn from the run's seed, the same each time).
    assert_eq!(fused["weights"], "randomly initialised");
    for (path, label) in [
        ("out/eval_synthetic_target_val_context.json", "randomly initialised, HRDA context prediction alone"),
        ("out/eval_synthetic_target_val_detail.json", "randomly initialised, HRDA detail prediction alone"),
    ] {
        let r = report(path);
        assert_eq!(r["weights"], label, "{path}");
        assert_eq!(pixels(&r), pixels(&fused), "{path}: every labelled pixel, as the fusion");
    }
    // One picture of each prediction beside the ground truth (--images 1).
    let mut pictures: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    pictures.sort();
    let image = pictures[0].strip_suffix("_gt.png").unwrap_or_else(|| panic!("{pictures:?}"));
    let names: Vec<String> = ["gt", "pred", "pred_context", "pred_detail"].iter().map(|s| format!("{image}_{s}.png")).collect();
    assert_eq!(pictures, names);

    std::fs::write(dir.path().join("single.toml"), common::tiny_source_only_run()).unwrap();
    let o = t2s(dir.path()).args(["eval", "--config", "single.toml", "--hrda-output", "detail"]).output().unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("--hrda-output detail") && e.contains("model.network.hrda"), "{e}");
}
