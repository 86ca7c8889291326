//! `[data]`: where source, target and evaluation images come from, and how batches are made.
//! Any reader (GTA5, SYNTHIA, Cityscapes, BDD100K, Mapillary, a custom folder) or the built-in
//! synthetic benchmark can be a source, a target or an evaluation set from configuration alone.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use t2s_data::datasets::{DatasetKind, LabelUse};
use t2s_data::synth::Domain;

/// What kind of set: a reader of files on disk, or the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetKind {
    /// GTA5 (`images/`, `labels/`).
    Gta5,
    /// SYNTHIA-RAND-CITYSCAPES (`RGB/`, `GT/LABELS/`).
    Synthia,
    /// Cityscapes (`leftImg8bit/`, `gtFine/`).
    Cityscapes,
    /// BDD100K (evaluation).
    Bdd100k,
    /// Mapillary Vistas (evaluation).
    Mapillary,
    /// A custom folder with a mapping file (docs/datasets.md).
    Folder,
    /// The built-in synthetic street scenes (docs/synthetic.md); needs no files.
    Synthetic,
}

impl SetKind {
    /// The file reader behind this kind; `None` for the generator.
    pub fn reader(self) -> Option<DatasetKind> {
        match self {
            SetKind::Gta5 => Some(DatasetKind::Gta5),
            SetKind::Synthia => Some(DatasetKind::Synthia),
            SetKind::Cityscapes => Some(DatasetKind::Cityscapes),
            SetKind::Bdd100k => Some(DatasetKind::Bdd100k),
            SetKind::Mapillary => Some(DatasetKind::Mapillary),
            SetKind::Folder => Some(DatasetKind::Folder),
            SetKind::Synthetic => None,
        }
    }
}

/// One dataset: a table such as `[data.source]`, `[data.target]` or an `[[data.eval]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSection {
    /// `gta5`, `synthia`, `cityscapes`, `bdd100k`, `mapillary`, `folder` or `synthetic`.
    pub kind: SetKind,
    /// Dataset root folder (not for `synthetic`).
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// Split (Cityscapes `train`/`val`, BDD100K `val`, Mapillary `validation`; synthetic
    /// `train`/`val`); each reader's default when left out.
    #[serde(default)]
    pub split: Option<String>,
    /// Mapping file of a `folder` dataset (default `<root>/mapping.toml`).
    #[serde(default)]
    pub mapping: Option<PathBuf>,
    /// Whether to load labels: `auto` (if present), `require`, `ignore`. Target sets for
    /// training never read labels, whatever this says.
    #[serde(default)]
    pub labels: LabelUse,
    /// Keep-ratio resize `[long, short]` before cropping (GTA5 [1280, 720], SYNTHIA
    /// [1280, 760], Cityscapes [1024, 512]); left out: no resize. On an evaluation set it
    /// replaces `eval.resize` for that set.
    #[serde(default)]
    pub resize: Option<[u32; 2]>,
    /// Synthetic only: domain.
    #[serde(default)]
    pub domain: Option<Domain>,
    /// Synthetic only: number of images (train 2,000 / val 200 if left out).
    #[serde(default)]
    pub len: Option<usize>,
    /// Synthetic only: image size `[width, height]` ([256, 128]).
    #[serde(default)]
    pub size: Option<[u32; 2]>,
    /// Synthetic only: generator seed (0).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Name used in logs and reports (default: kind and split).
    #[serde(default)]
    pub name: Option<String>,
}

/// Rare class sampling on the source (method.md §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RcsSection {
    /// On (DAFormer: true); needs `t2s prepare` statistics or computes them at start-up.
    pub enabled: bool,
    /// Softmax temperature T (0.01).
    pub temperature: f64,
    /// An image qualifies for class c with more than this many pixels of c (3,000).
    pub min_pixels: u64,
}

impl Default for RcsSection {
    fn default() -> Self {
        Self { enabled: true, temperature: 0.01, min_pixels: 3_000 }
    }
}

/// The data of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// The labelled source set.
    pub source: SetSection,
    /// The unlabelled target set (not needed by `source_only` or domain generalisation).
    #[serde(default)]
    pub target: Option<SetSection>,
    /// Evaluation sets (the first one's mIoU selects the best checkpoint).
    #[serde(default)]
    pub eval: Vec<SetSection>,
    /// Images per domain per iteration (DAFormer: 2).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Training crop `[height, width]` ([512, 512]).
    #[serde(default = "default_crop")]
    pub crop: [u32; 2],
    /// Horizontal flip probability (0.5).
    #[serde(default = "default_flip")]
    pub flip_prob: f64,
    /// Decoding threads (0: all cores).
    #[serde(default)]
    pub workers: usize,
    /// Batches prepared ahead of the training step (4).
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// Rare class sampling.
    #[serde(default)]
    pub rcs: RcsSection,
}

fn default_batch() -> usize {
    2
}
fn default_crop() -> [u32; 2] {
    [512, 512]
}
fn default_flip() -> f64 {
    0.5
}
fn default_prefetch() -> usize {
    4
}
