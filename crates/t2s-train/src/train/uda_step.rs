//! One `dacs` or `t2s` iteration (method.md §3–4): EMA teacher, source cross-entropy, the
//! optional ImageNet feature distance, pseudo-labels, ClassMix + strong augmentation and the
//! mixed loss; for `t2s` also the FDA pseudo-target, its cross-entropy, the contrastive term and
//! the re-weighting statistics. The teacher and everything it computes live on the inner
//! (non-autodiff) backend, so none of it enters the student's graph.

use burn::module::AutodiffModule;
use burn::tensor::activation::softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use t2s_data::{seeded_rng, Batch, Fda, StrongAugConfig};
use t2s_loss::class_weights::{prototype_similarity, target_confidence, true_class_probability};
use t2s_loss::{class_mask, cross_entropy, downscale_labels_majority, feature_distance, CrossEntropyOptions, ReweightStatistic};
use t2s_model::T2sAutodiffBackend;
use t2s_model::{resize_bilinear, SegOutput, Segmentor};

use super::grad_sum::add_gradients;
use super::host_mix::{class_mix, pseudo_target, rolled_style, MixedBatch};
use super::source_step::{batch_labels, label_tensor};
use crate::config::{Method, ReweightTarget, RunConfig, StudentPasses};
use crate::self_training::{ema_alpha, ema_update, pseudo_labels};
use crate::t2s_term::{plan_t2s_term, T2sPlan, T2sState, TeacherView};
use crate::{Result, TrainError};

/// What the self-training methods carry from one iteration to the next.
pub struct UdaState<B: AutodiffBackend> {
    /// The EMA teacher (eval mode: BN running statistics, no dropout).
    pub teacher: Segmentor<B::InnerBackend>,
    /// Prototypes, statistics and π of the T2S term (`t2s` only).
    pub t2s: Option<T2sState<B::InnerBackend>>,
    /// The frozen ImageNet-initialised network of the feature distance, when it is on.
    pub imagenet: Option<Segmentor<B::InnerBackend>>,
}

/// Host copies of one iteration's images, for the debug strip.
pub struct StepImages {
    /// Crop height and width.
    pub size: (usize, usize),
    /// Pseudo-target raw `[B, 3, H, W]` (`t2s` only).
    pub pseudo_target: Option<Vec<f32>>,
    /// With a target set: its pseudo-labels `[B, H, W]`, the mixed batch and the student's
    /// prediction on the mixed images `[B, H, W]`.
    pub dacs: Option<(Vec<u8>, MixedBatch, Vec<u8>)>,
}

/// The gradients of the step's summed loss, its named terms, other logged numbers, and (when
/// asked) the images of the iteration.
pub struct StepOutput<B: AutodiffBackend> {
    /// The backward pass (or passes, summed: `uda.student_passes = "sequential"`), queued.
    pub grads: B::Gradients,
    /// The named terms, off the graph and not yet read: reading a device value waits for the
    /// device to finish all work queued so far, so the caller reads them all at once, after
    /// queueing the backward pass, instead of one wait per term in the middle of the step.
    pub losses: Vec<(String, Tensor<B::InnerBackend, 1>)>,
    pub stats: Vec<(String, f64)>,
    pub images: Option<StepImages>,
    /// The student's re-weighting statistic of this iteration, for [`UdaState::update_statistic`]
    /// once the backward pass is queued (`t2s` with `true_class_probability` only).
    pub statistic: Option<PendingStatistic<B::InnerBackend>>,
}

/// Batch values of [`ReweightStatistic::TrueClassProbability`] not yet read from the device: the
/// student's pseudo-target probabilities `[N, C, H, W]` and the source labels `[N, H, W]`.
pub struct PendingStatistic<B: burn::tensor::backend::Backend> {
    probs: Tensor<B, 4>,
    labels: Tensor<B, 3, Int>,
}

impl<B: AutodiffBackend> UdaState<B> {
    /// Folds a step's [`PendingStatistic`] into the re-weighting statistics (reads it back).
    pub fn update_statistic(&mut self, pending: PendingStatistic<B::InnerBackend>) -> Result<()> {
        let st = self.t2s.as_mut().ok_or_else(|| TrainError::Usage("uda.method = t2s without its state".into()))?;
        let values = true_class_probability(pending.probs, pending.labels);
        st.stats.update(&values).map_err(|e| TrainError::Usage(format!("re-weighting statistics: {e}")))
    }
}

/// The seed of every host-side draw of the step (ClassMix, strong augmentation, T2S sampling):
/// a stream per iteration, so a resumed run draws what an uninterrupted one would.
const STEP_SEED_SALT: u64 = 0x7432_735f_7374_6570;

/// A loss term for [`StepOutput::losses`].
fn term<B: AutodiffBackend>(name: &str, t: &Tensor<B, 1>) -> (String, Tensor<B::InnerBackend, 1>) {
    (name.to_string(), t.clone().inner())
}

fn to_u8<B: burn::tensor::backend::Backend, const D: usize>(t: Tensor<B, D, Int>) -> Vec<u8> {
    t.into_data().iter::<i64>().map(|v| v.clamp(0, 255) as u8).collect()
}

/// Per-pixel class weights `w[label]` `[N, H, W]` (1 on ignored pixels, which CE zeroes anyway).
fn class_pixel_weights<B: burn::tensor::backend::Backend>(weights: &[f32], labels: Tensor<B, 3, Int>) -> Tensor<B, 3> {
    let [n, h, w] = labels.dims();
    let c = weights.len();
    let mut table = weights.to_vec();
    table.push(1.0); // index c: every label ≥ c, i.e. ignore
    let device = labels.device();
    let idx = labels.clamp(0, c as i64);
    Tensor::<B, 1>::from_data(TensorData::new(table, [c + 1]), &device).select(0, idx.reshape([n * h * w])).reshape([n, h, w])
}

/// Runs one self-training iteration (`cfg.uda.method` is `dacs` or `t2s`) at 0-based `iter`;
/// `t2s` without a `target` batch is domain generalisation (pseudo-targets styled after other
/// source images, no pseudo-labels or mixing).
/// `want_images` asks for the host copies of the iteration's images.
#[allow(clippy::too_many_arguments)]
pub fn uda_step<B: T2sAutodiffBackend>(
    student: &Segmentor<B>,
    state: &mut UdaState<B>,
    source: &Batch,
    target: Option<&Batch>,
    cfg: &RunConfig,
    iter: usize,
    want_images: bool,
    device: &B::Device,
) -> Result<StepOutput<B>> {
    let uda = &cfg.uda;
    let t2s_on = uda.method == Method::T2s;
    let mut rng = seeded_rng(cfg.run.seed ^ STEP_SEED_SALT, iter as u64);
    let mut stats = Vec::new();

    // 1. EMA teacher from the student of the previous step (a copy at the first iteration).
    state.teacher = ema_update(state.teacher.clone(), &student.valid(), ema_alpha(iter, uda.ema_alpha));

    // Class weights of the CE terms, when re-weighting scales them (from the statistics so far).
    let ce_weights: Option<Vec<f32>> = match &state.t2s {
        Some(t) if cfg.t2s.reweight && cfg.t2s.reweight_targets.contains(&ReweightTarget::CrossEntropy) => {
            Some(t.stats.weights(cfg.t2s.reweight_gamma, cfg.t2s.reweight_clamp[0], cfg.t2s.reweight_clamp[1]))
        }
        _ => None,
    };
    let (n, h, w) = (source.len(), source.height, source.width);
    let ys = batch_labels::<B>(source, device)?;
    let upload = |parts: &[&[f32]]| -> Tensor<B::InnerBackend, 4> {
        Tensor::from_data(TensorData::new(parts.concat(), [parts.len() * n, 3, h, w]), device)
    };

    // The FDA pseudo-targets (`t2s`, method.md §4), made on the host. Domain generalisation
    // (no target set, method.md §8): each source image takes the style of another source
    // image of the batch.
    let mut pt_raw = None;
    let pt_images = if t2s_on {
        let fda = Fda::new(cfg.t2s.fda_beta).map_err(|e| TrainError::Usage(format!("t2s.fda_beta: {e}")))?;
        let rolled;
        let style = match target {
            Some(t) => t,
            None => {
                rolled = rolled_style(source);
                &rolled
            }
        };
        let (images, raw) = pseudo_target(source, style, &fda)?;
        if want_images {
            pt_raw = Some(raw);
        }
        Some(images)
    } else {
        None
    };

    // The teacher's passes, as one batch: the target images (without a target set, the
    // pseudo-targets play the target's part: unreliable negatives, π, the target prototypes)
    // and, for the contrastive term, the source images (its keys).
    let contrastive = t2s_on && cfg.t2s.contrastive_weight > 0.0;
    let teacher_view = target.map(|t| t.images.as_slice()).or(pt_images.as_deref());
    let mut teacher_parts: Vec<&[f32]> = teacher_view.into_iter().collect();
    if contrastive {
        teacher_parts.push(&source.images);
    }
    let (mut teacher_t, mut teacher_s) = (None, None);
    if !teacher_parts.is_empty() {
        let out = state.teacher.forward_sub_batches(upload(&teacher_parts), teacher_parts.len());
        let mut parts = split_output(out, teacher_parts.len(), n).into_iter();
        if teacher_view.is_some() {
            teacher_t = parts.next();
        }
        teacher_s = parts.next();
    }

    // Pseudo-labels from the teacher on the clean target images (at crop resolution), then
    // ClassMix + strong augmentation on the host (method.md §3 steps 4–6).
    let mut mixed = None;
    let mut target_conf = None;
    if let (Some(target), Some(out)) = (target, &teacher_t) {
        let pl = pseudo_labels(resize_bilinear(out.logits.clone(), h, w), uda.pseudo_threshold, uda.pseudo_label_margin);
        stats.push(("pseudo_confidence".to_string(), pl.confident_fraction as f64));
        let pseudo = pl.labels;
        let strong = StrongAugConfig {
            color_jitter_strength: uda.color_jitter_strength as f32,
            color_jitter_prob: uda.color_jitter_prob,
            blur_prob: uda.blur_prob,
            ..StrongAugConfig::default()
        };
        mixed = Some((class_mix(source, target, &pseudo, &pl.weights, uda.classmix, &strong, &mut rng)?, pseudo));
        target_conf = Some(pl.probs);
    }

    // T2S-DA's teacher side (method.md §4), before the student's pass is queued, so that what
    // it reads back (the samplers' per-pixel scalars, prototype counts) waits for the teacher's
    // work only: the target prototypes, the contrastive term's plan (sampling and the source
    // prototypes), and the re-weighting statistics that need no student output.
    let mut t2s_plan = None;
    let mut ys_inner = None;
    if let (true, Some(teacher_t)) = (t2s_on, &teacher_t) {
        let t2s = &cfg.t2s;
        let st = state.t2s.as_mut().ok_or_else(|| TrainError::Usage("uda.method = t2s without its state".into()))?;
        let emb_t = teacher_t.embedding.clone().ok_or_else(no_projection)?;
        let [_, d, eh, ew] = emb_t.dims();
        if h % eh != 0 || w % ew != 0 || h / eh != w / ew {
            return Err(TrainError::Usage(format!(
                "data.crop {h}×{w} is not a whole multiple of the embedding's {eh}×{ew}; choose a crop divisible by the network's stride"
            )));
        }
        let num_classes = teacher_t.logits.dims()[1];
        // Teacher probabilities at embedding resolution (logits resized, then softmax).
        let target_probs = softmax(resize_bilinear(teacher_t.logits.clone(), eh, ew), 1);
        let labels = ys.clone().inner();
        // The target bank follows the teacher's own predictions (for the similarity statistic).
        let flat = |t: Tensor<B::InnerBackend, 4>| t.permute([0, 2, 3, 1]).reshape([n * eh * ew, d]);
        st.target_prototypes.update(flat(emb_t.clone()), target_probs.clone().argmax(1).reshape([n * eh * ew]));
        if let (true, Some(teacher_s)) = (contrastive, teacher_s.take()) {
            let source_labels = downscale_labels_majority(labels.clone(), num_classes, h / eh, t2s.label_min_fraction, 255)
                .map_err(|e| TrainError::Usage(format!("t2s.label_min_fraction: {e}")))?;
            let view = TeacherView {
                source_keys: teacher_s.embedding.ok_or_else(no_projection)?,
                target_keys: emb_t,
                source_labels,
                target_probs: target_probs.clone(),
            };
            let (plan, log) = plan_t2s_term(view, st, t2s, iter, cfg.schedule.max_iters, &mut rng)?;
            stats.push(("t2s_queries".to_string(), log.queries as f64));
            stats.push(("t2s_classes".to_string(), log.classes as f64));
            stats.push(("t2s_unreliable".to_string(), log.unreliable as f64));
            stats.push(("t2s_target_negatives".to_string(), log.target_negative_fraction));
            t2s_plan = Some(plan);
        }
        // Re-weighting statistics after this iteration's use of the weights (the CE weights
        // above, the plan's class weights); the student's own statistic waits for its pass.
        let batch_values = match st.stats.statistic {
            ReweightStatistic::TrueClassProbability => None,
            ReweightStatistic::TargetConfidence => Some(target_confidence(target_conf.take().unwrap_or(target_probs))),
            ReweightStatistic::CrossDomainSimilarity => Some(prototype_similarity(&st.prototypes, &st.target_prototypes)),
        };
        if let Some(values) = batch_values {
            st.stats.update(&values).map_err(|e| TrainError::Usage(format!("re-weighting statistics: {e}")))?;
        }
        ys_inner = Some(labels);
    }

    // The student's sub-batches: source, mixed (with a target set), pseudo-target (`t2s`).
    let mut parts: Vec<(Part, &[f32])> = vec![(Part::Source, &source.images)];
    parts.extend(mixed.as_ref().map(|(m, _)| (Part::Mixed, m.images.as_slice())));
    parts.extend(pt_images.as_deref().map(|p| (Part::PseudoTarget, p)));
    // The source labels' class weights, shared by the source and the pseudo-target CE.
    let source_pixel_w = ce_weights.as_deref().map(|cw| class_pixel_weights(cw, ys.clone()));
    let mut terms = StudentTerms {
        cfg,
        imagenet: state.imagenet.as_ref(),
        ys,
        source_pixel_w,
        ce_weights: ce_weights.as_deref(),
        mixed: mixed.as_ref().map(|(m, _)| m),
        t2s_plan,
        ys_inner,
        true_class_probability: state.t2s.as_ref().is_some_and(|st| st.stats.statistic == ReweightStatistic::TrueClassProbability),
        want_images,
        losses: Vec::new(),
        mix_prediction: Vec::new(),
        statistic: None,
    };
    // (Logged as `student_backward_passes`, which shows the mode in every metrics line.)
    let (grads, backward_passes) = match uda.student_passes {
        // One pass over the sub-batches as one batch (`Segmentor::forward_sub_batches`: batch
        // norm keeps per-sub-batch statistics, so this is the passes of DAFormer's step in one).
        StudentPasses::Joint => {
            let images: Vec<&[f32]> = parts.iter().map(|(_, im)| *im).collect();
            let xs = Tensor::<B, 4>::from_inner(upload(&images));
            let out = student.forward_sub_batches(xs.clone(), parts.len());
            let mut part_losses = Vec::with_capacity(parts.len());
            for (i, ((part, _), out)) in parts.iter().zip(split_output(out, parts.len(), n)).enumerate() {
                part_losses.extend(terms.loss(*part, out, || xs.clone().narrow(0, i * n, n))?);
            }
            (part_losses.into_iter().reduce(|a, b| a + b).expect("the source part").backward(), 1)
        }
        // Each sub-batch's graph is freed by its backward pass before the next is built.
        StudentPasses::Sequential => {
            let (mut grads, mut passes): (Option<B::Gradients>, usize) = (None, 0);
            for (part, images) in &parts {
                let x = Tensor::<B, 4>::from_inner(upload(&[images]));
                let out = student.forward(x.clone());
                let Some(loss) = terms.loss(*part, out, || x)? else { continue };
                let g = loss.backward();
                passes += 1;
                match grads.as_mut() {
                    Some(acc) => add_gradients(student, acc, g),
                    None => grads = Some(g),
                }
            }
            (grads.expect("the source part"), passes)
        }
    };
    stats.push(("student_backward_passes".to_string(), backward_passes as f64));
    let StudentTerms { losses, mix_prediction, statistic, .. } = terms;
    let dacs_images = if want_images { mixed.map(|(m, pseudo)| (pseudo, m, mix_prediction)) } else { None };

    let images = want_images.then_some(StepImages { size: (h, w), pseudo_target: pt_raw, dacs: dacs_images });
    Ok(StepOutput { grads, losses, stats, images, statistic })
}

/// A sub-batch of the student's step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Source,
    Mixed,
    PseudoTarget,
}

/// What the student's loss terms need, and what they leave for the step's output.
struct StudentTerms<'a, B: T2sAutodiffBackend> {
    cfg: &'a RunConfig,
    imagenet: Option<&'a Segmentor<B::InnerBackend>>,
    /// Source labels `[N, H, W]`.
    ys: Tensor<B, 3, Int>,
    /// The source labels' class weights `[N, H, W]` (when re-weighting scales the CE terms).
    source_pixel_w: Option<Tensor<B, 3>>,
    ce_weights: Option<&'a [f32]>,
    mixed: Option<&'a MixedBatch>,
    t2s_plan: Option<T2sPlan<B::InnerBackend>>,
    ys_inner: Option<Tensor<B::InnerBackend, 3, Int>>,
    true_class_probability: bool,
    want_images: bool,
    losses: Vec<(String, Tensor<B::InnerBackend, 1>)>,
    /// The student's prediction on the mixed images `[N, H, W]` (for the debug strip).
    mix_prediction: Vec<u8>,
    statistic: Option<PendingStatistic<B::InnerBackend>>,
}

impl<B: T2sAutodiffBackend> StudentTerms<'_, B> {
    /// The loss of one sub-batch from the student's output on it; `source` gives the source
    /// images `[N, 3, H, W]` (the feature distance's input, asked for only when that term is on).
    /// Logs its terms by name. None: the part adds no term (a pseudo-target pass with both of
    /// its terms off, run for the re-weighting statistic alone).
    fn loss(&mut self, part: Part, out: SegOutput<B>, source: impl FnOnce() -> Tensor<B, 4>) -> Result<Option<Tensor<B, 1>>> {
        let [n, h, w] = self.ys.dims();
        let ce = CrossEntropyOptions::default();
        let num_classes = out.logits.dims()[1];
        match part {
            // 2. Source cross-entropy; 3. ImageNet feature distance on thing-class source pixels
            // (deepest backbone feature).
            Part::Source => {
                let logits = resize_bilinear(out.logits, h, w);
                let mut loss = cross_entropy(logits, self.ys.clone(), &ce, self.source_pixel_w.clone());
                self.losses.push(term("loss_source", &loss));
                let uda = &self.cfg.uda;
                if let (Some(imagenet), true) = (self.imagenet, uda.fdist_lambda > 0.0) {
                    let feat = out.features[out.features.len() - 1].clone();
                    let imnet = imagenet.extract_features(source().inner());
                    let imnet = Tensor::<B, 4>::from_inner(imnet[imnet.len() - 1].clone());
                    let [_, _, fh, _] = feat.dims();
                    let factor = (h / fh).max(1);
                    let lab = downscale_labels_majority(self.ys.clone(), num_classes, factor, uda.fdist_scale_min_ratio, 255)
                        .map_err(|e| TrainError::Usage(format!("uda.fdist: {e}")))?;
                    let fd = feature_distance(feat, imnet, Some(class_mask(lab, &uda.fdist_classes))).mul_scalar(uda.fdist_lambda);
                    self.losses.push(term("loss_fdist", &fd));
                    loss = loss + fd;
                }
                Ok(Some(loss))
            }
            // 7. The mixed loss, weighted by the pseudo-labels' confidence.
            Part::Mixed => {
                let mixed = self.mixed.expect("a mixed part comes with its batch");
                let device = self.ys.device();
                let ym = label_tensor::<B>(&mixed.labels, [n, h, w], &device);
                let mut wm = Tensor::<B, 3>::from_data(TensorData::new(mixed.weights.clone(), [n, h, w]), &device);
                if let Some(cw) = self.ce_weights {
                    wm = wm * class_pixel_weights(cw, ym.clone());
                }
                let logits = resize_bilinear(out.logits, h, w);
                if self.want_images {
                    self.mix_prediction = to_u8(logits.clone().inner().argmax(1).reshape([n, h, w]));
                }
                let loss = cross_entropy(logits, ym, &ce, Some(wm));
                self.losses.push(term("loss_mix", &loss));
                Ok(Some(loss))
            }
            // T2S-DA's student side: the pseudo-target cross-entropy and the contrastive loss.
            Part::PseudoTarget => {
                let t2s = &self.cfg.t2s;
                let logits = resize_bilinear(out.logits, h, w);
                if let (Some(labels), true) = (self.ys_inner.take(), self.true_class_probability) {
                    self.statistic = Some(PendingStatistic { probs: softmax(logits.clone().inner(), 1), labels });
                }
                let mut part_terms = Vec::with_capacity(2);
                if t2s.pseudo_target_ce > 0.0 {
                    let l = cross_entropy(logits, self.ys.clone(), &ce, self.source_pixel_w.clone()).mul_scalar(t2s.pseudo_target_ce);
                    self.losses.push(term("loss_pseudo_target", &l));
                    part_terms.push(l);
                }
                if let Some(plan) = self.t2s_plan.take() {
                    let l = plan.loss(out.embedding.ok_or_else(no_projection)?);
                    self.losses.push(term("loss_t2s", &l));
                    part_terms.push(l);
                }
                Ok(part_terms.into_iter().reduce(|a, b| a + b))
            }
        }
    }
}

/// The outputs of a pass over `parts` sub-batches of `n` images each, split back per sub-batch
/// (logits, embedding and features narrowed along N; their gradients flow back into the joint
/// pass).
fn split_output<B: burn::tensor::backend::Backend>(out: SegOutput<B>, parts: usize, n: usize) -> Vec<SegOutput<B>> {
    (0..parts)
        .map(|i| SegOutput {
            logits: out.logits.clone().narrow(0, i * n, n),
            embedding: out.embedding.as_ref().map(|e| e.clone().narrow(0, i * n, n)),
            features: out.features.iter().map(|f| f.clone().narrow(0, i * n, n)).collect(),
        })
        .collect()
}

fn no_projection() -> TrainError {
    TrainError::Usage(
        "uda.method = t2s needs the network's projection head: add [model.network.projection] (or use a preset, which has one)".into(),
    )
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
