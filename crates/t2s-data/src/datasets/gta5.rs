//! GTA5: `images/*.png` with `labels/*.png` of the same name, 8-bit palette PNGs whose palette
//! index is the Cityscapes labelId. The indices are read as stored (the palette is never
//! expanded) and mapped to train ids; a label whose size differs from its image (a handful of
//! pairs in the real set) is resized with nearest neighbour and reported.

use std::path::Path;

use super::label_fit::SizePolicy;
use super::label_png::LabelEncoding;
use super::mapping::{gta5_label_id_to_train_id, ValueMap};
use super::options::{DatasetKind, LabelUse};
use super::paired_files::{impl_paired_reader, LabelFormat, PairedFiles};
use super::scan::{scan_flat, FlatLayout};
use super::scan_report::ScanReport;
use crate::error::Result;
use crate::label_space::LabelSpace;

/// The layout, for error messages.
const EXPECTED: &str = "<root>/images/00001.png … and <root>/labels/00001.png … (8-bit palette PNGs, index = Cityscapes labelId)";

/// The GTA5 reader.
#[derive(Debug, Clone)]
pub struct Gta5 {
    files: PairedFiles,
}

impl Gta5 {
    /// Opens `root` with labels required; unpaired files are in the report.
    pub fn open(root: &Path) -> Result<(Self, ScanReport)> {
        Self::open_with(root, LabelUse::Require)
    }

    /// Opens `root`, loading labels per `labels`.
    pub fn open_with(root: &Path, labels: LabelUse) -> Result<(Self, ScanReport)> {
        let mut report = ScanReport::default();
        let layout = FlatLayout {
            images: root.join("images"),
            image_exts: &["png"],
            labels: root.join("labels"),
            ignored_label_suffix: Some("_labelTrainIds"),
            expected: EXPECTED,
        };
        let (entries, has_labels) = scan_flat(&layout, labels, &mut report)?;
        let format = LabelFormat {
            encoding: LabelEncoding::Index8,
            map: ValueMap::total(gta5_label_id_to_train_id()),
            size: SizePolicy::ResizeLabel,
        };
        let files = PairedFiles {
            kind: DatasetKind::Gta5,
            root: root.to_path_buf(),
            split: None,
            entries,
            formats: vec![format],
            space: LabelSpace::cityscapes(),
            has_labels,
        };
        Ok((Self { files }, report))
    }
}

impl_paired_reader!(Gta5);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_fixtures::{write_image, write_palette};
    use crate::datasets::DatasetReader;
    use crate::sample::Dataset;

    #[test]
    fn palette_indices_become_train_ids() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_image(&root.join("images/00001.png"), 4, 2);
        // labelIds 7 road, 26 car, 33 bicycle, 0 unlabelled, 34 (beyond the table), 24 person,
        // 200 (no such labelId), 8 sidewalk.
        write_palette(&root.join("labels/00001.png"), 4, 2, &[7, 26, 33, 0, 34, 24, 200, 8]);
        let (ds, report) = Gta5::open(root).unwrap();
        assert!(report.is_empty(), "{report}");
        assert_eq!((ds.len(), ds.name(0), ds.has_labels()), (1, "00001".to_string(), true));
        let s = ds.get(0).unwrap();
        assert_eq!(s.label.unwrap().into_raw(), [0, 13, 18, 255, 255, 11, 255, 1]);
        assert_eq!(s.image.dimensions(), (4, 2));
        assert_eq!(s.image.get_pixel(3, 1).0, [30, 10, 99]);
    }

    #[test]
    fn unpaired_files_are_skipped_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for n in ["00001", "00002", "00004"] {
            write_image(&root.join(format!("images/{n}.png")), 2, 2);
        }
        for n in ["00001", "00003", "00004"] {
            write_palette(&root.join(format!("labels/{n}.png")), 2, 2, &[7; 4]);
        }
        write_palette(&root.join("labels/00001_labelTrainIds.png"), 2, 2, &[0; 4]);
        let (ds, report) = Gta5::open(root).unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!((ds.name(0), ds.name(1)), ("00001".to_string(), "00004".to_string()));
        let skipped: Vec<String> = report.skipped.iter().map(|s| s.path.file_name().unwrap().to_str().unwrap().to_string()).collect();
        assert_eq!(skipped, ["00002.png", "00003.png"]);
        assert!(report.skipped[0].path.ends_with("images/00002.png") && report.skipped[0].reason.contains("no label 00002.png"));
        assert!(report.skipped[1].path.ends_with("labels/00003.png") && report.skipped[1].reason.contains("no image"));
        assert!(report.notes[0].contains("1 files *_labelTrainIds.png"), "{report}");
    }

    #[test]
    fn size_mismatch_resizes_the_label_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_image(&root.join("images/00007.png"), 4, 2);
        write_palette(&root.join("labels/00007.png"), 2, 1, &[7, 26]);
        let (ds, _) = Gta5::open(root).unwrap();
        let checked = ds.get_checked(0).unwrap();
        // 2×1 → 4×2 nearest: columns 0,1 ← road, 2,3 ← car, both rows.
        assert_eq!(checked.sample.label.unwrap().into_raw(), [0, 0, 13, 13, 0, 0, 13, 13]);
        let repair = checked.repair.unwrap();
        assert!(repair.contains("00007.png is 2×1, image is 4×2"), "{repair}");
    }

    #[test]
    fn rgb_labels_and_corrupt_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_image(&root.join("images/00001.png"), 2, 2);
        std::fs::create_dir_all(root.join("labels")).unwrap();
        image::RgbImage::new(2, 2).save(root.join("labels/00001.png")).unwrap();
        write_image(&root.join("images/00002.png"), 2, 2);
        std::fs::write(root.join("labels/00002.png"), b"\x89PNG\r\n\x1a\ntruncated").unwrap();
        std::fs::write(root.join("images/00003.png"), b"\x89PNG\r\n\x1a\n").unwrap();
        write_palette(&root.join("labels/00003.png"), 2, 2, &[7; 4]);
        let (ds, _) = Gta5::open(root).unwrap();
        let err = ds.get(0).unwrap_err().to_string();
        assert!(err.contains("labels/00001.png") && err.contains("RGB with 8 bits") && err.contains("palette"), "{err}");
        let err = ds.get(1).unwrap_err().to_string();
        assert!(err.contains("labels/00002.png") && err.contains("cannot decode"), "{err}");
        let err = ds.get(2).unwrap_err().to_string();
        assert!(err.contains("images/00003.png") && err.contains("cannot decode"), "{err}");
    }

    #[test]
    fn missing_and_empty_folders_name_the_folder_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let err = Gta5::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("images: folder not found") && err.contains("expected layout: <root>/images/00001.png"), "{err}");
        std::fs::create_dir(dir.path().join("images")).unwrap();
        let err = Gta5::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("images: no images (*.png)"), "{err}");
        write_image(&dir.path().join("images/00001.png"), 2, 2);
        let err = Gta5::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("labels: folder not found"), "{err}");
        std::fs::create_dir(dir.path().join("labels")).unwrap();
        let err = Gta5::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("labels: the label folder holds no label files"), "{err}");
        let (ds, _) = Gta5::open_with(dir.path(), LabelUse::Ignore).unwrap();
        assert!(!ds.has_labels() && ds.get(0).unwrap().label.is_none());
    }
}
