//! The segmentor: backbone + decode head + (optional) contrastive projection head, built from a
//! serde configuration, returning logits and embeddings.

use crate::T2sBackend;
use std::collections::HashSet;

use burn::module::{Module, ParamId};
use burn::tensor::activation::sigmoid;
use burn::tensor::{backend::Backend, DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::io::params::inventory;
use crate::nets::daformer_head::{DaFormerHead, DaFormerHeadConfig, FusionKind};
use crate::nets::deeplabv2_head::{DeepLabV2Head, DeepLabV2HeadConfig};
use crate::nets::hrda::{fuse_scales, merge_slide, slide_boxes, CropBox, HrdaBranch, HrdaConfig};
use crate::nets::mit::{MitConfig, MixTransformer};
use crate::nets::projection_head::{ProjectionConfig, ProjectionHead};
use crate::nets::resnet::{ResNet, ResNetConfig, StemKind};
use crate::nets::segformer_head::{SegFormerHead, SegFormerHeadConfig};
use crate::ops::resize::resize_bilinear;
use crate::precision::{cast_to, weight_dtype};

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
                    let mut h = SegFormerHeadConfig::default();
                    h.embed_dim = if b == 0 { 256 } else { 768 };
                    DecodeHeadConfig::Segformer(h)
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
        })
    }
}

/// Inputs smaller than this (in either side) are padded for [`Segmentor::predict`].
pub const MIN_PREDICT_SIDE: usize = 64;

/// Backbone network.
#[derive(Module, Debug)]
pub enum Backbone<B: Backend> {
    ResNet(ResNet<B>),
    Mit(MixTransformer<B>),
}

/// Decode head.
#[derive(Module, Debug)]
pub enum DecodeHead<B: Backend> {
    DeepLabV2(DeepLabV2Head<B>),
    DaFormer(DaFormerHead<B>),
    SegFormer(SegFormerHead<B>),
}

/// A backbone pass for [`Segmentor::forward_encoded`]: images `[k·n, 3, H, W]` and the number of
/// sub-batches k → the four stage outputs.
pub type Encode<'a, B> = dyn FnMut(Tensor<B, 4>, usize) -> Vec<Tensor<B, 4>> + 'a;

/// What a forward pass gives.
#[derive(Debug, Clone)]
pub struct SegOutput<B: Backend> {
    /// Class logits `[N, classes, H/s, W/s]`, s = [`SegmentorConfig::logit_stride`].
    pub logits: Tensor<B, 4>,
    /// Unit-length embeddings `[N, D, h, w]` from the projection head (DeepLabV2: on layer4,
    /// h = H/8; MiT heads: on the fused 1/4 feature), when the network has one.
    pub embedding: Option<Tensor<B, 4>>,
    /// The four backbone stage outputs `[N, C_i, H_i, W_i]` (for the ImageNet feature distance).
    pub features: Vec<Tensor<B, 4>>,
}

/// Backbone + decode head + projection head (+ HRDA's scale-attention head).
#[derive(Module, Debug)]
pub struct Segmentor<B: Backend> {
    pub backbone: Backbone<B>,
    pub decode_head: DecodeHead<B>,
    pub proj_head: Option<ProjectionHead<B>>,
    /// HRDA's scale-attention head (`model.network.hrda`).
    pub scale_attention: Option<DecodeHead<B>>,
    /// HRDA's settings, with the scale-attention head.
    #[module(skip)]
    pub hrda: Option<HrdaConfig>,
    /// Which HRDA prediction whole-image passes give ([`with_hrda_branch`](Self::with_hrda_branch));
    /// the fusion unless eval or predict asks for one scale alone.
    #[module(skip)]
    pub hrda_branch: HrdaBranch,
    /// Input pixels per logit pixel ([`SegmentorConfig::logit_stride`]).
    #[module(skip)]
    pub logit_stride: usize,
}

/// What HRDA's training pass gives ([`Segmentor::forward_hrda`]).
#[derive(Debug, Clone)]
pub struct HrdaOutput<B: Backend> {
    /// The fused prediction `[N, classes, H/s, W/s]` (s: the logit stride, H×W the full
    /// resolution).
    pub fused: Tensor<B, 4>,
    /// The detail prediction on each sub-batch's crop, `[N, classes, ch/s, cw/s]`.
    pub detail: Tensor<B, 4>,
    /// Each sub-batch's detail crop, in full-resolution pixels.
    pub crops: Vec<CropBox>,
    /// The context pass (the images at half resolution): its logits `[N, classes, H/2s, W/2s]`,
    /// embedding and backbone features.
    pub context: SegOutput<B>,
}

impl<B: T2sBackend> Segmentor<B> {
    /// This network computing in `precision`: a [`compute_copy`](crate::compute_copy) of it (a
    /// clone for f32), for one forward pass when it records gradients. Parameters not drawn yet
    /// are drawn first: Burn draws a lazy parameter once per clone, and the copy must compute
    /// with (and give gradients to) this network's values.
    pub fn at_precision(&self, precision: crate::Precision) -> Self {
        crate::precision::draw_parameters(self);
        crate::compute_copy(self.clone(), precision)
    }

    /// Backbone stage outputs for an image batch `[N, 3, H, W]`.
    /// f32 whatever the weights' type, as [`Segmentor::forward`]'s. An HRDA network's are of the
    /// images at its context scale, half the resolution (HRDA's `feature_scale = 0.5`), as its
    /// forward pass's features.
    pub fn extract_features(&self, x: Tensor<B, 4>) -> Vec<Tensor<B, 4>> {
        self.features_of(self.context_input(x), 1).into_iter().map(|f| cast_to(f, DType::F32)).collect()
    }

    /// The images the backbone's whole-image features are of: an HRDA network's context scale,
    /// half the resolution (HRDA's `feature_scale = 0.5`, `[N, 3, H, W]` → `[N, 3, H/2, W/2]`),
    /// else the images themselves.
    fn context_input(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match &self.hrda {
            Some(_) => {
                let [_, _, h, w] = x.dims();
                resize_bilinear(x, h / 2, w / 2)
            }
            None => x,
        }
    }

    /// The feature the projection head reads: the decode head's fused feature (DeepLabV2: the
    /// last backbone stage), f32. `[N, 3, H, W]` → `[N, E, h, w]`, the embedding's size (see
    /// [`SegOutput::embedding`]); an HRDA network's is its context pass's, on the images at half
    /// resolution, as [`extract_features`](Self::extract_features). For analyses of what a
    /// network's classifier sees (`t2s similarity --space decoder`), with or without a
    /// projection head.
    pub fn head_feature(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let features = self.features_of(self.context_input(x), 1);
        cast_to(Self::decode(&self.decode_head, &features, 1).1, DType::F32)
    }

    /// The backbone's stage outputs, in the weights' float type (the input is cast to it):
    /// `[N, 3, H, W]` → four `[N, C_k, H_k, W_k]`.
    fn features_of(&self, x: Tensor<B, 4>, sub_batches: usize) -> Vec<Tensor<B, 4>> {
        let x = cast_to(x, weight_dtype(self));
        match &self.backbone {
            Backbone::ResNet(r) => r.forward(x, sub_batches),
            Backbone::Mit(m) => m.forward(x),
        }
    }

    /// `[N, 3, H, W]` (normalised RGB) → logits, embedding and backbone features (see
    /// [`SegOutput`] for shapes).
    pub fn forward(&self, x: Tensor<B, 4>) -> SegOutput<B> {
        self.forward_sub_batches(x, 1)
    }

    /// The forward pass over k = `sub_batches` independent batches concatenated along N
    /// (`[k·n, 3, H, W]`, e.g. a training step's source, mixed and pseudo-target images): the
    /// same outputs, and in training the same gradients and batch-norm running statistics, as
    /// k [`forward`](Self::forward) calls on the parts in order, since every layer treats
    /// images independently except batch norm, which takes statistics per sub-batch
    /// ([`batch_norm_2d`](crate::ops::batch_norm::batch_norm_2d)). Only the random draws of
    /// dropout and stochastic depth differ (same distribution). One pass launches each
    /// kernel once instead of k times, which is what bounds a GPU's training step (docs/gpu.md).
    ///
    /// The input is cast to the weights' float type (bf16 for a [`compute_copy`](crate::compute_copy) at
    /// [`Precision::Bf16`](crate::Precision)) and the outputs are f32, for the losses.
    ///
    /// # Panics
    /// When `sub_batches` is 0 or does not divide N.
    pub fn forward_sub_batches(&self, x: Tensor<B, 4>, sub_batches: usize) -> SegOutput<B> {
        self.forward_with(x, sub_batches, false)
    }

    /// [`forward_sub_batches`](Self::forward_sub_batches), with the projection head's input cut
    /// from the graph when `detach_projection_input`: gradients through the embedding then
    /// train the projection head alone (T2S's projection-head warm-up, `t2s.head_warmup`).
    ///
    /// An HRDA network gives its whole-image prediction ([`Segmentor::hrda_whole`]).
    pub fn forward_with(&self, x: Tensor<B, 4>, sub_batches: usize, detach_projection_input: bool) -> SegOutput<B> {
        match &self.hrda {
            Some(hrda) => self.hrda_whole(x, hrda, sub_batches, detach_projection_input),
            None => self.single_scale(x, sub_batches, detach_projection_input, &mut |x, k| self.features_of(x, k)),
        }
    }

    /// The single-scale pass of [`forward_with`](Self::forward_with) with the backbone's stage
    /// outputs computed by `encode` (input images `[k·n, 3, H, W]` and k → the four stage outputs
    /// in the compute type, as the backbone's): for a training pass that computes them its own way
    /// (activation recomputation, `MixTransformer::forward_taped`).
    ///
    /// # Panics
    /// On an HRDA network (its training pass is [`forward_hrda_encoded`](Self::forward_hrda_encoded)).
    pub fn forward_encoded(
        &self,
        x: Tensor<B, 4>,
        sub_batches: usize,
        detach_projection_input: bool,
        encode: &mut Encode<'_, B>,
    ) -> SegOutput<B> {
        assert!(self.hrda.is_none(), "an HRDA network trains through forward_hrda_encoded");
        self.single_scale(x, sub_batches, detach_projection_input, encode)
    }

    /// Logits and the feature the projection head takes, from `head` on backbone `features`
    /// (four `[N, C_k, H_k, W_k]`): logits `[N, classes, H_1, W_1]` and the head's fused feature
    /// `[N, E, H_1, W_1]` (DeepLabV2: logits at the last stage's size and that stage itself).
    fn decode(head: &DecodeHead<B>, features: &[Tensor<B, 4>], sub_batches: usize) -> (Tensor<B, 4>, Tensor<B, 4>) {
        match head {
            DecodeHead::DeepLabV2(h) => {
                let last = features[features.len() - 1].clone();
                (h.forward(last.clone()), last)
            }
            DecodeHead::DaFormer(h) => {
                let o = h.forward(features.to_vec(), sub_batches);
                (o.logits, o.feature)
            }
            DecodeHead::SegFormer(h) => {
                let o = h.forward(features.to_vec(), sub_batches);
                (o.logits, o.feature)
            }
        }
    }

    /// HRDA's scale attention (through the sigmoid, f32) from the context pass's features:
    /// `[N, 1 or classes, H_1, W_1]` (class-wise by default).
    fn attention(&self, features: &[Tensor<B, 4>], sub_batches: usize) -> Tensor<B, 4> {
        let head = self.scale_attention.as_ref().expect("an HRDA network has a scale-attention head");
        let features: Vec<Tensor<B, 4>> = features.iter().map(|f| cast_to(f.clone(), weight_dtype(self))).collect();
        sigmoid(cast_to(Self::decode(head, &features, sub_batches).0, DType::F32))
    }

    /// HRDA's whole-image prediction (`HRDAEncoderDecoder.encode_decode`): the context pass on
    /// the images at half resolution, the detail prediction from overlapping sliding detail
    /// crops at full resolution (or one pass over the whole image without
    /// `slide_inference`), fused by the scale attention. The embedding and features are the
    /// context pass's. `[N, 3, H, W]` → logits `[N, classes, H/s, W/s]`.
    ///
    /// Sides that are not multiples of `crop_divisible` (photos of any size) are zero-padded at
    /// the bottom and right to the next multiple, so that both passes and every sliding crop land
    /// on whole logits; the logits are cropped back to `⌈H/s⌉ × ⌈W/s⌉` and the embedding to
    /// `⌈H/2s⌉ × ⌈W/2s⌉` (the features keep the padded size).
    pub fn hrda_whole(&self, x: Tensor<B, 4>, hrda: &HrdaConfig, sub_batches: usize, detach: bool) -> SegOutput<B> {
        let [n, c, h, w] = x.dims();
        let os = self.logit_stride;
        let m = hrda.crop_divisible.max(2 * os);
        let (ph, pw) = (h.next_multiple_of(m), w.next_multiple_of(m));
        if (ph, pw) != (h, w) {
            let padded = Tensor::zeros([n, c, ph, pw], (&x.device(), x.dtype())).slice_assign([0..n, 0..c, 0..h, 0..w], x);
            let out = self.hrda_whole(padded, hrda, sub_batches, detach);
            let classes = out.logits.dims()[1];
            let logits = out.logits.slice([0..n, 0..classes, 0..h.div_ceil(os), 0..w.div_ceil(os)]);
            let embedding = out.embedding.map(|e| {
                let d = e.dims()[1];
                e.slice([0..n, 0..d, 0..h.div_ceil(2 * os), 0..w.div_ceil(2 * os)])
            });
            return SegOutput { logits, embedding, features: out.features };
        }
        let context = self.single_scale(resize_bilinear(x.clone(), h / 2, w / 2), sub_batches, detach, &mut |x, k| self.features_of(x, k));
        if self.hrda_branch == HrdaBranch::Context {
            // `fuse_scales` at attention 0: the context logits upsampled ×2.
            let logits = resize_bilinear(context.logits.clone(), h / os, w / os);
            return SegOutput { logits, ..context };
        }
        let detail = if hrda.slide_inference {
            let crop = [hrda.detail_crop[0].min(h), hrda.detail_crop[1].min(w)];
            let boxes = slide_boxes(h, w, crop, true);
            // Crop-major: crop i of every image, then crop i + 1 (HRDA's `torch.cat(crop_imgs)`).
            let crops: Vec<Tensor<B, 4>> = boxes.iter().map(|b| x.clone().slice([0..n, 0..c, b.y1..b.y2, b.x1..b.x2])).collect();
            let features = self.features_of(Tensor::cat(crops, 0), 1);
            let logits = cast_to(Self::decode(&self.decode_head, &features, 1).0, DType::F32);
            let at_logits: Vec<CropBox> = boxes.iter().map(|b| b.shrunk(os)).collect();
            merge_slide(logits, &at_logits, n)
        } else {
            let features = self.features_of(x, sub_batches);
            cast_to(Self::decode(&self.decode_head, &features, sub_batches).0, DType::F32)
        };
        if self.hrda_branch == HrdaBranch::Detail {
            return SegOutput { logits: detail, ..context };
        }
        let att = self.attention(&context.features, sub_batches);
        let (fused, _) = fuse_scales(context.logits.clone(), att, detail, None, os);
        SegOutput { logits: fused, ..context }
    }

    /// This network with its whole-image passes (inference, `predict`) giving HRDA's `branch`
    /// prediction instead of the fusion. Refused for a network without HRDA, unless `branch`
    /// is the fusion (a single-scale network's only prediction).
    pub fn with_hrda_branch(mut self, branch: HrdaBranch) -> Result<Self> {
        if self.hrda.is_none() && branch != HrdaBranch::Fused {
            return Err(ModelError::Config(format!(
                "the HRDA {branch} prediction needs an HRDA network (model.network.hrda); this one has one scale only"
            )));
        }
        self.hrda_branch = branch;
        Ok(self)
    }

    /// HRDA's training pass (`HRDAEncoderDecoder.forward_train` and `HRDAHead.forward`) over
    /// `crops.len()` sub-batches of `[k·n, 3, H, W]` images: the context pass on the images at
    /// half resolution, the detail pass on each sub-batch's crop (`crops[i]`, in full-resolution
    /// pixels, all of one size: [`draw_crop_box`](crate::nets::hrda::draw_crop_box)), and their
    /// fusion. Batch-norm statistics per sub-batch, as [`forward_sub_batches`](Self::forward_sub_batches).
    ///
    /// # Panics
    /// On a network without HRDA, or crops of different sizes.
    pub fn forward_hrda(&self, x: Tensor<B, 4>, crops: &[CropBox], detach_projection_input: bool) -> HrdaOutput<B> {
        self.forward_hrda_encoded(x, crops, detach_projection_input, &mut |x, k| self.features_of(x, k))
    }

    /// [`forward_hrda`](Self::forward_hrda) with the backbone's stage outputs computed by
    /// `encode`, for the context pass and then for the detail crops (see
    /// [`forward_encoded`](Self::forward_encoded)).
    pub fn forward_hrda_encoded(
        &self,
        x: Tensor<B, 4>,
        crops: &[CropBox],
        detach_projection_input: bool,
        encode: &mut Encode<'_, B>,
    ) -> HrdaOutput<B> {
        let [total, c, h, w] = x.dims();
        let k = crops.len();
        let n = total / k;
        let os = self.logit_stride;
        let context = self.single_scale(resize_bilinear(x.clone(), h / 2, w / 2), k, detach_projection_input, encode);
        let att = self.attention(&context.features, k);
        let parts: Vec<Tensor<B, 4>> =
            crops.iter().enumerate().map(|(i, b)| x.clone().slice([i * n..(i + 1) * n, 0..c, b.y1..b.y2, b.x1..b.x2])).collect();
        let features = encode(Tensor::cat(parts, 0), k);
        let detail = cast_to(Self::decode(&self.decode_head, &features, k).0, DType::F32);
        let fused = crops
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let part = |t: &Tensor<B, 4>| t.clone().narrow(0, i * n, n);
                fuse_scales(part(&context.logits), part(&att), part(&detail), Some(*b), os).0
            })
            .collect();
        HrdaOutput { fused: Tensor::cat(fused, 0), detail, crops: crops.to_vec(), context }
    }

    /// The single-scale network's pass ([`forward_with`](Self::forward_with) without HRDA).
    fn single_scale(&self, x: Tensor<B, 4>, sub_batches: usize, detach_projection_input: bool, encode: &mut Encode<'_, B>) -> SegOutput<B> {
        let features = encode(x, sub_batches);
        let (logits, head_feature) = Self::decode(&self.decode_head, &features, sub_batches);
        let head_feature = if detach_projection_input { head_feature.detach() } else { head_feature };
        let embedding = self.proj_head.as_ref().map(|p| p.forward(head_feature, sub_batches));
        let f32 = |t: Tensor<B, 4>| cast_to(t, DType::F32);
        SegOutput { logits: f32(logits), embedding: embedding.map(f32), features: features.into_iter().map(f32).collect() }
    }

    /// Logits bilinearly upsampled to the input's size: `[N, 3, H, W]` → `[N, classes, H, W]`.
    ///
    /// Works for any size: inputs with a side below [`MIN_PREDICT_SIDE`] (twice that for HRDA,
    /// whose context pass halves the image; too small for the
    /// strided convolutions, e.g. MiT's 8×8 spatial reduction at 1/4 scale) are zero-padded at
    /// the bottom and right — zero is the ImageNet mean after normalisation — and the logits
    /// cropped back.
    pub fn predict(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        // HRDA's context pass sees the image at half its size.
        let min = if self.hrda.is_some() { 2 * MIN_PREDICT_SIDE } else { MIN_PREDICT_SIDE };
        let (ph, pw) = (h.max(min), w.max(min));
        if (ph, pw) == (h, w) {
            return resize_bilinear(self.forward(x).logits, h, w);
        }
        let padded = Tensor::zeros([n, c, ph, pw], &x.device()).slice_assign([0..n, 0..c, 0..h, 0..w], x);
        let logits = resize_bilinear(self.forward(padded).logits, ph, pw);
        let classes = logits.dims()[1];
        // [N, classes, ph, pw] -> [N, classes, H, W]
        logits.slice([0..n, 0..classes, 0..h, 0..w])
    }
}

impl<B: Backend> Segmentor<B> {
    /// Parameters split for the optimiser the way DAFormer's mmcv `paramwise_cfg` splits them:
    /// `custom_keys = {head: lr_mult 10, norm: decay_mult 0, pos_block: decay_mult 0}` matches
    /// substrings of the parameter name. Our names mirror mmseg's, so the same substring rule
    /// gives the same groups: every `*head*` parameter (decode and projection heads) at 10× the
    /// learning rate; every `*norm*` parameter (MiT's LayerNorms) without weight decay. Note
    /// that, exactly as in DAFormer, BatchNorm layers named `bn` keep their weight decay.
    pub fn param_groups(&self) -> ParamGroups {
        let mut groups = ParamGroups::default();
        for e in inventory::<B, _>(self).into_iter().filter(|e| e.trainable) {
            if e.path.contains("norm") || e.path.contains("pos_block") {
                groups.no_decay.insert(e.id);
            }
            if e.path.contains("head") {
                groups.head.push(e.id);
            } else {
                groups.backbone.push(e.id);
            }
        }
        groups
    }
}

/// Parameter groups of a segmentor.
#[derive(Debug, Default, Clone)]
pub struct ParamGroups {
    /// Backbone parameters (base learning rate).
    pub backbone: Vec<ParamId>,
    /// Decode-head and projection-head parameters (10× learning rate in DAFormer's recipe).
    pub head: Vec<ParamId>,
    /// Parameters without weight decay (normalisation layers).
    pub no_decay: HashSet<ParamId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::params::count_trainable;
    use burn::backend::Flex;

    fn tiny() -> SegmentorConfig {
        serde_json::from_str(
            r#"{"backbone":{"type":"mit","embed_dims":[8,16,24,32],"depths":[1,1,1,1],"num_heads":[1,2,3,4],"sr_ratios":[8,4,2,1]},
                "decode_head":{"type":"daformer","embed_dim":16,"channels":16},"num_classes":5,"projection":{"dim":8}}"#,
        )
        .unwrap()
    }

    #[test]
    fn param_groups_follow_daformers_name_rules() {
        let device = Default::default();
        let net = tiny().init::<Flex>(&device).unwrap();
        let groups = net.param_groups();
        let numel = |ids: &mut dyn Iterator<Item = &ParamId>| -> usize {
            let sizes: std::collections::HashMap<ParamId, usize> =
                inventory::<Flex, _>(&net).into_iter().map(|e| (e.id, e.shape.iter().product())).collect();
            ids.map(|id| sizes[id]).sum()
        };
        let Backbone::Mit(backbone) = &net.backbone else { panic!() };
        assert_eq!(numel(&mut groups.backbone.iter()), count_trainable::<Flex, _>(backbone));
        let DecodeHead::DaFormer(head) = &net.decode_head else { panic!() };
        let proj = net.proj_head.as_ref().unwrap();
        assert_eq!(numel(&mut groups.head.iter()), count_trainable::<Flex, _>(head) + count_trainable::<Flex, _>(proj));
        // LayerNorm parameters only (BNs are named `bn`): per stage of width C, the patch-embed
        // norm, norm1 and norm2 of the block, the stage norm (2C each) and, where the spatial
        // reduction ratio > 1, the attention's norm: 80 + 160 + 240 + 256 = 736 with sr
        // [8, 4, 2, 1].
        assert_eq!(numel(&mut groups.no_decay.iter()), 5 * 2 * 8 + 5 * 2 * 16 + 5 * 2 * 24 + 4 * 2 * 32);
    }

    #[test]
    fn outputs_have_the_documented_shapes() {
        let device = Default::default();
        let net = tiny().init::<Flex>(&device).unwrap();
        let x = Tensor::<Flex, 4>::zeros([2, 3, 64, 96], &device);
        let out = net.forward(x.clone());
        assert_eq!(out.logits.dims(), [2, 5, 16, 24]);
        assert_eq!(out.embedding.unwrap().dims(), [2, 8, 16, 24]);
        // The head feature is what the projection head reads: projecting it gives the embedding.
        let r = Tensor::<Flex, 4>::random([2, 3, 64, 96], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let feature = net.head_feature(r.clone());
        assert_eq!(feature.dims(), [2, 16, 16, 24]);
        let projected = net.proj_head.as_ref().unwrap().forward(feature, 1);
        projected
            .into_data()
            .assert_approx_eq::<f32>(&net.forward(r).embedding.unwrap().into_data(), burn::tensor::Tolerance::absolute(1e-6));
        assert_eq!(net.predict(x).dims(), [2, 5, 64, 96]);
        // Inputs too small for the strided convolutions are padded and cropped back.
        assert_eq!(net.predict(Tensor::<Flex, 4>::zeros([1, 3, 20, 7], &device)).dims(), [1, 5, 20, 7]);
    }

    /// `projection.linear` from a configuration: one convolution, and embeddings of the usual shape.
    #[test]
    fn a_linear_projection_head_from_the_configuration() {
        let device = Default::default();
        let mut cfg = tiny();
        cfg.projection = Some(serde_json::from_str(r#"{"dim": 8, "linear": true}"#).unwrap());
        let net = cfg.init::<Flex>(&device).unwrap();
        let head = net.proj_head.as_ref().unwrap();
        assert!(head.bn.is_none() && head.conv2.is_none());
        assert_eq!(head.conv1.weight.dims(), [8, 16, 1, 1]);
        assert_eq!(net.forward(Tensor::<Flex, 4>::zeros([1, 3, 64, 96], &device)).embedding.unwrap().dims(), [1, 8, 16, 24]);
    }

    /// With the projection head's input detached, a loss of the embedding alone reaches the
    /// projection head's parameters and nothing before it; attached, the backbone's too.
    #[test]
    fn a_detached_projection_input_trains_the_head_alone() {
        type AB = burn::backend::Autodiff<Flex>;
        let json = r#"{"backbone":{"type":"resnet","depth":0,"layers":[1,1,1,1],"block":"bottleneck","stem_width":8,"base_width":4},
            "decode_head":{"type":"deeplabv2"},"num_classes":5,"projection":{"dim":8}}"#;
        let cfg: SegmentorConfig = serde_json::from_str(json).unwrap();
        let device = Default::default();
        let net = cfg.init::<AB>(&device).unwrap();
        let x = Tensor::<AB, 4>::random([2, 3, 32, 32], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        for detach in [true, false] {
            let out = net.forward_with(x.clone(), 1, detach);
            let grads = out.embedding.unwrap().sin().sum().backward();
            let with_grads = |module: &dyn Fn(&mut Counter)| {
                let mut c = Counter { grads: &grads, count: 0 };
                module(&mut c);
                c.count
            };
            let all = with_grads(&|c| net.visit(c));
            let head = with_grads(&|c| net.proj_head.as_ref().unwrap().visit(c));
            assert!(head >= 4, "detach {detach}: {head} projection-head parameters have gradients");
            assert_eq!(all == head, detach, "detach {detach}: {} parameters before the head have gradients", all - head);
        }
    }

    /// Counts the parameters that have a gradient.
    struct Counter<'a> {
        grads: &'a <burn::backend::Autodiff<Flex> as burn::tensor::backend::AutodiffBackend>::Gradients,
        count: usize,
    }

    impl burn::module::ModuleVisitor<burn::backend::Autodiff<Flex>> for Counter<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<burn::backend::Autodiff<Flex>, D>>) {
            self.count += param.val().grad(self.grads).is_some() as usize;
        }
    }

    /// One pass over three concatenated batches against three passes, on the autodiff
    /// backend in training mode: the same logits and embeddings per part, the same gradients
    /// of a loss that weights each part differently, and the same batch-norm running
    /// statistics (DAFormer head, projection head and a deep-stem ResNet all hold batch norms
    /// whose statistics must stay per part). Dropout and stochastic depth are off, since their
    /// random draws differ between the two.
    #[test]
    fn sub_batches_equal_separate_passes() {
        type AB = burn::backend::Autodiff<Flex>;
        let mit = r#"{"backbone":{"type":"mit","embed_dims":[8,16,24,32],"depths":[1,1,1,1],"num_heads":[1,2,3,4],"sr_ratios":[8,4,2,1],"drop_path_rate":0.0},
            "decode_head":{"type":"daformer","embed_dim":16,"channels":16,"dropout":0.0},"num_classes":5,"projection":{"dim":8}}"#;
        let resnet = r#"{"backbone":{"type":"resnet","depth":0,"layers":[1,1,1,1],"block":"bottleneck","stem":"deep","stem_width":8,"base_width":4},
            "decode_head":{"type":"deeplabv2"},"num_classes":5,"projection":{"dim":8}}"#;
        let device = Default::default();
        for json in [mit, resnet] {
            let cfg: SegmentorConfig = serde_json::from_str(json).unwrap();
            let net = cfg.init::<AB>(&device).unwrap();
            // Burn draws parameters lazily, per clone: read them all once so copies agree.
            crate::precision::draw_parameters(&net);
            let (n, parts) = (2, 3);
            // Parts with different means and spreads, so per-part statistics differ.
            let x = Tensor::<AB, 4>::random([parts * n, 3, 32, 32], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
            let scale: Vec<f32> = (0..parts * n).map(|i| 0.5 + (i / n) as f32).collect();
            let x = x * Tensor::<AB, 1>::from_floats(scale.as_slice(), &device).reshape([parts * n, 1, 1, 1])
                + Tensor::<AB, 1>::from_floats(scale.as_slice(), &device).reshape([parts * n, 1, 1, 1]).sub_scalar(1.0);
            let x = Tensor::<AB, 4>::from_data(x.into_data(), &device);
            // The loss weights part i by (i + 1) and reads logits and embedding.
            let loss_of = |outs: Vec<(Tensor<AB, 4>, Tensor<AB, 4>)>| {
                outs.into_iter()
                    .enumerate()
                    .map(|(i, (l, e))| (l.sin().sum() + e.cos().sum()).mul_scalar((i + 1) as f64))
                    .reduce(|a, b| a + b)
                    .unwrap()
            };
            // A fresh copy per run: clones share their running statistics.
            let run = |joint: bool| {
                let net = cfg.init::<AB>(&device).unwrap().load_record(net.clone().into_record());
                let outs: Vec<(Tensor<AB, 4>, Tensor<AB, 4>)> = if joint {
                    let out = net.forward_sub_batches(x.clone(), parts);
                    let emb = out.embedding.unwrap();
                    (0..parts).map(|i| (out.logits.clone().narrow(0, i * n, n), emb.clone().narrow(0, i * n, n))).collect()
                } else {
                    (0..parts)
                        .map(|i| {
                            let out = net.forward(x.clone().narrow(0, i * n, n));
                            (out.logits, out.embedding.unwrap())
                        })
                        .collect()
                };
                let values: Vec<f32> = outs
                    .iter()
                    .flat_map(|(l, e)| [l.to_data().to_vec::<f32>().unwrap(), e.to_data().to_vec::<f32>().unwrap()])
                    .flatten()
                    .collect();
                let grads = loss_of(outs).backward();
                let mut grad_values = Vec::new();
                let mut stats = Vec::new();
                // `valid()` folds the pending running-statistic updates into their values.
                let _ = burn::module::AutodiffModule::valid(&net);
                net.visit(&mut Gather { grads: &grads, grad_values: &mut grad_values, stats: &mut stats });
                (values, grad_values, stats)
            };
            let (v1, g1, s1) = run(true);
            let (v2, g2, s2) = run(false);
            let close = |a: &[f32], b: &[f32], what: &str| {
                assert_eq!(a.len(), b.len(), "{what}");
                for (i, (p, q)) in a.iter().zip(b).enumerate() {
                    assert!((p - q).abs() <= 2e-4 * (1.0 + q.abs()), "{what} [{i}]: joint {p} vs separate {q}");
                }
            };
            close(&v1, &v2, "outputs");
            close(&g1, &g2, "parameter gradients");
            close(&s1, &s2, "running statistics");
            // The running statistics moved from their initial 0 and 1.
            assert!(s1.iter().any(|v| *v != 0.0 && *v != 1.0));
        }
    }

    /// Every parameter's gradient (trainable ones) and every running statistic, in visit order.
    struct Gather<'a> {
        grads: &'a <burn::backend::Autodiff<Flex> as burn::tensor::backend::AutodiffBackend>::Gradients,
        grad_values: &'a mut Vec<f32>,
        stats: &'a mut Vec<f32>,
    }

    impl burn::module::ModuleVisitor<burn::backend::Autodiff<Flex>> for Gather<'_> {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<burn::backend::Autodiff<Flex>, D>>) {
            let t = param.val();
            match t.grad(self.grads) {
                Some(g) => self.grad_values.extend(g.into_data().to_vec::<f32>().unwrap()),
                None => self.stats.extend(t.into_data().to_vec::<f32>().unwrap()),
            }
        }
    }

    #[test]
    fn presets_build_and_bad_configs_are_named() {
        for name in PRESETS {
            SegmentorConfig::preset(name).unwrap().validate().unwrap();
        }
        assert!(SegmentorConfig::preset("daformer-mitb9").unwrap_err().to_string().contains("daformer-mitb9"));
        let mut cfg = tiny();
        cfg.num_classes = 0;
        assert!(cfg.validate().unwrap_err().to_string().contains("model.num_classes"));
        assert_eq!(SegmentorConfig::preset("deeplabv2-r101").unwrap().logit_stride(), 8);
        assert_eq!(SegmentorConfig::preset("segformer-mitb0").unwrap().logit_stride(), 4);
    }
}
