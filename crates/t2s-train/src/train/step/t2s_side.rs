//! T2S-DA's teacher side of a step (method.md §4), run before the student's pass is queued, so
//! that what it reads back (the samplers' per-pixel scalars, prototype counts) waits for the
//! teacher's work only: the target prototypes, the contrastive term's plan (sampling and the
//! source prototypes), and the re-weighting statistics that need no student output.

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use rand::Rng;
use t2s_loss::class_weights::{prototype_similarity, target_confidence};
use t2s_loss::{downscale_labels_majority, ReweightStatistic};
use t2s_model::{resize_bilinear, SegOutput};

use crate::config::RunConfig;
use crate::t2s_term::{plan_t2s_term, T2sPlan, T2sState, TeacherView};
use crate::{Result, TrainError};

/// The teacher's outputs the T2S side reads.
pub(super) struct TeacherSide<'a, B: Backend> {
    /// On the target (or pseudo-target) images.
    pub view: &'a SegOutput<B>,
    /// On the source images: the contrastive term's keys (present when the term is on).
    pub source_keys: Option<SegOutput<B>>,
    /// The teacher's softmax on the target at crop resolution, when pseudo-labels were made.
    pub teacher_confidence: Option<Tensor<B, 4>>,
    /// The source labels `[N, H, W]`.
    pub labels: Tensor<B, 3, Int>,
}

/// Updates the target prototypes and the teacher-side re-weighting statistics and, when the
/// contrastive term is on, plans it; logs the plan's sampling counts.
pub(super) fn plan_teacher_side<B: Backend>(
    inputs: TeacherSide<B>,
    st: &mut T2sState<B>,
    cfg: &RunConfig,
    iter: usize,
    rng: &mut impl Rng,
    stats: &mut Vec<(String, f64)>,
) -> Result<Option<T2sPlan<B>>> {
    let t2s = &cfg.t2s;
    let emb_t = inputs.view.embedding.clone().ok_or_else(no_embedding)?;
    let [n, d, eh, ew] = emb_t.dims();
    let [_, h, w] = inputs.labels.dims();
    if h % eh != 0 || w % ew != 0 || h / eh != w / ew {
        return Err(TrainError::Internal(format!("a {h}×{w} crop gave a {eh}×{ew} embedding, not a whole fraction of it")));
    }
    let num_classes = inputs.view.logits.dims()[1];
    // Teacher probabilities at embedding resolution (logits resized, then softmax).
    let target_probs = softmax(resize_bilinear(inputs.view.logits.clone(), eh, ew), 1);
    // The target bank follows the teacher's own predictions (for the similarity statistic).
    let flat = |t: Tensor<B, 4>| t.permute([0, 2, 3, 1]).reshape([n * eh * ew, d]);
    st.target_prototypes.update(flat(emb_t.clone()), target_probs.clone().argmax(1).reshape([n * eh * ew]));
    let mut plan = None;
    if let Some(teacher_s) = inputs.source_keys {
        let source_labels = downscale_labels_majority(inputs.labels, num_classes, h / eh, t2s.label_min_fraction, 255)
            .map_err(|e| TrainError::Usage(format!("t2s.label_min_fraction: {e}")))?;
        let view = TeacherView {
            source_keys: teacher_s.embedding.ok_or_else(no_embedding)?,
            target_keys: emb_t,
            source_labels,
            target_probs: target_probs.clone(),
        };
        // The unreliable-pixel schedule runs over the adaptation phase (after `uda.adapt_from`).
        let span = cfg.schedule.max_iters - cfg.uda.adapt_from;
        let (p, log) = plan_t2s_term(view, st, t2s, cfg.uda.adapting_for(iter), span, rng)?;
        stats.push(("t2s_queries".to_string(), log.queries as f64));
        stats.push(("t2s_classes".to_string(), log.classes as f64));
        stats.push(("t2s_unreliable".to_string(), log.unreliable as f64));
        stats.push(("t2s_target_negatives".to_string(), log.target_negative_fraction));
        plan = Some(p);
    }
    // Re-weighting statistics after this iteration's use of the weights (the CE weights, the
    // plan's class weights); the student's own statistic waits for its pass.
    let batch_values = match st.stats.statistic {
        ReweightStatistic::TrueClassProbability => None,
        ReweightStatistic::TargetConfidence => Some(target_confidence(inputs.teacher_confidence.unwrap_or(target_probs))),
        ReweightStatistic::CrossDomainSimilarity => Some(prototype_similarity(&st.prototypes, &st.target_prototypes)),
    };
    if let Some(values) = batch_values {
        st.stats.update(&values).map_err(|e| TrainError::Internal(format!("re-weighting statistics: {e}")))?;
    }
    Ok(plan)
}

/// The network was validated to have a projection head for `t2s` (`RunConfig::validate`).
pub(super) fn no_embedding() -> TrainError {
    TrainError::Internal("uda.method = t2s with a network that has no projection head".into())
}
