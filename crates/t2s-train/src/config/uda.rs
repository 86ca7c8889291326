//! `[uda]`: the method and the mean-teacher self-training it builds on (method.md §3).

use serde::{Deserialize, Serialize};

/// The training method; each adds its terms to the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Supervised on the source only (the baseline every table starts from).
    SourceOnly,
    /// DACS/DAFormer self-training: EMA teacher, confidence-weighted pseudo-labels, ClassMix.
    Dacs,
    /// DACS plus the T2S-DA terms of `[t2s]`.
    T2s,
}

/// How the student's sub-batches of a step (source, mixed, pseudo-target) run; the gradients
/// are the same either way (up to float rounding and dropout's random draws).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StudentPasses {
    /// One forward pass over all of them and one backward pass: the fewest kernel launches,
    /// which is what bounds a GPU's step (docs/gpu.md), but every sub-batch's activations are
    /// kept at once (34 GiB for MiT-B5 `t2s` at 512×512, batch 2 + 2).
    Joint,
    /// Forward and backward of each sub-batch in turn, the gradients summed, as DAFormer's step
    /// does: one sub-batch's activations kept at once instead of all (for GPUs with less memory;
    /// on the CPU, MiT-B0 `t2s` at 512×512 peaks at 3.8 GB instead of 8.7; not yet measured on
    /// CUDA), for 2.4 times the kernel launches (MiT-B5 `t2s`).
    Sequential,
}

/// Self-training settings (used by `dacs` and `t2s`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UdaSection {
    /// `source_only`, `dacs` or `t2s` (default).
    pub method: Method,
    /// Source-only warm-up: the first `adapt_from` iterations train on the source alone, then
    /// `method` takes over with the teacher copied from the student (0: adapt from the start, as
    /// DAFormer does from ImageNet weights). A network trained from scratch needs it: a mean
    /// teacher that predicts nothing teaches nothing. The learning-rate schedule runs over the
    /// whole run; the teacher's EMA warm-up and T2S's unreliable-pixel schedule count from the
    /// switch (docs/method-notes.md).
    pub adapt_from: usize,
    /// EMA teacher: θ_T ← α·θ_T + (1 − α)·θ_S with α = min(1 − 1/(t + 1), `ema_alpha`) (0.999).
    pub ema_alpha: f64,
    /// Pseudo-label confidence threshold: every pixel's weight is the fraction of the batch's
    /// pixels whose max-probability reaches it, one scalar for the batch as DAFormer's (0.968).
    pub pseudo_threshold: f64,
    /// Rows of the target crop whose pseudo-label weight is set to 0, `[top, bottom]`, for a
    /// 512-high crop (DAFormer's `pseudo_weight_ignore_top = 15`, `_bottom = 120`); scaled to
    /// other crop heights.
    pub pseudo_label_margin: [usize; 2],
    /// ClassMix source classes onto the target (true).
    pub classmix: bool,
    /// Strong augmentation of the mixed image: colour jitter probability (0.8) …
    pub color_jitter_prob: f64,
    /// … and strength (0.2) …
    pub color_jitter_strength: f64,
    /// … and Gaussian blur probability (0.5).
    pub blur_prob: f64,
    /// ImageNet feature distance weight (0.005); 0 disables. Needs `model.pretrained`.
    pub fdist_lambda: f64,
    /// Train ids of the feature-distance "thing" classes.
    pub fdist_classes: Vec<usize>,
    /// Minimum winning fraction when downscaling labels for the feature distance (0.75).
    pub fdist_scale_min_ratio: f32,
    /// `joint` (default) or `sequential`: see [`StudentPasses`] (speed against memory).
    pub student_passes: StudentPasses,
    /// MIC, masked image consistency (lhoyer/MIC, `separatetrgaug`): the student also learns the
    /// teacher's pseudo-labels of each target image from a copy with most of it masked out
    /// (`mic_*` below), logged as `loss_mic`. Needs a target set; off by default.
    pub mic: bool,
    /// MIC's mask block side in pixels (64, MIC's value for 512² and 1024² crops).
    pub mic_block_size: usize,
    /// Share of the blocks masked (0.7).
    pub mic_mask_ratio: f64,
    /// Weight of MIC's loss (1).
    pub mic_lambda: f64,
    /// Colour jitter and blur of the masked images, a fresh draw of the strong augmentation (true,
    /// MIC's `separatetrgaug`; false is its `separatetrg`).
    pub mic_color_aug: bool,
}

impl Method {
    /// The name the configuration uses (`source_only`, `dacs`, `t2s`).
    pub fn name(self) -> &'static str {
        match self {
            Method::SourceOnly => "source_only",
            Method::Dacs => "dacs",
            Method::T2s => "t2s",
        }
    }
}

impl UdaSection {
    /// The method that trains 0-based iteration `iter`: `source_only` before `adapt_from`.
    pub fn method_at(&self, iter: usize) -> Method {
        if iter < self.adapt_from {
            Method::SourceOnly
        } else {
            self.method
        }
    }

    /// Iterations of the adaptation phase before 0-based `iter` (the clock of the teacher's EMA
    /// warm-up and of the T2S schedules).
    pub fn adapting_for(&self, iter: usize) -> usize {
        iter.saturating_sub(self.adapt_from)
    }

    /// MIC's block mask (`mic_block_size`, `mic_mask_ratio`).
    pub fn mic_mask(&self) -> t2s_data::BlockMaskConfig {
        t2s_data::BlockMaskConfig { block_size: self.mic_block_size, mask_ratio: self.mic_mask_ratio }
    }

    /// The strong augmentation of the mixed images (and of MIC's masked ones).
    pub fn strong_aug(&self) -> t2s_data::StrongAugConfig {
        t2s_data::StrongAugConfig {
            color_jitter_strength: self.color_jitter_strength as f32,
            color_jitter_prob: self.color_jitter_prob,
            blur_prob: self.blur_prob,
            ..t2s_data::StrongAugConfig::default()
        }
    }
}

impl Default for UdaSection {
    fn default() -> Self {
        Self {
            method: Method::T2s,
            adapt_from: 0,
            ema_alpha: 0.999,
            pseudo_threshold: 0.968,
            pseudo_label_margin: [15, 120],
            classmix: true,
            color_jitter_prob: 0.8,
            color_jitter_strength: 0.2,
            blur_prob: 0.5,
            fdist_lambda: 0.005,
            fdist_classes: t2s_loss::THING_CLASSES.to_vec(),
            fdist_scale_min_ratio: 0.75,
            student_passes: StudentPasses::Joint,
            mic: false,
            mic_block_size: 64,
            mic_mask_ratio: 0.7,
            mic_lambda: 1.0,
            mic_color_aug: true,
        }
    }
}
