//! MiT's efficient self-attention: keys and values from a spatially reduced map.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::Linear;
use burn::tensor::{backend::Backend, Tensor};

use super::{layer_norm, mit_conv, mit_linear};
use crate::nets::conv_bn::ConvSpec;
use crate::ops::conv::{conv2d_forward, gemm_geometry, uses_conv_rewrites};
use crate::ops::conv_gemm::patchify_tokens;
use crate::ops::layer_norm::LayerNorm;
use crate::ops::token_linear::linear_tokens;
use crate::precision::in_f32;
use crate::T2sBackend;

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
