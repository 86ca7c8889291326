//! Batch normalisation over `[N, C, H, W]`, as PyTorch's `BatchNorm2d`, laid out for speed.
//!
//! The input is viewed as `[N·C, H·W]` and per-channel vectors repeated to `[N·C, 1]`, because
//! Flex 0.21 has no fast path for Burn's `[1, C, 1, 1]` broadcast, while "one scalar per row" is
//! fast on every backend (docs/architecture.md, "Own operations").
//!
//! Semantics are PyTorch's rather than Burn's: the batch is normalised with the biased variance,
//! while the running variance is updated with the **unbiased** one (`n/(n−1)`), as
//! `torch.nn.functional.batch_norm` does; Burn 0.21 updates it with the biased variance.

use crate::precision::in_f32;
use burn::nn::BatchNorm;
use burn::tensor::{backend::Backend, Tensor};

/// Normalises `x` `[N, C, H, W]` → `[N, C, H, W]` with `bn`'s parameters. Training statistics
/// (and a running-statistics update) when the backend records gradients, the running
/// statistics otherwise, exactly as `BatchNorm::forward` decides.
///
/// `sub_batches` (k ≥ 1, dividing N) says that `x` is k independent batches of N/k images
/// concatenated along N, as one forward pass over several of a training step's batches is
/// (`Segmentor::forward_sub_batches`). Each sub-batch is then normalised with its own
/// statistics, and the running statistics take k successive updates in sub-batch order:
/// what k separate forward passes would have done, in one pass (one kernel launch per
/// operation instead of k).
///
/// Computed in f32 whatever `x`'s type, which the output keeps (`crate::precision::in_f32`).
///
/// # Panics
/// When `sub_batches` is 0 or does not divide N.
pub fn batch_norm_2d<B: Backend>(bn: &BatchNorm<B>, x: Tensor<B, 4>, sub_batches: usize) -> Tensor<B, 4> {
    in_f32(x, |x| batch_norm_2d_f32(bn, x, sub_batches))
}

fn batch_norm_2d_f32<B: Backend>(bn: &BatchNorm<B>, x: Tensor<B, 4>, sub_batches: usize) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let k = sub_batches;
    assert!(k > 0 && n % k == 0, "batch_norm_2d: {k} sub-batches do not divide a batch of {n}");
    let device = x.device();
    // Per-sub-batch `[K, C]` (or shared `[1, C]`) → `[N·C, 1]`, materialised so the full-size
    // ops see a plain per-row scalar.
    let rows = |v: Tensor<B, 2>| {
        let groups = v.dims()[0];
        v.reshape([groups, 1, c]).repeat_dim(1, n / groups).reshape([n * c, 1])
    };
    let shared = |v: Tensor<B, 1>| v.reshape([1, c]);
    let x = x.reshape([n * c, h * w]);
    let gamma = bn.gamma.val();
    let beta = bn.beta.val();
    let out = if B::ad_enabled(&device) {
        // Every (image, channel) row has H·W elements, so the mean of row means is the mean.
        // [N·C, H·W] → [K, C]
        let channel_mean = |t: Tensor<B, 2>| t.mean_dim(1).reshape([k, n / k, c]).mean_dim(1).reshape([k, c]);
        let mean = channel_mean(x.clone());
        let centered = x - rows(mean.clone());
        let var = channel_mean(centered.clone().square());
        let count = (n / k * h * w) as f64;
        let unbiased = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
        // The k updates r ← (1 − m)·r + m·s_j of k separate passes, in sub-batch order.
        let m = bn.momentum;
        let blend = |running: Tensor<B, 1>, batch: Tensor<B, 2>| {
            let batch = batch.detach();
            (0..k).fold(running.to_device(&device), |r, j| {
                r.mul_scalar(1.0 - m).add(batch.clone().narrow(0, j, 1).reshape([c]).mul_scalar(m))
            })
        };
        let running_mean = blend(bn.running_mean.value_sync(), mean);
        let running_var = blend(bn.running_var.value_sync(), var.clone().mul_scalar(unbiased));
        bn.running_mean.update(running_mean.detach());
        bn.running_var.update(running_var.detach());
        let scale = shared(gamma).div(var.add_scalar(bn.epsilon).sqrt());
        centered * rows(scale) + rows(shared(beta))
    } else {
        let mean = bn.running_mean.value().to_device(&device);
        let var = bn.running_var.value().to_device(&device);
        let scale = gamma.div(var.add_scalar(bn.epsilon).sqrt());
        let shift = beta - mean * scale.clone();
        x * rows(shared(scale)) + rows(shared(shift))
    };
    out.reshape([n, c, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::TensorData;

    type AB = Autodiff<Flex>;

    /// Straightforward per-channel loops in f64.
    fn reference(x: &[f32], [n, c, h, w]: [usize; 4], gamma: &[f32], beta: &[f32], eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let hw = h * w;
        let mut out = vec![0.0; x.len()];
        let (mut means, mut vars) = (vec![0.0; c], vec![0.0; c]);
        for ch in 0..c {
            let vals: Vec<f64> = (0..n).flat_map(|i| (0..hw).map(move |j| (i, j))).map(|(i, j)| x[(i * c + ch) * hw + j] as f64).collect();
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
            for i in 0..n {
                for j in 0..hw {
                    let k = (i * c + ch) * hw + j;
                    out[k] = (x[k] as f64 - mean) / (var + eps).sqrt() * gamma[ch] as f64 + beta[ch] as f64;
                }
            }
            means[ch] = mean;
            vars[ch] = var;
        }
        (out, means, vars)
    }

    fn input(shape: [usize; 4]) -> Vec<f32> {
        let len: usize = shape.iter().product();
        (0..len).map(|i| ((i * 37 % 101) as f32 / 17.0 - 2.5) * if i % 3 == 0 { 2.0 } else { 0.7 }).collect()
    }

    #[test]
    fn training_matches_per_channel_loops_and_pytorch_running_stats() {
        let shape = [3, 4, 2, 5];
        let x = input(shape);
        let device = Default::default();
        let mut bn = crate::nets::conv_bn::batch_norm::<AB>(4, &device);
        let gamma = [0.5f32, 1.5, -1.0, 2.0];
        let beta = [0.1f32, -0.2, 0.3, 0.0];
        bn.gamma = burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(gamma.to_vec(), [4]), &device));
        bn.beta = burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(beta.to_vec(), [4]), &device));
        let out = batch_norm_2d(&bn, Tensor::from_data(TensorData::new(x.clone(), shape), &device), 1);
        let (want, means, vars) = reference(&x, shape, &gamma, &beta, 1e-5);
        let out = out.into_data().to_vec::<f32>().unwrap();
        assert_eq!(out.len(), want.len());
        for (g, w) in out.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
        }
        // PyTorch: running = 0.9·running + 0.1·batch, the variance unbiased (30 values per channel).
        let rm = bn.running_mean.value_sync().into_data().to_vec::<f32>().unwrap();
        let rv = bn.running_var.value_sync().into_data().to_vec::<f32>().unwrap();
        for ch in 0..4 {
            assert!((rm[ch] as f64 - 0.1 * means[ch]).abs() < 1e-6, "{} vs {}", rm[ch], means[ch]);
            assert!((rv[ch] as f64 - (0.9 + 0.1 * vars[ch] * 30.0 / 29.0)).abs() < 1e-5, "{} vs {}", rv[ch], vars[ch]);
        }
    }

    #[test]
    fn inference_uses_running_statistics_and_gradients_match_burn() {
        let shape = [2, 3, 3, 2];
        let x = input(shape);
        let device = Default::default();
        let bn = crate::nets::conv_bn::batch_norm::<Flex>(3, &device);
        let out = batch_norm_2d(&bn, Tensor::from_data(TensorData::new(x.clone(), shape), &device), 1);
        // Fresh running stats (mean 0, var 1): y = x / sqrt(1 + ε).
        let out = out.into_data().to_vec::<f32>().unwrap();
        assert_eq!(out.len(), x.len());
        for (g, v) in out.iter().zip(&x) {
            assert!((*g as f64 - *v as f64 / (1.0f64 + 1e-5).sqrt()).abs() < 1e-6);
        }
        // The gradient of a weighted sum equals the one through Burn's own BatchNorm.
        let bn = crate::nets::conv_bn::batch_norm::<AB>(3, &device);
        let weights =
            Tensor::<AB, 4>::from_data(TensorData::new(input([2, 3, 3, 2]).iter().rev().cloned().collect::<Vec<_>>(), shape), &device);
        let grad_of = |ours: bool| {
            let xt = Tensor::<AB, 4>::from_data(TensorData::new(x.clone(), shape), &device).require_grad();
            let y = if ours { batch_norm_2d(&bn, xt.clone(), 1) } else { bn.forward(xt.clone()) };
            let g = (y * weights.clone()).sum().backward();
            (xt.grad(&g).unwrap().into_data().to_vec::<f32>().unwrap(), bn.gamma.grad(&g).unwrap().into_data().to_vec::<f32>().unwrap())
        };
        let (gx, gg) = grad_of(true);
        let (bx, bg) = grad_of(false);
        for (a, b) in gx.iter().zip(&bx).chain(gg.iter().zip(&bg)) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}
