//! The source-only training step: supervised cross-entropy on the source batch (method.md §3
//! step 2), the base every other method adds to.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use t2s_data::Batch;
use t2s_loss::{cross_entropy, CrossEntropyOptions};
use t2s_model::T2sAutodiffBackend;
use t2s_model::{resize_bilinear, Segmentor};

use crate::{Result, TrainError};

/// Images of a batch as a `[B, 3, H, W]` tensor and its labels as `[B, H, W]`.
pub(crate) fn batch_tensors<B: AutodiffBackend>(batch: &Batch, device: &B::Device) -> Result<(Tensor<B, 4>, Tensor<B, 3, Int>)> {
    let (n, h, w) = (batch.len(), batch.height, batch.width);
    let x = Tensor::from_data(TensorData::new(batch.images.clone(), [n, 3, h, w]), device);
    let labels = batch.labels.as_ref().ok_or_else(|| TrainError::Usage("the source batch has no labels".into()))?;
    let y = Tensor::from_data(TensorData::new(labels.iter().map(|&v| v as i64).collect::<Vec<_>>(), [n, h, w]), device);
    Ok((x, y))
}

/// The source cross-entropy (logits upsampled to the crop, as mmseg's decode head loss) and the
/// named loss terms for logging (off the graph, not yet read; see `StepOutput::losses`).
pub(crate) fn source_only_loss<B: T2sAutodiffBackend>(
    student: &Segmentor<B>,
    batch: &Batch,
    device: &B::Device,
) -> Result<(Tensor<B, 1>, Vec<(String, Tensor<B::InnerBackend, 1>)>)> {
    let (x, y) = batch_tensors::<B>(batch, device)?;
    let [_, _, h, w] = x.dims();
    let logits = resize_bilinear(student.forward(x).logits, h, w); // [B, C, H, W]
    let loss = cross_entropy(logits, y, &CrossEntropyOptions::default(), None);
    let term = loss.clone().inner();
    Ok((loss, vec![("loss_source".into(), term)]))
}
