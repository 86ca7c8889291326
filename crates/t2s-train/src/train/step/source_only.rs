//! The source-only training step: supervised cross-entropy on the source batch (method.md §3
//! step 2), the base every other method adds to.

use burn::tensor::{Tensor, TensorData};
use t2s_data::Batch;
use t2s_loss::{cross_entropy, CrossEntropyOptions};
use t2s_model::{resize_bilinear, Precision, Segmentor, T2sAutodiffBackend};

use super::tensors::batch_labels;
use super::StepOutput;
use crate::Result;

/// The source cross-entropy (logits upsampled to the crop, as mmseg's decode head loss), its
/// gradients, and the term named for logging (off the graph, not yet read; see
/// [`StepOutput::losses`]), the student computing in `precision`.
pub fn source_only_step<B: T2sAutodiffBackend>(
    student: &Segmentor<B>,
    batch: &Batch,
    precision: Precision,
    device: &B::Device,
) -> Result<StepOutput<B>> {
    let x = Tensor::from_data(TensorData::new(batch.images.clone(), [batch.len(), 3, batch.height, batch.width]), device);
    let y = batch_labels::<B>(batch, device)?;
    let [_, _, h, w] = x.dims();
    let logits = resize_bilinear(student.at_precision(precision).forward(x).logits, h, w); // [B, C, H, W]
    let loss = cross_entropy(logits, y, &CrossEntropyOptions::default(), None);
    let losses = vec![("loss_source".to_string(), loss.clone().inner())];
    Ok(StepOutput { grads: loss.backward(), losses, stats: Vec::new(), images: None, statistic: None })
}
