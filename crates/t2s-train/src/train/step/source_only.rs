//! The source-only training step: supervised cross-entropy on the source batch (method.md §3
//! step 2), the base every other method adds to.

use burn::tensor::{Tensor, TensorData};
use t2s_data::{seeded_rng, Batch};
use t2s_model::{Precision, Segmentor, T2sAutodiffBackend};

use super::prediction::{detail_crops, log_segmentation, segmentation_ce, student_pass};
use super::recompute::pass_and_backward;
use super::tensors::batch_labels;
use super::{StepOutput, STEP_SEED_SALT};
use crate::config::Recompute;
use crate::{Result, TrainError};

/// The source cross-entropy (logits upsampled to the crop, as mmseg's decode head loss), its
/// gradients, and the term named for logging (off the graph, not yet read; see
/// [`StepOutput::losses`]), the student computing in `precision` and recomputing as `recompute` says. With HRDA, HRDA's loss on a
/// detail crop drawn from the run's `seed` and the step's draw index (`replicas::draw_index`; logged as `loss_source` and
/// `loss_source_detail`).
pub fn source_only_step<B: T2sAutodiffBackend>(
    student: &Segmentor<B>,
    batch: &Batch,
    (precision, recompute): (Precision, Recompute),
    (seed, draw): (u64, u64),
    device: &B::Device,
) -> Result<StepOutput<B>> {
    let (n, h, w) = (batch.len(), batch.height, batch.width);
    let x = Tensor::from_data(TensorData::new(batch.images.clone(), [n, 3, h, w]), device);
    let y = batch_labels::<B>(batch, device)?;
    let crops = detail_crops(student, 1, h, w, &mut seeded_rng(seed ^ STEP_SEED_SALT, draw));
    let detail_weight = student.hrda.as_ref().map_or(0.0, |hrda| hrda.detail_loss_weight);
    let mut losses = Vec::with_capacity(2);
    let grads = pass_and_backward(student, precision, recompute, |encode| {
        let pred = student_pass(&student.at_precision(precision), x, crops.as_deref(), (1, n), false, encode).remove(0);
        let (fused, detail) = segmentation_ce(&pred, y, None, detail_weight);
        Ok(Some(log_segmentation(&mut losses, "loss_source", fused, detail)))
    })?
    .ok_or_else(|| TrainError::Internal("a source-only step without its loss".into()))?;
    Ok(StepOutput { grads, losses, stats: Vec::new(), images: None, statistic: None })
}
