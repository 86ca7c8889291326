//! Criterion benchmarks of the network building blocks on the CPU backend:
//! `cargo bench --bench model_forward` (`-- depthwise` for the depth-wise convolution alone).

use burn::backend::{Autodiff, Flex};
use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use t2s_model::nets::conv_bn::ConvSpec;
use t2s_model::ops::depthwise::depthwise_forward;
use t2s_model::{resize_bilinear, SegmentorConfig};

mod common;

fn bench_resize(c: &mut Criterion) {
    let device = Default::default();
    // DAFormer's logits (19 classes at 1/4 of a 512×512 crop) upsampled to the crop.
    let x = Tensor::<Flex, 4>::random([2, 19, 128, 128], Distribution::Normal(0.0, 1.0), &device);
    c.bench_function("resize_bilinear 2x19x128x128 -> 512x512", |b| b.iter(|| resize_bilinear(x.clone(), 512, 512).into_data()));
}

fn bench_forward(c: &mut Criterion) {
    let device = Default::default();
    let mut group = c.benchmark_group("segmentor forward 1x3x256x256");
    group.sample_size(10);
    for preset in ["daformer-mitb0", "deeplabv2-r18"] {
        let cfg = SegmentorConfig::preset(preset).expect("preset");
        let net = cfg.init::<Flex>(&device).expect("network");
        let x = Tensor::<Flex, 4>::random([1, 3, 256, 256], Distribution::Normal(0.0, 1.0), &device);
        group.bench_function(preset, |b| b.iter(|| net.forward(x.clone()).logits.into_data()));
    }
    group.finish();
}

/// A depth-wise 3×3 convolution, forward and backward (input gradient read back), as Burn's
/// grouped convolution and as `t2s_model::depthwise`'s products over shifted windows (with their
/// own backward pass): which one
/// `conv2d_forward` uses on the CPU. Sizes: the DAFormer head's dilated separable ASPP at 1/4
/// of a 256×256 crop, and a MiT Mix-FFN of stage 1 at 1/4 of 512×512.
fn bench_depthwise(c: &mut Criterion) {
    type A = Autodiff<Flex>;
    let device = Default::default();
    let mut group = c.benchmark_group("depthwise 3x3 fwd+bwd, cpu");
    group.sample_size(10);
    for (channels, size, dilation) in [(256usize, 64usize, 12usize), (128, 128, 1)] {
        let conv = ConvSpec::new(channels, channels, 3).dilated(dilation).groups(channels).init::<A>(&device);
        let x0 = Tensor::<A, 4>::random([2, channels, size, size], Distribution::Normal(0.0, 1.0), &device);
        let run = |taps: bool| {
            let x = x0.clone().require_grad();
            let y = if taps { depthwise_forward(&conv, x.clone()).expect("depth-wise") } else { conv.forward(x.clone()) };
            x.grad(&y.sum().backward()).expect("input gradient").into_data()
        };
        let name = format!("2x{channels}x{size}x{size} dilation {dilation}");
        group.bench_function(format!("{name}: grouped conv"), |b| b.iter(|| run(false)));
        group.bench_function(format!("{name}: tap windows"), |b| b.iter(|| run(true)));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_resize, bench_forward, bench_depthwise
}
criterion_main!(benches);
