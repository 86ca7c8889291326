//! Per-pixel statistics of a softmax output that the samplers need on the host: entropy (for
//! unreliable pixels), the top-3 classes (for negative eligibility), the probability of a known
//! class (for re-weighting). Computed on the device; only these small maps are read back.

use burn::tensor::{backend::Backend, Int, Tensor};

/// Entropy of class probabilities `[N, C, H, W]` → `[N, H, W]`, as U2PL computes it:
/// `−Σ_c p·ln(p + 1e-10)`.
pub fn entropy<B: Backend>(probs: Tensor<B, 4>) -> Tensor<B, 3> {
    let [n, _, h, w] = probs.dims();
    (probs.clone() * probs.add_scalar(1e-10).log()).sum_dim(1).neg().reshape([n, h, w])
}

/// The `k ≤ C` most probable classes per pixel, `[N, C, H, W]` → `[N, k, H, W]`, most probable first.
///
/// Each rank is an arg-max over the classes not yet taken, on the device, because
/// `topk_with_indices` sorts on the host on Burn 0.21's CubeCL backends (docs/burn-notes.md,
/// "No device sort on the CubeCL backends"; its cost: docs/gpu.md, "Results, 2026-11-28 (third
/// session)").
pub fn top_classes<B: Backend>(probs: Tensor<B, 4>, k: usize) -> Tensor<B, 4, Int> {
    let [n, c, h, w] = probs.dims();
    let classes = Tensor::<B, 1, Int>::arange(0..c as i64, &probs.device()).reshape([1, c, 1, 1]).expand([n, c, h, w]);
    let mut remaining = probs;
    let mut ranks = Vec::with_capacity(k);
    for rank in 0..k.min(c) {
        let best = remaining.clone().argmax(1); // [N, 1, H, W]
        if rank + 1 < k {
            // Below any probability: the taken class is never picked again.
            let taken = classes.clone().equal(best.clone().expand([n, c, h, w]));
            remaining = remaining.mask_fill(taken, -1.0);
        }
        ranks.push(best);
    }
    Tensor::cat(ranks, 1)
}

/// The probability of each pixel's labelled class, `probs` `[N, C, H, W]` and `labels`
/// `[N, H, W]` → `[N, H, W]`; pixels whose label is outside `0..C` (ignore) get 0.
pub fn probability_of_label<B: Backend>(probs: Tensor<B, 4>, labels: Tensor<B, 3, Int>) -> Tensor<B, 3> {
    let [n, c, h, w] = probs.dims();
    let outside = labels.clone().greater_equal_elem(c as i64).bool_or(labels.clone().lower_elem(0));
    let safe = labels.mask_fill(outside.clone(), 0);
    let picked = probs.gather(1, safe.reshape([n, 1, h, w])).reshape([n, h, w]);
    picked.mask_fill(outside, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    fn probs() -> Tensor<Flex, 4> {
        // One image, 3 classes, 1×2 pixels: pixel 0 = (0.7, 0.2, 0.1), pixel 1 = (0.3, 0.3, 0.4).
        let v = vec![0.7f32, 0.3, 0.2, 0.3, 0.1, 0.4];
        Tensor::from_data(TensorData::new(v, [1, 3, 1, 2]), &Default::default())
    }

    #[test]
    fn entropy_matches_hand_values() {
        let e = entropy(probs()).into_data().to_vec::<f32>().unwrap();
        let h = |p: &[f64]| -p.iter().map(|x| x * (x + 1e-10).ln()).sum::<f64>();
        assert!((e[0] as f64 - h(&[0.7, 0.2, 0.1])).abs() < 1e-6);
        assert!((e[1] as f64 - h(&[0.3, 0.3, 0.4])).abs() < 1e-6);
    }

    /// Against a host sort of each pixel's scores (distinct values, so the order is unique).
    #[test]
    fn top_classes_match_a_sorted_reference() {
        let (n, c, h, w, k) = (2, 5, 3, 4, 3);
        // A fixed permutation-like pattern: distinct per pixel, different orders across pixels.
        let v: Vec<f32> = (0..n * c * h * w).map(|i| ((i * 37 + 11) % 101) as f32 / 101.0).collect();
        let probs = Tensor::<Flex, 4>::from_data(TensorData::new(v.clone(), [n, c, h, w]), &Default::default());
        let top = top_classes(probs, k).into_data().convert::<i64>().to_vec::<i64>().unwrap();
        for img in 0..n {
            for pix in 0..h * w {
                let mut order: Vec<usize> = (0..c).collect();
                order.sort_by(|&a, &b| v[(img * c + b) * h * w + pix].total_cmp(&v[(img * c + a) * h * w + pix]));
                for r in 0..k {
                    assert_eq!(top[(img * k + r) * h * w + pix], order[r] as i64, "image {img} pixel {pix} rank {r}");
                }
            }
        }
    }

    #[test]
    fn top_classes_and_label_probability() {
        let top = top_classes(probs(), 2).into_data().convert::<i64>().to_vec::<i64>().unwrap();
        // [1, 2, 1, 2] layout: rank 0 for both pixels, then rank 1. Pixel 1 ties 0.3/0.3 for
        // second place, so accept either class there.
        assert_eq!(top[0], 0);
        assert_eq!(top[1], 2);
        assert_eq!(top[2], 1);
        assert!(top[3] == 0 || top[3] == 1);
        let labels = Tensor::<Flex, 3, Int>::from_data(TensorData::new(vec![1i64, 255], [1, 1, 2]), &Default::default());
        assert_eq!(probability_of_label(probs(), labels).into_data().to_vec::<f32>().unwrap(), vec![0.2, 0.0]);
    }
}
