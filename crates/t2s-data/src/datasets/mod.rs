//! Readers of the real datasets (GTA5, SYNTHIA, Cityscapes, BDD100K, Mapillary Vistas) and of
//! custom image folders, laid out as docs/datasets.md describes. Opening a dataset scans its
//! folders and reports what it leaves out; `get` decodes one sample and maps its label to train
//! ids through the dataset's lookup table (`mapping`).

mod bdd100k;
mod cityscapes;
mod folder;
mod folder_mapping;
mod gta5;
mod label_fit;
mod label_png;
mod mapillary;
pub mod mapping;
mod options;
mod paired_files;
mod reader;
mod scan;
mod scan_report;
mod synthia;
#[cfg(test)]
pub(crate) mod test_fixtures;

use std::path::Path;

pub use bdd100k::Bdd100k;
pub use cityscapes::Cityscapes;
pub use folder::{FolderDataset, DEFAULT_MAPPING_FILE};
pub use folder_mapping::{FolderMapping, UnknownValues};
pub use gta5::Gta5;
pub use label_fit::{resize_nearest_centred, SizePolicy};
pub use label_png::{read_label_png, LabelEncoding, RawLabel};
pub use mapillary::Mapillary;
pub use options::{DatasetKind, DatasetOptions, LabelUse};
pub use reader::{CheckedSample, DatasetReader, SampleFiles};
pub use scan_report::{ScanReport, Skipped};
pub use synthia::Synthia;

use crate::error::{DataError, Result};

/// Opens the dataset of `kind` at `root`. `options.split` picks the split (default: the first of
/// `kind.splits()`), `options.labels` whether labels are loaded and `options.mapping` a folder
/// dataset's mapping file; a split or mapping a kind does not have is an error. The box coerces
/// to `Box<dyn Dataset>` where only samples are needed.
pub fn open_dataset(kind: DatasetKind, root: &Path, options: &DatasetOptions) -> Result<(Box<dyn DatasetReader>, ScanReport)> {
    if options.mapping.is_some() && kind != DatasetKind::Folder {
        return Err(DataError::Setting {
            setting: "mapping".into(),
            message: format!("only the folder dataset takes a mapping file; {kind} has a fixed one"),
        });
    }
    let split = kind.resolve_split(options.split.as_deref())?.unwrap_or_default();
    let labels = options.labels;
    fn boxed<T: DatasetReader + 'static>(r: Result<(T, ScanReport)>) -> Result<(Box<dyn DatasetReader>, ScanReport)> {
        r.map(|(d, report)| (Box::new(d) as Box<dyn DatasetReader>, report))
    }
    match kind {
        DatasetKind::Gta5 => boxed(Gta5::open_with(root, labels)),
        DatasetKind::Synthia => boxed(Synthia::open_with(root, labels)),
        DatasetKind::Cityscapes => boxed(Cityscapes::open_with(root, &split, labels)),
        DatasetKind::Bdd100k => boxed(Bdd100k::open_with(root, &split, labels)),
        DatasetKind::Mapillary => boxed(Mapillary::open_with(root, &split, labels)),
        DatasetKind::Folder => boxed(FolderDataset::open(root, options.mapping.as_deref(), labels)),
    }
}

#[cfg(test)]
mod tests {
    use super::test_fixtures::{write_image, write_palette};
    use super::*;
    use crate::sample::Dataset;

    #[test]
    fn open_dataset_dispatches_and_checks_options() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write_image(&root.join("images/00001.png"), 2, 1);
        write_palette(&root.join("labels/00001.png"), 2, 1, &[7, 26]);
        let (ds, _) = open_dataset(DatasetKind::Gta5, root, &DatasetOptions::default()).unwrap();
        assert_eq!((ds.kind(), ds.split(), ds.root()), (DatasetKind::Gta5, None, root));
        let files = ds.files(0);
        assert!(files.image.ends_with("images/00001.png") && files.label.unwrap().ends_with("labels/00001.png"));
        let plain: Box<dyn Dataset> = ds;
        assert_eq!(plain.get(0).unwrap().label.unwrap().into_raw(), [0, 13]);

        let opts = DatasetOptions { mapping: Some("m.toml".into()), ..Default::default() };
        let err = open_dataset(DatasetKind::Gta5, root, &opts).err().unwrap().to_string();
        assert!(err.contains("only the folder dataset takes a mapping file"), "{err}");
        let opts = DatasetOptions { split: Some("val".into()), ..Default::default() };
        let err = open_dataset(DatasetKind::Gta5, root, &opts).err().unwrap().to_string();
        assert!(err.contains("gta5 has no splits"), "{err}");
        let opts = DatasetOptions { labels: LabelUse::Ignore, ..Default::default() };
        let (ds, _) = open_dataset(DatasetKind::Folder, root, &opts).unwrap();
        assert!(!ds.has_labels());
    }
}
