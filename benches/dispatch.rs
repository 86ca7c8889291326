//! Criterion benchmark of the host's cost per tensor operation: `cargo bench --bench dispatch`.
//!
//! A chain of small dependent layers `h ← tanh(h·W + b)` on a 2×64 matrix, whose kernels take
//! microseconds on a GPU, so the time per layer is the framework's dispatch cost (autodiff
//! bookkeeping, fusion, CubeCL's task channel to its device thread, the launch) rather than
//! arithmetic. A MiT-B5 T2S-DA iteration issues ~60,000 launches (docs/gpu.md), so the cost
//! per launch times 60,000 bounds an iteration's time from below. Runs on the CPU backend, on wgpu when
//! an adapter exists (`T2S_BENCH_WGPU=0` skips it) and, built with `--features cuda`, on CUDA.
//! Divide the reported time by [`LAYERS`] for the cost of one layer (forward: a matmul and an
//! add + tanh, one launch each where fusion fuses them; the backward adds their gradients). `-- --profile-time 10` samples each
//! benchmark instead and writes `target/criterion/<group>/<bench>/profile/flamegraph.svg`
//! (which layer of the stack the time goes to; needs symbols: `CARGO_PROFILE_BENCH_STRIP=false`).

use burn::backend::Autodiff;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, ElementConversion, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};

mod common;

/// Layers per measured chain.
const LAYERS: usize = 100;

/// `LAYERS` layers forward only, one value read back at the end (which waits for the device).
fn forward_chain<B: Backend>(x: Tensor<B, 2>, w: &Tensor<B, 2>, b: &Tensor<B, 2>) -> f32 {
    let mut h = x;
    for _ in 0..LAYERS {
        h = (h.matmul(w.clone()) + b.clone()).tanh();
    }
    h.sum().into_scalar().elem()
}

/// The same chain with gradients: forward, backward, the weight's gradient read back.
fn train_chain<B: AutodiffBackend>(x: Tensor<B, 2>, w: &Tensor<B, 2>, b: &Tensor<B, 2>) -> f32 {
    let w = w.clone().require_grad();
    let mut h = x;
    for _ in 0..LAYERS {
        h = (h.matmul(w.clone()) + b.clone()).tanh();
    }
    let grads = h.sum().backward();
    w.grad(&grads).expect("weight gradient").sum().into_scalar().elem()
}

fn bench_on<B: AutodiffBackend>(c: &mut Criterion, name: &str, device: B::Device) {
    let mut group = c.benchmark_group(format!("dispatch {LAYERS} layers tanh(h·W+b) 2x64, {name}"));
    // Scaled so that tanh neither saturates nor vanishes over the chain.
    let w = Tensor::<B, 2>::random([64, 64], Distribution::Normal(0.0, 0.125), &device);
    let b = Tensor::<B, 2>::random([1, 64], Distribution::Normal(0.0, 0.1), &device);
    let x = Tensor::<B, 2>::random([2, 64], Distribution::Normal(0.0, 1.0), &device);
    let (wi, bi, xi) = (w.clone().inner(), b.clone().inner(), x.clone().inner());
    group.bench_function("forward", |bench| bench.iter(|| forward_chain(xi.clone(), &wi, &bi)));
    group.bench_function("forward+backward", |bench| bench.iter(|| train_chain(x.clone(), &w, &b)));
    group.finish();
}

fn bench_dispatch(c: &mut Criterion) {
    bench_on::<Autodiff<burn::backend::Flex>>(c, "cpu", Default::default());
    #[cfg(feature = "wgpu")]
    if common::wgpu_wanted() {
        bench_on::<Autodiff<burn::backend::Wgpu>>(c, "wgpu", Default::default());
    }
    #[cfg(feature = "cuda")]
    if common::has_cuda_device() {
        bench_on::<Autodiff<burn::backend::Cuda>>(c, "cuda", Default::default());
    }
}

#[cfg(unix)]
fn config() -> Criterion {
    use pprof::criterion::{Output, PProfProfiler};
    common::criterion().with_profiler(PProfProfiler::new(199, Output::Flamegraph(None)))
}

#[cfg(not(unix))]
fn config() -> Criterion {
    common::criterion()
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_dispatch
}
criterion_main!(benches);
