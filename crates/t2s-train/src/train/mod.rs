//! `t2s train`: the training loop (architecture.md "One training iteration"). It opens the run
//! ([`open`]), then for every iteration takes the batches, runs the method's step ([`step`]),
//! queues the optimiser's update, reads the loss terms back, and logs, evaluates and checkpoints
//! as due ([`after_step`]). `--resume` continues a run exactly: every random draw is a function
//! of the seed and the iteration (loaders by batch index, the backend's generator re-seeded each
//! iteration), so a resumed run repeats what an uninterrupted one would have done.

pub mod adaptation;
mod after_step;
pub mod checkpoint;
pub mod debug_strip;
pub mod events;
pub(crate) mod grad_sum;
mod host_resources;
pub mod lock;
pub mod metrics_log;
mod open;
pub mod rcs_counts;
pub mod run_dir;
pub mod step;

use std::path::Path;
use std::sync::atomic::Ordering;

use burn::tensor::backend::Backend;
use burn::tensor::Transaction;
use t2s_data::Batch;
use t2s_model::{Segmentor, T2sAutodiffBackend};

use crate::config::{Method, RunConfig};
use crate::{Result, TrainError};
pub use adaptation::{Adaptation, SelfTraining};
use after_step::{AfterStep, Flow, StepLog};
use checkpoint::latest_checkpoint;
pub use events::{TrainEvent, TrainOptions, TrainSummary};
use open::{open_run, OpenedRun};
use step::{self_training_step, source_only_step, StepBatches, StepImages, StepOutput};

/// Trains on backend `B` (an autodiff backend) as `cfg` says; as one replica of a data-parallel
/// run when `opts.replica` says so (docs/data-parallel.md): every replica opens the run, joins
/// the others, takes its own batches, and averages its gradients with theirs before each
/// optimiser step; rank 0 alone writes the run folder.
pub fn train<B: T2sAutodiffBackend>(cfg: &RunConfig, opts: &TrainOptions, device: &B::Device) -> Result<TrainSummary> {
    // A configuration built in code, not through `RunConfig::load`, is checked here.
    cfg.validate()?;
    let replica = opts.replica.filter(|r| r.count > 1);
    if opts.resume {
        let reached = resume_point(cfg, opts).map_err(|e| checkpoint::with_earlier_checkpoints(e, &opts.run_dir))?;
        if let Some(summary) = reached {
            return Ok(summary);
        }
    }
    let (mut run, mut student) = match open_run::<B>(cfg, opts, device) {
        Ok(opened) => opened,
        Err(e) if opts.resume => return Err(checkpoint::with_earlier_checkpoints(e, &opts.run_dir)),
        Err(e) => return Err(e),
    };
    if let Some(r) = &replica {
        crate::replicas::join::<B::InnerBackend>(r, device.clone())?;
        let until = opts.until.unwrap_or(cfg.schedule.max_iters).min(cfg.schedule.max_iters);
        let digests = crate::replicas::run_digests::<B, _>(cfg, &student, until)?;
        crate::replicas::check_same_run::<B::InnerBackend>(r, &digests, device)?;
    }
    (opts.events)(TrainEvent::Opened);
    let writes = replica.is_none_or(|r| r.writes());
    let _lock = match writes {
        true => Some(open_books(cfg, opts, run.state.iter)?),
        false => None,
    };
    let mut books = AfterStep::open(&opts.run_dir, replica.map_or(1, |r| r.count), writes)?;
    let total = cfg.schedule.max_iters;
    let until = opts.until.unwrap_or(total).min(total);
    let (mut interrupted, mut stopped_elsewhere) = (false, false);
    while run.state.iter < until {
        let iter = run.state.iter;
        if iter == cfg.uda.adapt_from
            && iter > 0
            && matches!(run.adaptation, Adaptation::SourceOnly)
            && cfg.uda.method != Method::SourceOnly
        {
            run.adaptation = Adaptation::build(cfg, &run.network, &student, None, iter, device)?;
            (opts.events)(TrainEvent::Note(format!(
                "iteration {iter}: source-only warm-up done (uda.adapt_from); {} from here, the teacher starting as the student",
                cfg.uda.method.name()
            )));
        }
        let step = match run_step(cfg, &mut run, &student, (&opts.run_dir, replica.as_ref(), writes), device) {
            Ok(step) => step,
            Err(e) => return Err(books.save_after_data_error(cfg, opts, &mut run, &student, e)),
        };
        let mut grads = step.grads;
        if let Some(r) = &replica {
            crate::replicas::mean_gradients::<B, _>(r, &student, &mut grads)?;
        }
        // The optimiser's step is queued before anything is read: a read waits for all queued
        // work, so the host records the step's many small operations (a dozen per parameter
        // tensor) while the device still runs the backward pass, instead of after it with the
        // device idle. A non-finite loss still stops the run below before anything is saved: the
        // stepped weights only live in memory.
        student = run.optim.step(iter, student, grads);
        if let Some(r) = &replica {
            student = crate::replicas::mean_running_stats::<B, _>(r, student)?;
        }
        let losses = read_losses(step.losses);
        if let (Some(t2s), Some(pending)) = (run.adaptation.t2s_mut(), step.statistic) {
            pending.fold_into(t2s, replica.as_ref())?;
        }
        let asked_here = opts.stop.load(Ordering::SeqCst);
        let stop = agree::<B>(replica.as_ref(), asked_here, &losses, iter, device)?;
        stopped_elsewhere = stop && !asked_here;
        check_finite(&losses, iter, books.last_checkpoint.as_deref())?;
        run.state.iter = iter + 1;
        // Asked after the losses' read, which waited for all queued work (the optimiser's update
        // included): the allocator's pages are the step's.
        let memory = B::device_memory(device);
        (opts.events)(TrainEvent::Iteration { done: run.state.iter, until, losses: &losses, memory });
        let log = StepLog { losses, stats: step.stats, memory };
        let flow = match books.after_step(cfg, opts, &mut run, &student, (&log, stop), until, device) {
            Ok(flow) => flow,
            Err(e) => return Err(books.save_after_data_error(cfg, opts, &mut run, &student, e)),
        };
        if flow == Flow::Stop {
            interrupted = true;
            break;
        }
    }
    if let Some(r) = &replica {
        // Rank 0 has written the last checkpoint when every replica gets past this.
        crate::replicas::leave::<B::InnerBackend>(r, device)?;
    }
    let checkpoint = match (books.last_checkpoint, writes) {
        (Some(c), _) => c,
        (None, true) => latest_checkpoint(&opts.run_dir)?.0,
        // Rank 0 wrote it; this process may not see the run folder (it needs to only to resume).
        (None, false) => checkpoint::checkpoint_dir(&opts.run_dir, run.state.iter),
    };
    let stopped_elsewhere = interrupted && stopped_elsewhere;
    let interrupted = interrupted || run.state.iter < total;
    let selected_on = run.evals.get(run.select).map(|(_, opened)| opened.name.clone());
    Ok(TrainSummary {
        iter: run.state.iter,
        checkpoint,
        best: run.state.best,
        selected_on,
        interrupted,
        stopped_elsewhere,
        last_eval: books.last_eval,
    })
}

/// A resume's checks against its latest checkpoint, before anything is opened (a scan of the
/// datasets can take minutes): a run does not go back, so an end below the checkpoint is refused;
/// a run already at its end has nothing to train, and its summary is returned at once.
fn resume_point(cfg: &RunConfig, opts: &TrainOptions) -> Result<Option<TrainSummary>> {
    let (dir, state) = latest_checkpoint(&opts.run_dir)?;
    let (iter, total) = (state.iter, cfg.schedule.max_iters);
    let kept = "earlier weights: the teacher.safetensors / student.safetensors of the checkpoints/iter_* the run kept";
    if total < iter {
        return Err(TrainError::Usage(format!(
            "schedule.max_iters = {total} is below iteration {iter} of the run's latest checkpoint ({}): a resumed run continues from there; give schedule.max_iters >= {iter} ({kept})",
            dir.display()
        )));
    }
    let until = opts.until.unwrap_or(total).min(total);
    if until < iter {
        return Err(TrainError::Usage(format!(
            "--until {until}: the run's latest checkpoint ({}) is at iteration {iter} already, and a resumed run continues from there; give --until above {iter} ({kept})",
            dir.display()
        )));
    }
    if until > iter {
        return Ok(None);
    }
    let why = match iter == total {
        true => " (schedule.max_iters)",
        false => " (--until)",
    };
    (opts.events)(TrainEvent::Note(format!("the run's latest checkpoint is at iteration {iter}: nothing to train{why}")));
    let summary = TrainSummary {
        iter,
        checkpoint: dir,
        best: state.best,
        selected_on: cfg.eval.select_on.clone().or_else(|| cfg.data.eval.first().and_then(|s| s.name.clone())),
        interrupted: iter < total,
        stopped_elsewhere: false,
        last_eval: Vec::new(),
    };
    Ok(Some(summary))
}

/// Rank 0's (or the only process's) run-folder bookkeeping before the first iteration: a new
/// run's files, or a resume's record and its metrics cut back to the checkpoint; and the run's
/// lock, held until training ends.
fn open_books(cfg: &RunConfig, opts: &TrainOptions, iter: usize) -> Result<lock::RunLock> {
    if let (false, Some(command_line)) = (opts.resume, &opts.record) {
        run_dir::write_run_files(&opts.run_dir, cfg, command_line)?;
    }
    let lock = lock::RunLock::acquire(&opts.run_dir, opts.events)?;
    if opts.resume {
        if let Some(command_line) = &opts.record {
            run_dir::record_resume(&opts.run_dir, cfg, command_line, iter)?;
        }
        // Records logged after the checkpoint would otherwise appear twice.
        if let Some(note) = metrics_log::cut_back(&opts.run_dir.join("metrics.jsonl"), iter)? {
            (opts.events)(TrainEvent::Note(note));
        }
        // Another replica count changes the images per iteration and every loader's draws.
        let now = opts.replica.map_or(1, |r| r.count);
        if let Some(before) = metrics_log::last_replicas(&opts.run_dir.join("metrics.jsonl")).filter(|&b| b != now) {
            (opts.events)(TrainEvent::Warning(format!(
                "this run trained on {before} replica(s) ({} images per iteration) and continues on {now} ({}): \
                 from here it differs from an uninterrupted run; resume on {before} device(s) to continue it exactly",
                before * cfg.data.batch_size,
                now * cfg.data.batch_size
            )));
        }
    }
    Ok(lock)
}

/// Whether every replica stops after 0-based `iter`: when any was asked to (Ctrl-C). A replica
/// whose own loss is finite fails when another's was not (that one reports the terms), so that
/// they all end at the same iteration. Without replicas, the local stop request.
fn agree<B: T2sAutodiffBackend>(
    replica: Option<&crate::replicas::Replica>,
    stop: bool,
    losses: &[(String, f64)],
    iter: usize,
    device: &B::Device,
) -> Result<bool> {
    let Some(r) = replica else { return Ok(stop) };
    let finite = losses.iter().map(|(_, v)| v).sum::<f64>().is_finite();
    let counts = crate::replicas::count_flags::<B::InnerBackend>(r, &[stop, !finite], device)?;
    if finite && counts[1] > 0 {
        return Err(TrainError::Replica(format!(
            "iteration {}: the loss of {} other replica(s) was not finite; their output names the terms",
            iter + 1,
            counts[1]
        )));
    }
    Ok(counts[0] > 0)
}

/// One iteration's batches and the method's step on them (forward and backward passes queued),
/// with its debug picture when one is due and this process `writes` the run folder.
fn run_step<B: T2sAutodiffBackend>(
    cfg: &RunConfig,
    run: &mut OpenedRun<B>,
    student: &Segmentor<B>,
    (run_dir, replica, writes): (&Path, Option<&crate::replicas::Replica>, bool),
    device: &B::Device,
) -> Result<StepOutput<B>> {
    let iter = run.state.iter;
    // Dropout and drop-path draw from the backend's generator: a function of (seed, iter), and
    // of the rank with replicas, which draw from a generator of their thread instead (the
    // backend's is one per process; t2s_model::nets::masks).
    let draw = crate::replicas::draw_index(replica, iter);
    let mask_seed = cfg.run.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(draw + 1);
    B::seed(device, mask_seed);
    t2s_model::seed_thread_masks(replica.map(|_| mask_seed));
    let (source, target) = run.loaders.next(cfg.uda.method_at(iter) != Method::SourceOnly)?;
    match &mut run.adaptation {
        Adaptation::SourceOnly => {
            source_only_step(student, &source, (cfg.train.precision, cfg.train.recompute), (cfg.run.seed, draw), device)
        }
        Adaptation::SelfTraining(st) => {
            let debug_now = writes && cfg.run.debug_interval > 0 && (iter + 1).is_multiple_of(cfg.run.debug_interval);
            let batches = StepBatches { source: &source, target: target.as_ref() };
            let step = self_training_step(student, st, batches, cfg, (iter, replica), debug_now, device)?;
            if let Some(images) = &step.images {
                write_debug(run_dir, iter + 1, batches, images, &run.label_space)?;
            }
            Ok(step)
        }
    }
}

/// The step's loss terms, read in one transaction: one wait for the device per step
/// (`StepOutput::losses`).
fn read_losses<B: Backend>(terms: Vec<(String, burn::tensor::Tensor<B, 1>)>) -> Vec<(String, f64)> {
    let (names, terms): (Vec<String>, Vec<_>) = terms.into_iter().unzip();
    let values = terms.into_iter().fold(Transaction::default(), |tx, t| tx.register(t)).execute();
    names.into_iter().zip(values).map(|(k, v)| (k, v.iter::<f64>().next().unwrap_or(f64::NAN))).collect()
}

/// Stops the run when the summed loss of 0-based `iter` is not finite (nothing saved after it).
fn check_finite(losses: &[(String, f64)], iter: usize, last_checkpoint: Option<&Path>) -> Result<()> {
    let total: f64 = losses.iter().map(|(_, v)| v).sum();
    if total.is_finite() {
        return Ok(());
    }
    let last_checkpoint = last_checkpoint.map(|p| p.display().to_string()).unwrap_or_else(|| "none yet".into());
    Err(TrainError::Diverged { iter: iter + 1, total, terms: format!("{losses:?}"), last_checkpoint })
}

/// `debug/iter_<N>.png`: source | source label | pseudo-target | target | pseudo-label | mixed
/// image | mixed label | prediction | (MIC) masked target.
fn write_debug(run_dir: &Path, iter: usize, batches: StepBatches, images: &StepImages, space: &t2s_data::LabelSpace) -> Result<()> {
    use debug_strip::Column;
    let source: &Batch = batches.source;
    let (h, w) = images.size;
    let mut columns = vec![Column::Bytes(&source.raw)];
    if let Some(l) = &source.labels {
        columns.push(Column::Labels(l));
    }
    if let Some(pt) = &images.pseudo_target {
        columns.push(Column::Floats(pt));
    }
    if let (Some(target), Some((pseudo, mixed, prediction))) = (batches.target, &images.dacs) {
        columns.extend([
            Column::Bytes(&target.raw),
            Column::Labels(pseudo),
            Column::Floats(&mixed.raw),
            Column::Labels(&mixed.labels),
            Column::Labels(prediction),
        ]);
    }
    if let Some(masked) = &images.masked {
        columns.push(Column::Floats(masked));
    }
    debug_strip::write_strip(&run_dir.join("debug").join(format!("iter_{iter:06}.png")), &columns, source.len(), h, w, space)
}
