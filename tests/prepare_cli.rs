//! End-to-end tests of `t2s prepare` on a tiny GTA5-layout fixture: class counts checked against
//! hand-computed numbers, a second run that changes nothing, and a corrupt file reported.

mod common;

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::process::Output;

use common::t2s_program;

/// An 8-bit palette PNG whose indices are `indices` (GTA5's label format); the palette colours
/// differ from the indices, so a reader that expanded the palette would get other numbers.
fn write_palette_label(path: &Path, w: u32, h: u32, indices: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut enc = png::Encoder::new(BufWriter::new(File::create(path).unwrap()), w, h);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette((0..=255u8).flat_map(|i| [i.wrapping_mul(3), 200, 255 - i]).collect::<Vec<u8>>());
    enc.write_header().unwrap().write_image_data(indices).unwrap();
}

fn write_image(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 77])).save(path).unwrap();
}

/// `<root>/images`, `<root>/labels` with:
/// - 00001: 8×6 label: row 0 road (labelId 7), row 1 car (26), row 2 four building (11) and four
///   unlabelled (0), rows 3–5 sky (23);
/// - 00002: 8×6 image with a 4×3 label (bicycle 33 in row 0, person 24 in rows 1–2), which the
///   reader resizes to 8×6 with nearest neighbour: rows 0–1 bicycle, rows 2–5 person;
/// - 00003: an image without a label (reported, skipped).
fn gta_fixture(root: &Path) {
    write_image(&root.join("images/00001.png"), 8, 6);
    let mut a = Vec::new();
    a.extend([7u8; 8]);
    a.extend([26u8; 8]);
    a.extend([11, 11, 11, 11, 0, 0, 0, 0]);
    a.extend([23u8; 24]);
    write_palette_label(&root.join("labels/00001.png"), 8, 6, &a);
    write_image(&root.join("images/00002.png"), 8, 6);
    let mut b = vec![33u8; 4];
    b.extend([24u8; 8]);
    write_palette_label(&root.join("labels/00002.png"), 4, 3, &b);
    write_image(&root.join("images/00003.png"), 8, 6);
}

fn run(root: &Path) -> Output {
    t2s_program().args(["prepare", "gta5"]).arg(root).args(["--jobs", "2"]).output().expect("t2s runs")
}

/// The counts of the 19 train ids with the given (train id, pixels) set.
fn counts(pairs: &[(usize, u64)]) -> Vec<u64> {
    let mut v = vec![0u64; 19];
    for &(id, n) in pairs {
        v[id] = n;
    }
    v
}

fn as_counts(v: &serde_json::Value) -> Vec<u64> {
    v.as_array().expect("an array").iter().map(|x| x.as_u64().expect("a count")).collect()
}

#[test]
fn prepare_gta5_counts_classes_and_reruns_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    gta_fixture(root);

    let out = run(root);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "t2s prepare failed: {stderr}");
    assert!(stderr.contains("images/00003.png: no label 00003.png"), "{stderr}");
    assert!(stderr.contains("repaired 00002: label") && stderr.contains("is 4×3, image is 8×6"), "{stderr}");
    assert!(stderr.contains("2 samples: 2 decoded, 0 unchanged"), "{stderr}");

    let path = root.join("t2s_class_stats.json");
    let first = std::fs::read(&path).expect("statistics written");
    let json: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(json["dataset"], "gta5");
    assert_eq!(json["classes"][13], "car");
    // 00001: road 8, car 8, building 4, sky 24; 4 unlabelled pixels ignored.
    let a = &json["images"]["00001"];
    assert_eq!(as_counts(&a["counts"]), counts(&[(0, 8), (13, 8), (2, 4), (10, 24)]));
    assert_eq!(a["ignored"], 4);
    assert_eq!(a["image"]["path"], "images/00001.png");
    assert_eq!(a["label"]["size"], std::fs::metadata(root.join("labels/00001.png")).unwrap().len());
    // 00002 after resizing: bicycle 2 rows × 8, person 4 rows × 8.
    let b = &json["images"]["00002"];
    assert_eq!(as_counts(&b["counts"]), counts(&[(18, 16), (11, 32)]));
    assert_eq!(b["ignored"], 0);
    assert!(json["images"].get("00003").is_none());
    assert_eq!(as_counts(&json["totals"]), counts(&[(0, 8), (13, 8), (2, 4), (10, 24), (18, 16), (11, 32)]));
    assert_eq!(json["ignored"], 4);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("person") && l.contains(" 32 ")), "{stdout}");

    // Nothing changed: nothing decoded, the same bytes.
    let out = run(root);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "second run failed: {stderr}");
    assert!(stderr.contains("2 samples: 0 decoded, 2 unchanged since the last run, 0 failed"), "{stderr}");
    assert!(stderr.contains("is up to date"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), first);
}

#[test]
fn prepare_reports_corrupt_files_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    gta_fixture(root);
    std::fs::write(root.join("labels/00003.png"), b"\x89PNG\r\n\x1a\n cut short").unwrap();
    let out = run(root);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "a corrupt label must fail the run: {stderr}");
    assert!(stderr.contains("failed 00003:") && stderr.contains("labels/00003.png") && stderr.contains("cannot decode"), "{stderr}");
    assert!(stderr.contains("1 of 3 samples could not be read"), "{stderr}");
    // The readable samples' statistics are still written.
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("t2s_class_stats.json")).unwrap()).unwrap();
    assert_eq!(json["images"].as_object().unwrap().len(), 2);

    let out = t2s_program().args(["prepare", "gta5"]).arg(root.join("nowhere")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("nowhere/images: folder not found"), "{stderr}");
    let out = t2s_program().args(["prepare", "gta"]).arg(root).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("known datasets are gta5"), "{stderr}");
    // A missing file is said once: the library's message already quotes the system's.
    let out = t2s_program().args(["prepare", "folder"]).arg(root).args(["--mapping", "missing.toml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("missing.toml: No such file or directory"), "{stderr}");
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
}
