//! Criterion benchmarks of the network building blocks on the CPU backend:
//! `cargo bench --bench model_forward`.

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use t2s_model::{resize_bilinear, SegmentorConfig};

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

criterion_group!(benches, bench_resize, bench_forward);
criterion_main!(benches);
