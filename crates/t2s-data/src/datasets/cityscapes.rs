//! Cityscapes: `leftImg8bit/<split>/<city>/<name>_leftImg8bit.png` with
//! `gtFine/<split>/<city>/<name>_gtFine_labelIds.png` (8-bit labelIds, mapped through the
//! 256-entry table) or, where it exists, `<name>_gtFine_labelTrainIds.png` (train ids already).
//! Without a `gtFine/<split>` folder the split loads as images only (a target set).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::label_fit::SizePolicy;
use super::label_png::LabelEncoding;
use super::mapping::{identity, train_id_values, ValueMap};
use super::options::{DatasetKind, LabelUse};
use super::paired_files::{impl_paired_reader, LabelFormat, PairedFiles, SampleEntry};
use super::scan::{layout_error, list_dirs, list_files, require_dir, stem};
use super::scan_report::ScanReport;
use crate::error::Result;
use crate::label_space::{cityscapes_label_id_to_train_id, LabelSpace};

/// The layout, for error messages.
const EXPECTED: &str = "<root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png and (optional) \
                        <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png";

/// Suffixes of the file names.
const IMAGE_SUFFIX: &str = "_leftImg8bit";
const LABEL_IDS_SUFFIX: &str = "_gtFine_labelIds.png";
const TRAIN_IDS_SUFFIX: &str = "_gtFine_labelTrainIds.png";

/// Indices into the reader's label formats.
const FORMAT_LABEL_IDS: usize = 0;
const FORMAT_TRAIN_IDS: usize = 1;

/// The Cityscapes reader (one split).
#[derive(Debug, Clone)]
pub struct Cityscapes {
    files: PairedFiles,
}

impl Cityscapes {
    /// Opens `split` (train, val or test) of `root`; labels are loaded when `gtFine/<split>`
    /// exists. Images without a label and labels without an image are in the report.
    pub fn open(root: &Path, split: &str) -> Result<(Self, ScanReport)> {
        Self::open_with(root, split, LabelUse::Auto)
    }

    /// Opens `split` of `root`, loading labels per `labels`.
    pub fn open_with(root: &Path, split: &str, labels: LabelUse) -> Result<(Self, ScanReport)> {
        let split = DatasetKind::Cityscapes.resolve_split(Some(split))?.unwrap_or_default();
        let mut report = ScanReport::default();
        let image_root = root.join("leftImg8bit").join(&split);
        require_dir(&image_root, EXPECTED)?;
        // (city folder name, sample name, image path), in city then file order.
        let mut images = Vec::new();
        for city in list_dirs(&image_root)? {
            let Some(city_name) = city.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                report.skip(&city, NOT_UTF8);
                continue;
            };
            for path in list_files(&city, &["png"])? {
                match stem(&path).and_then(|s| s.strip_suffix(IMAGE_SUFFIX)) {
                    Some(name) => images.push((city_name.clone(), name.to_string(), path.clone())),
                    None => report.skip(&path, "not a *_leftImg8bit.png image"),
                }
            }
        }
        if images.is_empty() {
            return Err(layout_error(&image_root, "no city folders with *_leftImg8bit.png images", EXPECTED));
        }

        let label_root = root.join("gtFine").join(&split);
        let use_labels = match labels {
            LabelUse::Ignore => false,
            LabelUse::Require => {
                require_dir(&label_root, EXPECTED)?;
                true
            }
            LabelUse::Auto => {
                if !label_root.exists() {
                    report.note(format!("no label folder {}: images only", label_root.display()));
                }
                label_root.exists()
            }
        };
        let mut entries = Vec::with_capacity(images.len());
        if use_labels {
            require_dir(&label_root, EXPECTED)?;
            entries = pair_labels(images, &label_root, &mut report)?;
            let train_ids = entries.iter().filter(|e| matches!(e.label, Some((_, FORMAT_TRAIN_IDS)))).count();
            if train_ids > 0 {
                report.note(format!("{train_ids} of {} labels read from *{TRAIN_IDS_SUFFIX}", entries.len()));
            }
        } else {
            entries.extend(images.into_iter().map(|(_, name, image)| SampleEntry { name, image, label: None }));
        }

        let formats = vec![
            LabelFormat {
                encoding: LabelEncoding::Index8,
                map: ValueMap::total(cityscapes_label_id_to_train_id()),
                size: SizePolicy::Error,
            },
            LabelFormat {
                encoding: LabelEncoding::Index8,
                map: ValueMap::partial(identity(), train_id_values(), "a Cityscapes train id (0–18) or 255"),
                size: SizePolicy::Error,
            },
        ];
        let files = PairedFiles {
            kind: DatasetKind::Cityscapes,
            root: root.to_path_buf(),
            split: Some(split),
            entries,
            formats,
            space: LabelSpace::cityscapes(),
            has_labels: use_labels,
        };
        Ok((Self { files }, report))
    }
}

/// Why a city folder is passed over: its name is not UTF-8 (Cityscapes' names are ASCII).
const NOT_UTF8: &str = "a city folder whose name is not UTF-8 (rename it)";

/// Finds each image's label in `gtFine/<split>/<city>/` (train ids preferred, else labelIds),
/// reporting images without a label and labelId files without an image.
fn pair_labels(images: Vec<(String, String, std::path::PathBuf)>, label_root: &Path, report: &mut ScanReport) -> Result<Vec<SampleEntry>> {
    // Label file names per city, listed once.
    let mut label_files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for city in list_dirs(label_root)? {
        let Some(city_name) = city.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            report.skip(&city, NOT_UTF8);
            continue;
        };
        let names = list_files(&city, &["png"])?
            .iter()
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
            .filter(|n| n.ends_with(LABEL_IDS_SUFFIX) || n.ends_with(TRAIN_IDS_SUFFIX))
            .collect();
        label_files.insert(city_name, names);
    }
    if label_files.values().all(|names| names.is_empty()) {
        return Err(layout_error(
            label_root,
            format!(
                "no *{LABEL_IDS_SUFFIX} (or *{TRAIN_IDS_SUFFIX}) files; remove the folder or use labels = \"ignore\" to load images only"
            ),
            EXPECTED,
        ));
    }
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut entries = Vec::with_capacity(images.len());
    for (city, name, image) in images {
        let names = label_files.get(&city);
        let has = |file: &str| names.is_some_and(|n| n.contains(file));
        let train_ids = format!("{name}{TRAIN_IDS_SUFFIX}");
        let label_ids = format!("{name}{LABEL_IDS_SUFFIX}");
        let label = if has(&train_ids) {
            Some((train_ids.clone(), FORMAT_TRAIN_IDS))
        } else if has(&label_ids) {
            Some((label_ids.clone(), FORMAT_LABEL_IDS))
        } else {
            None
        };
        match label {
            Some((file, format)) => {
                used.insert(name.clone());
                entries.push(SampleEntry { name, image, label: Some((label_root.join(&city).join(file), format)) });
            }
            None => report.skip(&image, format!("no {label_ids} (or {train_ids}) in {}", label_root.join(&city).display())),
        }
    }
    for (city, names) in &label_files {
        for file in names {
            let name = file.strip_suffix(LABEL_IDS_SUFFIX).or_else(|| file.strip_suffix(TRAIN_IDS_SUFFIX));
            let orphan = name.is_some_and(|name| !used.contains(name));
            if orphan {
                report.skip(label_root.join(city).join(file), "no image with this name in leftImg8bit");
            }
        }
    }
    if entries.is_empty() {
        return Err(layout_error(label_root, "no image has a label with the same name", EXPECTED));
    }
    Ok(entries)
}

impl_paired_reader!(Cityscapes);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_fixtures::{write_gray8, write_image, write_palette};
    use crate::sample::Dataset;

    fn image(root: &Path, split: &str, city: &str, name: &str) {
        write_image(&root.join(format!("leftImg8bit/{split}/{city}/{name}_leftImg8bit.png")), 4, 2);
    }

    #[test]
    fn every_documented_label_id_through_real_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        image(root, "val", "aachen", "aachen_000000_000019");
        image(root, "val", "bonn", "bonn_000001_000019");
        // 19 trained labelIds, then ignored ones (0–6, 9, 10, 14–16, 18, 29, 30, 34, 255).
        let ids: [u8; 8] = [7, 8, 11, 12, 13, 17, 19, 20];
        write_gray8(&root.join("gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png"), 4, 2, &ids);
        let ids2: [u8; 8] = [21, 22, 23, 24, 25, 26, 27, 28];
        write_gray8(&root.join("gtFine/val/bonn/bonn_000001_000019_gtFine_labelIds.png"), 4, 2, &ids2);
        let (ds, report) = Cityscapes::open(root, "val").unwrap();
        assert!(report.is_empty(), "{report}");
        assert_eq!(ds.name(0), "aachen_000000_000019");
        assert_eq!(ds.get(0).unwrap().label.unwrap().into_raw(), [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(ds.get(1).unwrap().label.unwrap().into_raw(), [8, 9, 10, 11, 12, 13, 14, 15]);

        let rest: [u8; 8] = [31, 32, 33, 0, 6, 9, 34, 255];
        write_gray8(&root.join("gtFine/val/bonn/bonn_000001_000019_gtFine_labelIds.png"), 4, 2, &rest);
        assert_eq!(ds.get(1).unwrap().label.unwrap().into_raw(), [16, 17, 18, 255, 255, 255, 255, 255]);
        let more: [u8; 8] = [10, 14, 15, 16, 18, 29, 30, 1];
        write_gray8(&root.join("gtFine/val/bonn/bonn_000001_000019_gtFine_labelIds.png"), 4, 2, &more);
        assert_eq!(ds.get(1).unwrap().label.unwrap().into_raw(), [255; 8]);
    }

    #[test]
    fn train_id_files_are_preferred_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        image(root, "train", "ulm", "ulm_000000_000019");
        let base = "gtFine/train/ulm/ulm_000000_000019";
        write_gray8(&root.join(format!("{base}_gtFine_labelIds.png")), 4, 2, &[7; 8]);
        write_gray8(&root.join(format!("{base}_gtFine_labelTrainIds.png")), 4, 2, &[13, 0, 18, 255, 5, 5, 5, 5]);
        let (ds, report) = Cityscapes::open(root, "train").unwrap();
        assert_eq!(ds.get(0).unwrap().label.unwrap().into_raw(), [13, 0, 18, 255, 5, 5, 5, 5]);
        assert!(report.notes[0].contains("1 of 1 labels read from *_gtFine_labelTrainIds.png"), "{report}");
        write_gray8(&root.join(format!("{base}_gtFine_labelTrainIds.png")), 4, 2, &[13, 0, 19, 255, 5, 5, 5, 5]);
        let err = ds.get(0).unwrap_err().to_string();
        assert!(err.contains("labelTrainIds.png: label value 19 at pixel (2, 0) is not a Cityscapes train id"), "{err}");
    }

    #[test]
    fn a_split_without_gtfine_loads_unlabelled() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        image(root, "train", "ulm", "ulm_000000_000019");
        let (ds, report) = Cityscapes::open(root, "train").unwrap();
        assert!(!ds.has_labels());
        assert!(ds.get(0).unwrap().label.is_none());
        assert!(report.notes[0].contains("images only"), "{report}");
        let err = Cityscapes::open_with(root, "train", LabelUse::Require).unwrap_err().to_string();
        assert!(err.contains("gtFine/train: folder not found"), "{err}");
    }

    #[test]
    fn partially_labelled_splits_report_every_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        image(root, "val", "ulm", "ulm_000000_000019");
        image(root, "val", "ulm", "ulm_000001_000019");
        write_gray8(&root.join("gtFine/val/ulm/ulm_000000_000019_gtFine_labelIds.png"), 4, 2, &[7; 8]);
        write_gray8(&root.join("gtFine/val/ulm/ulm_000009_000019_gtFine_labelIds.png"), 4, 2, &[7; 8]);
        // A label in train ids without an image is named too.
        write_gray8(&root.join("gtFine/val/ulm/ulm_000008_000019_gtFine_labelTrainIds.png"), 4, 2, &[0; 8]);
        write_image(&root.join("leftImg8bit/val/ulm/stray.png"), 2, 2);
        let (ds, report) = Cityscapes::open(root, "val").unwrap();
        assert_eq!(ds.len(), 1);
        let skipped: Vec<(String, &str)> =
            report.skipped.iter().map(|s| (s.path.file_name().unwrap().to_str().unwrap().to_string(), s.reason.as_str())).collect();
        assert_eq!(skipped.len(), 4, "{report}");
        assert_eq!(skipped[0].0, "stray.png");
        assert_eq!(skipped[1].0, "ulm_000001_000019_leftImg8bit.png");
        assert!(
            skipped[1].1.starts_with("no ulm_000001_000019_gtFine_labelIds.png (or ulm_000001_000019_gtFine_labelTrainIds.png) in "),
            "{report}"
        );
        assert_eq!(skipped[2].0, "ulm_000008_000019_gtFine_labelTrainIds.png");
        assert_eq!(skipped[3].0, "ulm_000009_000019_gtFine_labelIds.png");
    }

    /// A city folder whose name is not UTF-8 is reported, not passed over in silence.
    #[cfg(unix)]
    #[test]
    fn a_city_folder_with_a_name_that_is_not_utf8_is_reported() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        image(root, "val", "ulm", "ulm_000000_000019");
        write_gray8(&root.join("gtFine/val/ulm/ulm_000000_000019_gtFine_labelIds.png"), 4, 2, &[7; 8]);
        let odd = std::ffi::OsStr::from_bytes(b"m\xfcnster");
        std::fs::create_dir_all(root.join("leftImg8bit/val").join(odd)).unwrap();
        std::fs::create_dir_all(root.join("gtFine/val").join(odd)).unwrap();
        let (ds, report) = Cityscapes::open(root, "val").unwrap();
        assert_eq!(ds.len(), 1);
        let skipped: Vec<_> = report.skipped.iter().map(|s| (s.path.clone(), s.reason.as_str())).collect();
        assert_eq!(
            skipped,
            vec![(root.join("leftImg8bit/val").join(odd), NOT_UTF8), (root.join("gtFine/val").join(odd), NOT_UTF8)],
            "{report}"
        );
    }

    #[test]
    fn wrong_formats_size_mismatches_and_bad_splits() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        image(root, "val", "ulm", "ulm_a");
        image(root, "val", "ulm", "ulm_b");
        std::fs::create_dir_all(root.join("gtFine/val/ulm")).unwrap();
        image::RgbImage::new(4, 2).save(root.join("gtFine/val/ulm/ulm_a_gtFine_labelIds.png")).unwrap();
        write_palette(&root.join("gtFine/val/ulm/ulm_b_gtFine_labelIds.png"), 2, 2, &[7; 4]);
        let (ds, _) = Cityscapes::open(root, "val").unwrap();
        let err = ds.get(0).unwrap_err().to_string();
        assert!(err.contains("ulm_a_gtFine_labelIds.png") && err.contains("RGB with 8 bits"), "{err}");
        let err = ds.get(1).unwrap_err().to_string();
        assert!(err.contains("ulm_b_gtFine_labelIds.png: label is 2×2") && err.contains("is 4×2"), "{err}");
        let err = Cityscapes::open(root, "training").unwrap_err().to_string();
        assert!(err.contains("train, val, test"), "{err}");
        let err = Cityscapes::open(root, "test").unwrap_err().to_string();
        assert!(err.contains("leftImg8bit/test: folder not found"), "{err}");
    }
}
