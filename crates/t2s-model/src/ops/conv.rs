//! Which implementation computes a `Conv2d` layer on which backend: every network calls
//! [`conv2d_forward`] instead of `Conv2d::forward`.
//!
//! On the CubeCL backends (CUDA, wgpu) two layer kinds are rewritten, because Burn 0.21's
//! kernels for them are slow there (docs/gpu.md): depth-wise convolutions become products over
//! shifted windows with their own backward pass ([`crate::ops::depthwise`]; the grouped weight
//! gradient loops over the channels) and
//! dense convolutions with at most 9 kernel taps, or whose kernel equals their stride, become one
//! matrix product ([`crate::ops::conv_gemm`]; without autotuning, every convolution is a direct
//! kernel). On the Flex CPU backend Burn's own convolutions are the faster ones, except 1×1
//! (measured, [`conv_route`]).

use crate::ops::backend::T2sBackend;
use crate::ops::conv_gemm::{conv2d_gemm, ConvGeometry};
use crate::ops::depthwise::{depthwise_forward, is_depthwise};
use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::{backend::Backend, Tensor};

/// Whether this is a CubeCL backend (CUDA, wgpu), where [`conv2d_forward`] rewrites every layer
/// it can: their names are `cubecl<…>` (wrapped as `fusion<…>` / `autodiff<…>`).
pub fn uses_conv_rewrites<B: Backend>(device: &B::Device) -> bool {
    B::name(device).contains("cubecl")
}

/// How [`conv2d_forward`] computes a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvRoute {
    /// One matrix product over im2col columns ([`conv2d_gemm`]).
    Gemm(ConvGeometry),
    /// Products over shifted windows ([`crate::ops::depthwise::depthwise_conv2d`]).
    Depthwise,
    /// `Conv2d::forward`.
    Burn,
}

/// The route of `conv` over an `h×w` input, on a CubeCL backend (`cubecl`) or the CPU.
///
/// CubeCL: every layer [`gemm_geometry`] accepts goes to [`ConvRoute::Gemm`], stride-1 depth-wise
/// ones to [`ConvRoute::Depthwise`]. CPU (Flex): only 1×1 convolutions go to the matrix product,
/// the one kind where it beats Burn's there (docs/architecture.md, "Own operations").
pub fn conv_route<B: Backend>(conv: &Conv2d<B>, h: usize, w: usize, cubecl: bool) -> ConvRoute {
    let [kh, kw] = conv.kernel_size;
    if let Some(g) = gemm_geometry(conv) {
        let pointwise = kh == 1 && kw == 1 && g.stride == [1, 1] && g.padding == [0; 4];
        if (cubecl || pointwise) && g.output_size(h, w, kh, kw).is_some() {
            return ConvRoute::Gemm(g);
        }
    }
    if cubecl && is_depthwise(conv) {
        return ConvRoute::Depthwise;
    }
    ConvRoute::Burn
}

/// `conv.forward(x)` (`[N, C_in, H, W] → [N, C_out, H', W']`), computed the way [`conv_route`]
/// says for this backend.
pub fn conv2d_forward<B: T2sBackend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    match conv_route(conv, h, w, uses_conv_rewrites::<B>(&x.device())) {
        ConvRoute::Gemm(g) => conv2d_gemm(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), g),
        ConvRoute::Depthwise => depthwise_forward(conv, x.clone()).unwrap_or_else(|| conv.forward(x)),
        ConvRoute::Burn => conv.forward(x),
    }
}

/// The geometry under which `conv` is computed by [`conv2d_gemm`]: dense (`groups = 1`), explicit
/// or no padding, and either at most 9 kernel taps (1×1, 3×3) or a kernel equal to its stride
/// (patchify, any size). Larger overlapping kernels (the 7×7 stems, whose input is the image)
/// would take one slice per tap, 49 and more launches each way: they stay with Burn.
pub fn gemm_geometry<B: Backend>(conv: &Conv2d<B>) -> Option<ConvGeometry> {
    let [kh, kw] = conv.kernel_size;
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, bottom, left, right],
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Same => return None,
    };
    let g = ConvGeometry { stride: conv.stride, padding, dilation: conv.dilation };
    let patchify = g.stride == [kh, kw] && padding == [0; 4] && g.dilation == [1, 1];
    (conv.groups == 1 && (kh * kw <= 9 || patchify)).then_some(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::conv_bn::ConvSpec;
    use burn::backend::{Autodiff, Flex};

    type B = Flex;

    #[test]
    fn gemm_takes_dense_small_and_patchify_kernels() {
        let device = Default::default();
        let geometry = |spec: ConvSpec| gemm_geometry(&spec.init::<B>(&device));
        let one = geometry(ConvSpec::new(8, 4, 1)).expect("1×1");
        assert_eq!(one, ConvGeometry { stride: [1, 1], padding: [0; 4], dilation: [1, 1] });
        let dilated = geometry(ConvSpec::new(8, 4, 3).dilated(6)).expect("dilated 3×3");
        assert_eq!(dilated.padding, [6; 4]);
        assert_eq!(dilated.dilation, [6, 6]);
        // MiT's spatial reduction, 8×8 stride 8: 64 taps, but a permutation of the input.
        assert!(geometry(ConvSpec::new(8, 8, 8).stride(8).padding(0)).is_some());
        assert!(geometry(ConvSpec::new(3, 8, 7).stride(4)).is_none(), "7×7 stem");
        assert!(geometry(ConvSpec::new(8, 8, 3).groups(8)).is_none(), "depth-wise");
        assert!(geometry(ConvSpec::new(8, 8, 3).groups(2)).is_none(), "grouped");
    }

    #[test]
    fn routes_per_backend() {
        let device = Default::default();
        let route = |spec: ConvSpec, cubecl: bool| conv_route(&spec.init::<B>(&device), 32, 32, cubecl);
        let one = ConvSpec::new(8, 4, 1);
        let three = ConvSpec::new(8, 4, 3);
        let depthwise = ConvSpec::new(8, 8, 3).groups(8);
        let stem = ConvSpec::new(3, 8, 7).stride(4);
        assert!(matches!(route(one, true), ConvRoute::Gemm(_)));
        assert!(matches!(route(one, false), ConvRoute::Gemm(_)), "1×1 is faster as a product on the CPU too");
        assert!(matches!(route(three, true), ConvRoute::Gemm(_)));
        assert_eq!(route(three, false), ConvRoute::Burn);
        assert_eq!(route(depthwise, true), ConvRoute::Depthwise);
        assert_eq!(route(depthwise, false), ConvRoute::Burn);
        assert_eq!(route(stem, true), ConvRoute::Burn);
        // A kernel larger than the padded input is left to Burn (which reports it).
        assert_eq!(conv_route(&ConvSpec::new(8, 4, 3).padding(0).init::<B>(&device), 2, 2, true), ConvRoute::Burn);
        // The CubeCL backends' names are checked in tests/wgpu_own_ops.rs.
        assert!(!uses_conv_rewrites::<B>(&device));
        assert!(!uses_conv_rewrites::<Autodiff<B>>(&device));
    }
}
