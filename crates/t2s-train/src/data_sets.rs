//! Opening the datasets a configuration names (`[data.source]`, `[data.target]`,
//! `[[data.eval]]`): a file reader or the synthetic generator behind one `Dataset` interface.

use t2s_data::datasets::{open_dataset, DatasetOptions, LabelUse};
use t2s_data::synth::{Split, SynthConfig, SyntheticDataset};
use t2s_data::Dataset;

use crate::config::{SetReader, SetSection};
use crate::{Result, TrainError};

/// Synthetic set sizes when `len` is left out.
const SYNTH_TRAIN_LEN: usize = 2_000;
const SYNTH_VAL_LEN: usize = 200;

/// What role a set plays; a training target never reads labels (anchors' complaint 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetRole {
    /// Labelled training source.
    Source,
    /// Unlabelled training target.
    Target,
    /// Labelled evaluation set.
    Eval,
}

/// An opened set with its display name and the scan's notes (skipped files etc.).
pub struct OpenedSet {
    /// The samples.
    pub dataset: Box<dyn Dataset>,
    /// e.g. `cityscapes val` or `synthetic target val`.
    pub name: String,
    /// Problems found while scanning, one line each.
    pub notes: Vec<String>,
    /// Where a file reader's class-statistics cache lives (`t2s prepare`): root and split.
    pub stats_cache: Option<std::path::PathBuf>,
    /// A source's per-sample class counts and label areas from that cache, when it has a current
    /// entry for every sample (same reader, mapping, file sizes and times).
    pub cached_counts: Option<Vec<crate::train::rcs_counts::ImageCounts>>,
}

/// Every sample's counts from the cache at `path`, if each entry still describes its files: a
/// label rewritten or a mapping changed since `t2s prepare` makes the cache stale.
fn current_counts(reader: &dyn t2s_data::DatasetReader, path: &std::path::Path) -> Option<Vec<crate::train::rcs_counts::ImageCounts>> {
    let stats = t2s_data::class_stats::read_class_stats(path).ok()??;
    (0..reader.len())
        .map(|i| stats.current_entry(reader, i).map(|e| (e.counts.clone(), e.counts.iter().fold(e.ignored, |s, &c| s.saturating_add(c)))))
        .collect()
}

/// Opens one set of a configuration; `setting` names it in errors (e.g. `data.source`).
pub fn open_set(set: &SetSection, role: SetRole, setting: &str) -> Result<OpenedSet> {
    let labels = match role {
        SetRole::Target => LabelUse::Ignore,
        SetRole::Source | SetRole::Eval => LabelUse::Require,
    };
    let opened = match &set.reader {
        SetReader::Files(files) => {
            let kind = files.kind;
            let options = DatasetOptions { split: files.split.clone(), labels, mapping: files.mapping.clone() };
            let (reader, report) = open_dataset(kind, &files.root, &options).map_err(|e| TrainError::Usage(format!("{setting}: {e}")))?;
            let mut notes: Vec<String> = report.skipped.iter().map(|s| format!("skipped {}: {}", s.path.display(), s.reason)).collect();
            notes.extend(report.notes.iter().cloned());
            let split = reader.split().map(|s| format!(" {s}")).unwrap_or_default();
            let name = set.name.clone().unwrap_or_else(|| format!("{kind}{split}"));
            let path = t2s_data::class_stats_path(&files.root, reader.split());
            let cached_counts = if role == SetRole::Source { current_counts(reader.as_ref(), &path) } else { None };
            OpenedSet { dataset: reader, name, notes, stats_cache: Some(path), cached_counts }
        }
        SetReader::Synthetic(synth) => {
            let split = synth.split.unwrap_or(if role == SetRole::Eval { Split::Val } else { Split::Train });
            let domain = synth
                .domain
                .ok_or_else(|| TrainError::Usage(format!("{setting}: a synthetic set needs `domain = \"source\"` or `\"target\"`")))?;
            let [width, height] = synth.size.unwrap_or(crate::config::DEFAULT_SYNTHETIC_SIZE);
            let len = synth.len.unwrap_or(if split == Split::Val { SYNTH_VAL_LEN } else { SYNTH_TRAIN_LEN });
            let config = SynthConfig { domain, split, len, width, height, seed: synth.seed.unwrap_or(0) };
            let dataset = SyntheticDataset::new(config).map_err(|e| TrainError::Usage(format!("{setting}: {e}")))?;
            let name = set.name.clone().unwrap_or_else(|| format!("synthetic {domain} {split}"));
            let dataset: Box<dyn Dataset> = if role == SetRole::Target { Box::new(Unlabelled(dataset)) } else { Box::new(dataset) };
            OpenedSet { dataset, name, notes: Vec::new(), stats_cache: None, cached_counts: None }
        }
    };
    if opened.dataset.is_empty() {
        return Err(TrainError::Usage(format!("{setting}: {} holds no images", opened.name)));
    }
    Ok(opened)
}

/// A dataset with its labels hidden: the training target must not see them.
struct Unlabelled<D>(D);

impl<D: Dataset> Dataset for Unlabelled<D> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn name(&self, index: usize) -> String {
        self.0.name(index)
    }
    fn get(&self, index: usize) -> t2s_data::Result<t2s_data::Sample> {
        let mut s = self.0.get(index)?;
        s.label = None;
        Ok(s)
    }
    fn label_space(&self) -> &t2s_data::LabelSpace {
        self.0.label_space()
    }
    fn has_labels(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use t2s_data::synth::Domain;

    fn synthetic(domain: Domain) -> SetSection {
        toml::from_str::<SetSection>(&format!("kind = \"synthetic\"\ndomain = \"{domain}\"\nlen = 3\nsize = [64, 32]")).unwrap()
    }

    #[test]
    fn synthetic_sets_open_and_targets_hide_labels() {
        let src = open_set(&synthetic(Domain::Source), SetRole::Source, "data.source").unwrap();
        assert_eq!(src.dataset.len(), 3);
        assert!(src.dataset.get(0).unwrap().label.is_some());
        assert_eq!(src.name, "synthetic source train");
        let tgt = open_set(&synthetic(Domain::Target), SetRole::Target, "data.target").unwrap();
        assert!(!tgt.dataset.has_labels());
        assert!(tgt.dataset.get(2).unwrap().label.is_none());
        let val = open_set(&synthetic(Domain::Target), SetRole::Eval, "data.eval").unwrap();
        assert_eq!(val.name, "synthetic target val");
        assert_eq!(val.dataset.get(0).unwrap().image.dimensions(), (64, 32));
    }

    /// `t2s prepare`'s counts serve a source only while they describe its files: a label
    /// rewritten since is counted afresh (training used the stale counts).
    #[test]
    fn a_stale_class_statistics_cache_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("images")).unwrap();
        std::fs::create_dir_all(dir.path().join("labels")).unwrap();
        image::RgbImage::new(8, 4).save(dir.path().join("images/a.png")).unwrap();
        let label = |values: &dyn Fn(u32) -> u8| {
            image::GrayImage::from_fn(8, 4, |x, _| image::Luma([values(x)])).save(dir.path().join("labels/a.png")).unwrap()
        };
        label(&|_| 0);
        let set: SetSection = toml::from_str(&format!("kind = \"folder\"\nroot = {:?}", dir.path().display().to_string())).unwrap();
        let SetReader::Files(files) = &set.reader else { unreachable!("a folder set") };
        let options = t2s_data::DatasetOptions { split: None, labels: LabelUse::Require, mapping: None };
        let (reader, _) = t2s_data::open_dataset(files.kind, &files.root, &options).unwrap();
        t2s_data::prepare_dataset(reader.as_ref(), &Default::default(), &|_| {}).unwrap();

        let opened = open_set(&set, SetRole::Source, "data.source").unwrap();
        let counts = opened.cached_counts.expect("a current cache");
        assert_eq!((counts[0].0[0], counts[0].1), (32, 32), "32 pixels of class 0");
        // Only a source needs them.
        assert!(open_set(&set, SetRole::Eval, "data.eval").unwrap().cached_counts.is_none());
        // Half the label becomes class 1 (another file size): the cache no longer describes it.
        label(&|x| u8::from(x >= 4));
        let opened = open_set(&set, SetRole::Source, "data.source").unwrap();
        assert!(opened.cached_counts.is_none());
        let (counts, from) = crate::train::rcs_counts::class_counts(&opened, 2).unwrap();
        assert_eq!(counts[0].0, [16, 16], "{from}");
        assert!(from.starts_with("class statistics counted from 1 labels"), "{from}");
    }

    #[test]
    fn missing_folders_name_the_setting() {
        let set: SetSection = toml::from_str("kind = \"cityscapes\"\nroot = \"/nonexistent/cityscapes\"\nsplit = \"val\"").unwrap();
        let e = open_set(&set, SetRole::Eval, "data.eval").err().unwrap().to_string();
        assert!(e.contains("data.eval: /nonexistent/cityscapes/leftImg8bit/val: folder not found"), "{e}");
    }
}
