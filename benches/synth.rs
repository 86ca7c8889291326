//! Criterion benchmark of the synthetic benchmark's generator: one 256×128 sample (scene,
//! rasterisation, sensor, labels) per domain, on one core, as the loader's workers call it:
//! `cargo bench --bench synth`.

use criterion::{criterion_group, criterion_main, Criterion};
use t2s_data::synth::{render, Domain};

mod common;

fn bench_render(c: &mut Criterion) {
    let mut group = c.benchmark_group("synth render 256x128");
    for domain in Domain::ALL {
        // Cycle through indices so that the figure is an average over scenes, not one scene.
        let mut index = 0u64;
        group.bench_function(domain.name(), |b| {
            b.iter(|| {
                index = (index + 1) % 64;
                render(domain, 256, 128, 0, index)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_render
}
criterion_main!(benches);
