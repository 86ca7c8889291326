//! `t2s train`: trains as a run configuration says, with a progress bar, Ctrl-C and SIGTERM that
//! save and stop (exit status 130 / 143), and `--resume` to continue a run folder exactly.

use std::path::PathBuf;
use std::time::Instant;
use t2s_model::T2sBackend;

use anyhow::{bail, Context, Result};
use burn::backend::Autodiff;
use clap::Args;
use t2s_train::train::run_dir::run_dir_path;
use t2s_train::{RunConfig, TrainEvent, TrainOptions};

use crate::device::BackendTask;
use crate::progress::Progress;
use crate::stop_signal::stop_on_signals;

/// Prints a run's notes and warnings (above `bar`, so that it does not garble them).
pub fn show_notice(bar: &Progress, event: &TrainEvent) {
    match event {
        TrainEvent::Note(note) => bar.suspend(|| eprintln!("{note}")),
        TrainEvent::Warning(warning) => bar.suspend(|| eprintln!("warning: {warning}")),
        TrainEvent::Iteration { .. } => {}
    }
}

/// Arguments of `t2s train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Run configuration (TOML; see configs/). Not needed with --resume.
    #[arg(long, required_unless_present = "resume")]
    pub config: Option<PathBuf>,

    /// Override a configuration key (repeatable), e.g. `--set schedule.max_iters=2000`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,

    /// Continue the run in this folder from its latest checkpoint, with its saved configuration
    /// (`--set` changes it, and the change is saved in the run's config.toml for later resumes).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    pub resume: Option<PathBuf>,

    /// Stop after this many iterations (with a checkpoint); continue later with --resume.
    #[arg(long, value_name = "ITER")]
    pub until: Option<usize>,
}

/// The command, run on the selected backend (with autodiff).
pub struct Train {
    pub args: TrainArgs,
    pub command_line: String,
}

impl BackendTask for Train {
    type Output = ();

    fn run<B: T2sBackend>(self, device: B::Device) -> Result<()> {
        let a = self.args;
        let (cfg, run_dir) = match &a.resume {
            Some(dir) => {
                let path = dir.join("config.toml");
                (RunConfig::load(&path, &a.overrides).with_context(|| format!("{} is not a t2s run folder", dir.display()))?, dir.clone())
            }
            None => {
                let path = a.config.as_ref().expect("clap requires --config without --resume");
                let cfg = RunConfig::load(path, &a.overrides)?;
                // Created by the trainer once every start-up check has passed.
                let dir = run_dir_path(&cfg, path)?;
                (cfg, dir)
            }
        };
        if let Some(u) = a.until {
            if u == 0 {
                bail!("--until 0: give the number of iterations to stop after");
            }
        }
        eprintln!("run folder: {}", run_dir.display());

        let stop = stop_on_signals()?;

        let len = a.until.unwrap_or(cfg.schedule.max_iters).min(cfg.schedule.max_iters);
        let bar = Progress::new("train", len, "{spinner} train [{bar:30}] {pos}/{len} {msg} ETA {eta}");
        let started = Instant::now();
        let first = std::cell::Cell::new(None::<usize>);
        let events = |event: TrainEvent| {
            if let TrainEvent::Iteration { done, losses, .. } = event {
                let start = first.get().unwrap_or_else(|| {
                    first.set(Some(done - 1));
                    done - 1
                });
                let rate = (done - start) as f64 / started.elapsed().as_secs_f64().max(1e-9);
                let l: Vec<String> = losses.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                bar.set_message(format!("{rate:.2} it/s {}", l.join(" ")));
                bar.set_position(done as u64);
            }
            show_notice(&bar, &event);
        };
        let opts = TrainOptions {
            run_dir: run_dir.clone(),
            resume: a.resume.is_some(),
            record: Some(self.command_line.clone()),
            until: a.until,
            stop: stop.flag.clone(),
            events: &events,
        };
        let summary = t2s_train::train::<Autodiff<B>>(&cfg, &opts, &device)?;
        bar.finish_and_clear();
        eprintln!(
            "{} after {} iterations; checkpoint {}",
            if summary.interrupted { "stopped" } else { "finished" },
            summary.iter,
            summary.checkpoint.display()
        );
        for report in &summary.last_eval {
            for p in &report.miou {
                eprintln!("last evaluation, {}: {}", report.dataset, p.describe());
            }
        }
        if let Some((m, it)) = summary.best {
            let on = summary.selected_on.as_deref().map(|s| format!(" on {s}")).unwrap_or_default();
            eprintln!("best mIoU {:.2}{on} at iteration {it} (best.safetensors; eval.select_on)", 100.0 * m);
        }
        if summary.interrupted {
            eprintln!("continue with: t2s train --resume {}", run_dir.display());
        }
        if let Some(status) = stop.exit_status() {
            // Everything is written; the status tells a scheduler or script that the run was stopped.
            std::process::exit(status);
        }
        Ok(())
    }
}
