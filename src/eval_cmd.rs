//! `t2s eval`: evaluates weights on the evaluation sets of a run configuration and writes the
//! per-class IoU tables (JSON and Markdown) and prediction pictures.

use std::path::{Path, PathBuf};
use t2s_model::T2sBackend;

use anyhow::{Context, Result};
use clap::Args;
use t2s_train::{open_set, RunConfig, SetRole};

use crate::device::BackendTask;
use crate::progress::Progress;

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

    /// Output folder (default: `eval` next to the weights file, or `./eval`; for weights inside a
    /// run's checkpoint folder, which training may prune, the run's `eval/<checkpoint>`).
    #[arg(long)]
    pub output: Option<PathBuf>,

    /// Number of prediction pictures to write per set (default: eval.save_images).
    #[arg(long)]
    pub images: Option<usize>,

    /// Numeric format of the network's pass: f32, or bf16 (CUDA and the CPU; not wgpu, whose WGSL has no bf16).
    #[arg(long, default_value_t = t2s_model::Precision::F32)]
    pub precision: t2s_model::Precision,

    /// For an HRDA network: score the `fused` prediction (the network's), or the `detail` or
    /// `context` scale alone, to see what each contributes. Its tables and pictures are named
    /// for it (`eval_<set>_detail.json`, `<image>_pred_detail.png`), beside the fusion's.
    #[arg(long, default_value_t = t2s_model::HrdaBranch::Fused, value_name = "fused|detail|context")]
    pub hrda_output: t2s_model::HrdaBranch,
}

/// The command, run on the selected backend.
pub struct Eval(pub EvalArgs);

impl BackendTask for Eval {
    type Output = ();

    fn run<B: T2sBackend>(self, device: B::Device) -> Result<()> {
        let a = self.0;
        crate::arg_checks::output_folder(a.output.as_deref())?;
        let config = RunConfig::load(&a.config, &a.overrides)?;
        if config.data.eval.is_empty() {
            anyhow::bail!("{}: no evaluation set; add a [[data.eval]] table (see configs/)", a.config.display());
        }
        let weights = a.weights.clone().or_else(|| config.model.pretrained.clone());
        let prefix = a.prefix.clone().or_else(|| config.model.pretrained_prefix.clone());
        let network = config.network().context("resolving [model]")?;
        // --weights, or model.pretrained when it is not given.
        let sources = t2s_train::Sources {
            model: "[model] of --config",
            weights: if a.weights.is_some() { "--weights" } else { "model.pretrained" },
        };
        crate::arg_checks::prefix_selects_pytorch_keys(a.prefix.as_deref(), weights.as_deref())?;
        let loaded = t2s_train::load_model_from::<B>(network, weights.as_deref(), prefix.as_deref(), config.run.seed, sources, &device)
            .context("loading the network")?;
        match (&loaded.report, &weights) {
            (Some(report), Some(w)) => eprintln!("weights: {}: {report}", w.display()),
            _ => eprintln!("warning: no weights given: evaluating a randomly initialised network"),
        }
        let model = crate::arg_checks::for_inference(&loaded.model, a.precision, a.hrda_output, &device)?;
        let one_scale = a.hrda_output != t2s_model::HrdaBranch::Fused;
        // One scale's tables and pictures sit beside the fusion's, named for the scale.
        let suffix = if one_scale { format!("_{}", a.hrda_output) } else { String::new() };
        let output = a.output.clone().unwrap_or_else(|| default_output(weights.as_deref()));
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
            // "(given weights, …)" or "(randomly initialised weights, …)" in the table's title.
            let given = if weights.is_some() { "given" } else { "randomly initialised" };
            let label = if one_scale { format!("{given}, HRDA {} prediction alone", a.hrda_output) } else { given.into() };
            let options = config.eval_options(set, &opened.name, classes, &label);
            let bar = Progress::new(
                &format!("eval {}", opened.name),
                opened.dataset.len(),
                "{spinner} eval {msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
            );
            bar.bar().set_message(opened.name.clone());
            let (report, kept) =
                t2s_train::evaluate(&model, &device, opened.dataset.as_ref(), &options, keep, &|n| bar.set_position(n as u64))?;
            bar.finish_and_clear();
            let stem = format!("eval_{}{suffix}", opened.name.replace([' ', '/'], "_"));
            report.write(&output, &stem)?;
            println!("{}", report.table());
            t2s_train::save_kept(&kept, opened.dataset.label_space(), &output, &suffix)?;
            eprintln!("wrote {}/{stem}.json and .md", output.display());
        }
        Ok(())
    }
}

/// Where `eval` writes without `--output`: `eval/` next to the weights, except for weights in a
/// run's checkpoint folder (`<run>/checkpoints/iter_N/…`), which training prunes: there the
/// run's own `eval/iter_N/`. Without weights, `./eval`.
fn default_output(weights: Option<&Path>) -> PathBuf {
    let Some(dir) = weights.and_then(Path::parent) else { return PathBuf::from("eval") };
    match (dir.file_name(), dir.parent()) {
        (Some(checkpoint), Some(checkpoints)) if checkpoints.file_name().is_some_and(|n| n == "checkpoints") => {
            checkpoints.parent().unwrap_or(Path::new("")).join("eval").join(checkpoint)
        }
        _ => dir.join("eval"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_writes_outside_checkpoint_folders() {
        let out = |w: &str| default_output(Some(Path::new(w)));
        assert_eq!(out("runs/a/checkpoints/iter_000400/student.safetensors"), Path::new("runs/a/eval/iter_000400"));
        assert_eq!(out("runs/a/best.safetensors"), Path::new("runs/a/eval"));
        assert_eq!(out("/w/daformer_gta.pth"), Path::new("/w/eval"));
        assert_eq!(out("weights.pth"), Path::new("eval"));
        assert_eq!(default_output(None), Path::new("eval"));
    }
}
