//! Mapillary Vistas v1.2: `<split>/images/*.jpg` with `<split>/labels/*.png` of the same name,
//! 8-bit PNGs (palette or grey) holding the 66 Vistas class ids, mapped to train ids (every id
//! without a Cityscapes counterpart → 255, as documented). Images vary in size; each label must
//! match its image.

use std::path::Path;

use super::label_fit::SizePolicy;
use super::label_png::LabelEncoding;
use super::mapping::{mapillary_id_to_train_id, ValueMap};
use super::options::{DatasetKind, LabelUse};
use super::paired_files::{impl_paired_reader, LabelFormat, PairedFiles};
use super::scan::{scan_flat, FlatLayout};
use super::scan_report::ScanReport;
use crate::error::Result;
use crate::label_space::LabelSpace;

/// The layout, for error messages.
const EXPECTED: &str =
    "<root>/<split>/images/*.jpg and <root>/<split>/labels/*.png (8-bit Vistas v1.2 ids), split = validation or training";

/// The Mapillary Vistas reader (one split).
#[derive(Debug, Clone)]
pub struct Mapillary {
    files: PairedFiles,
}

impl Mapillary {
    /// Opens `split` (validation or training; `val`/`train` also accepted) of `root` with labels
    /// required.
    pub fn open(root: &Path, split: &str) -> Result<(Self, ScanReport)> {
        Self::open_with(root, split, LabelUse::Require)
    }

    /// Opens `split` of `root`, loading labels per `labels`.
    pub fn open_with(root: &Path, split: &str, labels: LabelUse) -> Result<(Self, ScanReport)> {
        let split = DatasetKind::Mapillary.resolve_split(Some(split))?.unwrap_or_default();
        let mut report = ScanReport::default();
        let layout = FlatLayout {
            images: root.join(&split).join("images"),
            image_exts: &["jpg", "jpeg"],
            labels: root.join(&split).join("labels"),
            ignored_label_suffix: None,
            expected: EXPECTED,
        };
        let (entries, has_labels) = scan_flat(&layout, labels, &mut report)?;
        let format =
            LabelFormat { encoding: LabelEncoding::Index8, map: ValueMap::total(mapillary_id_to_train_id()), size: SizePolicy::Error };
        let files = PairedFiles {
            kind: DatasetKind::Mapillary,
            root: root.to_path_buf(),
            split: Some(split),
            entries,
            formats: vec![format],
            space: LabelSpace::cityscapes(),
            has_labels,
        };
        Ok((Self { files }, report))
    }
}

impl_paired_reader!(Mapillary);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_fixtures::{write_image, write_palette};
    use crate::sample::Dataset;

    #[test]
    fn vistas_ids_become_train_ids() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_image(&root.join("validation/images/-0uQ1F2b.jpg"), 4, 2);
        // road, lane marking – general, curb, car, bicyclist, crosswalk (23, ignore), ego vehicle (64), unlabeled (65).
        write_palette(&root.join("validation/labels/-0uQ1F2b.png"), 4, 2, &[13, 24, 2, 55, 20, 23, 64, 65]);
        let (ds, report) = Mapillary::open(root, "val").unwrap();
        assert!(report.is_empty(), "{report}");
        assert_eq!(ds.name(0), "-0uQ1F2b");
        assert_eq!(ds.get(0).unwrap().label.unwrap().into_raw(), [0, 0, 1, 13, 12, 255, 255, 255]);
    }

    #[test]
    fn size_mismatch_is_an_error_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_image(&root.join("validation/images/a.jpg"), 4, 2);
        write_palette(&root.join("validation/labels/a.png"), 4, 3, &[13; 12]);
        let (ds, _) = Mapillary::open(root, "validation").unwrap();
        let err = ds.get(0).unwrap_err().to_string();
        assert!(err.contains("labels/a.png: label is 4×3") && err.contains("images/a.jpg is 4×2"), "{err}");
    }
}
