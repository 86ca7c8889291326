//! `[model]`: the network and its initial weights.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use t2s_model::SegmentorConfig;

/// The network of a run: a preset or an explicit `[model.network]` table, plus pretrained
/// weights (an ImageNet backbone such as `mit_b5.pth`, or a whole segmentor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// A preset from `t2s models` (e.g. `daformer-mitb5`, `deeplabv2-r101`).
    pub preset: Option<String>,
    /// An explicit network (same keys as a `configs/models/*.toml` file); overrides `preset`.
    pub network: Option<SegmentorConfig>,
    /// Pretrained weights: torchvision / SegFormer `.pth` for the backbone, an mmseg/DAFormer
    /// checkpoint, or a t2s `.safetensors` file. Also the frozen encoder of the feature distance.
    pub pretrained: Option<PathBuf>,
    /// Key prefix inside `pretrained` (see `t2s predict --prefix`).
    pub pretrained_prefix: Option<String>,
    /// `[model.hrda]`: HRDA's multi-resolution training and inference on top of the preset or
    /// `[model.network]` (whose own `hrda` table it replaces); see `t2s_model::HrdaConfig`.
    pub hrda: Option<t2s_model::HrdaConfig>,
}

impl ModelSection {
    /// `network` with `[model.hrda]` applied.
    pub fn with_hrda(&self, mut network: SegmentorConfig) -> SegmentorConfig {
        if let Some(h) = &self.hrda {
            network.hrda = Some(h.clone());
        }
        network
    }
}
