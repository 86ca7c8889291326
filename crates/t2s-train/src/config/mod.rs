//! Run configuration: a TOML file with the sections `[model]`, `[data]`, `[uda]`, `[t2s]`,
//! `[optim]`, `[schedule]`, `[train]`, `[eval]`, `[run]`, one file each. Unknown keys are
//! rejected with their name, every field has a documented default, and `--set a.b=value`
//! overrides any key before validation.

mod data;
mod diagnose;
mod eval;
mod model;
mod optim;
mod overrides;
mod run;
mod schedule;
mod t2s;
mod train;
mod uda;
mod validate;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use data::{DataSection, FileSet, RcsSection, SetReader, SetSection, SyntheticSet, DAFORMER_MIN_FRACTION, DEFAULT_SYNTHETIC_SIZE};
pub use eval::{EvalSection, EvalWeights, Protocols};
pub use model::ModelSection;
pub use optim::{OptimSection, OptimizerKind};
use overrides::check_sets;
pub use overrides::{apply_override, sets_key};
pub use run::RunSection;
pub use schedule::ScheduleSection;
pub use t2s::{QueryDistribution, ReweightTarget, T2sSection};
pub use train::{Recompute, TrainSection};
pub use uda::{Method, StudentPasses, UdaSection};

use crate::{Result, TrainError};

/// A whole run, as resolved from a file and overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The network.
    #[serde(default)]
    pub model: ModelSection,
    /// The datasets.
    pub data: DataSection,
    /// Method and self-training.
    #[serde(default)]
    pub uda: UdaSection,
    /// T2S-DA terms.
    #[serde(default)]
    pub t2s: T2sSection,
    /// Optimiser.
    #[serde(default)]
    pub optim: OptimSection,
    /// Iterations and learning-rate schedule.
    #[serde(default)]
    pub schedule: ScheduleSection,
    /// Numeric format of the passes.
    #[serde(default)]
    pub train: TrainSection,
    /// Evaluation.
    #[serde(default)]
    pub eval: EvalSection,
    /// Seeds, output, checkpoints.
    #[serde(default)]
    pub run: RunSection,
}

impl RunConfig {
    /// Reads `path`, applies `overrides` (`section.key=value`, value in TOML syntax or a bare
    /// string), deserialises and validates. Errors name the file and the key.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TrainError::Config { path: path.to_path_buf(), message: format!("cannot read: {e}") })?;
        Self::parse(&text, overrides).map_err(|e| TrainError::Config { path: path.to_path_buf(), message: e.to_string() })
    }

    /// [`RunConfig::load`] on a string (the error message without the file name). An error in the
    /// file points at its line as written; one that an override brings in names the `--set`.
    pub fn parse(text: &str, overrides: &[String]) -> Result<Self> {
        Self::parse_text(text, overrides).map_err(TrainError::Usage)
    }

    fn parse_text(text: &str, overrides: &[String]) -> std::result::Result<Self, String> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let from_file = |e: String| diagnose::explain(&e, text, None);
        check_sets(&table).map_err(from_file)?;
        // Deserialised from the text itself, so that toml's messages quote the file's lines.
        let file_ok = match toml::from_str::<RunConfig>(text) {
            Ok(_) => true,
            Err(e) if overrides.is_empty() => return Err(from_file(e.to_string())),
            Err(_) => false,
        };
        for o in overrides {
            apply_override(&mut table, o)?;
            // The first override after which the table no longer reads is the one to name.
            if file_ok {
                let from_set = |e: String| diagnose::explain(&e, text, Some(o));
                check_sets(&table).map_err(from_set)?;
                toml::Value::Table(table.clone()).try_into::<RunConfig>().map_err(|e| from_set(e.to_string()))?;
            }
        }
        check_sets(&table).map_err(from_file)?;
        let config: RunConfig = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| from_file(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// The network `[model]` describes: `network` if given, else the preset; `None` when neither
    /// is set (then the weights file must carry its network).
    pub fn network(&self) -> Result<Option<t2s_model::SegmentorConfig>> {
        let network = match (&self.model.network, &self.model.preset) {
            (Some(n), _) => n.clone(),
            (None, Some(p)) => crate::resolve_model_config(p)?,
            (None, None) => return Ok(None),
        };
        Ok(Some(self.model.with_hrda(network)))
    }

    /// The mIoU protocols to report for a `num_classes` network: `auto` adds SYNTHIA's 16 and 13
    /// when the source is SYNTHIA (anchors' complaint 4: always say which).
    pub fn protocols(&self, num_classes: usize) -> Vec<crate::metrics::Protocol> {
        use crate::metrics::Protocol;
        let synthia = match self.eval.protocols {
            Protocols::Auto => self.data.source.file_kind() == Some(t2s_data::DatasetKind::Synthia),
            Protocols::Synthia => true,
            Protocols::Cityscapes19 => false,
        };
        if synthia && num_classes == 19 {
            vec![Protocol::all(19), Protocol::synthia16(), Protocol::synthia13()]
        } else {
            vec![Protocol::all(num_classes)]
        }
    }

    /// How to evaluate on `set` (opened under the display name `dataset`, with `num_classes`
    /// classes): `[eval]` settings, the set's own resize before `eval.resize`, the protocols.
    pub fn eval_options(&self, set: &SetSection, dataset: &str, num_classes: usize, weights: &str) -> crate::EvalOptions {
        crate::EvalOptions {
            inference: self.eval.inference,
            resize: set.resize.or(self.eval.resize),
            protocols: self.protocols(num_classes),
            dataset: dataset.into(),
            weights: weights.into(),
        }
    }

    /// Whether the contrastive term trains only the projection head at 0-based iteration `iter`
    /// (`t2s.head_warmup` iterations from the start of adaptation).
    pub fn t2s_head_warming(&self, iter: usize) -> bool {
        self.uda.method == Method::T2s && self.uda.adapting_for(iter) < self.t2s.head_warmup
    }

    /// Whether the ImageNet feature distance runs: self-training with `uda.fdist_lambda > 0` and
    /// `model.pretrained` set (DAFormer computes it only from pretrained weights; without them
    /// it is off, and [`RunConfig::notes`] says so instead of refusing the recipe's default).
    pub fn feature_distance_on(&self) -> bool {
        self.uda.method != Method::SourceOnly && self.uda.fdist_lambda > 0.0 && self.model.pretrained.is_some()
    }

    /// What a run of this configuration does differently from what its settings might suggest,
    /// one line each, for the start of a run.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.uda.method == Method::T2s && self.data.target.is_none() {
            notes.push("no [data.target]: domain generalisation, pseudo-targets take the style of other source images".into());
        }
        if self.uda.method == Method::SourceOnly && self.uda.mic {
            notes.push("uda.mic = true masks target images, and uda.method = \"source_only\" has none: MIC is off".into());
        }
        if self.uda.method == Method::SourceOnly && self.uda.adapt_from > 0 {
            notes.push(format!("uda.adapt_from = {} has nothing to switch to with uda.method = \"source_only\"", self.uda.adapt_from));
        }
        if let (Some(preset), Some(_)) = (&self.model.preset, &self.model.network) {
            notes.push(format!("model.preset = \"{preset}\" is not used: [model.network] gives the network"));
        }
        if self.uda.method != Method::SourceOnly && self.uda.fdist_lambda > 0.0 && self.model.pretrained.is_none() {
            notes.push(format!(
                "uda.fdist_lambda = {} but model.pretrained is not set: the ImageNet feature distance is off",
                self.uda.fdist_lambda
            ));
        }
        if self.schedule.warmup_iters >= self.schedule.max_iters {
            notes.push(format!(
                "schedule.warmup_iters = {} is not below schedule.max_iters = {}: the learning rate never reaches optim.lr",
                self.schedule.warmup_iters, self.schedule.max_iters
            ));
        }
        let adapting = self.schedule.max_iters.saturating_sub(self.uda.adapt_from);
        if self.uda.method == Method::T2s && self.t2s.contrastive_weight > 0.0 && self.t2s.head_warmup >= adapting {
            notes.push(format!(
                "t2s.head_warmup = {} covers all {adapting} adaptation iterations: the contrastive term never reaches the backbone",
                self.t2s.head_warmup
            ));
        }
        if self.uda.method != Method::T2s && self.t2s.target_queries > 0 {
            notes.push(format!("t2s.target_queries = {} is for uda.method = \"t2s\": not used here", self.t2s.target_queries));
        }
        if self.data.eval.is_empty() {
            notes.push("no [[data.eval]]: the run is never evaluated and writes no best.safetensors".into());
        }
        notes
    }

    /// The resolved configuration as TOML (written into the run folder).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot serialise the configuration: {e}\n"))
    }
}

#[cfg(test)]
pub(crate) mod tests;
