//! MiT's Mix-FFN: an MLP with a 3×3 depth-wise convolution on the token map.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::Linear;
use burn::tensor::{backend::Backend, Tensor};

use super::{mit_conv, mit_linear};
use crate::nets::conv_bn::ConvSpec;
use crate::ops::conv::{conv2d_forward, uses_conv_rewrites};
use crate::ops::depthwise::depthwise_geometry;
use crate::ops::token_linear::linear_tokens;
use crate::T2sBackend;

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
