//! A MiT transformer block and its stochastic depth (timm's `DropPath`).

use burn::module::Module;
use burn::tensor::{backend::Backend, Tensor};

use super::{layer_norm, EfficientAttention, MixFfn};
use crate::ops::layer_norm::LayerNorm;
use crate::T2sBackend;

/// Stochastic depth (timm's `DropPath`): during training each sample's residual branch
/// `x: [N, L, C]` is zeroed with probability `prob` and otherwise scaled by `1/(1 − prob)`.
/// Identity when the backend records no gradients (inference, EMA teachers on the inner
/// backend) or when `prob` is 0.
#[cfg(test)]
pub(super) fn drop_path<B: Backend>(x: Tensor<B, 3>, prob: f64) -> Tensor<B, 3> {
    let [n, _, _] = x.dims();
    let mask = drop_mask::<B>(n, prob, B::ad_enabled(&x.device()), &x.device(), x.dtype());
    apply_drop(x, prob, mask.as_ref())
}

/// A stochastic-depth mask `[N, 1, 1]`: one Bernoulli(1 − `prob`) draw per sample, in `dtype`;
/// None (keep everything) when not `training` or when `prob` is 0.
fn drop_mask<B: Backend>(n: usize, prob: f64, training: bool, device: &B::Device, dtype: burn::tensor::DType) -> Option<Tensor<B, 3>> {
    (training && prob > 0.0).then(|| crate::nets::masks::bernoulli_mask::<B, 3>([n, 1, 1], 1.0 - prob, device, dtype))
}

/// A residual branch `x: [N, L, C]` under its stochastic-depth `mask` ([`drop_mask`]): zeroed
/// where the mask is 0, scaled by `1/(1 − prob)` elsewhere; unchanged without a mask.
fn apply_drop<B: Backend>(x: Tensor<B, 3>, prob: f64, mask: Option<&Tensor<B, 3>>) -> Tensor<B, 3> {
    match mask {
        Some(mask) => x.div_scalar(1.0 - prob) * mask.clone(),
        None => x,
    }
}

/// A block's two stochastic-depth masks (attention branch, Mix-FFN branch), drawn before its
/// pass so that a recomputation (`recompute`) reruns it with the same ones.
#[derive(Debug, Clone)]
pub struct BlockMasks<B: Backend> {
    /// The attention branch's mask `[N, 1, 1]` (None: nothing dropped).
    pub attn: Option<Tensor<B, 3>>,
    /// The Mix-FFN branch's mask `[N, 1, 1]`.
    pub mlp: Option<Tensor<B, 3>>,
}

/// A transformer block: `x + attn(norm1(x))`, then `x + mlp(norm2(x))` (pre-norm residuals,
/// each branch under stochastic depth during training).
#[derive(Module, Debug)]
pub struct MitBlock<B: Backend> {
    /// LayerNorm before the attention (ε 1e-6).
    pub norm1: LayerNorm<B>,
    /// Spatial-reduction multi-head self-attention.
    pub attn: EfficientAttention<B>,
    /// LayerNorm before the Mix-FFN (ε 1e-6).
    pub norm2: LayerNorm<B>,
    /// The Mix-FFN.
    pub mlp: MixFfn<B>,
    /// Probability that a training sample skips this block's residual branches.
    pub drop_path: f64,
}

impl<B: Backend> MitBlock<B> {
    /// A block of width `dim` with `heads` heads, reduction ratio `sr_ratio`, MLP hidden width
    /// `mlp_ratio·dim` and stochastic-depth probability `drop_path`. `dim` must be divisible by
    /// `heads`.
    pub fn new(dim: usize, heads: usize, sr_ratio: usize, mlp_ratio: usize, drop_path: f64, device: &B::Device) -> Self {
        Self {
            norm1: layer_norm(dim, 1e-6, device),
            attn: EfficientAttention::new(dim, heads, sr_ratio, device),
            norm2: layer_norm(dim, 1e-6, device),
            mlp: MixFfn::new(dim, dim * mlp_ratio, device),
            drop_path,
        }
    }
}

impl<B: T2sBackend> MitBlock<B> {
    /// Tokens `[N, h·w, C]` of an `h×w` map → `[N, h·w, C]`, with stochastic depth when the
    /// backend records gradients.
    pub fn forward(&self, x: Tensor<B, 3>, h: usize, w: usize) -> Tensor<B, 3> {
        let training = B::ad_enabled(&x.device());
        let masks = self.draw_masks(x.dims()[0], training, &x.device(), x.dtype());
        self.forward_masked(x, h, w, &masks)
    }

    /// This block's stochastic-depth masks for `n` samples (none unless `training`), drawn in
    /// the order [`forward`](Self::forward) draws them.
    pub fn draw_masks(&self, n: usize, training: bool, device: &B::Device, dtype: burn::tensor::DType) -> BlockMasks<B> {
        let attn = drop_mask::<B>(n, self.drop_path, training, device, dtype);
        let mlp = drop_mask::<B>(n, self.drop_path, training, device, dtype);
        BlockMasks { attn, mlp }
    }

    /// [`forward`](Self::forward) with the given stochastic-depth masks.
    pub fn forward_masked(&self, x: Tensor<B, 3>, h: usize, w: usize, masks: &BlockMasks<B>) -> Tensor<B, 3> {
        let branch = self.attn.forward(self.norm1.forward(x.clone()), h, w);
        let x = x + apply_drop(branch, self.drop_path, masks.attn.as_ref());
        let branch = self.mlp.forward(self.norm2.forward(x.clone()), h, w);
        x + apply_drop(branch, self.drop_path, masks.mlp.as_ref())
    }
}
