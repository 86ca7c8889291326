//! SegFormer's all-MLP decoder (mmseg `SegFormerHead`): every backbone stage is embedded to E
//! channels by a per-pixel linear layer, upsampled to the first stage's size, concatenated in
//! the order `[c4, c3, c2, c1]`, fused by a 1×1 conv + BN + ReLU, and classified by a 1×1 conv.
//!
//! Parameter paths: `linear_c.{k}.proj` (original `linear_c{k+1}.proj`, renamed by the loader),
//! `linear_fuse.{conv,bn}`, `linear_pred`. The original's unused `conv_seg` is not built.

use crate::ops::conv::conv2d_forward;
use crate::T2sBackend;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::nets::conv_bn::{ConvBn, ConvSpec};
use crate::nets::head_output::{channel_dropout, HeadOutput};
use crate::nets::mlp_embed::{embed_stages, MlpEmbed};

fn default_embed_dim() -> usize {
    256
}
fn default_dropout() -> f64 {
    0.1
}

/// SegFormer head configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SegFormerHeadConfig {
    /// Width E of the embedded maps and of the fused feature (default 256; SegFormer uses 256
    /// with MiT-B0 and 768 with B1–B5).
    #[serde(default = "default_embed_dim")]
    pub embed_dim: usize,
    /// Probability of dropping a whole channel of the fused feature before the classifier
    /// during training (`nn.Dropout2d`, 0.1).
    #[serde(default = "default_dropout")]
    pub dropout: f64,
}

impl Default for SegFormerHeadConfig {
    fn default() -> Self {
        Self { embed_dim: default_embed_dim(), dropout: default_dropout() }
    }
}

impl SegFormerHeadConfig {
    /// Checks that the head can be built, naming the setting at fault.
    pub fn validate(&self) -> Result<()> {
        if self.embed_dim == 0 {
            return Err(ModelError::Config("model.decode_head.embed_dim must be positive".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::Config(format!("model.decode_head.dropout = {} must be in [0, 1)", self.dropout)));
        }
        Ok(())
    }

    /// Builds the head for backbone stages of `in_channels` channels, with PyTorch's default
    /// initialisation of the linear layers and the classifier (as the original).
    ///
    /// # Panics
    /// On a configuration that [`validate`](Self::validate) rejects.
    pub fn init<B: Backend>(&self, in_channels: [usize; 4], num_classes: usize, device: &B::Device) -> SegFormerHead<B> {
        let e = self.embed_dim;
        SegFormerHead {
            linear_c: in_channels.iter().map(|&c| MlpEmbed::new(c, e, device)).collect(),
            linear_fuse: ConvBn::new(ConvSpec::new(4 * e, e, 1), true, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            linear_pred: ConvSpec::new(e, num_classes, 1).bias(true).init(device),
        }
    }
}

/// The SegFormer all-MLP decode head.
#[derive(Module, Debug)]
pub struct SegFormerHead<B: Backend> {
    /// Per-stage embeddings `C_k → E` (original `linear_c1`…`linear_c4`).
    pub linear_c: Vec<MlpEmbed<B>>,
    /// 1×1 conv `4E → E` + BN + ReLU over the concatenated embeddings.
    pub linear_fuse: ConvBn<B>,
    /// Channel dropout (`nn.Dropout2d`) before the classifier; see
    /// [`channel_dropout`](crate::nets::head_output::channel_dropout).
    pub dropout: Dropout,
    /// 1×1 biased classifier `E → classes`.
    pub linear_pred: Conv2d<B>,
}

impl<B: T2sBackend> SegFormerHead<B> {
    /// The four backbone stages `[N, C_k, H_k, W_k]` (k = 1…4) → logits
    /// `[N, classes, H_1, W_1]` and the fused feature `[N, E, H_1, W_1]` (before dropout).
    ///
    /// `sub_batches`: how many independent batches the features concatenate along N (batch-norm
    /// statistics per sub-batch; see [`batch_norm_2d`](crate::ops::batch_norm::batch_norm_2d)).
    ///
    /// # Panics
    /// When `features` does not hold one map per embedding layer (4).
    pub fn forward(&self, features: Vec<Tensor<B, 4>>, sub_batches: usize) -> HeadOutput<B> {
        // Each stage embedded and resized to [N, E, H_1, W_1].
        let mut embedded = embed_stages(features, &self.linear_c, "SegFormerHead");
        // The original concatenates `[_c4, _c3, _c2, _c1]`: deepest stage first.
        embedded.reverse();
        // [N, 4E, H_1, W_1] → [N, E, H_1, W_1]
        let feature = self.linear_fuse.forward(Tensor::cat(embedded, 1), sub_batches);
        // [N, classes, H_1, W_1]
        let logits = conv2d_forward(&self.linear_pred, channel_dropout(&self.dropout, feature.clone()));
        HeadOutput { logits, feature }
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
        let cfg = SegFormerHeadConfig { embed_dim: 4, dropout: 0.1 };
        cfg.validate().expect("valid");
        let head = Randomize::apply(cfg.init::<B>([3, 4, 5, 6], 3, &device), 7);
        // Stage sizes need not divide each other: 8×10, 4×5, 2×3, 1×2.
        let sizes = [(3, 8, 10), (4, 4, 5), (5, 2, 3), (6, 1, 2)];
        let xs: Vec<_> = sizes.iter().enumerate().map(|(k, &(c, h, w))| rand_nd(&[2, c, h, w], 20 + k as u64, 1.0)).collect();
        let out = head.forward(xs.iter().map(|x| x.tensor::<4>()).collect(), 1);

        let e: Vec<_> = xs.iter().zip(&head.linear_c).map(|(x, m)| resize_ref(&embed_ref(x, m), 8, 10)).collect();
        // Deepest stage first, as the original `torch.cat([_c4, _c3, _c2, _c1], dim=1)`.
        let fused = cat_channels(&[e[3].clone(), e[2].clone(), e[1].clone(), e[0].clone()]);
        let feature = conv_bn_ref(&fused, &head.linear_fuse, 0, 1, 1);
        let (wp, bp) = conv(&head.linear_pred);
        let logits = conv2d(&feature, &wp, Some(&bp), 1, 0, 1, 1);
        assert_close(&out.feature, &feature, "feature");
        assert_close(&out.logits, &logits, "logits");
    }

    #[test]
    fn parameter_paths_match_the_original_checkpoint() {
        let head = SegFormerHeadConfig { embed_dim: 16, dropout: 0.1 }.init::<B>([32, 64, 160, 256], 19, &Default::default());
        let mut ours = Shapes::of(&head);
        ours.sort();
        // Original keys (`linear_c{k}` renamed to `linear_c.{k-1}`), Burn's names for the
        // LayerNorm/BatchNorm affine parameters and `[in, out]` linear weights.
        let mut expected: Vec<(String, Vec<usize>)> = vec![];
        for (k, c) in [32, 64, 160, 256].into_iter().enumerate() {
            expected.push((format!("linear_c.{k}.proj.weight"), vec![c, 16]));
            expected.push((format!("linear_c.{k}.proj.bias"), vec![16]));
        }
        expected.push(("linear_fuse.conv.weight".into(), vec![16, 64, 1, 1]));
        for p in ["gamma", "beta", "running_mean", "running_var"] {
            expected.push((format!("linear_fuse.bn.{p}"), vec![16]));
        }
        expected.push(("linear_pred.weight".into(), vec![19, 16, 1, 1]));
        expected.push(("linear_pred.bias".into(), vec![19]));
        expected.sort();
        assert_eq!(ours, expected);
    }

    #[test]
    fn config_defaults_and_validation() {
        let d = SegFormerHeadConfig::default();
        assert_eq!((d.embed_dim, d.dropout), (256, 0.1));
        let parsed =
            SegFormerHeadConfig::deserialize(MapDeserializer::<_, DeError>::new([("embed_dim", 768u64)].into_iter())).expect("parses");
        assert_eq!(parsed, SegFormerHeadConfig { embed_dim: 768, dropout: 0.1 });
        assert!(SegFormerHeadConfig::deserialize(MapDeserializer::<_, DeError>::new([("embedding_dim", 768u64)].into_iter())).is_err());
        for (cfg, field) in [
            (SegFormerHeadConfig { embed_dim: 0, dropout: 0.1 }, "embed_dim"),
            (SegFormerHeadConfig { embed_dim: 8, dropout: 1.0 }, "dropout"),
            (SegFormerHeadConfig { embed_dim: 8, dropout: -0.1 }, "dropout"),
        ] {
            match cfg.validate() {
                Err(ModelError::Config(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("expected a configuration error, got {other:?}"),
            }
        }
    }
}
