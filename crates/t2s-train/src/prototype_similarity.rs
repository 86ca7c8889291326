//! Cross-domain class prototype similarity (the analysis behind Figure 1 of the T2S-DA paper):
//! per class, the mean of the network's contrastive embedding (projection head output) over the
//! labelled pixels of a source set and of a labelled target set, and the cosine between the two
//! means. Labels are brought to embedding resolution with the majority rule training uses
//! ([`t2s_loss::downscale_labels_majority`]); the per-class sums are one-hot matmuls on the device
//! ([`t2s_loss::class_sums::class_sums`]) of which only `C × D` numbers per image are read back.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use t2s_data::transforms::resize::{rescale_size, resize_bilinear, resize_nearest};
use t2s_data::{Dataset, IGNORE_LABEL};
use t2s_model::Segmentor;
use t2s_model::T2sBackend;

use crate::{Result, TrainError};

/// Per-class sums of embedding vectors and pixel counts over the images of one domain.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassEmbeddingSums {
    num_classes: usize,
    dim: usize,
    /// `[C, D]` row-major.
    sums: Vec<f64>,
    /// Embedding-resolution pixels per class `[C]`.
    pixels: Vec<u64>,
}

impl ClassEmbeddingSums {
    /// Empty sums for `num_classes` classes of `dim`-dimensional embeddings.
    pub fn new(num_classes: usize, dim: usize) -> Self {
        Self { num_classes, dim, sums: vec![0.0; num_classes * dim], pixels: vec![0; num_classes] }
    }

    /// Number of classes C.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Embedding dimension D.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Adds `embedding` `[N, D, h, w]` under `labels` `[N, h, w]` (class ids; anything outside
    /// `0..C`, such as the ignore label 255, counts for no class). Reads back `C·D + C` numbers.
    pub fn add<B: Backend>(&mut self, embedding: Tensor<B, 4>, labels: Tensor<B, 3, Int>) -> Result<()> {
        let [n, d, h, w] = embedding.dims();
        if d != self.dim || labels.dims() != [n, h, w] {
            return Err(TrainError::Usage(format!(
                "prototype sums: embedding {:?} and labels {:?} do not fit {} classes of dimension {}",
                [n, d, h, w],
                labels.dims(),
                self.num_classes,
                self.dim
            )));
        }
        let p = n * h * w;
        let values = embedding.permute([0, 2, 3, 1]).reshape([p, d]); // [P, D]
        let (sums, counts) = t2s_loss::class_sums::class_sums(values, labels.reshape([p]), self.num_classes); // [C, D], [C]
        let sums = sums.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| TrainError::Usage(format!("reading sums: {e:?}")))?;
        let counts =
            counts.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| TrainError::Usage(format!("reading counts: {e:?}")))?;
        for (acc, v) in self.sums.iter_mut().zip(&sums) {
            *acc += *v as f64;
        }
        for (acc, v) in self.pixels.iter_mut().zip(&counts) {
            *acc += v.round() as u64;
        }
        Ok(())
    }

    /// Embedding-resolution pixels per class `[C]`.
    pub fn pixels(&self) -> &[u64] {
        &self.pixels
    }

    /// The prototype of class `c`: the mean embedding normalised to unit length (`[D]`); `None`
    /// when the class has no pixel (or its mean is the zero vector).
    pub fn prototype(&self, c: usize) -> Option<Vec<f64>> {
        if c >= self.num_classes || self.pixels[c] == 0 {
            return None;
        }
        let row = &self.sums[c * self.dim..(c + 1) * self.dim];
        // The mean's direction is the sum's: normalising the sum is normalising the mean.
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        (norm > 0.0).then(|| row.iter().map(|v| v / norm).collect())
    }
}

/// Cosine similarity per class `[C]` between the source and target prototypes (the dot product
/// of the two unit-length prototypes, clamped to `[-1, 1]`); `None` for a class missing in either
/// domain.
pub fn prototype_cosines(source: &ClassEmbeddingSums, target: &ClassEmbeddingSums) -> Result<Vec<Option<f64>>> {
    same_shape(source, target)?;
    Ok((0..source.num_classes)
        .map(|c| {
            let (s, t) = (source.prototype(c)?, target.prototype(c)?);
            Some(s.iter().zip(&t).map(|(a, b)| a * b).sum::<f64>().clamp(-1.0, 1.0))
        })
        .collect())
}

/// How well target class prototypes sit on their own source prototypes, over the classes present
/// in both domains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alignment {
    /// Classes present in both domains.
    pub classes: usize,
    /// Of those, how many target prototypes are nearer (in cosine) to their own class's source
    /// prototype than to any other class's: what a nearest-prototype classifier of the target
    /// means would get right.
    pub nearest_own: usize,
    /// Mean cosine between a class's target and source prototypes.
    pub same: f64,
    /// Mean cosine between a class's target prototype and the source prototypes of the other
    /// classes: how far apart the classes are; `same − cross` is the margin the contrastive term
    /// widens.
    pub cross: f64,
}

/// [`Alignment`] of `target`'s prototypes to `source`'s; `None` when no class is in both.
pub fn prototype_alignment(source: &ClassEmbeddingSums, target: &ClassEmbeddingSums) -> Result<Option<Alignment>> {
    same_shape(source, target)?;
    let src: Vec<Option<Vec<f64>>> = (0..source.num_classes).map(|c| source.prototype(c)).collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let (mut classes, mut nearest_own, mut same, mut cross, mut cross_pairs) = (0, 0, 0.0, 0.0, 0);
    for c in 0..target.num_classes {
        let (Some(t), Some(own)) = (target.prototype(c), src[c].as_ref()) else { continue };
        let own = dot(&t, own);
        let others: Vec<f64> = src.iter().enumerate().filter(|&(k, _)| k != c).filter_map(|(_, p)| Some(dot(&t, p.as_ref()?))).collect();
        classes += 1;
        same += own;
        nearest_own += usize::from(others.iter().all(|&o| own > o));
        cross += others.iter().sum::<f64>();
        cross_pairs += others.len();
    }
    Ok((classes > 0).then(|| Alignment {
        classes,
        nearest_own,
        same: same / classes as f64,
        cross: if cross_pairs > 0 { cross / cross_pairs as f64 } else { 0.0 },
    }))
}

/// An error unless both domains' sums have the same classes and dimension.
fn same_shape(source: &ClassEmbeddingSums, target: &ClassEmbeddingSums) -> Result<()> {
    if source.num_classes != target.num_classes || source.dim != target.dim {
        return Err(TrainError::Usage(format!(
            "source prototypes ({} classes × {}) and target prototypes ({} classes × {}) differ in shape",
            source.num_classes, source.dim, target.num_classes, target.dim
        )));
    }
    Ok(())
}

/// Pearson correlation of the pairs where both values are present; `None` with fewer than two
/// such pairs or when either side has no variance.
pub fn pearson(xs: &[Option<f64>], ys: &[Option<f64>]) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = xs.iter().zip(ys).filter_map(|(x, y)| Some(((*x)?, (*y)?))).collect();
    if pairs.len() < 2 {
        return None;
    }
    let n = pairs.len() as f64;
    let (mx, my) = (pairs.iter().map(|p| p.0).sum::<f64>() / n, pairs.iter().map(|p| p.1).sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in &pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// The features a prototype is the class mean of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeatureSpace {
    /// The projection head's unit-length embedding: the space the contrastive term acts in.
    #[default]
    Embedding,
    /// The feature the projection head and the classifier read
    /// ([`Segmentor::head_feature`]): comparable between networks trained with and without the
    /// contrastive term, and available on networks without a projection head.
    Decoder,
}

impl FeatureSpace {
    /// The name `t2s similarity --space` takes.
    pub fn name(self) -> &'static str {
        match self {
            FeatureSpace::Embedding => "embedding",
            FeatureSpace::Decoder => "decoder",
        }
    }
}

/// How the images of one set are turned into embeddings and embedding-resolution labels.
#[derive(Debug, Clone, PartialEq)]
pub struct PrototypeOptions {
    /// Which features the prototypes are taken of.
    pub space: FeatureSpace,
    /// Use the first this many images of the set (or all, if it has fewer).
    pub images: usize,
    /// Keep-ratio resize `[long, short]` of image (bilinear) and label (nearest) first.
    pub resize: Option<[u32; 2]>,
    /// Input pixels per embedding pixel ([`t2s_model::SegmentorConfig::logit_stride`]).
    pub stride: usize,
    /// Minimum winning fraction of the majority rule (`t2s.label_min_fraction`).
    pub min_fraction: f32,
    /// The set's name and setting, for messages (e.g. `data.source (synthetic source train)`).
    pub set: String,
}

/// Sums the features of `model` in `options.space` (the embedding needs a projection head) per
/// ground-truth class over the first `options.images` samples of `dataset` (which must have
/// labels); calls `progress` with the number of images done.
///
/// Each image runs whole, as evaluation's whole-image mode, on the inference backend. Images are
/// zero-padded (the ImageNet mean after normalisation) at the bottom and right to a multiple of
/// `options.stride` of at least the network's `min_predict_side`, their labels padded with the ignore label,
/// so that every embedding pixel covers exactly one `stride × stride` label block.
pub fn embedding_class_sums<B: T2sBackend>(
    model: &Segmentor<B>,
    device: &B::Device,
    dataset: &dyn Dataset,
    options: &PrototypeOptions,
    progress: &dyn Fn(usize),
) -> Result<ClassEmbeddingSums> {
    let set = &options.set;
    if options.space == FeatureSpace::Embedding && model.proj_head.is_none() {
        return Err(TrainError::Usage("the network has no projection head: prototype similarity needs [model.network.projection]".into()));
    }
    if options.images == 0 || options.stride == 0 {
        return Err(TrainError::Usage(format!("{set}: need at least one image and a positive stride")));
    }
    let classes = dataset.label_space().len();
    let mut sums: Option<ClassEmbeddingSums> = None;
    for i in 0..options.images.min(dataset.len()) {
        let sample = dataset.get(i)?;
        let label =
            sample.label.ok_or_else(|| TrainError::Usage(format!("{set}: no label for {}; prototypes need labels", sample.name)))?;
        if label.dimensions() != sample.image.dimensions() {
            return Err(TrainError::Usage(format!(
                "{set}: {}: image {:?} and label {:?} differ in size",
                sample.name,
                sample.image.dimensions(),
                label.dimensions()
            )));
        }
        let (image, label) = match options.resize {
            Some([long, short]) => {
                let (w, h) = rescale_size(sample.image.width(), sample.image.height(), long, short);
                (resize_bilinear(&sample.image, w, h), resize_nearest(&label, w, h))
            }
            None => (sample.image, label),
        };
        let (w, h) = (image.width() as usize, image.height() as usize);
        let s = options.stride;
        let round_up = |v: usize| v.max(model.min_predict_side()).div_ceil(s) * s;
        let (pw, ph) = (round_up(w), round_up(h));
        let x = crate::predict::image_tensor::<B>(&image, device); // [1, 3, h, w]
        let x = if (pw, ph) == (w, h) { x } else { Tensor::zeros([1, 3, ph, pw], device).slice_assign([0..1, 0..3, 0..h, 0..w], x) }; // [1, 3, ph, pw]
        let mut padded = vec![IGNORE_LABEL as i64; ph * pw];
        for (y, row) in label.as_raw().chunks(w).enumerate() {
            for (col, &v) in row.iter().enumerate() {
                padded[y * pw + col] = v as i64;
            }
        }
        let embedding = match options.space {
            FeatureSpace::Embedding => model.forward(x).embedding.ok_or_else(|| {
                TrainError::Usage("the network gave no embedding: prototype similarity needs [model.network.projection]".into())
            })?,
            FeatureSpace::Decoder => model.head_feature(x),
        }; // [1, D, eh, ew]
        let [_, d, eh, ew] = embedding.dims();
        if (eh * s, ew * s) != (ph, pw) {
            return Err(TrainError::Usage(format!(
                "{set}: {}: the embedding is {eh}×{ew} for a {ph}×{pw} input (image {h}×{w} padded), not 1/{s} of it; \
                 the network's stride does not divide this size",
                sample.name
            )));
        }
        let labels = Tensor::<B, 3, Int>::from_data(TensorData::new(padded, [1, ph, pw]), device);
        let labels = t2s_loss::downscale_labels_majority(labels, classes, s, options.min_fraction, IGNORE_LABEL as usize)
            .map_err(|e| TrainError::Usage(format!("{set}: t2s.label_min_fraction: {e}")))?; // [1, eh, ew]
        sums.get_or_insert_with(|| ClassEmbeddingSums::new(classes, d)).add(embedding, labels)?;
        progress(i + 1);
    }
    sums.ok_or_else(|| TrainError::Usage(format!("{set}: holds no images")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    /// A `[1, D, h, w]` embedding from per-pixel vectors given row-major.
    fn embedding(pixels: &[[f32; 2]], h: usize, w: usize) -> Tensor<Flex, 4> {
        let data: Vec<f32> = (0..2).flat_map(|d| pixels.iter().map(move |p| p[d])).collect(); // channel-major
        Tensor::<Flex, 1>::from_floats(data.as_slice(), &Default::default()).reshape([1, 2, h, w])
    }

    fn labels(v: &[i64], h: usize, w: usize) -> Tensor<Flex, 3, Int> {
        Tensor::from_data(TensorData::new(v.to_vec(), [1, h, w]), &Default::default())
    }

    #[test]
    fn hand_computed_prototypes_and_cosines() {
        // Source: class 0 at (1, 0) and (0, 1) → mean direction (1, 1)/√2; class 1 at (1, 0);
        // one ignored pixel that must not count.
        let mut source = ClassEmbeddingSums::new(3, 2);
        source.add(embedding(&[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [5.0, 5.0]], 2, 2), labels(&[0, 0, 1, 255], 2, 2)).unwrap();
        // Target over two images: class 0 at (1, 0); class 1 at (−0.6, 0.8) twice; class 2
        // (absent from the source) at (0, 1).
        let mut target = ClassEmbeddingSums::new(3, 2);
        target.add(embedding(&[[1.0, 0.0], [-0.6, 0.8]], 1, 2), labels(&[0, 1], 1, 2)).unwrap();
        target.add(embedding(&[[-0.6, 0.8], [0.0, 1.0]], 2, 1), labels(&[1, 2], 2, 1)).unwrap();
        assert_eq!(source.pixels(), &[2, 1, 0]);
        assert_eq!(target.pixels(), &[1, 2, 1]);
        let p0 = source.prototype(0).unwrap();
        assert!((p0[0] - 0.5f64.sqrt()).abs() < 1e-6 && (p0[1] - 0.5f64.sqrt()).abs() < 1e-6, "{p0:?}");
        assert!(source.prototype(2).is_none());
        let cos = prototype_cosines(&source, &target).unwrap();
        // class 0: (1,1)/√2 · (1,0) = 1/√2; class 1: (1,0) · (−0.6,0.8) = −0.6; class 2: absent.
        assert!((cos[0].unwrap() - 0.5f64.sqrt()).abs() < 1e-6, "{cos:?}");
        assert!((cos[1].unwrap() + 0.6).abs() < 1e-6, "{cos:?}");
        assert_eq!(cos[2], None);
        // Alignment over classes 0 and 1 (class 2 has no source prototype). Same-class cosines
        // 1/√2 and −0.6; cross: target 0 · source 1 = 1, target 1 · source 0 = 0.2/√2; target 0
        // is nearer source 1 (1 > 1/√2) and target 1 nearer source 0 (0.14 > −0.6): none own.
        let a = prototype_alignment(&source, &target).unwrap().unwrap();
        assert_eq!((a.classes, a.nearest_own), (2, 0));
        assert!((a.same - (0.5f64.sqrt() - 0.6) / 2.0).abs() < 1e-6, "{a:?}");
        assert!((a.cross - (1.0 + 0.2 / 2f64.sqrt()) / 2.0).abs() < 1e-6, "{a:?}");
        let own = prototype_alignment(&target, &target).unwrap().unwrap();
        assert_eq!((own.classes, own.nearest_own), (3, 3));
        assert!(prototype_alignment(&source, &ClassEmbeddingSums::new(3, 2)).unwrap().is_none());
        // Identical domains: cosine 1 wherever present.
        let same = prototype_cosines(&target, &target).unwrap();
        assert!(same.iter().all(|c| (c.unwrap() - 1.0).abs() < 1e-9), "{same:?}");
        // Shape mismatches are errors, not panics.
        assert!(prototype_cosines(&source, &ClassEmbeddingSums::new(3, 4)).is_err());
        assert!(source.add(embedding(&[[1.0, 0.0]], 1, 1), labels(&[0, 0], 1, 2)).is_err());
    }

    #[test]
    fn pearson_on_hand_computed_pairs() {
        // x = 1, 2, 3; y = 2, 4, 7 (a pair with a missing side is skipped):
        // mean 2 and 13/3; Σdx·dy = 5, Σdx² = 2, Σdy² = 38/3 → r = 5 / √(76/3).
        let r = pearson(&[Some(1.0), Some(2.0), None, Some(3.0)], &[Some(2.0), Some(4.0), Some(9.0), Some(7.0)]).unwrap();
        assert!((r - 5.0 / (76.0f64 / 3.0).sqrt()).abs() < 1e-12, "{r}");
        assert_eq!(pearson(&[Some(1.0), Some(2.0)], &[Some(3.0), None]), None);
        assert_eq!(pearson(&[Some(1.0), Some(1.0)], &[Some(3.0), Some(4.0)]), None);
    }

    #[test]
    fn dataset_sums_count_majority_labels_of_padded_images() {
        use t2s_data::synth::{Domain, Split, SynthConfig, SyntheticDataset};
        let device = Default::default();
        let mut cfg = t2s_model::SegmentorConfig::preset("deeplabv2-r18").unwrap();
        cfg.projection = Some(t2s_model::nets::projection_head::ProjectionConfig { dim: 8, hidden: Some(8), linear: false });
        let model = cfg.init::<Flex>(&device).unwrap();
        let data =
            SyntheticDataset::new(SynthConfig { domain: Domain::Source, split: Split::Train, len: 3, width: 72, height: 40, seed: 0 })
                .unwrap();
        assert_eq!(cfg.logit_stride(), 8);
        let options = PrototypeOptions {
            space: FeatureSpace::Embedding,
            images: 2,
            resize: None,
            stride: cfg.logit_stride(),
            min_fraction: 0.75,
            set: "toy".into(),
        };
        let sums = embedding_class_sums(&model, &device, &data, &options, &|_| {}).unwrap();
        assert_eq!(sums.dim(), 8);
        // Independently: the majority-downscaled labels of the two unpadded 72×40 images (the
        // padding to 72×64 adds only ignored blocks).
        let mut want = vec![0u64; 19];
        for i in 0..2 {
            let label = data.get(i).unwrap().label.unwrap();
            let v: Vec<i64> = label.as_raw().iter().map(|&x| x as i64).collect();
            let t = Tensor::<Flex, 3, Int>::from_data(TensorData::new(v, [1, 40, 72]), &device);
            let small = t2s_loss::downscale_labels_majority(t, 19, 8, 0.75, 255).unwrap();
            for c in small.into_data().convert::<i64>().to_vec::<i64>().unwrap() {
                if c < 19 {
                    want[c as usize] += 1;
                }
            }
        }
        assert_eq!(sums.pixels(), want.as_slice());
        assert!(want.iter().sum::<u64>() > 0);
        // Without a projection head: a clear error.
        cfg.projection = None;
        let plain = cfg.init::<Flex>(&device).unwrap();
        let e = embedding_class_sums(&plain, &device, &data, &options, &|_| {}).unwrap_err().to_string();
        assert!(e.contains("[model.network.projection]"), "{e}");
        // The decoder space needs none: the same pixels, features of the last stage's width.
        let decoder = PrototypeOptions { space: FeatureSpace::Decoder, ..options };
        let sums = embedding_class_sums(&plain, &device, &data, &decoder, &|_| {}).unwrap();
        assert_eq!(sums.pixels(), want.as_slice());
        assert_eq!(sums.dim(), 512);
    }
}
