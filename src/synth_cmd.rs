//! `t2s synth`: writes the built-in synthetic domain-shift benchmark to disk in a Cityscapes-like
//! layout, for looking at it or for tools that want files:
//!
//! ```text
//! <out>/leftImg8bit/{train,val}/<domain>/<domain>_<split>_<index>_leftImg8bit.png
//! <out>/gtFine/{train,val}/<domain>/<domain>_<split>_<index>_gtFine_labelTrainIds.png
//! <out>/gtFine/{train,val}/<domain>/<domain>_<split>_<index>_gtFine_color.png
//! ```
//!
//! Training itself renders samples on the fly (`t2s_data::SyntheticDataset`); the files hold the
//! same bytes, since every sample is a pure function of (seed, domain, split, index).

use std::path::PathBuf;

use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rayon::prelude::*;
use t2s_data::synth::{Domain, Split, MAX_SIDE};
use t2s_data::visualize::{colorize, save_png};
use t2s_data::{Dataset, LabelSpace, SynthConfig, SyntheticDataset};

/// Which domains to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DomainChoice {
    /// The game-engine-like source domain.
    Source,
    /// The camera-like target domain.
    Target,
    /// Both domains.
    Both,
}

/// Arguments of `t2s synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output folder (created if needed; existing files of the same names are overwritten).
    #[arg(long, visible_alias = "output")]
    pub out: PathBuf,

    /// Training samples per domain.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,

    /// Validation samples per domain [default: a fifth of --count, at least 1].
    #[arg(long)]
    pub val_count: Option<usize>,

    /// Image width in pixels.
    #[arg(long, default_value_t = 256)]
    pub width: u32,

    /// Image height in pixels.
    #[arg(long, default_value_t = 128)]
    pub height: u32,

    /// Base seed: with the domain, split and index it fixes every sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Which domains to write.
    #[arg(long, value_enum, default_value_t = DomainChoice::Both)]
    pub domain: DomainChoice,
}

/// One (domain, split) set to write and where its files go.
struct Target {
    data: SyntheticDataset,
    images: PathBuf,
    labels: PathBuf,
}

/// Runs `t2s synth`.
pub fn run(args: SynthArgs) -> Result<()> {
    for (flag, value) in [("--width", args.width), ("--height", args.height)] {
        if value == 0 || value > MAX_SIDE {
            bail!("{flag} {value}: must be between 1 and {MAX_SIDE} pixels");
        }
    }
    let val_count = args.val_count.unwrap_or((args.count / 5).max(1));
    // No train samples is a mistake; no validation samples is how `--val-count 0` skips them.
    for (flag, value, least) in [("--count", args.count, 1), ("--val-count", val_count, 0)] {
        if value < least || value > t2s_data::synth::MAX_LEN {
            bail!("{flag} {value}: must be between {least} and {} samples", t2s_data::synth::MAX_LEN);
        }
    }
    let domains: &[Domain] = match args.domain {
        DomainChoice::Source => &[Domain::Source],
        DomainChoice::Target => &[Domain::Target],
        DomainChoice::Both => &Domain::ALL,
    };
    let mut targets = Vec::new();
    for (split, len) in [(Split::Train, args.count), (Split::Val, val_count)] {
        for &domain in domains {
            let config = SynthConfig { domain, split, len, width: args.width, height: args.height, seed: args.seed };
            let data = SyntheticDataset::new(config)?;
            let images = args.out.join("leftImg8bit").join(split.name()).join(domain.name());
            let labels = args.out.join("gtFine").join(split.name()).join(domain.name());
            for dir in [&images, &labels] {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            targets.push(Target { data, images, labels });
        }
    }

    let jobs: Vec<(usize, usize)> =
        targets.iter().enumerate().flat_map(|(t, target)| (0..target.data.len()).map(move |i| (t, i))).collect();
    let bar = Progress::new("synth", jobs.len(), "{spinner} synth [{bar:30}] {pos}/{len} {per_sec} ETA {eta}");
    let space = LabelSpace::cityscapes();
    jobs.par_iter().try_for_each(|&(t, i)| -> Result<()> {
        let target = &targets[t];
        let sample = target.data.get(i)?;
        save_png(&sample.image, &target.images.join(format!("{}_leftImg8bit.png", sample.name)))?;
        let label = sample.label.as_ref().context("synthetic samples always carry labels")?;
        save_png(label, &target.labels.join(format!("{}_gtFine_labelTrainIds.png", sample.name)))?;
        let color = colorize(label.as_raw(), label.width(), label.height(), &space);
        save_png(&color, &target.labels.join(format!("{}_gtFine_color.png", sample.name)))?;
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    let names: Vec<&str> = domains.iter().map(|d| d.name()).collect();
    eprintln!(
        "wrote {} train and {val_count} val samples per domain ({}) at {}×{}, seed {}, to {}",
        args.count,
        names.join(", "),
        args.width,
        args.height,
        args.seed,
        args.out.display()
    );
    Ok(())
}
