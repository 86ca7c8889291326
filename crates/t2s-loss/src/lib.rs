//! Segmentation losses for t2s, generic over the Burn backend.
//!
//! The crate currently holds the pixel-wise segmentation cross-entropy
//! ([`cross_entropy()`]), matching mmsegmentation 0.16's `CrossEntropyLoss` as used by
//! DAFormer (ignore index, mean/sum reduction, optional non-ignored averaging, loss weight
//! and per-pixel confidence weights), together with a host-side label validator
//! ([`check_labels()`]). The T2S contrastive loss, its pixel sampling, class prototypes and
//! class re-weighting are planned additions and are not part of the crate yet.

pub mod cross_entropy;
pub mod error;

pub use cross_entropy::{check_labels, cross_entropy, CrossEntropyOptions, Reduction};
pub use error::LossError;
