//! `t2s train`: the training loop (architecture.md "The training step"). Data come from the
//! parallel loaders, one optimiser step per iteration, periodic logs, evaluations and atomic
//! checkpoints; `--resume` continues a run exactly. Every random draw is a function of the seed
//! and the iteration (loaders by batch index, the backend's generator re-seeded each iteration),
//! so a resumed run repeats what an uninterrupted one would have done.

pub mod checkpoint;
pub mod debug_strip;
mod grad_sum;
pub mod host_mix;
pub mod metrics_log;
pub mod rcs_counts;
pub mod run_dir;
mod source_step;
pub mod uda_step;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use t2s_model::{T2sAutodiffBackend, T2sBackend};

use burn::module::{AutodiffModule, Module};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Transaction;
use t2s_data::{AugmentConfig, Batch, CropConfig, Loader, LoaderConfig, RareClassSampler, RcsConfig, Resize, SampleOrder};
use t2s_model::Segmentor;

use crate::config::{Method, RunConfig, SetSection};
use crate::data_sets::{open_set, SetRole};
use crate::evaluate::evaluate;
use crate::t2s_term::T2sState;
use crate::{Result, TrainError};
use checkpoint::{latest_checkpoint, write_checkpoint, TrainingState};
use metrics_log::MetricsLog;
use uda_step::{uda_step, StepImages, StepOutput, UdaState};

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
    /// The reports of the last evaluation, one per evaluation set.
    pub last_eval: Vec<crate::EvalReport>,
}

/// Trains on backend `B` (an autodiff backend) as `cfg` says.
pub fn train<B: T2sAutodiffBackend>(cfg: &RunConfig, opts: &TrainOptions, device: &B::Device) -> Result<TrainSummary> {
    let method = cfg.uda.method;
    let network = cfg.network()?.ok_or_else(|| TrainError::Usage("[model]: give `preset` or a `[model.network]` table".into()))?;
    if method == Method::T2s && network.projection.is_none() {
        return Err(TrainError::Usage(
            "uda.method = \"t2s\" needs a projection head: add [model.network.projection] (presets have one)".into(),
        ));
    }
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
    let target = match (method, &cfg.data.target) {
        (Method::SourceOnly, _) => None,
        (Method::T2s, None) => {
            eprintln!("no [data.target]: domain generalisation, pseudo-targets take the style of other source images");
            None
        }
        (Method::Dacs | Method::T2s, set) => {
            let set = set.as_ref().ok_or_else(|| {
                TrainError::Usage(format!(
                    "uda.method = {method:?} adapts to a target domain: add a [data.target] table (`t2s` without one is domain generalisation)"
                ))
            })?;
            let opened = open_set(set, SetRole::Target, "data.target")?;
            for note in &opened.notes {
                eprintln!("{}: {note}", opened.name);
            }
            Some((set.clone(), opened))
        }
    };
    let evals: Vec<_> = cfg
        .data
        .eval
        .iter()
        .enumerate()
        .map(|(i, s)| open_set(s, SetRole::Eval, &format!("data.eval[{i}]")).map(|o| (s.clone(), o)))
        .collect::<Result<_>>()?;
    let source_order = if cfg.data.rcs.enabled {
        let (counts, from) = rcs_counts::class_counts(&source, network.num_classes)?;
        eprintln!("rare class sampling on {}: {from}", source.name);
        let rcs = RcsConfig { temperature: cfg.data.rcs.temperature, min_pixels: cfg.data.rcs.min_pixels };
        let sampler = RareClassSampler::new(&counts, rcs).map_err(|e| TrainError::Usage(format!("data.rcs: {e}")))?;
        let pool = sampler.effective_pool();
        eprintln!("rare class sampling: an effective pool of {pool:.0} of {} images", counts.len());
        if pool < 0.05 * counts.len() as f64 {
            // The failure this guards against is silent: the loss drops fast on a few repeated
            // images while the model generalises badly (docs/results.md, "Rare class sampling").
            eprintln!(
                "warning: rare class sampling draws most of its images from about {pool:.0} of {}; data.rcs.min_pixels = {} is probably \
                 too high for images of this size (DAFormer's 3,000 is 0.15 % of a 1914×1052 GTA5 label), or data.rcs.temperature too low",
                counts.len(),
                cfg.data.rcs.min_pixels
            );
        }
        SampleOrder::RareClass(Arc::new(sampler))
    } else {
        SampleOrder::Shuffle
    };

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
    // The frozen ImageNet network of the feature distance (DAFormer: only with pretrained weights).
    let imagenet = match (method, cfg.uda.fdist_lambda > 0.0, cfg.model.pretrained.as_deref()) {
        (Method::SourceOnly, _, _) | (_, false, _) => None,
        (_, true, None) => {
            eprintln!("uda.fdist_lambda = {} but model.pretrained is not set: the ImageNet feature distance is off", cfg.uda.fdist_lambda);
            None
        }
        (_, true, Some(p)) => Some(
            crate::load_model_from::<B::InnerBackend>(Some(network.clone()), Some(p), cfg.model.pretrained_prefix.as_deref(), device)?
                .model,
        ),
    };
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let mut state = TrainingState { iter: 0, best: None, t2s: None };
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
    let mut uda = match method {
        Method::SourceOnly => None,
        Method::Dacs | Method::T2s => {
            // The teacher shares the student's parameter ids (the EMA pairs parameters by id).
            let mut teacher = student.valid();
            if let Some(dir) = &resume_from {
                let record = recorder
                    .load(dir.join("teacher"), device)
                    .map_err(|e| TrainError::Io { path: dir.join("teacher.mpk"), message: e.to_string() })?;
                teacher = teacher.load_record(record);
            }
            let t2s = match (method, &state.t2s) {
                (Method::T2s, Some(saved)) => Some(T2sState::restore(saved, device)?),
                (Method::T2s, None) => {
                    let dim = network.projection.as_ref().map(|p| p.dim).unwrap_or_default();
                    Some(T2sState::new(&cfg.t2s, network.num_classes, dim, device))
                }
                _ => None,
            };
            Some(UdaState::<B> { teacher, t2s, imagenet })
        }
    };
    // Groups are taken after a resume's record is loaded: parameter ids are random per process.
    let mut optim = crate::GroupedOptimizer::<B>::new(&cfg.optim, &cfg.schedule, &student.param_groups());
    if let Some(dir) = &resume_from {
        optim = optim.load(dir, &student, device)?;
        eprintln!("resuming {} at iteration {}", opts.run_dir.display(), state.iter);
    }

    let crop = CropConfig::daformer(cfg.data.crop[0], cfg.data.crop[1]);
    let threads = if cfg.data.workers == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { cfg.data.workers };
    let loader_cfg = LoaderConfig {
        batch_size: cfg.data.batch_size,
        threads,
        prefetch: cfg.data.prefetch.max(1),
        seed: cfg.run.seed,
        start_batch: state.iter as u64,
    };
    let augment = AugmentConfig { resize: resize_of(&cfg.data.source), crop: Some(crop), flip_prob: cfg.data.flip_prob };
    let label_space = source.dataset.label_space().clone();
    let mut source_loader = Loader::new(Arc::from(source.dataset), augment, source_order, loader_cfg)?;
    let mut target_loader = match target {
        Some((set, opened)) => {
            // The target's crop is drawn uniformly (the class-ratio check needs labels, which a
            // target never has here, as DAFormer's target pipeline), from its own seed stream.
            let augment = AugmentConfig { resize: resize_of(&set), crop: Some(crop), flip_prob: cfg.data.flip_prob };
            let cfg_t = LoaderConfig { seed: cfg.run.seed ^ TARGET_SEED_SALT, ..loader_cfg };
            Some(Loader::new(Arc::from(opened.dataset), augment, SampleOrder::Shuffle, cfg_t)?)
        }
        None => None,
    };

    let mut log = MetricsLog::open(&opts.run_dir.join("metrics.jsonl"))?;
    let total = cfg.schedule.max_iters;
    let until = opts.until.unwrap_or(total).min(total);
    let mut last_checkpoint = None;
    let mut interrupted = false;
    let mut last_eval = Vec::new();
    // Seconds per iteration over each log interval (training only: evaluations excluded).
    let (mut clock, mut clock_iters, mut eval_secs) = (std::time::Instant::now(), 0usize, 0.0f64);
    while state.iter < until {
        let iter = state.iter;
        // Dropout and drop-path draw from the backend's generator: a function of (seed, iter).
        B::seed(device, cfg.run.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(iter as u64 + 1));
        let batch = source_loader.next_batch().ok_or_else(|| TrainError::Usage("the source loader ended".into()))??;
        let debug_now = cfg.run.debug_interval > 0 && (iter + 1) % cfg.run.debug_interval == 0;
        let step = match &mut uda {
            Some(uda) => {
                let target = match &mut target_loader {
                    Some(l) => Some(l.next_batch().ok_or_else(|| TrainError::Usage("the target loader ended".into()))??),
                    None => None,
                };
                let step = uda_step(&student, uda, &batch, target.as_ref(), cfg, iter, debug_now, device)?;
                if let Some(images) = &step.images {
                    write_debug(&opts.run_dir, iter + 1, &batch, target.as_ref(), images, &label_space)?;
                }
                step
            }
            None => {
                let (loss, losses) = source_step::source_only_loss(&student, &batch, device)?;
                StepOutput { grads: loss.backward(), losses, stats: Vec::new(), images: None, statistic: None }
            }
        };
        let grads = step.grads;
        // The optimiser's step is queued before anything is read: a read waits for all queued
        // work, so the host records the step's many small operations (a dozen per parameter
        // tensor) while the device still runs the backward pass, instead of after it with the
        // device idle. A non-finite loss still stops the run below before anything is saved: the
        // stepped weights only live in memory.
        student = optim.step(iter, student, grads);
        // The loss terms are read only now, in one transaction: one wait for the device per step
        // (StepOutput::losses).
        let (names, terms): (Vec<String>, Vec<_>) = step.losses.into_iter().unzip();
        let values = terms.into_iter().fold(Transaction::default(), |tx, t| tx.register(t)).execute();
        let losses: Vec<(String, f64)> =
            names.into_iter().zip(values).map(|(k, v)| (k, v.iter::<f64>().next().unwrap_or(f64::NAN))).collect();
        if let (Some(uda), Some(pending)) = (uda.as_mut(), step.statistic) {
            uda.update_statistic(pending)?;
        }
        let total_loss: f64 = losses.iter().map(|(_, v)| v).sum();
        if !total_loss.is_finite() {
            let last = last_checkpoint.as_ref().map(|p: &PathBuf| p.display().to_string()).unwrap_or_else(|| "none yet".into());
            return Err(TrainError::Usage(format!(
                "the loss became {total_loss} at iteration {}: {losses:?}; stopping without saving (last good checkpoint: {last}). Lower optim.lr or check the data.",
                iter + 1
            )));
        }
        state.iter = iter + 1;
        (opts.progress)(state.iter, until, &losses);
        clock_iters += 1;
        if state.iter % cfg.run.log_interval.max(1) == 0 || state.iter == until {
            let secs = (clock.elapsed().as_secs_f64() - eval_secs).max(0.0) / clock_iters as f64;
            (clock, clock_iters, eval_secs) = (std::time::Instant::now(), 0, 0.0);
            let mut rec = serde_json::json!({ "iter": state.iter, "lr": optim.lr(iter), "sec_per_iter": secs });
            for (k, v) in losses.iter().chain(&step.stats) {
                rec[k] = serde_json::json!(v);
            }
            log.write(&rec)?;
        }
        let evaluate_now = (cfg.eval.interval > 0 && state.iter % cfg.eval.interval == 0) || state.iter == total;
        if evaluate_now && !evals.is_empty() {
            let started = std::time::Instant::now();
            last_eval = run_evals(cfg, &student.valid(), device, &evals, &opts.run_dir, state.iter, &mut log)?;
            if let Some(m) = last_eval.first().and_then(|r| r.headline()) {
                if state.best.is_none_or(|(b, _)| m > b) {
                    state.best = Some((m, state.iter));
                    save_best(&student.valid(), &network, &opts.run_dir)?;
                }
            }
            eval_secs += started.elapsed().as_secs_f64();
        }
        interrupted = opts.stop.load(Ordering::SeqCst) && state.iter < until;
        let periodic = cfg.run.checkpoint_interval > 0 && state.iter % cfg.run.checkpoint_interval == 0;
        if periodic || state.iter == until || interrupted {
            state.t2s = uda.as_ref().and_then(|u| u.t2s.as_ref()).map(|t| t.save());
            let teacher = uda.as_ref().map(|u| &u.teacher);
            last_checkpoint = Some(save(&opts.run_dir, &state, cfg.run.keep_last, &student, teacher, &network, &optim, &recorder)?);
        }
        if interrupted {
            break;
        }
    }
    let checkpoint = match last_checkpoint {
        Some(c) => c,
        None => latest_checkpoint(&opts.run_dir)?.0,
    };
    Ok(TrainSummary { iter: state.iter, checkpoint, best: state.best, interrupted: interrupted || state.iter < total, last_eval })
}

/// Salt of the target loader's seed, so source and target draw independent streams.
const TARGET_SEED_SALT: u64 = 0x7461_7267_6574_0001;

/// `debug/iter_<N>.png`: source | source label | pseudo-target | target | pseudo-label | mixed
/// image | mixed label | prediction.
fn write_debug(
    run_dir: &Path,
    iter: usize,
    source: &Batch,
    target: Option<&Batch>,
    images: &StepImages,
    space: &t2s_data::LabelSpace,
) -> Result<()> {
    use debug_strip::Column;
    let (h, w) = images.size;
    let mut columns = vec![Column::Bytes(&source.raw)];
    if let Some(l) = &source.labels {
        columns.push(Column::Labels(l));
    }
    if let Some(pt) = &images.pseudo_target {
        columns.push(Column::Floats(pt));
    }
    if let (Some(target), Some((pseudo, mixed, prediction))) = (target, &images.dacs) {
        columns.extend([
            Column::Bytes(&target.raw),
            Column::Labels(pseudo),
            Column::Floats(&mixed.raw),
            Column::Labels(&mixed.labels),
            Column::Labels(prediction),
        ]);
    }
    debug_strip::write_strip(&run_dir.join("debug").join(format!("iter_{iter:06}.png")), &columns, source.len(), h, w, space)
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

#[allow(clippy::too_many_arguments)]
fn save<B: AutodiffBackend>(
    run_dir: &Path,
    state: &TrainingState,
    keep_last: usize,
    student: &Segmentor<B>,
    teacher: Option<&Segmentor<B::InnerBackend>>,
    network: &t2s_model::SegmentorConfig,
    optim: &crate::GroupedOptimizer<B>,
    recorder: &NamedMpkFileRecorder<FullPrecisionSettings>,
) -> Result<PathBuf> {
    write_checkpoint(run_dir, state, keep_last, |dir| {
        recorder
            .record(student.clone().into_record(), dir.join("student"))
            .map_err(|e| TrainError::Io { path: dir.join("student.mpk"), message: e.to_string() })?;
        t2s_model::save_t2s(&student.valid(), network, &dir.join("student.safetensors"))?;
        if let Some(teacher) = teacher {
            recorder
                .record(teacher.clone().into_record(), dir.join("teacher"))
                .map_err(|e| TrainError::Io { path: dir.join("teacher.mpk"), message: e.to_string() })?;
            t2s_model::save_t2s(teacher, network, &dir.join("teacher.safetensors"))?;
        }
        optim.save(dir)
    })
}

/// Evaluates on every evaluation set, logs and writes the reports; returns them.
fn run_evals<B: T2sBackend>(
    cfg: &RunConfig,
    model: &Segmentor<B>,
    device: &B::Device,
    evals: &[(SetSection, crate::OpenedSet)],
    run_dir: &Path,
    iter: usize,
    log: &mut MetricsLog,
) -> Result<Vec<crate::EvalReport>> {
    let mut reports = Vec::new();
    for (set, opened) in evals {
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
        reports.push(report);
    }
    Ok(reports)
}
