//! SYNTHIA-RAND-CITYSCAPES: `RGB/*.png` with `GT/LABELS/*.png` of the same name, 16-bit RGB
//! PNGs whose first channel is the SYNTHIA class id (mapped to train ids; void and the classes
//! Cityscapes does not train on → 255). Image and label must have the same size.

use std::path::Path;

use super::label_fit::SizePolicy;
use super::label_png::LabelEncoding;
use super::mapping::{synthia_id_to_train_id, ValueMap};
use super::options::{DatasetKind, LabelUse};
use super::paired_files::{impl_paired_reader, LabelFormat, PairedFiles};
use super::scan::{scan_flat, FlatLayout};
use super::scan_report::ScanReport;
use crate::error::Result;
use crate::label_space::LabelSpace;

/// The layout, for error messages.
const EXPECTED: &str = "<root>/RGB/0000000.png … and <root>/GT/LABELS/0000000.png … (16-bit RGB PNGs, class id in the first channel)";

/// The SYNTHIA-RAND-CITYSCAPES reader.
#[derive(Debug, Clone)]
pub struct Synthia {
    files: PairedFiles,
}

impl Synthia {
    /// Opens `root` with labels required; unpaired files are in the report.
    pub fn open(root: &Path) -> Result<(Self, ScanReport)> {
        Self::open_with(root, LabelUse::Require)
    }

    /// Opens `root`, loading labels per `labels`.
    pub fn open_with(root: &Path, labels: LabelUse) -> Result<(Self, ScanReport)> {
        let mut report = ScanReport::default();
        let layout = FlatLayout {
            images: root.join("RGB"),
            image_exts: &["png"],
            labels: root.join("GT").join("LABELS"),
            ignored_label_suffix: Some("_labelTrainIds"),
            expected: EXPECTED,
        };
        let (entries, has_labels) = scan_flat(&layout, labels, &mut report)?;
        let format = LabelFormat {
            encoding: LabelEncoding::FirstChannel16,
            map: ValueMap::total_u16(synthia_id_to_train_id),
            size: SizePolicy::Error,
        };
        let files = PairedFiles {
            kind: DatasetKind::Synthia,
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

impl_paired_reader!(Synthia);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_fixtures::{write_gray8, write_image, write_rgb16};
    use crate::sample::Dataset;

    #[test]
    fn first_channel_ids_become_train_ids() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_image(&root.join("RGB/0000000.png"), 3, 2);
        // 3 road, 8 car, 0 void, 21 wall, 13 parking, 300 (beyond 8 bits, not a class).
        write_rgb16(&root.join("GT/LABELS/0000000.png"), 3, 2, &[3, 8, 0, 21, 13, 300]);
        let (ds, report) = Synthia::open(root).unwrap();
        assert!(report.is_empty(), "{report}");
        assert_eq!(ds.get(0).unwrap().label.unwrap().into_raw(), [0, 13, 255, 3, 255, 255]);
    }

    #[test]
    fn eight_bit_labels_and_size_mismatches_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_image(&root.join("RGB/a.png"), 2, 1);
        write_gray8(&root.join("GT/LABELS/a.png"), 2, 1, &[3, 3]);
        write_image(&root.join("RGB/b.png"), 2, 2);
        write_rgb16(&root.join("GT/LABELS/b.png"), 2, 1, &[3, 3]);
        let (ds, _) = Synthia::open(root).unwrap();
        let err = ds.get(0).unwrap_err().to_string();
        assert!(err.contains("LABELS/a.png") && err.contains("greyscale with 8 bits") && err.contains("16-bit RGB"), "{err}");
        let err = ds.get(1).unwrap_err().to_string();
        assert!(err.contains("LABELS/b.png") && err.contains("2×1") && err.contains("RGB/b.png") && err.contains("2×2"), "{err}");
    }

    #[test]
    fn missing_label_folder_names_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        write_image(&dir.path().join("RGB/0000000.png"), 2, 1);
        let err = Synthia::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("LABELS: folder not found") && err.contains("GT/LABELS/0000000.png"), "{err}");
    }
}
