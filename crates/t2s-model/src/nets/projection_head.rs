//! The contrastive projection head: 1×1 conv → BN → ReLU → 1×1 conv, then L2 normalisation
//! over channels (SePiCo's `ProjectionHead`, which T2S-DA's embeddings follow); or, with
//! `linear`, one 1×1 conv then the normalisation, so that the contrastive term shapes the
//! decoder feature itself rather than a hidden layer (docs/results.md, the contrastive-term
//! study).

use crate::ops::batch_norm::batch_norm_2d;
use crate::ops::conv::conv2d_forward;
use crate::precision::cast_to;
use crate::T2sBackend;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::BatchNorm;
use burn::tensor::{activation::relu, backend::Backend, DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::nets::conv_bn::{batch_norm, ConvSpec};

fn default_dim() -> usize {
    256
}

/// Projection head configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProjectionConfig {
    /// Embedding dimension D (256 in the method's defaults).
    #[serde(default = "default_dim")]
    pub dim: usize,
    /// Hidden width; the input width when absent (as SePiCo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<usize>,
    /// One linear layer (1×1 conv) instead of the two-layer head: no hidden layer, BN or ReLU.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub linear: bool,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        Self { dim: default_dim(), hidden: None, linear: false }
    }
}

impl ProjectionConfig {
    /// Builds the head on `in_channels` features.
    pub fn init<B: Backend>(&self, in_channels: usize, device: &B::Device) -> Result<ProjectionHead<B>> {
        let hidden = self.hidden.unwrap_or(in_channels);
        if self.dim == 0 || hidden == 0 {
            return Err(ModelError::Config("model.projection.dim and hidden must be positive".into()));
        }
        if self.linear && self.hidden.is_some() {
            return Err(ModelError::Config("model.projection: a linear head has no hidden layer; remove `hidden` or `linear`".into()));
        }
        if self.linear {
            return Ok(ProjectionHead { conv1: ConvSpec::new(in_channels, self.dim, 1).bias(true).init(device), bn: None, conv2: None });
        }
        Ok(ProjectionHead {
            conv1: ConvSpec::new(in_channels, hidden, 1).bias(true).init(device),
            bn: Some(batch_norm(hidden, device)),
            conv2: Some(ConvSpec::new(hidden, self.dim, 1).bias(true).init(device)),
        })
    }
}

/// Projection head producing unit-length embeddings. A linear head has `conv1` alone (to D).
#[derive(Module, Debug)]
pub struct ProjectionHead<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn: Option<BatchNorm<B>>,
    pub conv2: Option<Conv2d<B>>,
}

impl<B: T2sBackend> ProjectionHead<B> {
    /// `[N, C, h, w]` → embeddings `[N, D, h, w]` with unit L2 norm along D, in f32 whatever
    /// the input's type (the norm is a reduction, the embeddings the contrastive loss's input).
    /// `sub_batches`: how many independent batches the input concatenates along N (batch-norm
    /// statistics per sub-batch; see [`batch_norm_2d`](crate::ops::batch_norm::batch_norm_2d)).
    pub fn forward(&self, x: Tensor<B, 4>, sub_batches: usize) -> Tensor<B, 4> {
        let z = conv2d_forward(&self.conv1, x);
        let z = match (&self.bn, &self.conv2) {
            (Some(bn), Some(conv2)) => conv2d_forward(conv2, relu(batch_norm_2d(bn, z, sub_batches))),
            _ => z,
        };
        l2_normalize_channels(cast_to(z, DType::F32))
    }
}

/// Divides each pixel's channel vector by its L2 norm, `[N, D, h, w]` → `[N, D, h, w]`:
/// `z / max(‖z‖, ε)` with ε 1e-12 as `F.normalize`, written `z / sqrt(max(Σz², ε²))` so that an
/// all-zero vector's gradient is finite (`0 · d sqrt(0)` would be NaN), as t2s-loss's `l2_normalize`.
pub fn l2_normalize_channels<B: Backend>(z: Tensor<B, 4>) -> Tensor<B, 4> {
    let norm = z.clone().square().sum_dim(1).clamp_min(1e-24).sqrt(); // [N, 1, h, w]
    z / norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn embeddings_have_unit_norm() {
        let device = Default::default();
        let head = ProjectionConfig { dim: 4, hidden: Some(3), linear: false }.init::<Flex>(5, &device).unwrap();
        let x = Tensor::<Flex, 4>::random([2, 5, 3, 2], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let z = head.forward(x, 1);
        assert_eq!(z.dims(), [2, 4, 3, 2]);
        let norms = z.square().sum_dim(1).sqrt().into_data().to_vec::<f32>().unwrap();
        for n in norms {
            assert!((n - 1.0).abs() < 1e-5, "{n}");
        }
    }

    #[test]
    fn normalisation_is_hand_checked() {
        let device = Default::default();
        // One pixel with channels (3, 4): norm 5.
        let z = Tensor::<Flex, 4>::from_data(TensorData::new(vec![3.0f32, 4.0], [1, 2, 1, 1]), &device);
        let v = l2_normalize_channels(z).into_data().to_vec::<f32>().unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6, "{v:?}");
    }

    /// An all-zero channel vector stays zero with the gradient of `z / ε` (PyTorch's), not NaN.
    #[test]
    fn a_zero_vector_has_a_finite_gradient() {
        type AB = burn::backend::Autodiff<Flex>;
        let device = Default::default();
        // Two pixels: (0, 0) and (3, 4), stored channel by channel.
        let z = Tensor::<AB, 4>::from_data(TensorData::new(vec![0.0f32, 3.0, 0.0, 4.0], [1, 2, 2, 1]), &device).require_grad();
        let w = Tensor::<AB, 4>::from_data(TensorData::new(vec![1.0f32, 1.0, 2.0, 2.0], [1, 2, 2, 1]), &device);
        let y = l2_normalize_channels(z.clone());
        let grads = (y.clone() * w).sum().backward();
        let g = z.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        let y = y.into_data().to_vec::<f32>().unwrap();
        assert!(y[0] == 0.0 && y[2] == 0.0 && (y[1] - 0.6).abs() < 1e-6 && (y[3] - 0.8).abs() < 1e-6, "{y:?}");
        // Zero pixel: d(z/ε)/dz · w = w / ε. Pixel (3, 4): (w − y·(y·w)) / 5 with y = (0.6, 0.8),
        // y·w = 2.2: ((1 − 1.32) / 5, (2 − 1.76) / 5) = (−0.064, 0.048).
        let want = [1e12f32, -0.064, 2e12, 0.048];
        for (got, want) in g.iter().zip(want) {
            assert!((got - want).abs() <= 1e-5 * want.abs(), "{g:?}");
        }
    }

    #[test]
    fn parameter_count_is_hand_derived() {
        let device = Default::default();
        let head = ProjectionConfig::default().init::<Flex>(256, &device).unwrap();
        // conv1 256·256 + 256, BN 2·256, conv2 256·256 + 256.
        assert_eq!(crate::io::params::count_trainable::<Flex, _>(&head), 256 * 256 + 256 + 512 + 256 * 256 + 256);
        let linear = ProjectionConfig { dim: 64, hidden: None, linear: true }.init::<Flex>(128, &device).unwrap();
        assert_eq!(crate::io::params::count_trainable::<Flex, _>(&linear), 128 * 64 + 64);
        assert!(ProjectionConfig { dim: 64, hidden: Some(8), linear: true }.init::<Flex>(128, &device).is_err());
    }

    /// A linear head is its convolution, normalised: hand-set weights on one pixel.
    #[test]
    fn linear_head_is_one_convolution_then_the_norm() {
        use burn::module::Param;
        let device = Default::default();
        let mut head = ProjectionConfig { dim: 2, hidden: None, linear: true }.init::<Flex>(2, &device).unwrap();
        // W = [[1, 2], [0, 1]], b = (0, 1): x = (1, 1) → (3, 2) → (3, 2)/√13.
        head.conv1.weight = Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32, 2.0, 0.0, 1.0], [2, 2, 1, 1]), &device));
        head.conv1.bias = Some(Param::from_tensor(Tensor::from_data(TensorData::new(vec![0.0f32, 1.0], [2]), &device)));
        let x = Tensor::<Flex, 4>::from_data(TensorData::new(vec![1.0f32, 1.0], [1, 2, 1, 1]), &device);
        let v = head.forward(x, 1).into_data().to_vec::<f32>().unwrap();
        let n = 13f32.sqrt();
        assert!((v[0] - 3.0 / n).abs() < 1e-6 && (v[1] - 2.0 / n).abs() < 1e-6, "{v:?}");
    }
}
