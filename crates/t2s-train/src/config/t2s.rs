//! `[t2s]`: the T2S-DA additions (method.md §4), every term switchable for ablations.

use serde::{Deserialize, Serialize};
use t2s_loss::ReweightStatistic;

/// Which class distribution the queries follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryDistribution {
    /// EMA of the class frequencies of the target pseudo-labels (default).
    Target,
    /// The same number for every present class.
    Uniform,
    /// EMA of the source label frequencies.
    Source,
}

/// Which losses the dynamic class weights scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReweightTarget {
    /// The T2S contrastive loss (default).
    Contrastive,
    /// The source, mixed and pseudo-target cross-entropy terms (pixel weights by class).
    CrossEntropy,
    /// MIC's masked-image cross-entropy (`uda.mic`), likewise.
    Mic,
}

/// T2S-DA settings; only used when `uda.method = "t2s"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct T2sSection {
    /// FDA low-frequency band β (0.01).
    pub fda_beta: f64,
    /// Weight of the pseudo-target cross-entropy on the source labels (1.0); 0 disables.
    pub pseudo_target_ce: f64,
    /// Weight λ of the contrastive loss (1.0); 0 disables it (and the sampling).
    pub contrastive_weight: f64,
    /// Temperature τ (0.2).
    pub temperature: f32,
    /// Total queries N_q per iteration (19 × 256 = 4,864).
    pub queries: usize,
    /// Minimum queries per present class (16).
    pub min_queries_per_class: usize,
    /// `target` (default), `uniform` or `source`; `uniform` is the ablation without
    /// class-balanced query sampling.
    pub query_distribution: QueryDistribution,
    /// Momentum of the label-distribution estimate π (0.99).
    pub distribution_momentum: f64,
    /// Negatives per query m (50).
    pub negatives: usize,
    /// m/2 from each domain (true); false draws from the pooled candidates.
    pub domain_equalized: bool,
    /// Unreliable target percentage α_t at the start … (20)
    pub unreliable_start: f32,
    /// … and at the end of training (0), linear in between.
    pub unreliable_end: f32,
    /// Prototype EMA momentum (0.99).
    pub prototype_momentum: f32,
    /// Minimum winning fraction when downscaling labels to the embedding (0.75).
    pub label_min_fraction: f32,
    /// The resolution the term works at, as a multiple of the projection head's (1): 2 upsamples
    /// the teacher's and the student's embeddings bilinearly by 2 before sampling, so that labels
    /// are taken in blocks of half the side (4×4 pixels at output stride 8) and small objects keep
    /// more embedding pixels. It must divide the embedding's stride.
    pub embedding_scale: usize,
    /// Adaptation iterations during which the contrastive term trains the projection head alone
    /// (its input cut from the graph), so that the backbone is not pulled through a head that is
    /// still random (0: the term reaches the backbone from the first iteration).
    pub head_warmup: usize,
    /// Queries drawn, besides the pseudo-target's, from the real target pixels of the mixed
    /// images that the teacher labels confidently (0: none, as the paper): the student's
    /// embedding of an unpasted target pixel is pulled toward the source prototype of its
    /// pseudo-label, with negatives drawn as for the pseudo-target's queries. Logged as
    /// `loss_t2s_target` (λ-weighted, re-weighted like the main term). Needs the contrastive
    /// term (`contrastive_weight` > 0) and a target set.
    pub target_queries: usize,
    /// The teacher probability a target pixel needs to be a query (0.968, DAFormer's
    /// pseudo-label threshold), at embedding resolution.
    pub target_query_confidence: f32,
    /// Dynamic class re-weighting on (true); off means w_c = 1.
    pub reweight: bool,
    /// `true_class_probability` (default), `target_confidence` or `cross_domain_similarity`.
    pub reweight_statistic: ReweightStatistic,
    /// EMA momentum of the statistic (0.99).
    pub reweight_momentum: f64,
    /// Exponent γ (1.0).
    pub reweight_gamma: f64,
    /// Clamp of the weights `[min, max]` ([0.1, 10]).
    pub reweight_clamp: [f64; 2],
    /// Which losses the weights scale (`["contrastive"]`).
    pub reweight_targets: Vec<ReweightTarget>,
}

impl T2sSection {
    /// Whether dynamic re-weighting is on and scales `target`.
    pub fn reweights(&self, target: ReweightTarget) -> bool {
        self.reweight && self.reweight_targets.contains(&target)
    }
}

impl Default for T2sSection {
    fn default() -> Self {
        Self {
            fda_beta: 0.01,
            pseudo_target_ce: 1.0,
            contrastive_weight: 1.0,
            temperature: 0.2,
            queries: 19 * 256,
            min_queries_per_class: 16,
            query_distribution: QueryDistribution::Target,
            distribution_momentum: 0.99,
            negatives: 50,
            domain_equalized: true,
            unreliable_start: 20.0,
            unreliable_end: 0.0,
            prototype_momentum: 0.99,
            label_min_fraction: 0.75,
            embedding_scale: 1,
            head_warmup: 0,
            target_queries: 0,
            target_query_confidence: 0.968,
            reweight: true,
            reweight_statistic: ReweightStatistic::TrueClassProbability,
            reweight_momentum: 0.99,
            reweight_gamma: 1.0,
            reweight_clamp: [0.1, 10.0],
            reweight_targets: vec![ReweightTarget::Contrastive],
        }
    }
}
