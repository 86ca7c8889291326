//! Errors of the training crate.

use std::path::PathBuf;

/// Everything that can go wrong wiring models and data.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] t2s_model::ModelError),

    #[error(transparent)]
    Data(#[from] t2s_data::DataError),

    /// A configuration file that cannot be read or parsed.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    /// A file that cannot be written or read.
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },

    /// A combination of command-line inputs that cannot work.
    #[error("{0}")]
    Usage(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;
