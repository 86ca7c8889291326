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

    /// A combination of command-line inputs or settings that cannot work.
    #[error("{0}")]
    Usage(String),

    /// The summed loss of an iteration stopped being finite; nothing was saved after it.
    #[error(
        "the loss became {total} at iteration {iter}: {terms}; stopping without saving (last good checkpoint: {last_checkpoint}). \
         Lower optim.lr or check the data."
    )]
    Diverged {
        /// 1-based iteration whose loss was not finite.
        iter: usize,
        /// The summed loss.
        total: f64,
        /// Its named terms, as `[("loss_source", 2.9), …]`.
        terms: String,
        /// The newest checkpoint written before it, or "none yet".
        last_checkpoint: String,
    },

    /// A training loader that returned no batch (its worker pool stopped).
    #[error("the {set} loader ended before the run did")]
    LoaderExhausted {
        /// `source` or `target`.
        set: &'static str,
    },

    /// A collective operation of a data-parallel run failed or its peers stopped answering.
    #[error("{0}")]
    Replica(String),

    /// A state that the validated configuration rules out was reached: a bug in t2s.
    #[error("internal error (please report it): {0}")]
    Internal(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;
