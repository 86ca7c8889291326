//! `[train]`: how the training step computes (the method's settings are in `[uda]` and `[t2s]`).

use serde::{Deserialize, Serialize};
use t2s_model::Precision;

/// The numeric format of the networks' passes, and what the student's backward pass recomputes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// `f32` (default) or `bf16`: the student's, teacher's and ImageNet model's forward and
    /// backward passes in bf16, with f32 master weights, optimiser state, EMA blending,
    /// normalisation statistics, softmax and losses (`t2s_model::precision`). Needs a backend with
    /// bf16 arithmetic: CUDA and the CPU (wgpu's WGSL shaders have no bf16 type).
    pub precision: Precision,
    /// `none` (default) or `blocks`: see [`Recompute`] (memory against compute).
    pub recompute: Recompute,
}

/// Activation recomputation of the student's encoder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recompute {
    /// Every activation of the student's pass is kept for its backward pass.
    #[default]
    None,
    /// The MiT encoder keeps only each transformer block's input and reruns the block in the
    /// backward pass, as `torch.utils.checkpoint` around each block does: the encoder's
    /// activations shrink to one block's at a time plus the block inputs, for one more forward
    /// pass of the encoder (docs/gpu.md, "Activation recomputation"). The gradients are the same
    /// (stochastic depth reuses its masks). Needs a MiT backbone.
    Blocks,
}
