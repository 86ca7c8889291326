//! `[data]`: where source, target and evaluation images come from, and how batches are made.
//! Any reader (GTA5, SYNTHIA, Cityscapes, BDD100K, Mapillary, a custom folder) or the built-in
//! synthetic benchmark can be a source, a target or an evaluation set from configuration alone.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use t2s_data::datasets::DatasetKind;
use t2s_data::synth::{Domain, Split};

/// One dataset: a table such as `[data.source]`, `[data.target]` or an `[[data.eval]]` entry.
/// In the file it is one flat table whose `kind` says which fields apply; parsed, the fields of
/// the other kind cannot be present ([`SetReader`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SetTable", into = "SetTable")]
pub struct SetSection {
    /// Files on disk or the generator.
    pub reader: SetReader,
    /// Keep-ratio resize `[long, short]` before cropping (GTA5 [1280, 720], SYNTHIA
    /// [1280, 760], Cityscapes [1024, 512]); left out: no resize. On an evaluation set it
    /// replaces `eval.resize` for that set.
    pub resize: Option<[u32; 2]>,
    /// Name used in logs and reports (default: kind and split).
    pub name: Option<String>,
}

/// What produces a set's images.
#[derive(Debug, Clone, PartialEq)]
pub enum SetReader {
    /// A dataset on disk, read by one of t2s-data's readers.
    Files(FileSet),
    /// The built-in synthetic street scenes (docs/synthetic.md); needs no files.
    Synthetic(SyntheticSet),
}

/// A dataset on disk (`kind` = `gta5`, `synthia`, `cityscapes`, `bdd100k`, `mapillary`, `folder`).
#[derive(Debug, Clone, PartialEq)]
pub struct FileSet {
    /// Which reader.
    pub kind: DatasetKind,
    /// Dataset root folder (docs/datasets.md).
    pub root: PathBuf,
    /// Split (Cityscapes `train`/`val`, BDD100K `val`, Mapillary `validation`); the reader's
    /// default when left out.
    pub split: Option<String>,
    /// Mapping file of a `folder` dataset (default `<root>/mapping.toml`).
    pub mapping: Option<PathBuf>,
}

/// A synthetic set's image size `[width, height]` when it gives none.
pub const DEFAULT_SYNTHETIC_SIZE: [u32; 2] = [256, 128];

/// The synthetic benchmark (`kind = "synthetic"`).
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSet {
    /// Domain; required when the set is opened.
    pub domain: Option<Domain>,
    /// `train` or `val` (training sets default to train, evaluation sets to val).
    pub split: Option<Split>,
    /// Number of images (train 2,000 / val 200 if left out).
    pub len: Option<usize>,
    /// Image size `[width, height]` ([256, 128]).
    pub size: Option<[u32; 2]>,
    /// Generator seed (0).
    pub seed: Option<u64>,
}

impl SetSection {
    /// The file reader's kind; `None` for the synthetic benchmark.
    pub fn file_kind(&self) -> Option<DatasetKind> {
        match &self.reader {
            SetReader::Files(f) => Some(f.kind),
            SetReader::Synthetic(_) => None,
        }
    }

    /// The synthetic set's settings; `None` for files.
    pub fn synthetic(&self) -> Option<&SyntheticSet> {
        match &self.reader {
            SetReader::Synthetic(s) => Some(s),
            SetReader::Files(_) => None,
        }
    }
}

/// A set as written in the file: every field of both kinds, `kind` deciding which may be given.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetTable {
    /// `gta5`, `synthia`, `cityscapes`, `bdd100k`, `mapillary`, `folder` or `synthetic`.
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    root: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    split: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mapping: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resize: Option<[u32; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    domain: Option<Domain>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    len: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<[u32; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl TryFrom<SetTable> for SetSection {
    type Error = String;

    fn try_from(t: SetTable) -> Result<Self, String> {
        let reader = if t.kind == "synthetic" {
            if t.root.is_some() || t.mapping.is_some() {
                return Err("a synthetic set has no `root` or `mapping`; remove them".into());
            }
            let split = match t.split.as_deref() {
                None => None,
                Some("train") => Some(Split::Train),
                Some("val") => Some(Split::Val),
                Some(other) => return Err(format!("synthetic split {other:?}; expected \"train\" or \"val\"")),
            };
            SetReader::Synthetic(SyntheticSet { domain: t.domain, split, len: t.len, size: t.size, seed: t.seed })
        } else {
            let kind: DatasetKind = t.kind.parse().map_err(|_| {
                let known: Vec<&str> = DatasetKind::ALL.iter().map(|k| k.as_str()).chain(["synthetic"]).collect();
                format!("unknown dataset kind {:?}; known kinds are {}", t.kind, known.join(", "))
            })?;
            if t.domain.is_some() || t.len.is_some() || t.size.is_some() || t.seed.is_some() {
                return Err("`domain`, `len`, `size` and `seed` only apply to kind \"synthetic\"".into());
            }
            if t.mapping.is_some() && kind != DatasetKind::Folder {
                return Err(format!("`mapping` only applies to kind \"folder\", not {kind}"));
            }
            let root =
                t.root.ok_or_else(|| format!("`root` is required for kind {kind} (the dataset's top folder, see docs/datasets.md)"))?;
            SetReader::Files(FileSet { kind, root, split: t.split, mapping: t.mapping })
        };
        Ok(SetSection { reader, resize: t.resize, name: t.name })
    }
}

impl From<SetSection> for SetTable {
    fn from(s: SetSection) -> Self {
        let mut t = SetTable {
            kind: String::new(),
            root: None,
            split: None,
            mapping: None,
            resize: s.resize,
            domain: None,
            len: None,
            size: None,
            seed: None,
            name: s.name,
        };
        match s.reader {
            SetReader::Files(f) => {
                (t.kind, t.root, t.split, t.mapping) = (f.kind.as_str().into(), Some(f.root), f.split, f.mapping);
            }
            SetReader::Synthetic(g) => {
                t.kind = "synthetic".into();
                t.split = g.split.map(|s| s.to_string());
                (t.domain, t.len, t.size, t.seed) = (g.domain, g.len, g.size, g.seed);
            }
        }
        t
    }
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
    /// The same threshold as a fraction of a label's pixels (the median label of the set), which
    /// replaces `min_pixels` when given: a dataset at any resolution gets DAFormer's share with
    /// [`DAFORMER_MIN_FRACTION`]; `min_pixels` is in pixels of GTA5's 1914×1052 labels.
    pub min_fraction: Option<f64>,
}

/// DAFormer's 3,000 pixels as a share of a 1914×1052 GTA5 label (its class statistics are
/// counted at the labels' stored size): 0.149 %.
pub const DAFORMER_MIN_FRACTION: f64 = 3_000.0 / (1914.0 * 1052.0);

impl Default for RcsSection {
    fn default() -> Self {
        Self { enabled: true, temperature: 0.01, min_pixels: 3_000, min_fraction: None }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SetSection, String> {
        toml::from_str::<SetSection>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn kind_decides_which_fields_apply() {
        let files = parse("kind = \"cityscapes\"\nroot = \"/cs\"\nsplit = \"val\"\nresize = [1024, 512]").unwrap();
        let want = FileSet { kind: DatasetKind::Cityscapes, root: "/cs".into(), split: Some("val".into()), mapping: None };
        assert_eq!((files.reader.clone(), files.resize), (SetReader::Files(want), Some([1024, 512])));
        let synth = parse("kind = \"synthetic\"\ndomain = \"target\"\nsplit = \"val\"\nlen = 3").unwrap();
        let want = SyntheticSet { domain: Some(Domain::Target), split: Some(Split::Val), len: Some(3), size: None, seed: None };
        assert_eq!(synth.reader, SetReader::Synthetic(want));
        // Both write back to the table they came from.
        for set in [files, synth] {
            assert_eq!(parse(&toml::to_string(&set).unwrap()).unwrap(), set);
        }
    }

    #[test]
    fn fields_of_the_other_kind_fail_at_parse_time() {
        for (text, says) in [
            ("kind = \"synthetic\"\nroot = \"/x\"", "no `root`"),
            ("kind = \"gta5\"\nroot = \"/g\"\nlen = 3", "only apply to kind \"synthetic\""),
            ("kind = \"gta5\"", "`root` is required for kind gta5"),
            ("kind = \"gta5\"\nroot = \"/g\"\nmapping = \"m.toml\"", "only applies to kind \"folder\""),
            ("kind = \"synthetic\"\nsplit = \"test\"", "expected \"train\" or \"val\""),
            ("kind = \"gta6\"", "unknown dataset kind \"gta6\"; known kinds are gta5, synthia"),
            ("kind = \"synthetic\"\nlabels = \"auto\"", "unknown field `labels`"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
