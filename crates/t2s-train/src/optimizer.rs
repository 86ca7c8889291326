//! The optimiser with DAFormer's parameter groups (method.md §3): backbone at the base learning
//! rate, heads at `head_lr_mult` × (10), no weight decay on normalisation and position-embedding
//! parameters; AdamW or SGD with momentum, every constant taken from `[optim]` (Burn's defaults
//! differ from PyTorch's: AdamW ε 1e-5 and weight decay 1e-4, SGD dampening 0.1).
//!
//! Burn's optimisers take one learning rate per step and one weight-decay setting per instance,
//! so the four groups (backbone/head × decay/no decay) are four steps per iteration over two
//! optimiser instances, each step with the gradients of its group only. Optimiser state is keyed
//! by parameter id, so the split changes nothing else.

use burn::module::{AutodiffModule, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer, Sgd, SgdConfig};
use std::path::Path;

use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use t2s_model::ParamGroups;

use crate::config::{OptimSection, OptimizerKind, ScheduleSection};
use crate::{Result, TrainError};

/// One Burn optimiser of either kind.
#[derive(Clone)]
enum Single<M: AutodiffModule<B>, B: AutodiffBackend> {
    AdamW(OptimizerAdaptor<AdamW, M, B>),
    Sgd(OptimizerAdaptor<Sgd<B::InnerBackend>, M, B>),
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> Single<M, B> {
    fn new(cfg: &OptimSection, weight_decay: f64) -> Self {
        match cfg.kind {
            OptimizerKind::Adamw => Single::AdamW(
                AdamWConfig::new()
                    .with_beta_1(cfg.betas[0] as f32)
                    .with_beta_2(cfg.betas[1] as f32)
                    .with_epsilon(cfg.eps as f32)
                    .with_weight_decay(weight_decay as f32)
                    .init(),
            ),
            OptimizerKind::Sgd => Single::Sgd(
                SgdConfig::new()
                    .with_momentum(Some(MomentumConfig { momentum: cfg.momentum, dampening: cfg.dampening, nesterov: cfg.nesterov }))
                    .with_weight_decay((weight_decay > 0.0).then_some(WeightDecayConfig { penalty: weight_decay as f32 }))
                    .init(),
            ),
        }
    }

    fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        match self {
            Single::AdamW(o) => o.step(lr, module, grads),
            Single::Sgd(o) => o.step(lr, module, grads),
        }
    }

    fn save(&self, path: &Path) -> Result<()> {
        let rec = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let r = match self {
            Single::AdamW(o) => rec.record(o.to_record(), path.to_path_buf()),
            Single::Sgd(o) => rec.record(o.to_record(), path.to_path_buf()),
        };
        r.map_err(|e| TrainError::Io { path: path.into(), message: e.to_string() })
    }

    fn load(self, path: &Path, device: &B::Device) -> Result<Self> {
        let rec = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let err =
            |e: burn::record::RecorderError| TrainError::Io { path: path.into(), message: format!("cannot read the optimiser state: {e}") };
        Ok(match self {
            Single::AdamW(o) => Single::AdamW(o.load_record(rec.load(path.to_path_buf(), device).map_err(err)?)),
            Single::Sgd(o) => Single::Sgd(o.load_record(rec.load(path.to_path_buf(), device).map_err(err)?)),
        })
    }
}

/// The grouped optimiser of a run.
#[derive(Clone)]
pub struct GroupedOptimizer<M: AutodiffModule<B>, B: AutodiffBackend> {
    decay: Single<M, B>,
    no_decay: Single<M, B>,
    /// (parameter ids, learning-rate multiplier, with weight decay)
    groups: Vec<(Vec<ParamId>, f64, bool)>,
    base_lr: f64,
    schedule: ScheduleSection,
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> GroupedOptimizer<M, B> {
    /// Builds the optimiser for a model with the given parameter groups.
    pub fn new(cfg: &OptimSection, schedule: &ScheduleSection, groups: &ParamGroups) -> Self {
        let split = |ids: &[ParamId], decay: bool| -> Vec<ParamId> {
            ids.iter().copied().filter(|id| !cfg.no_decay_on_norm || groups.no_decay.contains(id) != decay).collect()
        };
        let mut g = vec![(split(&groups.backbone, true), 1.0, true), (split(&groups.head, true), cfg.head_lr_mult, true)];
        if cfg.no_decay_on_norm {
            g.push((split(&groups.backbone, false), 1.0, false));
            g.push((split(&groups.head, false), cfg.head_lr_mult, false));
        }
        Self {
            decay: Single::new(cfg, cfg.weight_decay),
            no_decay: Single::new(cfg, 0.0),
            groups: g.into_iter().filter(|(ids, _, _)| !ids.is_empty()).collect(),
            base_lr: cfg.lr,
            schedule: schedule.clone(),
        }
    }

    /// The base learning rate at iteration `iter` (the backbone's; heads get their multiple).
    pub fn lr(&self, iter: usize) -> f64 {
        self.schedule.lr_at(iter, self.base_lr)
    }

    /// Writes the optimiser state (moments, step counts) as `<dir>/optimizer_decay.mpk` and
    /// `<dir>/optimizer_no_decay.mpk`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.decay.save(&dir.join("optimizer_decay"))?;
        self.no_decay.save(&dir.join("optimizer_no_decay"))
    }

    /// Restores the state written by [`GroupedOptimizer::save`] (the module's parameter ids must
    /// be those of the saved run, as restored by loading its module record).
    pub fn load(mut self, dir: &Path, device: &B::Device) -> Result<Self> {
        self.decay = self.decay.load(&dir.join("optimizer_decay"), device)?;
        self.no_decay = self.no_decay.load(&dir.join("optimizer_no_decay"), device)?;
        Ok(self)
    }

    /// One optimiser step at (0-based) iteration `iter` with the gradients of `module`'s loss.
    pub fn step(&mut self, iter: usize, mut module: M, mut grads: B::Gradients) -> M {
        for (ids, mult, decay) in &self.groups {
            let g = GradientsParams::from_params(&mut grads, &module, ids);
            if g.is_empty() {
                continue;
            }
            // mmcv scales the *scheduled* rate of each group: lr_group(t) = schedule(t, base·mult).
            let lr = self.schedule.lr_at(iter, self.base_lr * mult);
            module = if *decay { self.decay.step(lr, module, g) } else { self.no_decay.step(lr, module, g) };
        }
        module
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::{Module, Param};
    use burn::tensor::{Tensor, TensorData};
    use std::collections::HashSet;

    type AB = Autodiff<Flex>;

    #[derive(Module, Debug)]
    struct Two<B: burn::tensor::backend::Backend> {
        backbone_w: Param<Tensor<B, 1>>,
        head_norm: Param<Tensor<B, 1>>,
    }

    fn model() -> Two<AB> {
        let d = Default::default();
        Two {
            backbone_w: Param::from_data(TensorData::new(vec![1.0f32, -2.0], [2]), &d),
            head_norm: Param::from_data(TensorData::new(vec![0.5f32], [1]), &d),
        }
    }

    #[test]
    fn first_adamw_step_matches_pytorch_by_hand() {
        let m = model();
        let groups = ParamGroups { backbone: vec![m.backbone_w.id], head: vec![m.head_norm.id], no_decay: HashSet::from([m.head_norm.id]) };
        let cfg = OptimSection { lr: 0.1, head_lr_mult: 10.0, weight_decay: 0.01, ..OptimSection::default() };
        let schedule = ScheduleSection { max_iters: 100, warmup_iters: 0, ..ScheduleSection::default() };
        let mut opt = GroupedOptimizer::<Two<AB>, AB>::new(&cfg, &schedule, &groups);
        // loss = 3·w0 + w1 + 2·n → gradients (3, 1) and 2.
        let loss = (m.backbone_w.val() * Tensor::from_data(TensorData::new(vec![3.0f32, 1.0], [2]), &Default::default())).sum()
            + m.head_norm.val().mul_scalar(2.0).sum();
        let grads = loss.backward();
        let m = opt.step(0, m, grads);
        // PyTorch AdamW, first step: p ← p·(1 − lr·wd) − lr·g/(|g| + ε) (bias-corrected m̂ = g,
        // v̂ = g²). Backbone lr 0.1, wd 0.01: 1·0.999 − 0.1 = 0.899; −2·0.999 − 0.1 = −2.098.
        // Head norm: lr 1.0, no decay: 0.5 − 1.0 = −0.5.
        let w = m.backbone_w.val().into_data().to_vec::<f32>().unwrap();
        let n = m.head_norm.val().into_data().to_vec::<f32>().unwrap();
        assert!((w[0] - 0.899).abs() < 1e-6 && (w[1] + 2.098).abs() < 1e-6, "{w:?}");
        assert!((n[0] + 0.5).abs() < 1e-6, "{n:?}");
        assert!((opt.lr(50) - 0.05).abs() < 1e-12);
    }

    #[test]
    fn sgd_step_with_momentum_and_l2() {
        let m = model();
        let groups = ParamGroups { backbone: vec![m.backbone_w.id, m.head_norm.id], head: vec![], no_decay: HashSet::new() };
        let cfg = OptimSection { kind: OptimizerKind::Sgd, lr: 0.1, weight_decay: 0.5, ..OptimSection::default() };
        let schedule = ScheduleSection { max_iters: 100, warmup_iters: 0, ..ScheduleSection::default() };
        let mut opt = GroupedOptimizer::<Two<AB>, AB>::new(&cfg, &schedule, &groups);
        let loss = m.backbone_w.val().sum() + m.head_norm.val().sum();
        let m = opt.step(0, m, loss.backward());
        // PyTorch SGD (dampening 0), first step: buf = g + wd·p; p ← p − lr·buf.
        // w0: 1 − 0.1·(1 + 0.5) = 0.85; w1: −2 − 0.1·(1 − 1) = −2; n: 0.5 − 0.1·(1 + 0.25) = 0.375.
        let w = m.backbone_w.val().into_data().to_vec::<f32>().unwrap();
        let n = m.head_norm.val().into_data().to_vec::<f32>().unwrap();
        assert!((w[0] - 0.85).abs() < 1e-6 && (w[1] + 2.0).abs() < 1e-6 && (n[0] - 0.375).abs() < 1e-6, "{w:?} {n:?}");
    }

    #[test]
    fn saved_state_continues_exactly() {
        let step = |opt: &mut GroupedOptimizer<Two<AB>, AB>, m: Two<AB>, iter: usize| {
            let loss = (m.backbone_w.val() * m.backbone_w.val()).sum() + (m.head_norm.val() * m.head_norm.val() * m.head_norm.val()).sum();
            opt.step(iter, m, loss.backward())
        };
        let m = model();
        let groups = ParamGroups { backbone: vec![m.backbone_w.id], head: vec![m.head_norm.id], no_decay: HashSet::from([m.head_norm.id]) };
        let cfg = OptimSection { lr: 0.1, ..OptimSection::default() };
        let schedule = ScheduleSection { max_iters: 10, warmup_iters: 2, ..ScheduleSection::default() };
        let mut opt = GroupedOptimizer::<Two<AB>, AB>::new(&cfg, &schedule, &groups);
        let mut m = step(&mut opt, m, 0);
        m = step(&mut opt, m, 1);
        let dir = tempfile::tempdir().unwrap();
        opt.save(dir.path()).unwrap();
        let mut fresh = GroupedOptimizer::<Two<AB>, AB>::new(&cfg, &schedule, &groups).load(dir.path(), &Default::default()).unwrap();
        let a = step(&mut opt, m.clone(), 2);
        let b = step(&mut fresh, m, 2);
        assert_eq!(a.backbone_w.val().into_data().to_vec::<f32>().unwrap(), b.backbone_w.val().into_data().to_vec::<f32>().unwrap());
        assert_eq!(a.head_norm.val().into_data().to_vec::<f32>().unwrap(), b.head_norm.val().into_data().to_vec::<f32>().unwrap());
    }
}
