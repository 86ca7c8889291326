//! Activation recomputation for the Mix Transformer, block by block (what
//! `torch.utils.checkpoint` around each block does in PyTorch), for training in less memory.
//!
//! [`MixTransformer::forward_taped`] runs the encoder off the autodiff graph, keeping only each
//! block's input tokens and stochastic-depth masks ([`MitTape`]), and hands back the four stage
//! outputs as fresh graph leaves for the decode head and the losses. After their backward pass,
//! [`MitTape::backward`] walks the encoder from its last segment to its first: it reruns each
//! segment (a stage's closing norm, a block, a patch embedding) with autodiff from its saved
//! input and calls `backward()` on `sum(output · g)`, `g` the gradient at the segment's output,
//! which gives the segment's parameter gradients and the gradient at its input, the next `g`.
//! Burn 0.21 cannot do this inside its own backward pass (docs/gpu.md, "Activation
//! recomputation"), hence the separate passes.

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;

use super::{BlockMasks, MixTransformer};
use crate::precision::{cast_to, compute_copy, draw_parameters, weight_dtype};
use crate::{Precision, T2sAutodiffBackend};

/// What the encoder's pass without graph keeps for its recomputation (inner backend).
#[derive(Debug)]
pub struct MitTape<B: Backend> {
    precision: Precision,
    stages: Vec<StageTape<B>>,
}

/// One stage's saved inputs.
#[derive(Debug)]
struct StageTape<B: Backend> {
    /// The stage's input `[N, C_in, H, W]` (the image for the first stage).
    input: Tensor<B, 4>,
    /// Each block's input tokens `[N, h·w, C]`, then the last block's output (the norm's input).
    tokens: Vec<Tensor<B, 3>>,
    /// Each block's stochastic-depth masks.
    masks: Vec<BlockMasks<B>>,
    h: usize,
    w: usize,
}

impl<B: T2sAutodiffBackend> MixTransformer<B> {
    /// The encoder's pass for training, recomputed in the backward pass: `[N, C_in, H, W]` →
    /// the four stage outputs `[N, C_i, H_i, W_i]` (as [`forward`](Self::forward)) as graph
    /// leaves, computing in `precision`, and the tape that [`MitTape::backward`] needs. Draws
    /// the stochastic-depth masks as the autodiff pass would, in the same order. The input's
    /// gradient is not computed (an image's).
    pub fn forward_taped(&self, x: Tensor<B, 4>, precision: Precision) -> (Vec<Tensor<B, 4>>, MitTape<B::InnerBackend>) {
        draw_parameters(self);
        let net = compute_copy(self.valid(), precision);
        let mut x = cast_to(x.inner(), weight_dtype(&net));
        let n = x.dims()[0];
        let (device, dtype) = (x.device(), x.dtype());
        let mut stages = Vec::with_capacity(net.stages.len());
        let mut features = Vec::with_capacity(net.stages.len());
        for stage in &net.stages {
            let input = x.clone();
            let (mut tokens, h, w) = stage.patch_embed.forward(x);
            let mut saved = Vec::with_capacity(stage.blocks.len() + 1);
            let mut masks = Vec::with_capacity(stage.blocks.len());
            for block in &stage.blocks {
                let m = block.draw_masks(n, true, &device, dtype);
                saved.push(tokens.clone());
                tokens = block.forward_masked(tokens, h, w, &m);
                masks.push(m);
            }
            saved.push(tokens.clone());
            x = stage.finish(tokens, h, w);
            features.push(x.clone());
            stages.push(StageTape { input, tokens: saved, masks, h, w });
        }
        let leaves = features.into_iter().map(|f| Tensor::<B, 4>::from_inner(f).require_grad()).collect();
        (leaves, MitTape { precision, stages })
    }
}

impl<I: Backend> MitTape<I> {
    /// The encoder's parameter gradients, from `outputs`, the gradients at the four stage outputs
    /// that [`MixTransformer::forward_taped`] gave (None: that output took no part in the loss;
    /// stage `i`'s output also feeds stage `i + 1`). Each segment's backward pass hands its
    /// gradients to `accumulate` (a segment's parameters are its own, so the sum over segments is
    /// the encoder's gradient; `net` is the network that made the tape, with its graph-tracked
    /// parameters).
    ///
    /// # Panics
    /// When `outputs` does not have one entry per stage.
    pub fn backward<B>(self, net: &MixTransformer<B>, mut outputs: Vec<Option<Tensor<I, 4>>>, mut accumulate: impl FnMut(B::Gradients))
    where
        B: T2sAutodiffBackend<InnerBackend = I>,
    {
        assert_eq!(outputs.len(), self.stages.len(), "one output gradient per stage");
        let precision = self.precision;
        // The gradient at stage i's output from stage i + 1's input.
        let mut carry: Option<Tensor<I, 4>> = None;
        for (i, tape) in self.stages.into_iter().enumerate().rev() {
            let g = match (outputs[i].take(), carry.take()) {
                (Some(a), Some(b)) => a + b,
                (a, b) => match a.or(b) {
                    Some(g) => g,
                    None => continue,
                },
            };
            let stage = &net.stages[i];
            let StageTape { input, mut tokens, masks, h, w } = tape;
            let [n, c, _, _] = g.dims();
            // The closing norm (f32 parameters at every precision, as `compute_copy` leaves
            // them): the map's gradient [N, C, h, w] as tokens [N, L, C].
            let g = g.reshape([n, c, h * w]).swap_dims(1, 2);
            let last = tokens.pop().expect("the last block's output");
            let mut g = segment(last, g, |t| stage.norm.forward(t), true, &mut accumulate).expect("an input gradient");
            for (j, (input, m)) in tokens.into_iter().zip(masks).enumerate().rev() {
                let block = compute_copy(stage.blocks[j].clone(), precision);
                let m = BlockMasks { attn: m.attn.map(Tensor::from_inner), mlp: m.mlp.map(Tensor::from_inner) };
                g = segment(input, g, |t| block.forward_masked(t, h, w, &m), true, &mut accumulate).expect("an input gradient");
            }
            // The patch embedding, from the stage's input map; its input's gradient goes to the
            // previous stage's output (none for the image).
            let embed = compute_copy(stage.patch_embed.clone(), precision);
            carry = segment(input, g, |x| embed.forward(x).0, i > 0, &mut accumulate);
        }
    }
}

/// One segment's backward pass: reruns `f` with autodiff on `input` (a leaf, tracked when
/// `want_input`) and differentiates `sum(f(input) · g)`; hands the parameter gradients to
/// `accumulate` and returns the input's gradient (when asked for).
fn segment<B: AutodiffBackend, const D: usize, const E: usize>(
    input: Tensor<B::InnerBackend, D>,
    g: Tensor<B::InnerBackend, E>,
    f: impl FnOnce(Tensor<B, D>) -> Tensor<B, E>,
    want_input: bool,
    accumulate: &mut impl FnMut(B::Gradients),
) -> Option<Tensor<B::InnerBackend, D>> {
    let leaf = Tensor::<B, D>::from_inner(input);
    let leaf = if want_input { leaf.require_grad() } else { leaf };
    let out = f(leaf.clone());
    let g = cast_to(g, out.dtype());
    let mut grads = (out * Tensor::from_inner(g)).sum().backward();
    let g_in = if want_input { leaf.grad_remove(&mut grads) } else { None };
    accumulate(grads);
    g_in
}

#[cfg(test)]
mod tests;
