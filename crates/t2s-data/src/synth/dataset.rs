//! The synthetic benchmark as a [`Dataset`]: a configuration (serde, for the TOML run files) and
//! a dataset that renders sample `i` on demand.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{render, VAL_STREAM_BASE};
use crate::error::{DataError, Result};
use crate::label_space::LabelSpace;
use crate::sample::{Dataset, Sample};

/// Which of the two domains to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// The "game engine": flat shading, clean edges, bright daylight, saturated colours.
    #[default]
    Source,
    /// The "camera": textures, colour cast, haze, vignetting, blur, noise, shifted class
    /// colours and class distribution.
    Target,
}

impl Domain {
    /// Both domains, source first.
    pub const ALL: [Domain; 2] = [Domain::Source, Domain::Target];

    /// `"source"` or `"target"`.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Source => "source",
            Domain::Target => "target",
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Domain {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "source" => Ok(Domain::Source),
            "target" => Ok(Domain::Target),
            other => Err(format!("unknown synthetic domain `{other}` (expected `source` or `target`)")),
        }
    }
}

/// Training or validation samples; the two use disjoint random streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Streams `0, 1, 2, …`.
    #[default]
    Train,
    /// Streams `2^62, 2^62 + 1, …`.
    Val,
}

impl Split {
    /// Both splits, train first.
    pub const ALL: [Split; 2] = [Split::Train, Split::Val];

    /// `"train"` or `"val"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
        }
    }

    /// The stream of sample `index` of this split.
    pub fn stream(self, index: u64) -> u64 {
        match self {
            Split::Train => index,
            Split::Val => VAL_STREAM_BASE + index,
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Largest accepted width or height: larger images are possible but nothing needs them, and a
/// typo (an extra zero) should not allocate gigabytes.
pub const MAX_SIDE: u32 = 8192;

/// Largest accepted number of samples: 400 times GTA5's 24,966. Per-sample bookkeeping (rare
/// class counts, shuffles) would not fit in memory long before `len`'s own limit of 2^62.
pub const MAX_LEN: usize = 10_000_000;

/// Configuration of a synthetic dataset. Every field has a default, so a TOML table may give
/// only what differs:
///
/// | field | default | meaning |
/// |---|---|---|
/// | `domain` | `"source"` | `"source"` or `"target"` |
/// | `split` | `"train"` | `"train"` or `"val"` (disjoint streams) |
/// | `len` | 1000 | number of samples |
/// | `width` | 256 | image width, pixels (1..=8192) |
/// | `height` | 128 | image height, pixels (1..=8192) |
/// | `seed` | 0 | base seed; with the domain, split and index it fixes each sample |
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    /// Which domain.
    pub domain: Domain,
    /// Which split.
    pub split: Split,
    /// Number of samples.
    pub len: usize,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Base seed.
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self { domain: Domain::Source, split: Split::Train, len: 1000, width: 256, height: 128, seed: 0 }
    }
}

/// The synthetic benchmark: sample `i` is `render(domain, width, height, seed, split.stream(i))`,
/// named `<domain>_<split>_<i:06>`, always labelled.
#[derive(Debug, Clone)]
pub struct SyntheticDataset {
    config: SynthConfig,
    space: LabelSpace,
}

impl SyntheticDataset {
    /// Checks the configuration (sizes within `1..=MAX_SIDE`, `len` at most [`MAX_LEN`]).
    pub fn new(config: SynthConfig) -> Result<Self> {
        for (setting, value) in [("width", config.width), ("height", config.height)] {
            if value == 0 || value > MAX_SIDE {
                return Err(DataError::Setting {
                    setting: format!("synthetic {setting}"),
                    message: format!("{value} is not between 1 and {MAX_SIDE} pixels"),
                });
            }
        }
        if config.len > MAX_LEN || config.len as u64 >= VAL_STREAM_BASE {
            return Err(DataError::Setting {
                setting: "synthetic len".into(),
                message: format!("{} samples is more than the {MAX_LEN} a synthetic set may have", config.len),
            });
        }
        Ok(Self { config, space: LabelSpace::cityscapes() })
    }

    /// The configuration.
    pub fn config(&self) -> &SynthConfig {
        &self.config
    }
}

impl SyntheticDataset {
    fn get_check(&self, index: usize) -> Result<()> {
        if index >= self.config.len {
            return Err(DataError::Setting {
                setting: "synthetic sample index".into(),
                message: format!("{index} is out of range (the dataset has {} samples)", self.config.len),
            });
        }
        Ok(())
    }
}

impl Dataset for SyntheticDataset {
    fn len(&self) -> usize {
        self.config.len
    }

    fn name(&self, index: usize) -> String {
        format!("{}_{}_{index:06}", self.config.domain, self.config.split)
    }

    fn get(&self, index: usize) -> Result<Sample> {
        self.get_check(index)?;
        let c = &self.config;
        let mut sample = render(c.domain, c.width, c.height, c.seed, c.split.stream(index as u64));
        sample.name = self.name(index);
        Ok(sample)
    }

    fn label(&self, index: usize) -> Result<Option<image::GrayImage>> {
        self.get_check(index)?;
        let c = &self.config;
        Ok(Some(super::render_label(c.domain, c.width, c.height, c.seed, c.split.stream(index as u64))))
    }

    fn label_space(&self) -> &LabelSpace {
        &self.space
    }

    fn has_labels(&self) -> bool {
        true
    }
}
