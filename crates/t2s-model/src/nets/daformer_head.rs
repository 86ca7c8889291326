//! DAFormer's decoder (mmseg `DAFormerHead` with the `sepaspp` fusion of the published
//! configuration): every backbone stage is embedded to E channels by a per-pixel linear layer,
//! upsampled to the first stage's size and concatenated in stage order; an ASPP with
//! depth-wise separable dilated branches and a 3×3 bottleneck fuses them (the context-aware
//! fusion), and a 1×1 conv classifies.
//!
//! Parameter paths follow the original: `embed_layers.{k}.proj`,
//! `fuse_layer.aspp_modules.{i}.{conv,bn}` (1×1 branch),
//! `fuse_layer.aspp_modules.{i}.{depthwise_conv,pointwise_conv}.{conv,bn}` (dilated branches),
//! `fuse_layer.bottleneck.{conv,bn}`, `conv_seg`.

use crate::ops::conv::conv2d_forward;
use crate::T2sBackend;
use burn::module::{Initializer, Module};
use burn::nn::conv::Conv2d;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::nets::conv_bn::{ConvBn, ConvSpec};
use crate::nets::head_output::{channel_dropout, HeadOutput};
use crate::nets::mlp_embed::{embed_stages, MlpEmbed};

fn default_width() -> usize {
    256
}
fn default_dilations() -> Vec<usize> {
    vec![1, 6, 12, 18]
}
fn default_dropout() -> f64 {
    0.1
}

/// DAFormer head configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DaFormerHeadConfig {
    /// Width E of each stage's embedding (`decoder_params.embed_dims`, 256).
    #[serde(default = "default_width")]
    pub embed_dim: usize,
    /// Width of the ASPP branches and of the fused feature (`channels`, 256).
    #[serde(default = "default_width")]
    pub channels: usize,
    /// ASPP dilations: 1 gives a 1×1 branch, larger values a depth-wise separable 3×3 branch
    /// with that dilation (`[1, 6, 12, 18]`).
    #[serde(default = "default_dilations")]
    pub dilations: Vec<usize>,
    /// Probability of dropping a whole channel of the fused feature before the classifier
    /// during training (`nn.Dropout2d`, 0.1).
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// How the concatenated embeddings are fused: `aspp` (DAFormer's context-aware fusion, the
    /// default) or `conv` (one 1×1 conv + BN + ReLU, `dilations` unused: HRDA's scale-attention
    /// head).
    #[serde(default, skip_serializing_if = "FusionKind::is_aspp")]
    pub fusion: FusionKind,
}

/// The fusion of DAFormer's head ([`DaFormerHeadConfig::fusion`]).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FusionKind {
    /// DAFormer's `sepaspp`: ASPP with depth-wise separable dilated branches and a bottleneck.
    #[default]
    Aspp,
    /// mmseg's `fusion_cfg = dict(type='conv', kernel_size=1)`: one 1×1 conv + BN + ReLU.
    Conv,
}

impl FusionKind {
    fn is_aspp(&self) -> bool {
        *self == FusionKind::Aspp
    }
}

impl Default for DaFormerHeadConfig {
    fn default() -> Self {
        Self {
            embed_dim: default_width(),
            channels: default_width(),
            dilations: default_dilations(),
            dropout: default_dropout(),
            fusion: FusionKind::Aspp,
        }
    }
}

impl DaFormerHeadConfig {
    /// Checks that the head can be built, naming the setting at fault.
    pub fn validate(&self) -> Result<()> {
        let err = |msg: String| Err(ModelError::Config(format!("model.decode_head.{msg}")));
        if self.embed_dim == 0 {
            return err("embed_dim must be positive".into());
        }
        if self.channels == 0 {
            return err("channels must be positive".into());
        }
        if self.dilations.is_empty() || self.dilations.contains(&0) {
            return err(format!("dilations = {:?} must be a non-empty list of positive numbers", self.dilations));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return err(format!("dropout = {} must be in [0, 1)", self.dropout));
        }
        Ok(())
    }

    /// Builds the head for backbone stages of `in_channels` channels. Initialisation as the
    /// original: PyTorch defaults for the embeddings, N(0, 0.01²) weights and zero bias for
    /// `conv_seg` (mmseg's `BaseDecodeHead.init_weights`).
    ///
    /// # Panics
    /// On a configuration that [`validate`](Self::validate) rejects.
    pub fn init<B: Backend>(&self, in_channels: [usize; 4], num_classes: usize, device: &B::Device) -> DaFormerHead<B> {
        let (e, ch) = (self.embed_dim, self.channels);
        let fused_in = 4 * e;
        let fuse_layer = match self.fusion {
            FusionKind::Aspp => Fusion::Aspp(self.aspp(fused_in, device)),
            FusionKind::Conv => Fusion::Conv(ConvBn::new(ConvSpec::new(fused_in, ch, 1), true, device)),
        };
        let mut conv_seg = ConvSpec::new(ch, num_classes, 1).bias(true).init(device);
        conv_seg.weight = crate::nets::host_init::drawn([num_classes, ch, 1, 1], crate::nets::host_init::Draw::Normal(0.01), device);
        conv_seg.bias = Some(Initializer::Zeros.init([num_classes], device));
        DaFormerHead {
            embed_layers: in_channels.iter().map(|&c| MlpEmbed::new(c, e, device)).collect(),
            fuse_layer,
            dropout: DropoutConfig::new(self.dropout).init(),
            conv_seg,
        }
    }

    /// The ASPP fusion of `fused_in` channels.
    fn aspp<B: Backend>(&self, fused_in: usize, device: &B::Device) -> AsppFusion<B> {
        let ch = self.channels;
        let aspp_modules = self
            .dilations
            .iter()
            .map(|&d| {
                if d == 1 {
                    AsppBranch::Pointwise(ConvBn::new(ConvSpec::new(fused_in, ch, 1), true, device))
                } else {
                    AsppBranch::Separable(SeparableConvBn {
                        depthwise_conv: ConvBn::new(ConvSpec::new(fused_in, fused_in, 3).dilated(d).groups(fused_in), true, device),
                        pointwise_conv: ConvBn::new(ConvSpec::new(fused_in, ch, 1), true, device),
                    })
                }
            })
            .collect();
        let bottleneck = ConvBn::new(ConvSpec::new(self.dilations.len() * ch, ch, 3), true, device);
        AsppFusion { aspp_modules, bottleneck }
    }
}

/// The DAFormer decode head.
#[derive(Module, Debug)]
pub struct DaFormerHead<B: Backend> {
    /// Per-stage embeddings `C_k → E`.
    pub embed_layers: Vec<MlpEmbed<B>>,
    /// Fusion of the concatenated embeddings (`4E → channels`).
    pub fuse_layer: Fusion<B>,
    /// Channel dropout (`nn.Dropout2d`) before the classifier; see
    /// [`channel_dropout`](crate::nets::head_output::channel_dropout).
    pub dropout: Dropout,
    /// 1×1 biased classifier `channels → classes`.
    pub conv_seg: Conv2d<B>,
}

impl<B: T2sBackend> DaFormerHead<B> {
    /// The four backbone stages `[N, C_k, H_k, W_k]` (k = 1…4) → logits
    /// `[N, classes, H_1, W_1]` and the fused feature `[N, channels, H_1, W_1]` (the
    /// bottleneck's output, before dropout).
    ///
    /// `sub_batches`: how many independent batches the features concatenate along N (batch-norm
    /// statistics per sub-batch; see [`batch_norm_2d`](crate::ops::batch_norm::batch_norm_2d)).
    ///
    /// # Panics
    /// When `features` does not hold one map per embedding layer (4).
    pub fn forward(&self, features: Vec<Tensor<B, 4>>, sub_batches: usize) -> HeadOutput<B> {
        // Each stage embedded and resized to [N, E, H_1, W_1], concatenated in stage order.
        let embedded = embed_stages(features, &self.embed_layers, "DaFormerHead");
        // [N, 4E, H_1, W_1] → [N, channels, H_1, W_1]
        let feature = self.fuse_layer.forward(Tensor::cat(embedded, 1), sub_batches);
        // [N, classes, H_1, W_1]
        let logits = conv2d_forward(&self.conv_seg, channel_dropout(&self.dropout, feature.clone()));
        HeadOutput { logits, feature }
    }
}

/// The head's fusion layer. Variant names are not part of parameter paths: `fuse_layer.aspp_modules…`
/// and `fuse_layer.bottleneck…` for ASPP, `fuse_layer.conv`/`fuse_layer.bn` for the 1×1 conv (mmcv's
/// `ConvModule`), as in mmseg.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Fusion<B: Backend> {
    /// DAFormer's ASPP.
    Aspp(AsppFusion<B>),
    /// 1×1 conv + BN + ReLU.
    Conv(ConvBn<B>),
}

impl<B: T2sBackend> Fusion<B> {
    /// `[N, C_in, H, W]` → `[N, channels, H, W]` (batch-norm statistics per sub-batch).
    pub fn forward(&self, x: Tensor<B, 4>, sub_batches: usize) -> Tensor<B, 4> {
        match self {
            Self::Aspp(m) => m.forward(x, sub_batches),
            Self::Conv(m) => m.forward(x, sub_batches),
        }
    }
}

/// DAFormer's `ASPPWrapper` without image pooling: parallel branches on the same input,
/// concatenated, then a 3×3 conv + BN + ReLU bottleneck.
#[derive(Module, Debug)]
pub struct AsppFusion<B: Backend> {
    /// One branch per dilation, in configuration order.
    pub aspp_modules: Vec<AsppBranch<B>>,
    /// 3×3 conv (padding 1) `branches·channels → channels` + BN + ReLU.
    pub bottleneck: ConvBn<B>,
}

impl<B: T2sBackend> AsppFusion<B> {
    /// `[N, C_in, H, W]` → `[N, channels, H, W]`.
    /// `sub_batches`: how many independent batches the input concatenates along N (batch-norm
    /// statistics per sub-batch; see [`batch_norm_2d`](crate::ops::batch_norm::batch_norm_2d)).
    pub fn forward(&self, x: Tensor<B, 4>, sub_batches: usize) -> Tensor<B, 4> {
        // Each branch: [N, channels, H, W]; concatenated: [N, branches·channels, H, W].
        let branches: Vec<Tensor<B, 4>> = self.aspp_modules.iter().map(|m| m.forward(x.clone(), sub_batches)).collect();
        self.bottleneck.forward(Tensor::cat(branches, 1), sub_batches)
    }
}

/// One ASPP branch. Variant names are not part of parameter paths (as in PyTorch's
/// `nn.ModuleList`), so `aspp_modules.1.depthwise_conv.conv.weight` is the original's key.
// The separable variant holds two conv blocks; the handful of branches is built once, so the
// size difference costs nothing worth a `Box` (which would also complicate the module derive).
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum AsppBranch<B: Backend> {
    /// 1×1 conv + BN + ReLU (dilation 1).
    Pointwise(ConvBn<B>),
    /// Depth-wise separable dilated 3×3 conv (dilation > 1).
    Separable(SeparableConvBn<B>),
}

impl<B: T2sBackend> AsppBranch<B> {
    /// `[N, C_in, H, W]` → `[N, channels, H, W]`.
    /// `sub_batches`: how many independent batches the input concatenates along N (batch-norm
    /// statistics per sub-batch; see [`batch_norm_2d`](crate::ops::batch_norm::batch_norm_2d)).
    pub fn forward(&self, x: Tensor<B, 4>, sub_batches: usize) -> Tensor<B, 4> {
        match self {
            Self::Pointwise(m) => m.forward(x, sub_batches),
            Self::Separable(m) => m.forward(x, sub_batches),
        }
    }
}

/// mmcv's `DepthwiseSeparableConvModule`: a depth-wise 3×3 conv (dilation d, padding d) + BN +
/// ReLU, then a 1×1 conv + BN + ReLU.
#[derive(Module, Debug)]
pub struct SeparableConvBn<B: Backend> {
    /// Depth-wise 3×3 conv (groups = C_in, dilation d, padding d) + BN + ReLU.
    pub depthwise_conv: ConvBn<B>,
    /// 1×1 conv `C_in → channels` + BN + ReLU.
    pub pointwise_conv: ConvBn<B>,
}

impl<B: T2sBackend> SeparableConvBn<B> {
    /// `[N, C_in, H, W]` → `[N, channels, H, W]` (the size is kept: padding = dilation).
    /// `sub_batches`: how many independent batches the input concatenates along N (batch-norm
    /// statistics per sub-batch; see [`batch_norm_2d`](crate::ops::batch_norm::batch_norm_2d)).
    pub fn forward(&self, x: Tensor<B, 4>, sub_batches: usize) -> Tensor<B, 4> {
        self.pointwise_conv.forward(self.depthwise_conv.forward(x, sub_batches), sub_batches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::mit::tests::{
        assert_close, cat_channels, conv, conv2d, conv_bn_ref, embed_ref, rand_nd, resize_ref, Randomize, Shapes,
    };
    use burn::backend::Flex;
    use serde::de::value::{Error as DeError, MapDeserializer};

    type B = Flex;

    #[test]
    fn forward_matches_loop_reference() {
        let device = Default::default();
        // Small dilations so that the 8×10 map sees several taps of every dilated kernel.
        let cfg = DaFormerHeadConfig { embed_dim: 4, channels: 5, dilations: vec![1, 2, 3], dropout: 0.1, fusion: FusionKind::Aspp };
        cfg.validate().expect("valid");
        let head = Randomize::apply(cfg.init::<B>([3, 4, 5, 6], 3, &device), 11);
        let sizes = [(3, 8, 10), (4, 4, 5), (5, 2, 3), (6, 1, 2)];
        let xs: Vec<_> = sizes.iter().enumerate().map(|(k, &(c, h, w))| rand_nd(&[2, c, h, w], 40 + k as u64, 1.0)).collect();
        let out = head.forward(xs.iter().map(|x| x.tensor::<4>()).collect(), 1);
        let Fusion::Aspp(aspp) = &head.fuse_layer else { panic!("an ASPP fusion") };

        // Stage order 0, 1, 2, 3.
        let e: Vec<_> = xs.iter().zip(&head.embed_layers).map(|(x, m)| resize_ref(&embed_ref(x, m), 8, 10)).collect();
        let fused = cat_channels(&e);
        let branches: Vec<_> = aspp
            .aspp_modules
            .iter()
            .zip(&cfg.dilations)
            .map(|(m, &d)| match m {
                AsppBranch::Pointwise(c) => {
                    assert_eq!(d, 1);
                    conv_bn_ref(&fused, c, 0, 1, 1)
                }
                AsppBranch::Separable(s) => {
                    let dw = conv_bn_ref(&fused, &s.depthwise_conv, d, d, 16);
                    conv_bn_ref(&dw, &s.pointwise_conv, 0, 1, 1)
                }
            })
            .collect();
        let feature = conv_bn_ref(&cat_channels(&branches), &aspp.bottleneck, 1, 1, 1);
        let (ws, bs) = conv(&head.conv_seg);
        let logits = conv2d(&feature, &ws, Some(&bs), 1, 0, 1, 1);
        assert_close(&out.feature, &feature, "feature");
        assert_close(&out.logits, &logits, "logits");
    }

    #[test]
    fn parameter_paths_match_the_original_checkpoint() {
        let head = DaFormerHeadConfig::default().init::<B>([64, 128, 320, 512], 19, &Default::default());
        let mut ours = Shapes::of(&head);
        ours.sort();
        let bn = |prefix: &str, c: usize| -> Vec<(String, Vec<usize>)> {
            ["gamma", "beta", "running_mean", "running_var"].iter().map(|p| (format!("{prefix}.bn.{p}"), vec![c])).collect()
        };
        let mut expected: Vec<(String, Vec<usize>)> = vec![];
        for (k, c) in [64, 128, 320, 512].into_iter().enumerate() {
            expected.push((format!("embed_layers.{k}.proj.weight"), vec![c, 256]));
            expected.push((format!("embed_layers.{k}.proj.bias"), vec![256]));
        }
        expected.push(("fuse_layer.aspp_modules.0.conv.weight".into(), vec![256, 1024, 1, 1]));
        expected.extend(bn("fuse_layer.aspp_modules.0", 256));
        for i in 1..4 {
            let p = format!("fuse_layer.aspp_modules.{i}");
            expected.push((format!("{p}.depthwise_conv.conv.weight"), vec![1024, 1, 3, 3]));
            expected.extend(bn(&format!("{p}.depthwise_conv"), 1024));
            expected.push((format!("{p}.pointwise_conv.conv.weight"), vec![256, 1024, 1, 1]));
            expected.extend(bn(&format!("{p}.pointwise_conv"), 256));
        }
        expected.push(("fuse_layer.bottleneck.conv.weight".into(), vec![256, 1024, 3, 3]));
        expected.extend(bn("fuse_layer.bottleneck", 256));
        expected.push(("conv_seg.weight".into(), vec![19, 256, 1, 1]));
        expected.push(("conv_seg.bias".into(), vec![19]));
        expected.sort();
        assert_eq!(ours, expected);

        // Dilation and padding of the separable branches follow the configuration.
        let Fusion::Aspp(aspp) = &head.fuse_layer else { panic!("an ASPP fusion") };
        for (m, d) in aspp.aspp_modules.iter().zip([1, 6, 12, 18]) {
            match m {
                AsppBranch::Pointwise(c) => assert_eq!((d, c.conv.kernel_size), (1, [1, 1])),
                AsppBranch::Separable(s) => {
                    assert_eq!(s.depthwise_conv.conv.dilation, [d, d]);
                    assert_eq!(s.depthwise_conv.conv.groups, 1024);
                }
            }
        }
    }

    /// `fusion = "conv"` (HRDA's scale-attention head): one 1×1 conv + BN + ReLU, mmcv's
    /// `ConvModule` paths.
    #[test]
    fn a_pointwise_fusion_is_one_conv_block() {
        let device = Default::default();
        let cfg = DaFormerHeadConfig { embed_dim: 4, channels: 5, fusion: FusionKind::Conv, ..Default::default() };
        let head = Randomize::apply(cfg.init::<B>([3, 4, 5, 6], 2, &device), 12);
        let mut paths: Vec<String> = Shapes::of(&head).into_iter().map(|(p, _)| p).filter(|p| p.starts_with("fuse_layer")).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                "fuse_layer.bn.beta",
                "fuse_layer.bn.gamma",
                "fuse_layer.bn.running_mean",
                "fuse_layer.bn.running_var",
                "fuse_layer.conv.weight"
            ]
        );
        let sizes = [(3, 8, 10), (4, 4, 5), (5, 2, 3), (6, 1, 2)];
        let xs: Vec<_> = sizes.iter().enumerate().map(|(k, &(c, h, w))| rand_nd(&[2, c, h, w], 50 + k as u64, 1.0)).collect();
        let out = head.forward(xs.iter().map(|x| x.tensor::<4>()).collect(), 1);
        let e: Vec<_> = xs.iter().zip(&head.embed_layers).map(|(x, m)| resize_ref(&embed_ref(x, m), 8, 10)).collect();
        let Fusion::Conv(c) = &head.fuse_layer else { panic!("a conv fusion") };
        assert_close(&out.feature, &conv_bn_ref(&cat_channels(&e), c, 0, 1, 1), "feature");
        // Serialised only when it is not the default.
        let text = serde_json::to_string(&cfg).unwrap();
        assert!(text.contains("\"fusion\":\"conv\""), "{text}");
        assert!(!serde_json::to_string(&DaFormerHeadConfig::default()).unwrap().contains("fusion"));
    }

    #[test]
    fn config_defaults_and_validation() {
        let d = DaFormerHeadConfig::default();
        assert_eq!((d.embed_dim, d.channels, d.dilations.clone(), d.dropout), (256, 256, vec![1, 6, 12, 18], 0.1));
        let parsed =
            DaFormerHeadConfig::deserialize(MapDeserializer::<_, DeError>::new([("channels", 512u64)].into_iter())).expect("parses");
        assert_eq!(parsed, DaFormerHeadConfig { channels: 512, ..d.clone() });
        assert!(DaFormerHeadConfig::deserialize(MapDeserializer::<_, DeError>::new([("embed_dims", 8u64)].into_iter())).is_err());
        for (cfg, field) in [
            (DaFormerHeadConfig { embed_dim: 0, ..d.clone() }, "embed_dim"),
            (DaFormerHeadConfig { channels: 0, ..d.clone() }, "channels"),
            (DaFormerHeadConfig { dilations: vec![], ..d.clone() }, "dilations"),
            (DaFormerHeadConfig { dilations: vec![1, 0], ..d.clone() }, "dilations"),
            (DaFormerHeadConfig { dropout: 1.5, ..d.clone() }, "dropout"),
        ] {
            match cfg.validate() {
                Err(ModelError::Config(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("expected a configuration error, got {other:?}"),
            }
        }
    }
}
