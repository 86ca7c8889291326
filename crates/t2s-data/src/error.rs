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
