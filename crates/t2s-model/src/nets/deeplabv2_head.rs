//! DeepLabV2's ASPP classifier: four dilated 3×3 convolutions straight to class logits, summed
//! (DAFormer's `DLV2Head`; parameter names `aspp_modules.{i}.conv`).

use crate::ops::conv::conv2d_forward;
use crate::T2sBackend;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::nets::conv_bn::ConvSpec;

fn default_dilations() -> Vec<usize> {
    vec![6, 12, 18, 24]
}

/// DeepLabV2 head configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeepLabV2HeadConfig {
    /// Dilation (and padding) of each branch.
    #[serde(default = "default_dilations")]
    pub dilations: Vec<usize>,
}

impl Default for DeepLabV2HeadConfig {
    fn default() -> Self {
        Self { dilations: default_dilations() }
    }
}

impl DeepLabV2HeadConfig {
    /// Builds the head on `in_channels` features (2048 for ResNet-101's layer4).
    pub fn init<B: Backend>(&self, in_channels: usize, num_classes: usize, device: &B::Device) -> Result<DeepLabV2Head<B>> {
        if self.dilations.is_empty() || self.dilations.contains(&0) {
            return Err(ModelError::Config("model.decode_head.dilations must be a non-empty list of positive numbers".into()));
        }
        let aspp_modules = self
            .dilations
            .iter()
            .map(|&d| AsppConv { conv: ConvSpec::new(in_channels, num_classes, 3).dilated(d).bias(true).init(device) })
            .collect();
        Ok(DeepLabV2Head { aspp_modules })
    }
}

/// One ASPP branch (mmcv `ConvModule` without norm: a biased convolution named `conv`).
#[derive(Module, Debug)]
pub struct AsppConv<B: Backend> {
    pub conv: Conv2d<B>,
}

/// The summed-ASPP classifier.
#[derive(Module, Debug)]
pub struct DeepLabV2Head<B: Backend> {
    pub aspp_modules: Vec<AsppConv<B>>,
}

impl<B: T2sBackend> DeepLabV2Head<B> {
    /// `[N, C_in, h, w]` (layer4) → logits `[N, classes, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut branches = self.aspp_modules.iter().map(|m| conv2d_forward(&m.conv, x.clone()));
        let first = branches.next().expect("validated: at least one branch");
        branches.fold(first, |acc, b| acc + b)
    }
}
