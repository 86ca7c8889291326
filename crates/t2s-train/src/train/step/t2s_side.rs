//! T2S-DA's teacher side of a step (method.md §4), run before the student's pass is queued, so
//! that what it reads back (the samplers' per-pixel scalars, prototype counts) waits for the
//! teacher's work only: the target prototypes, the contrastive term's plan (sampling and the
//! source prototypes), and the re-weighting statistics that need no student output.

use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use rand::Rng;
use t2s_data::{Batch, ClassMixMask, MixedBatch};
use t2s_loss::class_weights::{prototype_similarity, target_confidence_sums};
use t2s_loss::{downscale_labels_majority, ReweightStatistic};
use t2s_model::{resize_bilinear, SegOutput};

use crate::config::RunConfig;
use crate::replicas::{sum_class_sums, Replica};
use crate::t2s_term::{at_term_scale, plan_t2s_term, T2sPlan, T2sState, TeacherView};
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
    /// The source batch and the mixed batch made from it (with a target set), for the target
    /// queries' candidates (`t2s.target_queries`).
    pub mixed: Option<(&'a Batch, &'a MixedBatch)>,
}

/// `[N·h·w]`, pixel-major: whether each `block × block` cell of the mixed images holds no pasted
/// source pixel (ClassMix pastes the source pixels of the classes it chose for the image).
pub(super) fn unpasted_blocks(source: &Batch, mixed: &MixedBatch, block: usize) -> Result<Vec<bool>> {
    let (n, hh, ww) = (source.len(), source.height, source.width);
    let labels = source.labels.as_ref().ok_or_else(|| TrainError::Internal("a source batch without labels".into()))?;
    let (h, w) = (hh / block, ww / block);
    let mut out = vec![true; n * h * w];
    for (i, classes) in mixed.classes.iter().enumerate().take(n) {
        let mask = ClassMixMask::from_classes(&labels[i * hh * ww..(i + 1) * hh * ww], classes.clone()).mask;
        for (k, _) in mask.iter().enumerate().filter(|(_, &pasted)| pasted) {
            let (y, x) = (k / ww / block, k % ww / block);
            if y < h && x < w {
                out[(i * h + y) * w + x] = false;
            }
        }
    }
    Ok(out)
}

/// Updates the target prototypes and the teacher-side re-weighting statistics and, when the
/// contrastive term is on, plans it; logs the plan's sampling counts.
pub(super) fn plan_teacher_side<B: Backend>(
    inputs: TeacherSide<B>,
    st: &mut T2sState<B>,
    cfg: &RunConfig,
    (iter, replica): (usize, Option<&Replica>),
    rng: &mut impl Rng,
    stats: &mut Vec<(String, f64)>,
) -> Result<Option<T2sPlan<B>>> {
    let t2s = &cfg.t2s;
    let scale = t2s.embedding_scale;
    let emb_t = at_term_scale(inputs.view.embedding.clone().ok_or_else(no_embedding)?, scale);
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
    let sums = st.target_prototypes.batch_sums(flat(emb_t.clone()), target_probs.clone().argmax(1).reshape([n * eh * ew]));
    st.target_prototypes.fold(sum_class_sums(replica, "adding up the target prototypes' class sums", sums)?);
    let mut plan = None;
    if let Some(teacher_s) = inputs.source_keys {
        let source_labels = downscale_labels_majority(inputs.labels, num_classes, h / eh, t2s.label_min_fraction, 255)
            .map_err(|e| TrainError::Usage(format!("t2s.label_min_fraction: {e}")))?;
        let view = TeacherView {
            source_keys: at_term_scale(teacher_s.embedding.ok_or_else(no_embedding)?, scale),
            target_keys: emb_t,
            source_labels,
            target_probs: target_probs.clone(),
            unpasted: match inputs.mixed {
                Some((source, mixed)) if t2s.target_queries > 0 => Some(unpasted_blocks(source, mixed, h / eh)?),
                _ => None,
            },
        };
        // The unreliable-pixel schedule runs over the adaptation phase (after `uda.adapt_from`).
        let span = cfg.schedule.max_iters - cfg.uda.adapt_from;
        let (p, log) = plan_t2s_term(view, st, t2s, cfg.uda.adapting_for(iter), span, replica, rng)?;
        stats.push(("t2s_queries".to_string(), log.queries as f64));
        stats.push(("t2s_classes".to_string(), log.classes as f64));
        stats.push(("t2s_unreliable".to_string(), log.unreliable as f64));
        stats.push(("t2s_target_negatives".to_string(), log.target_negative_fraction));
        if t2s.target_queries > 0 {
            stats.push(("t2s_target_queries".to_string(), log.target_queries as f64));
        }
        plan = Some(p);
    }
    // Re-weighting statistics after this iteration's use of the weights (the CE weights, the
    // plan's class weights); the student's own statistic waits for its pass.
    let batch_values = match st.stats.statistic {
        ReweightStatistic::TrueClassProbability => None,
        ReweightStatistic::TargetConfidence => {
            let sums = target_confidence_sums(inputs.teacher_confidence.unwrap_or(target_probs));
            Some(sum_class_sums(replica, "adding up the re-weighting statistic", sums)?.means())
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_blocks_are_not_target_candidates() {
        // One 4×8 image; class 3 in rows 0–1 of columns 0–1, class 5 at (3, 7), class 1 elsewhere.
        let mut labels = vec![1u8; 32];
        for (y, x) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            labels[y * 8 + x] = 3;
        }
        labels[3 * 8 + 7] = 5;
        let source = Batch {
            index: 0,
            height: 4,
            width: 8,
            images: vec![0.0; 96],
            raw: vec![0; 96],
            labels: Some(labels),
            names: vec!["a".into()],
            indices: vec![0],
            rare_classes: vec![None],
        };
        let mixed = MixedBatch { images: Vec::new(), raw: Vec::new(), labels: Vec::new(), weights: Vec::new(), classes: vec![vec![3, 5]] };
        // 2×2 blocks: (0, 0) holds pasted class 3, (1, 3) pasted class 5.
        let blocks = unpasted_blocks(&source, &mixed, 2).unwrap();
        assert_eq!(blocks, [false, true, true, true, true, true, true, false]);
    }
}
