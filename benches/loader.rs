//! Data-loading benchmarks (figures in docs/benchmarks.md, "Data loading"):
//! `cargo bench --bench loader`.
//!
//! - `gta5 pipeline/one image at a time`: decode a GTA5-sized PNG pair (1914×1052 RGB image,
//!   8-bit label), resize to 1280×720, random 512×512 crop with the 0.75 re-draw, flip, then FDA
//!   (β = 0.01) against a 512×512 target crop; all on the calling thread except FDA, whose three
//!   planes run on the global rayon pool.
//! - `gta5 pipeline/loader, N thread(s), batch 2`: the batch loader's steady-state throughput on
//!   the same files with 1 and 2 worker threads (decode + augment + batch + normalise, no FDA).
//! - `fda/3x512x512`: FDA alone on one 512×512 RGB pair.
//!
//! The PNGs are generated once into a temporary folder: smooth gradients, blocks and noise, so
//! they compress (and decode) more like photographs than pure noise would.

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use image::{GrayImage, RgbImage};
use t2s_data::transforms::{augment, to_planar_f32, AugmentConfig, CropConfig, Resize};
use t2s_data::{read_rgb, seeded_rng, Dataset, Fda, LabelSpace, Loader, LoaderConfig, Result, Sample, SampleOrder};

mod common;

/// GTA5's frame size.
const GTA_W: u32 = 1914;
const GTA_H: u32 = 1052;
/// PNG pairs written for the benchmark.
const FILES: usize = 4;

/// A folder of generated PNG pairs read like a real dataset.
struct PngPairs {
    images: Vec<PathBuf>,
    labels: Vec<PathBuf>,
    space: LabelSpace,
}

impl Dataset for PngPairs {
    fn len(&self) -> usize {
        self.images.len()
    }
    fn name(&self, index: usize) -> String {
        format!("gta-{index}")
    }
    fn get(&self, index: usize) -> Result<Sample> {
        let image = read_rgb(&self.images[index])?;
        let label = image::open(&self.labels[index])
            .map_err(|e| t2s_data::DataError::Decode { path: self.labels[index].clone(), message: e.to_string() })?
            .to_luma8();
        Ok(Sample { name: self.name(index), image, label: Some(label) })
    }
    fn label_space(&self) -> &LabelSpace {
        &self.space
    }
    fn has_labels(&self) -> bool {
        true
    }
}

/// A cheap deterministic hash for pixel noise.
fn hash(x: u32, y: u32, k: u32) -> u32 {
    let mut h = x.wrapping_mul(0x9E37_79B1) ^ y.wrapping_mul(0x85EB_CA77) ^ k.wrapping_mul(0xC2B2_AE3D);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^ (h >> 12)
}

fn write_pairs(dir: &std::path::Path) -> PngPairs {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for k in 0..FILES as u32 {
        let img = RgbImage::from_fn(GTA_W, GTA_H, |x, y| {
            let n = hash(x, y, k) % 24;
            let block = ((x / 97 + y / 61 + k) % 5) * 30;
            image::Rgb([
                ((x * 255 / GTA_W + n + block) % 256) as u8,
                ((y * 255 / GTA_H + n) % 256) as u8,
                ((block + n * 2 + k * 40) % 256) as u8,
            ])
        });
        let label = GrayImage::from_fn(GTA_W, GTA_H, |x, y| {
            let c = (x / 160 + (y / 120) * 3 + k) % 20;
            image::Luma([if c == 19 { 255 } else { c as u8 }])
        });
        let (ip, lp) = (dir.join(format!("{k}.png")), dir.join(format!("{k}_labelTrainIds.png")));
        img.save(&ip).expect("write benchmark image");
        label.save(&lp).expect("write benchmark label");
        images.push(ip);
        labels.push(lp);
    }
    PngPairs { images, labels, space: LabelSpace::cityscapes() }
}

fn source_pipeline() -> AugmentConfig {
    AugmentConfig { resize: Resize::Exact { width: 1280, height: 720 }, crop: Some(CropConfig::daformer(512, 512)), flip_prob: 0.5 }
}

fn bench_pipeline(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = Arc::new(write_pairs(dir.path()));
    let fda = Fda::new(0.01).expect("valid beta");
    // The target crop: 512×512 of another generated image, fixed.
    let target = augment(data.get(FILES - 1).expect("decode"), &source_pipeline(), &mut seeded_rng(1, 0)).expect("augment");
    let target = to_planar_f32(&target.image);

    let mut group = c.benchmark_group("gta5 pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function("one image at a time", |b| {
        b.iter(|| {
            let sample = data.get(n as usize % FILES).expect("decode");
            let out = augment(sample, &source_pipeline(), &mut seeded_rng(0, n)).expect("augment");
            n += 1;
            fda.apply(&to_planar_f32(&out.image), &target, 512, 512).expect("fda")
        })
    });

    group.throughput(Throughput::Elements(2));
    for threads in [1, 2] {
        let cfg = LoaderConfig { batch_size: 2, threads, prefetch: 4, seed: 0, start_batch: 0, stride: 1 };
        let mut loader = Loader::new(data.clone(), source_pipeline(), SampleOrder::Shuffle, cfg).expect("loader");
        group.bench_function(format!("loader, {threads} thread(s), batch 2"), |b| {
            b.iter(|| loader.next_batch().expect("endless").expect("batch"))
        });
    }
    group.finish();
}

fn bench_fda(c: &mut Criterion) {
    let fda = Fda::new(0.01).expect("valid beta");
    let plane = 512 * 512;
    let source: Vec<f32> = (0..3 * plane).map(|i| (hash(i as u32, 1, 2) % 256) as f32).collect();
    let target: Vec<f32> = (0..3 * plane).map(|i| (hash(i as u32, 3, 4) % 256) as f32).collect();
    let mut group = c.benchmark_group("fda");
    group.throughput(Throughput::Elements(1));
    group.bench_function("3x512x512", |b| b.iter(|| fda.apply(&source, &target, 512, 512).expect("fda")));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = bench_fda, bench_pipeline
}
criterion_main!(benches);
