//! Dynamic class re-weighting (method.md §4.9): a running per-class performance estimate
//! s_c ∈ [0, 1] and the weights w_c = ((1 − s_c) / mean_k(1 − s_k))^γ, clamped, that make the
//! T2S loss concentrate on the classes that are doing worst.

use burn::tensor::{backend::Backend, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::class_sums::ClassSums;
use crate::pixel_stats::probability_of_label;
use crate::prototypes::PrototypeBank;
use crate::LossError;

/// What s_c measures (config `reweight_statistic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReweightStatistic {
    /// The student's mean probability of the true class on pseudo-target pixels of class c
    /// (their labels are the source labels, so no target label is used). The default.
    #[default]
    TrueClassProbability,
    /// The teacher's mean max-probability on target pixels it predicts as c.
    TargetConfidence,
    /// Cosine similarity of the source and target prototypes of class c, mapped to [0, 1] as
    /// (1 + cos)/2: classes whose target features sit far from their source prototype weigh more.
    CrossDomainSimilarity,
}

/// Running class statistics; plain data, so it serialises into a checkpoint and restores exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassStatistics {
    /// The statistic tracked.
    pub statistic: ReweightStatistic,
    /// EMA momentum (weight of the old value), 0.99 by default.
    pub momentum: f64,
    /// s_c per class; `None` until the class is first seen.
    pub values: Vec<Option<f64>>,
}

impl ClassStatistics {
    /// No class seen yet.
    pub fn new(statistic: ReweightStatistic, num_classes: usize, momentum: f64) -> Self {
        Self { statistic, momentum, values: vec![None; num_classes] }
    }

    /// Folds in one batch's per-class values (`None` = class absent): EMA for seen classes, copy
    /// on first sighting. Values are clamped to [0, 1].
    pub fn update(&mut self, batch: &[Option<f64>]) -> Result<(), LossError> {
        if batch.len() != self.values.len() {
            return Err(LossError::InvalidArgument {
                name: "batch",
                reason: format!("{} values for {} classes", batch.len(), self.values.len()),
            });
        }
        for (slot, value) in self.values.iter_mut().zip(batch) {
            if let Some(v) = value.filter(|v| v.is_finite()) {
                let v = v.clamp(0.0, 1.0);
                *slot = Some(match *slot {
                    Some(old) => self.momentum * old + (1.0 - self.momentum) * v,
                    None => v,
                });
            }
        }
        Ok(())
    }

    /// w_c = ((1 − s_c) / mean_k(1 − s_k))^γ over the seen classes k, clamped to `[min, max]`
    /// (0.1 and 10 by default); classes not yet seen get 1, and so does everything while the
    /// mean deficit is 0 (all seen classes perfect).
    pub fn weights(&self, gamma: f64, min: f64, max: f64) -> Vec<f32> {
        let deficits: Vec<f64> = self.values.iter().flatten().map(|s| 1.0 - s).collect();
        let mean = if deficits.is_empty() { 0.0 } else { deficits.iter().sum::<f64>() / deficits.len() as f64 };
        self.values
            .iter()
            .map(|s| match s {
                Some(s) if mean > 0.0 => ((1.0 - s) / mean).powf(gamma).clamp(min, max) as f32,
                _ => 1.0,
            })
            .collect()
    }
}

/// Batch values of [`ReweightStatistic::TrueClassProbability`]: the per-class mean of the
/// student's probability of the labelled class, `probs` `[N, C, H, W]` (softmax of the
/// pseudo-target logits at label resolution), `labels` `[N, H, W]` (ignore = outside `0..C`).
pub fn true_class_probability<B: Backend>(probs: Tensor<B, 4>, labels: Tensor<B, 3, Int>) -> Vec<Option<f64>> {
    true_class_probability_sums(probs, labels).means()
}

/// [`true_class_probability`] before the division: per-class sums and counts, to add up across
/// data-parallel replicas.
pub fn true_class_probability_sums<B: Backend>(probs: Tensor<B, 4>, labels: Tensor<B, 3, Int>) -> ClassSums<B> {
    let [n, c, h, w] = probs.dims();
    let p = probability_of_label(probs.detach(), labels.clone()).reshape([n * h * w]);
    ClassSums::of_scalar(p, labels.reshape([n * h * w]), c)
}

/// Batch values of [`ReweightStatistic::TargetConfidence`]: per predicted class, the mean of the
/// teacher's max-probability, `probs` `[N, C, H, W]`.
pub fn target_confidence<B: Backend>(probs: Tensor<B, 4>) -> Vec<Option<f64>> {
    target_confidence_sums(probs).means()
}

/// [`target_confidence`] before the division, to add up across data-parallel replicas.
pub fn target_confidence_sums<B: Backend>(probs: Tensor<B, 4>) -> ClassSums<B> {
    let [n, c, h, w] = probs.dims();
    let (max, argmax) = probs.detach().max_dim_with_indices(1);
    ClassSums::of_scalar(max.reshape([n * h * w]), argmax.reshape([n * h * w]), c)
}

/// Batch values of [`ReweightStatistic::CrossDomainSimilarity`]: (1 + cos(P_c^src, P_c^tgt))/2
/// for classes with both prototypes (unit rows, so the cosine is the dot product).
pub fn prototype_similarity<B: Backend>(source: &PrototypeBank<B>, target: &PrototypeBank<B>) -> Vec<Option<f64>> {
    let [c, _] = source.prototypes().dims();
    let dots = (source.prototypes() * target.prototypes()).sum_dim(1).reshape([c]);
    let dots = dots.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
    (0..c).map(|k| (source.seen()[k] && target.seen()[k]).then(|| (1.0 + dots[k] as f64) / 2.0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn ema_with_first_sighting_copy() {
        let mut s = ClassStatistics::new(ReweightStatistic::TrueClassProbability, 3, 0.9);
        s.update(&[Some(0.5), None, Some(2.0)]).unwrap();
        assert_eq!(s.values, vec![Some(0.5), None, Some(1.0)]);
        s.update(&[Some(1.0), Some(0.2), None]).unwrap();
        assert!((s.values[0].unwrap() - 0.55).abs() < 1e-12);
        assert_eq!(s.values[1], Some(0.2));
        assert!(s.update(&[None]).is_err());
    }

    #[test]
    fn weights_follow_the_formula_and_clamp() {
        let s = ClassStatistics {
            statistic: ReweightStatistic::TrueClassProbability,
            momentum: 0.99,
            values: vec![Some(0.8), Some(0.4), None, Some(0.999)],
        };
        // Deficits 0.2, 0.6, 0.001 → mean 0.267; w = 0.75, 2.2472, 1 (unseen), 0.00375 → 0.1.
        let mean = (0.2 + 0.6 + 0.001) / 3.0;
        let w = s.weights(1.0, 0.1, 10.0);
        let want = [0.2 / mean, 0.6 / mean, 1.0, 0.1];
        for (g, e) in w.iter().zip(want) {
            assert!((*g as f64 - e).abs() < 1e-6, "{w:?}");
        }
        // γ = 2 squares the ratios before clamping.
        assert!((s.weights(2.0, 0.1, 10.0)[1] as f64 - (0.6 / mean).powi(2)).abs() < 1e-5);
        let perfect = ClassStatistics { values: vec![Some(1.0), None], ..s.clone() };
        assert_eq!(perfect.weights(1.0, 0.1, 10.0), vec![1.0, 1.0]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<ClassStatistics>(&json).unwrap(), s);
    }

    #[test]
    fn batch_statistics_from_probabilities() {
        let dev = Default::default();
        // 2 classes, 1×3 pixels: p(class 0) = 0.9, 0.4, 0.2.
        let probs = Tensor::<Flex, 4>::from_data(TensorData::new(vec![0.9f32, 0.4, 0.2, 0.1, 0.6, 0.8], [1, 2, 1, 3]), &dev);
        let labels = Tensor::<Flex, 3, Int>::from_data(TensorData::new(vec![0i64, 0, 255], [1, 1, 3]), &dev);
        let t = true_class_probability(probs.clone(), labels);
        assert!((t[0].unwrap() - 0.65).abs() < 1e-6 && t[1].is_none(), "{t:?}");
        // Predicted class 0 at pixel 0 (0.9); class 1 at pixels 1 and 2 (0.6, 0.8 → 0.7).
        let c = target_confidence(probs);
        assert!((c[0].unwrap() - 0.9).abs() < 1e-6 && (c[1].unwrap() - 0.7).abs() < 1e-6, "{c:?}");
        let mut src = PrototypeBank::<Flex>::new(2, 2, 0.9, &dev);
        let mut tgt = PrototypeBank::<Flex>::new(2, 2, 0.9, &dev);
        let key = |v: Vec<f32>| Tensor::<Flex, 2>::from_data(TensorData::new(v, [1, 2]), &dev);
        let lab = || Tensor::<Flex, 1, Int>::from_data(TensorData::new(vec![0i64], [1]), &dev);
        src.update(key(vec![1.0, 0.0]), lab());
        tgt.update(key(vec![0.0, 3.0]), lab());
        assert_eq!(prototype_similarity(&src, &tgt), vec![Some(0.5), None]);
    }
}
