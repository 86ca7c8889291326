//! A segmentation network's configuration: backbone, decode head, classes, projection head and
//! HRDA, the named presets, and building the network from them.

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::{Backbone, DecodeHead, Segmentor};
use crate::error::{ModelError, Result};
use crate::nets::daformer_head::{DaFormerHeadConfig, FusionKind};
use crate::nets::deeplabv2_head::DeepLabV2HeadConfig;
use crate::nets::hrda::{HrdaBranch, HrdaConfig};
use crate::nets::mit::MitConfig;
use crate::nets::projection_head::ProjectionConfig;
use crate::nets::resnet::{ResNetConfig, StemKind};
use crate::nets::segformer_head::SegFormerHeadConfig;

/// Backbone choice.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BackboneConfig {
    /// ResNet (torchvision layout; `stem = "deep"` for ResNetV1c).
    Resnet(ResNetConfig),
    /// Mix Transformer (SegFormer encoder).
    Mit(MitConfig),
}

/// Decode head choice.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DecodeHeadConfig {
    /// DeepLabV2 ASPP classifier on the last backbone stage.
    Deeplabv2(DeepLabV2HeadConfig),
    /// DAFormer's multi-level context-aware fusion head.
    Daformer(DaFormerHeadConfig),
    /// SegFormer's all-MLP head.
    Segformer(SegFormerHeadConfig),
}

fn default_classes() -> usize {
    19
}

/// A whole segmentation network.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SegmentorConfig {
    pub backbone: BackboneConfig,
    pub decode_head: DecodeHeadConfig,
    /// Number of classes (19 for the Cityscapes label space).
    #[serde(default = "default_classes")]
    pub num_classes: usize,
    /// Contrastive projection head; absent for plain segmentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<ProjectionConfig>,
    /// HRDA's multi-resolution network ([`HrdaConfig`]); absent for a single-scale network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hrda: Option<HrdaConfig>,
}

/// Names accepted by [`SegmentorConfig::preset`].
pub const PRESETS: &[&str] = &[
    "deeplabv2-r101",
    "deeplabv2-r101-v1c",
    "deeplabv2-r50",
    "deeplabv2-r18",
    "daformer-mitb0",
    "daformer-mitb1",
    "daformer-mitb2",
    "daformer-mitb3",
    "daformer-mitb4",
    "daformer-mitb5",
    "segformer-mitb0",
    "segformer-mitb1",
    "segformer-mitb2",
    "segformer-mitb3",
    "segformer-mitb4",
    "segformer-mitb5",
];

impl SegmentorConfig {
    /// A named standard network with 19 classes and a 256-d projection head:
    /// `deeplabv2-r{18,50,101}` (torchvision stem, OS 8), `deeplabv2-r101-v1c` (mmseg's deep
    /// stem, as DAFormer's DeepLabV2), `daformer-mitb{0..5}`, `segformer-mitb{0..5}` (decoder
    /// width 256 for B0, 768 otherwise, as SegFormer).
    pub fn preset(name: &str) -> Result<Self> {
        let unknown = || ModelError::Config(format!("unknown model preset `{name}`; known presets: {}", PRESETS.join(", ")));
        let (family, variant) = name.split_once('-').ok_or_else(unknown)?;
        let (backbone, decode_head) = match family {
            "deeplabv2" => {
                let (depth, stem) = match variant {
                    "r101" => (101, StemKind::Torchvision),
                    "r101-v1c" => (101, StemKind::Deep),
                    "r50" => (50, StemKind::Torchvision),
                    "r18" => (18, StemKind::Torchvision),
                    _ => return Err(unknown()),
                };
                let mut r = ResNetConfig::new(depth);
                r.stem = stem;
                (BackboneConfig::Resnet(r), DecodeHeadConfig::Deeplabv2(DeepLabV2HeadConfig::default()))
            }
            "daformer" | "segformer" => {
                let b: usize = variant.strip_prefix("mitb").and_then(|n| n.parse().ok()).ok_or_else(unknown)?;
                let mit = MitConfig::b(b).map_err(|_| unknown())?;
                let head = if family == "daformer" {
                    DecodeHeadConfig::Daformer(DaFormerHeadConfig::default())
                } else {
                    let embed_dim = if b == 0 { 256 } else { 768 };
                    DecodeHeadConfig::Segformer(SegFormerHeadConfig { embed_dim, ..Default::default() })
                };
                (BackboneConfig::Mit(mit), head)
            }
            _ => return Err(unknown()),
        };
        Ok(Self { backbone, decode_head, num_classes: 19, projection: Some(ProjectionConfig::default()), hrda: None })
    }

    /// Output channels of the four backbone stages.
    pub fn backbone_channels(&self) -> Result<[usize; 4]> {
        match &self.backbone {
            BackboneConfig::Resnet(r) => r.out_channels(),
            BackboneConfig::Mit(m) => Ok(m.out_channels()),
        }
    }

    /// The smallest input side the backbone takes (MiT's spatial reductions need a few tokens
    /// per stage; a ResNet pads its way down to any size).
    pub fn min_input_side(&self) -> usize {
        match &self.backbone {
            BackboneConfig::Mit(m) => m.min_input_side(),
            BackboneConfig::Resnet(_) => 1,
        }
    }

    /// Input pixels per pixel of the backbone's deepest feature (32 for MiT, the output stride for
    /// a ResNet), the feature DAFormer's ImageNet feature distance compares; relative to the
    /// backbone's input, which under HRDA is the context pass at half the crop.
    pub fn deepest_feature_stride(&self) -> usize {
        match &self.backbone {
            BackboneConfig::Mit(m) => m.strides.iter().product(),
            BackboneConfig::Resnet(r) => r.output_stride,
        }
    }

    /// Input pixels per logit pixel (8 for DeepLabV2 at output stride 8, 4 for MiT heads).
    pub fn logit_stride(&self) -> usize {
        match (&self.backbone, &self.decode_head) {
            (BackboneConfig::Resnet(r), DecodeHeadConfig::Deeplabv2(_)) => r.output_stride,
            (BackboneConfig::Mit(m), DecodeHeadConfig::Deeplabv2(_)) => m.strides.iter().product(),
            (BackboneConfig::Resnet(_), _) => 4,
            (BackboneConfig::Mit(m), _) => m.strides[0],
        }
    }

    /// Checks the whole configuration, naming the setting at fault.
    pub fn validate(&self) -> Result<()> {
        if self.num_classes == 0 || self.num_classes > 255 {
            return Err(ModelError::Config(format!(
                "model.num_classes = {}: must be between 1 and 255 (255 is the ignore label)",
                self.num_classes
            )));
        }
        match &self.backbone {
            BackboneConfig::Resnet(r) => r.validate()?,
            BackboneConfig::Mit(m) => m.validate()?,
        }
        match &self.decode_head {
            DecodeHeadConfig::Deeplabv2(_) => (),
            DecodeHeadConfig::Daformer(h) => h.validate()?,
            DecodeHeadConfig::Segformer(h) => h.validate()?,
        }
        if let Some(hrda) = &self.hrda {
            if matches!(self.decode_head, DecodeHeadConfig::Segformer(_)) {
                return Err(ModelError::Config(
                    "model.network.hrda: HRDA's scale attention is built for a daformer or deeplabv2 decode head, not segformer".into(),
                ));
            }
            hrda.validate(self.logit_stride())?;
        }
        Ok(())
    }

    /// HRDA's scale-attention head: the decode head's twin with `attention_embed_dim` channels
    /// (a DAFormer head fusing with one 1×1 conv instead of the ASPP), one output per class or
    /// one in all (`HRDAHead.__init__`).
    fn scale_attention<B: Backend>(&self, hrda: &HrdaConfig, channels: [usize; 4], device: &B::Device) -> Result<DecodeHead<B>> {
        let outputs = if hrda.attention_classwise { self.num_classes } else { 1 };
        Ok(match &self.decode_head {
            DecodeHeadConfig::Deeplabv2(h) => DecodeHead::DeepLabV2(h.init(channels[3], outputs, device)?),
            DecodeHeadConfig::Daformer(h) => {
                let width = hrda.attention_embed_dim;
                let cfg = DaFormerHeadConfig { embed_dim: width, channels: width, fusion: FusionKind::Conv, ..h.clone() };
                DecodeHead::DaFormer(cfg.init(channels, outputs, device))
            }
            DecodeHeadConfig::Segformer(_) => {
                return Err(ModelError::Config("model.network.hrda needs a daformer or deeplabv2 head".into()))
            }
        })
    }

    /// Builds the network with fresh (PyTorch-style) initialisation.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Segmentor<B>> {
        self.validate()?;
        let channels = self.backbone_channels()?;
        let backbone = match &self.backbone {
            BackboneConfig::Resnet(r) => Backbone::ResNet(r.init(device)?),
            BackboneConfig::Mit(m) => Backbone::Mit(m.init(device)),
        };
        let (decode_head, feature_channels) = match &self.decode_head {
            DecodeHeadConfig::Deeplabv2(h) => (DecodeHead::DeepLabV2(h.init(channels[3], self.num_classes, device)?), channels[3]),
            DecodeHeadConfig::Daformer(h) => (DecodeHead::DaFormer(h.init(channels, self.num_classes, device)), h.channels),
            DecodeHeadConfig::Segformer(h) => (DecodeHead::SegFormer(h.init(channels, self.num_classes, device)), h.embed_dim),
        };
        let proj_head = match &self.projection {
            Some(p) => Some(p.init(feature_channels, device)?),
            None => None,
        };
        let scale_attention = match &self.hrda {
            Some(h) => Some(self.scale_attention(h, channels, device)?),
            None => None,
        };
        Ok(Segmentor {
            backbone,
            decode_head,
            proj_head,
            scale_attention,
            hrda: self.hrda.clone(),
            hrda_branch: HrdaBranch::Fused,
            logit_stride: self.logit_stride(),
            min_side: self.min_input_side().max(super::MIN_PREDICT_SIDE),
        })
    }
}
