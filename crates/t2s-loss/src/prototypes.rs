//! The prototype bank (method.md §4.4): per class, an exponential moving average of the mean
//! normalised source key of that class, re-normalised to unit length.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::class_sums::{class_sums, ClassSums};
use crate::contrastive::l2_normalize;
use crate::LossError;

/// Class prototypes `[C, D]` on the device, with which classes have been seen.
#[derive(Debug, Clone)]
pub struct PrototypeBank<B: Backend> {
    prototypes: Tensor<B, 2>,
    seen: Vec<bool>,
    momentum: f32,
}

/// A prototype bank as plain data, for checkpoints; restores bit for bit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrototypeState {
    /// EMA momentum m (the weight of the old prototype).
    pub momentum: f32,
    /// Number of classes C.
    pub num_classes: usize,
    /// Embedding size D.
    pub dim: usize,
    /// Row-major `[C, D]` prototypes (zero rows for unseen classes).
    pub values: Vec<f32>,
    /// Whether each class has been seen.
    pub seen: Vec<bool>,
}

impl<B: Backend> PrototypeBank<B> {
    /// An empty bank: no class seen, all prototypes zero.
    pub fn new(num_classes: usize, dim: usize, momentum: f32, device: &B::Device) -> Self {
        Self { prototypes: Tensor::zeros([num_classes, dim], device), seen: vec![false; num_classes], momentum }
    }

    /// The prototypes `[C, D]`: unit rows for seen classes, zero rows for unseen ones.
    pub fn prototypes(&self) -> Tensor<B, 2> {
        self.prototypes.clone()
    }

    /// Which classes have a prototype.
    pub fn seen(&self) -> &[bool] {
        &self.seen
    }

    /// Folds in a batch of keys `[K, D]` with labels `[K]` (outside `0..C` = ignore):
    /// keys are L2-normalised, averaged per class, and each class present in the batch gets
    /// `P_c ← m·P_c + (1 − m)·mean_c` (the first sighting copies the mean), then `P_c / ‖P_c‖`.
    /// Detached: no gradient reaches the keys. Reads back only the C per-class counts.
    pub fn update(&mut self, keys: Tensor<B, 2>, labels: Tensor<B, 1, Int>) {
        let sums = self.batch_sums(keys, labels);
        self.fold(sums);
    }

    /// The first half of [`PrototypeBank::update`]: the batch's per-class sums of the normalised
    /// keys (detached), which data-parallel replicas add up before [`PrototypeBank::fold`].
    pub fn batch_sums(&self, keys: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> ClassSums<B> {
        let (sums, counts) = class_sums(l2_normalize(keys.detach()), labels, self.seen.len());
        ClassSums { sums, counts }
    }

    /// The second half of [`PrototypeBank::update`]: the momentum update with the per-class means
    /// of `sums` (of this batch, or of every replica's batch added up).
    pub fn fold(&mut self, ClassSums { sums, counts }: ClassSums<B>) {
        let [c, d] = sums.dims();
        let device = sums.device();
        let counts_host = counts.clone().into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
        let means = sums / counts.clamp_min(1.0).reshape([c, 1]);
        // Per class: P' = a·P + b·mean with (a, b) = (m, 1 − m) when seen before, (0, 1) on first
        // sighting, (1, 0) when absent from the batch.
        let (mut a, mut b) = (vec![1.0f32; c], vec![0.0f32; c]);
        for k in 0..c {
            if counts_host.get(k).copied().unwrap_or(0.0) > 0.0 {
                (a[k], b[k]) = if self.seen[k] { (self.momentum, 1.0 - self.momentum) } else { (0.0, 1.0) };
                self.seen[k] = true;
            }
        }
        let a = Tensor::<B, 1>::from_data(TensorData::new(a, [c]), &device).reshape([c, 1]).expand([c, d]);
        let b = Tensor::<B, 1>::from_data(TensorData::new(b, [c]), &device).reshape([c, 1]).expand([c, d]);
        self.prototypes = l2_normalize(self.prototypes.clone() * a + means * b);
    }

    /// The bank as plain data (reads the prototypes back from the device).
    pub fn state(&self) -> PrototypeState {
        let [c, d] = self.prototypes.dims();
        PrototypeState {
            momentum: self.momentum,
            num_classes: c,
            dim: d,
            values: self.prototypes.clone().into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default(),
            seen: self.seen.clone(),
        }
    }

    /// Restores a bank saved with [`PrototypeBank::state`].
    pub fn from_state(state: &PrototypeState, device: &B::Device) -> Result<Self, LossError> {
        if state.values.len() != state.num_classes * state.dim || state.seen.len() != state.num_classes {
            return Err(LossError::InvalidArgument {
                name: "prototype state",
                reason: format!(
                    "{} values and {} seen flags do not fit {} classes × {} dims",
                    state.values.len(),
                    state.seen.len(),
                    state.num_classes,
                    state.dim
                ),
            });
        }
        Ok(Self {
            prototypes: Tensor::from_data(TensorData::new(state.values.clone(), [state.num_classes, state.dim]), device),
            seen: state.seen.clone(),
            momentum: state.momentum,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type B = Flex;

    fn tensor(v: Vec<f32>, shape: [usize; 2]) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v, shape), &Default::default())
    }
    fn labels(v: Vec<i64>) -> Tensor<B, 1, Int> {
        let n = v.len();
        Tensor::from_data(TensorData::new(v, [n]), &Default::default())
    }
    fn rows(bank: &PrototypeBank<B>) -> Vec<f32> {
        bank.prototypes().into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn first_sighting_copies_then_ema_and_renormalise() {
        let mut bank = PrototypeBank::<B>::new(3, 2, 0.9, &Default::default());
        // Class 0: keys (3, 4) and (0, 2) → normalised (0.6, 0.8) and (0, 1) → mean (0.3, 0.9) →
        // unit (0.3162, 0.9487). Class 2: (5, 0) → (1, 0). The ignored key changes nothing.
        bank.update(tensor(vec![3.0, 4.0, 0.0, 2.0, 5.0, 0.0, 9.0, 9.0], [4, 2]), labels(vec![0, 0, 2, 255]));
        let r = rows(&bank);
        let s = (0.3f32 * 0.3 + 0.9 * 0.9).sqrt();
        assert_eq!(r.len(), 6);
        for (got, want) in r.iter().zip([0.3 / s, 0.9 / s, 0.0, 0.0, 1.0, 0.0]) {
            assert!((got - want).abs() < 1e-6, "{r:?}");
        }
        assert_eq!(bank.seen(), &[true, false, true]);
        // Second batch: class 2 key (0, 7) → (0, 1); 0.9·(1, 0) + 0.1·(0, 1) = (0.9, 0.1) → unit.
        // Class 0 absent: unchanged. Class 1 first seen: copy.
        bank.update(tensor(vec![0.0, 7.0, -2.0, 0.0], [2, 2]), labels(vec![2, 1]));
        let r = rows(&bank);
        let n = (0.81f32 + 0.01).sqrt();
        assert_eq!(r.len(), 6);
        for (got, want) in r.iter().zip([0.3 / s, 0.9 / s, -1.0, 0.0, 0.9 / n, 0.1 / n]) {
            assert!((got - want).abs() < 1e-6, "{r:?}");
        }
    }

    #[test]
    fn state_round_trips_exactly() {
        let mut bank = PrototypeBank::<B>::new(2, 3, 0.99, &Default::default());
        bank.update(tensor(vec![0.1, 0.2, 0.3, 1.0, -1.0, 0.5], [2, 3]), labels(vec![1, 1]));
        let state = bank.state();
        let json = serde_json::to_string(&state).unwrap();
        let back: PrototypeState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
        let restored = PrototypeBank::<B>::from_state(&back, &Default::default()).unwrap();
        assert_eq!(rows(&restored), rows(&bank));
        assert_eq!(restored.seen(), bank.seen());
        let bad = PrototypeState { dim: 4, ..state };
        assert!(PrototypeBank::<B>::from_state(&bad, &Default::default()).is_err());
    }
}
