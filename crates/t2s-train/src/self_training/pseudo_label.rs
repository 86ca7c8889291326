//! Pseudo-labels and their pixel weights, as DAFormer's `dacs.py` computes them.

use burn::tensor::{activation::softmax, backend::Backend, Tensor, TensorData, Transaction};

/// DAFormer's EMA coefficient at (0-based) iteration `iter`: `min(1 − 1/(iter + 1), max_alpha)`,
/// so the teacher copies the student at the first step and then follows it ever more slowly.
pub fn ema_alpha(iter: usize, max_alpha: f64) -> f64 {
    (1.0 - 1.0 / (iter as f64 + 1.0)).min(max_alpha)
}

/// Pseudo-labels of a target batch.
#[derive(Debug, Clone)]
pub struct PseudoLabels<B: Backend> {
    /// Teacher argmax `[N, H, W]` (row-major, on the host, where ClassMix pastes them).
    pub labels: Vec<u8>,
    /// Pixel weights `[N, H, W]` (row-major, on the host, where ClassMix uses them): the
    /// confident fraction, 0 in the margins.
    pub weights: Vec<f32>,
    /// The confident fraction itself (for logs).
    pub confident_fraction: f32,
    /// Teacher softmax `[N, C, H, W]` (for the T2S statistics and entropy).
    pub probs: Tensor<B, 4>,
}

/// From the teacher's logits `[N, C, H, W]` (at label resolution): label = argmax; the weight
/// of every pixel is the fraction of pixels **of the whole batch** whose max-probability is at
/// least `threshold` (DAFormer: `torch.sum(ps_large_p).item() / ps_size`, one scalar for the
/// batch), and 0 on the top `margin[0]` and bottom `margin[1]` rows, given for a 512-high crop and
/// scaled to `H` (DAFormer's `psweight_ignore_top/bottom` = 15/120 at 512). Reads back the labels
/// and the fraction in one transaction (one wait for the device).
pub fn pseudo_labels<B: Backend>(teacher_logits: Tensor<B, 4>, threshold: f64, margin: [usize; 2]) -> PseudoLabels<B> {
    let [n, _, h, w] = teacher_logits.dims();
    let probs = softmax(teacher_logits.detach(), 1);
    let (max, labels) = probs.clone().max_dim_with_indices(1);
    let read =
        Transaction::default().register(labels.reshape([n * h * w])).register(max.greater_equal_elem(threshold).float().mean()).execute();
    let [labels, confident]: [TensorData; 2] = read.try_into().expect("a transaction returns one result per registered tensor");
    let labels: Vec<u8> = labels.iter::<i64>().map(|v| v.clamp(0, 255) as u8).collect();
    let fraction = confident.iter::<f32>().next().unwrap_or(0.0);
    let scale = |rows: usize| ((rows * h) as f64 / 512.0).round() as usize;
    let (top, bottom) = (scale(margin[0]).min(h), scale(margin[1]).min(h));
    let mut row_weight = vec![fraction; h];
    row_weight[..top].iter_mut().for_each(|v| *v = 0.0);
    row_weight[h - bottom..].iter_mut().for_each(|v| *v = 0.0);
    let weights = (0..n).flat_map(|_| row_weight.iter().flat_map(|&v| std::iter::repeat_n(v, w))).collect();
    PseudoLabels { labels, weights, confident_fraction: fraction, probs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn ema_alpha_ramps_then_caps() {
        assert_eq!(ema_alpha(0, 0.999), 0.0);
        assert_eq!(ema_alpha(1, 0.999), 0.5);
        assert_eq!(ema_alpha(9, 0.999), 0.9);
        assert_eq!(ema_alpha(5_000, 0.999), 0.999);
    }

    #[test]
    fn batch_fraction_and_scaled_margins() {
        // 2 images, 2 classes, 4×1 pixels; logits (a, 0): p(class 0) = sigmoid(a).
        // a = 5 → 0.9933 ≥ 0.968 (confident), a = 1 → 0.731, a = −5 → class 1 with 0.9933.
        let a = [5.0f32, 1.0, -5.0, 5.0, 1.0, 1.0, 1.0, -5.0];
        let mut v = Vec::new();
        for img in 0..2 {
            v.extend_from_slice(&a[img * 4..img * 4 + 4]); // class 0 logits
            v.extend_from_slice(&[0.0; 4]); // class 1 logits
        }
        let logits = Tensor::<Flex, 4>::from_data(TensorData::new(v.clone(), [2, 2, 4, 1]), &Default::default());
        // Margins [128, 128] at 512 rows → 1 row each at H = 4.
        let p = pseudo_labels(logits, 0.968, [128, 128]);
        // Confident pixels: 5, −5, 5 in image 0 and −5 in image 1 → 4 of 8 = 0.5 for the batch.
        assert!((p.confident_fraction - 0.5).abs() < 1e-7);
        assert_eq!(p.labels, vec![0, 0, 1, 0, 0, 0, 0, 1]);
        assert_eq!(p.weights, vec![0.0, 0.5, 0.5, 0.0, 0.0, 0.5, 0.5, 0.0]);

        // The same pixels twice across (W = 2): weights are `[N, H, W]` row-major, each row's
        // weight repeated along it.
        let wide: Vec<f32> = v.iter().flat_map(|&x| [x, x]).collect();
        let p = pseudo_labels(Tensor::<Flex, 4>::from_data(TensorData::new(wide, [2, 2, 4, 2]), &Default::default()), 0.968, [128, 128]);
        let row = [0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0];
        assert_eq!(p.weights, [row, row].concat());
    }
}
