//! BDD100K semantic segmentation: `images/10k/<split>/*.jpg` with
//! `labels/sem_seg/masks/<split>/*.png` of the same name, 8-bit masks that already hold the 19
//! train ids and 255. Any other value means the file is not such a mask: an error naming it.

use std::path::Path;

use super::label_fit::SizePolicy;
use super::label_png::LabelEncoding;
use super::mapping::{identity, train_id_values, ValueMap};
use super::options::{DatasetKind, LabelUse};
use super::paired_files::{impl_paired_reader, LabelFormat, PairedFiles};
use super::scan::{scan_flat, FlatLayout};
use super::scan_report::ScanReport;
use crate::error::Result;
use crate::label_space::LabelSpace;

/// The layout, for error messages.
const EXPECTED: &str = "<root>/images/10k/<split>/*.jpg and <root>/labels/sem_seg/masks/<split>/*.png (8-bit train ids)";

/// The BDD100K reader (one split).
#[derive(Debug, Clone)]
pub struct Bdd100k {
    files: PairedFiles,
}

impl Bdd100k {
    /// Opens `split` (val or train) of `root` with labels required.
    pub fn open(root: &Path, split: &str) -> Result<(Self, ScanReport)> {
        Self::open_with(root, split, LabelUse::Require)
    }

    /// Opens `split` of `root`, loading labels per `labels`.
    pub fn open_with(root: &Path, split: &str, labels: LabelUse) -> Result<(Self, ScanReport)> {
        let split = DatasetKind::Bdd100k.resolve_split(Some(split))?.unwrap_or_default();
        let mut report = ScanReport::default();
        let layout = FlatLayout {
            images: root.join("images").join("10k").join(&split),
            image_exts: &["jpg", "jpeg"],
            labels: root.join("labels").join("sem_seg").join("masks").join(&split),
            ignored_label_suffix: None,
            expected: EXPECTED,
        };
        let (entries, has_labels) = scan_flat(&layout, labels, &mut report)?;
        let format = LabelFormat {
            encoding: LabelEncoding::Index8,
            map: ValueMap::partial(identity(), train_id_values(), "a train id (0–18) or 255, as BDD100K masks hold"),
            size: SizePolicy::Error,
        };
        let files = PairedFiles {
            kind: DatasetKind::Bdd100k,
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

impl_paired_reader!(Bdd100k);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_fixtures::{write_gray8, write_image};
    use crate::sample::Dataset;

    #[test]
    fn masks_pass_through_and_other_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_image(&root.join("images/10k/val/7d2f7975-e0c1c5a7.jpg"), 4, 2);
        // Every documented value: 0..=18 and 255, over a few files.
        let ids: Vec<u8> = (0..19).chain([255]).collect();
        let mut names = Vec::new();
        for (k, chunk) in ids.chunks(8).enumerate() {
            let name = format!("0000f77c-{k}");
            write_image(&root.join(format!("images/10k/val/{name}.jpg")), chunk.len() as u32, 1);
            write_gray8(&root.join(format!("labels/sem_seg/masks/val/{name}.png")), chunk.len() as u32, 1, chunk);
            names.push(name);
        }
        write_gray8(&root.join("labels/sem_seg/masks/val/7d2f7975-e0c1c5a7.png"), 4, 2, &[0, 1, 2, 3, 4, 5, 19, 7]);
        let (ds, report) = Bdd100k::open(root, "val").unwrap();
        assert!(report.is_empty(), "{report}");
        assert_eq!(ds.len(), 4);
        let expected: [&[u8]; 3] = [&[0, 1, 2, 3, 4, 5, 6, 7], &[8, 9, 10, 11, 12, 13, 14, 15], &[16, 17, 18, 255]];
        for (k, want) in expected.iter().enumerate() {
            assert_eq!(ds.name(k), names[k]);
            assert_eq!(&ds.get(k).unwrap().label.unwrap().into_raw(), want);
        }
        let err = ds.get(3).unwrap_err().to_string();
        assert!(err.contains("7d2f7975-e0c1c5a7.png: label value 19 at pixel (2, 1) is not a train id (0–18) or 255"), "{err}");
    }

    #[test]
    fn missing_split_folder_names_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let err = Bdd100k::open(dir.path(), "val").unwrap_err().to_string();
        assert!(err.contains("10k/val: folder not found") && err.contains("labels/sem_seg/masks/<split>"), "{err}");
    }
}
