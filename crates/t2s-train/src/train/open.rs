//! Opening a run: the datasets and their sampler, the student (from its initialisation, the
//! pretrained weights or a checkpoint), the adaptation method's state, the optimiser and the
//! loaders. Everything that can fail on input is opened before any training time is spent.

use std::path::PathBuf;
use std::sync::Arc;

use t2s_data::{AugmentConfig, Batch, CropConfig, LabelSpace, Loader, LoaderConfig, Resize, SampleOrder};
use t2s_model::{Segmentor, SegmentorConfig, T2sAutodiffBackend};

use super::adaptation::{Adaptation, Resume};
use super::checkpoint::{latest_checkpoint, load_network, TrainingState};
use super::events::{TrainEvent, TrainOptions};
use super::host_resources;
use super::rcs_counts;
use crate::config::{RunConfig, SetSection};
use crate::data_sets::{open_set, OpenedSet, SetRole};
use crate::replicas::{draw_index, Replica};
use crate::{GroupedOptimizer, Result, TrainError};

/// Everything a run needs besides the student, ready for its first (or next) iteration.
pub(super) struct OpenedRun<B: T2sAutodiffBackend> {
    pub network: SegmentorConfig,
    pub adaptation: Adaptation<B>,
    pub optim: GroupedOptimizer<B>,
    /// Iteration, best mIoU and T2S state as of the start (or the checkpoint resumed).
    pub state: TrainingState,
    pub loaders: Loaders,
    /// The evaluation sets, in `[[data.eval]]` order.
    pub evals: Vec<(SetSection, OpenedSet)>,
    /// The evaluation set that picks `best.safetensors` (`eval.select_on`), by index.
    pub select: usize,
    /// The source's label space (for the debug pictures).
    pub label_space: LabelSpace,
}

/// The training loaders: the source's, and the target's when the method adapts to one.
pub(super) struct Loaders {
    source: Loader,
    target: Option<Loader>,
}

impl Loaders {
    /// The next source batch and, with a target loader and `with_target` (not during a
    /// source-only warm-up), the next target batch.
    pub(super) fn next(&mut self, with_target: bool) -> Result<(Batch, Option<Batch>)> {
        let source = self.source.next_batch().ok_or(TrainError::LoaderExhausted { set: "source" })??;
        let target = match &mut self.target {
            Some(l) if with_target => Some(l.next_batch().ok_or(TrainError::LoaderExhausted { set: "target" })??),
            _ => None,
        };
        Ok((source, target))
    }
}

/// The opened datasets of a run.
struct OpenedSets {
    source: OpenedSet,
    /// The target set, when the method adapts to one.
    target: Option<(SetSection, OpenedSet)>,
    evals: Vec<(SetSection, OpenedSet)>,
}

/// Opens the run `cfg` describes in `opts.run_dir` (resuming its latest checkpoint when asked).
pub(super) fn open_run<B: T2sAutodiffBackend>(
    cfg: &RunConfig,
    opts: &TrainOptions,
    device: &B::Device,
) -> Result<(OpenedRun<B>, Segmentor<B>)> {
    let network = cfg.network()?.ok_or_else(|| TrainError::Usage("[model]: give `preset` or a `[model.network]` table".into()))?;
    let precision = cfg.train.precision;
    precision.require_on::<B>(device).map_err(|why| TrainError::Usage(format!("train.precision = \"{precision}\": {why}; use \"f32\"")))?;
    if let Some(total) = host_resources::total_memory() {
        host_resources::check(cfg, total).map_err(TrainError::Usage)?;
    }
    let cores = std::thread::available_parallelism().ok().map(|n| n.get());
    if let Some(warning) = host_resources::check_workers(cfg.data.workers, cores).map_err(TrainError::Usage)? {
        (opts.events)(TrainEvent::Warning(warning));
    }
    for note in cfg.notes() {
        (opts.events)(TrainEvent::Note(note));
    }
    // Before the datasets' scan (minutes on GTA5), not after it.
    if let Some(w) = cfg.model.pretrained.as_deref() {
        crate::model_source::weight_file_exists(w, crate::Sources::RUN.weights)?;
    }
    let sets = open_sets(cfg, &network, opts.events)?;
    let select = selected_set(cfg, &sets.evals)?;
    let source_order = source_order(cfg, &sets.source, network.num_classes, opts.events)?;

    B::seed(device, cfg.run.seed);
    let (student, state, resume_dir) = load_student::<B>(cfg, &network, opts, device)?;
    let resume = resume_dir.as_deref().map(|dir| Resume { dir, state: &state });
    let adaptation = Adaptation::build(cfg, &network, &student, resume, state.iter, device)?;
    // Groups are taken after a resume's record is loaded: parameter ids are random per process.
    let mut optim = GroupedOptimizer::<B>::new(&cfg.optim, &cfg.schedule, &student.param_groups());
    if let Some(dir) = &resume_dir {
        optim = optim.load(dir, &student, device)?;
        (opts.events)(TrainEvent::Note(format!("resuming {} at iteration {}", opts.run_dir.display(), state.iter)));
    }

    let label_space = sets.source.dataset.label_space().clone();
    let loaders = open_loaders(cfg, sets.source, sets.target, source_order, state.iter, opts.replica.as_ref())?;
    let run = OpenedRun { network, adaptation, optim, state, loaders, evals: sets.evals, select, label_space };
    Ok((run, student))
}

/// Opens the source, the target (when the method adapts to one) and the evaluation sets, and
/// passes their scan notes on.
fn open_sets(cfg: &RunConfig, network: &SegmentorConfig, events: &dyn Fn(TrainEvent)) -> Result<OpenedSets> {
    let notes = |set: &OpenedSet| set.notes.iter().for_each(|note| events(TrainEvent::Note(format!("{}: {note}", set.name))));
    let source = open_set(&cfg.data.source, SetRole::Source, "data.source")?;
    notes(&source);
    crop_fits(cfg, &cfg.data.source, &source, "data.source")?;
    let classes = source.dataset.label_space().len();
    if classes != network.num_classes {
        return Err(TrainError::Usage(format!(
            "data.source ({}) has {classes} classes but the network predicts {}; set model.network.num_classes or use a matching dataset",
            source.name, network.num_classes
        )));
    }
    // `source_only` trains without the target; a self-training method without one is domain
    // generalisation (validated: only `t2s`).
    let target = match (cfg.uda.method, &cfg.data.target) {
        (crate::config::Method::SourceOnly, _) | (_, None) => None,
        (_, Some(set)) => {
            let opened = open_set(set, SetRole::Target, "data.target")?;
            notes(&opened);
            crop_fits(cfg, set, &opened, "data.target")?;
            Some((set.clone(), opened))
        }
    };
    let evals: Vec<(SetSection, OpenedSet)> = cfg
        .data
        .eval
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let opened = open_set(s, SetRole::Eval, &format!("data.eval[{i}]"))?;
            // Checked here, not at the first evaluation thousands of iterations in.
            let classes = opened.dataset.label_space().len();
            if classes != network.num_classes {
                return Err(TrainError::Usage(format!(
                    "data.eval[{i}] ({}) has {classes} classes but the network predicts {}; evaluate on a set of the training's classes",
                    opened.name, network.num_classes
                )));
            }
            Ok((s.clone(), opened))
        })
        .collect::<Result<_>>()?;
    // Not the target: its labels are never read (an unlabelled folder falls back to Cityscapes' names).
    let space = source.dataset.label_space();
    for (set, setting) in evals.iter().enumerate().map(|(i, (_, e))| (e, format!("data.eval[{i}]"))) {
        if let Some(warning) = class_order_differs(space, set.dataset.label_space()) {
            events(TrainEvent::Warning(format!(
                "{setting} ({}) and data.source ({}) name their classes differently: {warning}; train ids must mean the same class in both (check their mapping files)",
                set.name, source.name
            )));
        }
    }
    Ok(OpenedSets { source, target, evals })
}

/// Where two label spaces of the same size name a train id differently (up to case, spaces,
/// `_` and `-`: "traffic light" and "Traffic_Light" are one class): the first few such ids.
fn class_order_differs(source: &LabelSpace, other: &LabelSpace) -> Option<String> {
    let key = |name: &str| name.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect::<String>();
    if source.len() != other.len() {
        return None;
    }
    let differ: Vec<String> = (source.names.iter().zip(&other.names).enumerate())
        .filter(|(_, (a, b))| key(a) != key(b))
        .map(|(id, (a, b))| format!("train id {id} is \"{b}\" there, \"{a}\" in the source"))
        .collect();
    match differ.len() {
        0 => None,
        n if n > 3 => Some(format!("{} and {} more", differ[..3].join(", "), n - 3)),
        _ => Some(differ.join(", ")),
    }
}

/// The index of the evaluation set `eval.select_on` names (the first when it is left out).
fn selected_set(cfg: &RunConfig, evals: &[(SetSection, OpenedSet)]) -> Result<usize> {
    let Some(name) = &cfg.eval.select_on else { return Ok(0) };
    evals.iter().position(|(_, opened)| &opened.name == name).ok_or_else(|| {
        let names: Vec<String> = evals.iter().map(|(_, o)| format!("\"{}\"", o.name)).collect();
        TrainError::Usage(format!(
            "eval.select_on = \"{name}\": no evaluation set has that name; the [[data.eval]] sets are {}",
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        ))
    })
}

/// Refuses a `data.crop` larger than the set's first image (after its resize) in both sides:
/// every training crop would be mostly padding (`RunConfig::check_crop`, which checks synthetic
/// sources before anything is read).
fn crop_fits(cfg: &RunConfig, set: &SetSection, opened: &OpenedSet, setting: &str) -> Result<()> {
    if opened.dataset.is_empty() {
        return Ok(());
    }
    let first = opened.dataset.get(0)?;
    let (w, h) = first.image.dimensions();
    cfg.check_crop([w, h], set.resize, setting)
        .map_err(|message| TrainError::Usage(format!("{message} ({} is {w}×{h} before the resize)", opened.dataset.name(0))))
}

/// The source's sample order: rare class sampling (method.md §3) when on, else shuffled.
fn source_order(cfg: &RunConfig, source: &OpenedSet, num_classes: usize, events: &dyn Fn(TrainEvent)) -> Result<SampleOrder> {
    if !cfg.data.rcs.enabled {
        return Ok(SampleOrder::Shuffle);
    }
    let (sampler, notes, warning) = rcs_counts::rare_class_sampler(cfg, source, num_classes)?;
    notes.into_iter().for_each(|note| events(TrainEvent::Note(note)));
    if let Some(warning) = warning {
        events(TrainEvent::Warning(warning));
    }
    Ok(SampleOrder::RareClass(Arc::new(sampler)))
}

/// The student: initialised (and filled from `model.pretrained`), then, when resuming, given
/// the latest checkpoint's weights *and parameter ids* (the optimiser state is keyed by them).
/// Returns it with the training state and the checkpoint folder resumed from.
fn load_student<B: T2sAutodiffBackend>(
    cfg: &RunConfig,
    network: &SegmentorConfig,
    opts: &TrainOptions,
    device: &B::Device,
) -> Result<(Segmentor<B>, TrainingState, Option<PathBuf>)> {
    let loaded = crate::load_model_from::<B>(
        Some(network.clone()),
        cfg.model.pretrained.as_deref(),
        cfg.model.pretrained_prefix.as_deref(),
        cfg.run.seed,
        crate::Sources::RUN,
        device,
    )?;
    if let Some(report) = &loaded.report {
        (opts.events)(TrainEvent::Note(format!("pretrained: {report}")));
    }
    let student = loaded.model;
    if !opts.resume {
        return Ok((student, TrainingState { iter: 0, best: None, t2s: None }, None));
    }
    let (dir, saved) = latest_checkpoint(&opts.run_dir)?;
    // A checkpoint of before 2026-12-06 is loaded from Burn's record, which does not check
    // shapes (a changed network would panic, or fail at the first forward pass): asked first
    // there. Otherwise only a failed load asks, so that settings which keep every shape
    // (dropout, drop-path rate) may change on a resume.
    let legacy = dir.join("student.mpk").is_file();
    if let Some(changed) = legacy.then(|| changed_network(&dir, network)).flatten() {
        return Err(changed);
    }
    match load_network(student, network, &dir, "student", device) {
        Ok(student) => Ok((student, saved, Some(dir))),
        Err(e) => Err(changed_network(&dir, network).unwrap_or(e)),
    }
}

/// When the checkpoint in `dir` holds another network than `network` (a `--resume --set` of
/// `[model]`), the error that says so instead of a list of mismatched tensor shapes; without
/// the file's path, so that no other checkpoint is offered (they hold the same network).
fn changed_network(dir: &std::path::Path, network: &SegmentorConfig) -> Option<TrainError> {
    let held = t2s_model::read_t2s_config(&dir.join("student.safetensors")).ok().flatten()?;
    if held == *network {
        return None;
    }
    let (was, now) = (t2s_model::arch_name(&held), t2s_model::arch_name(network));
    let differs = if was == now {
        format!("a {was} with other settings than the configuration's")
    } else {
        format!("a {was}, the configuration a {now}")
    };
    Some(TrainError::Usage(format!(
        "the run's latest checkpoint holds {differs}: a resumed run keeps the network it started with (leave [model] as it was); for another network, start a new run with --config"
    )))
}

/// The loaders, starting at the batch of iteration `iter` (where a resumed run continues). The
/// target's batch of iteration `i` is its batch `i`, drawn from the end of a source-only
/// warm-up (`uda.adapt_from`) on, so that a resume on either side of the switch continues it.
/// Replica `r` of `N` takes batch `i·N + r` of each loader ([`draw_index`]).
fn open_loaders(
    cfg: &RunConfig,
    source: OpenedSet,
    target: Option<(SetSection, OpenedSet)>,
    source_order: SampleOrder,
    iter: usize,
    replica: Option<&Replica>,
) -> Result<Loaders> {
    let start_batch = draw_index(replica, iter);
    let stride = replica.map_or(1, |r| r.count as u64);
    let crop = CropConfig::daformer(cfg.data.crop[0], cfg.data.crop[1]);
    let threads = if cfg.data.workers == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) } else { cfg.data.workers };
    let loader_cfg = LoaderConfig {
        batch_size: cfg.data.batch_size,
        threads,
        prefetch: cfg.data.prefetch.max(1),
        seed: cfg.run.seed,
        start_batch,
        stride,
    };
    let augment = AugmentConfig { resize: resize_of(&cfg.data.source), crop: Some(crop), flip_prob: cfg.data.flip_prob };
    // A thread count the system refuses is the setting's fault: name it.
    let threads_err = |e: t2s_data::DataError| match e {
        t2s_data::DataError::Loader { message } => {
            TrainError::Usage(format!("data.workers = {}: {message}; lower data.workers (0: one per core)", cfg.data.workers))
        }
        e => e.into(),
    };
    let source = Loader::new(Arc::from(source.dataset), augment, source_order, loader_cfg).map_err(threads_err)?;
    let target = match target {
        Some((set, opened)) => {
            // The target's crop is drawn uniformly (the class-ratio check needs labels, which a
            // target never has here, as DAFormer's target pipeline), from its own seed stream.
            let augment = AugmentConfig { resize: resize_of(&set), crop: Some(crop), flip_prob: cfg.data.flip_prob };
            let start_batch = draw_index(replica, iter.max(cfg.uda.adapt_from));
            let cfg_t = LoaderConfig { seed: cfg.run.seed ^ TARGET_SEED_SALT, start_batch, ..loader_cfg };
            Some(Loader::new(Arc::from(opened.dataset), augment, SampleOrder::Shuffle, cfg_t).map_err(threads_err)?)
        }
        None => None,
    };
    Ok(Loaders { source, target })
}

/// Salt of the target loader's seed, so source and target draw independent streams.
const TARGET_SEED_SALT: u64 = 0x7461_7267_6574_0001;

fn resize_of(set: &SetSection) -> Resize {
    match set.resize {
        Some([long, short]) => Resize::KeepRatio { long, short },
        None => Resize::Original,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_named_differently_are_found_up_to_spelling() {
        let space = |names: &[&str]| LabelSpace { names: names.iter().map(|n| n.to_string()).collect(), colors: vec![[0; 3]; names.len()] };
        let source = space(&["road", "traffic light", "car", "bus", "sky"]);
        assert_eq!(class_order_differs(&source, &space(&["Road", "traffic_light", "CAR", "bus", "sky"])), None);
        // Another count is refused elsewhere (the network's classes).
        assert_eq!(class_order_differs(&source, &space(&["road"])), None);
        assert_eq!(
            class_order_differs(&source, &space(&["road", "traffic light", "bus", "car", "sky"])).unwrap(),
            "train id 2 is \"bus\" there, \"car\" in the source, train id 3 is \"car\" there, \"bus\" in the source"
        );
        let shuffled = class_order_differs(&source, &space(&["sky", "road", "traffic light", "car", "bus"])).unwrap();
        assert!(
            shuffled.starts_with("train id 0 is \"sky\" there, \"road\" in the source, ") && shuffled.ends_with(" and 2 more"),
            "{shuffled}"
        );
    }
}
