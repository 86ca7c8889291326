//! Depth-wise convolution written as one product over the k² shifted input windows, with its own
//! backward pass ([`T2sBackend::depthwise_conv2d`], `crate::ops::depthwise_autodiff`), so that it is
//! fast on the CubeCL backends (CUDA, wgpu), where [`crate::ops::conv::conv2d_forward`] uses it.
//!
//! Why not `Conv2d` with `groups = C`: Burn 0.21's CubeCL backends compute a grouped
//! convolution's weight gradient one channel at a time, while the k² taps here are one strided
//! view of the padded input ([`tap_windows`]) and the gradients ([`depthwise_input_grad`],
//! [`depthwise_weight_grad`]) a few kernels each (docs/architecture.md, "Own operations").

use crate::ops::backend::T2sBackend;
use crate::ops::conv_gemm::zero_pad;
use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::{backend::Backend, Tensor};

/// Zero padding `[top, bottom, left, right]` and dilation `[dh, dw]` of a stride-1 depth-wise
/// convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseGeometry {
    pub padding: [usize; 4],
    pub dilation: [usize; 2],
}

impl DepthwiseGeometry {
    /// Output height and width over an `h×w` input with a `kh×kw` kernel.
    pub fn output_size(&self, h: usize, w: usize, kh: usize, kw: usize) -> [usize; 2] {
        let [top, bottom, left, right] = self.padding;
        let [dh, dw] = self.dilation;
        [h + top + bottom - dh * (kh - 1), w + left + right - dw * (kw - 1)]
    }
}

/// Where a 4-D map keeps its channels: `[N, C, H, W]` or `[N, H, W, C]` (MiT's tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    ChannelsFirst,
    ChannelsLast,
}

impl Layout {
    /// The axes of height and width.
    fn spatial_axes(self) -> [usize; 2] {
        match self {
            Layout::ChannelsFirst => [2, 3],
            Layout::ChannelsLast => [1, 2],
        }
    }

    /// [`T2sBackend::depthwise_conv2d`] or [`T2sBackend::depthwise_conv2d_nhwc`], as the layout
    /// says.
    pub fn depthwise_conv2d<B: T2sBackend>(self, x: Tensor<B, 4>, weight: Tensor<B, 4>, geometry: DepthwiseGeometry) -> Tensor<B, 4> {
        match self {
            Layout::ChannelsFirst => B::depthwise_conv2d(x, weight, geometry),
            Layout::ChannelsLast => B::depthwise_conv2d_nhwc(x, weight, geometry),
        }
    }
}

/// `x` zero-padded in height and width by `[top, bottom, left, right]`; a negative amount crops
/// that side instead.
fn pad_signed<B: Backend>(x: Tensor<B, 4>, amounts: [isize; 4], layout: Layout) -> Tensor<B, 4> {
    let [ah, aw] = layout.spatial_axes();
    let ([top, bottom], [left, right]) = ([amounts[0], amounts[1]], [amounts[2], amounts[3]]);
    let (crop, pad) = (|a: isize| (-a).max(0) as usize, |a: isize| a.max(0) as usize);
    let mut x = x;
    if amounts.iter().any(|&a| a < 0) {
        let dims = x.dims();
        let mut ranges = dims.map(|d| 0..d);
        ranges[ah] = crop(top)..dims[ah] - crop(bottom);
        ranges[aw] = crop(left)..dims[aw] - crop(right);
        x = x.slice(ranges);
    }
    if amounts.iter().all(|&a| a <= 0) {
        return x;
    }
    // Into zeros created on the device (`crate::ops::conv_gemm::zero_pad` says why not `Tensor::pad`).
    let dims = x.dims();
    let (mut padded, mut inner) = (dims, dims.map(|d| 0..d));
    padded[ah] += pad(top) + pad(bottom);
    padded[aw] += pad(left) + pad(right);
    inner[ah] = pad(top)..pad(top) + dims[ah];
    inner[aw] = pad(left)..pad(left) + dims[aw];
    Tensor::zeros(padded, (&x.device(), x.dtype())).slice_assign(inner, x)
}

/// The k² shifted copies of the padded input as one strided view, `[N, C, kh, kw, H', W']`:
/// element `[n, c, i, j, y, x]` is `xp[n, c, y + i·dh, x + j·dw]`. Two `unfold`s, no copy on the
/// CubeCL backends (the windows run over the output positions, stepping by the dilation).
fn tap_windows<B: Backend>(xp: Tensor<B, 4>, out: [usize; 2], dilation: [usize; 2]) -> Tensor<B, 6> {
    xp.unfold::<5, usize>(2, out[0], dilation[0]).unfold::<6, usize>(3, out[1], dilation[1])
}

/// Depth-wise convolution as one product of the tap windows ([`tap_windows`]) with the weight
/// broadcast over batch and space, summed over the k² taps (no bias): `x: [N, C, H, W]`,
/// `weight: [C, 1, kh, kw]` → `[N, C, H', W']` ([`DepthwiseGeometry::output_size`]). The forward
/// pass of [`T2sBackend::depthwise_conv2d`] on every backend: a handful of kernels whatever the
/// kernel size, where k² separate shifted slices took one copy each (their offsets rarely meet
/// the device's alignment for a view), one product and one accumulation each. The product is a
/// transient k² times the output's size, freed by the sum; nothing of it is kept for backward.
pub fn windowed_taps<B: Backend>(x: Tensor<B, 4>, weight: Tensor<B, 4>, geometry: DepthwiseGeometry) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let [wc, one, kh, kw] = weight.dims();
    assert!(wc == c && one == 1, "depth-wise weight must be [C, 1, kh, kw] with C = {c}, got {:?}", weight.dims());
    let [oh, ow] = geometry.output_size(h, w, kh, kw);
    let windows = tap_windows(zero_pad(x, geometry.padding), [oh, ow], geometry.dilation);
    let products = windows * weight.reshape([1, c, kh, kw, 1, 1]);
    products.reshape([n, c, kh * kw, oh, ow]).sum_dim(2).reshape([n, c, oh, ow])
}

/// Gradient of the depth-wise convolution with respect to its input, `[N, C, H, W]` or
/// `[N, H, W, C]` as `layout` says, from the output gradient `grad` (`[N, C, H', W']` or
/// `[N, H', W', C]`): the same operation on `grad` with the kernel flipped in both axes, under
/// padding `d(k − 1) − p` per side, which gives exactly `H×W` (a side padded by more than
/// `d(k − 1)` crops `grad` instead).
pub fn depthwise_input_grad<B: T2sBackend>(
    grad: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    geometry: DepthwiseGeometry,
    layout: Layout,
) -> Tensor<B, 4> {
    let [_, _, kh, kw] = weight.dims();
    let [top, bottom, left, right] = geometry.padding.map(|p| p as isize);
    let [dh, dw] = geometry.dilation.map(|d| d as isize);
    let (reach_h, reach_w) = (dh * (kh as isize - 1), dw * (kw as isize - 1));
    let amounts = [reach_h - top, reach_h - bottom, reach_w - left, reach_w - right];
    // Crop what is negative; what is positive the operation pads itself (the CubeCL backends'
    // direct kernel reads zeros outside the input instead of materialising a padded copy).
    let grad = pad_signed(grad, amounts.map(|a| a.min(0)), layout);
    let padding = amounts.map(|a| a.max(0) as usize);
    layout.depthwise_conv2d(grad, weight.flip([2, 3]), DepthwiseGeometry { padding, dilation: geometry.dilation })
}

/// Gradient of the depth-wise convolution with respect to its weight, `[C, 1, kh, kw]`, from its
/// input `x` and the output gradient `grad`, both in `layout`: for each tap, the sum over batch
/// and space of the output gradient times the input shifted by that tap, all taps in one product
/// of the tap windows of the padded input (two `unfold`s, a view) with the broadcast output
/// gradient.
pub fn depthwise_weight_grad<B: Backend>(
    x: Tensor<B, 4>,
    grad: Tensor<B, 4>,
    geometry: DepthwiseGeometry,
    kernel: [usize; 2],
    layout: Layout,
) -> Tensor<B, 4> {
    match layout {
        Layout::ChannelsFirst => weight_grad_channels_first(x, grad, geometry, kernel),
        Layout::ChannelsLast => weight_grad_channels_last(x, grad, geometry, kernel),
    }
}

/// [`depthwise_weight_grad`] of `[N, C, H, W]` maps.
fn weight_grad_channels_first<B: Backend>(
    x: Tensor<B, 4>,
    grad: Tensor<B, 4>,
    geometry: DepthwiseGeometry,
    kernel: [usize; 2],
) -> Tensor<B, 4> {
    let [n, c, oh, ow] = grad.dims();
    let [kh, kw] = kernel;
    let windows = tap_windows(zero_pad(x, geometry.padding), [oh, ow], geometry.dilation);
    let products = windows * grad.reshape([n, c, 1, 1, oh, ow]);
    // Space first (the long axis), then the batch: [N, C, k², L] → [1, C, k², 1].
    products.reshape([n, c, kh * kw, oh * ow]).sum_dim(3).sum_dim(0).reshape([c, 1, kh, kw])
}

/// [`T2sBackend::depthwise_conv2d_nhwc`] through the `[N, C, H, W]` operation: `x: [N, H, W, C]`
/// is viewed as `[N, C, H, W]` and the result viewed back, `[N, H', W', C]` (the backends that
/// have no channels-last kernel; the views cost the copies that the channels-last kernels save).
pub fn depthwise_nhwc_via_nchw<B: T2sBackend>(x: Tensor<B, 4>, weight: Tensor<B, 4>, geometry: DepthwiseGeometry) -> Tensor<B, 4> {
    B::depthwise_conv2d(x.permute([0, 3, 1, 2]), weight, geometry).permute([0, 2, 3, 1])
}

/// [`depthwise_weight_grad`] of `[N, H, W, C]` maps.
fn weight_grad_channels_last<B: Backend>(
    x: Tensor<B, 4>,
    grad: Tensor<B, 4>,
    geometry: DepthwiseGeometry,
    kernel: [usize; 2],
) -> Tensor<B, 4> {
    let [n, oh, ow, c] = grad.dims();
    let [kh, kw] = kernel;
    let [dh, dw] = geometry.dilation;
    let xp = pad_signed(x, geometry.padding.map(|p| p as isize), Layout::ChannelsLast);
    // [N, Hp, Wp, C] → [N, kh, Wp, C, H'] → [N, kh, kw, C, H', W'] → [N, kh, kw, H', W', C]
    let windows = xp.unfold::<5, usize>(1, oh, dh).unfold::<6, usize>(2, ow, dw).permute([0, 1, 2, 4, 5, 3]);
    let products = windows * grad.reshape([n, 1, 1, oh, ow, c]);
    // Space first (the long axis), then the batch: [N, k², L, C] → [1, k², 1, C] → [C, 1, kh, kw].
    let sums = products.reshape([n, kh * kw, oh * ow, c]).sum_dim(2).sum_dim(0);
    sums.reshape([kh * kw, c]).swap_dims(0, 1).reshape([c, 1, kh, kw])
}

/// Depth-wise 2-D convolution, stride 1: `x: [N, C, H, W]`, `weight: [C, 1, kh, kw]`,
/// `bias: [C]` → `[N, C, H', W']` ([`DepthwiseGeometry::output_size`]), by
/// [`T2sBackend::depthwise_conv2d`].
pub fn depthwise_conv2d<B: T2sBackend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    geometry: DepthwiseGeometry,
) -> Tensor<B, 4> {
    let c = weight.dims()[0];
    let out = B::depthwise_conv2d(x, weight, geometry);
    match bias {
        Some(b) => out + b.reshape([1, c, 1, 1]),
        None => out,
    }
}

/// Whether `conv` is depth-wise with stride 1 (`groups = C_in = C_out`), the case
/// [`depthwise_forward`] computes with [`depthwise_conv2d`].
pub fn is_depthwise<B: Backend>(conv: &Conv2d<B>) -> bool {
    let [out_c, in_per_group, _, _] = conv.weight.dims();
    conv.groups > 1 && conv.groups == out_c && in_per_group == 1 && conv.stride == [1, 1]
}

/// The geometry of `conv` when it is a stride-1 depth-wise convolution with explicit padding.
pub fn depthwise_geometry<B: Backend>(conv: &Conv2d<B>) -> Option<DepthwiseGeometry> {
    let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else { return None };
    is_depthwise(conv).then_some(DepthwiseGeometry { padding: [top, bottom, left, right], dilation: conv.dilation })
}

/// `conv` computed by [`depthwise_conv2d`] (`[N, C, H, W] → [N, C, H', W']`) whatever the
/// backend, or `None` when it is not a stride-1 depth-wise convolution with explicit padding.
pub fn depthwise_forward<B: T2sBackend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Option<Tensor<B, 4>> {
    let geometry = depthwise_geometry(conv)?;
    Some(depthwise_conv2d(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), geometry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::conv_bn::ConvSpec;
    use crate::nets::mit::tests::{conv2d, max_rel, rand_nd};
    use burn::backend::{Autodiff, Flex};
    use burn::module::Param;
    use burn::tensor::ops::PadMode;
    use burn::tensor::{Distribution, Tensor, TensorData};

    type B = Flex;
    type A = Autodiff<Flex>;

    /// Forward pass against the f64 loop reference of `F.conv2d(..., groups=C)`, for dilations 1
    /// and 3 and a non-square kernel position.
    #[test]
    fn matches_loop_reference() {
        for (dil, pad) in [(1, 1), (3, 3), (2, 0)] {
            let x = rand_nd(&[2, 5, 9, 11], 7, 1.0);
            let w = rand_nd(&[5, 1, 3, 3], 8, 1.0);
            let b = rand_nd(&[5], 9, 1.0);
            let want = conv2d(&x, &w, Some(&b), 1, pad, dil, 5);
            let got = depthwise_conv2d::<B>(
                x.tensor(),
                w.tensor(),
                Some(b.tensor()),
                DepthwiseGeometry { padding: [pad; 4], dilation: [dil, dil] },
            );
            assert_eq!(got.dims().to_vec(), want.dims);
            let got: Vec<f32> = got.into_data().to_vec().unwrap();
            let want: Vec<f32> = want.data.iter().map(|&v| v as f32).collect();
            assert!(max_rel(&got, &want) < 1e-5, "dilation {dil}: rel error {}", max_rel(&got, &want));
        }
    }

    /// Gradients with respect to the input, the weight and the bias equal those of Burn's grouped
    /// convolution on the CPU (whose backward is the reference here).
    #[test]
    fn gradients_match_grouped_conv() {
        let device = Default::default();
        let spec = ConvSpec::new(6, 6, 3).dilated(2).groups(6).bias(true);
        let mut conv = spec.init::<A>(&device);
        conv.bias = Some(Param::from_tensor(Tensor::random([6], Distribution::Normal(0.0, 1.0), &device)));
        assert!(is_depthwise(&conv));
        let x0 = Tensor::<A, 4>::random([2, 6, 7, 8], Distribution::Normal(0.0, 1.0), &device);
        // A fixed, non-uniform upstream gradient: the sum of the output times a random field.
        let field = Tensor::<A, 4>::random([2, 6, 7, 8], Distribution::Normal(0.0, 1.0), &device);

        let grads = |use_depthwise: bool| {
            let x = x0.clone().require_grad();
            let y = if use_depthwise { depthwise_forward(&conv, x.clone()).expect("depth-wise") } else { conv.forward(x.clone()) };
            let g = (y * field.clone()).sum().backward();
            let dx: Vec<f32> = x.grad(&g).unwrap().into_data().to_vec().unwrap();
            let dw: Vec<f32> = conv.weight.val().grad(&g).unwrap().into_data().to_vec().unwrap();
            let db: Vec<f32> = conv.bias.as_ref().unwrap().val().grad(&g).unwrap().into_data().to_vec().unwrap();
            (dx, dw, db)
        };
        let (dx, dw, db) = grads(true);
        let (rx, rw, rb) = grads(false);
        assert!(max_rel(&dx, &rx) < 1e-5, "dx {}", max_rel(&dx, &rx));
        assert!(max_rel(&dw, &rw) < 1e-5, "dw {}", max_rel(&dw, &rw));
        assert!(max_rel(&db, &rb) < 1e-5, "db {}", max_rel(&db, &rb));
    }

    /// The operation's own backward pass (`T2sBackend::depthwise_conv2d` on `Autodiff`) against
    /// Burn's grouped convolution of the explicitly padded input, differentiated by Burn, over
    /// geometries the networks do not all use: asymmetric padding, no padding, padding beyond
    /// the kernel's reach (the input gradient then crops the output gradient), a non-square
    /// kernel with different dilations, and inputs of which only one needs a gradient.
    #[test]
    fn own_backward_matches_grouped_conv_for_any_geometry() {
        use burn::tensor::module::conv2d;
        use burn::tensor::ops::ConvOptions;
        let device = Default::default();
        let cases = [
            ([3, 3], DepthwiseGeometry { padding: [1, 1, 1, 1], dilation: [1, 1] }),
            ([3, 3], DepthwiseGeometry { padding: [2, 0, 1, 3], dilation: [1, 2] }),
            ([3, 3], DepthwiseGeometry { padding: [0; 4], dilation: [1, 1] }),
            ([3, 3], DepthwiseGeometry { padding: [3, 4, 2, 5], dilation: [1, 1] }),
            ([2, 3], DepthwiseGeometry { padding: [1, 0, 2, 2], dilation: [3, 2] }),
        ];
        for (case, ([kh, kw], geometry)) in cases.into_iter().enumerate() {
            let (n, c, h, w) = (2, 4, 7, 9);
            let seeded = |shape: [usize; 4], seed: u64| {
                let v = rand_nd(&shape, seed, 1.0);
                Tensor::<A, 4>::from_data(TensorData::new(v.data.iter().map(|&x| x as f32).collect(), shape), &device)
            };
            let x0 = seeded([n, c, h, w], 10 + case as u64);
            let w0 = seeded([c, 1, kh, kw], 20 + case as u64);
            let [oh, ow] = geometry.output_size(h, w, kh, kw);
            let field = seeded([n, c, oh, ow], 30 + case as u64);
            for (grad_x, grad_w) in [(true, true), (true, false), (false, true)] {
                let grads = |own: bool| {
                    let x = if grad_x { x0.clone().require_grad() } else { x0.clone() };
                    let wt = if grad_w { w0.clone().require_grad() } else { w0.clone() };
                    let y = if own {
                        A::depthwise_conv2d(x.clone(), wt.clone(), geometry)
                    } else {
                        let [top, bottom, left, right] = geometry.padding;
                        let xp = x.clone().pad([(top, bottom), (left, right)], PadMode::Constant(0.0));
                        conv2d(xp, wt.clone(), None, ConvOptions::new([1, 1], [0, 0], geometry.dilation, c))
                    };
                    assert_eq!(y.dims(), [n, c, oh, ow]);
                    let out: Vec<f32> = y.clone().into_data().to_vec().unwrap();
                    let g = (y * field.clone()).sum().backward();
                    let v = |t: Option<Tensor<B, 4>>| t.map(|t| t.into_data().to_vec::<f32>().unwrap());
                    (out, v(x.grad(&g)), v(wt.grad(&g)))
                };
                let (own, reference) = (grads(true), grads(false));
                assert!(max_rel(&own.0, &reference.0) < 1e-5, "case {case}: output");
                assert_eq!(own.1.is_some(), grad_x, "case {case}: input gradient present");
                assert_eq!(own.2.is_some(), grad_w, "case {case}: weight gradient present");
                if let (Some(a), Some(b)) = (&own.1, &reference.1) {
                    assert!(max_rel(a, b) < 1e-5, "case {case}: input gradient, rel error {}", max_rel(a, b));
                }
                if let (Some(a), Some(b)) = (&own.2, &reference.2) {
                    assert!(max_rel(a, b) < 1e-5, "case {case}: weight gradient, rel error {}", max_rel(a, b));
                }
            }
        }
    }

    /// The channels-last operation (`T2sBackend::depthwise_conv2d_nhwc`) and its own backward
    /// pass against the channels-first one (checked above against Burn's grouped convolution) on
    /// the same data, transposed: "same" padding, dilation, asymmetric padding, padding beyond the
    /// kernel's reach (the input gradient then crops), a non-square kernel.
    #[test]
    fn channels_last_matches_channels_first_with_gradients() {
        let device = Default::default();
        let cases = [
            ([3, 3], DepthwiseGeometry { padding: [1, 1, 1, 1], dilation: [1, 1] }),
            ([3, 3], DepthwiseGeometry { padding: [2, 2, 2, 2], dilation: [2, 2] }),
            ([3, 3], DepthwiseGeometry { padding: [2, 0, 1, 3], dilation: [1, 2] }),
            ([3, 3], DepthwiseGeometry { padding: [3, 4, 2, 5], dilation: [1, 1] }),
            ([2, 3], DepthwiseGeometry { padding: [1, 0, 2, 2], dilation: [3, 2] }),
        ];
        for (case, ([kh, kw], geometry)) in cases.into_iter().enumerate() {
            let (n, c, h, w) = (2, 5, 7, 9);
            let seeded = |shape: [usize; 4], seed: u64| {
                let v = rand_nd(&shape, seed, 1.0);
                Tensor::<A, 4>::from_data(TensorData::new(v.data.iter().map(|&x| x as f32).collect(), shape), &device)
            };
            let x0 = seeded([n, c, h, w], 40 + case as u64);
            let w0 = seeded([c, 1, kh, kw], 50 + case as u64);
            let [oh, ow] = geometry.output_size(h, w, kh, kw);
            let field = seeded([n, c, oh, ow], 60 + case as u64);
            let run = |last: bool| {
                let x = x0.clone().require_grad();
                let wt = w0.clone().require_grad();
                let y = if last {
                    // Channels-last in and out, compared channels-first.
                    let y = A::depthwise_conv2d_nhwc(x.clone().permute([0, 2, 3, 1]), wt.clone(), geometry);
                    assert_eq!(y.dims(), [n, oh, ow, c]);
                    y.permute([0, 3, 1, 2])
                } else {
                    A::depthwise_conv2d(x.clone(), wt.clone(), geometry)
                };
                let out: Vec<f32> = y.clone().into_data().to_vec().unwrap();
                let g = (y * field.clone()).sum().backward();
                let v = |t: Tensor<B, 4>| t.into_data().to_vec::<f32>().unwrap();
                (out, v(x.grad(&g).unwrap()), v(wt.grad(&g).unwrap()))
            };
            let (last, first) = (run(true), run(false));
            assert!(max_rel(&last.0, &first.0) < 1e-5, "case {case}: output");
            assert!(max_rel(&last.1, &first.1) < 1e-5, "case {case}: input gradient, rel error {}", max_rel(&last.1, &first.1));
            assert!(max_rel(&last.2, &first.2) < 1e-5, "case {case}: weight gradient, rel error {}", max_rel(&last.2, &first.2));
        }
    }

    /// Grouped convolutions that are not depth-wise, and strided ones, are not rewritten.
    #[test]
    fn other_convolutions_are_not_rewritten() {
        let device = Default::default();
        let grouped = ConvSpec::new(6, 6, 3).groups(3).init::<B>(&device);
        let strided = ConvSpec::new(6, 6, 3).groups(6).stride(2).init::<B>(&device);
        let dense = ConvSpec::new(6, 6, 3).init::<B>(&device);
        let x = Tensor::<B, 4>::from_data(TensorData::new((0..2 * 6 * 5 * 5).map(|v| v as f32 * 0.01).collect(), [2, 6, 5, 5]), &device);
        for conv in [grouped, strided, dense] {
            assert!(!is_depthwise(&conv));
            assert!(depthwise_forward(&conv, x.clone()).is_none());
        }
    }
}
