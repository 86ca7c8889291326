//! The part every file-based reader shares: a list of (image, label) files and how to turn a
//! label file into train ids. The per-dataset files only find the files and choose the format.

use std::path::{Path, PathBuf};

use image::GrayImage;

use super::label_fit::{fit_label, SizePolicy};
use super::label_png::{read_label_png, LabelEncoding, RawLabel};
use super::mapping::{Fnv1a, ValueMap};
use super::options::DatasetKind;
use super::reader::{CheckedSample, SampleFiles};
use crate::error::{DataError, Result};
use crate::image_io::read_rgb;
use crate::label_space::LabelSpace;
use crate::sample::Sample;

/// One sample's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SampleEntry {
    /// The sample name (file stem, without dataset suffixes such as `_leftImg8bit`).
    pub name: String,
    /// The RGB image.
    pub image: PathBuf,
    /// The label file and the index of its format in `PairedFiles::formats`.
    pub label: Option<(PathBuf, usize)>,
}

/// How a label file is stored and mapped to train ids.
#[derive(Debug, Clone)]
pub(crate) struct LabelFormat {
    /// PNG layout of the stored values.
    pub encoding: LabelEncoding,
    /// Stored value → train id.
    pub map: ValueMap,
    /// What to do when the label's size differs from its image's.
    pub size: SizePolicy,
}

/// A scanned file-based dataset: what every reader struct holds.
#[derive(Debug, Clone)]
pub(crate) struct PairedFiles {
    pub kind: DatasetKind,
    pub root: PathBuf,
    pub split: Option<String>,
    pub entries: Vec<SampleEntry>,
    /// Label formats the entries refer to (Cityscapes has two: labelIds and labelTrainIds).
    pub formats: Vec<LabelFormat>,
    pub space: LabelSpace,
    pub has_labels: bool,
}

impl PairedFiles {
    /// The files of entry `index`.
    pub fn files(&self, index: usize) -> SampleFiles<'_> {
        let e = &self.entries[index];
        SampleFiles { image: &e.image, label: e.label.as_ref().map(|(p, _)| p.as_path()) }
    }

    /// Decodes entry `index`: the image, and the label mapped to train ids and fitted to the
    /// image's size by the format's policy.
    pub fn load(&self, index: usize) -> Result<CheckedSample> {
        let entry = self.entries.get(index).ok_or_else(|| DataError::Setting {
            setting: format!("sample index {index}"),
            message: format!("the dataset has {} samples", self.entries.len()),
        })?;
        let image = read_rgb(&entry.image)?;
        let (label, repair) = match &entry.label {
            None => (None, None),
            Some((path, format)) => {
                let format = &self.formats[*format];
                let raw = read_label_png(path, format.encoding)?;
                let ids = map_values(&raw, &format.map, path)?;
                let (fitted, repair) = fit_label(ids, image.dimensions(), format.size, &entry.image, path)?;
                (Some(fitted), repair)
            }
        };
        Ok(CheckedSample { sample: Sample { name: entry.name.clone(), image, label }, repair })
    }

    /// Hash of the label formats, size policies and class list.
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv1a::new();
        for f in &self.formats {
            h.write(&f.map.fingerprint().to_le_bytes());
            h.write(&[f.encoding as u8, f.size as u8]);
        }
        for name in &self.space.names {
            h.write(name.as_bytes());
            h.write(&[0]);
        }
        h.finish()
    }
}

/// Stored values → train ids through `map`; a value the format does not define is an error
/// naming the file, the value and its first pixel.
pub(crate) fn map_values(raw: &RawLabel, map: &ValueMap, path: &Path) -> Result<GrayImage> {
    let mut ids = Vec::with_capacity(raw.values.len());
    for (i, &v) in raw.values.iter().enumerate() {
        match map.get(v) {
            Some(id) => ids.push(id),
            None => {
                let w = raw.width.max(1) as usize;
                return Err(DataError::LabelValue {
                    path: path.to_path_buf(),
                    value: v,
                    x: (i % w) as u32,
                    y: (i / w) as u32,
                    allowed: map.allowed().to_string(),
                });
            }
        }
    }
    GrayImage::from_raw(raw.width, raw.height, ids)
        .ok_or_else(|| DataError::Decode { path: path.to_path_buf(), message: "pixel count does not match the size".into() })
}

/// Implements `Dataset` and `DatasetReader` for a reader struct with a `files: PairedFiles` field.
macro_rules! impl_paired_reader {
    ($t:ty) => {
        impl $crate::sample::Dataset for $t {
            fn len(&self) -> usize {
                self.files.entries.len()
            }
            fn name(&self, index: usize) -> String {
                self.files.entries[index].name.clone()
            }
            fn get(&self, index: usize) -> $crate::error::Result<$crate::sample::Sample> {
                self.files.load(index).map(|c| c.sample)
            }
            fn label_space(&self) -> &$crate::label_space::LabelSpace {
                &self.files.space
            }
            fn has_labels(&self) -> bool {
                self.files.has_labels
            }
        }

        impl $crate::datasets::DatasetReader for $t {
            fn kind(&self) -> $crate::datasets::DatasetKind {
                self.files.kind
            }
            fn root(&self) -> &std::path::Path {
                &self.files.root
            }
            fn split(&self) -> Option<&str> {
                self.files.split.as_deref()
            }
            fn files(&self, index: usize) -> $crate::datasets::SampleFiles<'_> {
                self.files.files(index)
            }
            fn mapping_fingerprint(&self) -> u64 {
                self.files.fingerprint()
            }
            fn get_checked(&self, index: usize) -> $crate::error::Result<$crate::datasets::CheckedSample> {
                self.files.load(index)
            }
        }
    };
}
pub(crate) use impl_paired_reader;
