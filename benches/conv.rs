//! Criterion benchmark of dense convolutions, forward + backward, as Burn computes them and as
//! `t2s_model::conv_gemm` rewrites them (one matrix product): `cargo bench --bench conv`.
//!
//! `t2s_model::ops::conv::conv2d_forward` uses the rewrite on the CubeCL backends (wgpu, CUDA), where
//! Burn 0.21 without autotuning runs every convolution as a direct kernel; this measures that
//! choice. Runs on the CPU backend (for reference: there the networks keep Burn's convolution),
//! on wgpu when an adapter exists (`T2S_BENCH_WGPU=0` skips it) and, built with
//! `--features cuda`, on CUDA. Shapes are the layer kinds of MiT + DAFormer at reduced size. On
//! wgpu and CUDA a second group compares three formulations of the depth-wise convolution.

use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, ElementConversion, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use t2s_model::nets::conv_bn::ConvSpec;
use t2s_model::ops::conv::gemm_geometry;
use t2s_model::ops::conv_gemm::conv2d_gemm;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
use t2s_model::ops::depthwise::depthwise_forward;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
use t2s_model::T2sAutodiffBackend;

mod common;

/// (name, layer, input `[N, C, H, W]`).
fn cases() -> Vec<(&'static str, ConvSpec, [usize; 4])> {
    vec![
        ("1x1 256->64 on 2x256x32x32 (DAFormer ASPP branch)", ConvSpec::new(256, 64, 1).bias(true), [2, 256, 32, 32]),
        ("3x3 256->64 on 2x256x32x32 (DAFormer bottleneck)", ConvSpec::new(256, 64, 3).bias(true), [2, 256, 32, 32]),
        (
            "8x8 stride 8 64->64 on 2x64x64x64 (MiT spatial reduction)",
            ConvSpec::new(64, 64, 8).stride(8).padding(0).bias(true),
            [2, 64, 64, 64],
        ),
        ("3x3 stride 2 64->128 on 2x64x64x64 (MiT patch embedding)", ConvSpec::new(64, 128, 3).stride(2).bias(true), [2, 64, 64, 64]),
    ]
}

fn bench_on<B: AutodiffBackend>(c: &mut Criterion, backend: &str, device: B::Device) {
    let mut group = c.benchmark_group(format!("conv fwd+bwd, {backend}"));
    group.sample_size(10);
    for (name, spec, shape) in cases() {
        let conv = spec.init::<B>(&device);
        let geometry = gemm_geometry(&conv).expect("a layer the rewrite takes");
        let x0 = Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        // Forward, backward, and one value of each gradient read back (which waits for the device).
        let run = |gemm: bool| {
            let x = x0.clone().require_grad();
            let y = if gemm {
                conv2d_gemm(x.clone(), conv.weight.val(), conv.bias.as_ref().map(|b| b.val()), geometry)
            } else {
                conv.forward(x.clone())
            };
            let grads = y.sum().backward();
            let dx: f32 = x.grad(&grads).expect("input gradient").sum().into_scalar().elem();
            let dw: f32 = conv.weight.val().grad(&grads).expect("weight gradient").sum().into_scalar().elem();
            dx + dw
        };
        group.bench_function(format!("{name}: Burn conv2d"), |b| b.iter(|| run(false)));
        group.bench_function(format!("{name}: matmul rewrite"), |b| b.iter(|| run(true)));
    }
    group.finish();
}

/// The depth-wise convolution as t2s computed it before `T2sBackend::depthwise_conv2d`: k²
/// shifted slices of the padded input, each times its weight column, summed, with bias;
/// differentiated by Burn operation by operation (139 launches forward + backward on wgpu).
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn shifted_taps<B: AutodiffBackend>(conv: &burn::nn::conv::Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let w = conv.weight.val();
    let [c, _, kh, kw] = w.dims();
    let [n, _, h, wd] = x.dims();
    let (d, pad) = (conv.dilation[0], conv.dilation[0] * (kh - 1) / 2);
    let xp = x.pad([(pad, pad), (pad, pad)], burn::tensor::ops::PadMode::Constant(0.0));
    let taps = w.reshape([c, kh * kw]);
    let ids = Tensor::<B, 1, burn::tensor::Int>::arange(0..(kh * kw) as i64, &taps.device());
    let mut out = conv.bias.as_ref().unwrap().val().reshape([1, c, 1, 1]);
    for i in 0..kh {
        for j in 0..kw {
            let k = i * kw + j;
            let column = taps.clone().select(1, ids.clone().slice([k..k + 1])).reshape([1, c, 1, 1]);
            out = out + xp.clone().slice([0..n, 0..c, i * d..i * d + h, j * d..j * d + wd]) * column;
        }
    }
    out
}

/// The depth-wise formulations [`bench_depthwise`] compares, by the name
/// `T2S_BENCH_DEPTHWISE_ONCE` takes.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
const DEPTHWISE_VARIANTS: [(&str, &str); 3] =
    [("grouped", "grouped conv"), ("taps", "shifted multiply-adds, differentiated by Burn"), ("windows", "tap windows, own backward")];

/// A depth-wise 3×3 convolution (MiT's Mix-FFN at reduced size), forward and backward, as Burn's
/// grouped convolution (whose weight gradient loops over the channels on CubeCL), as
/// [`shifted_taps`] differentiated by Burn operation by operation, and as what the networks use,
/// `T2sBackend::depthwise_conv2d`: one product over the tap windows, recorded as one autodiff
/// operation with its own backward pass. `T2S_BENCH_DEPTHWISE_ONCE=<variant>` (a
/// name in [`DEPTHWISE_VARIANTS`]) runs that variant once instead and returns, to count its
/// launches with `CUBECL_DEBUG_OPTION=profile` (docs/benchmarks.md).
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn bench_depthwise<B: T2sAutodiffBackend>(c: &mut Criterion, backend: &str, device: B::Device) {
    let mut group = c.benchmark_group(format!("depthwise 3x3 on 2x256x32x32 fwd+bwd, {backend}"));
    group.sample_size(10);
    let (ch, size) = (256usize, 32usize);
    let conv = ConvSpec::new(ch, ch, 3).groups(ch).bias(true).init::<B>(&device);
    let x0 = Tensor::<B, 4>::random([2, ch, size, size], Distribution::Normal(0.0, 1.0), &device);
    let run = |variant: &str| {
        let x = x0.clone().require_grad();
        let y = match variant {
            "grouped" => conv.forward(x.clone()),
            "taps" => shifted_taps(&conv, x.clone()),
            "windows" => depthwise_forward(&conv, x.clone()).expect("depth-wise"),
            other => panic!("T2S_BENCH_DEPTHWISE_ONCE={other}: not one of {DEPTHWISE_VARIANTS:?}"),
        };
        let grads = y.sum().backward();
        let dx: f32 = x.grad(&grads).expect("input gradient").sum().into_scalar().elem();
        let dw: f32 = conv.weight.val().grad(&grads).expect("weight gradient").sum().into_scalar().elem();
        dx + dw
    };
    if let Ok(v) = std::env::var("T2S_BENCH_DEPTHWISE_ONCE") {
        println!("depth-wise {v}: {}", run(&v));
        return;
    }
    // They compute the same thing: the summed gradients agree.
    let reference = run("grouped");
    for (variant, _) in &DEPTHWISE_VARIANTS[1..] {
        let v = run(variant);
        assert!((reference - v).abs() <= 1e-3 * reference.abs().max(1.0), "{variant}: {v} against the grouped conv's {reference}");
    }
    for (variant, name) in DEPTHWISE_VARIANTS {
        group.bench_function(name, |b| b.iter(|| run(variant)));
    }
    group.finish();
}

fn bench_conv(c: &mut Criterion) {
    bench_on::<Autodiff<burn::backend::Flex>>(c, "cpu", Default::default());
    #[cfg(feature = "wgpu")]
    if common::wgpu_wanted() {
        bench_depthwise::<Autodiff<burn::backend::Wgpu>>(c, "wgpu", Default::default());
        bench_on::<Autodiff<burn::backend::Wgpu>>(c, "wgpu", Default::default());
    }
    #[cfg(feature = "cuda")]
    if common::has_cuda_device() {
        bench_depthwise::<Autodiff<burn::backend::Cuda>>(c, "cuda", Default::default());
        bench_on::<Autodiff<burn::backend::Cuda>>(c, "cuda", Default::default());
    }
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_conv
}
criterion_main!(benches);
