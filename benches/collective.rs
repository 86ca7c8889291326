//! Criterion benchmark of the data-parallel gradient all-reduce alone: `cargo bench --bench
//! collective`. Two replicas (two threads on the CPU backend, as `--device cpu,cpu` runs them)
//! average the gradients of every parameter of MiT-B5 + DAFormer with the projection head
//! (`daformer-mitb5`, 85,287,379 values) through `t2s_train::replicas::mean_gradients`: the
//! flattening, one `burn-collective` all-reduce (tree of two) and the split back. Only the
//! all-reduce call is timed; the gradients (ones) are made again before each call.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use t2s_model::{Segmentor, SegmentorConfig};
use t2s_train::replicas::{join, mean_gradients, Replica};

mod common;

type AB = Autodiff<Flex>;

/// Gradients of ones for every parameter: the backward pass of `Σ_p sum(p)`.
fn ones(net: &Segmentor<AB>) -> <AB as AutodiffBackend>::Gradients {
    struct Sum(Option<Tensor<AB, 1>>);
    impl ModuleVisitor<AB> for Sum {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<AB, D>>) {
            let s = p.val().sum();
            self.0 = Some(match self.0.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
    let mut sum = Sum(None);
    net.visit(&mut sum);
    sum.0.expect("parameters").backward()
}

fn network() -> Segmentor<AB> {
    SegmentorConfig::preset("daformer-mitb5").and_then(|c| c.init::<AB>(&Default::default())).expect("daformer-mitb5")
}

fn bench(c: &mut Criterion) {
    let replica = |rank| Replica { rank, count: 2, local: 2, timeout: Duration::from_secs(600) };
    let (to_peer, iterations) = mpsc::channel::<u64>();
    let peer = std::thread::spawn(move || {
        let r = replica(1);
        join::<Flex>(&r, Default::default()).expect("replica 1 joins");
        let net = network();
        while let Ok(n) = iterations.recv() {
            for _ in 0..n {
                let mut grads = ones(&net);
                mean_gradients::<AB, _>(&r, &net, &mut grads).expect("replica 1 all-reduce");
            }
        }
    });
    let r = replica(0);
    join::<Flex>(&r, Default::default()).expect("replica 0 joins");
    let net = network();
    let values = net.num_params() as u64;
    let mut group = c.benchmark_group("collective");
    group.sample_size(10).measurement_time(Duration::from_secs(20)).throughput(Throughput::Elements(values));
    group.bench_function("mean_gradients/daformer-mitb5/2_cpu_replicas", |b| {
        b.iter_custom(|n| {
            to_peer.send(n).expect("replica 1 is running");
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let mut grads = ones(&net);
                let start = Instant::now();
                mean_gradients::<AB, _>(&r, &net, &mut grads).expect("replica 0 all-reduce");
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
    drop(to_peer);
    peer.join().expect("replica 1");
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench
}
criterion_main!(benches);
