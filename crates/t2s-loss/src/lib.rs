//! Segmentation losses for t2s, generic over the Burn backend.
//!
//! The crate currently holds the pixel-wise segmentation cross-entropy
//! ([`cross_entropy()`]), matching mmsegmentation 0.16's `CrossEntropyLoss` as used by
//! DAFormer (ignore index, mean/sum reduction, optional non-ignored averaging, loss weight
//! and per-pixel confidence weights), together with a host-side label validator
//! ([`check_labels()`]).
//!
//! For the T2S-DA additions (method.md §4) it holds the T2S contrastive loss
//! ([`t2s_contrastive_loss()`]: queries pulled to their class prototype against sampled
//! negative keys, per-class means combined with the dynamic class weights, §4.8) and the
//! majority-rule label downscaling that brings label maps to embedding resolution
//! ([`downscale_labels_majority()`], §4.3), the samplers of queries, unreliable target pixels
//! and domain-equalized negatives ([`sampling`], §4.5–4.7), the prototype bank
//! ([`PrototypeBank`], §4.4), the class statistics behind dynamic re-weighting
//! ([`ClassStatistics`], §4.9) and DAFormer's ImageNet feature distance ([`feature_distance()`]).

pub mod class_sums;
pub mod class_weights;
pub mod contrastive;
pub mod cross_entropy;
pub mod error;
pub mod feature_distance;
pub mod label_downscale;
pub mod pixel_stats;
pub mod prototypes;
pub mod sampling;

pub use class_sums::ClassSums;
pub use class_weights::{ClassStatistics, ReweightStatistic};
pub use contrastive::{t2s_contrastive_loss, t2s_contrastive_loss_tensor_ops};
pub use cross_entropy::{check_labels, cross_entropy, CrossEntropyOptions, Reduction};
pub use error::LossError;
pub use feature_distance::{class_mask, feature_distance, THING_CLASSES};
pub use label_downscale::downscale_labels_majority;
pub use prototypes::{PrototypeBank, PrototypeState};

#[cfg(test)]
mod test_util;
