//! A custom dataset in a folder: `images/` (PNG or JPEG), optionally `labels/*.png` matched by
//! file stem (8-bit grey or palette values), and a mapping file giving the class list and which
//! value means which class. Without a mapping file labels must already hold the 19 Cityscapes
//! train ids (and 255), and the label space is Cityscapes'.

use std::path::{Path, PathBuf};

use super::folder_mapping::FolderMapping;
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
const EXPECTED: &str = "<root>/images/<name>.png|.jpg, optionally <root>/labels/<name>.png (8-bit values) and a mapping \
                        file (--mapping, or <root>/mapping.toml)";

/// Name of the mapping file looked for in the root when none is given.
pub const DEFAULT_MAPPING_FILE: &str = "mapping.toml";

/// The custom folder dataset reader.
#[derive(Debug, Clone)]
pub struct FolderDataset {
    files: PairedFiles,
    mapping: Option<PathBuf>,
}

impl FolderDataset {
    /// Opens `root` with the mapping file `mapping` (or `<root>/mapping.toml` if it exists, or
    /// Cityscapes train ids without one), loading labels per `labels`.
    pub fn open(root: &Path, mapping: Option<&Path>, labels: LabelUse) -> Result<(Self, ScanReport)> {
        let mut report = ScanReport::default();
        let mapping_path = match mapping {
            Some(p) => Some(p.to_path_buf()),
            None => Some(root.join(DEFAULT_MAPPING_FILE)).filter(|p| p.is_file()),
        };
        let (space, map) = match &mapping_path {
            Some(path) => {
                let m = FolderMapping::load(path)?;
                (m.space.clone(), m.value_map())
            }
            None => {
                let allowed = "a Cityscapes train id (0–18) or 255 (give a mapping file for other label values)";
                (LabelSpace::cityscapes(), ValueMap::partial(identity(), train_id_values(), allowed))
            }
        };
        let layout = FlatLayout {
            images: root.join("images"),
            image_exts: &["png", "jpg", "jpeg"],
            labels: root.join("labels"),
            ignored_label_suffix: None,
            expected: EXPECTED,
        };
        let (entries, has_labels) = scan_flat(&layout, labels, &mut report)?;
        // Said only where labels are read: a target set's labels are ignored.
        if mapping_path.is_none() && has_labels {
            report.note("no mapping file: labels are read as Cityscapes train ids (0–18, 255 = ignore)");
        }
        let format = LabelFormat { encoding: LabelEncoding::Index8, map, size: SizePolicy::Error };
        let files = PairedFiles {
            kind: DatasetKind::Folder,
            root: root.to_path_buf(),
            split: None,
            entries,
            formats: vec![format],
            space,
            has_labels,
        };
        Ok((Self { files, mapping: mapping_path }, report))
    }

    /// The mapping file read, if any.
    pub fn mapping_file(&self) -> Option<&Path> {
        self.mapping.as_deref()
    }
}

impl_paired_reader!(FolderDataset);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_fixtures::{write_gray8, write_image, write_palette};
    use crate::sample::Dataset;

    const MAPPING: &str = "ignore = [0]\n\
        [[classes]]\nname = \"water\"\ncolor = [0, 0, 255]\nvalues = [10, 11]\n\
        [[classes]]\nname = \"land\"\ncolor = [0, 255, 0]\nvalues = [20]\n";

    #[test]
    fn mapping_file_gives_classes_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("mapping.toml"), MAPPING).unwrap();
        write_image(&root.join("images/shore.jpg"), 3, 1);
        write_palette(&root.join("labels/shore.png"), 3, 1, &[11, 20, 0]);
        write_image(&root.join("images/bay.png"), 2, 1);
        write_gray8(&root.join("labels/bay.png"), 2, 1, &[10, 12]);
        let (ds, report) = FolderDataset::open(root, None, LabelUse::Auto).unwrap();
        assert!(report.is_empty(), "{report}");
        assert_eq!(ds.label_space().names, ["water", "land"]);
        assert_eq!(ds.mapping_file(), Some(root.join("mapping.toml").as_path()));
        assert_eq!((ds.name(0), ds.name(1)), ("bay".to_string(), "shore".to_string()));
        assert_eq!(ds.get(1).unwrap().label.unwrap().into_raw(), [0, 1, 255]);
        let err = ds.get(0).unwrap_err().to_string();
        assert!(err.contains("labels/bay.png: label value 12 at pixel (1, 0) is not listed in") && err.contains("mapping.toml"), "{err}");
    }

    #[test]
    fn without_mapping_labels_are_cityscapes_train_ids() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_image(&root.join("images/a.png"), 2, 1);
        write_gray8(&root.join("labels/a.png"), 2, 1, &[18, 255]);
        write_image(&root.join("images/b.png"), 2, 1);
        let (ds, report) = FolderDataset::open(root, None, LabelUse::Auto).unwrap();
        assert_eq!(ds.len(), 1);
        assert_eq!(ds.label_space().len(), 19);
        assert_eq!(ds.get(0).unwrap().label.unwrap().into_raw(), [18, 255]);
        assert!(report.notes.iter().any(|n| n.contains("no mapping file")), "{report}");
        assert!(report.skipped[0].path.ends_with("images/b.png"), "{report}");
        // Labels ignored (a target set), or none there: nothing is said about reading them.
        let (ds, report) = FolderDataset::open(root, None, LabelUse::Ignore).unwrap();
        assert!(!ds.has_labels());
        assert!(!report.notes.iter().any(|n| n.contains("train ids")), "{report}");
    }

    #[test]
    fn unlabelled_folders_and_duplicate_stems() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_image(&root.join("images/a.png"), 2, 1);
        write_image(&root.join("images/a.jpg"), 2, 1);
        let (ds, report) = FolderDataset::open(root, None, LabelUse::Auto).unwrap();
        assert!(!ds.has_labels());
        assert!(!report.notes.iter().any(|n| n.contains("train ids")), "{report}");
        assert_eq!(ds.len(), 1);
        assert!(report.skipped[0].path.ends_with("images/a.png") && report.skipped[0].reason.contains("same name as"), "{report}");
        let err = FolderDataset::open(root, Some(&root.join("missing.toml")), LabelUse::Auto).unwrap_err().to_string();
        assert!(err.contains("missing.toml: No such file or directory"), "{err}");
    }
}
