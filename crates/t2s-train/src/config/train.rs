//! `[train]`: how the training step computes (the method's settings are in `[uda]` and `[t2s]`).

use serde::{Deserialize, Serialize};
use t2s_model::Precision;

/// The numeric format of the networks' passes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// `f32` (default) or `bf16`: the student's, teacher's and ImageNet model's forward and
    /// backward passes in bf16, with f32 master weights, optimiser state, EMA blending,
    /// normalisation statistics, softmax and losses (`t2s_model::precision`). Needs a backend with
    /// bf16 arithmetic (CUDA, the CPU, wgpu adapters that have it).
    pub precision: Precision,
}
