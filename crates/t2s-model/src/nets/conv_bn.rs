//! Convolution + batch norm (+ ReLU) blocks, named like mmcv's `ConvModule` (`conv`, `bn`).

use crate::ops::batch_norm::batch_norm_2d;
use crate::ops::conv::conv2d_forward;
use crate::T2sBackend;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};

use crate::nets::host_init::{drawn, Draw};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::{activation::relu, backend::Backend, Tensor};

/// Geometry of a 2-D convolution with symmetric padding.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
    pub bias: bool,
}

impl ConvSpec {
    /// A `kernel`×`kernel` convolution, stride 1, "same" padding for odd kernels, no bias.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Self { in_channels, out_channels, kernel, stride: 1, padding: kernel / 2, dilation: 1, groups: 1, bias: false }
    }
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }
    /// Dilation `d` with padding `d·(k−1)/2`, which keeps the spatial size at stride 1.
    pub fn dilated(mut self, dilation: usize) -> Self {
        self.dilation = dilation;
        self.padding = dilation * (self.kernel - 1) / 2;
        self
    }
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// Builds the Burn convolution, weights and bias drawn on the host as PyTorch's
    /// `nn.Conv2d` initialises them (uniform in ±1/√fan_in, `crate::nets::host_init`).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Conv2d<B> {
        let p = self.padding;
        let mut conv = Conv2dConfig::new([self.in_channels, self.out_channels], [self.kernel, self.kernel])
            .with_stride([self.stride, self.stride])
            .with_dilation([self.dilation, self.dilation])
            .with_groups(self.groups)
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(self.bias)
            .init(device);
        // Burn's parameters are lazy: replacing them draws nothing.
        let fan_in = self.in_channels / self.groups * self.kernel * self.kernel;
        let shape = [self.out_channels, self.in_channels / self.groups, self.kernel, self.kernel];
        conv.weight = drawn(shape, Draw::torch_default(fan_in), device);
        conv.bias = self.bias.then(|| drawn([self.out_channels], Draw::torch_default(fan_in), device));
        conv
    }
}

/// PyTorch's `BatchNorm2d` defaults, set explicitly (ε 1e-5, momentum 0.1).
pub fn batch_norm<B: Backend>(channels: usize, device: &B::Device) -> BatchNorm<B> {
    BatchNormConfig::new(channels).with_epsilon(1e-5).with_momentum(0.1).init(device)
}

/// `conv → bn → (relu)`, the mmcv `ConvModule` with a norm layer (so the conv has no bias).
#[derive(Module, Debug)]
pub struct ConvBn<B: Backend> {
    pub conv: Conv2d<B>,
    pub bn: BatchNorm<B>,
    /// Whether a ReLU follows the norm.
    pub relu: bool,
}

impl<B: Backend> ConvBn<B> {
    /// A conv + BN block; the conv never has a bias (BN makes it redundant). The conv is
    /// initialised as mmcv's `ConvModule` does (`kaiming_init`: normal, fan-out, ReLU gain √2).
    pub fn new(spec: ConvSpec, relu: bool, device: &B::Device) -> Self {
        let mut conv = spec.bias(false).init(device);
        let [out_c, in_per_group, kh, kw] = conv.weight.dims();
        let fan_out = (out_c * kh * kw) as f64;
        let std = 2f64.sqrt() / fan_out.sqrt();
        conv.weight = drawn([out_c, in_per_group, kh, kw], Draw::Normal(std), device);
        Self { conv, bn: batch_norm(spec.out_channels, device), relu }
    }
}

impl<B: T2sBackend> ConvBn<B> {
    /// `[N, C_in, H, W] → [N, C_out, H', W']` (H', W' from stride, padding and dilation).
    /// `sub_batches`: how many independent batches `x` concatenates along N (batch-norm
    /// statistics per sub-batch; see [`batch_norm_2d`](crate::ops::batch_norm::batch_norm_2d)).
    pub fn forward(&self, x: Tensor<B, 4>, sub_batches: usize) -> Tensor<B, 4> {
        let x = batch_norm_2d(&self.bn, conv2d_forward(&self.conv, x), sub_batches);
        if self.relu {
            relu(x)
        } else {
            x
        }
    }
}
