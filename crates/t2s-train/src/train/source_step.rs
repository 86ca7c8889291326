//! The source-only training step: supervised cross-entropy on the source batch (method.md §3
//! step 2), the base every other method adds to.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use t2s_data::Batch;
use t2s_loss::{cross_entropy, CrossEntropyOptions};
use t2s_model::T2sAutodiffBackend;
use t2s_model::{resize_bilinear, Segmentor};

use crate::{Result, TrainError};

/// Label ids `[B, H, W]` (255 = ignore) as a tensor.
pub(crate) fn label_tensor<B: AutodiffBackend>(labels: &[u8], shape: [usize; 3], device: &B::Device) -> Tensor<B, 3, Int> {
    Tensor::from_data(TensorData::new(labels.iter().map(|&v| v as i64).collect::<Vec<_>>(), shape), device)
}

/// The labels of a (source) batch as `[B, H, W]`; a batch without labels is an error.
pub(crate) fn batch_labels<B: AutodiffBackend>(batch: &Batch, device: &B::Device) -> Result<Tensor<B, 3, Int>> {
    let labels = batch.labels.as_ref().ok_or_else(|| TrainError::Usage("the source batch has no labels".into()))?;
    Ok(label_tensor(labels, [batch.len(), batch.height, batch.width], device))
}

/// Images of a batch as a `[B, 3, H, W]` tensor and its labels as `[B, H, W]`.
pub(crate) fn batch_tensors<B: AutodiffBackend>(batch: &Batch, device: &B::Device) -> Result<(Tensor<B, 4>, Tensor<B, 3, Int>)> {
    let x = Tensor::from_data(TensorData::new(batch.images.clone(), [batch.len(), 3, batch.height, batch.width]), device);
    Ok((x, batch_labels(batch, device)?))
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
