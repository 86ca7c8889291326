//! The host mixing of a self-training step (method.md §3 steps 4–6): the teacher's pseudo-labels
//! on the clean target images (at crop resolution), read back, then ClassMix of the source onto
//! the target and the strong augmentation, on host images (`t2s_data::batch_mix`).

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rand::Rng;
use t2s_data::{class_mix, Batch, MixedBatch};
use t2s_model::{resize_bilinear, SegOutput};

use crate::config::UdaSection;
use crate::self_training::pseudo_labels;
use crate::Result;

/// A mixed batch with what it was made from.
pub(super) struct Mixed<B: Backend> {
    /// Images, labels and pixel weights for the student.
    pub batch: MixedBatch,
    /// The target's pseudo-labels `[N, H, W]` (MIC's labels, and the debug strip's).
    pub pseudo_labels: Vec<u8>,
    /// Their pixel weights `[N, H, W]` (MIC's).
    pub pseudo_weights: Vec<f32>,
    /// The teacher's softmax on the target at crop resolution `[N, C, H, W]` (the
    /// `target_confidence` re-weighting statistic).
    pub probs: Tensor<B, 4>,
}

/// Pseudo-labels from the teacher's output on `target`, then ClassMix of `source` onto it; logs
/// the confident fraction as `pseudo_confidence`.
pub(super) fn mix_target<B: Backend>(
    source: &Batch,
    target: &Batch,
    teacher: &SegOutput<B>,
    uda: &UdaSection,
    rng: &mut impl Rng,
    stats: &mut Vec<(String, f64)>,
) -> Result<Mixed<B>> {
    let (h, w) = (source.height, source.width);
    let pl = pseudo_labels(resize_bilinear(teacher.logits.clone(), h, w), uda.pseudo_threshold, uda.pseudo_label_margin);
    stats.push(("pseudo_confidence".to_string(), pl.confident_fraction as f64));
    let batch = class_mix(source, target, &pl.labels, &pl.weights, uda.classmix, &uda.strong_aug(), rng)?;
    Ok(Mixed { batch, pseudo_labels: pl.labels, pseudo_weights: pl.weights, probs: pl.probs })
}
