//! Dense (`groups = 1`) 2-D convolution written as one matrix product, so that the CubeCL
//! backends run it on their matmul kernels instead of a direct convolution.
//!
//! Why: without autotuning, Burn 0.21's CubeCL backends compute every convolution with a direct
//! kernel, while the product `W [C_out, C_in·kh·kw] × columns [C_in·kh·kw, h'·w']` goes through
//! the tiled matmul, forward and for both gradients (docs/architecture.md, "Own operations").
//!
//! How the columns are built, cheapest first:
//! - 1×1, stride 1, no padding: the input itself, `[N, C, H·W]` (a free reshape);
//! - kernel = stride, no padding, no dilation (MiT's spatial reduction, patchify): one permute of
//!   `[N, C, h', k, w', k]` to `[N, C, k, k, h', w']`;
//! - otherwise: one (strided, dilated) slice of the padded input per kernel tap, stacked.

use burn::tensor::{backend::Backend, Tensor};

/// Geometry of a dense convolution: stride, zero padding `(top, bottom, left, right)` and
/// dilation, each `[vertical, horizontal]` where paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub stride: [usize; 2],
    pub padding: [usize; 4],
    pub dilation: [usize; 2],
}

impl ConvGeometry {
    /// Output size `(h', w')` of a `kh×kw` kernel over an `h×w` input, PyTorch's formula
    /// `⌊(H + pads − d(k − 1) − 1)/s⌋ + 1`; `None` when the kernel does not fit.
    pub fn output_size(&self, h: usize, w: usize, kh: usize, kw: usize) -> Option<(usize, usize)> {
        let [top, bottom, left, right] = self.padding;
        let span_h = self.dilation[0] * (kh - 1) + 1;
        let span_w = self.dilation[1] * (kw - 1) + 1;
        let (ph, pw) = (h + top + bottom, w + left + right);
        (ph >= span_h && pw >= span_w).then(|| ((ph - span_h) / self.stride[0] + 1, (pw - span_w) / self.stride[1] + 1))
    }

    /// Whether the kernel tiles the input without overlap or gaps (kernel = stride, no padding,
    /// no dilation), so the columns are a permutation of the input.
    pub fn is_patchify(&self, kh: usize, kw: usize) -> bool {
        self.stride == [kh, kw] && self.padding == [0; 4] && self.dilation == [1, 1]
    }
}

/// `x: [N, C_in, H, W]` convolved with `weight: [C_out, C_in, kh, kw]` (+ `bias: [C_out]`) →
/// `[N, C_out, h', w']`, equal to `F.conv2d` with `groups = 1` up to float summation order.
///
/// Panics when the kernel does not fit the padded input or the channel counts disagree; callers
/// ([`crate::ops::conv::conv2d_forward`]) have checked the layer's geometry.
pub fn conv2d_gemm<B: Backend>(x: Tensor<B, 4>, weight: Tensor<B, 4>, bias: Option<Tensor<B, 1>>, geometry: ConvGeometry) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let [co, ci, kh, kw] = weight.dims();
    assert_eq!(ci, c, "convolution weight {:?} does not take {c} input channels", weight.dims());
    let (oh, ow) =
        geometry.output_size(h, w, kh, kw).unwrap_or_else(|| panic!("a {kh}×{kw} kernel with {geometry:?} does not fit a {h}×{w} input"));
    let columns = columns(x, kh, kw, geometry, oh, ow);
    // [1, C_out, C_in·kh·kw] × [N, C_in·kh·kw, h'·w'] → [N, C_out, h'·w']: the weight is broadcast
    // over the batch (autodiff sums its gradient back over N).
    let out = weight.reshape([1, co, ci * kh * kw]).matmul(columns).reshape([n, co, oh, ow]);
    match bias {
        Some(b) => out + b.reshape([1, co, 1, 1]),
        None => out,
    }
}

/// A patchify convolution (kernel = stride, no padding, no dilation: [`ConvGeometry::is_patchify`])
/// on channels-last tokens: `x: [N, h·w, C_in]` of an `h×w` map, `weight: [C_out, C_in, kh, kw]`
/// (+ `bias: [C_out]`) → tokens `[N, h'·w', C_out]` of the `h'×w'` output map, with
/// `h' = ⌊h/kh⌋`, `w' = ⌊w/kw⌋` (rows and columns no window covers are dropped, as the
/// convolution does). Equal to [`conv2d_gemm`] between the token layouts, in fewer kernels: the
/// patches are one copy of the tokens, `[N·h'·w', kh·kw·C_in]`, and the product one 2-D matmul
/// with the weight as `[kh·kw·C_in, C_out]` (MiT's spatial reduction, which took a copy into
/// channels-first, a batched product whose weight gradient is summed over the batch, and a
/// transposed view back).
pub fn patchify_tokens<B: Backend>(x: Tensor<B, 3>, h: usize, w: usize, weight: Tensor<B, 4>, bias: Option<Tensor<B, 1>>) -> Tensor<B, 3> {
    let [n, l, c] = x.dims();
    let [co, ci, kh, kw] = weight.dims();
    assert!(l == h * w && ci == c, "patchify: tokens {:?} of a {h}×{w} map, weight {:?}", x.dims(), weight.dims());
    let (oh, ow) = (h / kh, w / kw);
    let x = x.reshape([n, h, w, c]);
    let x = if (oh * kh, ow * kw) != (h, w) { x.slice([0..n, 0..oh * kh, 0..ow * kw, 0..c]) } else { x };
    // [N, h', kh, w', kw, C] → [N, h', w', kh, kw, C] → rows [N·h'·w', kh·kw·C]
    let patches = x.reshape([n, oh, kh, ow, kw, c]).permute([0, 1, 3, 2, 4, 5]).reshape([n * oh * ow, kh * kw * c]);
    // [C_out, C_in, kh, kw] → [kh, kw, C_in, C_out] → [kh·kw·C_in, C_out], the patches' order.
    let weight = weight.permute([2, 3, 1, 0]).reshape([kh * kw * c, co]);
    let out = patches.matmul(weight);
    let out = match bias {
        Some(b) => out + b.reshape([1, co]),
        None => out,
    };
    out.reshape([n, oh * ow, co])
}

/// The im2col matrix `[N, C·kh·kw, h'·w']`, rows ordered (channel, tap row, tap column) like a
/// flattened `[C_out, C_in, kh, kw]` weight, columns ordered (output row, output column).
fn columns<B: Backend>(x: Tensor<B, 4>, kh: usize, kw: usize, g: ConvGeometry, oh: usize, ow: usize) -> Tensor<B, 3> {
    let [n, c, _, _] = x.dims();
    if kh == 1 && kw == 1 && g.stride == [1, 1] && g.padding == [0; 4] {
        return x.reshape([n, c, oh * ow]);
    }
    if g.is_patchify(kh, kw) {
        // Rows and columns that no window covers are dropped first, as the convolution does.
        let x = x.slice([0..n, 0..c, 0..oh * kh, 0..ow * kw]);
        // [N, C, h', kh, w', kw] → [N, C, kh, kw, h', w']
        return x.reshape([n, c, oh, kh, ow, kw]).permute([0, 1, 3, 5, 2, 4]).reshape([n, c * kh * kw, oh * ow]);
    }
    let xp = zero_pad(x, g.padding);
    let [sh, sw] = g.stride;
    let [dh, dw] = g.dilation;
    let mut taps = Vec::with_capacity(kh * kw);
    for i in 0..kh {
        for j in 0..kw {
            // Tap (i, j) of output (y, x) reads padded row i·dh + y·sh and column j·dw + x·sw.
            let (r0, c0) = (i * dh, j * dw);
            let rows = burn::tensor::s![r0..r0 + sh * (oh - 1) + 1; sh as isize];
            let cols = burn::tensor::s![c0..c0 + sw * (ow - 1) + 1; sw as isize];
            taps.push(xp.clone().slice([burn::tensor::s![..], burn::tensor::s![..], rows, cols]));
        }
    }
    // [N, C, kh·kw, h', w'] → [N, C·kh·kw, h'·w']
    Tensor::stack::<5>(taps, 2).reshape([n, c * kh * kw, oh * ow])
}

/// `x: [N, C, H, W]` zero-padded by `[top, bottom, left, right]` (no operation when all are 0).
///
/// Why not `Tensor::pad`: under `Autodiff` it fills the padded tensor on the host and uploads it,
/// while `zeros` is created on the device (docs/burn-notes.md, "`Autodiff` does not forward
/// `float_full`").
pub(crate) fn zero_pad<B: Backend>(x: Tensor<B, 4>, padding: [usize; 4]) -> Tensor<B, 4> {
    let [top, bottom, left, right] = padding;
    if padding == [0; 4] {
        return x;
    }
    let [n, c, h, w] = x.dims();
    Tensor::zeros([n, c, h + top + bottom, w + left + right], (&x.device(), x.dtype()))
        .slice_assign([0..n, 0..c, top..top + h, left..left + w], x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::mit::tests::{conv2d, max_rel, rand_nd};
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::module::conv2d as burn_conv2d;
    use burn::tensor::ops::{ConvOptions, PadMode};
    use burn::tensor::{Distribution, TensorData};

    type B = Flex;
    type A = Autodiff<Flex>;

    /// Asymmetric zero padding, by hand: values, and the gradient, which is the upstream
    /// gradient with the padding cropped off.
    #[test]
    fn zero_pad_places_input_and_crops_gradient() {
        let device = Default::default();
        let x = Tensor::<A, 4>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]), &device).require_grad();
        let y = zero_pad(x.clone(), [1, 0, 0, 2]);
        #[rustfmt::skip]
        let expected = [
            0.0, 0.0, 0.0, 0.0,
            1.0, 2.0, 0.0, 0.0,
            3.0, 4.0, 0.0, 0.0f32,
        ];
        assert_eq!(y.dims(), [1, 1, 3, 4]);
        assert_eq!(y.clone().into_data().to_vec::<f32>().unwrap(), expected);
        let field: Vec<f32> = (1..=12).map(|v| v as f32).collect();
        let field = Tensor::<A, 4>::from_data(TensorData::new(field, [1, 1, 3, 4]), &device);
        let grads = (y * field).sum().backward();
        let dx = x.grad(&grads).expect("x is tracked").into_data().to_vec::<f32>().unwrap();
        assert_eq!(dx, [5.0, 6.0, 9.0, 10.0]);
    }

    fn geometry(stride: usize, pad: usize, dil: usize) -> ConvGeometry {
        ConvGeometry { stride: [stride; 2], padding: [pad; 4], dilation: [dil; 2] }
    }

    /// (kernel, stride, padding, dilation) of every layer kind the networks have: 1×1, strided
    /// 1×1 (ResNet's downsample), patchify (MiT's spatial reduction, with a remainder row and
    /// column to drop), 3×3 "same", dilated 3×3 (DeepLabV2), strided overlapping 3×3 and 7×7
    /// (patch embeddings, stems).
    const CASES: [(usize, usize, usize, usize); 8] =
        [(1, 1, 0, 1), (1, 2, 0, 1), (2, 2, 0, 1), (4, 4, 0, 1), (3, 1, 1, 1), (3, 1, 2, 2), (3, 2, 1, 1), (7, 4, 3, 1)];

    /// Forward pass against the f64 loop reference of `F.conv2d` (the helper of nets/mit/tests.rs).
    #[test]
    fn matches_loop_reference() {
        for (k, s, p, d) in CASES {
            let x = rand_nd(&[2, 3, 13, 11], 1, 1.0);
            let w = rand_nd(&[5, 3, k, k], 2, 1.0);
            let b = rand_nd(&[5], 3, 1.0);
            let want = conv2d(&x, &w, Some(&b), s, p, d, 1);
            let got = conv2d_gemm::<B>(x.tensor(), w.tensor(), Some(b.tensor()), geometry(s, p, d));
            assert_eq!(got.dims().to_vec(), want.dims, "k{k} s{s} p{p} d{d}");
            let got: Vec<f32> = got.into_data().to_vec().unwrap();
            let want: Vec<f32> = want.data.iter().map(|&v| v as f32).collect();
            assert!(max_rel(&got, &want) < 1e-5, "k{k} s{s} p{p} d{d}: rel error {}", max_rel(&got, &want));
        }
    }

    /// Gradients of input, weight and bias equal those of Burn's convolution on the CPU, for
    /// every case, with asymmetric padding added.
    #[test]
    fn gradients_match_burn_conv() {
        let device = Default::default();
        let mut cases: Vec<ConvGeometry> = CASES.iter().map(|&(_, s, p, d)| geometry(s, p, d)).collect();
        let kernels: Vec<usize> = CASES.iter().map(|c| c.0).chain([3]).collect();
        cases.push(ConvGeometry { stride: [1, 2], padding: [0, 2, 1, 0], dilation: [1, 1] });
        for (k, g) in kernels.into_iter().zip(cases) {
            let r = |shape: [usize; 4]| Tensor::<A, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let (x0, w0) = (r([2, 4, 12, 10]), r([6, 4, k, k]));
            let b0 = Tensor::<A, 1>::random([6], Distribution::Normal(0.0, 1.0), &device);
            let (oh, ow) = g.output_size(12, 10, k, k).expect("fits");
            // A fixed, non-uniform upstream gradient: the sum of the output times this field.
            let field = Tensor::<A, 4>::random([2, 6, oh, ow], Distribution::Normal(0.0, 1.0), &device);
            let grads = |gemm: bool| {
                let (x, w, b) = (x0.clone().require_grad(), w0.clone().require_grad(), b0.clone().require_grad());
                let y = if gemm {
                    conv2d_gemm(x.clone(), w.clone(), Some(b.clone()), g)
                } else {
                    // Burn's padding is symmetric per axis: pad explicitly, for asymmetric cases.
                    let [t, bo, l, r] = g.padding;
                    let xp = x.clone().pad([(t, bo), (l, r)], PadMode::Constant(0.0));
                    burn_conv2d(xp, w.clone(), Some(b.clone()), ConvOptions::new(g.stride, [0, 0], g.dilation, 1))
                };
                let dims = y.dims();
                let gr = (y * field.clone()).sum().backward();
                let v = |t: Tensor<Flex, 4>| t.into_data().to_vec::<f32>().unwrap();
                (dims, v(x.grad(&gr).unwrap()), v(w.grad(&gr).unwrap()), b.grad(&gr).unwrap().into_data().to_vec::<f32>().unwrap())
            };
            let (d1, dx, dw, db) = grads(true);
            let (d2, rx, rw, rb) = grads(false);
            assert_eq!(d1, d2, "k{k} {g:?}");
            assert!(max_rel(&dx, &rx) < 1e-5, "k{k} {g:?}: dx {}", max_rel(&dx, &rx));
            assert!(max_rel(&dw, &rw) < 1e-5, "k{k} {g:?}: dw {}", max_rel(&dw, &rw));
            assert!(max_rel(&db, &rb) < 1e-5, "k{k} {g:?}: db {}", max_rel(&db, &rb));
        }
    }

    /// The channels-last patchify on tokens equals Burn's convolution on the same map
    /// channels-first, output and gradients of input, weight and bias, with remainder rows and
    /// columns to drop (13×11 by 4 and 2) and without (12×10 by 2).
    #[test]
    fn patchify_tokens_match_burn_conv() {
        let device = Default::default();
        for (h, w, k) in [(13, 11, 4), (13, 11, 2), (12, 10, 2)] {
            let (n, c, co) = (2, 5, 6);
            let r = |shape: [usize; 4]| Tensor::<A, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
            let (map0, w0) = (r([n, c, h, w]), r([co, c, k, k]));
            let b0 = Tensor::<A, 1>::random([co], Distribution::Normal(0.0, 1.0), &device);
            let (oh, ow) = (h / k, w / k);
            let field = Tensor::<A, 4>::random([n, co, oh, ow], Distribution::Normal(0.0, 1.0), &device);
            let grads = |tokens: bool| {
                let (map, wt, b) = (map0.clone().require_grad(), w0.clone().require_grad(), b0.clone().require_grad());
                let y = if tokens {
                    // [N, C, h, w] → tokens [N, h·w, C] → [N, h'·w', C_out] → [N, C_out, h', w']
                    let x = map.clone().reshape([n, c, h * w]).swap_dims(1, 2);
                    let t = patchify_tokens(x, h, w, wt.clone(), Some(b.clone()));
                    assert_eq!(t.dims(), [n, oh * ow, co]);
                    t.swap_dims(1, 2).reshape([n, co, oh, ow])
                } else {
                    burn_conv2d(map.clone(), wt.clone(), Some(b.clone()), ConvOptions::new([k, k], [0, 0], [1, 1], 1))
                };
                let out = y.clone().into_data().to_vec::<f32>().unwrap();
                let gr = (y * field.clone()).sum().backward();
                let v = |t: Tensor<Flex, 4>| t.into_data().to_vec::<f32>().unwrap();
                (out, v(map.grad(&gr).unwrap()), v(wt.grad(&gr).unwrap()), b.grad(&gr).unwrap().into_data().to_vec::<f32>().unwrap())
            };
            let (a, r) = (grads(true), grads(false));
            assert!(max_rel(&a.0, &r.0) < 1e-5, "{h}×{w}/{k}: output {}", max_rel(&a.0, &r.0));
            assert!(max_rel(&a.1, &r.1) < 1e-5, "{h}×{w}/{k}: dx {}", max_rel(&a.1, &r.1));
            assert!(max_rel(&a.2, &r.2) < 1e-5, "{h}×{w}/{k}: dw {}", max_rel(&a.2, &r.2));
            assert!(max_rel(&a.3, &r.3) < 1e-5, "{h}×{w}/{k}: db {}", max_rel(&a.3, &r.3));
        }
    }

    #[test]
    fn output_size_follows_pytorch() {
        // 512 → 128 for MiT's 7×7 stride-4 stem; 128 → 16 for the stage-1 reduction; 13 → 3 for
        // a 4×4 patchify (one remainder row dropped); a kernel larger than the input.
        assert_eq!(geometry(4, 3, 1).output_size(512, 512, 7, 7), Some((128, 128)));
        assert_eq!(geometry(8, 0, 1).output_size(128, 128, 8, 8), Some((16, 16)));
        assert_eq!(geometry(4, 0, 1).output_size(13, 12, 4, 4), Some((3, 3)));
        assert_eq!(geometry(1, 0, 1).output_size(2, 2, 3, 3), None);
    }
}
