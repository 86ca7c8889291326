//! The student's part of a self-training step: its sub-batches (source, mixed with a target set,
//! pseudo-target for `t2s`, MIC's masked target with `uda.mic`), their loss terms, and the
//! gradients of the summed loss, from one joint pass or from one pass per sub-batch
//! (`uda.student_passes`). The loss terms are the same code either way ([`StudentTerms::loss`],
//! one sub-batch at a time); with HRDA each segmentation term is HRDA's ([`super::prediction`]).

use burn::tensor::activation::softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;
use t2s_data::MixedBatch;
use t2s_loss::{class_mask, downscale_labels_majority, feature_distance, ReweightStatistic};
use t2s_model::{resize_bilinear, Precision, Segmentor, T2sAutodiffBackend};

use super::super::adaptation::SelfTraining;
use super::super::grad_sum::add_gradients;
use super::prediction::{detail_crops, log_segmentation, segmentation_ce, student_pass, Prediction};
use super::recompute::pass_and_backward;
use super::t2s_side::no_embedding;
use super::tensors::{class_pixel_weights, label_tensor, to_u8, upload};
use super::PendingStatistic;
use crate::config::{Recompute, RunConfig, StudentPasses};
use crate::t2s_term::T2sPlan;
use crate::{Result, TrainError};

/// A sub-batch of the student's step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Source,
    Mixed,
    PseudoTarget,
    /// MIC's masked target images.
    Masked,
}

/// The student's input images per sub-batch, `[N, 3, H, W]` normalised each.
pub(super) struct Parts<'a> {
    pub source: &'a [f32],
    pub mixed: Option<&'a [f32]>,
    pub pseudo_target: Option<&'a [f32]>,
    pub masked: Option<&'a [f32]>,
}

/// MIC's targets: the teacher's pseudo-labels of the unmasked target images and their pixel
/// weights, `[N, H, W]` each (the mixed images' target pixels have the same), and the class
/// weights when re-weighting scales MIC's term.
pub(super) struct MicTargets<'a> {
    pub labels: &'a [u8],
    pub weights: &'a [f32],
    pub class_weights: Option<&'a [f32]>,
}

/// What the student's passes leave for the step's output.
pub(super) struct StudentResult<B: AutodiffBackend> {
    pub grads: B::Gradients,
    pub losses: Vec<(String, Tensor<B::InnerBackend, 1>)>,
    /// The student's prediction on the mixed images `[N, H, W]` (when images were asked for).
    pub mix_prediction: Vec<u8>,
    pub statistic: Option<PendingStatistic<B::InnerBackend>>,
    /// 1 for the joint pass, one per sub-batch with a loss term for sequential passes.
    pub backward_passes: usize,
}

/// How the student's passes run.
pub(super) struct PassOptions {
    pub mode: StudentPasses,
    /// The student computes in this precision.
    pub precision: Precision,
    /// What its backward pass recomputes.
    pub recompute: Recompute,
    /// The projection head's input cut from the graph (`t2s.head_warmup`).
    pub detach_projection_input: bool,
}

/// Forward and backward passes of the student over `parts`, computing in `precision` (a compute
/// copy per pass: each backward pass consumes its graph, casts included).
pub(super) fn run_student<B: T2sAutodiffBackend>(
    student: &Segmentor<B>,
    mut terms: StudentTerms<B>,
    parts: Parts,
    options: PassOptions,
    rng: &mut impl Rng,
    device: &B::Device,
) -> Result<StudentResult<B>> {
    let PassOptions { mode, precision, recompute, detach_projection_input: detach } = options;
    let [n, h, w] = terms.ys.dims();
    let mut list: Vec<(Part, &[f32])> = vec![(Part::Source, parts.source)];
    list.extend(parts.mixed.map(|m| (Part::Mixed, m)));
    list.extend(parts.pseudo_target.map(|p| (Part::PseudoTarget, p)));
    list.extend(parts.masked.map(|p| (Part::Masked, p)));
    // HRDA: a detail crop per sub-batch, drawn after the step's other draws, the same in both modes.
    let crops = detail_crops(student, list.len(), h, w, rng);
    terms.detail_weight = student.hrda.as_ref().map_or(0.0, |hrda| hrda.detail_loss_weight);
    let no_terms = || TrainError::Internal("a step without loss terms".into());
    let (grads, backward_passes) = match mode {
        // One pass over the sub-batches as one batch (`Segmentor::forward_sub_batches`: batch
        // norm keeps per-sub-batch statistics, so this is the passes of DAFormer's step in one).
        StudentPasses::Joint => {
            let images: Vec<&[f32]> = list.iter().map(|(_, im)| *im).collect();
            let xs = Tensor::<B, 4>::from_inner(upload(&images, n, h, w, device));
            let grads = pass_and_backward(student, precision, recompute, |encode| {
                let preds = student_pass(&student.at_precision(precision), xs.clone(), crops.as_deref(), (list.len(), n), detach, encode);
                let mut part_losses = Vec::with_capacity(list.len());
                for (i, ((part, _), pred)) in list.iter().zip(preds).enumerate() {
                    part_losses.extend(terms.loss(*part, pred, || xs.clone().narrow(0, i * n, n))?);
                }
                Ok(part_losses.into_iter().reduce(|a, b| a + b))
            })?;
            (grads.ok_or_else(no_terms)?, 1)
        }
        // Each sub-batch's graph is freed by its backward pass before the next is built.
        StudentPasses::Sequential => {
            let (mut grads, mut passes): (Option<B::Gradients>, usize) = (None, 0);
            for (i, (part, images)) in list.iter().enumerate() {
                let x = Tensor::<B, 4>::from_inner(upload(&[images], n, h, w, device));
                let crop = crops.as_ref().map(|c| &c[i..i + 1]);
                let g = pass_and_backward(student, precision, recompute, |encode| {
                    let pred = student_pass(&student.at_precision(precision), x.clone(), crop, (1, n), detach, encode).remove(0);
                    terms.loss(*part, pred, || x)
                })?;
                let Some(g) = g else { continue };
                passes += 1;
                match grads.as_mut() {
                    Some(acc) => add_gradients(student, acc, g),
                    None => grads = Some(g),
                }
            }
            (grads.ok_or_else(no_terms)?, passes)
        }
    };
    let StudentTerms { losses, mix_prediction, statistic, .. } = terms;
    Ok(StudentResult { grads, losses, mix_prediction, statistic, backward_passes })
}

/// What the student's loss terms need, and what they leave for the step's output.
pub(super) struct StudentTerms<'a, B: T2sAutodiffBackend> {
    cfg: &'a RunConfig,
    imagenet: Option<&'a Segmentor<B::InnerBackend>>,
    /// Source labels `[N, H, W]`.
    ys: Tensor<B, 3, Int>,
    /// The source labels' class weights `[N, H, W]` (when re-weighting scales the CE terms).
    source_pixel_w: Option<Tensor<B, 3>>,
    ce_weights: Option<Vec<f32>>,
    mixed: Option<&'a MixedBatch>,
    mic: Option<MicTargets<'a>>,
    t2s_plan: Option<T2sPlan<B::InnerBackend>>,
    /// Whether the pseudo-target part leaves the `true_class_probability` statistic.
    true_class_probability: bool,
    want_images: bool,
    losses: Vec<(String, Tensor<B::InnerBackend, 1>)>,
    mix_prediction: Vec<u8>,
    statistic: Option<PendingStatistic<B::InnerBackend>>,
    /// HRDA's detail loss weight (0 without HRDA).
    detail_weight: f64,
}

impl<'a, B: T2sAutodiffBackend> StudentTerms<'a, B> {
    /// The terms of a step with source labels `ys` `[N, H, W]`, the CE terms' class weights (when
    /// re-weighting scales them), the mixed batch (with a target set), MIC's targets (with
    /// `uda.mic`) and the contrastive term's plan (when it is on).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        cfg: &'a RunConfig,
        st: &'a SelfTraining<B>,
        ys: Tensor<B, 3, Int>,
        ce_weights: Option<Vec<f32>>,
        mixed: Option<&'a MixedBatch>,
        mic: Option<MicTargets<'a>>,
        t2s_plan: Option<T2sPlan<B::InnerBackend>>,
        want_images: bool,
    ) -> Self {
        // The source labels' class weights, shared by the source and the pseudo-target CE.
        let source_pixel_w = ce_weights.as_deref().map(|cw| class_pixel_weights(cw, ys.clone()));
        Self {
            cfg,
            imagenet: st.imagenet_fd.as_ref(),
            ys,
            source_pixel_w,
            ce_weights,
            mixed,
            mic,
            t2s_plan,
            true_class_probability: st.t2s.as_ref().is_some_and(|t| t.stats.statistic == ReweightStatistic::TrueClassProbability),
            want_images,
            losses: Vec::new(),
            mix_prediction: Vec::new(),
            statistic: None,
            detail_weight: 0.0,
        }
    }

    /// The loss of one sub-batch from the student's output on it; `source` gives the source
    /// images `[N, 3, H, W]` (the feature distance's input, asked for only when that term is on).
    /// Logs its terms by name. None: the part adds no term (a pseudo-target pass with both of
    /// its terms off, run for the re-weighting statistic alone).
    fn loss(&mut self, part: Part, out: Prediction<B>, source: impl FnOnce() -> Tensor<B, 4>) -> Result<Option<Tensor<B, 1>>> {
        match part {
            Part::Source => self.source_loss(out, source).map(Some),
            Part::Mixed => self.mixed_loss(out).map(Some),
            Part::PseudoTarget => self.pseudo_target_loss(out),
            Part::Masked => self.masked_loss(out).map(Some),
        }
    }

    /// Source cross-entropy; ImageNet feature distance on thing-class source pixels (deepest
    /// backbone feature), when on.
    fn source_loss(&mut self, pred: Prediction<B>, source: impl FnOnce() -> Tensor<B, 4>) -> Result<Tensor<B, 1>> {
        let [_, h, _] = self.ys.dims();
        let num_classes = pred.out.logits.dims()[1];
        let mut loss = self.segmentation("loss_source", &pred, self.ys.clone(), self.source_pixel_w.clone());
        let uda = &self.cfg.uda;
        if let Some(imagenet) = self.imagenet {
            let out = pred.out;
            let feat = out.features[out.features.len() - 1].clone();
            let imnet = imagenet.at_precision(self.cfg.train.precision).extract_features(source().inner());
            let imnet = Tensor::<B, 4>::from_inner(imnet[imnet.len() - 1].clone());
            let [_, _, fh, _] = feat.dims();
            let factor = (h / fh).max(1);
            let lab = downscale_labels_majority(self.ys.clone(), num_classes, factor, uda.fdist_scale_min_ratio, 255)
                .map_err(|e| TrainError::Usage(format!("uda.fdist: {e}")))?;
            let fd = feature_distance(feat, imnet, Some(class_mask(lab, &uda.fdist_classes))).mul_scalar(uda.fdist_lambda);
            self.losses.push(term("loss_fdist", &fd));
            loss = loss + fd;
        }
        Ok(loss)
    }

    /// The mixed loss, weighted by the pseudo-labels' confidence.
    fn mixed_loss(&mut self, pred: Prediction<B>) -> Result<Tensor<B, 1>> {
        let [n, h, w] = self.ys.dims();
        let mixed = self.mixed.ok_or_else(|| TrainError::Internal("a mixed part without its batch".into()))?;
        let device = self.ys.device();
        let ym = label_tensor::<B>(&mixed.labels, [n, h, w], &device);
        let mut wm = Tensor::<B, 3>::from_data(TensorData::new(mixed.weights.clone(), [n, h, w]), &device);
        if let Some(cw) = &self.ce_weights {
            wm = wm * class_pixel_weights(cw, ym.clone());
        }
        if self.want_images {
            let logits = resize_bilinear(pred.out.logits.clone().inner(), h, w);
            self.mix_prediction = to_u8(logits.argmax(1).reshape([n, h, w]));
        }
        let mut loss = self.segmentation("loss_mix", &pred, ym, Some(wm));
        // Queries from the confident real-target pixels of the mixed images (`t2s.target_queries`).
        if let (Some(plan), Some(embedding)) = (&self.t2s_plan, pred.out.embedding) {
            if let Some(l) = plan.target_loss(crate::t2s_term::at_term_scale(embedding, self.cfg.t2s.embedding_scale)) {
                self.losses.push(term("loss_t2s_target", &l));
                loss = loss + l;
            }
        }
        Ok(loss)
    }

    /// A part's segmentation cross-entropy ([`segmentation_ce`]), logged as `name` (and HRDA's
    /// detail term as `name_detail`), summed.
    fn segmentation(&mut self, name: &str, pred: &Prediction<B>, labels: Tensor<B, 3, Int>, weights: Option<Tensor<B, 3>>) -> Tensor<B, 1> {
        let (fused, detail) = segmentation_ce(pred, labels, weights, self.detail_weight);
        self.log_segmentation(name, fused, detail)
    }

    /// Logs a segmentation term and its HRDA detail term, and returns their sum.
    fn log_segmentation(&mut self, name: &str, fused: Tensor<B, 1>, detail: Option<Tensor<B, 1>>) -> Tensor<B, 1> {
        log_segmentation(&mut self.losses, name, fused, detail)
    }

    /// MIC's loss: the prediction on the masked target images against the teacher's pseudo-labels
    /// of the unmasked ones, with their pixel weights (and the class weights when re-weighting
    /// scales MIC's term), times `uda.mic_lambda`; MIC's `decode.loss_seg` with
    /// `seg_weight`, mean over all pixels.
    fn masked_loss(&mut self, pred: Prediction<B>) -> Result<Tensor<B, 1>> {
        let [n, h, w] = self.ys.dims();
        let mic = self.mic.as_ref().ok_or_else(|| TrainError::Internal("a masked part without MIC's targets".into()))?;
        let device = self.ys.device();
        let y = label_tensor::<B>(mic.labels, [n, h, w], &device);
        let mut weight = Tensor::<B, 3>::from_data(TensorData::new(mic.weights.to_vec(), [n, h, w]), &device);
        if let Some(cw) = mic.class_weights {
            weight = weight * class_pixel_weights(cw, y.clone());
        }
        let lambda = self.cfg.uda.mic_lambda;
        let (fused, detail) = segmentation_ce(&pred, y, Some(weight), self.detail_weight);
        Ok(self.log_segmentation("loss_mic", fused.mul_scalar(lambda), detail.map(|d| d.mul_scalar(lambda))))
    }

    /// T2S-DA's student side: the pseudo-target cross-entropy and the contrastive loss.
    fn pseudo_target_loss(&mut self, pred: Prediction<B>) -> Result<Option<Tensor<B, 1>>> {
        let [_, h, w] = self.ys.dims();
        let t2s = &self.cfg.t2s;
        if self.true_class_probability {
            let logits = resize_bilinear(pred.out.logits.clone().inner(), h, w);
            self.statistic = Some(PendingStatistic { probs: softmax(logits, 1), labels: self.ys.clone().inner() });
        }
        let mut part_terms = Vec::with_capacity(2);
        if t2s.pseudo_target_ce > 0.0 {
            let (fused, detail) = segmentation_ce(&pred, self.ys.clone(), self.source_pixel_w.clone(), self.detail_weight);
            let scale = t2s.pseudo_target_ce;
            part_terms.push(self.log_segmentation("loss_pseudo_target", fused.mul_scalar(scale), detail.map(|d| d.mul_scalar(scale))));
        }
        if let Some(plan) = self.t2s_plan.take() {
            let l = plan.loss(crate::t2s_term::at_term_scale(pred.out.embedding.ok_or_else(no_embedding)?, t2s.embedding_scale));
            self.losses.push(term("loss_t2s", &l));
            part_terms.push(l);
        }
        Ok(part_terms.into_iter().reduce(|a, b| a + b))
    }
}

/// A loss term for [`super::StepOutput::losses`].
fn term<B: AutodiffBackend>(name: &str, t: &Tensor<B, 1>) -> (String, Tensor<B::InnerBackend, 1>) {
    (name.to_string(), t.clone().inner())
}
