//! Errors of the data crate; each names the file at fault and what to do.

use std::path::PathBuf;

/// Everything that can go wrong reading or writing data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder that does not exist.
    #[error("{path}: not found{hint}")]
    NotFound { path: PathBuf, hint: String },

    /// An image that cannot be decoded (corrupt, truncated or not an image).
    #[error("{path}: cannot decode image: {message}")]
    Decode { path: PathBuf, message: String },

    /// A file that cannot be written.
    #[error("{path}: cannot write: {message}")]
    Write { path: PathBuf, message: String },

    /// A dataset folder that is missing, empty or laid out differently than its reader expects.
    #[error("{path}: {problem}; expected layout: {expected}")]
    Layout { path: PathBuf, problem: String, expected: String },

    /// A label file in the wrong PNG format (colour type, bit depth, channel count).
    #[error("{path}: label is {found}; expected {expected}")]
    LabelFormat { path: PathBuf, found: String, expected: String },

    /// A label file holding a value its dataset's format does not define.
    #[error("{path}: label value {value} at pixel ({x}, {y}) is not {allowed}")]
    LabelValue { path: PathBuf, value: u16, x: u32, y: u32, allowed: String },

    /// An image and its label of different sizes, where the reader does not repair that.
    #[error("{label}: label is {label_w}×{label_h} but its image {image} is {image_w}×{image_h}; re-export the label at the image's size or remove the pair")]
    SizeMismatch { image: PathBuf, label: PathBuf, image_w: u32, image_h: u32, label_w: u32, label_h: u32 },

    /// A custom dataset's mapping file that cannot be read or is inconsistent.
    #[error("{path}: mapping file: {message} (see docs/datasets.md, \"Custom folder datasets\")")]
    Mapping { path: PathBuf, message: String },

    /// A class-statistics cache that cannot be read; `t2s prepare` rewrites it.
    #[error("{path}: class statistics: {message}; delete the file or rerun `t2s prepare`")]
    ClassStats { path: PathBuf, message: String },

    /// A dataset option that does not apply or has an unknown value.
    #[error("{setting}: {message}")]
    Setting { setting: String, message: String },

    /// Buffers or images whose sizes must agree and do not (FDA source and target, the samples
    /// of one batch, an image and its label in memory).
    #[error("size mismatch: {what}")]
    Shape { what: String },

    /// A batch or sample without the labels an operation needs (ClassMix's source batch).
    #[error("{what} has no labels")]
    Unlabelled { what: String },

    /// The batch loader's worker pool could not start or stopped unexpectedly.
    #[error("batch loader: {message}")]
    Loader { message: String },

    /// Other input/output failures.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, DataError>;
