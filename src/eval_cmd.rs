//! `t2s eval`: evaluates weights on the evaluation sets of a run configuration and writes the
//! per-class IoU tables (JSON and Markdown) and prediction pictures.

use std::path::PathBuf;
use t2s_model::T2sBackend;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use t2s_data::visualize::{colorize, save_png};
use t2s_train::{open_set, RunConfig, SetRole};

use crate::device::BackendTask;

/// Arguments of `t2s eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Run configuration: its [model], [[data.eval]] and [eval] sections are used.
    #[arg(long)]
    pub config: PathBuf,

    /// Weights: a t2s .safetensors file (checkpoint or imported) or a PyTorch checkpoint
    /// (default: the configuration's model.pretrained).
    #[arg(long)]
    pub weights: Option<PathBuf>,

    /// Key prefix inside a PyTorch checkpoint (see `t2s predict --prefix`).
    #[arg(long)]
    pub prefix: Option<String>,

    /// Override a configuration key (repeatable), e.g. `--set eval.resize=[1024,512]`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,

    /// Output folder (default: `eval` next to the weights file, or `./eval`).
    #[arg(long)]
    pub output: Option<PathBuf>,

    /// Number of prediction pictures to write per set (default: eval.save_images).
    #[arg(long)]
    pub images: Option<usize>,
}

/// The command, run on the selected backend.
pub struct Eval(pub EvalArgs);

impl BackendTask for Eval {
    type Output = ();

    fn run<B: T2sBackend>(self, device: B::Device) -> Result<()> {
        let a = self.0;
        let config = RunConfig::load(&a.config, &a.overrides)?;
        if config.data.eval.is_empty() {
            anyhow::bail!("{}: no evaluation set; add a [[data.eval]] table (see configs/)", a.config.display());
        }
        let weights = a.weights.clone().or_else(|| config.model.pretrained.clone());
        let prefix = a.prefix.clone().or_else(|| config.model.pretrained_prefix.clone());
        let network = config.network().context("resolving [model]")?;
        let loaded =
            t2s_train::load_model_from::<B>(network, weights.as_deref(), prefix.as_deref(), &device).context("loading the network")?;
        match (&loaded.report, &weights) {
            (Some(report), _) => eprintln!("weights: {report}"),
            (None, Some(w)) => eprintln!("weights: {}", w.display()),
            (None, None) => eprintln!("warning: no weights given: evaluating a randomly initialised network"),
        }
        let output = a.output.clone().unwrap_or_else(|| match &weights {
            Some(w) => w.parent().map(|p| p.join("eval")).unwrap_or_else(|| PathBuf::from("eval")),
            None => PathBuf::from("eval"),
        });
        std::fs::create_dir_all(&output).with_context(|| format!("creating {}", output.display()))?;
        let keep = a.images.unwrap_or(config.eval.save_images);
        for (i, set) in config.data.eval.iter().enumerate() {
            let opened = open_set(set, SetRole::Eval, &format!("data.eval[{i}]"))?;
            for note in &opened.notes {
                eprintln!("{}: {note}", opened.name);
            }
            let classes = opened.dataset.label_space().len();
            if classes != loaded.config.num_classes {
                anyhow::bail!(
                    "data.eval[{i}] ({}) has {classes} classes but the network predicts {}; evaluate with a matching network",
                    opened.name,
                    loaded.config.num_classes
                );
            }
            let options = config.eval_options(set, &opened.name, classes, "given");
            let bar = ProgressBar::new(opened.dataset.len() as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} eval {msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(opened.name.clone());
            let (report, kept) =
                t2s_train::evaluate(&loaded.model, &device, opened.dataset.as_ref(), &options, keep, &|n| bar.set_position(n as u64))?;
            bar.finish_and_clear();
            let stem = format!("eval_{}", opened.name.replace([' ', '/'], "_"));
            report.write(&output, &stem)?;
            println!("{}", report.table());
            let space = opened.dataset.label_space();
            for (sample, pred) in &kept {
                let label = sample.label.as_ref().expect("evaluation samples carry labels");
                let (w, h) = label.dimensions();
                save_png(&colorize(pred, w, h, space), &output.join(format!("{}_pred.png", sample.name)))?;
                save_png(&colorize(label.as_raw(), w, h, space), &output.join(format!("{}_gt.png", sample.name)))?;
            }
            eprintln!("wrote {}/{stem}.json and .md", output.display());
        }
        Ok(())
    }
}
