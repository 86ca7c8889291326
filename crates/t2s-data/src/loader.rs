//! The parallel batch loader: decodes, augments and batches samples on its own rayon pool and
//! keeps a bounded number of batches ready ahead of the consumer.
//!
//! **Determinism.** Everything random about draw `n` (the `n`-th sample handed out since batch 0:
//! batch `k` holds draws `k·B .. k·B + B`) comes from its own ChaCha8 streams of the loader's
//! seed: the augmentation from stream `AUGMENT_STREAM | n`, a rare-class draw from
//! `RARE_CLASS_STREAM | n`, and the order of epoch `e` from `SHUFFLE_STREAM | e`. Batches are
//! delivered in order. So the sequence of batches depends only on the seed, the dataset and the
//! configuration, not on the number of threads or their timing, and a run can resume at any batch
//! (`start_batch`) with exactly the batches it would have seen. Give the source and target
//! loaders different seeds.
//!
//! **Errors.** A sample that fails to load or augment turns its batch into an `Err`, delivered in
//! its place; the loader stops after it. A worker that panics is reported as
//! [`DataError::Loader`].
//!
//! A trainer that needs a source and a target batch per iteration runs two loaders and takes one
//! batch from each.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::error::{DataError, Result};
use crate::rcs::RareClassSampler;
use crate::sample::{seeded_rng, Dataset, Sample};
use crate::transforms::augment::{augment, AugmentConfig};
use crate::transforms::planar::{normalize_planar_in_place, to_planar_u8};

/// Stream tag of the augmentation of draw `n` (OR-ed with `n`).
pub const AUGMENT_STREAM: u64 = 1 << 62;
/// Stream tag of the permutation of epoch `e` (OR-ed with `e`).
pub const SHUFFLE_STREAM: u64 = 2 << 62;
/// Stream tag of the rare-class draw of draw `n` (OR-ed with `n`).
pub const RARE_CLASS_STREAM: u64 = 3 << 62;

/// Which dataset index each draw reads.
#[derive(Debug, Clone)]
pub enum SampleOrder {
    /// Indices `0, 1, …, len − 1` once, then the loader ends; the last batch may be smaller
    /// (evaluation).
    Sequential,
    /// Endless epochs, each a fresh seeded permutation of all indices (training on the target).
    Shuffle,
    /// Endless rare class sampling (training on the source); the sampler's image indices must be
    /// indices of the dataset.
    RareClass(Arc<RareClassSampler>),
}

/// Loader settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Samples per batch (DAFormer: 2).
    pub batch_size: usize,
    /// Worker threads decoding and augmenting.
    pub threads: usize,
    /// Batches kept ready ahead of the consumer (the channel bound).
    pub prefetch: usize,
    /// Seed of every random decision (module documentation).
    pub seed: u64,
    /// First batch to produce (resuming a run).
    pub start_batch: u64,
    /// Step between the batches produced: `start_batch`, `start_batch + stride`, … (at least 1).
    /// Replica `r` of `N` data-parallel replicas takes every `N`-th batch from `r`, so that
    /// together they read the batches one replica would, as PyTorch's `DistributedSampler` shards.
    pub stride: u64,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self { batch_size: 2, threads: 4, prefetch: 4, seed: 0, start_batch: 0, stride: 1 }
    }
}

/// One batch, every buffer row-major in the documented shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Batch number (`start_batch`, `start_batch + stride`, …).
    pub index: u64,
    /// Image height `H` (every sample of the batch has it).
    pub height: usize,
    /// Image width `W`.
    pub width: usize,
    /// `[B, 3, H, W]` ImageNet-normalised network input.
    pub images: Vec<f32>,
    /// `[B, 3, H, W]` raw RGB bytes after the geometric augmentation, for FDA, ClassMix and the
    /// strong augmentation, which work before normalisation.
    pub raw: Vec<u8>,
    /// `[B, H, W]` train ids (255 = ignore) when the dataset has labels.
    pub labels: Option<Vec<u8>>,
    /// Sample names, `B` of them.
    pub names: Vec<String>,
    /// Dataset indices of the samples.
    pub indices: Vec<usize>,
    /// With rare class sampling, the class each sample was drawn for.
    pub rare_classes: Vec<Option<u8>>,
}

impl Batch {
    /// Number of samples `B`.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True for a batch without samples (never produced by the loader).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// What one draw reads.
#[derive(Debug, Clone, Copy)]
struct Draw {
    n: u64,
    index: usize,
    class: Option<u8>,
}

/// Everything a worker needs, shared by reference.
struct Plan {
    dataset: Arc<dyn Dataset>,
    augment: AugmentConfig,
    order: SampleOrder,
    seed: u64,
    batch_size: usize,
}

impl Plan {
    /// Draws of batch `k`, or `None` past the end of a sequential pass. `epoch` caches the
    /// current permutation of a shuffled order.
    fn draws(&self, k: u64, epoch: &mut Option<(u64, Vec<usize>)>) -> Option<Vec<Draw>> {
        let len = self.dataset.len() as u64;
        let first = k * self.batch_size as u64;
        let end = match self.order {
            SampleOrder::Sequential => (first + self.batch_size as u64).min(len),
            _ => first + self.batch_size as u64,
        };
        if first >= end {
            return None;
        }
        let draws = (first..end)
            .map(|n| match &self.order {
                SampleOrder::Sequential => Draw { n, index: n as usize, class: None },
                SampleOrder::Shuffle => {
                    let e = n / len;
                    if epoch.as_ref().is_none_or(|(cached, _)| *cached != e) {
                        let mut perm: Vec<usize> = (0..len as usize).collect();
                        perm.shuffle(&mut seeded_rng(self.seed, SHUFFLE_STREAM | e));
                        *epoch = Some((e, perm));
                    }
                    let perm = &epoch.as_ref().expect("set above").1;
                    Draw { n, index: perm[(n % len) as usize], class: None }
                }
                SampleOrder::RareClass(rcs) => {
                    let (class, index) = rcs.sample(&mut seeded_rng(self.seed, RARE_CLASS_STREAM | n));
                    Draw { n, index, class: Some(class) }
                }
            })
            .collect();
        Some(draws)
    }

    /// Decodes and augments one draw.
    fn load(&self, d: &Draw) -> Result<Sample> {
        if d.index >= self.dataset.len() {
            return Err(DataError::Setting {
                setting: "rare class sampling".into(),
                message: format!(
                    "image index {} but the dataset has {} samples; the class statistics belong to another dataset",
                    d.index,
                    self.dataset.len()
                ),
            });
        }
        let sample = self.dataset.get(d.index)?;
        augment(sample, &self.augment, &mut seeded_rng(self.seed, AUGMENT_STREAM | d.n))
    }
}

/// Stacks loaded samples into batch `index`; they must share one size and all or none have a
/// label.
fn assemble(index: u64, draws: &[Draw], samples: Vec<Sample>) -> Result<Batch> {
    let (w, h) = samples.first().map(|s| s.image.dimensions()).unwrap_or((0, 0));
    if let Some(s) = samples.iter().find(|s| s.image.dimensions() != (w, h)) {
        return Err(DataError::Shape {
            what: format!(
                "batch {index}: {} is {}×{} but {} is {w}×{h}; crop or resize to one size, or use batch size 1",
                s.name,
                s.image.width(),
                s.image.height(),
                samples[0].name
            ),
        });
    }
    let labelled = samples.iter().filter(|s| s.label.is_some()).count();
    if labelled != 0 && labelled != samples.len() {
        return Err(DataError::Shape { what: format!("batch {index}: {labelled} of {} samples have labels", samples.len()) });
    }
    let plane = w as usize * h as usize;
    let mut raw = Vec::with_capacity(samples.len() * 3 * plane);
    let mut labels = (labelled > 0).then(|| Vec::with_capacity(samples.len() * plane));
    let mut names = Vec::with_capacity(samples.len());
    for s in samples {
        raw.extend(to_planar_u8(&s.image));
        if let (Some(all), Some(l)) = (labels.as_mut(), s.label) {
            all.extend(l.into_raw());
        }
        names.push(s.name);
    }
    let mut images: Vec<f32> = raw.iter().map(|&v| f32::from(v)).collect();
    normalize_planar_in_place(&mut images, plane);
    Ok(Batch {
        index,
        height: h as usize,
        width: w as usize,
        images,
        raw,
        labels,
        names,
        indices: draws.iter().map(|d| d.index).collect(),
        rare_classes: draws.iter().map(|d| d.class).collect(),
    })
}

/// Messages from the producer thread.
enum Message {
    Batch(Result<Batch>),
    End,
}

/// The producer: computes windows of batches in parallel and sends them in order.
fn produce(plan: Plan, pool: rayon::ThreadPool, threads: usize, (start, stride): (u64, u64), tx: SyncSender<Message>) {
    // Enough draws per parallel step to keep every thread busy.
    let window = (2 * threads).div_ceil(plan.batch_size).max(1) as u64;
    let mut epoch = None;
    let mut next = start;
    loop {
        let mut batches = Vec::new();
        for k in (0..window).map(|i| next + i * stride) {
            match plan.draws(k, &mut epoch) {
                Some(d) => batches.push((k, d)),
                None => break,
            }
        }
        if batches.is_empty() {
            let _ = tx.send(Message::End);
            return;
        }
        next += batches.len() as u64 * stride;
        let flat: Vec<Draw> = batches.iter().flat_map(|(_, d)| d.iter().copied()).collect();
        let mut loaded: Vec<Result<Sample>> = pool.install(|| flat.par_iter().map(|d| plan.load(d)).collect());
        for (k, draws) in &batches {
            let rest = loaded.split_off(draws.len());
            let samples: Result<Vec<Sample>> = std::mem::replace(&mut loaded, rest).into_iter().collect();
            let batch = samples.and_then(|s| assemble(*k, draws, s));
            let failed = batch.is_err();
            if tx.send(Message::Batch(batch)).is_err() || failed {
                return;
            }
        }
    }
}

/// The loader; iterate it (or call [`Loader::next_batch`]) for `Result<Batch>`es in order.
/// Dropping it stops the workers.
pub struct Loader {
    receiver: Option<Receiver<Message>>,
    worker: Option<JoinHandle<()>>,
    finished: bool,
}

impl Loader {
    /// Starts the workers. Errors on an empty dataset, a zero batch size, thread count or prefetch
    /// depth, or when the thread pool cannot be created.
    pub fn new(dataset: Arc<dyn Dataset>, augment: AugmentConfig, order: SampleOrder, cfg: LoaderConfig) -> Result<Self> {
        for (name, v) in
            [("batch_size", cfg.batch_size), ("threads", cfg.threads), ("prefetch", cfg.prefetch), ("stride", cfg.stride as usize)]
        {
            if v == 0 {
                return Err(DataError::Setting { setting: format!("loader {name}"), message: "must be at least 1".into() });
            }
        }
        if dataset.is_empty() {
            return Err(DataError::Setting { setting: "loader".into(), message: "the dataset has no samples".into() });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.threads)
            .thread_name(|i| format!("t2s-loader-{i}"))
            .build()
            .map_err(|e| DataError::Loader { message: format!("cannot start {} worker threads: {e}", cfg.threads) })?;
        let (tx, rx) = sync_channel(cfg.prefetch);
        let plan = Plan { dataset, augment, order, seed: cfg.seed, batch_size: cfg.batch_size };
        let (threads, start, stride) = (cfg.threads, cfg.start_batch, cfg.stride);
        let worker = std::thread::Builder::new()
            .name("t2s-loader".into())
            .spawn(move || produce(plan, pool, threads, (start, stride), tx))
            .map_err(|e| DataError::Loader { message: format!("cannot start the producer thread: {e}") })?;
        Ok(Self { receiver: Some(rx), worker: Some(worker), finished: false })
    }

    /// The next batch; `None` after a sequential pass ends or after an error was returned.
    pub fn next_batch(&mut self) -> Option<Result<Batch>> {
        if self.finished {
            return None;
        }
        let message = self.receiver.as_ref()?.recv();
        match message {
            Ok(Message::Batch(Ok(b))) => Some(Ok(b)),
            Ok(Message::Batch(Err(e))) => {
                self.finished = true;
                Some(Err(e))
            }
            Ok(Message::End) => {
                self.finished = true;
                None
            }
            Err(_) => {
                // The producer hung up without `End`: it panicked (a dataset or transform bug).
                self.finished = true;
                Some(Err(DataError::Loader { message: "a worker thread panicked; see the message above".into() }))
            }
        }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Hanging up first makes the producer's next send fail, so it returns and can be joined.
        self.receiver.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rcs::RcsConfig;
    use crate::transforms::{CropConfig, Resize};
    use crate::LabelSpace;
    use image::{GrayImage, RgbImage};

    /// Images of varying size with striped labels; `fail_at` fails to "decode", `panic_at`
    /// panics (a bug in a reader).
    struct Synthetic {
        len: usize,
        fail_at: Option<usize>,
        panic_at: Option<usize>,
        labels: bool,
        space: LabelSpace,
    }

    impl Synthetic {
        fn new(len: usize) -> Self {
            Self { len, fail_at: None, panic_at: None, labels: true, space: LabelSpace::cityscapes() }
        }
    }

    impl Dataset for Synthetic {
        fn len(&self) -> usize {
            self.len
        }
        fn name(&self, index: usize) -> String {
            format!("synthetic-{index}")
        }
        fn get(&self, index: usize) -> Result<Sample> {
            assert!(Some(index) != self.panic_at, "reader bug at {index}");
            if Some(index) == self.fail_at {
                return Err(DataError::Decode { path: format!("img{index}.png").into(), message: "truncated".into() });
            }
            let (w, h) = (40 + index as u32 % 7, 30 + index as u32 % 5);
            let image = RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([(x * 5 + index as u32) as u8, (y * 7) as u8, (x * y + index as u32 * 13) as u8])
            });
            let label = self.labels.then(|| GrayImage::from_fn(w, h, |x, y| image::Luma([((x / 6 + y / 5 + index as u32) % 4) as u8])));
            Ok(Sample { name: self.name(index), image, label })
        }
        fn label_space(&self) -> &LabelSpace {
            &self.space
        }
        fn has_labels(&self) -> bool {
            self.labels
        }
    }

    fn training() -> AugmentConfig {
        AugmentConfig { resize: Resize::Exact { width: 36, height: 28 }, crop: Some(CropConfig::daformer(16, 24)), flip_prob: 0.5 }
    }

    fn take(ds: Synthetic, order: SampleOrder, cfg: LoaderConfig, n: usize) -> Vec<Batch> {
        Loader::new(Arc::new(ds), training(), order, cfg).unwrap().take(n).map(|b| b.unwrap()).collect()
    }

    #[test]
    fn same_batches_across_runs_and_thread_counts() {
        let cfg = |threads| LoaderConfig { batch_size: 3, threads, prefetch: 2, seed: 42, start_batch: 0, stride: 1 };
        let one = take(Synthetic::new(10), SampleOrder::Shuffle, cfg(1), 7);
        let four = take(Synthetic::new(10), SampleOrder::Shuffle, cfg(4), 7);
        let again = take(Synthetic::new(10), SampleOrder::Shuffle, cfg(4), 7);
        assert_eq!(one, four);
        assert_eq!(four, again);
        // A different seed gives a different sequence.
        let other = take(Synthetic::new(10), SampleOrder::Shuffle, LoaderConfig { seed: 43, ..cfg(4) }, 7);
        assert_ne!(one, other);
        // Resuming at batch 4 gives batches 4, 5, 6 of the full run.
        let resumed = take(Synthetic::new(10), SampleOrder::Shuffle, LoaderConfig { start_batch: 4, ..cfg(2) }, 3);
        assert_eq!(&resumed[..], &one[4..]);
    }

    #[test]
    fn replicas_share_the_batches_of_one_loader() {
        let cfg = LoaderConfig { batch_size: 2, threads: 2, prefetch: 2, seed: 5, start_batch: 0, stride: 1 };
        let counts: Vec<Vec<u64>> = (0..9).map(|i| vec![1000, 1000, if i % 3 == 0 { 50 } else { 0 }]).collect();
        let rcs = Arc::new(RareClassSampler::new(&counts, RcsConfig { temperature: 0.01, min_pixels: 10 }).unwrap());
        for order in [SampleOrder::Shuffle, SampleOrder::RareClass(rcs)] {
            let one = take(Synthetic::new(9), order.clone(), cfg, 8);
            // Replica r of 2 takes batches r, r + 2, …; resumed at iteration 2 it starts at 2·2 + r.
            for r in 0..2u64 {
                let replica = take(Synthetic::new(9), order.clone(), LoaderConfig { start_batch: r, stride: 2, ..cfg }, 4);
                let want: Vec<&Batch> = one.iter().skip(r as usize).step_by(2).collect();
                assert_eq!(replica.iter().collect::<Vec<_>>(), want, "replica {r}");
                let resumed = take(Synthetic::new(9), order.clone(), LoaderConfig { start_batch: 4 + r, stride: 2, ..cfg }, 2);
                assert_eq!(&resumed[..], &replica[2..]);
            }
        }
        let zero = Loader::new(Arc::new(Synthetic::new(3)), training(), SampleOrder::Shuffle, LoaderConfig { stride: 0, ..cfg });
        let e = zero.err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("loader stride: must be at least 1"));
    }

    #[test]
    fn batches_hold_the_augmented_samples_in_documented_layout() {
        let cfg = LoaderConfig { batch_size: 3, threads: 2, prefetch: 1, seed: 7, start_batch: 0, stride: 1 };
        let batches = take(Synthetic::new(10), SampleOrder::Shuffle, cfg, 4);
        let ds = Synthetic::new(10);
        for b in &batches {
            assert_eq!((b.len(), b.height, b.width), (3, 16, 24));
            assert_eq!(b.images.len(), 3 * 3 * 16 * 24);
            let labels = b.labels.as_ref().unwrap();
            for (slot, &idx) in b.indices.iter().enumerate() {
                // Redo the draw by hand: stream AUGMENT_STREAM | n with n = index·B + slot.
                let n = b.index * 3 + slot as u64;
                let s = augment(ds.get(idx).unwrap(), &training(), &mut seeded_rng(7, AUGMENT_STREAM | n)).unwrap();
                let plane = 16 * 24;
                assert_eq!(&b.raw[slot * 3 * plane..(slot + 1) * 3 * plane], &to_planar_u8(&s.image)[..]);
                assert_eq!(&labels[slot * plane..(slot + 1) * plane], s.label.unwrap().as_raw().as_slice());
                assert_eq!(b.names[slot], format!("synthetic-{idx}"));
                // Normalised = (raw − mean) / std, channel 1 checked at one pixel.
                let (r, v) = (b.raw[slot * 3 * plane + plane + 5] as f32, b.images[slot * 3 * plane + plane + 5]);
                assert!((v - (r - 116.28) / 57.12).abs() < 1e-5);
            }
        }
        // Shuffle: draws 0..10 are a permutation of the 10 indices (epoch 0), 10..20 another.
        let all: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        let mut first: Vec<usize> = all[..10].to_vec();
        first.sort_unstable();
        assert_eq!(first, (0..10).collect::<Vec<_>>());
        assert_ne!(&all[..2], &all[10..12], "epochs are shuffled independently");
    }

    #[test]
    fn sequential_ends_with_a_partial_batch() {
        let cfg = LoaderConfig { batch_size: 4, threads: 3, prefetch: 1, seed: 0, start_batch: 0, stride: 1 };
        let mut loader = Loader::new(Arc::new(Synthetic::new(10)), training(), SampleOrder::Sequential, cfg).unwrap();
        let sizes: Vec<usize> = loader.by_ref().map(|b| b.unwrap().len()).collect();
        assert_eq!(sizes, [4, 4, 2]);
        assert!(loader.next_batch().is_none());
    }

    #[test]
    fn load_errors_reach_the_consumer_in_order() {
        let ds = Synthetic { fail_at: Some(5), ..Synthetic::new(10) };
        let cfg = LoaderConfig { batch_size: 2, threads: 4, prefetch: 3, seed: 0, start_batch: 0, stride: 1 };
        let mut loader = Loader::new(Arc::new(ds), training(), SampleOrder::Sequential, cfg).unwrap();
        assert_eq!(loader.next_batch().unwrap().unwrap().indices, [0, 1]);
        assert_eq!(loader.next_batch().unwrap().unwrap().indices, [2, 3]);
        let err = loader.next_batch().unwrap().unwrap_err().to_string();
        assert!(err.contains("img5.png") && err.contains("truncated"), "{err}");
        assert!(loader.next_batch().is_none());
    }

    #[test]
    fn a_panicking_reader_is_reported_not_propagated() {
        let ds = Synthetic { panic_at: Some(1), ..Synthetic::new(6) };
        let cfg = LoaderConfig { batch_size: 2, threads: 2, prefetch: 1, seed: 0, start_batch: 0, stride: 1 };
        let mut loader = Loader::new(Arc::new(ds), training(), SampleOrder::Sequential, cfg).unwrap();
        let err = loader.next_batch().unwrap().unwrap_err();
        assert!(matches!(err, DataError::Loader { .. }), "{err}");
        assert!(loader.next_batch().is_none());
    }

    #[test]
    fn mismatched_sizes_and_bad_settings_are_errors() {
        // No crop: the synthetic images differ in size, so a batch of two cannot be stacked.
        let cfg = LoaderConfig { batch_size: 2, threads: 1, prefetch: 1, seed: 0, start_batch: 0, stride: 1 };
        let mut loader = Loader::new(Arc::new(Synthetic::new(4)), AugmentConfig::identity(), SampleOrder::Sequential, cfg).unwrap();
        let err = loader.next_batch().unwrap().unwrap_err().to_string();
        assert!(err.contains("size mismatch") && err.contains("batch size 1"), "{err}");
        for bad in [LoaderConfig { batch_size: 0, ..cfg }, LoaderConfig { threads: 0, ..cfg }, LoaderConfig { prefetch: 0, ..cfg }] {
            assert!(Loader::new(Arc::new(Synthetic::new(4)), training(), SampleOrder::Shuffle, bad).is_err());
        }
        assert!(Loader::new(Arc::new(Synthetic::new(0)), training(), SampleOrder::Shuffle, cfg).is_err());
        // Unlabelled datasets give no labels.
        let ds = Synthetic { labels: false, ..Synthetic::new(4) };
        let b = Loader::new(Arc::new(ds), training(), SampleOrder::Shuffle, cfg).unwrap().next_batch().unwrap().unwrap();
        assert!(b.labels.is_none());
    }

    #[test]
    fn rare_class_order_reads_eligible_images() {
        // Class 3 occurs (above 10 pixels) only in images 2 and 9.
        let counts: Vec<Vec<u64>> = (0..10).map(|i| vec![1000, 1000, 1000, if i == 2 || i == 9 { 50 } else { 0 }]).collect();
        let rcs = Arc::new(RareClassSampler::new(&counts, RcsConfig { temperature: 0.01, min_pixels: 10 }).unwrap());
        let cfg = LoaderConfig { batch_size: 2, threads: 2, prefetch: 2, seed: 1, start_batch: 0, stride: 1 };
        let batches = take(Synthetic::new(10), SampleOrder::RareClass(rcs.clone()), cfg, 5);
        for b in &batches {
            for (slot, (&idx, class)) in b.indices.iter().zip(&b.rare_classes).enumerate() {
                let c = class.expect("rare class recorded");
                assert!(rcs.images_with(c).contains(&idx));
                let n = b.index * 2 + slot as u64;
                assert_eq!((c, idx), rcs.sample(&mut seeded_rng(1, RARE_CLASS_STREAM | n)));
            }
        }
    }
}
