//! Host buffers to tensors and back, for the step's parts: images, labels, per-pixel class
//! weights, and the outputs of a pass over several sub-batches split back per sub-batch.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use t2s_data::Batch;
use t2s_model::SegOutput;

use crate::{Result, TrainError};

/// Label ids `[B, H, W]` (255 = ignore) as a tensor.
pub(super) fn label_tensor<B: Backend>(labels: &[u8], shape: [usize; 3], device: &B::Device) -> Tensor<B, 3, Int> {
    Tensor::from_data(TensorData::new(labels.iter().map(|&v| v as i64).collect::<Vec<_>>(), shape), device)
}

/// The labels of a (source) batch as `[B, H, W]`; a batch without labels is an error.
pub(super) fn batch_labels<B: Backend>(batch: &Batch, device: &B::Device) -> Result<Tensor<B, 3, Int>> {
    let labels = batch.labels.as_ref().ok_or_else(|| TrainError::Internal("the source batch has no labels".into()))?;
    Ok(label_tensor(labels, [batch.len(), batch.height, batch.width], device))
}

/// Normalised image buffers of `n` images each, concatenated along N: `[parts·n, 3, h, w]`.
pub(super) fn upload<B: Backend>(parts: &[&[f32]], n: usize, h: usize, w: usize, device: &B::Device) -> Tensor<B, 4> {
    Tensor::from_data(TensorData::new(parts.concat(), [parts.len() * n, 3, h, w]), device)
}

/// Train ids of an Int tensor as bytes (for the debug strip).
pub(super) fn to_u8<B: Backend, const D: usize>(t: Tensor<B, D, Int>) -> Vec<u8> {
    t.into_data().iter::<i64>().map(|v| v.clamp(0, 255) as u8).collect()
}

/// Per-pixel class weights `w[label]` `[N, H, W]` (1 on ignored pixels, which CE zeroes anyway).
pub(super) fn class_pixel_weights<B: Backend>(weights: &[f32], labels: Tensor<B, 3, Int>) -> Tensor<B, 3> {
    let [n, h, w] = labels.dims();
    let c = weights.len();
    let mut table = weights.to_vec();
    table.push(1.0); // index c: every label ≥ c, i.e. ignore
    let device = labels.device();
    let idx = labels.clamp(0, c as i64);
    Tensor::<B, 1>::from_data(TensorData::new(table, [c + 1]), &device).select(0, idx.reshape([n * h * w])).reshape([n, h, w])
}

/// The outputs of a pass over `parts` sub-batches of `n` images each, split back per sub-batch
/// (logits, embedding and features narrowed along N; their gradients flow back into the joint
/// pass).
pub(super) fn split_output<B: Backend>(out: SegOutput<B>, parts: usize, n: usize) -> Vec<SegOutput<B>> {
    (0..parts)
        .map(|i| SegOutput {
            logits: out.logits.clone().narrow(0, i * n, n),
            embedding: out.embedding.as_ref().map(|e| e.clone().narrow(0, i * n, n)),
            features: out.features.iter().map(|f| f.clone().narrow(0, i * n, n)).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn class_pixel_weights_index_by_label_and_ignore_gets_one() {
        let labels = Tensor::<Flex, 3, Int>::from_data(TensorData::new(vec![0i64, 2, 255, 1], [1, 2, 2]), &Default::default());
        let w = class_pixel_weights(&[0.5, 2.0, 3.0], labels);
        assert_eq!(w.into_data().to_vec::<f32>().unwrap(), vec![0.5, 3.0, 1.0, 2.0]);
    }
}
