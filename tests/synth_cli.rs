//! End-to-end test of `t2s synth`: the files it writes, their sizes and that they hold what the
//! library renders.

mod common;

use std::path::Path;

use t2s_data::synth::{render, Domain, Split};

use common::t2s_program;

fn dims(path: &Path) -> (u32, u32) {
    image::image_dimensions(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn synth_writes_a_cityscapes_like_copy_of_both_domains() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("synth");
    let status = t2s_program()
        .args(["synth", "--out"])
        .arg(&out)
        .args(["--count", "2", "--width", "64", "--height", "32"])
        .status()
        .expect("t2s runs");
    assert!(status.success());
    for (split, count) in [("train", 2), ("val", 1)] {
        for domain in ["source", "target"] {
            for i in 0..count {
                let name = format!("{domain}_{split}_{i:06}");
                let image = out.join(format!("leftImg8bit/{split}/{domain}/{name}_leftImg8bit.png"));
                let ids = out.join(format!("gtFine/{split}/{domain}/{name}_gtFine_labelTrainIds.png"));
                let color = out.join(format!("gtFine/{split}/{domain}/{name}_gtFine_color.png"));
                for path in [&image, &ids, &color] {
                    assert_eq!(dims(path), (64, 32), "{}", path.display());
                }
                let labels = image::open(&ids).expect("label decodes");
                assert!(labels.as_luma8().is_some(), "train ids are 8-bit grey");
                assert!(labels.as_bytes().iter().all(|&v| v < 19));
            }
            let extra = out.join(format!("leftImg8bit/{split}/{domain}/{domain}_{split}_{count:06}_leftImg8bit.png"));
            assert!(!extra.exists(), "{} should not exist", extra.display());
        }
    }
    // The files hold exactly what the library renders for (seed 0, domain, split, index).
    let written = image::open(out.join("leftImg8bit/val/target/target_val_000000_leftImg8bit.png")).expect("decodes").to_rgb8();
    assert_eq!(written, render(Domain::Target, 64, 32, 0, Split::Val.stream(0)).image);
}

#[test]
fn synth_writes_one_domain_and_rejects_bad_sizes() {
    let dir = tempfile::tempdir().expect("temp dir");
    // `--output`, as the other commands spell it, is `--out`.
    let status = t2s_program()
        .args(["synth", "--output"])
        .arg(dir.path())
        .args(["--count", "1", "--val-count", "0", "--width", "40", "--height", "24", "--domain", "target", "--seed", "5"])
        .status()
        .expect("t2s runs");
    assert!(status.success());
    assert_eq!(dims(&dir.path().join("leftImg8bit/train/target/target_train_000000_leftImg8bit.png")), (40, 24));
    assert!(!dir.path().join("leftImg8bit/train/source").exists());
    assert!(!dir.path().join("leftImg8bit/val/target/target_val_000000_leftImg8bit.png").exists());

    let out = t2s_program().args(["synth", "--out"]).arg(dir.path()).args(["--width", "0"]).output().expect("t2s runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--width 0: must be between 1 and 8192 pixels"), "{err}");
    // Counts: none, or so many that the bookkeeping alone would not fit (it aborted).
    for (count, want) in [("0", "--count 0: must be between 1 and 10000000 samples"), ("100000000000", "--count 100000000000: must be")] {
        let out = t2s_program().args(["synth", "--out"]).arg(dir.path().join("c")).args(["--count", count]).output().expect("t2s runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{err}");
    }
    assert!(!dir.path().join("c").exists());
}
