//! ResNet-18/34/50/101/152 in torchvision's layout (mmseg's `ResNetV1c` deep stem as an
//! option), with output stride 8, 16 or 32 by dilation, as DeepLabV2 uses it.
//!
//! Parameter names follow torchvision (`conv1`, `bn1`, `layer{1..4}.{j}.conv{1,2,3}`,
//! `bn{1,2,3}`); the checkpoint loader renames `downsample.{0,1}` to `downsample.{conv,bn}` and
//! the V1c stem `stem.{0,1,3,4,6,7}` to `stem.{0,1,2}.{conv,bn}`.

use crate::ops::batch_norm::batch_norm_2d;
use crate::ops::conv::conv2d_forward;
use crate::T2sBackend;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::BatchNorm;
use burn::tensor::module::max_pool2d;
use burn::tensor::{activation::relu, backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::nets::conv_bn::{batch_norm, ConvBn, ConvSpec};

/// Residual block type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// Two 3×3 convolutions (ResNet-18/34), expansion 1.
    Basic,
    /// 1×1, 3×3, 1×1 convolutions (ResNet-50/101/152), expansion 4, stride on the 3×3
    /// ("pytorch" style, as torchvision and mmseg).
    Bottleneck,
}

impl BlockKind {
    /// Output channels per unit of stage width.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// Stem type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StemKind {
    /// torchvision: one 7×7 stride-2 convolution.
    #[default]
    Torchvision,
    /// mmseg ResNetV1c: three 3×3 convolutions (stride 2, 1, 1; widths w/2, w/2, w).
    Deep,
}

fn default_stem_width() -> usize {
    64
}
fn default_output_stride() -> usize {
    8
}

/// ResNet configuration. `depth` picks torchvision's block type and layer counts; `layers` and
/// `block` override them for custom (e.g. test-sized) networks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {
    /// 18, 34, 50, 101 or 152.
    pub depth: usize,
    /// Stem style (`torchvision` or `deep` for ResNetV1c).
    #[serde(default)]
    pub stem: StemKind,
    /// Output channels of the stem (64 in every standard ResNet).
    #[serde(default = "default_stem_width")]
    pub stem_width: usize,
    /// Width of the first stage; stages use 1×, 2×, 4×, 8× this (64 in standard ResNets).
    #[serde(default = "default_stem_width")]
    pub base_width: usize,
    /// 8 (layer3 dilation 2, layer4 dilation 4: DeepLabV2), 16 or 32 (classification layout).
    #[serde(default = "default_output_stride")]
    pub output_stride: usize,
    /// Blocks per stage, overriding the standard count for `depth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<[usize; 4]>,
    /// Block type, overriding the standard one for `depth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockKind>,
    /// Width (`planes`) of each stage, overriding `base_width × (1, 2, 4, 8)`; small CPU
    /// networks keep the dilated last stages narrow, where an output-stride-8 ResNet spends
    /// most of its arithmetic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widths: Option<[usize; 4]>,
}

impl ResNetConfig {
    /// A standard ResNet of the given depth, torchvision stem, output stride 8.
    pub fn new(depth: usize) -> Self {
        Self {
            depth,
            stem: StemKind::Torchvision,
            stem_width: 64,
            base_width: 64,
            output_stride: 8,
            layers: None,
            block: None,
            widths: None,
        }
    }

    /// Block type and blocks per stage.
    pub fn arch(&self) -> Result<(BlockKind, [usize; 4])> {
        let standard = match self.depth {
            18 => Some((BlockKind::Basic, [2, 2, 2, 2])),
            34 => Some((BlockKind::Basic, [3, 4, 6, 3])),
            50 => Some((BlockKind::Bottleneck, [3, 4, 6, 3])),
            101 => Some((BlockKind::Bottleneck, [3, 4, 23, 3])),
            152 => Some((BlockKind::Bottleneck, [3, 8, 36, 3])),
            _ => None,
        };
        match (standard, self.block, self.layers) {
            (_, Some(b), Some(l)) => Ok((b, l)),
            (Some((b, l)), block, layers) => Ok((block.unwrap_or(b), layers.unwrap_or(l))),
            (None, _, _) => Err(ModelError::Config(format!(
                "model.backbone.depth = {} is not a standard ResNet depth (18, 34, 50, 101, 152); \
                 give both `layers` and `block` for a custom ResNet",
                self.depth
            ))),
        }
    }

    /// Stride and dilation of each stage for the output stride.
    fn strides_dilations(&self) -> Result<([usize; 4], [usize; 4])> {
        match self.output_stride {
            8 => Ok(([1, 2, 1, 1], [1, 1, 2, 4])),
            16 => Ok(([1, 2, 2, 1], [1, 1, 1, 2])),
            32 => Ok(([1, 2, 2, 2], [1, 1, 1, 1])),
            s => Err(ModelError::Config(format!("model.backbone.output_stride = {s}: use 8, 16 or 32"))),
        }
    }

    /// Checks every setting, naming the one at fault.
    pub fn validate(&self) -> Result<()> {
        let (_, layers) = self.arch()?;
        self.strides_dilations()?;
        if layers.contains(&0) {
            return Err(ModelError::Config("model.backbone.layers: every stage needs at least one block".into()));
        }
        if self.stem_width == 0 || self.base_width == 0 || self.widths.is_some_and(|w| w.contains(&0)) {
            return Err(ModelError::Config("model.backbone.stem_width, base_width and widths must be positive".into()));
        }
        if self.stem == StemKind::Deep && !self.stem_width.is_multiple_of(2) {
            return Err(ModelError::Config("model.backbone.stem_width must be even for the deep stem".into()));
        }
        Ok(())
    }

    /// Output channels of the four stages.
    pub fn out_channels(&self) -> Result<[usize; 4]> {
        let (block, _) = self.arch()?;
        Ok(self.stage_widths().map(|w| w * block.expansion()))
    }

    /// `planes` of each stage: `widths`, or `base_width` doubled per stage.
    pub fn stage_widths(&self) -> [usize; 4] {
        self.widths.unwrap_or([self.base_width, self.base_width << 1, self.base_width << 2, self.base_width << 3])
    }

    /// Builds the network with PyTorch's default initialisation family (Kaiming-uniform convs,
    /// BN weight 1 and bias 0).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<ResNet<B>> {
        self.validate()?;
        let (block, layers) = self.arch()?;
        let (strides, dilations) = self.strides_dilations()?;
        let (conv1, bn1, stem) = match self.stem {
            StemKind::Torchvision => {
                (Some(ConvSpec::new(3, self.stem_width, 7).stride(2).init(device)), Some(batch_norm(self.stem_width, device)), Vec::new())
            }
            StemKind::Deep => {
                let half = self.stem_width / 2;
                let stem = vec![
                    ConvBn::new(ConvSpec::new(3, half, 3).stride(2), true, device),
                    ConvBn::new(ConvSpec::new(half, half, 3), true, device),
                    ConvBn::new(ConvSpec::new(half, self.stem_width, 3), true, device),
                ];
                (None, None, stem)
            }
        };
        let mut in_ch = self.stem_width;
        let mut stages = Vec::with_capacity(4);
        let widths = self.stage_widths();
        for i in 0..4 {
            let planes = widths[i];
            // The first block of a dilated stage uses half the dilation (torchvision's
            // `previous_dilation`, mmseg's `contract_dilation`): both give 1 then 2 at OS 8.
            let first_dilation = if dilations[i] > 1 { dilations[i] / 2 } else { 1 };
            let mut blocks = Vec::with_capacity(layers[i]);
            for j in 0..layers[i] {
                let (stride, dilation) = if j == 0 { (strides[i], first_dilation) } else { (1, dilations[i]) };
                blocks.push(ResBlock::new(block, in_ch, planes, stride, dilation, device));
                in_ch = planes * block.expansion();
            }
            stages.push(blocks);
        }
        let mut it = stages.into_iter();
        let mut next = || it.next().unwrap_or_default();
        Ok(ResNet { conv1, bn1, stem, layer1: next(), layer2: next(), layer3: next(), layer4: next() })
    }
}

/// A 1×1 projection shortcut (`downsample.0` conv, `downsample.1` BN in PyTorch).
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    pub conv: Conv2d<B>,
    pub bn: BatchNorm<B>,
}

/// A basic (two 3×3) or bottleneck (1×1, 3×3, 1×1) residual block.
#[derive(Module, Debug)]
pub struct ResBlock<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm<B>,
    pub conv2: Conv2d<B>,
    pub bn2: BatchNorm<B>,
    /// Present in bottleneck blocks only.
    pub conv3: Option<Conv2d<B>>,
    pub bn3: Option<BatchNorm<B>>,
    pub downsample: Option<Downsample<B>>,
}

impl<B: Backend> ResBlock<B> {
    fn new(kind: BlockKind, in_ch: usize, planes: usize, stride: usize, dilation: usize, device: &B::Device) -> Self {
        let out_ch = planes * kind.expansion();
        let downsample = (stride != 1 || in_ch != out_ch)
            .then(|| Downsample { conv: ConvSpec::new(in_ch, out_ch, 1).stride(stride).init(device), bn: batch_norm(out_ch, device) });
        match kind {
            BlockKind::Basic => Self {
                // mmseg's BasicBlock: the dilation sits on the first 3×3, the second is plain.
                conv1: ConvSpec::new(in_ch, planes, 3).dilated(dilation).stride(stride).init(device),
                bn1: batch_norm(planes, device),
                conv2: ConvSpec::new(planes, planes, 3).init(device),
                bn2: batch_norm(planes, device),
                conv3: None,
                bn3: None,
                downsample,
            },
            BlockKind::Bottleneck => Self {
                conv1: ConvSpec::new(in_ch, planes, 1).init(device),
                bn1: batch_norm(planes, device),
                conv2: ConvSpec::new(planes, planes, 3).dilated(dilation).stride(stride).init(device),
                bn2: batch_norm(planes, device),
                conv3: Some(ConvSpec::new(planes, out_ch, 1).init(device)),
                bn3: Some(batch_norm(out_ch, device)),
                downsample,
            },
        }
    }
}

impl<B: T2sBackend> ResBlock<B> {
    /// `[N, C_in, H, W] → [N, planes·expansion, H/stride, W/stride]`.
    /// `sub_batches`: how many independent batches `x` concatenates along N (batch-norm
    /// statistics per sub-batch; see [`batch_norm_2d`](crate::ops::batch_norm::batch_norm_2d)).
    pub fn forward(&self, x: Tensor<B, 4>, sub_batches: usize) -> Tensor<B, 4> {
        let identity = match &self.downsample {
            Some(d) => batch_norm_2d(&d.bn, conv2d_forward(&d.conv, x.clone()), sub_batches),
            None => x.clone(),
        };
        let out = relu(batch_norm_2d(&self.bn1, conv2d_forward(&self.conv1, x), sub_batches));
        let out = batch_norm_2d(&self.bn2, conv2d_forward(&self.conv2, out), sub_batches);
        let out = match (&self.conv3, &self.bn3) {
            (Some(c3), Some(b3)) => batch_norm_2d(b3, conv2d_forward(c3, relu(out)), sub_batches),
            _ => out,
        };
        relu(out + identity)
    }
}

/// ResNet backbone without the classifier.
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    /// torchvision stem (absent with the deep stem).
    pub conv1: Option<Conv2d<B>>,
    pub bn1: Option<BatchNorm<B>>,
    /// ResNetV1c deep stem (empty with the torchvision stem).
    pub stem: Vec<ConvBn<B>>,
    pub layer1: Vec<ResBlock<B>>,
    pub layer2: Vec<ResBlock<B>>,
    pub layer3: Vec<ResBlock<B>>,
    pub layer4: Vec<ResBlock<B>>,
}

impl<B: T2sBackend> ResNet<B> {
    /// `[N, 3, H, W]` → the four stage outputs `[N, C_i, H_i, W_i]`; at output stride 8 the
    /// strides are 4, 8, 8, 8 (16: 4, 8, 16, 16; 32: 4, 8, 16, 32).
    /// `sub_batches`: how many independent batches `x` concatenates along N (batch-norm
    /// statistics per sub-batch; see [`batch_norm_2d`](crate::ops::batch_norm::batch_norm_2d)).
    pub fn forward(&self, x: Tensor<B, 4>, sub_batches: usize) -> Vec<Tensor<B, 4>> {
        let mut x = match (&self.conv1, &self.bn1) {
            (Some(c), Some(b)) => relu(batch_norm_2d(b, conv2d_forward(c, x), sub_batches)),
            _ => self.stem.iter().fold(x, |x, layer| layer.forward(x, sub_batches)),
        };
        // [N, stem, H/2, W/2] -> [N, stem, H/4, W/4]
        x = max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], false);
        let mut outs = Vec::with_capacity(4);
        for layer in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
            x = layer.iter().fold(x, |x, block| block.forward(x, sub_batches));
            outs.push(x.clone());
        }
        outs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type B = Flex;

    /// torchvision's parameter counts without `fc`, derived by hand: a conv has k²·in·out
    /// weights, a BN 2·C parameters.
    fn hand_count(depth: usize) -> usize {
        let (kind, layers) = ResNetConfig::new(depth).arch().unwrap();
        let conv = |k: usize, i: usize, o: usize| k * k * i * o;
        let bn = |c: usize| 2 * c;
        let mut n = conv(7, 3, 64) + bn(64);
        let mut in_ch = 64;
        for (i, &count) in layers.iter().enumerate() {
            let planes = 64 << i;
            for j in 0..count {
                let out = planes * kind.expansion();
                n += match kind {
                    BlockKind::Basic => conv(3, in_ch, planes) + bn(planes) + conv(3, planes, planes) + bn(planes),
                    BlockKind::Bottleneck => {
                        conv(1, in_ch, planes) + bn(planes) + conv(3, planes, planes) + bn(planes) + conv(1, planes, out) + bn(out)
                    }
                };
                if j == 0 && (in_ch != out || i > 0) {
                    n += conv(1, in_ch, out) + bn(out);
                }
                in_ch = out;
            }
        }
        n
    }

    #[test]
    fn parameter_counts_match_torchvision() {
        let device = Default::default();
        // torchvision's published totals minus fc (in·1000 + 1000).
        let published = [(18, 11_689_512 - 513_000), (50, 25_557_032 - 2_049_000), (101, 44_549_160 - 2_049_000)];
        for (depth, expected) in published {
            assert_eq!(hand_count(depth), expected, "hand count of ResNet-{depth}");
            let net = ResNetConfig::new(depth).init::<B>(&device).unwrap();
            assert_eq!(crate::io::params::count_trainable::<B, _>(&net), expected, "ResNet-{depth}");
        }
    }

    #[test]
    fn output_strides_and_channels() {
        let device = Default::default();
        let x = Tensor::<B, 4>::zeros([1, 3, 64, 48], &device);
        // 64×48 input: stem and max-pool give 16×12; each stride-2 stage halves, rounding up
        // (3×3 convs with padding 1: out = (in − 1) / 2 + 1).
        let s = |h: usize, w: usize| (h, w);
        for (os, sizes) in [
            (8, [s(16, 12), s(8, 6), s(8, 6), s(8, 6)]),
            (16, [s(16, 12), s(8, 6), s(4, 3), s(4, 3)]),
            (32, [s(16, 12), s(8, 6), s(4, 3), s(2, 2)]),
        ] {
            let mut cfg = ResNetConfig::new(18);
            cfg.output_stride = os;
            cfg.base_width = 8;
            cfg.stem_width = 8;
            let outs = cfg.init::<B>(&device).unwrap().forward(x.clone(), 1);
            for (i, o) in outs.iter().enumerate() {
                assert_eq!(o.dims(), [1, 8 << i, sizes[i].0, sizes[i].1], "OS {os} stage {i}");
            }
        }
        // Per-stage widths override the doubling (Bottleneck: 4× expansion).
        let mut cfg = ResNetConfig::new(50);
        cfg.stem_width = 8;
        cfg.widths = Some([4, 6, 5, 3]);
        cfg.layers = Some([1, 1, 1, 1]);
        assert_eq!(cfg.out_channels().unwrap(), [16, 24, 20, 12]);
        let outs = cfg.init::<B>(&device).unwrap().forward(x, 1);
        assert_eq!(outs.iter().map(|o| o.dims()[1]).collect::<Vec<_>>(), vec![16, 24, 20, 12]);
    }

    #[test]
    fn bad_settings_are_named() {
        let mut cfg = ResNetConfig::new(42);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("depth = 42"), "{err}");
        cfg.depth = 50;
        cfg.output_stride = 4;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("output_stride = 4"), "{err}");
    }
}
