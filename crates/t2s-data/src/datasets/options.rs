//! Naming a dataset reader and its options, as the command line and TOML configurations do.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// The dataset readers, named in lowercase in configurations and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    /// GTA5 (`images/`, `labels/` palette PNGs).
    Gta5,
    /// SYNTHIA-RAND-CITYSCAPES (`RGB/`, `GT/LABELS/` 16-bit PNGs).
    Synthia,
    /// Cityscapes (`leftImg8bit/<split>/<city>/`, `gtFine/<split>/<city>/`).
    Cityscapes,
    /// BDD100K semantic segmentation (`images/10k/<split>/`, `labels/sem_seg/masks/<split>/`).
    Bdd100k,
    /// Mapillary Vistas v1.2 (`<split>/images/`, `<split>/labels/`).
    Mapillary,
    /// A custom folder dataset (`images/`, optional `labels/`, a mapping file).
    Folder,
}

impl DatasetKind {
    /// Every kind, in the order help texts list them.
    pub const ALL: [DatasetKind; 6] = [
        DatasetKind::Gta5,
        DatasetKind::Synthia,
        DatasetKind::Cityscapes,
        DatasetKind::Bdd100k,
        DatasetKind::Mapillary,
        DatasetKind::Folder,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetKind::Gta5 => "gta5",
            DatasetKind::Synthia => "synthia",
            DatasetKind::Cityscapes => "cityscapes",
            DatasetKind::Bdd100k => "bdd100k",
            DatasetKind::Mapillary => "mapillary",
            DatasetKind::Folder => "folder",
        }
    }

    /// The splits the reader knows, default first; empty for datasets without splits.
    pub fn splits(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Cityscapes => &["train", "val", "test"],
            DatasetKind::Bdd100k => &["val", "train"],
            DatasetKind::Mapillary => &["validation", "training"],
            DatasetKind::Gta5 | DatasetKind::Synthia | DatasetKind::Folder => &[],
        }
    }

    /// The split to read: the given one (Mapillary also accepts `val`/`train` for its
    /// `validation`/`training` folders), or the default; `None` for datasets without splits.
    /// Errors name the setting and the valid values.
    pub fn resolve_split(self, split: Option<&str>) -> Result<Option<String>> {
        let known = self.splits();
        match (split, known.first()) {
            (None, None) => Ok(None),
            (None, Some(default)) => Ok(Some(default.to_string())),
            (Some(s), None) => Err(DataError::Setting {
                setting: format!("split {s:?}"),
                message: format!("{} has no splits; leave the split out", self.as_str()),
            }),
            (Some(s), Some(_)) => {
                let s = match (self, s) {
                    (DatasetKind::Mapillary, "val") => "validation",
                    (DatasetKind::Mapillary, "train") => "training",
                    _ => s,
                };
                if known.contains(&s) {
                    Ok(Some(s.to_string()))
                } else {
                    Err(DataError::Setting {
                        setting: format!("split {s:?}"),
                        message: format!("{} splits are {}", self.as_str(), known.join(", ")),
                    })
                }
            }
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetKind {
    type Err = DataError;

    /// Parses a lowercase name (case-insensitively).
    fn from_str(s: &str) -> Result<Self> {
        DatasetKind::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| DataError::Setting {
            setting: format!("dataset {s:?}"),
            message: format!("known datasets are {}", DatasetKind::ALL.map(|k| k.as_str()).join(", ")),
        })
    }
}

/// Whether a reader loads labels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelUse {
    /// Load labels if the dataset's label folder exists, otherwise images only (a target set).
    #[default]
    Auto,
    /// The label folder must exist (source sets, evaluation sets).
    Require,
    /// Images only, even when labels exist (saves decoding them for target training).
    Ignore,
}

/// Reader options beyond the kind and root folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatasetOptions {
    /// Split for datasets that have them (Cityscapes: train, val, test; BDD100K: val, train;
    /// Mapillary: validation, training); `None`: the first of these.
    pub split: Option<String>,
    /// Whether to load labels.
    pub labels: LabelUse,
    /// Mapping file of a custom folder dataset (default `<root>/mapping.toml` if present, else
    /// labels are taken to be Cityscapes train ids); not allowed for other kinds.
    pub mapping: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_from_lowercase_names_in_toml_and_text() {
        #[derive(Deserialize)]
        struct Cfg {
            kind: DatasetKind,
            #[serde(default)]
            options: DatasetOptions,
        }
        for (name, kind) in [
            ("gta5", DatasetKind::Gta5),
            ("synthia", DatasetKind::Synthia),
            ("cityscapes", DatasetKind::Cityscapes),
            ("bdd100k", DatasetKind::Bdd100k),
            ("mapillary", DatasetKind::Mapillary),
            ("folder", DatasetKind::Folder),
        ] {
            let cfg: Cfg = toml::from_str(&format!("kind = \"{name}\"")).unwrap();
            assert_eq!(cfg.kind, kind);
            assert_eq!(name.parse::<DatasetKind>().unwrap(), kind);
            assert_eq!(kind.to_string(), name);
        }
        let cfg: Cfg = toml::from_str("kind = \"cityscapes\"\n[options]\nsplit = \"val\"\nlabels = \"ignore\"").unwrap();
        assert_eq!(cfg.options.split.as_deref(), Some("val"));
        assert_eq!(cfg.options.labels, LabelUse::Ignore);
        let err = "gta".parse::<DatasetKind>().unwrap_err().to_string();
        assert!(err.contains("\"gta\"") && err.contains("gta5, synthia"), "{err}");
        assert!(toml::from_str::<Cfg>("kind = \"GTA-5\"").is_err());
    }

    #[test]
    fn splits_resolve_with_defaults_and_aliases() {
        assert_eq!(DatasetKind::Cityscapes.resolve_split(None).unwrap().as_deref(), Some("train"));
        assert_eq!(DatasetKind::Cityscapes.resolve_split(Some("val")).unwrap().as_deref(), Some("val"));
        assert_eq!(DatasetKind::Mapillary.resolve_split(Some("val")).unwrap().as_deref(), Some("validation"));
        assert_eq!(DatasetKind::Bdd100k.resolve_split(None).unwrap().as_deref(), Some("val"));
        assert_eq!(DatasetKind::Gta5.resolve_split(None).unwrap(), None);
        let err = DatasetKind::Gta5.resolve_split(Some("train")).unwrap_err().to_string();
        assert!(err.contains("gta5 has no splits"), "{err}");
        let err = DatasetKind::Cityscapes.resolve_split(Some("tran")).unwrap_err().to_string();
        assert!(err.contains("\"tran\"") && err.contains("train, val, test"), "{err}");
    }
}
