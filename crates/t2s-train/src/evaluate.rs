//! Evaluation over a whole labelled split (method.md §7): each image optionally resized
//! (keep-ratio, as the test pipeline of the anchors), segmented whole or by sliding window, its
//! logits resized bilinearly to the label's full resolution, argmax, accumulated into one
//! confusion matrix.

use t2s_data::transforms::resize::{rescale_size, resize_bilinear};
use t2s_data::{Dataset, IGNORE_LABEL};
use t2s_model::T2sBackend;
use t2s_model::{resize_bilinear as resize_logits, Segmentor};

use crate::eval_report::EvalReport;
use crate::inference::{infer_logits, InferenceMode};
use crate::metrics::{ConfusionMatrix, Protocol};
use crate::{Result, TrainError};

/// A sample with its predicted train ids `[H·W]` at label resolution, kept for pictures.
pub type KeptPrediction = (t2s_data::Sample, Vec<u8>);

/// Writes each kept prediction as `<name>_pred<pred_suffix>.png` and its label as `<name>_gt.png`
/// (Cityscapes colours of `space`) into `dir`.
pub fn save_kept(kept: &[KeptPrediction], space: &t2s_data::LabelSpace, dir: &std::path::Path, pred_suffix: &str) -> Result<()> {
    use t2s_data::visualize::{colorize, save_png};
    for (sample, pred) in kept {
        let Some(label) = sample.label.as_ref() else { continue };
        let (w, h) = label.dimensions();
        save_png(&colorize(pred, w, h, space), &dir.join(format!("{}_pred{pred_suffix}.png", sample.name)))?;
        save_png(&colorize(label.as_raw(), w, h, space), &dir.join(format!("{}_gt.png", sample.name)))?;
    }
    Ok(())
}

/// How to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Whole image or sliding window.
    pub inference: InferenceMode,
    /// Keep-ratio resize `[long, short]` of the input (labels are never resized).
    pub resize: Option<[u32; 2]>,
    /// mIoU protocols, the first being the headline.
    pub protocols: Vec<Protocol>,
    /// Label of the report: dataset and split.
    pub dataset: String,
    /// `student` or `teacher`, for the report.
    pub weights: String,
}

/// Evaluates `model` on every sample of `dataset` (which must have labels); `progress` is
/// called after each image with the number done. Also returns the first `keep` predictions
/// (train-id maps at label resolution) for pictures.
pub fn evaluate<B: T2sBackend>(
    model: &Segmentor<B>,
    device: &B::Device,
    dataset: &dyn Dataset,
    options: &EvalOptions,
    keep: usize,
    progress: &dyn Fn(usize),
) -> Result<(EvalReport, Vec<KeptPrediction>)> {
    if !dataset.has_labels() {
        return Err(TrainError::Usage(format!("{}: evaluation needs labels, and this set has none", options.dataset)));
    }
    let classes = dataset.label_space().len();
    let mut confusion = ConfusionMatrix::new(classes);
    let mut kept = Vec::new();
    for i in 0..dataset.len() {
        let sample = dataset.get(i)?;
        let label = sample.label.as_ref().ok_or_else(|| TrainError::Usage(format!("{}: no label for {}", options.dataset, sample.name)))?;
        let pred = predict_labels(model, device, &sample.image, label.width(), label.height(), options)?;
        confusion.add(label.as_raw(), &pred, IGNORE_LABEL, &sample.name)?;
        if kept.len() < keep {
            kept.push((sample, pred));
        }
        progress(i + 1);
    }
    let report =
        EvalReport::new(&options.dataset, &options.weights, dataset.len(), confusion, &dataset.label_space().names, &options.protocols);
    Ok((report, kept))
}

/// Train-id prediction `[H·W]` (row-major) of one image at the label size `width × height`.
pub fn predict_labels<B: T2sBackend>(
    model: &Segmentor<B>,
    device: &B::Device,
    image: &image::RgbImage,
    width: u32,
    height: u32,
    options: &EvalOptions,
) -> Result<Vec<u8>> {
    let resized;
    let input = match options.resize {
        Some([long, short]) => {
            let (w, h) = rescale_size(image.width(), image.height(), long, short);
            resized = resize_bilinear(image, w, h);
            &resized
        }
        None => image,
    };
    let (w, h) = input.dimensions();
    let x = crate::predict::image_tensor::<B>(input, device);
    let logits = infer_logits(model, x, options.inference); // [1, C, h, w]
    let logits = if (w, h) == (width, height) { logits } else { resize_logits(logits, height as usize, width as usize) }; // [1, C, H, W]
    Ok(logits.argmax(1).into_data().iter::<i64>().map(|v| v as u8).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use image::{GrayImage, RgbImage};
    use t2s_data::{LabelSpace, Sample};
    use t2s_model::SegmentorConfig;

    /// Two labelled images of different sizes.
    struct Toy(LabelSpace);
    impl Dataset for Toy {
        fn len(&self) -> usize {
            2
        }
        fn name(&self, i: usize) -> String {
            format!("toy{i}")
        }
        fn get(&self, i: usize) -> t2s_data::Result<Sample> {
            let (w, h) = if i == 0 { (40, 24) } else { (33, 17) };
            let image = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 11) as u8, ((x + y) * 3) as u8]));
            let label = GrayImage::from_fn(w, h, |x, _| image::Luma([if x % 5 == 0 { 255 } else { (x % 3) as u8 }]));
            Ok(Sample { name: self.name(i), image, label: Some(label) })
        }
        fn label_space(&self) -> &LabelSpace {
            &self.0
        }
        fn has_labels(&self) -> bool {
            true
        }
    }

    #[test]
    fn confusion_equals_an_independent_recount_of_the_predictions() {
        let device = Default::default();
        let mut cfg = SegmentorConfig::preset("deeplabv2-r18").unwrap();
        cfg.num_classes = 3;
        let model = cfg.init::<Flex>(&device).unwrap();
        let space = LabelSpace { names: vec!["a".into(), "b".into(), "c".into()], colors: vec![[0, 0, 0]; 3] };
        let data = Toy(space);
        let opts = EvalOptions {
            inference: InferenceMode::Whole,
            resize: Some([64, 32]),
            protocols: vec![Protocol::all(3)],
            dataset: "toy".into(),
            weights: "student".into(),
        };
        let (report, kept) = evaluate(&model, &device, &data, &opts, 2, &|_| {}).unwrap();
        // Recount from the kept predictions and the labels by hand.
        let mut tp = [0u64; 3];
        let mut truth = [0u64; 3];
        let mut predicted = [0u64; 3];
        for (sample, pred) in &kept {
            let label = sample.label.as_ref().unwrap();
            assert_eq!(pred.len() as u32, label.width() * label.height());
            for (&t, &p) in label.as_raw().iter().zip(pred) {
                if t == 255 {
                    continue;
                }
                truth[t as usize] += 1;
                predicted[p as usize] += 1;
                if t == p {
                    tp[t as usize] += 1;
                }
            }
        }
        for c in 0..3 {
            let union = truth[c] + predicted[c] - tp[c];
            let want = (union > 0).then(|| tp[c] as f64 / union as f64);
            assert_eq!(report.classes[c].iou, want, "class {c}");
        }
        assert_eq!(report.images, 2);
        assert_eq!(report.miou[0].name, "mIoU3");
    }
}
