//! Criterion benchmark of MiT's transformer pieces, forward + backward, as Burn differentiates
//! them operation by operation and as t2s computes them (one autodiff operation each with a
//! closed-form backward pass, `t2s_model::layer_norm` and `t2s_model::activation`), and of a whole
//! MiT-B5 stage-3 block: `cargo bench --bench transformer`.
//!
//! Runs on the CPU backend, on wgpu when an adapter exists (`T2S_BENCH_WGPU=0` skips it) and,
//! built with `--features cuda`, on CUDA. `T2S_BENCH_TRANSFORMER_ONCE=<variant>` (a name in
//! [`VARIANTS`]) runs that variant on the first GPU backend instead, `T2S_BENCH_TRANSFORMER_RUNS`
//! times (default 1), and returns, to count its kernel launches with
//! `CUBECL_DEBUG_OPTION=profile`. Count the difference between two numbers of runs: Burn's
//! fusion executes an operation sequence unfused until it has learnt it, so a first run
//! overstates the launches (docs/benchmarks.md).

use burn::backend::Autodiff;
use burn::tensor::{Distribution, ElementConversion, Tensor};
use core::f64::consts::SQRT_2;
use criterion::{criterion_group, criterion_main, Criterion};
use t2s_model::nets::mit::MitBlock;
use t2s_model::ops::layer_norm::burn_layer_norm;
use t2s_model::T2sAutodiffBackend;

mod common;

/// (name for `T2S_BENCH_TRANSFORMER_ONCE`, description).
const VARIANTS: [(&str, &str); 7] = [
    ("ln-burn", "LayerNorm 2x1024x320, Burn"),
    ("ln-own", "LayerNorm 2x1024x320, own backward"),
    ("softmax-burn", "softmax 2x5x1024x256, Burn"),
    ("softmax-own", "softmax 2x5x1024x256, own backward"),
    ("gelu-composed", "GELU 2x1024x1280, exact form composed of erf and products"),
    ("gelu-own", "GELU 2x1024x1280, own backward"),
    ("block", "MiT-B5 stage-3 block (C 320, 5 heads, reduction 2) on 32x32 tokens"),
];

/// Forward, backward of `Σ f(x)·w` (a weighted sum, so that no gradient is uniform), and one value
/// of the input gradient read back, which waits for the device.
fn fwd_bwd<B: T2sAutodiffBackend, const D: usize>(x0: &Tensor<B, D>, w: &Tensor<B, D>, f: impl Fn(Tensor<B, D>) -> Tensor<B, D>) -> f32 {
    let x = x0.clone().require_grad();
    let grads = (f(x.clone()) * w.clone()).sum().backward();
    x.grad(&grads).expect("input gradient").sum().into_scalar().elem()
}

/// One variant's inputs, made once, and the closure that runs it (returning the summed input
/// gradient).
fn prepare<B: T2sAutodiffBackend>(variant: &str, device: &B::Device) -> Box<dyn Fn() -> f32> {
    let normal = |n: usize| Tensor::<B, 1>::random([n], Distribution::Normal(0.0, 1.0), device);
    let t3 = |s: [usize; 3]| normal(s.iter().product()).reshape(s);
    let t4 = |s: [usize; 4]| normal(s.iter().product()).reshape(s);
    match variant {
        "ln-burn" | "ln-own" => {
            let (x, w) = (t3([2, 1024, 320]), t3([2, 1024, 320]));
            let gamma = Tensor::<B, 1>::random([320], Distribution::Normal(1.0, 0.1), device).require_grad();
            let beta = Tensor::<B, 1>::zeros([320], device).require_grad();
            let own = variant == "ln-own";
            Box::new(move || {
                fwd_bwd(&x, &w, |x| {
                    if own {
                        B::layer_norm_last_dim(x, gamma.clone(), beta.clone(), 1e-6)
                    } else {
                        burn_layer_norm(x, gamma.clone(), beta.clone(), 1e-6)
                    }
                })
            })
        }
        "softmax-burn" | "softmax-own" => {
            let (x, w) = (t4([2, 5, 1024, 256]), t4([2, 5, 1024, 256]));
            if variant == "softmax-own" {
                Box::new(move || fwd_bwd(&x, &w, B::softmax_last_dim))
            } else {
                Box::new(move || fwd_bwd(&x, &w, |x| burn::tensor::activation::softmax(x, 3)))
            }
        }
        "gelu-composed" | "gelu-own" => {
            let (x, w) = (t3([2, 1024, 1280]), t3([2, 1024, 1280]));
            if variant == "gelu-own" {
                Box::new(move || fwd_bwd(&x, &w, B::gelu_exact))
            } else {
                Box::new(move || fwd_bwd(&x, &w, |x| (x.clone() * x.div_scalar(SQRT_2).erf().add_scalar(1.0)).div_scalar(2.0)))
            }
        }
        "block" => {
            let block = MitBlock::<B>::new(320, 5, 2, 4, 0.0, device);
            let (x, w) = (t3([2, 1024, 320]), t3([2, 1024, 320]));
            Box::new(move || fwd_bwd(&x, &w, |x| block.forward(x, 32, 32)))
        }
        other => panic!("T2S_BENCH_TRANSFORMER_ONCE={other}: not one of {VARIANTS:?}"),
    }
}

fn bench_on<B: T2sAutodiffBackend>(c: &mut Criterion, backend: &str, device: B::Device) {
    let mut group = c.benchmark_group(format!("transformer fwd+bwd, {backend}"));
    group.sample_size(10);
    for (variant, name) in VARIANTS {
        let run = prepare::<B>(variant, &device);
        group.bench_function(name, |b| b.iter(&run));
    }
    group.finish();
}

/// `T2S_BENCH_TRANSFORMER_ONCE`: `runs` runs on the first GPU backend built in, for counting
/// launches.
fn run_once(variant: &str, runs: usize) -> bool {
    let repeat = |backend: &str, run: Box<dyn Fn() -> f32>| {
        for _ in 0..runs {
            println!("{variant} on {backend}: {}", run());
        }
    };
    #[cfg(feature = "wgpu")]
    if common::wgpu_wanted() {
        repeat("wgpu", prepare::<Autodiff<burn::backend::Wgpu>>(variant, &Default::default()));
        return true;
    }
    #[cfg(feature = "cuda")]
    if common::has_cuda_device() {
        repeat("cuda", prepare::<Autodiff<burn::backend::Cuda>>(variant, &Default::default()));
        return true;
    }
    let _ = (variant, repeat);
    false
}

fn bench_transformer(c: &mut Criterion) {
    if let Ok(v) = std::env::var("T2S_BENCH_TRANSFORMER_ONCE") {
        let runs = std::env::var("T2S_BENCH_TRANSFORMER_RUNS").map_or(1, |r| r.parse().expect("T2S_BENCH_TRANSFORMER_RUNS: a count"));
        assert!(run_once(&v, runs), "T2S_BENCH_TRANSFORMER_ONCE needs a GPU backend (wgpu adapter or CUDA device)");
        return;
    }
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

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_transformer
}
criterion_main!(benches);
