//! `t2s similarity` end to end on the CPU: a tiny network with a projection head trained for a
//! few iterations on the synthetic benchmark, then analysed with two checkpoints (one of them
//! twice). The IoU must be `t2s eval`'s, the pixel counts those of the majority-downscaled labels,
//! and identical weights must give identical cosines.

mod common;

use std::path::Path;

use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};
use t2s_data::synth::{Domain, Split, SynthConfig, SyntheticDataset};
use t2s_data::Dataset;

use common::t2s;

/// The tiny network with a projection head, trained source-only for 4 iterations.
fn config() -> String {
    common::tiny_source_only_run()
        .replace("[model.network.decode_head]", "[model.network.projection]\ndim = 16\n[model.network.decode_head]")
}

fn run_ok(dir: &Path, args: &[&str]) -> String {
    let o = t2s(dir).args(args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Embedding-resolution pixels per class of the first `n` target val images: their labels
/// downscaled by 8 (the network's stride) with the majority rule at 0.75.
fn expected_target_pixels(n: usize) -> Vec<u64> {
    let data =
        SyntheticDataset::new(SynthConfig { domain: Domain::Target, split: Split::Val, len: 2, width: 64, height: 32, seed: 0 }).unwrap();
    let mut counts = vec![0u64; 19];
    for i in 0..n.min(data.len()) {
        let v: Vec<i64> = data.get(i).unwrap().label.unwrap().as_raw().iter().map(|&x| x as i64).collect();
        let labels = Tensor::<Flex, 3, Int>::from_data(TensorData::new(v, [1, 32, 64]), &Default::default());
        let small = t2s_loss::downscale_labels_majority(labels, 19, 8, 0.75, 255).unwrap();
        for c in small.into_data().convert::<i64>().to_vec::<i64>().unwrap() {
            if c < 19 {
                counts[c as usize] += 1;
            }
        }
    }
    counts
}

#[test]
fn similarity_reports_cosines_and_the_eval_iou_of_each_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny.toml"), config()).unwrap();
    run_ok(d, &["train", "--config", "tiny.toml", "--set", "run.name=r"]);
    let early = "runs/r/checkpoints/iter_000002/student.safetensors";
    let last = "runs/r/checkpoints/iter_000004/student.safetensors";
    let mut args = vec!["similarity", "--config", "tiny.toml", "--images", "3"];
    for (weights, name) in [(early, "early"), (last, "last"), (last, "last again")] {
        args.extend(["--weights", weights, "--name", name]);
    }
    let stdout = run_ok(d, &args);
    assert!(stdout.contains("| early cosine |"), "{stdout}");
    // Default output: `similarity` next to the first weights file.
    let out = d.join("runs/r/checkpoints/iter_000002/similarity");
    for f in ["similarity.json", "similarity.md", "similarity.png"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let png = image::open(out.join("similarity.png")).unwrap();
    assert!(png.width() > 100 && png.height() > 100);

    let report = read_json(&out.join("similarity.json"));
    let classes = report["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 19);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.iter().map(|r| r["name"].as_str().unwrap()).collect::<Vec<_>>(), ["early", "last", "last again"]);

    // The IoU of the last checkpoint is exactly what `t2s eval` reports for it.
    run_ok(d, &["eval", "--config", "tiny.toml", "--weights", last, "--output", "eval_last", "--images", "0"]);
    let eval = read_json(&d.join("eval_last/eval_synthetic_target_val.json"));
    let eval_iou: Vec<Option<f64>> = eval["classes"].as_array().unwrap().iter().map(|c| c["iou"].as_f64()).collect();
    let field = |run: &serde_json::Value, key: &str| -> Vec<Option<f64>> {
        run["per_class"].as_array().unwrap().iter().map(|c| c[key].as_f64()).collect()
    };
    assert_eq!(field(&runs[1], "iou"), eval_iou);
    assert_eq!(runs[1]["miou"].as_f64(), eval["miou"][0]["miou"].as_f64());

    // Pixel counts: the target's from an independent downscale of the 2 val images (of the 3
    // asked for); the source's from 3 images of 8×4 embedding pixels at most.
    let want = expected_target_pixels(3);
    let target_pixels: Vec<u64> = runs[0]["per_class"].as_array().unwrap().iter().map(|c| c["target_pixels"].as_u64().unwrap()).collect();
    assert_eq!(target_pixels, want);
    let source_pixels: u64 = runs[0]["per_class"].as_array().unwrap().iter().map(|c| c["source_pixels"].as_u64().unwrap()).sum();
    assert!(source_pixels > 0 && source_pixels <= 3 * 8 * 4, "{source_pixels}");

    // Cosines: in [-1, 1] exactly where both domains have the class, identical for identical
    // weights, different between checkpoints.
    for run in runs {
        for c in run["per_class"].as_array().unwrap() {
            let present = c["source_pixels"].as_u64().unwrap() > 0 && c["target_pixels"].as_u64().unwrap() > 0;
            match c["cosine"].as_f64() {
                Some(v) => assert!(present && (-1.0..=1.0).contains(&v), "{c}"),
                None => assert!(!present && c["cosine"].is_null(), "{c}"),
            }
        }
    }
    let (early_cos, last_cos) = (field(&runs[0], "cosine"), field(&runs[1], "cosine"));
    assert!(last_cos.iter().any(Option::is_some));
    assert_eq!(last_cos, field(&runs[2], "cosine"));
    assert_ne!(early_cos, last_cos);
    let md = std::fs::read_to_string(out.join("similarity.md")).unwrap();
    assert!(md.contains("| last again cosine |") && md.lines().filter(|l| l.starts_with("| ")).count() >= 19 + 3, "{md}");
}

#[test]
fn similarity_needs_a_projection_head_and_matching_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("plain.toml"), common::tiny_source_only_run()).unwrap();
    std::fs::write(d.join("w.safetensors"), b"not used").unwrap();
    let o = t2s(d).args(["similarity", "--config", "plain.toml", "--weights", "w.safetensors"]).output().unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("[model.network.projection]") && e.contains("plain.toml") && e.contains("--space decoder"), "{e}");
    let o =
        t2s(d).args(["similarity", "--config", "plain.toml", "--weights", "w.safetensors", "--name", "a", "--name", "b"]).output().unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("2 --name for 1 --weights: give one name per weights file, or none"), "{e}");
}

/// `--space decoder`: prototypes of the feature the classifier reads, on a network without a
/// projection head; the alignment summary agrees with the per-class cosines it is made of.
#[test]
fn decoder_space_works_without_a_projection_head() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("plain.toml"), common::tiny_source_only_run()).unwrap();
    run_ok(d, &["train", "--config", "plain.toml", "--set", "run.name=p"]);
    let last = "runs/p/checkpoints/iter_000004/student.safetensors";
    run_ok(d, &["similarity", "--config", "plain.toml", "--space", "decoder", "--images", "3", "--weights", last, "--output", "sim"]);
    let report = read_json(&d.join("sim/similarity.json"));
    assert_eq!(report["space"], "decoder");
    let run = &report["runs"][0];
    let per_class = run["per_class"].as_array().unwrap();
    let target_pixels: Vec<u64> = per_class.iter().map(|c| c["target_pixels"].as_u64().unwrap()).collect();
    assert_eq!(target_pixels, expected_target_pixels(3));
    let cosines: Vec<f64> = per_class.iter().filter_map(|c| c["cosine"].as_f64()).collect();
    let both = per_class.iter().filter(|c| c["source_pixels"].as_u64().unwrap() > 0 && c["target_pixels"].as_u64().unwrap() > 0).count();
    assert!(both > 0 && cosines.len() == both, "{run}");
    let a = &run["alignment"];
    assert_eq!(a["classes"].as_u64().unwrap() as usize, both);
    assert!(a["nearest_own"].as_u64().unwrap() as usize <= both);
    let mean = cosines.iter().sum::<f64>() / both as f64;
    assert!((a["same_class_cosine"].as_f64().unwrap() - mean).abs() < 1e-12, "{a} vs {mean}");
    assert!((-1.0..=1.0).contains(&a["other_class_cosine"].as_f64().unwrap()), "{a}");
    let md = std::fs::read_to_string(d.join("sim/similarity.md")).unwrap();
    assert!(md.contains("decoder feature") && md.contains("nearest their own class"), "{md}");
}
