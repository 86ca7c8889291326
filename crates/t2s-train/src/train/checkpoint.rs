//! Checkpoints: everything a run needs to continue exactly, written atomically.
//!
//! `checkpoints/iter_<N>/` holds `student.safetensors` (the t2s weight file, read by `predict` /
//! `eval` and by a resume), `teacher.safetensors` for self-training methods, the optimiser state
//! (`optimizer.safetensors`, keyed by parameter path, `crate::optimizer`) and `state.json`. Each
//! network is stored once. It is written as
//! `iter_<N>.tmp/` and renamed when complete; `checkpoints/latest` names the newest complete one. A crash or Ctrl-C at any point leaves the previous one intact.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use t2s_model::{Segmentor, SegmentorConfig};

use crate::eval_report::write_atomic;
use crate::{Result, TrainError};

/// The non-tensor training state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Iterations completed.
    pub iter: usize,
    /// Best headline mIoU so far and its iteration.
    pub best: Option<(f64, usize)>,
    /// Prototypes, re-weighting statistics and π of a `t2s` run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t2s: Option<crate::t2s_term::T2sSaved>,
}

/// The folder of the checkpoint after `iter` iterations.
pub fn checkpoint_dir(run_dir: &Path, iter: usize) -> PathBuf {
    run_dir.join("checkpoints").join(format!("iter_{iter:06}"))
}

/// Writes a checkpoint: `fill` writes the files into the temporary folder it is given; then the
/// folder is renamed into place, `latest` updated and older periodic checkpoints beyond
/// `keep_last` removed.
pub fn write_checkpoint(
    run_dir: &Path,
    state: &TrainingState,
    keep_last: usize,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let io = |path: &Path, e: std::io::Error| TrainError::Io { path: path.into(), message: e.to_string() };
    let dir = checkpoint_dir(run_dir, state.iter);
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    fill(&tmp)?;
    let json = serde_json::to_string_pretty(state).map_err(|e| TrainError::Usage(format!("cannot serialise the training state: {e}")))?;
    write_atomic(&tmp.join("state.json"), json.as_bytes())?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| io(&dir, e))?;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    write_atomic(&run_dir.join("checkpoints").join("latest"), name.as_bytes())?;
    prune(run_dir, keep_last.max(1))?;
    Ok(dir)
}

/// The newest complete checkpoint of a run and its state.
pub fn latest_checkpoint(run_dir: &Path) -> Result<(PathBuf, TrainingState)> {
    let latest = run_dir.join("checkpoints").join("latest");
    let name = std::fs::read_to_string(&latest).map_err(|e| {
        TrainError::Usage(
            super::lock::held_by_another(run_dir)
                .unwrap_or_else(|| format!("{}: no checkpoint to resume from ({e}); is this a t2s run folder?", latest.display())),
        )
    })?;
    let name = name.trim();
    // `latest` is written by the trainer; empty or naming no folder here, it was edited or damaged.
    let dir = run_dir.join("checkpoints").join(name);
    let is_name =
        Path::new(name).components().count() == 1 && Path::new(name).components().all(|c| matches!(c, std::path::Component::Normal(_)));
    if !is_name || !dir.is_dir() {
        return Err(TrainError::Usage(format!("{}: names {name:?}, not a checkpoint folder beside it", latest.display())));
    }
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| TrainError::Io { path: state_path.clone(), message: e.to_string() })?;
    let state =
        serde_json::from_str(&text).map_err(|e| TrainError::Io { path: state_path, message: format!("not a t2s training state: {e}") })?;
    Ok((dir, state))
}

/// A network's weights as a t2s weight file, `<name>.safetensors` in checkpoint folder `dir`: what
/// `predict` and `eval` read, and what a resume loads (the optimiser state is keyed by parameter
/// path, so the weights need not carry Burn's per-process parameter ids).
pub fn save_network<B: Backend>(model: &Segmentor<B>, network: &SegmentorConfig, dir: &Path, name: &str) -> Result<()> {
    Ok(t2s_model::save_t2s(model, network, &dir.join(format!("{name}.safetensors")))?)
}

/// `model` (built from `network`) with the weights of `<name>.safetensors` in checkpoint folder
/// `dir`, keeping its parameter ids. A checkpoint written before 2026-12-06 also holds
/// `<name>.mpk` (Burn's record, with the parameter ids its optimiser state is keyed by): that is
/// loaded instead, ids included.
pub fn load_network<B: Backend>(
    mut model: Segmentor<B>,
    network: &SegmentorConfig,
    dir: &Path,
    name: &str,
    device: &B::Device,
) -> Result<Segmentor<B>> {
    let legacy = dir.join(format!("{name}.mpk"));
    if legacy.is_file() {
        let record = NamedMpkFileRecorder::<FullPrecisionSettings>::new()
            .load(dir.join(name), device)
            .map_err(|e| TrainError::Io { path: legacy.clone(), message: e.to_string() })?;
        return Ok(model.load_record(record));
    }
    t2s_model::load_t2s_into(&mut model, network, &dir.join(format!("{name}.safetensors")))?;
    Ok(model)
}

/// `error`, met resuming `run_dir`, with the way out when it concerns a file of its checkpoints:
/// the other complete checkpoints there, and how to resume from one of them.
pub fn with_earlier_checkpoints(error: TrainError, run_dir: &Path) -> TrainError {
    let root = run_dir.join("checkpoints");
    if !error.to_string().contains(&root.display().to_string()) {
        return error;
    }
    let latest = std::fs::read_to_string(root.join("latest")).unwrap_or_default();
    let mut others: Vec<String> = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.extension().is_none())
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("iter_") && n != latest.trim())
        .collect();
    if others.is_empty() {
        return error;
    }
    others.sort();
    let newest = others.last().cloned().unwrap_or_default();
    TrainError::Usage(format!(
        "{error}\nother checkpoints of this run: {}; to resume from one, write its name into {} (e.g. `echo {newest} > {}`)",
        others.join(", "),
        root.join("latest").display(),
        root.join("latest").display()
    ))
}

/// Removes all but the newest `keep` `iter_*` folders (and stale `.tmp` ones).
fn prune(run_dir: &Path, keep: usize) -> Result<()> {
    let root = run_dir.join("checkpoints");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map_err(|e| TrainError::Io { path: root.clone(), message: e.to_string() })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("iter_")))
        .collect();
    dirs.sort();
    let (complete, stale): (Vec<PathBuf>, Vec<PathBuf>) = dirs.into_iter().partition(|p| p.extension().is_none());
    for p in stale.iter().chain(complete.iter().take(complete.len().saturating_sub(keep))) {
        std::fs::remove_dir_all(p).map_err(|e| TrainError::Io { path: p.clone(), message: e.to_string() })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_latest_checkpoint_points_at_the_others() {
        let run = tempfile::tempdir().unwrap();
        let root = run.path().join("checkpoints");
        for n in ["iter_000002", "iter_000004", "iter_000006.tmp"] {
            std::fs::create_dir_all(root.join(n)).unwrap();
        }
        std::fs::write(root.join("latest"), "iter_000004").unwrap();
        let damaged = root.join("iter_000004/student.safetensors");
        let e =
            with_earlier_checkpoints(TrainError::Usage(format!("{}: invalid header length", damaged.display())), run.path()).to_string();
        assert!(e.contains("other checkpoints of this run: iter_000002; to resume from one"), "{e}");
        assert!(e.contains("echo iter_000002 >"), "{e}");
        // An error about something else is left as it is.
        let other = with_earlier_checkpoints(TrainError::Usage("data.source: no such folder".into()), run.path()).to_string();
        assert_eq!(other, "data.source: no such folder");
    }

    #[test]
    fn atomic_write_latest_and_pruning() {
        let run = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(run.path().join("checkpoints")).unwrap();
        for iter in [10, 20, 30] {
            let state = TrainingState { iter, best: None, t2s: None };
            write_checkpoint(run.path(), &state, 2, |d| {
                std::fs::write(d.join("w.bin"), [iter as u8]).map_err(|e| TrainError::Usage(e.to_string()))
            })
            .unwrap();
        }
        let (dir, state) = latest_checkpoint(run.path()).unwrap();
        assert_eq!(state.iter, 30);
        assert_eq!(std::fs::read(dir.join("w.bin")).unwrap(), vec![30]);
        assert!(!checkpoint_dir(run.path(), 10).exists() && checkpoint_dir(run.path(), 20).exists());
        // A failure while filling leaves the previous checkpoint as `latest`.
        let state = TrainingState { iter: 40, best: None, t2s: None };
        assert!(write_checkpoint(run.path(), &state, 2, |_| Err(TrainError::Usage("disk full".into()))).is_err());
        assert_eq!(latest_checkpoint(run.path()).unwrap().1.iter, 30);
        assert!(latest_checkpoint(&run.path().join("nope")).is_err());
    }

    /// A resume loads the networks from their weight files: every tensor (parameters and batch
    /// norm statistics, including the last training update of the latter) comes back bit for bit,
    /// and the network computes the same.
    #[test]
    fn a_network_comes_back_from_its_weight_file_exactly() {
        use burn::backend::{Autodiff, Flex};
        use burn::module::{AutodiffModule, ModuleVisitor, Param};
        use burn::tensor::Tensor;
        type AB = Autodiff<Flex>;
        struct Collect(Vec<Vec<u32>>);
        impl<B: Backend> ModuleVisitor<B> for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                self.0.push(param.val().into_data().iter::<f32>().map(f32::to_bits).collect());
            }
        }
        // Through `valid()`, which syncs the batch norms' running statistics (a visitor alone
        // sees the value before the last training update).
        let collect = |net: &Segmentor<AB>| {
            let mut c = Collect(Vec::new());
            net.valid().visit(&mut c);
            c.0
        };
        let device = Default::default();
        let mut cfg = SegmentorConfig::preset("deeplabv2-r18").unwrap();
        cfg.projection = Some(Default::default());
        let a = cfg.init_seeded::<AB>(1, &device).unwrap();
        // A training pass moves the batch norms' running statistics away from their initial 0 and 1.
        let _ = a.forward(Tensor::<AB, 4>::random([2, 3, 64, 64], burn::tensor::Distribution::Default, &device));
        let dir = tempfile::tempdir().unwrap();
        save_network(&a, &cfg, dir.path(), "student").unwrap();
        let b = load_network(cfg.init_seeded::<AB>(2, &device).unwrap(), &cfg, dir.path(), "student", &device).unwrap();
        let (va, vb) = (collect(&a), collect(&b));
        assert_eq!(va.len(), vb.len());
        for (i, (x, y)) in va.iter().zip(&vb).enumerate() {
            assert!(x == y, "tensor {i} differs");
        }
        // The teacher, loaded into the student's inference copy, shares the student's ids (the EMA
        // blends by id), running statistics included.
        save_network(&a.valid(), &cfg, dir.path(), "teacher").unwrap();
        let teacher = load_network(b.valid(), &cfg, dir.path(), "teacher", &device).unwrap();
        let ids = |e: Vec<t2s_model::io::params::TensorEntry>| e.into_iter().map(|e| (e.path, e.id)).collect::<Vec<_>>();
        let (student_ids, teacher_ids) =
            (ids(t2s_model::io::params::inventory::<AB, _>(&b)), ids(t2s_model::io::params::inventory(&teacher)));
        let differ: Vec<&String> = student_ids.iter().zip(&teacher_ids).filter(|(s, t)| s.1 != t.1).map(|(s, _)| &s.0).collect();
        assert!(differ.is_empty(), "teacher ids differ from the student's: {differ:?}");
        let x = Tensor::<AB, 4>::random([2, 3, 64, 64], burn::tensor::Distribution::Default, &device);
        let (oa, ob) = (a.forward(x.clone()), b.forward(x));
        let emb = |o: t2s_model::SegOutput<AB>| o.embedding.unwrap().into_data().iter::<f32>().map(f32::to_bits).collect::<Vec<_>>();
        assert!(emb(oa) == emb(ob), "embeddings differ");
    }

    /// state.json holds the EMA prototypes, the re-weighting statistics and π that a resumed run
    /// continues from: every float must come back bit for bit (serde_json's default parser can
    /// be one unit in the last place off; its `float_roundtrip` feature is not).
    #[test]
    fn floats_in_the_state_survive_a_save_and_load_exactly() {
        use rand::{Rng, SeedableRng};
        use t2s_loss::{ClassStatistics, PrototypeState, ReweightStatistic};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (classes, dim) = (19, 64);
        let mut f64s = |n: usize| (0..n).map(|_| rng.random::<f64>() * 10f64.powi(rng.random_range(-12..3))).collect::<Vec<f64>>();
        let distribution = f64s(2000);
        let stats = ClassStatistics {
            statistic: ReweightStatistic::default(),
            momentum: 0.99,
            values: f64s(classes).into_iter().map(Some).collect(),
        };
        let prototypes = |rng: &mut rand_chacha::ChaCha8Rng| PrototypeState {
            momentum: 0.999,
            num_classes: classes,
            dim,
            values: (0..classes * dim).map(|_| rng.random::<f32>() - 0.5).collect(),
            seen: vec![true; classes],
        };
        let t2s =
            crate::t2s_term::T2sSaved { prototypes: prototypes(&mut rng), target_prototypes: prototypes(&mut rng), stats, distribution };
        let state = TrainingState { iter: 3, best: Some((std::f64::consts::PI * 1e-3, 2)), t2s: Some(t2s) };
        let run = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(run.path().join("checkpoints")).unwrap();
        write_checkpoint(run.path(), &state, 1, |_| Ok(())).unwrap();
        let (_, back) = latest_checkpoint(run.path()).unwrap();
        let bits = |s: &TrainingState| {
            let t = s.t2s.as_ref().unwrap();
            let f32s = t.prototypes.values.iter().chain(&t.target_prototypes.values).map(|v| v.to_bits() as u64);
            let f64s = t.distribution.iter().chain(t.stats.values.iter().flatten()).map(|v| v.to_bits());
            f32s.chain(f64s).chain([s.best.unwrap().0.to_bits()]).collect::<Vec<u64>>()
        };
        let (want, got) = (bits(&state), bits(&back));
        let off = want.iter().zip(&got).filter(|(a, b)| a != b).count();
        assert_eq!(off, 0, "{off} of {} floats changed in state.json", want.len());
        assert_eq!(back, state);
    }
}
