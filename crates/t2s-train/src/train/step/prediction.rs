//! The student's pass and its segmentation cross-entropy, single-scale or HRDA
//! (`model.network.hrda`): with HRDA each sub-batch gets a detail crop, and the loss is HRDA's,
//! `(1 − w)·CE(fused) + w·CE(detail on its crop)` with `w` = `detail_loss_weight`
//! (`HRDAHead.losses`), logged as two terms.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use rand::Rng;
use t2s_loss::{cross_entropy, CrossEntropyOptions};
use t2s_model::nets::hrda::{draw_crop_box, CropBox};
use t2s_model::{resize_bilinear, Encode, SegOutput, Segmentor, T2sBackend};

use super::tensors::split_output;

/// The student's output on one sub-batch.
pub(super) struct Prediction<B: Backend> {
    /// Logits (HRDA: the fused prediction), embedding and backbone features (HRDA: the
    /// context pass's).
    pub out: SegOutput<B>,
    /// HRDA: the detail prediction `[n, C, ch/s, cw/s]` and its crop (full-resolution pixels).
    pub detail: Option<(Tensor<B, 4>, CropBox)>,
}

/// One detail crop per sub-batch for a student with HRDA, drawn from `rng` in sub-batch order
/// (HRDA draws one per `forward_train` call); None without HRDA.
pub(super) fn detail_crops<B: Backend>(
    student: &Segmentor<B>,
    parts: usize,
    h: usize,
    w: usize,
    rng: &mut impl Rng,
) -> Option<Vec<CropBox>> {
    let hrda = student.hrda.as_ref()?;
    Some((0..parts).map(|_| draw_crop_box(h, w, hrda.detail_crop, hrda.crop_divisible, rng)).collect())
}

/// The student's pass over `k` sub-batches of `n` images (`x: [k·n, 3, H, W]`), split per
/// sub-batch; `crops` (one per sub-batch) for a student with HRDA; `encode`, the backbone's pass
/// when it is recomputed (`super::recompute`).
pub(super) fn student_pass<B: T2sBackend>(
    student: &Segmentor<B>,
    x: Tensor<B, 4>,
    crops: Option<&[CropBox]>,
    (k, n): (usize, usize),
    detach_projection_input: bool,
    encode: Option<&mut Encode<'_, B>>,
) -> Vec<Prediction<B>> {
    match crops {
        Some(crops) => {
            let out = match encode {
                Some(encode) => student.forward_hrda_encoded(x, crops, detach_projection_input, encode),
                None => student.forward_hrda(x, crops, detach_projection_input),
            };
            let detail = out.detail;
            let fused = SegOutput { logits: out.fused, ..out.context };
            split_output(fused, k, n)
                .into_iter()
                .zip(crops)
                .enumerate()
                .map(|(i, (out, crop))| Prediction { out, detail: Some((detail.clone().narrow(0, i * n, n), *crop)) })
                .collect()
        }
        None => {
            let out = match encode {
                Some(encode) => student.forward_encoded(x, k, detach_projection_input, encode),
                None => student.forward_with(x, k, detach_projection_input),
            };
            split_output(out, k, n).into_iter().map(|out| Prediction { out, detail: None }).collect()
        }
    }
}

/// The segmentation cross-entropy of a prediction against `labels [n, H, W]` with optional
/// pixel `weights [n, H, W]` (mean over all pixels, mmseg's decode loss), the logits resized to
/// the labels. With HRDA: `((1 − w)·CE(fused), Some(w·CE(detail)))`, the detail logits resized
/// to their crop and compared with the labels and weights there.
pub(super) fn segmentation_ce<B: Backend>(
    pred: &Prediction<B>,
    labels: Tensor<B, 3, Int>,
    weights: Option<Tensor<B, 3>>,
    detail_weight: f64,
) -> (Tensor<B, 1>, Option<Tensor<B, 1>>) {
    let [n, h, w] = labels.dims();
    let ce = |logits: Tensor<B, 4>, labels: Tensor<B, 3, Int>, weights: Option<Tensor<B, 3>>| {
        let [_, lh, lw] = labels.dims();
        cross_entropy(resize_bilinear(logits, lh, lw), labels, &CrossEntropyOptions::default(), weights)
    };
    match &pred.detail {
        None => (ce(pred.out.logits.clone(), labels, weights), None),
        Some((detail, b)) => {
            let crop = |t: Tensor<B, 3>| t.slice([0..n, b.y1..b.y2, b.x1..b.x2]);
            let crop_labels = labels.clone().slice([0..n, b.y1..b.y2, b.x1..b.x2]);
            let detail_loss = ce(detail.clone(), crop_labels, weights.clone().map(crop)).mul_scalar(detail_weight);
            debug_assert!(b.y2 <= h && b.x2 <= w);
            let fused_loss = ce(pred.out.logits.clone(), labels, weights).mul_scalar(1.0 - detail_weight);
            (fused_loss, Some(detail_loss))
        }
    }
}

/// Logs a segmentation term as `name` (and HRDA's detail term as `name_detail`) into `losses`
/// (off the graph, see [`super::StepOutput::losses`]) and returns their sum.
pub(super) fn log_segmentation<B: AutodiffBackend>(
    losses: &mut Vec<(String, Tensor<B::InnerBackend, 1>)>,
    name: &str,
    fused: Tensor<B, 1>,
    detail: Option<Tensor<B, 1>>,
) -> Tensor<B, 1> {
    losses.push((name.to_string(), fused.clone().inner()));
    match detail {
        Some(d) => {
            losses.push((format!("{name}_detail"), d.clone().inner()));
            fused + d
        }
        None => fused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    type B = Flex;

    /// Zero logits give every labelled pixel CE ln C; the mean is over all pixels (ignored ones
    /// count 0), so each term is ln C times the mean weight of its labelled pixels: over the
    /// whole image for the fused term, over the crop for the detail term.
    #[test]
    fn hrda_splits_the_loss_between_the_fused_and_the_detail_prediction() {
        let device = Default::default();
        let (c, h, w) = (3, 4, 8);
        // Weights 1 in the left half, 3 in the right; one ignored pixel inside the crop.
        let weights: Vec<f32> = (0..h * w).map(|i| if i % w < 4 { 1.0 } else { 3.0 }).collect();
        let mut labels = vec![1i64; h * w];
        labels[w + 5] = 255;
        let labels = Tensor::<B, 3, Int>::from_data(TensorData::new(labels, [1, h, w]), &device);
        let weights = Tensor::<B, 3>::from_data(TensorData::new(weights, [1, h, w]), &device);
        let out = SegOutput { logits: Tensor::zeros([1, c, 2, 4], &device), embedding: None, features: Vec::new() };
        // The detail crop: rows 0..2, columns 4..8 (all weight 3, one pixel ignored), logits at
        // half its resolution.
        let crop = CropBox { y1: 0, y2: 2, x1: 4, x2: 8 };
        let pred = Prediction { out, detail: Some((Tensor::zeros([1, c, 1, 2], &device), crop)) };
        let (fused, detail) = segmentation_ce(&pred, labels.clone(), Some(weights.clone()), 0.25);
        let ln_c = (c as f64).ln();
        // Whole image: (16·1 + 15·3) / 32 labelled weight per pixel.
        let fused_expected = 0.75 * ln_c * (16.0 + 15.0 * 3.0) / 32.0;
        let detail_expected = 0.25 * ln_c * (7.0 * 3.0) / 8.0;
        let got = |t: Tensor<B, 1>| t.into_scalar() as f64;
        assert!((got(fused) - fused_expected).abs() < 1e-5, "fused");
        assert!((got(detail.unwrap()) - detail_expected).abs() < 1e-5, "detail");
        // Without HRDA: the plain CE, one term.
        let plain = Prediction { out: pred.out.clone(), detail: None };
        let (l, d) = segmentation_ce(&plain, labels, Some(weights), 0.25);
        assert!(d.is_none() && (got(l) - ln_c * 61.0 / 32.0).abs() < 1e-5);
    }
}
