//! The Mix Transformer's configuration: the published B0…B5 variants and building the encoder.

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::{layer_norm, MitBlock, MitStage, MixTransformer, OverlapPatchEmbed};
use crate::error::{ModelError, Result};

fn default_mlp_ratio() -> usize {
    4
}
fn default_patch_sizes() -> [usize; 4] {
    [7, 3, 3, 3]
}
fn default_strides() -> [usize; 4] {
    [4, 2, 2, 2]
}
fn default_in_channels() -> usize {
    3
}
fn default_drop_path_rate() -> f64 {
    0.1
}

/// Mix Transformer configuration. [`MitConfig::b`] gives the published B0…B5 variants.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MitConfig {
    /// Channel width C_i of each stage (B0: `[32, 64, 160, 256]`, B1–B5: `[64, 128, 320, 512]`).
    pub embed_dims: [usize; 4],
    /// Number of transformer blocks in each stage.
    pub depths: [usize; 4],
    /// Attention heads of each stage; must divide the stage's width.
    pub num_heads: [usize; 4],
    /// Spatial-reduction ratio R_i of the keys and values of each stage (a `R×R`, stride-`R`
    /// convolution shrinks the key/value map by R² when R > 1).
    pub sr_ratios: [usize; 4],
    /// Hidden width of the Mix-FFN as a multiple of the stage width (4).
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: usize,
    /// Kernel size of each stage's overlapping patch embedding (`[7, 3, 3, 3]`); its padding is
    /// `patch / 2`.
    #[serde(default = "default_patch_sizes")]
    pub patch_sizes: [usize; 4],
    /// Stride of each stage's patch embedding (`[4, 2, 2, 2]`: outputs at 1/4, 1/8, 1/16, 1/32).
    #[serde(default = "default_strides")]
    pub strides: [usize; 4],
    /// Input image channels: 3 (RGB; kept as a key for mmseg configurations that spell it out).
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    /// Stochastic-depth rate of the last block (0.1, as the original `mit_b*` classes); block
    /// `k` of `K` drops its residual branches with probability `rate·k/(K−1)` during training
    /// (when the backend records gradients), never at inference.
    #[serde(default = "default_drop_path_rate")]
    pub drop_path_rate: f64,
}

impl MitConfig {
    /// The MiT-B`n` encoder (n = 0…5) of the SegFormer paper, with the original classes'
    /// settings (4× MLP ratio, patch sizes `[7, 3, 3, 3]`, strides `[4, 2, 2, 2]`, heads
    /// `[1, 2, 5, 8]`, reduction ratios `[8, 4, 2, 1]`, drop-path rate 0.1).
    pub fn b(n: usize) -> Result<Self> {
        let (embed_dims, depths) = match n {
            0 => ([32, 64, 160, 256], [2, 2, 2, 2]),
            1 => ([64, 128, 320, 512], [2, 2, 2, 2]),
            2 => ([64, 128, 320, 512], [3, 4, 6, 3]),
            3 => ([64, 128, 320, 512], [3, 4, 18, 3]),
            4 => ([64, 128, 320, 512], [3, 8, 27, 3]),
            5 => ([64, 128, 320, 512], [3, 6, 40, 3]),
            _ => return Err(ModelError::Config(format!("model.backbone: MiT-B{n} does not exist; the variants are B0 to B5"))),
        };
        Ok(Self {
            embed_dims,
            depths,
            num_heads: [1, 2, 5, 8],
            sr_ratios: [8, 4, 2, 1],
            mlp_ratio: default_mlp_ratio(),
            patch_sizes: default_patch_sizes(),
            strides: default_strides(),
            in_channels: default_in_channels(),
            drop_path_rate: default_drop_path_rate(),
        })
    }

    /// Channels of the four stage outputs (the stage widths).
    pub fn out_channels(&self) -> [usize; 4] {
        self.embed_dims
    }

    /// The smallest input side whose every stage keeps at least one token after its spatial
    /// reduction (a convolution with kernel and stride `sr_ratio`): 29 for the SegFormer
    /// encoders (8 tokens at stage 1). Smaller inputs leave no keys to attend to.
    pub fn min_input_side(&self) -> usize {
        let fits = |side: usize| {
            let mut h = side;
            (0..4).all(|i| {
                let (k, s) = (self.patch_sizes[i], self.strides[i]);
                // The patch embedding pads by k / 2 on each side.
                h = match (h + 2 * (k / 2)).checked_sub(k) {
                    Some(room) => room / s + 1,
                    None => return false,
                };
                h >= self.sr_ratios[i]
            })
        };
        (1..=4096).find(|&side| fits(side)).unwrap_or(4096)
    }

    /// Checks that the network can be built, naming the setting at fault.
    pub fn validate(&self) -> Result<()> {
        let err = |msg: String| Err(ModelError::Config(format!("model.backbone.{msg}")));
        for i in 0..4 {
            let (dim, heads) = (self.embed_dims[i], self.num_heads[i]);
            if dim == 0 {
                return err(format!("embed_dims[{i}] must be positive"));
            }
            if heads == 0 {
                return err(format!("num_heads[{i}] must be positive"));
            }
            if dim % heads != 0 {
                return err(format!("embed_dims[{i}] = {dim} is not divisible by num_heads[{i}] = {heads}"));
            }
            if self.sr_ratios[i] == 0 {
                return err(format!("sr_ratios[{i}] must be positive (1 disables the spatial reduction)"));
            }
            if self.patch_sizes[i] == 0 {
                return err(format!("patch_sizes[{i}] must be positive"));
            }
            if self.strides[i] == 0 {
                return err(format!("strides[{i}] must be positive"));
            }
        }
        if self.mlp_ratio == 0 {
            return err("mlp_ratio must be positive".into());
        }
        if self.in_channels != 3 {
            // Every reader and the ImageNet normalisation give RGB images.
            return err(format!("in_channels = {}: t2s feeds RGB images, so it must be 3", self.in_channels));
        }
        if !(0.0..1.0).contains(&self.drop_path_rate) {
            return err(format!("drop_path_rate = {} must be in [0, 1)", self.drop_path_rate));
        }
        Ok(())
    }

    /// Builds the encoder with the original initialisation (linear weights N(0, 0.02²), conv
    /// weights N(0, 2/fan_out), biases 0, LayerNorms 1/0).
    ///
    /// # Panics
    /// On a configuration that [`validate`](Self::validate) rejects.
    pub fn init<B: Backend>(&self, device: &B::Device) -> MixTransformer<B> {
        // Stochastic depth grows linearly over all blocks of all stages (`torch.linspace(0,
        // drop_path_rate, sum(depths))` in the original).
        let total: usize = self.depths.iter().sum();
        let drop_prob = |k: usize| {
            if total > 1 {
                self.drop_path_rate * k as f64 / (total - 1) as f64
            } else {
                0.0
            }
        };
        let mut block_index = 0;
        let mut in_channels = self.in_channels;
        let stages = (0..4)
            .map(|i| {
                let dim = self.embed_dims[i];
                let patch_embed = OverlapPatchEmbed::new(in_channels, dim, self.patch_sizes[i], self.strides[i], device);
                let blocks = (0..self.depths[i])
                    .map(|_| {
                        let p = drop_prob(block_index);
                        block_index += 1;
                        MitBlock::new(dim, self.num_heads[i], self.sr_ratios[i], self.mlp_ratio, p, device)
                    })
                    .collect();
                in_channels = dim;
                MitStage { patch_embed, blocks, norm: layer_norm(dim, 1e-6, device) }
            })
            .collect();
        MixTransformer { stages }
    }
}
