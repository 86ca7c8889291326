//! The T2S-DA contrastive term of one iteration (method.md §4.3–4.8), in two parts. The teacher
//! side ([`plan_t2s_term`]) reads the per-pixel scalars the samplers need, draws queries and
//! negatives, updates the prototypes and weights the classes; it needs nothing of the student,
//! so the training step runs it before queueing the student's pass, and its reads from the
//! device wait for the teacher's work only. The student side ([`T2sPlan::loss`]) evaluates the
//! loss on the student's pseudo-target embedding without reading anything back.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData, Transaction};
use rand::Rng;
use serde::{Deserialize, Serialize};
use t2s_loss::pixel_stats::{entropy, top_classes};
use t2s_loss::sampling::{sample_negatives, sample_queries, select_unreliable, unreliable_percent, TargetCandidate};
use t2s_loss::{t2s_contrastive_loss, ClassStatistics, PrototypeBank, PrototypeState};

use crate::config::{QueryDistribution, ReweightTarget, T2sSection};
use crate::replicas::{sum_class_sums, sum_host, Replica};
use crate::{Result, TrainError};

/// Training state of the T2S term; goes into checkpoints.
#[derive(Debug, Clone)]
pub struct T2sState<B: Backend> {
    /// Source class prototypes.
    pub prototypes: PrototypeBank<B>,
    /// Target class prototypes (teacher keys by teacher prediction), for the
    /// `cross_domain_similarity` statistic.
    pub target_prototypes: PrototypeBank<B>,
    /// Statistics behind the class weights.
    pub stats: ClassStatistics,
    /// Running label-distribution estimate π (per class, sums to 1 once seen).
    pub distribution: Vec<f64>,
}

impl<B: Backend> T2sState<B> {
    /// Fresh state for `num_classes` classes and embeddings of size `dim`.
    pub fn new(cfg: &T2sSection, num_classes: usize, dim: usize, device: &B::Device) -> Self {
        Self {
            prototypes: PrototypeBank::new(num_classes, dim, cfg.prototype_momentum, device),
            target_prototypes: PrototypeBank::new(num_classes, dim, cfg.prototype_momentum, device),
            stats: ClassStatistics::new(cfg.reweight_statistic, num_classes, cfg.reweight_momentum),
            distribution: vec![0.0; num_classes],
        }
    }
}

/// [`T2sState`] as plain data, for `state.json` in a checkpoint; restores exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct T2sSaved {
    /// Source prototypes.
    pub prototypes: PrototypeState,
    /// Target prototypes.
    pub target_prototypes: PrototypeState,
    /// Re-weighting statistics.
    pub stats: ClassStatistics,
    /// Label-distribution estimate π.
    pub distribution: Vec<f64>,
}

impl<B: Backend> T2sState<B> {
    /// The state as plain data (reads the prototypes back from the device).
    pub fn save(&self) -> T2sSaved {
        T2sSaved {
            prototypes: self.prototypes.state(),
            target_prototypes: self.target_prototypes.state(),
            stats: self.stats.clone(),
            distribution: self.distribution.clone(),
        }
    }

    /// The class weights of dynamic re-weighting from the statistics so far (γ and clamp of `cfg`).
    pub fn class_weights(&self, cfg: &T2sSection) -> Vec<f32> {
        self.stats.weights(cfg.reweight_gamma, cfg.reweight_clamp[0], cfg.reweight_clamp[1])
    }

    /// Back from [`T2sState::save`]'s output, under the resumed run's settings `cfg`, for a
    /// network of `num_classes` classes and `dim`-wide embeddings (a state of other sizes is
    /// refused: an edited or copied `state.json`): the momenta are `cfg`'s (a `--set` on
    /// `--resume` changes them from here on), and statistics of another kind than
    /// `cfg.reweight_statistic` start afresh, as the new kind's would.
    pub fn restore(saved: &T2sSaved, cfg: &T2sSection, (num_classes, dim): (usize, usize), device: &B::Device) -> Result<Self> {
        let bad = |e: t2s_loss::LossError| TrainError::Usage(format!("checkpoint T2S state: {e}"));
        let sizes = [
            ("prototypes", saved.prototypes.num_classes, Some(saved.prototypes.dim)),
            ("target_prototypes", saved.target_prototypes.num_classes, Some(saved.target_prototypes.dim)),
            ("stats", saved.stats.values.len(), None),
            ("distribution", saved.distribution.len(), None),
        ];
        for (part, classes, width) in sizes {
            if classes != num_classes || width.is_some_and(|d| d != dim) {
                let held = width.map_or(format!("{classes} classes"), |d| format!("{classes} classes × {d}"));
                return Err(TrainError::Usage(format!(
                    "checkpoint T2S state (state.json, t2s.{part}): holds {held}, the network has {num_classes} classes and {dim}-wide embeddings; the file was edited or comes from another run"
                )));
            }
        }
        let bank =
            |s: &PrototypeState| PrototypeBank::from_state(&PrototypeState { momentum: cfg.prototype_momentum, ..s.clone() }, device);
        let stats = if saved.stats.statistic == cfg.reweight_statistic {
            ClassStatistics { momentum: cfg.reweight_momentum, ..saved.stats.clone() }
        } else {
            ClassStatistics::new(cfg.reweight_statistic, saved.stats.values.len(), cfg.reweight_momentum)
        };
        Ok(Self {
            prototypes: bank(&saved.prototypes).map_err(bad)?,
            target_prototypes: bank(&saved.target_prototypes).map_err(bad)?,
            stats,
            distribution: saved.distribution.clone(),
        })
    }
}

/// The teacher-side inputs of the term, all at embedding resolution `[N, ·, h, w]`, off the graph.
pub struct TeacherView<B: Backend> {
    /// Teacher embedding of the source images `[N, D, h, w]`.
    pub source_keys: Tensor<B, 4>,
    /// Teacher embedding of the target images `[N, D, h, w]`.
    pub target_keys: Tensor<B, 4>,
    /// Source labels brought to embedding resolution (majority rule), `[N, h, w]`, 255 = ignore.
    pub source_labels: Tensor<B, 3, Int>,
    /// Teacher softmax on the target images `[N, C, h, w]`.
    pub target_probs: Tensor<B, 4>,
    /// `[N·h·w]`, pixel-major: true where the mixed image's embedding pixel covers target pixels
    /// only (nothing pasted), the candidates of `t2s.target_queries`; None without a target.
    pub unpasted: Option<Vec<bool>>,
}

/// What the term did, for logs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct T2sLog {
    /// Queries used.
    pub queries: usize,
    /// Classes with queries.
    pub classes: usize,
    /// Unreliable target pixels.
    pub unreliable: usize,
    /// Fraction of negatives taken from the target.
    pub target_negative_fraction: f64,
    /// The unreliable percentage α_t used.
    pub unreliable_percent: f32,
    /// Queries from confident real-target pixels (`t2s.target_queries`).
    pub target_queries: usize,
}

/// Queries into one embedding with their negatives.
struct QuerySet {
    /// Query pixels (indices into the `N·h·w` pixels, pixel-major) and their classes.
    indices: Vec<usize>,
    classes: Vec<usize>,
    /// `m` negative key indices per query (into the plan's keys), query-major.
    negatives: Vec<usize>,
}

/// What [`plan_t2s_term`] decided, for [`T2sPlan::loss`]: the sampled pixels, the keys, the
/// prototypes and the class weights, all off the graph.
pub struct T2sPlan<B: Backend> {
    /// The queries of the pseudo-target's embedding.
    pseudo_target: QuerySet,
    /// The queries of the mixed images' embedding (`t2s.target_queries`), when drawn.
    target: Option<QuerySet>,
    m: usize,
    /// Source then target keys `[2P, D]`.
    keys: Tensor<B, 2>,
    /// Source prototypes `[C, D]` after this batch's update.
    prototypes: Tensor<B, 2>,
    /// Class weights `[C]`.
    weights: Vec<f32>,
    temperature: f32,
    contrastive_weight: f64,
}

/// The teacher side of the term: per-pixel scalars to the host, π, queries, unreliable target
/// pixels and negatives drawn, the source prototypes updated with this batch's source keys.
///
/// With data-parallel `replica`s, the class frequencies behind π and the prototypes' class sums
/// are added up over the replicas' batches, so that every replica keeps the same state.
#[allow(clippy::too_many_arguments)]
pub fn plan_t2s_term<B: Backend, R: Rng + ?Sized>(
    teacher: TeacherView<B>,
    state: &mut T2sState<B>,
    cfg: &T2sSection,
    iter: usize,
    max_iters: usize,
    replica: Option<&Replica>,
    rng: &mut R,
) -> Result<(T2sPlan<B>, T2sLog)> {
    let [n, d, h, w] = teacher.source_keys.dims();
    let c = teacher.target_probs.dims()[1];
    let p = n * h * w;
    let loss_err = |e: t2s_loss::LossError| TrainError::Usage(format!("T2S sampling: {e}"));

    // Per-pixel scalars to the host (a few bytes per pixel; the embeddings stay on the device),
    // in one transaction: one wait for the device instead of one per map.
    let k = 3.min(c);
    let want_target = cfg.target_queries > 0 && teacher.unpasted.is_some();
    let mut read = Transaction::default()
        .register(teacher.source_labels.clone())
        .register(entropy(teacher.target_probs.clone()))
        .register(top_classes(teacher.target_probs.clone(), k));
    if want_target {
        read = read.register(teacher.target_probs.clone().max_dim(1));
    }
    let mut read = read.execute().into_iter();
    let mut next = || read.next().expect("a transaction returns one result per registered tensor");
    let (labels, ent, top) = (next(), next(), next());
    let confidence: Option<Vec<f32>> = want_target.then(|| next().iter::<f32>().collect());
    let labels: Vec<u8> = labels.iter::<i64>().map(|v| v.clamp(0, 255) as u8).collect();
    let ent: Vec<f32> = ent.iter::<f32>().collect();
    let top: Vec<i64> = top.iter::<i64>().collect(); // [N, k, h, w]

    // π: EMA of the class frequencies of the chosen distribution.
    let mut freq = vec![0.0f64; c];
    match cfg.query_distribution {
        QueryDistribution::Target => (0..n).for_each(|i| (0..h * w).for_each(|j| freq[top[i * k * h * w + j] as usize] += 1.0)),
        QueryDistribution::Source => labels.iter().filter(|&&l| (l as usize) < c).for_each(|&l| freq[l as usize] += 1.0),
        QueryDistribution::Uniform => freq.iter_mut().for_each(|f| *f = 1.0),
    }
    let freq = sum_host::<B>(replica, "adding up the class frequencies", &freq, &teacher.source_keys.device())?;
    let total: f64 = freq.iter().sum();
    if total > 0.0 {
        let first = state.distribution.iter().all(|&v| v == 0.0);
        let m = cfg.distribution_momentum;
        for (pi, f) in state.distribution.iter_mut().zip(&freq) {
            *pi = if first { f / total } else { m * *pi + (1.0 - m) * f / total };
        }
    }
    let pi: Vec<f32> = state.distribution.iter().map(|&v| v as f32).collect();

    let queries = sample_queries(&labels, c, 255, &pi, cfg.queries, cfg.min_queries_per_class, rng).map_err(loss_err)?;
    let percent = unreliable_percent(iter, max_iters, cfg.unreliable_start, cfg.unreliable_end);
    let unreliable = select_unreliable(&ent, None, percent).map_err(loss_err)?;
    let candidates: Vec<TargetCandidate> = unreliable
        .iter()
        .map(|&j| {
            let (img, pix) = (j / (h * w), j % (h * w));
            let mut t = [u8::MAX; 3];
            for (r, slot) in t.iter_mut().enumerate().take(k) {
                *slot = top[(img * k + r) * h * w + pix] as u8;
            }
            TargetCandidate { index: j, top: t }
        })
        .collect();
    let negatives =
        sample_negatives(&queries, &labels, c, 255, &candidates, p, cfg.negatives, cfg.domain_equalized, rng).map_err(loss_err)?;
    // Queries from the confident, unpasted real-target pixels of the mixed images, labelled with
    // the teacher's class there, drawn after everything else so that the other draws stay the same.
    let target = match (&confidence, &teacher.unpasted) {
        (Some(conf), Some(unpasted)) => {
            let pseudo: Vec<u8> = (0..p)
                .map(|j| {
                    let (img, pix) = (j / (h * w), j % (h * w));
                    if unpasted[j] && conf[j] >= cfg.target_query_confidence {
                        top[img * k * h * w + pix] as u8
                    } else {
                        u8::MAX
                    }
                })
                .collect();
            if pseudo.iter().all(|&l| l == u8::MAX) {
                None
            } else {
                let q = sample_queries(&pseudo, c, 255, &pi, cfg.target_queries, cfg.min_queries_per_class, rng).map_err(loss_err)?;
                let neg =
                    sample_negatives(&q, &labels, c, 255, &candidates, p, cfg.negatives, cfg.domain_equalized, rng).map_err(loss_err)?;
                Some(QuerySet { indices: neg.queries.indices, classes: neg.queries.classes, negatives: neg.indices })
            }
        }
        _ => None,
    };

    // Keys [P, D] (pixel-major), prototypes updated with this batch's source keys.
    let flat = |t: Tensor<B, 4>| t.permute([0, 2, 3, 1]).reshape([p, d]);
    let source_keys = flat(teacher.source_keys);
    let sums = state.prototypes.batch_sums(source_keys.clone(), teacher.source_labels.reshape([p]));
    state.prototypes.fold(sum_class_sums(replica, "adding up the source prototypes' class sums", sums)?);
    let weights: Vec<f32> = if cfg.reweights(ReweightTarget::Contrastive) { state.class_weights(cfg) } else { vec![1.0; c] };

    let nq = negatives.queries.indices.len();
    let log = T2sLog {
        queries: nq,
        classes: negatives.queries.per_class.iter().filter(|&&k| k > 0).count(),
        unreliable: unreliable.len(),
        target_negative_fraction: if nq == 0 { 0.0 } else { negatives.from_target as f64 / (nq * negatives.m) as f64 },
        unreliable_percent: percent,
        target_queries: target.as_ref().map_or(0, |t| t.indices.len()),
    };
    let plan = T2sPlan {
        pseudo_target: QuerySet { indices: negatives.queries.indices, classes: negatives.queries.classes, negatives: negatives.indices },
        target,
        m: negatives.m,
        keys: Tensor::cat(vec![source_keys, flat(teacher.target_keys)], 0),
        prototypes: state.prototypes.prototypes(),
        weights,
        temperature: cfg.temperature,
        contrastive_weight: cfg.contrastive_weight,
    };
    Ok((plan, log))
}

/// An embedding `[N, D, h, w]` at the term's resolution (`t2s.embedding_scale`): upsampled
/// bilinearly by `scale` (`[N, D, scale·h, scale·w]`), or as it is for 1.
pub fn at_term_scale<B: Backend>(embedding: Tensor<B, 4>, scale: usize) -> Tensor<B, 4> {
    let [_, _, h, w] = embedding.dims();
    t2s_model::resize_bilinear(embedding, h * scale, w * scale)
}

impl<B: Backend> T2sPlan<B> {
    /// The weighted contrastive loss `λ·L_T2S` (a one-element tensor on the student's graph) for
    /// the student's pseudo-target embedding `student` `[N, D, h, w]` (its labels are the source
    /// labels), the embedding the plan's teacher view was made for.
    pub fn loss<AB: AutodiffBackend<InnerBackend = B> + t2s_model::T2sBackend>(&self, student: Tensor<AB, 4>) -> Tensor<AB, 1> {
        self.term(student, &self.pseudo_target)
    }

    /// The same term for the queries from confident real-target pixels (`t2s.target_queries`)
    /// on the student's embedding of the mixed images `[N, D, h, w]`; None when none were drawn.
    pub fn target_loss<AB: AutodiffBackend<InnerBackend = B> + t2s_model::T2sBackend>(
        &self,
        mixed: Tensor<AB, 4>,
    ) -> Option<Tensor<AB, 1>> {
        self.target.as_ref().map(|t| self.term(mixed, t))
    }

    /// The weighted contrastive loss `[1]` of the queries `set` draws from the student's
    /// embedding `[N, D, h, w]` (gathered at `set.indices` into `[Nq, D]`).
    fn term<AB: AutodiffBackend<InnerBackend = B> + t2s_model::T2sBackend>(&self, student: Tensor<AB, 4>, set: &QuerySet) -> Tensor<AB, 1> {
        let [n, d, h, w] = student.dims();
        let device = student.device();
        let nq = set.indices.len();
        let idx = |v: &[usize]| {
            Tensor::<AB, 1, Int>::from_data(TensorData::new(v.iter().map(|&i| i as i64).collect::<Vec<_>>(), [v.len()]), &device)
        };
        let q = student.permute([0, 2, 3, 1]).reshape([n * h * w, d]).select(0, idx(&set.indices)); // [Nq, D]
        let neg = idx(&set.negatives).reshape([nq, self.m]);
        let c = self.weights.len();
        let class_weights = Tensor::<AB, 1>::from_data(TensorData::new(self.weights.clone(), [c]), &device);
        let loss = t2s_contrastive_loss(
            q,
            idx(&set.classes),
            Tensor::from_inner(self.prototypes.clone()),
            Tensor::from_inner(self.keys.clone()),
            neg,
            class_weights,
            self.temperature,
        );
        loss.mul_scalar(self.contrastive_weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use t2s_loss::ReweightStatistic;

    type AB = Autodiff<Flex>;
    type IB = Flex;

    /// `[1, D, 2, 2]` embedding whose pixel j is the unit vector `dirs[j]` (D = 4).
    fn embed<Bk: Backend>(dirs: [usize; 4]) -> Tensor<Bk, 4> {
        let mut v = vec![0.0f32; 16];
        for (j, &k) in dirs.iter().enumerate() {
            v[k * 4 + j] = 1.0;
        }
        Tensor::from_data(TensorData::new(v, [1, 4, 2, 2]), &Default::default())
    }

    #[test]
    fn orthogonal_negatives_give_the_hand_computed_loss() {
        // Classes 0 and 1 (of 4); pixels 0, 1 are class 0 (direction e0), pixels 2, 3 class 1 (e1).
        // Target keys all along e2, unreliable (equal entropy), teacher top 3 = {3, 2, 1}: they are
        // negatives for class 0 only. Every query sits on its prototype (dot 1) and every
        // negative is orthogonal (dot 0): ℓ = −log(e^{1/τ} / (e^{1/τ} + m)) for every query.
        let cfg =
            T2sSection { queries: 8, min_queries_per_class: 4, negatives: 6, temperature: 0.2, reweight: false, ..T2sSection::default() };
        let mut state = T2sState::<IB>::new(&cfg, 4, 4, &Default::default());
        let probs: Vec<f32> = [0.01f32, 0.04, 0.45, 0.5].iter().flat_map(|&p| [p; 4]).collect();
        let view = TeacherView::<IB> {
            source_keys: embed([0, 0, 1, 1]),
            target_keys: embed([2, 2, 2, 2]),
            source_labels: Tensor::from_data(TensorData::new(vec![0i64, 0, 1, 1], [1, 2, 2]), &Default::default()),
            target_probs: Tensor::from_data(TensorData::new(probs, [1, 4, 2, 2]), &Default::default()),
            unpasted: None,
        };
        let student = embed::<AB>([0, 0, 1, 1]).require_grad();
        let (plan, log) = plan_t2s_term(view, &mut state, &cfg, 0, 100, None, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        let loss = plan.loss(student.clone());
        let want = -((5.0f64).exp() / ((5.0f64).exp() + 6.0)).ln();
        let got = loss.clone().into_scalar() as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        assert_eq!((log.queries, log.classes, log.unreliable), (8, 2, 4));
        // Class 0: 3 of 6 negatives from the target; class 1: none → 12 of 48.
        assert!((log.target_negative_fraction - 12.0 / 48.0).abs() < 1e-12);
        // π after the first batch: teacher argmax is class 3 everywhere.
        assert_eq!(state.distribution, vec![0.0, 0.0, 0.0, 1.0]);
        assert_eq!(state.prototypes.seen(), &[true, true, false, false]);
        // Gradient reaches the student embedding.
        let grads = loss.backward();
        assert!(student.grad(&grads).is_some());
    }

    #[test]
    fn a_resumed_state_takes_the_resumed_runs_momenta_and_statistic() {
        let cfg = T2sSection::default();
        let mut state = T2sState::<IB>::new(&cfg, 3, 2, &Default::default());
        state.stats.update(&[Some(0.5), None, Some(0.25)]).unwrap();
        state.distribution = vec![0.5, 0.25, 0.25];
        let keys = Tensor::<IB, 2>::from_data(TensorData::new(vec![3.0f32, 4.0], [1, 2]), &Default::default());
        state.prototypes.update(keys, Tensor::from_data(TensorData::new(vec![1i64], [1]), &Default::default()));
        let saved = state.save();
        // The same settings: exactly the saved state.
        assert_eq!(T2sState::<IB>::restore(&saved, &cfg, (3, 2), &Default::default()).unwrap().save(), saved);
        // New momenta apply from here on; the values stay.
        let changed = T2sSection { prototype_momentum: 0.5, reweight_momentum: 0.9, ..cfg.clone() };
        let back = T2sState::<IB>::restore(&saved, &changed, (3, 2), &Default::default()).unwrap().save();
        assert_eq!((back.prototypes.momentum, back.target_prototypes.momentum, back.stats.momentum), (0.5, 0.5, 0.9));
        assert_eq!((&back.prototypes.values, &back.stats.values), (&saved.prototypes.values, &saved.stats.values));
        assert_eq!(back.prototypes.values[2..4], [0.6, 0.8]);
        // Another statistic starts with no class seen.
        let other = T2sSection { reweight_statistic: ReweightStatistic::TargetConfidence, ..cfg };
        let back = T2sState::<IB>::restore(&saved, &other, (3, 2), &Default::default()).unwrap().save();
        assert_eq!(back.stats, ClassStatistics::new(ReweightStatistic::TargetConfidence, 3, 0.99));
        assert_eq!(back.distribution, saved.distribution);
        // A state of other sizes than the network's is refused, naming the part.
        let err = |sizes| T2sState::<IB>::restore(&saved, &T2sSection::default(), sizes, &Default::default()).err().unwrap().to_string();
        assert_eq!(
            err((4, 2)),
            "checkpoint T2S state (state.json, t2s.prototypes): holds 3 classes × 2, the network has 4 classes and 2-wide embeddings; the file was edited or comes from another run"
        );
        assert!(err((3, 8))
            .starts_with("checkpoint T2S state (state.json, t2s.prototypes): holds 3 classes × 2, the network has 3 classes and 8-wide"));
        let mut short = saved.clone();
        short.distribution.pop();
        let e = T2sState::<IB>::restore(&short, &T2sSection::default(), (3, 2), &Default::default()).err().unwrap().to_string();
        assert!(e.starts_with("checkpoint T2S state (state.json, t2s.distribution): holds 2 classes, the network has 3 classes"), "{e}");
    }

    #[test]
    fn target_queries_take_confident_unpasted_pixels_only() {
        // Source as above (classes 0 and 1 along e0 and e1). Target pixel 0 is class 0 and pixel 2
        // class 0 at 0.97, but pixel 2 was pasted over; pixel 1 is class 1 at 0.97; pixel 3 is
        // uncertain. No unreliable target pixels (α = 0): negatives are the other class's source
        // keys, orthogonal. The student's mixed embedding puts pixels 0 and 1 on their prototypes
        // and pixels 2 and 3 along e3: only queries at pixels 0 and 1 give the closed form below.
        let cfg = T2sSection {
            queries: 8,
            min_queries_per_class: 2,
            negatives: 6,
            temperature: 0.2,
            reweight: false,
            unreliable_start: 0.0,
            target_queries: 4,
            ..T2sSection::default()
        };
        let mut state = T2sState::<IB>::new(&cfg, 4, 4, &Default::default());
        let pixel = [[0.97f32, 0.01, 0.01, 0.01], [0.01, 0.97, 0.01, 0.01], [0.97, 0.01, 0.01, 0.01], [0.25, 0.25, 0.25, 0.25]];
        let probs: Vec<f32> = (0..4).flat_map(|c| pixel.iter().map(move |p| p[c])).collect(); // [1, C, 2, 2]
        let view = TeacherView::<IB> {
            source_keys: embed([0, 0, 1, 1]),
            target_keys: embed([2, 2, 2, 2]),
            source_labels: Tensor::from_data(TensorData::new(vec![0i64, 0, 1, 1], [1, 2, 2]), &Default::default()),
            target_probs: Tensor::from_data(TensorData::new(probs, [1, 4, 2, 2]), &Default::default()),
            unpasted: Some(vec![true, true, false, true]),
        };
        let (plan, log) = plan_t2s_term(view, &mut state, &cfg, 0, 100, None, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        assert_eq!(log.target_queries, 4);
        let mixed = embed::<AB>([0, 1, 3, 3]).require_grad();
        let loss = plan.target_loss(mixed.clone()).unwrap();
        let want = -((5.0f64).exp() / ((5.0f64).exp() + 6.0)).ln();
        let got = loss.clone().into_scalar() as f64;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        assert!(mixed.grad(&loss.backward()).is_some());
        // Without the option, none are drawn.
        let off = T2sSection { target_queries: 0, ..cfg };
        let view = TeacherView::<IB> {
            source_keys: embed([0, 0, 1, 1]),
            target_keys: embed([2, 2, 2, 2]),
            source_labels: Tensor::from_data(TensorData::new(vec![0i64, 0, 1, 1], [1, 2, 2]), &Default::default()),
            target_probs: Tensor::from_data(TensorData::new(vec![0.25f32; 16], [1, 4, 2, 2]), &Default::default()),
            unpasted: Some(vec![true; 4]),
        };
        let (plan, log) = plan_t2s_term(view, &mut state, &off, 0, 100, None, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        assert!(plan.target_loss(embed::<AB>([0, 1, 3, 3])).is_none() && log.target_queries == 0);
    }
}
