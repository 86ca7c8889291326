//! Errors of the model crate.

use std::path::PathBuf;

/// Everything that can go wrong while building networks or loading their weights.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model configuration that cannot be built (names the setting at fault).
    #[error("invalid model configuration: {0}")]
    Config(String),

    /// A weight file that cannot be opened or parsed.
    #[error("cannot read weights from {path}: {message}")]
    WeightsRead { path: PathBuf, message: String },

    /// A weight file that was read but does not fit the model.
    #[error("weights in {path} do not fit the model ({arch}):\n{details}")]
    WeightsMismatch { path: PathBuf, arch: String, details: String },

    /// A weight file that could not be written.
    #[error("cannot write weights to {path}: {message}")]
    WeightsWrite { path: PathBuf, message: String },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;
