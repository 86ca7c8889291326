//! Criterion benchmark of the T2S loss kernel at the default size (method.md §4): 19 classes ×
//! 256 queries (Nq = 4,864), D = 256, m = 50 negatives per query from a key bank of 60,000,
//! forward and backward; and at a MiT-B5 512×512 step's size (`mitb5`: the same queries, a key
//! bank of the source and target embeddings of two 128×128 maps each, 65,536 keys). `cargo bench --bench contrastive_loss` runs it on the CPU (Flex)
//! backend, and on wgpu when an adapter exists (set `T2S_BENCH_WGPU=0` to skip);
//! `--features cuda` adds CUDA when a GPU is present. The same computation in PyTorch is
//! `scripts/bench_contrastive.py`; docs/benchmarks.md compares both.

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, ElementConversion, Int, Tensor, TensorData};
use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use t2s_loss::{t2s_contrastive_loss, t2s_contrastive_loss_tensor_ops};
use t2s_model::T2sAutodiffBackend;

mod common;

const CLASSES: usize = 19;
const PER_CLASS: usize = 256;
const DIM: usize = 256;
const NEGATIVES: usize = 50;
const KEYS: usize = 60_000;
/// The key bank of a MiT-B5 step: 2 source + 2 target images at 512×512, embeddings at stride 4.
const KEYS_MITB5: usize = 4 * 128 * 128;
const TAU: f32 = 0.2;

/// Inputs of one loss evaluation; the indices are drawn on the host like the samplers do.
struct Inputs<B: Backend> {
    queries: Tensor<B, 2>,
    classes: Tensor<B, 1, Int>,
    prototypes: Tensor<B, 2>,
    keys: Tensor<B, 2>,
    negatives: Tensor<B, 2, Int>,
    weights: Tensor<B, 1>,
}

fn inputs<B: Backend>(keys: usize, device: &B::Device) -> Inputs<B> {
    let nq = CLASSES * PER_CLASS;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let classes: Vec<i64> = (0..nq).map(|i| (i / PER_CLASS) as i64).collect();
    let negatives: Vec<i64> = (0..nq * NEGATIVES).map(|_| rng.random_range(0..keys as i64)).collect();
    let weights: Vec<f32> = (0..CLASSES).map(|_| rng.random_range(0.1..10.0)).collect();
    Inputs {
        queries: Tensor::random([nq, DIM], Distribution::Normal(0.0, 1.0), device),
        classes: Tensor::from_data(TensorData::new(classes, [nq]), device),
        prototypes: Tensor::random([CLASSES, DIM], Distribution::Normal(0.0, 1.0), device),
        keys: Tensor::random([keys, DIM], Distribution::Normal(0.0, 1.0), device),
        negatives: Tensor::from_data(TensorData::new(negatives, [nq, NEGATIVES]), device),
        weights: Tensor::from_data(TensorData::new(weights, [CLASSES]), device),
    }
}

/// One forward and backward pass, with the fused kernels where the backend has them (`fused`) or
/// as tensor operations; reading the query gradient back synchronises the device.
fn step<B: T2sAutodiffBackend>(x: &Inputs<B>, fused: bool) -> f32 {
    let q = x.queries.clone().require_grad();
    let loss = if fused { t2s_contrastive_loss } else { t2s_contrastive_loss_tensor_ops };
    let loss = loss(q.clone(), x.classes.clone(), x.prototypes.clone(), x.keys.clone(), x.negatives.clone(), x.weights.clone(), TAU);
    let grads = loss.backward();
    let g = q.grad(&grads).expect("query gradient");
    g.sum().into_scalar().elem::<f32>()
}

/// The loss on backend `B`: as tensor operations, and with the fused kernels where `B` has them.
fn bench_on<B: T2sAutodiffBackend>(c: &mut Criterion, name: &str, device: B::Device) {
    for (group, keys) in [("t2s loss 4864x256 m50 K60000 fwd+bwd", KEYS), ("t2s loss mitb5 4864x256 m50 K65536 fwd+bwd", KEYS_MITB5)] {
        let x = inputs::<B>(keys, &device);
        let mut group = c.benchmark_group(group);
        group.sample_size(10);
        for fused in [true, false].into_iter().filter(|&f| !f || B::FUSED_CONTRASTIVE) {
            step(&x, fused); // warm-up: kernel compilation and autotuning on GPU backends
            let label = match (B::FUSED_CONTRASTIVE, fused) {
                (false, _) => name.to_string(),
                (true, true) => format!("{name} fused"),
                (true, false) => format!("{name} tensor ops"),
            };
            group.bench_function(label, |b| b.iter(|| step(&x, fused)));
        }
        group.finish();
    }
}

/// The negatives' scores alone, the loss's largest piece of work: the gathered block
/// `[Nq, M, D]` against the queries `[Nq, D]`, forward and backward (gradient through the
/// queries), as the loss computes them (a batched matmul with N = 1) and as an element-wise
/// product summed over D. Which is faster differs between backends; this measures both.
fn bench_scores_on<B: AutodiffBackend>(c: &mut Criterion, name: &str, device: B::Device) {
    let nq = CLASSES * PER_CLASS;
    let block: Tensor<B, 3> = Tensor::random([nq, NEGATIVES, DIM], Distribution::Normal(0.0, 1.0), &device);
    let queries: Tensor<B, 2> = Tensor::random([nq, DIM], Distribution::Normal(0.0, 1.0), &device);
    let run = |product: bool| {
        let q = queries.clone().require_grad();
        let scores: Tensor<B, 2> = if product {
            (block.clone() * q.clone().unsqueeze_dim::<3>(1)).sum_dim(2).reshape([nq, NEGATIVES])
        } else {
            block.clone().matmul(q.clone().unsqueeze_dim::<3>(2)).reshape([nq, NEGATIVES])
        };
        let grads = scores.exp().sum().backward();
        q.grad(&grads).expect("query gradient").sum().into_scalar().elem::<f32>()
    };
    run(false);
    run(true);
    let mut group = c.benchmark_group(format!("negative scores {nq}x{NEGATIVES}x{DIM} fwd+bwd, {name}"));
    group.sample_size(10);
    group.bench_function("batched matmul", |b| b.iter(|| run(false)));
    group.bench_function("product + sum", |b| b.iter(|| run(true)));
    group.finish();
}

fn bench_loss(c: &mut Criterion) {
    bench_on::<Autodiff<Flex>>(c, "cpu (Flex)", Default::default());
    bench_scores_on::<Autodiff<Flex>>(c, "cpu (Flex)", Default::default());
    #[cfg(feature = "wgpu")]
    if common::wgpu_wanted() {
        // Not the scores alone: their unchunked 250 MB block exceeds wgpu's storage-binding limit.
        bench_on::<Autodiff<burn::backend::Wgpu>>(c, "wgpu", Default::default());
    }
    #[cfg(feature = "cuda")]
    if common::has_cuda_device() {
        bench_on::<Autodiff<burn::backend::Cuda>>(c, "cuda", Default::default());
        bench_scores_on::<Autodiff<burn::backend::Cuda>>(c, "cuda", Default::default());
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_loss
}
criterion_main!(benches);
