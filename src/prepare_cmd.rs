//! `t2s prepare`: validates a dataset (decodes every image and label) and writes per-image class
//! pixel counts next to it (`<root>/t2s_class_stats[_<split>].json`), which rare class sampling
//! reads. A second run over unchanged files reuses their entries and decodes nothing.

use std::path::PathBuf;

use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use clap::Args;
use t2s_data::{open_dataset, prepare_dataset, DatasetKind, DatasetOptions, LabelUse, PrepareOptions};

/// Arguments of `t2s prepare`.
#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// Dataset reader: gta5, synthia, cityscapes, bdd100k, mapillary or folder (layouts in
    /// docs/datasets.md).
    pub kind: DatasetKind,

    /// The dataset's root folder.
    pub root: PathBuf,

    /// Split: cityscapes train|val|test (default train), bdd100k val|train (default val),
    /// mapillary validation|training (default validation).
    #[arg(long)]
    pub split: Option<String>,

    /// Mapping file of a folder dataset (default <root>/mapping.toml if present; without one,
    /// labels must hold Cityscapes train ids).
    #[arg(long)]
    pub mapping: Option<PathBuf>,

    /// Worker threads [default: one per core].
    #[arg(long)]
    pub jobs: Option<usize>,

    /// Decode every sample even if the statistics file has a current entry for it.
    #[arg(long)]
    pub force: bool,

    /// Where to write the statistics [default: <root>/t2s_class_stats[_<split>].json].
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs `t2s prepare`: fails (after writing what it could) if any sample cannot be read.
pub fn run(a: PrepareArgs) -> Result<()> {
    let options = DatasetOptions { split: a.split.clone(), labels: LabelUse::Auto, mapping: a.mapping.clone() };
    let (ds, scan) =
        open_dataset(a.kind, &a.root, &options).with_context(|| format!("opening the {} dataset at {}", a.kind, a.root.display()))?;
    eprint!("{scan}");
    let split = ds.split().map(|s| format!(" {s}")).unwrap_or_default();
    let labels = if ds.has_labels() { "image/label pairs" } else { "images, no labels" };
    eprintln!("{}{split}: {} {labels}, {} files skipped", a.kind, ds.len(), scan.skipped.len());

    let bar = Progress::new("prepare", ds.len(), "{spinner} prepare [{bar:30}] {pos}/{len} {per_sec} ETA {eta}");
    let prep = PrepareOptions { output: a.output.clone(), jobs: a.jobs, force: a.force };
    let report = prepare_dataset(ds.as_ref(), &prep, &|n| bar.inc(n as u64)).context("preparing the dataset")?;
    bar.finish_and_clear();

    for note in &report.notes {
        eprintln!("note: {note}");
    }
    for (name, repair) in &report.repaired {
        eprintln!("repaired {name}: {repair}");
    }
    for (name, err) in &report.failed {
        eprintln!("failed {name}: {err}");
    }
    eprintln!(
        "{} samples: {} decoded, {} unchanged since the last run, {} failed",
        report.samples,
        report.decoded,
        report.reused,
        report.failed.len()
    );
    if let (Some(stats), Some(path)) = (&report.stats, &report.output) {
        let total: u64 = stats.totals.iter().fold(stats.ignored, |s, &n| s.saturating_add(n));
        println!("{:<20} {:>16} {:>8}", "class", "pixels", "share");
        let rows = stats.classes.iter().map(String::as_str).zip(stats.totals.iter().copied()).chain([("(ignored)", stats.ignored)]);
        for (name, pixels) in rows {
            let share = if total > 0 { 100.0 * pixels as f64 / total as f64 } else { 0.0 };
            println!("{name:<20} {pixels:>16} {share:>7.3}%");
        }
        if report.written {
            eprintln!("wrote {}", path.display());
        } else {
            eprintln!("{} is up to date", path.display());
        }
    }
    if !report.failed.is_empty() {
        bail!(
            "{} of {} samples could not be read (listed above); fix or remove them and rerun (the others' statistics are kept)",
            report.failed.len(),
            report.samples
        );
    }
    Ok(())
}
