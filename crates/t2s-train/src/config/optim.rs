//! `[optim]`: the optimiser, with every constant explicit because Burn's defaults differ from
//! PyTorch's (burn-notes.md): DAFormer's AdamW, or SGD with momentum for classic DeepLabV2 runs.

use serde::{Deserialize, Serialize};

/// Which optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// AdamW (DAFormer, HRDA, MIC).
    Adamw,
    /// SGD with momentum (AdaptSegNet/FDA-style DeepLabV2 training).
    Sgd,
}

/// Optimiser settings; the learning rate follows `[schedule]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimSection {
    /// `adamw` (default) or `sgd`.
    pub kind: OptimizerKind,
    /// Base learning rate of the backbone group (DAFormer: 6e-5; SGD DeepLabV2: 2.5e-4).
    pub lr: f64,
    /// Learning-rate multiplier of the head group (decode and projection heads): 10.
    pub head_lr_mult: f64,
    /// Weight decay (AdamW: decoupled, 0.01; SGD: L2, 5e-4).
    pub weight_decay: f64,
    /// No weight decay on normalisation and position-embedding parameters (DAFormer: true).
    pub no_decay_on_norm: bool,
    /// AdamW β1, β2 (0.9, 0.999).
    pub betas: [f64; 2],
    /// AdamW ε (PyTorch's 1e-8; Burn's default is 1e-5).
    pub eps: f64,
    /// SGD momentum (0.9).
    pub momentum: f64,
    /// SGD dampening (PyTorch's 0).
    pub dampening: f64,
    /// SGD Nesterov momentum (false).
    pub nesterov: bool,
}

impl Default for OptimSection {
    fn default() -> Self {
        Self {
            kind: OptimizerKind::Adamw,
            lr: 6e-5,
            head_lr_mult: 10.0,
            weight_decay: 0.01,
            no_decay_on_norm: true,
            betas: [0.9, 0.999],
            eps: 1e-8,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
        }
    }
}
