//! `t2s train`: the training loop (architecture.md "The training step"). Data come from the
//! parallel loaders, one optimiser step per iteration, periodic logs, evaluations and atomic
//! checkpoints; `--resume` continues a run exactly. Every random draw is a function of the seed
//! and the iteration (loaders by batch index, the backend's generator re-seeded each iteration),
//! so a resumed run repeats what an uninterrupted one would have done.

pub mod checkpoint;
pub mod metrics_log;
pub mod run_dir;
mod source_step;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use burn::module::{AutodiffModule, Module};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use t2s_data::{AugmentConfig, CropConfig, Loader, LoaderConfig, Resize, SampleOrder};
use t2s_model::Segmentor;

use crate::config::{Method, RunConfig, SetSection};
use crate::data_sets::{open_set, SetRole};
use crate::evaluate::evaluate;
use crate::{Result, TrainError};
use checkpoint::{latest_checkpoint, write_checkpoint, TrainingState};
use metrics_log::MetricsLog;

/// How the loop is driven (from the command line).
pub struct TrainOptions<'a> {
    /// Run folder to create (from the config) or to resume.
    pub run_dir: PathBuf,
    /// Continue from the run folder's latest checkpoint.
    pub resume: bool,
    /// Stop (with a checkpoint) after this many iterations, before `schedule.max_iters`.
    pub until: Option<usize>,
    /// Set by Ctrl-C: save and stop at the end of the current iteration.
    pub stop: Arc<AtomicBool>,
    /// Called after every iteration with (iterations done, total, the main loss values).
    pub progress: &'a dyn Fn(usize, usize, &[(String, f64)]),
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Iterations completed.
    pub iter: usize,
    /// The newest checkpoint.
    pub checkpoint: PathBuf,
    /// Best headline mIoU (and its iteration).
    pub best: Option<(f64, usize)>,
    /// Whether the run stopped before `schedule.max_iters` (Ctrl-C or `until`).
    pub interrupted: bool,
}

/// Trains on backend `B` (an autodiff backend) as `cfg` says.
pub fn train<B: AutodiffBackend>(cfg: &RunConfig, opts: &TrainOptions, device: &B::Device) -> Result<TrainSummary> {
    if cfg.uda.method != Method::SourceOnly {
        return Err(TrainError::Usage(format!(
            "uda.method = {:?}: this version of `t2s train` runs `source_only`; the self-training and T2S steps are not wired into the loop yet (their parts are in t2s-train: self_training, t2s_term)",
            cfg.uda.method
        )));
    }
    let network = cfg.network()?.ok_or_else(|| TrainError::Usage("[model]: give `preset` or a `[model.network]` table".into()))?;
    // Everything that can fail on input is opened before any training time is spent.
    let source = open_set(&cfg.data.source, SetRole::Source, "data.source")?;
    for note in &source.notes {
        eprintln!("{}: {note}", source.name);
    }
    if source.dataset.label_space().len() != network.num_classes {
        return Err(TrainError::Usage(format!(
            "data.source ({}) has {} classes but the network predicts {}; set model.network.num_classes or use a matching dataset",
            source.name,
            source.dataset.label_space().len(),
            network.num_classes
        )));
    }
    let evals: Vec<_> = cfg
        .data
        .eval
        .iter()
        .enumerate()
        .map(|(i, s)| open_set(s, SetRole::Eval, &format!("data.eval[{i}]")).map(|o| (s.clone(), o)))
        .collect::<Result<_>>()?;

    B::seed(device, cfg.run.seed);
    let loaded = crate::load_model_from::<B>(
        Some(network.clone()),
        cfg.model.pretrained.as_deref(),
        cfg.model.pretrained_prefix.as_deref(),
        device,
    )?;
    if let Some(report) = &loaded.report {
        eprintln!("pretrained: {report}");
    }
    let mut student = loaded.model;
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let mut state = TrainingState { iter: 0, best: None };
    let mut resume_from = None;
    if opts.resume {
        let (dir, saved) = latest_checkpoint(&opts.run_dir)?;
        let record = recorder
            .load(dir.join("student"), device)
            .map_err(|e| TrainError::Io { path: dir.join("student.mpk"), message: e.to_string() })?;
        // Restores the weights *and* the parameter ids the optimiser state is keyed by.
        student = student.load_record(record);
        state = saved;
        resume_from = Some(dir);
    }
    // Groups are taken after a resume's record is loaded: parameter ids are random per process.
    let mut optim = crate::GroupedOptimizer::<Segmentor<B>, B>::new(&cfg.optim, &cfg.schedule, &student.param_groups());
    if let Some(dir) = &resume_from {
        optim = optim.load(dir, device)?;
        eprintln!("resuming {} at iteration {}", opts.run_dir.display(), state.iter);
    }

    let crop = CropConfig::daformer(cfg.data.crop[0], cfg.data.crop[1]);
    let augment = AugmentConfig { resize: resize_of(&cfg.data.source), crop: Some(crop), flip_prob: cfg.data.flip_prob };
    let threads = if cfg.data.workers == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { cfg.data.workers };
    let loader_cfg = LoaderConfig {
        batch_size: cfg.data.batch_size,
        threads,
        prefetch: cfg.data.prefetch.max(1),
        seed: cfg.run.seed,
        start_batch: state.iter as u64,
    };
    let mut source_loader = Loader::new(Arc::from(source.dataset), augment, SampleOrder::Shuffle, loader_cfg)?;

    let mut log = MetricsLog::open(&opts.run_dir.join("metrics.jsonl"))?;
    let total = cfg.schedule.max_iters;
    let until = opts.until.unwrap_or(total).min(total);
    let mut last_checkpoint = None;
    let mut interrupted = false;
    while state.iter < until {
        let iter = state.iter;
        // Dropout and drop-path draw from the backend's generator: a function of (seed, iter).
        B::seed(device, cfg.run.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(iter as u64 + 1));
        let batch = source_loader.next_batch().ok_or_else(|| TrainError::Usage("the source loader ended".into()))??;
        let (loss, losses) = source_step::source_only_loss(&student, &batch, device)?;
        let total_loss: f64 = losses.iter().map(|(_, v)| v).sum();
        if !total_loss.is_finite() {
            let last = last_checkpoint.as_ref().map(|p: &PathBuf| p.display().to_string()).unwrap_or_else(|| "none yet".into());
            return Err(TrainError::Usage(format!(
                "the loss became {total_loss} at iteration {}: {losses:?}; stopping without saving (last good checkpoint: {last}). Lower optim.lr or check the data.",
                iter + 1
            )));
        }
        student = optim.step(iter, student, loss.backward());
        state.iter = iter + 1;
        (opts.progress)(state.iter, until, &losses);
        if state.iter % cfg.run.log_interval.max(1) == 0 || state.iter == until {
            let mut rec = serde_json::json!({ "iter": state.iter, "lr": optim.lr(iter) });
            for (k, v) in &losses {
                rec[k] = serde_json::json!(v);
            }
            log.write(&rec)?;
        }
        let evaluate_now = (cfg.eval.interval > 0 && state.iter % cfg.eval.interval == 0) || state.iter == total;
        if evaluate_now && !evals.is_empty() {
            let miou = run_evals(cfg, &student.valid(), device, &evals, &opts.run_dir, state.iter, &mut log)?;
            if let Some(m) = miou {
                if state.best.is_none_or(|(b, _)| m > b) {
                    state.best = Some((m, state.iter));
                    save_best(&student.valid(), &network, &opts.run_dir)?;
                }
            }
        }
        interrupted = opts.stop.load(Ordering::SeqCst) && state.iter < until;
        let periodic = cfg.run.checkpoint_interval > 0 && state.iter % cfg.run.checkpoint_interval == 0;
        if periodic || state.iter == until || interrupted {
            last_checkpoint = Some(save(&opts.run_dir, &state, cfg.run.keep_last, &student, &network, &optim, &recorder)?);
        }
        if interrupted {
            break;
        }
    }
    let checkpoint = match last_checkpoint {
        Some(c) => c,
        None => latest_checkpoint(&opts.run_dir)?.0,
    };
    Ok(TrainSummary { iter: state.iter, checkpoint, best: state.best, interrupted: interrupted || state.iter < total })
}

/// `best.safetensors` in the run folder: the student at its best evaluation so far.
fn save_best<B: Backend>(model: &Segmentor<B>, network: &t2s_model::SegmentorConfig, run_dir: &Path) -> Result<()> {
    Ok(t2s_model::save_t2s(model, network, &run_dir.join("best.safetensors"))?)
}

fn resize_of(set: &SetSection) -> Resize {
    match set.resize {
        Some([long, short]) => Resize::KeepRatio { long, short },
        None => Resize::Original,
    }
}

fn save<B: AutodiffBackend>(
    run_dir: &Path,
    state: &TrainingState,
    keep_last: usize,
    student: &Segmentor<B>,
    network: &t2s_model::SegmentorConfig,
    optim: &crate::GroupedOptimizer<Segmentor<B>, B>,
    recorder: &NamedMpkFileRecorder<FullPrecisionSettings>,
) -> Result<PathBuf> {
    write_checkpoint(run_dir, state, keep_last, |dir| {
        recorder
            .record(student.clone().into_record(), dir.join("student"))
            .map_err(|e| TrainError::Io { path: dir.join("student.mpk"), message: e.to_string() })?;
        t2s_model::save_t2s(&student.valid(), network, &dir.join("student.safetensors"))?;
        optim.save(dir)
    })
}

/// Evaluates on every evaluation set, logs and writes the reports; returns the first set's
/// headline mIoU.
fn run_evals<B: Backend>(
    cfg: &RunConfig,
    model: &Segmentor<B>,
    device: &B::Device,
    evals: &[(SetSection, crate::OpenedSet)],
    run_dir: &Path,
    iter: usize,
    log: &mut MetricsLog,
) -> Result<Option<f64>> {
    let mut headline = None;
    for (i, (set, opened)) in evals.iter().enumerate() {
        let options = cfg.eval_options(set, &opened.name, opened.dataset.label_space().len(), "student");
        let (report, _) = evaluate(model, device, opened.dataset.as_ref(), &options, 0, &|_| {})?;
        let dir = run_dir.join("eval");
        std::fs::create_dir_all(&dir).map_err(|e| TrainError::Io { path: dir.clone(), message: e.to_string() })?;
        report.write(&dir, &format!("iter_{iter:06}_{}", opened.name.replace([' ', '/'], "_")))?;
        let mut rec = serde_json::json!({ "iter": iter, "eval": opened.name });
        for p in &report.miou {
            rec[&p.name] = serde_json::json!(p.miou);
        }
        log.write(&rec)?;
        if i == 0 {
            headline = report.headline();
        }
    }
    Ok(headline)
}
