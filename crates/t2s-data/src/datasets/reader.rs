//! `DatasetReader`: a `Dataset` read from files, which can also say which files a sample comes
//! from and what `get` had to repair – what `t2s prepare` needs to validate and cache.

use std::path::Path;

use super::options::DatasetKind;
use crate::error::Result;
use crate::sample::{Dataset, Sample};

/// The files one sample is decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleFiles<'a> {
    /// The RGB image.
    pub image: &'a Path,
    /// The label file, if the dataset has labels.
    pub label: Option<&'a Path>,
}

/// A decoded sample with what was repaired on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedSample {
    /// The sample exactly as `Dataset::get` returns it.
    pub sample: Sample,
    /// A sentence describing a repair (a label resized to its image), if any.
    pub repair: Option<String>,
}

/// A dataset read from files on disk. Every built-in reader implements it; a
/// `Box<dyn DatasetReader>` coerces to `Box<dyn Dataset>` where only samples are needed.
pub trait DatasetReader: Dataset {
    /// Which reader this is.
    fn kind(&self) -> DatasetKind;
    /// The dataset's root folder, as given.
    fn root(&self) -> &Path;
    /// The split read, for datasets that have splits.
    fn split(&self) -> Option<&str>;
    /// The files of sample `index` (`index < len()`).
    fn files(&self, index: usize) -> SampleFiles<'_>;
    /// A hash of how stored label values become train ids (and of the class list): cached class
    /// statistics are only valid for the same mapping.
    fn mapping_fingerprint(&self) -> u64;
    /// Decodes sample `index` like `get`, and says what was repaired.
    fn get_checked(&self, index: usize) -> Result<CheckedSample>;
}
