//! One training iteration's forward and backward passes, method by method (method.md §3–4). A
//! self-training (`dacs`, `t2s`) iteration runs, in order:
//! 1. [`teacher`]: the EMA update and the teacher's one pass (target and, for the contrastive
//!    keys, source images), on the inner (non-autodiff) backend, so none of it enters the
//!    student's graph;
//! 2. [`mixing`]: pseudo-labels read back, ClassMix + strong augmentation on the host;
//! 3. [`t2s_side`] (`t2s` only): the teacher side of T2S-DA: target prototypes, the contrastive
//!    term's plan, the re-weighting statistics;
//! 4. [`student`]: the student's source, mixed, pseudo-target and (MIC) masked target
//!    sub-batches, joint or sequential, and the gradients of their summed loss.
//!
//! `source_only` is the student's source sub-batch alone ([`source_only`]).

mod mixing;
mod prediction;
mod recompute;
mod source_only;
mod student;
mod t2s_side;
mod teacher;
mod tensors;

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use t2s_data::{masked_target, pseudo_target, rolled_style, seeded_rng, Batch, Fda, MixedBatch};
use t2s_loss::class_weights::true_class_probability_sums;
use t2s_model::{Segmentor, T2sAutodiffBackend};

use super::adaptation::SelfTraining;
use crate::config::{ReweightTarget, RunConfig};
use crate::replicas::{draw_index, sum_class_sums, Replica};
use crate::self_training::{ema_alpha, ema_update};
use crate::t2s_term::T2sState;
use crate::{Result, TrainError};
pub use source_only::source_only_step;

/// Host copies of one iteration's images, for the debug strip.
pub struct StepImages {
    /// Crop height and width.
    pub size: (usize, usize),
    /// Pseudo-target raw `[B, 3, H, W]` (`t2s` only).
    pub pseudo_target: Option<Vec<f32>>,
    /// With a target set: its pseudo-labels `[B, H, W]`, the mixed batch and the student's
    /// prediction on the mixed images `[B, H, W]`.
    pub dacs: Option<(Vec<u8>, MixedBatch, Vec<u8>)>,
    /// MIC's masked target images, raw `[B, 3, H, W]` (`uda.mic`).
    pub masked: Option<Vec<f32>>,
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
    /// Other logged numbers (pseudo-label confidence, T2S sampling counts, passes).
    pub stats: Vec<(String, f64)>,
    /// The iteration's images, when asked for.
    pub images: Option<StepImages>,
    /// The student's re-weighting statistic of this iteration, for [`PendingStatistic::fold_into`]
    /// once the backward pass is queued (`t2s` with `true_class_probability` only).
    pub statistic: Option<PendingStatistic<B::InnerBackend>>,
}

/// Batch values of `ReweightStatistic::TrueClassProbability` not yet read from the device: the
/// student's pseudo-target probabilities `[N, C, H, W]` and the source labels `[N, H, W]`.
pub struct PendingStatistic<B: Backend> {
    probs: Tensor<B, 4>,
    labels: Tensor<B, 3, Int>,
}

impl<B: Backend> PendingStatistic<B> {
    /// Folds the statistic into the re-weighting statistics of `t2s` (reads it back), added up
    /// over the data-parallel replicas when there are several.
    pub fn fold_into(self, t2s: &mut T2sState<B>, replica: Option<&Replica>) -> Result<()> {
        let sums = true_class_probability_sums(self.probs, self.labels);
        let values = sum_class_sums(replica, "adding up the re-weighting statistic", sums)?.means();
        t2s.stats.update(&values).map_err(|e| TrainError::Internal(format!("re-weighting statistics: {e}")))
    }
}

/// The batches of one iteration.
#[derive(Clone, Copy)]
pub struct StepBatches<'a> {
    /// The labelled source batch.
    pub source: &'a Batch,
    /// The target batch; `None` in domain generalisation (`t2s` without a target set).
    pub target: Option<&'a Batch>,
}

/// The seed of every host-side draw of the step (ClassMix, strong augmentation, T2S sampling):
/// a stream per iteration, so a resumed run draws what an uninterrupted one would.
pub(super) const STEP_SEED_SALT: u64 = 0x7432_735f_7374_6570;

/// Runs one self-training iteration at 0-based `iter` (as data-parallel `replica`, if one);
/// `t2s` without a target batch is domain
/// generalisation (pseudo-targets styled after other source images, no pseudo-labels or mixing).
/// `want_images` asks for the host copies of the iteration's images.
#[allow(clippy::too_many_arguments)]
pub fn self_training_step<B: T2sAutodiffBackend>(
    student: &Segmentor<B>,
    st: &mut SelfTraining<B>,
    batches: StepBatches,
    cfg: &RunConfig,
    (iter, replica): (usize, Option<&Replica>),
    want_images: bool,
    device: &B::Device,
) -> Result<StepOutput<B>> {
    let source = batches.source;
    let mut rng = seeded_rng(cfg.run.seed ^ STEP_SEED_SALT, draw_index(replica, iter));
    let mut stats = Vec::new();

    // After a source-only warm-up (`uda.adapt_from`) the EMA warm-up starts at the switch: the
    // first adaptation step copies the student, as DAFormer's first step does.
    st.teacher = ema_update(st.teacher.clone(), &student.valid(), ema_alpha(cfg.uda.adapting_for(iter), cfg.uda.ema_alpha));
    // Class weights from the statistics so far, for the CE terms and MIC's when re-weighting
    // scales them.
    let class_weights = st.t2s.as_ref().map(|t| t.class_weights(&cfg.t2s));
    let weights_for = |target| class_weights.as_ref().filter(|_| cfg.t2s.reweights(target));
    let ce_weights = weights_for(ReweightTarget::CrossEntropy).cloned();
    let ys = tensors::batch_labels::<B>(source, device)?;
    // The FDA pseudo-targets (`t2s`, method.md §4), made on the host. Domain generalisation
    // (method.md §8): each source image takes the style of another source image of the batch.
    let pseudo_targets = match &st.t2s {
        Some(_) => {
            let fda = Fda::new(cfg.t2s.fda_beta).map_err(|e| TrainError::Usage(format!("t2s.fda_beta: {e}")))?;
            let rolled;
            let style = match batches.target {
                Some(target) => target,
                None => {
                    rolled = rolled_style(source);
                    &rolled
                }
            };
            Some(pseudo_target(source, style, &fda)?)
        }
        None => None,
    };

    let contrastive = st.t2s.is_some() && cfg.t2s.contrastive_weight > 0.0;
    let view = teacher::TeacherView::of(batches, pseudo_targets.as_ref().map(|(images, _)| images.as_slice()))?;
    let teacher = teacher::teacher_pass(&st.teacher.at_precision(cfg.train.precision), view, contrastive.then_some(source), device);

    let mixed = match batches.target {
        Some(target) => Some(mixing::mix_target(source, target, &teacher.view, &cfg.uda, &mut rng, &mut stats)?),
        None => None,
    };

    let plan = match &mut st.t2s {
        Some(t2s) => {
            let teacher_confidence = mixed.as_ref().map(|m| m.probs.clone());
            let inputs = t2s_side::TeacherSide {
                view: &teacher.view,
                source_keys: teacher.source,
                teacher_confidence,
                labels: ys.clone().inner(),
                mixed: mixed.as_ref().map(|m| (source, &m.batch)),
            };
            t2s_side::plan_teacher_side(inputs, t2s, cfg, (iter, replica), &mut rng, &mut stats)?
        }
        None => None,
    };

    // MIC (`uda.mic`): the target images masked, to be segmented as the teacher labelled them
    // unmasked. Drawn after every other draw of the step, so a run without it draws as before.
    let masked = match (&mixed, batches.target) {
        (Some(_), Some(target)) if cfg.uda.mic => {
            let strong = cfg.uda.mic_color_aug.then(|| cfg.uda.strong_aug());
            let batch = masked_target(target, strong.as_ref(), &cfg.uda.mic_mask(), &mut rng)?;
            let mean = batch.masked_fraction.iter().sum::<f32>() / batch.masked_fraction.len().max(1) as f32;
            stats.push(("mic_masked_fraction".to_string(), mean as f64));
            Some(batch)
        }
        _ => None,
    };

    let mic = masked.as_ref().zip(mixed.as_ref()).map(|(_, m)| student::MicTargets {
        labels: &m.pseudo_labels,
        weights: &m.pseudo_weights,
        class_weights: weights_for(ReweightTarget::Mic).map(Vec::as_slice),
    });
    let terms = student::StudentTerms::new(cfg, st, ys, ce_weights, mixed.as_ref().map(|m| &m.batch), mic, plan, want_images);
    let parts = student::Parts {
        source: &source.images,
        mixed: mixed.as_ref().map(|m| m.batch.images.as_slice()),
        pseudo_target: pseudo_targets.as_ref().map(|(images, _)| images.as_slice()),
        masked: masked.as_ref().map(|m| m.images.as_slice()),
    };
    let options = student::PassOptions {
        mode: cfg.uda.student_passes,
        precision: cfg.train.precision,
        recompute: cfg.train.recompute,
        detach_projection_input: cfg.t2s_head_warming(iter),
    };
    let passes = student::run_student(student, terms, parts, options, &mut rng, device)?;
    stats.push(("student_backward_passes".to_string(), passes.backward_passes as f64));

    let images = want_images.then(|| StepImages {
        size: (source.height, source.width),
        pseudo_target: pseudo_targets.map(|(_, raw)| raw),
        dacs: mixed.map(|m| (m.pseudo_labels, m.batch, passes.mix_prediction)),
        masked: masked.map(|m| m.raw),
    });
    Ok(StepOutput { grads: passes.grads, losses: passes.losses, stats, images, statistic: passes.statistic })
}
