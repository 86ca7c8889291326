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
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::nets::conv_bn::ConvSpec;
use crate::nets::host_init::{drawn, Draw};
use crate::ops::conv::{conv2d_forward, gemm_geometry, uses_conv_rewrites};
use crate::ops::conv_gemm::patchify_tokens;
use crate::ops::depthwise::depthwise_geometry;
use crate::ops::layer_norm::LayerNorm;
use crate::ops::token_linear::linear_tokens;
use crate::precision::in_f32;

fn default_mlp_ratio() -> usize {
    4
}
fn default_patch_sizes() -> [usize; 4] {
    [7, 3, 3, 3]
}
fn default_strides() -> [usize; 4] {
    [4, 2, 2, 2]
}
fn default_in_channels() -> usize {
    3
}
fn default_drop_path_rate() -> f64 {
    0.1
}

/// Mix Transformer configuration. [`MitConfig::b`] gives the published B0…B5 variants.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MitConfig {
    /// Channel width C_i of each stage (B0: `[32, 64, 160, 256]`, B1–B5: `[64, 128, 320, 512]`).
    pub embed_dims: [usize; 4],
    /// Number of transformer blocks in each stage.
    pub depths: [usize; 4],
    /// Attention heads of each stage; must divide the stage's width.
    pub num_heads: [usize; 4],
    /// Spatial-reduction ratio R_i of the keys and values of each stage (a `R×R`, stride-`R`
    /// convolution shrinks the key/value map by R² when R > 1).
    pub sr_ratios: [usize; 4],
    /// Hidden width of the Mix-FFN as a multiple of the stage width (4).
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: usize,
    /// Kernel size of each stage's overlapping patch embedding (`[7, 3, 3, 3]`); its padding is
    /// `patch / 2`.
    #[serde(default = "default_patch_sizes")]
    pub patch_sizes: [usize; 4],
    /// Stride of each stage's patch embedding (`[4, 2, 2, 2]`: outputs at 1/4, 1/8, 1/16, 1/32).
    #[serde(default = "default_strides")]
    pub strides: [usize; 4],
    /// Input image channels (3).
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    /// Stochastic-depth rate of the last block (0.1, as the original `mit_b*` classes); block
    /// `k` of `K` drops its residual branches with probability `rate·k/(K−1)` during training
    /// (when the backend records gradients), never at inference.
    #[serde(default = "default_drop_path_rate")]
    pub drop_path_rate: f64,
}

impl MitConfig {
    /// The MiT-B`n` encoder (n = 0…5) of the SegFormer paper, with the original classes'
    /// settings (4× MLP ratio, patch sizes `[7, 3, 3, 3]`, strides `[4, 2, 2, 2]`, heads
    /// `[1, 2, 5, 8]`, reduction ratios `[8, 4, 2, 1]`, drop-path rate 0.1).
    pub fn b(n: usize) -> Result<Self> {
        let (embed_dims, depths) = match n {
            0 => ([32, 64, 160, 256], [2, 2, 2, 2]),
            1 => ([64, 128, 320, 512], [2, 2, 2, 2]),
            2 => ([64, 128, 320, 512], [3, 4, 6, 3]),
            3 => ([64, 128, 320, 512], [3, 4, 18, 3]),
            4 => ([64, 128, 320, 512], [3, 8, 27, 3]),
            5 => ([64, 128, 320, 512], [3, 6, 40, 3]),
            _ => return Err(ModelError::Config(format!("model.backbone: MiT-B{n} does not exist; the variants are B0 to B5"))),
        };
        Ok(Self {
            embed_dims,
            depths,
            num_heads: [1, 2, 5, 8],
            sr_ratios: [8, 4, 2, 1],
            mlp_ratio: default_mlp_ratio(),
            patch_sizes: default_patch_sizes(),
            strides: default_strides(),
            in_channels: default_in_channels(),
            drop_path_rate: default_drop_path_rate(),
        })
    }

    /// Channels of the four stage outputs (the stage widths).
    pub fn out_channels(&self) -> [usize; 4] {
        self.embed_dims
    }

    /// The smallest input side whose every stage keeps at least one token after its spatial
    /// reduction (a convolution with kernel and stride `sr_ratio`): 29 for the SegFormer
    /// encoders (8 tokens at stage 1). Smaller inputs leave no keys to attend to.
    pub fn min_input_side(&self) -> usize {
        let fits = |side: usize| {
            let mut h = side;
            (0..4).all(|i| {
                let (k, s) = (self.patch_sizes[i], self.strides[i]);
                // The patch embedding pads by k / 2 on each side.
                h = match (h + 2 * (k / 2)).checked_sub(k) {
                    Some(room) => room / s + 1,
                    None => return false,
                };
                h >= self.sr_ratios[i]
            })
        };
        (1..=4096).find(|&side| fits(side)).unwrap_or(4096)
    }

    /// Checks that the network can be built, naming the setting at fault.
    pub fn validate(&self) -> Result<()> {
        let err = |msg: String| Err(ModelError::Config(format!("model.backbone.{msg}")));
        for i in 0..4 {
            let (dim, heads) = (self.embed_dims[i], self.num_heads[i]);
            if dim == 0 {
                return err(format!("embed_dims[{i}] must be positive"));
            }
            if heads == 0 {
                return err(format!("num_heads[{i}] must be positive"));
            }
            if dim % heads != 0 {
                return err(format!("embed_dims[{i}] = {dim} is not divisible by num_heads[{i}] = {heads}"));
            }
            if self.sr_ratios[i] == 0 {
                return err(format!("sr_ratios[{i}] must be positive (1 disables the spatial reduction)"));
            }
            if self.patch_sizes[i] == 0 {
                return err(format!("patch_sizes[{i}] must be positive"));
            }
            if self.strides[i] == 0 {
                return err(format!("strides[{i}] must be positive"));
            }
        }
        if self.mlp_ratio == 0 {
            return err("mlp_ratio must be positive".into());
        }
        if self.in_channels == 0 {
            return err("in_channels must be positive".into());
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return err(format!("drop_path_rate = {} must be in [0, 1)", self.drop_path_rate));
        }
        Ok(())
    }

    /// Builds the encoder with the original initialisation (linear weights N(0, 0.02²), conv
    /// weights N(0, 2/fan_out), biases 0, LayerNorms 1/0).
    ///
    /// # Panics
    /// On a configuration that [`validate`](Self::validate) rejects.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MixTransformer<B> {
        // Stochastic depth grows linearly over all blocks of all stages (`torch.linspace(0,
        // drop_path_rate, sum(depths))` in the original).
        let total: usize = self.depths.iter().sum();
        let drop_prob = |k: usize| {
            if total > 1 {
                self.drop_path_rate * k as f64 / (total - 1) as f64
            } else {
                0.0
            }
        };
        let mut block_index = 0;
        let mut in_channels = self.in_channels;
        let stages = (0..4)
            .map(|i| {
                let dim = self.embed_dims[i];
                let patch_embed = OverlapPatchEmbed::new(in_channels, dim, self.patch_sizes[i], self.strides[i], device);
                let blocks = (0..self.depths[i])
                    .map(|_| {
                        let p = drop_prob(block_index);
                        block_index += 1;
                        MitBlock::new(dim, self.num_heads[i], self.sr_ratios[i], self.mlp_ratio, p, device)
                    })
                    .collect();
                in_channels = dim;
                MitStage { patch_embed, blocks, norm: layer_norm(dim, 1e-6, device) }
            })
            .collect();
        MixTransformer { stages }
    }
}

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

/// Stochastic depth (timm's `DropPath`): during training each sample's residual branch
/// `x: [N, L, C]` is zeroed with probability `prob` and otherwise scaled by `1/(1 − prob)`.
/// Identity when the backend records no gradients (inference, EMA teachers on the inner
/// backend) or when `prob` is 0.
#[cfg(test)]
fn drop_path<B: Backend>(x: Tensor<B, 3>, prob: f64) -> Tensor<B, 3> {
    let [n, _, _] = x.dims();
    let mask = drop_mask::<B>(n, prob, B::ad_enabled(&x.device()), &x.device(), x.dtype());
    apply_drop(x, prob, mask.as_ref())
}

/// A stochastic-depth mask `[N, 1, 1]`: one Bernoulli(1 − `prob`) draw per sample, in `dtype`;
/// None (keep everything) when not `training` or when `prob` is 0.
fn drop_mask<B: Backend>(n: usize, prob: f64, training: bool, device: &B::Device, dtype: burn::tensor::DType) -> Option<Tensor<B, 3>> {
    (training && prob > 0.0).then(|| super::masks::bernoulli_mask::<B, 3>([n, 1, 1], 1.0 - prob, device, dtype))
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

/// Multi-head self-attention whose keys and values come from a map shrunk by a `R×R`,
/// stride-`R` convolution (+ LayerNorm) when R > 1: `softmax(q·kᵀ/√d)·v` per head, `d = C/heads`.
#[derive(Module, Debug)]
pub struct EfficientAttention<B: Backend> {
    /// Queries, `C → C` (biased).
    pub q: Linear<B>,
    /// Keys and values, `C → 2C` (biased): outputs `0..C` are the keys, `C..2C` the values,
    /// each laid out as `[heads, d]`.
    pub kv: Linear<B>,
    /// Output projection, `C → C`.
    pub proj: Linear<B>,
    /// Spatial reduction: `R×R` convolution with stride R (biased), only when R > 1.
    pub sr: Option<Conv2d<B>>,
    /// LayerNorm (ε 1e-5) of the reduced tokens, only when R > 1.
    pub norm: Option<LayerNorm<B>>,
    num_heads: usize,
}

impl<B: Backend> EfficientAttention<B> {
    /// Attention of width `dim` with `heads` heads and reduction ratio `sr_ratio` (1: none).
    /// `dim` must be divisible by `heads`.
    pub fn new(dim: usize, heads: usize, sr_ratio: usize, device: &B::Device) -> Self {
        let (sr, norm) = if sr_ratio > 1 {
            let spec = ConvSpec::new(dim, dim, sr_ratio).stride(sr_ratio).padding(0);
            (Some(mit_conv(spec, device)), Some(layer_norm(dim, 1e-5, device)))
        } else {
            (None, None)
        };
        Self {
            q: mit_linear(dim, dim, device),
            kv: mit_linear(dim, 2 * dim, device),
            proj: mit_linear(dim, dim, device),
            sr,
            norm,
            num_heads: heads,
        }
    }

    /// Number of attention heads.
    pub fn num_heads(&self) -> usize {
        self.num_heads
    }
}

impl<B: T2sBackend> EfficientAttention<B> {
    /// Tokens `[N, h·w, C]` of an `h×w` map → `[N, h·w, C]`.
    pub fn forward(&self, x: Tensor<B, 3>, h: usize, w: usize) -> Tensor<B, 3> {
        let [n, l, c] = x.dims();
        let heads = self.num_heads;
        let d = c / heads;
        // [N, L, C] → [N, L, heads, d] → [N, heads, L, d], made contiguous here (one copy; none
        // for one head) rather than by the matrix products that read it.
        let q = heads_first(linear_tokens(&self.q, x.clone()), heads);

        // Key/value source tokens [N, L', C]: L' = ⌊h/R⌋·⌊w/R⌋ with reduction, else L.
        let patchify = |sr: &Conv2d<B>| {
            let [kh, kw] = sr.kernel_size;
            gemm_geometry(sr).is_some_and(|g| g.is_patchify(kh, kw)) && uses_conv_rewrites::<B>(&x.device())
        };
        let source = match &self.sr {
            // CubeCL backends: the reduction on the tokens as they lie, channels-last
            // (`conv_gemm::patchify_tokens`), straight into the tokens [N, L', C].
            Some(sr) if patchify(sr) => {
                let reduced = patchify_tokens(x, h, w, sr.weight.val(), sr.bias.as_ref().map(|b| b.val()));
                match &self.norm {
                    Some(norm) => norm.forward(reduced),
                    None => reduced,
                }
            }
            Some(sr) => {
                // [N, L, C] → [N, C, L] → [N, C, h, w] → conv → [N, C, h/R, w/R]
                let map = conv2d_forward(sr, x.swap_dims(1, 2).reshape([n, c, h, w]));
                let [_, _, hr, wr] = map.dims();
                // [N, C, h/R, w/R] → [N, C, L'] → [N, L', C]
                let reduced = map.reshape([n, c, hr * wr]).swap_dims(1, 2);
                match &self.norm {
                    Some(norm) => norm.forward(reduced),
                    None => reduced,
                }
            }
            None => x,
        };
        let [_, lk, _] = source.dims();
        // [N, L', 2C]: the original reshapes to [N, L', 2, heads, d], so the first C outputs
        // are the keys and the next C the values.
        let kv = linear_tokens(&self.kv, source);
        // [N, L', 2C] → [N, L', 2, heads, d] → [2, N, heads, L', d] in one copy, of which the keys
        // and the values are the two contiguous halves (no copy each).
        let kv = kv.reshape([n, lk, 2, heads, d]).permute([2, 0, 3, 1, 4]).reshape([2 * n * heads * lk, d]);
        let k = kv.clone().narrow(0, 0, n * heads * lk).reshape([n, heads, lk, d]);
        let v = kv.narrow(0, n * heads * lk, n * heads * lk).reshape([n, heads, lk, d]);

        // [N, heads, L, L'], scaled after the product as the original (`(q @ kᵀ) * scale`).
        let scale = (d as f64).powf(-0.5);
        // The softmax in f32, as autocast runs it (`crate::precision`).
        let attn = in_f32(q.matmul(k.swap_dims(2, 3)).mul_scalar(scale), B::softmax_last_dim);
        // [N, heads, L, d] → [N, L, heads, d] → [N, L, C] (a copy, none for one head)
        let out = attn.matmul(v);
        let out = if heads == 1 { out.reshape([n, l, c]) } else { out.swap_dims(1, 2).reshape([n, l, c]) };
        linear_tokens(&self.proj, out)
    }
}

/// Tokens `[N, L, heads·d]` → the heads' queries `[N, heads, L, d]`, contiguous: a free reshape
/// for one head (MiT's first stage), else one copy.
fn heads_first<B: Backend>(x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
    let [n, l, c] = x.dims();
    let d = c / heads;
    if heads == 1 {
        return x.reshape([n, 1, l, d]);
    }
    x.reshape([n, l, heads, d]).permute([0, 2, 1, 3]).reshape([n * heads * l, d]).reshape([n, heads, l, d])
}

/// Mix-FFN: `fc2(GELU(dwconv(fc1(x))))`, where the 3×3 depth-wise convolution runs on the
/// token map and gives the encoder its positional information.
#[derive(Module, Debug)]
pub struct MixFfn<B: Backend> {
    /// `C → hidden` (biased).
    pub fc1: Linear<B>,
    /// 3×3 depth-wise convolution on the hidden map, padding 1, biased (original
    /// `mlp.dwconv.dwconv`).
    pub dwconv: Conv2d<B>,
    /// `hidden → C` (biased).
    pub fc2: Linear<B>,
}

impl<B: Backend> MixFfn<B> {
    /// A Mix-FFN `dim → hidden → dim`.
    pub fn new(dim: usize, hidden: usize, device: &B::Device) -> Self {
        let dw = ConvSpec::new(hidden, hidden, 3).padding(1).groups(hidden);
        Self { fc1: mit_linear(dim, hidden, device), dwconv: mit_conv(dw, device), fc2: mit_linear(hidden, dim, device) }
    }
}

impl<B: T2sBackend> MixFfn<B> {
    /// Tokens `[N, h·w, C]` of an `h×w` map → `[N, h·w, C]`.
    pub fn forward(&self, x: Tensor<B, 3>, h: usize, w: usize) -> Tensor<B, 3> {
        // [N, L, hidden]
        let x = linear_tokens(&self.fc1, x);
        let [n, l, hidden] = x.dims();
        let x = match depthwise_geometry(&self.dwconv).filter(|_| uses_conv_rewrites::<B>(&x.device())) {
            // CubeCL backends: the tokens are the map channels-last, [N, h, w, hidden], and the
            // depth-wise convolution runs on them as they lie (`T2sBackend::depthwise_conv2d_nhwc`).
            Some(geometry) => {
                let map = B::depthwise_conv2d_nhwc(x.reshape([n, h, w, hidden]), self.dwconv.weight.val(), geometry);
                let map = map.reshape([n, l, hidden]);
                match &self.dwconv.bias {
                    Some(b) => map + b.val().reshape([1, 1, hidden]),
                    None => map,
                }
            }
            // [N, L, hidden] → [N, hidden, L] → [N, hidden, h, w] → depth-wise conv (same size)
            // → [N, hidden, L] → [N, L, hidden]: the CPU's grouped convolution is channels-first.
            None => conv2d_forward(&self.dwconv, x.swap_dims(1, 2).reshape([n, hidden, h, w])).reshape([n, hidden, l]).swap_dims(1, 2),
        };
        // Exact (erf) GELU as PyTorch's `nn.GELU()`, with its exact derivative.
        linear_tokens(&self.fc2, B::gelu_exact(x))
    }
}

pub mod recompute;

#[cfg(test)]
pub(crate) mod tests;
