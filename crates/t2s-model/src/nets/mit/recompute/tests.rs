//! The recomputed encoder's gradients against the autodiff pass's with the same stochastic-depth
//! masks, also with stage outputs that take no part in the loss, in f32 and bf16.

use std::collections::HashMap;

use burn::backend::{Autodiff, Flex};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};

use super::super::tests::{rand_nd, Randomize};
use super::super::{BlockMasks, MitConfig};
use crate::precision::{cast_to, compute_copy, weight_dtype};
use crate::Precision;
use burn::tensor::DType;

type A = Autodiff<Flex>;

/// Every float parameter's gradient in `grads`, summed over the list, by parameter.
struct Collect<'a> {
    grads: &'a [<A as AutodiffBackend>::Gradients],
    out: HashMap<ParamId, Vec<f32>>,
}

impl ModuleVisitor<A> for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
        let mut sum: Option<Tensor<Flex, D>> = None;
        for g in self.grads {
            if let Some(g) = param.val().grad(g) {
                sum = Some(match sum {
                    Some(s) => s + g,
                    None => g,
                });
            }
        }
        if let Some(s) = sum {
            self.out.insert(param.id, s.into_data().convert::<f32>().to_vec().unwrap());
        }
    }
}

/// Marks every float parameter as trained (a module brought over from the inner backend has
/// none tracked).
struct Track;

impl burn::module::ModuleMapper<A> for Track {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<A, D>>) -> Param<Tensor<A, D>> {
        param.set_require_grad(true)
    }
}

/// A loss on the stage outputs: Σ over the used stages of `Σ f·r + ½Σ f²` (r fixed).
fn loss(features: &[Tensor<A, 4>], used: &[usize]) -> Tensor<A, 1> {
    used.iter()
        .map(|&i| {
            let f = features[i].clone();
            let r = rand_nd(&f.dims(), 40 + i as u64, 1.0);
            let r = Tensor::<A, 4>::from_inner(Tensor::from_data(
                TensorData::new(r.data.iter().map(|&v| v as f32).collect::<Vec<_>>(), f.dims()),
                &f.device(),
            ));
            (f.clone() * r).sum() + f.powi_scalar(2).sum().mul_scalar(0.5)
        })
        .reduce(|a, b| a + b)
        .unwrap()
}

fn check(used: &[usize], precision: Precision, tolerance: f32) {
    let device = Default::default();
    let cfg = MitConfig {
        embed_dims: [8, 16, 24, 32],
        depths: [2, 1, 1, 2],
        num_heads: [1, 2, 3, 4],
        sr_ratios: [8, 4, 2, 1],
        drop_path_rate: 0.4,
        ..MitConfig::b(0).unwrap()
    };
    let net = <super::MixTransformer<A> as AutodiffModule<A>>::from_inner(Randomize::apply(cfg.init::<Flex>(&device), 3)).map(&mut Track);
    let x = rand_nd(&[4, 3, 64, 64], 9, 1.0);
    let x = Tensor::<A, 4>::from_inner(Tensor::from_data(
        TensorData::new(x.data.iter().map(|&v| v as f32).collect::<Vec<_>>(), [4, 3, 64, 64]),
        &device,
    ));
    let f32s = |fs: &[Tensor<A, 4>]| fs.iter().map(|f| cast_to(f.clone(), DType::F32)).collect::<Vec<_>>();

    // The taped pass, drawing its stochastic-depth masks.
    let (leaves, tape) = net.forward_taped(x.clone(), precision);
    let masks: Vec<Vec<BlockMasks<Flex>>> = tape.stages.iter().map(|s| s.masks.clone()).collect();
    let head = loss(&f32s(&leaves), used).backward();
    let outputs = leaves.iter().map(|l| l.grad(&head)).collect();
    let mut segments = Vec::new();
    tape.backward(&net, outputs, |g| segments.push(g));
    let mut got = Collect { grads: &segments, out: HashMap::new() };
    net.visit(&mut got);

    // The autodiff pass through the whole encoder with the same masks.
    let drops = masks.iter().flatten().flat_map(|m| [&m.attn, &m.mlp]).flatten();
    let dropped: f32 = drops.map(|m| m.clone().neg().add_scalar(1.0).sum().into_scalar()).sum();
    assert!(dropped > 0.0, "stochastic depth dropped no branch: the test would not see the masks");
    let plain = compute_copy(net.clone(), precision);
    let mut h = cast_to(x, weight_dtype(&plain));
    let mut features = Vec::new();
    for (stage, masks) in plain.stages.iter().zip(&masks) {
        let (mut tokens, hh, ww) = stage.patch_embed.forward(h);
        for (block, m) in stage.blocks.iter().zip(masks) {
            let m = BlockMasks { attn: m.attn.clone().map(Tensor::from_inner), mlp: m.mlp.clone().map(Tensor::from_inner) };
            tokens = block.forward_masked(tokens, hh, ww, &m);
        }
        h = stage.finish(tokens, hh, ww);
        features.push(h.clone());
    }
    let expected = vec![loss(&f32s(&features), used).backward()];
    let mut want = Collect { grads: &expected, out: HashMap::new() };
    net.visit(&mut want);

    // Stages before the first used one still train (their outputs feed it); every parameter has
    // one gradient either way.
    assert_eq!(got.out.len(), want.out.len(), "parameters with a gradient");
    struct Count(usize);
    impl ModuleVisitor<A> for Count {
        fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<A, D>>) {
            self.0 += 1;
        }
    }
    let mut count = Count(0);
    net.visit(&mut count);
    assert_eq!(want.out.len(), count.0, "every parameter trains");
    let (err, id) = want
        .out
        .iter()
        .map(|(id, w)| {
            let g = &got.out[id];
            let scale = w.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            (w.iter().zip(g).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale, *id)
        })
        .fold((0f32, None), |(m, at), (e, id)| if e > m { (e, Some(id)) } else { (m, at) });
    assert!(err <= tolerance, "parameter {id:?}: relative error {err} ({precision:?}, stages {used:?})");
}

#[test]
fn recomputed_gradients_equal_the_autodiff_pass() {
    check(&[0, 1, 2, 3], Precision::F32, 1e-5);
}

#[test]
fn stage_outputs_outside_the_loss_still_carry_the_gradient_of_later_stages() {
    check(&[2, 3], Precision::F32, 1e-5);
}

/// The two passes sum some gradients in a different order, so bf16 results differ by a few
/// units in the last place: one bf16 ulp is up to 2⁻⁷ ≈ 0.8 % of a tensor's largest value, and
/// 60 runs with fresh masks measured up to 1.5 ulps, one CI run 3. 6 ulps leaves room; a mask that is not reused
/// errs by the size of the branch's gradient (order 1).
#[test]
fn recomputed_gradients_equal_the_autodiff_pass_in_bf16() {
    check(&[0, 1, 2, 3], Precision::Bf16, 6.0 / 128.0);
}
