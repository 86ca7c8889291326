//! What follows each iteration: the metrics line (every `run.log_interval`), the evaluations
//! (every `eval.interval` and at the end, keeping `best.safetensors`) and the checkpoints
//! (every `run.checkpoint_interval`, at the end, and when the run is asked to stop).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use t2s_model::{DeviceMemory, Segmentor, T2sAutodiffBackend, T2sBackend};

use super::checkpoint::{save_network, write_checkpoint};
use super::events::TrainOptions;
use super::metrics_log::MetricsLog;
use super::open::OpenedRun;
use crate::config::{EvalWeights, RunConfig, SetSection};
use crate::data_sets::OpenedSet;
use crate::evaluate::evaluate;
use crate::{EvalReport, Result, TrainError};

/// The numbers one iteration leaves for the log.
pub(super) struct StepLog {
    /// Named loss terms, read back.
    pub losses: Vec<(String, f64)>,
    /// Other logged numbers.
    pub stats: Vec<(String, f64)>,
    /// The device's allocator after the step (GPU backends).
    pub memory: Option<DeviceMemory>,
}

/// Whether the loop goes on after an iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    /// Asked to stop (Ctrl-C) before the end: the checkpoint is written.
    Stop,
}

/// The bookkeeping of a run across iterations.
pub(super) struct AfterStep {
    /// `None` on a data-parallel replica other than rank 0, which writes nothing.
    log: Option<MetricsLog>,
    /// Replicas in the run (logged on every metrics line).
    replicas: usize,
    /// Seconds per iteration are measured over each log interval, evaluations excluded.
    clock: Instant,
    clock_iters: usize,
    eval_secs: f64,
    /// The newest checkpoint this process wrote.
    pub last_checkpoint: Option<PathBuf>,
    /// The reports of the newest evaluation.
    pub last_eval: Vec<EvalReport>,
}

impl AfterStep {
    /// Bookkeeping into `run_dir` (appending to its `metrics.jsonl`) for a run of `replicas`
    /// replicas; a replica that does not `write` keeps no books (rank 0 does).
    pub(super) fn open(run_dir: &Path, replicas: usize, write: bool) -> Result<Self> {
        Ok(Self {
            log: if write { Some(MetricsLog::open(&run_dir.join("metrics.jsonl"))?) } else { None },
            replicas,
            clock: Instant::now(),
            clock_iters: 0,
            eval_secs: 0.0,
            last_checkpoint: None,
            last_eval: Vec::new(),
        })
    }

    /// Logs, evaluates and checkpoints as due after the iteration `step` describes (the run's
    /// state already counts it), the run stopping at `until`, or earlier when `stop` (Ctrl-C,
    /// agreed by every replica).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn after_step<B: T2sAutodiffBackend>(
        &mut self,
        cfg: &RunConfig,
        opts: &TrainOptions,
        run: &mut OpenedRun<B>,
        student: &Segmentor<B>,
        (step, stop): (&StepLog, bool),
        until: usize,
        device: &B::Device,
    ) -> Result<Flow> {
        let done = run.state.iter;
        let interrupted = stop && done < until;
        let flow = if interrupted { Flow::Stop } else { Flow::Continue };
        let replicas = self.replicas;
        if self.log.is_none() {
            return Ok(flow);
        }
        self.clock_iters += 1;
        if done.is_multiple_of(cfg.run.log_interval.max(1)) || done == until {
            let secs = (self.clock.elapsed().as_secs_f64() - self.eval_secs).max(0.0) / self.clock_iters as f64;
            (self.clock, self.clock_iters, self.eval_secs) = (Instant::now(), 0, 0.0);
            let mut rec = serde_json::json!({ "iter": done, "lr": run.optim.lr(done - 1), "sec_per_iter": secs, "replicas": replicas });
            phase(cfg, done, &mut rec);
            if let Some(m) = step.memory {
                // As mmsegmentation logs `memory`; reserved is what a card must have.
                rec["mem_mib"] = serde_json::json!(DeviceMemory::mib(m.reserved));
                rec["mem_in_use_mib"] = serde_json::json!(DeviceMemory::mib(m.in_use));
            }
            for (k, v) in step.losses.iter().chain(&step.stats) {
                rec[k] = serde_json::json!(v);
            }
            if let Some(log) = self.log.as_mut() {
                log.write(&rec)?;
            }
        }
        let evaluate_now = (cfg.eval.interval > 0 && done.is_multiple_of(cfg.eval.interval)) || done == cfg.schedule.max_iters;
        if evaluate_now && !run.evals.is_empty() {
            let started = Instant::now();
            // `eval.weights`: the EMA teacher once there is one (not in a source-only warm-up).
            let (model, weights) = match (cfg.eval.weights, run.adaptation.teacher()) {
                (EvalWeights::Teacher, Some(teacher)) => (teacher.clone(), "teacher"),
                _ => (student.valid(), "student"),
            };
            let at_precision = model.at_precision(cfg.train.precision);
            self.last_eval = self.evaluate_all(cfg, (&at_precision, weights), device, &run.evals, &opts.run_dir, done)?;
            if let Some(m) = self.last_eval.get(run.select).and_then(|r| r.headline()) {
                if run.state.best.is_none_or(|(b, _)| m > b) {
                    run.state.best = Some((m, done));
                    t2s_model::save_t2s(&model, &run.network, &opts.run_dir.join("best.safetensors"))?;
                }
            }
            self.eval_secs += started.elapsed().as_secs_f64();
        }
        let periodic = cfg.run.checkpoint_interval > 0 && done.is_multiple_of(cfg.run.checkpoint_interval);
        if periodic || done == until || interrupted {
            run.state.t2s = run.adaptation.t2s().map(|t| t.save());
            self.last_checkpoint = Some(save_checkpoint(&opts.run_dir, cfg.run.keep_last, run, student)?);
        }
        Ok(flow)
    }

    /// After `error`, a file that could not be read (a damaged image met by a loader or an
    /// evaluation): saves the iterations done since the last checkpoint, which the error would
    /// otherwise lose, and says how to continue. Other errors (a diverged loss, a replica that
    /// failed) pass unchanged, and so does this one where this replica keeps no books.
    pub(super) fn save_after_data_error<B: T2sAutodiffBackend>(
        &mut self,
        cfg: &RunConfig,
        opts: &TrainOptions,
        run: &mut OpenedRun<B>,
        student: &Segmentor<B>,
        error: TrainError,
    ) -> TrainError {
        if !matches!(error, TrainError::Data(_)) || self.log.is_none() || run.state.iter == 0 {
            return error;
        }
        run.state.t2s = run.adaptation.t2s().map(|t| t.save());
        match save_checkpoint(&opts.run_dir, cfg.run.keep_last, run, student) {
            Ok(dir) => TrainError::Usage(format!(
                "{error}\nsaved a checkpoint of iteration {} ({}): repair or remove that file, then continue with `t2s train --resume {}`",
                run.state.iter,
                dir.display(),
                opts.run_dir.display()
            )),
            Err(saving) => TrainError::Usage(format!("{error}\n(saving a checkpoint after it failed too: {saving})")),
        }
    }

    /// Evaluates `model` (the `weights` its reports name) on every evaluation set, logs and
    /// writes the reports; returns them.
    fn evaluate_all<B: T2sBackend>(
        &mut self,
        cfg: &RunConfig,
        (model, weights): (&Segmentor<B>, &str),
        device: &B::Device,
        evals: &[(SetSection, OpenedSet)],
        run_dir: &Path,
        iter: usize,
    ) -> Result<Vec<EvalReport>> {
        let mut reports = Vec::new();
        for (set, opened) in evals {
            let options = cfg.eval_options(set, &opened.name, opened.dataset.label_space().len(), weights);
            let (report, kept) = evaluate(model, device, opened.dataset.as_ref(), &options, cfg.eval.save_images, &|_| {})?;
            let dir = run_dir.join("eval");
            let stem = format!("iter_{iter:06}_{}", opened.name.replace([' ', '/'], "_"));
            std::fs::create_dir_all(&dir).map_err(|e| TrainError::Io { path: dir.clone(), message: e.to_string() })?;
            report.write(&dir, &stem)?;
            // eval.save_images pictures of this evaluation, in their own folder.
            if !kept.is_empty() {
                let pictures = dir.join(&stem);
                std::fs::create_dir_all(&pictures).map_err(|e| TrainError::Io { path: pictures.clone(), message: e.to_string() })?;
                crate::evaluate::save_kept(&kept, opened.dataset.label_space(), &pictures, "")?;
            }
            let mut rec = serde_json::json!({ "iter": iter, "eval": opened.name, "replicas": self.replicas });
            phase(cfg, iter, &mut rec);
            for p in &report.miou {
                rec[&p.name] = serde_json::json!(p.miou);
            }
            if let Some(log) = self.log.as_mut() {
                log.write(&rec)?;
            }
            reports.push(report);
        }
        Ok(reports)
    }
}

/// A run with a source-only warm-up (`uda.adapt_from`) names on each metrics line the phase that
/// trained its iterations: `source_only`, then the method.
fn phase(cfg: &RunConfig, done: usize, rec: &mut serde_json::Value) {
    if cfg.uda.adapt_from > 0 {
        rec["phase"] = serde_json::json!(cfg.uda.method_at(done - 1).name());
    }
}

/// Writes the checkpoint of the run's current iteration: the student and teacher as t2s weight
/// files, the optimiser state (keyed by parameter path) and `state.json` (architecture.md
/// "Checkpoints and resume").
fn save_checkpoint<B: T2sAutodiffBackend>(run_dir: &Path, keep_last: usize, run: &OpenedRun<B>, student: &Segmentor<B>) -> Result<PathBuf> {
    write_checkpoint(run_dir, &run.state, keep_last, |dir| {
        save_network(student, &run.network, dir, "student")?;
        if let Some(teacher) = run.adaptation.teacher() {
            save_network(teacher, &run.network, dir, "teacher")?;
        }
        run.optim.save(dir, student)
    })
}
