//! The Mix Transformer encoder (MiT-B0…B5) of SegFormer, as in NVlabs' / mmseg's
//! `mix_transformer.py`: four stages, each an overlapping patch embedding (strided convolution
//! and LayerNorm), a stack of transformer blocks with spatial-reduction ("efficient") attention
//! and a Mix-FFN (MLP with a 3×3 depth-wise convolution in the middle), and a final LayerNorm.
//!
//! Parameter paths follow the original checkpoints after these renames (done by the loader):
//! `patch_embed{i}.` → `stages.{i-1}.patch_embed.`, `block{i}.` → `stages.{i-1}.blocks.`,
//! `norm{i}.` → `stages.{i-1}.norm.`, `mlp.dwconv.dwconv.` → `mlp.dwconv.`. The ImageNet
//! classifier (`head.*`) of the original is not part of the encoder.
//!
//! Tokens are `[N, L, C]` with `L = h·w` in row-major `(h, w)` order, as in the original
//! (`x.flatten(2).transpose(1, 2)`).

use crate::T2sBackend;

use burn::module::{Initializer, Module};
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{backend::Backend, Tensor};

use crate::nets::conv_bn::ConvSpec;
use crate::nets::host_init::{drawn, Draw};
use crate::ops::conv::conv2d_forward;
use crate::ops::layer_norm::LayerNorm;

/// A linear layer initialised as the original's `_init_weights` (trunc_normal std 0.02 with
/// cut-offs at ±2, i.e. effectively a plain normal; bias 0).
fn mit_linear<B: Backend>(d_in: usize, d_out: usize, device: &B::Device) -> Linear<B> {
    let mut linear = LinearConfig::new(d_in, d_out).init(device);
    // Parameters are initialised lazily, so replacing them allocates nothing twice. Burn's
    // weight is `[d_in, d_out]`.
    linear.weight = drawn([d_in, d_out], Draw::Normal(0.02), device);
    linear.bias = Some(Initializer::Zeros.init([d_out], device));
    linear
}

/// A biased convolution initialised as the original's `_init_weights`: N(0, 2/fan_out) with
/// fan_out = k²·C_out/groups, bias 0.
fn mit_conv<B: Backend>(spec: ConvSpec, device: &B::Device) -> Conv2d<B> {
    let mut conv = spec.bias(true).init(device);
    let fan_out = spec.kernel * spec.kernel * spec.out_channels / spec.groups;
    let std = (2.0 / fan_out as f64).sqrt();
    let shape = [spec.out_channels, spec.in_channels / spec.groups, spec.kernel, spec.kernel];
    conv.weight = drawn(shape, Draw::Normal(std), device);
    conv.bias = Some(Initializer::Zeros.init([spec.out_channels], device));
    conv
}

fn layer_norm<B: Backend>(dim: usize, eps: f64, device: &B::Device) -> LayerNorm<B> {
    LayerNorm::new(dim, eps, device)
}

/// The Mix Transformer encoder: four [`MitStage`]s.
#[derive(Module, Debug)]
pub struct MixTransformer<B: Backend> {
    /// Stages 1…4 (outputs at 1/4, 1/8, 1/16, 1/32 of the input with the default strides).
    pub stages: Vec<MitStage<B>>,
}

impl<B: T2sBackend> MixTransformer<B> {
    /// `[N, C_in, H, W]` → the four stage outputs `[N, C_i, H_i, W_i]`, where each stage's
    /// size follows its patch embedding: `H_i = ⌊(H_{i−1} + 2⌊p_i/2⌋ − p_i)/s_i⌋ + 1` (for the
    /// default odd patches, `⌈H_{i−1}/s_i⌉`: 1/4, 1/8, 1/16, 1/32).
    ///
    /// # Panics
    /// When a stage's map is smaller than its patch or its reduction ratio (inputs under 32×32
    /// pixels for the published variants).
    pub fn forward(&self, x: Tensor<B, 4>) -> Vec<Tensor<B, 4>> {
        let mut outs = Vec::with_capacity(self.stages.len());
        let mut x = x;
        for stage in &self.stages {
            x = stage.forward(x);
            outs.push(x.clone());
        }
        outs
    }
}

/// One encoder stage: patch embedding, transformer blocks, LayerNorm (ε 1e-6).
#[derive(Module, Debug)]
pub struct MitStage<B: Backend> {
    /// Downsampling overlapping patch embedding (original `patch_embed{i}`).
    pub patch_embed: OverlapPatchEmbed<B>,
    /// Transformer blocks (original `block{i}`).
    pub blocks: Vec<MitBlock<B>>,
    /// Final LayerNorm of the stage (original `norm{i}`, ε 1e-6).
    pub norm: LayerNorm<B>,
}

impl<B: T2sBackend> MitStage<B> {
    /// `[N, C_in, H, W]` → `[N, C, h, w]` (h, w: the patch embedding's output size).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        // [N, L, C] tokens with L = h·w.
        let (mut tokens, h, w) = self.patch_embed.forward(x);
        for block in &self.blocks {
            tokens = block.forward(tokens, h, w);
        }
        self.finish(tokens, h, w)
    }

    /// The stage's closing LayerNorm on its last block's tokens `[N, h·w, C]` → `[N, C, h, w]`.
    pub fn finish(&self, tokens: Tensor<B, 3>, h: usize, w: usize) -> Tensor<B, 4> {
        let tokens = self.norm.forward(tokens);
        let [n, _, c] = tokens.dims();
        // [N, L, C] → [N, C, L] → [N, C, h, w] (the original's reshape(B, H, W, C).permute).
        tokens.swap_dims(1, 2).reshape([n, c, h, w])
    }
}

/// Overlapping patch embedding: a `p×p` convolution with stride `s` and padding `p/2`, then a
/// LayerNorm (ε 1e-5) over the channels of each token.
#[derive(Module, Debug)]
pub struct OverlapPatchEmbed<B: Backend> {
    /// The strided, biased convolution `C_in → C`.
    pub proj: Conv2d<B>,
    /// LayerNorm (ε 1e-5, PyTorch's default, as the original).
    pub norm: LayerNorm<B>,
}

impl<B: Backend> OverlapPatchEmbed<B> {
    /// A `patch×patch` embedding with the given stride and padding `patch/2`.
    pub fn new(in_channels: usize, dim: usize, patch: usize, stride: usize, device: &B::Device) -> Self {
        let spec = ConvSpec::new(in_channels, dim, patch).stride(stride).padding(patch / 2);
        Self { proj: mit_conv(spec, device), norm: layer_norm(dim, 1e-5, device) }
    }
}

impl<B: T2sBackend> OverlapPatchEmbed<B> {
    /// `[N, C_in, H, W]` → (tokens `[N, h·w, C]`, h, w) with
    /// `h = ⌊(H + 2⌊p/2⌋ − p)/s⌋ + 1` (likewise w).
    pub fn forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 3>, usize, usize) {
        // [N, C, h, w]
        let x = conv2d_forward(&self.proj, x);
        let [n, c, h, w] = x.dims();
        // [N, C, h, w] → [N, C, L] → [N, L, C]
        let tokens = x.reshape([n, c, h * w]).swap_dims(1, 2);
        (self.norm.forward(tokens), h, w)
    }
}

mod attention;
mod block;
mod config;
mod mix_ffn;
pub mod recompute;

pub use attention::EfficientAttention;
pub use block::{BlockMasks, MitBlock};
pub use config::MitConfig;
pub use mix_ffn::MixFfn;

#[cfg(test)]
pub(crate) mod tests;
