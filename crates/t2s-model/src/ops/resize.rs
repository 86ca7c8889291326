//! Differentiable bilinear resizing.
//!
//! Burn's bilinear `interpolate` has no backward pass on the CubeCL backends (wgpu, CUDA), so
//! every resize that gradients flow through is written as two matrix products with
//! interpolation matrices that reproduce PyTorch's
//! `F.interpolate(x, size, mode="bilinear", align_corners=False)` exactly. Matrix products have
//! a backward pass everywhere, and are fast on every backend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use burn::tensor::{backend::Backend, DType, Tensor, TensorData};

/// Row-major `[out_size, in_size]` matrix `M` such that `y = M x` resizes a 1-D signal `x` of
/// length `in_size` to length `out_size` with PyTorch's bilinear, `align_corners=False` rule:
/// source coordinate `(o + 0.5) * in/out - 0.5`, clamped below at 0, linear weights between the
/// two nearest samples, the upper one clamped to the last sample.
pub fn bilinear_matrix(in_size: usize, out_size: usize) -> Arc<Vec<f32>> {
    /// Matrices by (input length, output length).
    type Matrices = HashMap<(usize, usize), Arc<Vec<f32>>>;
    static CACHE: OnceLock<Mutex<Matrices>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(m) = cache.lock().map(|c| c.get(&(in_size, out_size)).cloned()).ok().flatten() {
        return m;
    }
    // PyTorch computes the scale in the tensor's accumulation type (f32 for f32 inputs).
    let scale = in_size as f32 / out_size as f32;
    let mut m = vec![0f32; out_size * in_size];
    for o in 0..out_size {
        let src = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src as usize).min(in_size - 1);
        let i1 = if i0 < in_size - 1 { i0 + 1 } else { i0 };
        let l1 = src - i0 as f32;
        m[o * in_size + i0] += 1.0 - l1;
        m[o * in_size + i1] += l1;
    }
    let m = Arc::new(m);
    if let Ok(mut c) = cache.lock() {
        c.insert((in_size, out_size), m.clone());
    }
    m
}

/// Transposed interpolation matrix as a tensor: `[in_size, out_size]`,
/// in float type `dtype`.
fn matrix_t<B: Backend>(in_size: usize, out_size: usize, device: &B::Device, dtype: DType) -> Tensor<B, 2> {
    let m = bilinear_matrix(in_size, out_size);
    Tensor::<B, 2>::from_data(TensorData::new(m.to_vec(), [out_size, in_size]), (device, dtype)).transpose()
}

/// Bilinear resize of `x: [N, C, H, W]` to `[N, C, out_h, out_w]`, equal to PyTorch's
/// `F.interpolate(x, (out_h, out_w), mode="bilinear", align_corners=False)`, differentiable on
/// every backend.
pub fn resize_bilinear<B: Backend>(x: Tensor<B, 4>, out_h: usize, out_w: usize) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    if h == out_h && w == out_w {
        return x;
    }
    let (device, dtype) = (x.device(), x.dtype());
    // Width first: [N*C*H, W] x [W, W'] -> [N*C*H, W'].
    let x =
        if w != out_w { x.reshape([n * c * h, w]).matmul(matrix_t::<B>(w, out_w, &device, dtype)).reshape([n, c, h, out_w]) } else { x };
    if h == out_h {
        return x;
    }
    // Then height, on the transposed map: [N*C*W', H] x [H, H'] -> [N*C*W', H'].
    x.swap_dims(2, 3)
        .reshape([n * c * out_w, h])
        .matmul(matrix_t::<B>(h, out_h, &device, dtype))
        .reshape([n, c, out_w, out_h])
        .swap_dims(2, 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::module::interpolate;
    use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

    type B = Flex;

    #[test]
    fn matrix_rows_are_hand_derived() {
        // 2 -> 4 (upsampling by 2): src = (o+0.5)/2-0.5 = -0.25, 0.25, 0.75, 1.25.
        let m = bilinear_matrix(2, 4);
        let expect = [1.0, 0.0, 0.75, 0.25, 0.25, 0.75, 0.0, 1.0];
        for (a, b) in m.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{m:?}");
        }
        // 4 -> 2 (downsampling by 2): src = 0.5, 2.5: averages of pairs.
        let m = bilinear_matrix(4, 2);
        let expect = [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5];
        for (a, b) in m.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{m:?}");
        }
    }

    #[test]
    fn matches_burn_interpolate_forward() {
        let device = Default::default();
        let x = Tensor::<B, 4>::from_data(
            TensorData::new((0..2 * 3 * 7 * 5).map(|i| ((i * 37 % 101) as f32) / 10.0).collect::<Vec<_>>(), [2, 3, 7, 5]),
            &device,
        );
        for (oh, ow) in [(14, 10), (3, 2), (9, 13), (7, 11), (4, 5)] {
            let ours = resize_bilinear(x.clone(), oh, ow);
            let opts = InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(false);
            let theirs = interpolate(x.clone(), [oh, ow], opts);
            let diff = (ours - theirs).abs().max().into_scalar();
            assert!(diff < 1e-4, "{oh}x{ow}: max diff {diff}");
        }
    }

    #[test]
    fn has_a_gradient_that_sums_the_weights() {
        // d(sum(resize(x)))/dx_i is the column sum of the separable matrix: for 2 -> 4 along
        // both axes each input pixel receives (2.0) * (2.0) = 4.0 (columns of M sum to 2).
        type A = Autodiff<Flex>;
        let device = Default::default();
        let x = Tensor::<A, 4>::ones([1, 1, 2, 2], &device).require_grad();
        let y = resize_bilinear(x.clone(), 4, 4);
        let grads = y.sum().backward();
        let g = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        assert_eq!(g, vec![4.0; 4]);
    }
}
