//! Which pixels the T2S loss looks at (method.md §4.5–4.7): class-balanced queries,
//! unreliable target pixels by entropy percentile, and domain-equalized negatives.
//!
//! Sampling runs on the host over per-pixel *scalars* (labels, entropies, top-3 class ids: a few
//! bytes per pixel), read back once per iteration; the embeddings themselves ([P, D] floats)
//! never leave the device: the samplers return index lists that the trainer uploads and uses
//! with `Tensor::select`. Every sampler takes the caller's random generator, so a seeded
//! generator makes the whole selection reproducible.

mod negatives;
mod queries;
mod unreliable;

pub use negatives::{sample_negatives, NegativeSample, TargetCandidate};
pub use queries::{allocate_queries, sample_queries, QuerySample};
pub use unreliable::{numpy_percentile, select_unreliable, unreliable_percent};
