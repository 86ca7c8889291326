//! Depth-wise convolution written as shifted multiply-adds, so that its backward pass is fast on
//! the CubeCL backends (CUDA, wgpu), where [`crate::conv::conv2d_forward`] uses it.
//!
//! Why not `Conv2d` with `groups = C`: Burn 0.21's CubeCL backends (CUDA, wgpu) compute the weight
//! gradient of a grouped convolution one group at a time (`conv_weight_backward_fallback` slices
//! each channel out and launches a convolution for it). MiT-B5's Mix-FFNs have 61,184 depth-wise
//! channels, so one backward pass launched 62,000 small convolutions and took 76–104 s on an H100
//! (docs/gpu.md). Here each of the k² kernel taps is a slice of the padded input times a
//! per-channel weight: 2k² element-wise kernels forward and as many reductions backward,
//! independent of the channel count. The forward pass and both gradients equal the grouped
//! convolution's up to float summation order (tested against it and against a loop reference).

use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::{backend::Backend, ops::PadMode, Int, Tensor};

/// Depth-wise 2-D convolution, stride 1: `x: [N, C, H, W]`, `weight: [C, 1, kh, kw]`,
/// `bias: [C]`, zero padding `(top, bottom, left, right)`, dilation `d` →
/// `[N, C, H + top + bottom − d(kh − 1), W + left + right − d(kw − 1)]`.
pub fn depthwise_conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    padding: [usize; 4],
    dilation: [usize; 2],
) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let [wc, one, kh, kw] = weight.dims();
    assert!(wc == c && one == 1, "depth-wise weight must be [C, 1, kh, kw] with C = {c}, got {:?}", weight.dims());
    let [top, bottom, left, right] = padding;
    let [dh, dw] = dilation;
    let (oh, ow) = (h + top + bottom - dh * (kh - 1), w + left + right - dw * (kw - 1));
    let xp = if padding == [0; 4] { x } else { x.pad([(top, bottom), (left, right)], PadMode::Constant(0.0)) };
    // [C, kh·kw]: one column per tap, broadcast over batch and space as [1, C, 1, 1]. Columns are
    // gathered with `select`, not sliced: on wgpu, a fused sum of products with all nine column
    // slices of one [C, 9] tensor came out wrong (eight were right; docs/burn-notes.md).
    let taps = weight.reshape([c, kh * kw]);
    // The tap indices go to the device once per call, not once per tap.
    let tap_ids = Tensor::<B, 1, Int>::arange(0..(kh * kw) as i64, &taps.device());
    let mut out: Option<Tensor<B, 4>> = None;
    for i in 0..kh {
        for j in 0..kw {
            let shifted = xp.clone().slice([0..n, 0..c, i * dh..i * dh + oh, j * dw..j * dw + ow]);
            let k = i * kw + j;
            let column = taps.clone().select(1, tap_ids.clone().slice([k..k + 1]));
            let term = shifted * column.reshape([1, c, 1, 1]);
            out = Some(match out {
                None => term,
                Some(acc) => acc + term,
            });
        }
    }
    let out = out.expect("a kernel has at least one tap");
    match bias {
        Some(b) => out + b.reshape([1, c, 1, 1]),
        None => out,
    }
}

/// Whether `conv` is depth-wise with stride 1 (`groups = C_in = C_out`), the case
/// [`shifted_taps_forward`] computes with [`depthwise_conv2d`].
pub fn is_depthwise<B: Backend>(conv: &Conv2d<B>) -> bool {
    let [out_c, in_per_group, _, _] = conv.weight.dims();
    conv.groups > 1 && conv.groups == out_c && in_per_group == 1 && conv.stride == [1, 1]
}

/// `conv` computed by [`depthwise_conv2d`] (`[N, C, H, W] → [N, C, H', W']`) whatever the
/// backend, or `None` when it is not a stride-1 depth-wise convolution with explicit padding.
pub fn shifted_taps_forward<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Option<Tensor<B, 4>> {
    let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else { return None };
    is_depthwise(conv)
        .then(|| depthwise_conv2d(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), [top, bottom, left, right], conv.dilation))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv_bn::ConvSpec;
    use crate::mit::tests::{conv2d, max_rel, rand_nd};
    use burn::backend::{Autodiff, Flex};
    use burn::module::Param;
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
            let got = depthwise_conv2d::<B>(x.tensor(), w.tensor(), Some(b.tensor()), [pad; 4], [dil, dil]);
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
            let y = if use_depthwise { shifted_taps_forward(&conv, x.clone()).expect("depth-wise") } else { conv.forward(x.clone()) };
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
            assert!(shifted_taps_forward(&conv, x.clone()).is_none());
        }
    }
}
