//! The grouped optimiser against hand-derived PyTorch updates and Burn's own optimisers.

use super::*;
use crate::config::OptimizerKind;
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
    let mut opt = GroupedOptimizer::<AB>::new(&cfg, &schedule, &groups);
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
    let mut opt = GroupedOptimizer::<AB>::new(&cfg, &schedule, &groups);
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
    let step = |opt: &mut GroupedOptimizer<AB>, m: Two<AB>, iter: usize| {
        let loss = (m.backbone_w.val() * m.backbone_w.val()).sum() + (m.head_norm.val() * m.head_norm.val() * m.head_norm.val()).sum();
        opt.step(iter, m, loss.backward())
    };
    let sgd = OptimSection { kind: OptimizerKind::Sgd, lr: 0.1, ..OptimSection::default() };
    // AdamW, SGD with momentum, and SGD without (no state at all: an empty file).
    for cfg in [OptimSection { lr: 0.1, ..OptimSection::default() }, sgd.clone(), OptimSection { momentum: 0.0, ..sgd }] {
        let m = model();
        let groups = ParamGroups { backbone: vec![m.backbone_w.id], head: vec![m.head_norm.id], no_decay: HashSet::from([m.head_norm.id]) };
        let schedule = ScheduleSection { max_iters: 10, warmup_iters: 2, ..ScheduleSection::default() };
        let mut opt = GroupedOptimizer::<AB>::new(&cfg, &schedule, &groups);
        let mut m = step(&mut opt, m, 0);
        m = step(&mut opt, m, 1);
        let dir = tempfile::tempdir().unwrap();
        opt.save(dir.path(), &m).unwrap();
        // A resumed process: the same values under new parameter ids (the state is matched by
        // parameter path).
        let again = Two { backbone_w: Param::from_tensor(m.backbone_w.val()), head_norm: Param::from_tensor(m.head_norm.val()) };
        assert_ne!(again.backbone_w.id, m.backbone_w.id);
        let groups = ParamGroups {
            backbone: vec![again.backbone_w.id],
            head: vec![again.head_norm.id],
            no_decay: HashSet::from([again.head_norm.id]),
        };
        let mut fresh = GroupedOptimizer::<AB>::new(&cfg, &schedule, &groups).load(dir.path(), &again, &Default::default()).unwrap();
        assert_eq!(fresh.state.len(), if cfg.momentum == 0.0 { 0 } else { 2 }, "{cfg:?}");
        let a = step(&mut opt, m, 2);
        let b = step(&mut fresh, again, 2);
        assert_eq!(flat(&a.backbone_w), flat(&b.backbone_w), "{cfg:?}");
        assert_eq!(flat(&a.head_norm), flat(&b.head_norm), "{cfg:?}");
    }
}

/// Four parameters in three groups, two of them of one size (updated side by side).
#[derive(Module, Debug)]
struct Four<B: burn::tensor::backend::Backend> {
    conv: Param<Tensor<B, 4>>,
    norm: Param<Tensor<B, 1>>,
    head: Param<Tensor<B, 2>>,
    head_bias: Param<Tensor<B, 1>>,
}

fn four() -> Four<AB> {
    let d = Default::default();
    let v = |n: usize, k: f32| (0..n).map(|i| ((i as f32 + 1.0) * k).sin()).collect::<Vec<f32>>();
    Four {
        conv: Param::from_data(TensorData::new(v(12, 0.7), [2, 1, 2, 3]), &d),
        norm: Param::from_data(TensorData::new(v(6, 1.3), [6]), &d),
        head: Param::from_data(TensorData::new(v(6, 2.1), [2, 3]), &d),
        head_bias: Param::from_data(TensorData::new(v(3, 0.4), [3]), &d),
    }
}

fn four_groups(m: &Four<AB>) -> ParamGroups {
    ParamGroups { backbone: vec![m.conv.id, m.norm.id], head: vec![m.head.id, m.head_bias.id], no_decay: HashSet::from([m.norm.id]) }
}

/// A loss whose gradients differ per element and per step.
fn four_loss(m: &Four<AB>, step: usize) -> Tensor<AB, 1> {
    let s = step as f32 + 1.0;
    (m.conv.val().reshape([12]) * m.conv.val().reshape([12]).mul_scalar(0.5 * s)).sum()
        + (m.norm.val().sin() * m.head.val().reshape([6])).sum().mul_scalar(s)
        + m.head_bias.val().exp().sum()
}

fn flat<const D: usize>(p: &Param<Tensor<AB, D>>) -> Vec<f32> {
    let n = p.shape().num_elements();
    p.val().reshape([n]).into_data().to_vec::<f32>().unwrap()
}

/// Three steps of Burn's own optimisers, one instance per group as t2s had before it had its
/// own: an independent implementation of the same updates.
fn burn_reference(cfg: &OptimSection, schedule: &ScheduleSection) -> Four<AB> {
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::momentum::MomentumConfig;
    use burn::optim::{AdamWConfig, GradientsParams, Optimizer, SgdConfig};
    type Stepper = Box<dyn FnMut(f64, Four<AB>, GradientsParams) -> Four<AB>>;
    let stepper = |wd: f64| -> Stepper {
        match cfg.kind {
            OptimizerKind::Adamw => {
                let mut o = AdamWConfig::new()
                    .with_beta_1(cfg.betas[0] as f32)
                    .with_beta_2(cfg.betas[1] as f32)
                    .with_epsilon(cfg.eps as f32)
                    .with_weight_decay(wd as f32)
                    .init();
                Box::new(move |lr, m, g| o.step(lr, m, g))
            }
            OptimizerKind::Sgd => {
                let mut o = SgdConfig::new()
                    .with_momentum(Some(MomentumConfig { momentum: cfg.momentum, dampening: cfg.dampening, nesterov: cfg.nesterov }))
                    .with_weight_decay((wd > 0.0).then_some(WeightDecayConfig { penalty: wd as f32 }))
                    .init();
                Box::new(move |lr, m, g| o.step(lr, m, g))
            }
        }
    };
    let mut m = four();
    let mut groups = [
        (vec![m.conv.id], 1.0, stepper(cfg.weight_decay)),
        (vec![m.norm.id], 1.0, stepper(0.0)),
        (vec![m.head.id, m.head_bias.id], cfg.head_lr_mult, stepper(cfg.weight_decay)),
    ];
    for step in 0..3 {
        let mut grads = four_loss(&m, step).backward();
        for (ids, mult, optimiser) in groups.iter_mut() {
            let g = GradientsParams::from_params(&mut grads, &m, ids);
            m = optimiser(schedule.lr_at(step, cfg.lr * *mult), m, g);
        }
    }
    m
}

fn three_steps(cfg: &OptimSection, schedule: &ScheduleSection) -> Four<AB> {
    let mut m = four();
    let mut opt = GroupedOptimizer::<AB>::new(cfg, schedule, &four_groups(&m));
    for step in 0..3 {
        let grads = four_loss(&m, step).backward();
        m = opt.step(step, m, grads);
    }
    m
}

fn assert_same_model(a: &Four<AB>, b: &Four<AB>, tol: f32) {
    for (x, y) in [
        (flat(&a.conv), flat(&b.conv)),
        (flat(&a.norm), flat(&b.norm)),
        (flat(&a.head), flat(&b.head)),
        (flat(&a.head_bias), flat(&b.head_bias)),
    ] {
        for (u, v) in x.iter().zip(&y) {
            assert!((u - v).abs() <= tol * v.abs().max(1.0), "{x:?} vs {y:?}");
        }
    }
}

#[test]
fn three_grouped_steps_match_burns_adamw_and_sgd() {
    let schedule = ScheduleSection { max_iters: 10, warmup_iters: 2, ..ScheduleSection::default() };
    let adamw = OptimSection { lr: 0.05, weight_decay: 0.1, ..OptimSection::default() };
    // Burn's AdamW divides by √v̂ + ε where PyTorch divides by √v/√(1 − β2ᵗ) + ε: equal up to rounding.
    assert_same_model(&three_steps(&adamw, &schedule), &burn_reference(&adamw, &schedule), 1e-5);
    let sgd =
        OptimSection { kind: OptimizerKind::Sgd, lr: 0.05, weight_decay: 0.1, momentum: 0.9, dampening: 0.2, ..OptimSection::default() };
    assert_same_model(&three_steps(&sgd, &schedule), &burn_reference(&sgd, &schedule), 1e-5);
    let nesterov = OptimSection { nesterov: true, dampening: 0.0, ..sgd };
    assert_same_model(&three_steps(&nesterov, &schedule), &burn_reference(&nesterov, &schedule), 1e-5);
    // And the update did something.
    assert!((flat(&three_steps(&adamw, &schedule).conv)[0] - flat(&four().conv)[0]).abs() > 1e-3);
}

#[test]
fn a_parameter_without_a_gradient_keeps_its_value_and_state() {
    let m = model();
    let groups = ParamGroups { backbone: vec![m.backbone_w.id, m.head_norm.id], head: vec![], no_decay: HashSet::new() };
    let cfg = OptimSection { lr: 0.1, weight_decay: 0.0, ..OptimSection::default() };
    let schedule = ScheduleSection { max_iters: 100, warmup_iters: 0, ..ScheduleSection::default() };
    let mut opt = GroupedOptimizer::<AB>::new(&cfg, &schedule, &groups);
    let m = opt.step(0, m.clone(), m.backbone_w.val().sum().backward());
    assert_eq!(flat(&m.head_norm), vec![0.5]);
    assert!(!opt.state.contains_key(&m.head_norm.id));
    // Its first update later is a first AdamW update (t = 1): p − lr·g/(|g| + ε) = 0.5 + 0.1
    // (at iteration 0's rate again, to keep lr 0.1).
    let m = opt.step(0, m.clone(), m.head_norm.val().mul_scalar(-3.0).sum().backward());
    assert!((flat(&m.head_norm)[0] - 0.6).abs() < 1e-6, "{:?}", flat(&m.head_norm));
    assert!(matches!(opt.state[&m.head_norm.id], Slot::AdamW { step: 1, .. }));
    assert!(matches!(opt.state[&m.backbone_w.id], Slot::AdamW { step: 1, .. }), "no gradient, no step");
}

#[test]
fn a_state_file_that_does_not_fit_is_refused_with_the_reason() {
    let m = model();
    let groups = ParamGroups { backbone: vec![m.backbone_w.id, m.head_norm.id], head: vec![], no_decay: HashSet::new() };
    let schedule = ScheduleSection::default();
    let adamw = OptimSection::default();
    let mut opt = GroupedOptimizer::<AB>::new(&adamw, &schedule, &groups);
    let m = opt.step(0, m.clone(), (m.backbone_w.val().sum() + m.head_norm.val().sum()).backward());
    let dir = tempfile::tempdir().unwrap();
    opt.save(dir.path(), &m).unwrap();
    let err = |r: Result<GroupedOptimizer<AB>>| r.err().expect("refused").to_string();
    // Another optimiser kind.
    let sgd = OptimSection { kind: OptimizerKind::Sgd, ..OptimSection::default() };
    let e = err(GroupedOptimizer::<AB>::new(&sgd, &schedule, &groups).load(dir.path(), &m, &Default::default()));
    assert!(e.contains("optimizer.safetensors") && e.contains("`adamw`") && e.contains("optim.kind is `sgd`"), "{e}");
    // Another model (other parameter paths).
    let other = four();
    let e = err(GroupedOptimizer::<AB>::new(&adamw, &schedule, &groups).load(dir.path(), &other, &Default::default()));
    assert!(e.contains("another model") && e.contains(".exp_avg"), "{e}");
    // A checkpoint of the Burn-record format that t2s wrote before.
    let old = tempfile::tempdir().unwrap();
    std::fs::write(old.path().join("optimizer_decay.mpk"), b"").unwrap();
    let e = err(GroupedOptimizer::<AB>::new(&adamw, &schedule, &groups).load(old.path(), &m, &Default::default()));
    assert!(e.contains("optimizer_decay.mpk") && e.contains("model.pretrained="), "{e}");
}

/// Mixed precision keeps the master weights in f32: a bf16 pass's gradient updates the f32
/// parameter, so steps far below bf16's resolution accumulate. Ten SGD steps of 10⁻³ from 1.0
/// reach 0.99; stored in bf16 (8 significant bits, spacing 2⁻⁸ below 1), each step would round
/// back to 1.0.
#[test]
fn updates_below_bf16_resolution_accumulate_in_the_f32_master_weight() {
    use burn::tensor::DType;
    use t2s_model::{compute_copy, Precision};
    let d = Default::default();
    let mut m = Two::<AB> {
        backbone_w: Param::from_data(TensorData::new(vec![1.0f32], [1]), &d),
        head_norm: Param::from_data(TensorData::new(vec![0.0f32], [1]), &d),
    };
    let groups = ParamGroups { backbone: vec![m.backbone_w.id, m.head_norm.id], head: vec![], no_decay: HashSet::new() };
    let cfg = OptimSection { kind: OptimizerKind::Sgd, lr: 1e-3, weight_decay: 0.0, momentum: 0.0, ..OptimSection::default() };
    let schedule = ScheduleSection { max_iters: 1_000_000, warmup_iters: 0, power: 0.0, ..ScheduleSection::default() };
    let mut opt = GroupedOptimizer::<AB>::new(&cfg, &schedule, &groups);
    let rounded = |v: f32| Tensor::<Flex, 1>::from_floats([v], &d).cast(DType::BF16).cast(DType::F32).into_scalar();
    assert_eq!(rounded(1.0 - 1e-3), 1.0, "one step is below bf16's resolution at 1");
    for iter in 0..10 {
        let copy = compute_copy(m.clone(), Precision::Bf16);
        assert_eq!(copy.backbone_w.val().dtype(), DType::BF16);
        // loss = w (in bf16) → dloss/dw = 1.
        let loss = copy.backbone_w.val().sum() + copy.head_norm.val().sum();
        m = opt.step(iter, m, loss.backward());
    }
    assert_eq!(m.backbone_w.val().dtype(), DType::F32);
    let w = m.backbone_w.val().into_scalar();
    assert!((w - 0.99).abs() < 1e-6, "{w}");
}

/// Checkpoints written before 2026-12-06 key the state by parameter id (format 1), valid with the
/// ids their `student.mpk` restores: they still resume.
#[test]
fn a_state_keyed_by_parameter_id_still_loads() {
    use safetensors::tensor::TensorView;
    let m = model();
    let (w, n) = (m.backbone_w.id.val(), m.head_norm.id.val());
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let data = [bytes(&[0.1, 0.2]), bytes(&[0.3, 0.4]), bytes(&[0.5]), bytes(&[0.6])];
    let names = [format!("{w}.exp_avg"), format!("{w}.exp_avg_sq"), format!("{n}.exp_avg"), format!("{n}.exp_avg_sq")];
    let views: Vec<(String, TensorView)> = names
        .iter()
        .zip(&data)
        .map(|(name, d)| (name.clone(), TensorView::new(safetensors::Dtype::F32, vec![d.len() / 4], d).unwrap()))
        .collect();
    let metadata = HashMap::from([
        ("format".to_string(), "t2s-optimizer-1".to_string()),
        ("rule".to_string(), "adamw".to_string()),
        ("steps".to_string(), format!("{{\"{w}\": 3, \"{n}\": 5}}")),
    ]);
    let dir = tempfile::tempdir().unwrap();
    safetensors::serialize_to_file(views, Some(metadata), &dir.path().join(state_file::STATE_FILE)).unwrap();
    let groups = ParamGroups { backbone: vec![m.backbone_w.id, m.head_norm.id], head: vec![], no_decay: HashSet::new() };
    let opt = GroupedOptimizer::<AB>::new(&OptimSection::default(), &ScheduleSection::default(), &groups)
        .load(dir.path(), &m, &Default::default())
        .unwrap();
    match &opt.state[&m.head_norm.id] {
        Slot::AdamW { step, exp_avg, exp_avg_sq } => {
            assert_eq!((*step, flat_1(exp_avg), flat_1(exp_avg_sq)), (5, vec![0.5], vec![0.6]));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(opt.state[&m.backbone_w.id], Slot::AdamW { step: 3, .. }));
}

fn flat_1(t: &Tensor<Flex, 1>) -> Vec<f32> {
    t.clone().into_data().to_vec::<f32>().unwrap()
}
