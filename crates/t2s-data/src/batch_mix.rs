//! The images a self-training step builds on the host from raw 0–255 batches: the ClassMix
//! image with its labels and pixel weights plus the strong augmentation (method.md §3 steps
//! 5–6), and the FDA pseudo-target (§4 step 1). Host buffers are small next to the network's
//! work, and working before normalisation is exactly what the anchors do (DAFormer
//! de-normalises, augments and re-normalises).

use rand::Rng;

use crate::error::{DataError, Result};
use crate::transforms::planar::normalize_planar_in_place;
use crate::{Batch, ClassMixMask, Fda, StrongAug, StrongAugConfig};

/// A mixed batch, ready for the student.
#[derive(Debug, Clone, PartialEq)]
pub struct MixedBatch {
    /// `[B, 3, H, W]` ImageNet-normalised.
    pub images: Vec<f32>,
    /// `[B, 3, H, W]` raw values after the strong augmentation (for debug images).
    pub raw: Vec<f32>,
    /// `[B, H, W]` source labels where pasted, pseudo-labels elsewhere.
    pub labels: Vec<u8>,
    /// `[B, H, W]` 1 where pasted, the pseudo-label weight elsewhere.
    pub weights: Vec<f32>,
    /// Classes pasted into each image.
    pub classes: Vec<Vec<u8>>,
}

/// ClassMix of `source` onto `target` per sample (half of each source image's classes, or none
/// when `classmix` is off, which leaves plain pseudo-label self-training on the target), then
/// the strong augmentation drawn once for the batch, then normalisation. `pseudo` and
/// `weights` are the target's pseudo-labels and pixel weights `[B, H, W]`.
pub fn class_mix(
    source: &Batch,
    target: &Batch,
    pseudo: &[u8],
    weights: &[f32],
    classmix: bool,
    strong: &StrongAugConfig,
    rng: &mut impl Rng,
) -> Result<MixedBatch> {
    let (n, h, w) = (source.len(), source.height, source.width);
    if target.len() != n || target.height != h || target.width != w {
        return Err(DataError::Shape {
            what: format!(
                "source and target batches differ: {n}×{h}×{w} vs {}×{}×{}; use the same data.crop for both",
                target.len(),
                target.height,
                target.width
            ),
        });
    }
    let labels = source.labels.as_ref().ok_or_else(|| DataError::Unlabelled { what: "ClassMix's source batch".into() })?;
    let plane = h * w;
    let mut out = MixedBatch {
        images: Vec::with_capacity(n * 3 * plane),
        raw: Vec::with_capacity(n * 3 * plane),
        labels: Vec::with_capacity(n * plane),
        weights: Vec::with_capacity(n * plane),
        classes: Vec::with_capacity(n),
    };
    for i in 0..n {
        let label = &labels[i * plane..(i + 1) * plane];
        let mask = if classmix { ClassMixMask::sample(label, rng) } else { ClassMixMask::from_classes(label, Vec::new()) };
        let image = mask.mix_image(&source.raw[i * 3 * plane..(i + 1) * 3 * plane], &target.raw[i * 3 * plane..(i + 1) * 3 * plane]);
        out.raw.extend(image?.into_iter().map(f32::from));
        out.labels.extend(mask.mix_label(label, &pseudo[i * plane..(i + 1) * plane])?);
        out.weights.extend(mask.mix_weight(&weights[i * plane..(i + 1) * plane])?);
        out.classes.push(mask.classes);
    }
    StrongAug::sample(strong, n, rng).apply_batch(&mut out.raw, h, w);
    out.images = out.raw.clone();
    normalize_planar_in_place(&mut out.images, plane);
    Ok(out)
}

/// The pseudo-target batch: each source image in the style of the target image of the same
/// index (FDA on raw values, clamped), as `(normalised, raw)` `[B, 3, H, W]` buffers.
pub fn pseudo_target(source: &Batch, target: &Batch, fda: &Fda) -> Result<(Vec<f32>, Vec<f32>)> {
    let raw = fda.apply_u8(&source.raw, &target.raw, source.height, source.width)?;
    let mut images = raw.clone();
    normalize_planar_in_place(&mut images, source.height * source.width);
    Ok((images, raw))
}

/// The style batch of domain generalisation: image `i` of the result is source image
/// `(i + 1) mod B` (so each image is paired with another one when B > 1), without labels.
pub fn rolled_style(source: &Batch) -> Batch {
    let n = source.len().max(1);
    let per = source.raw.len() / n;
    let roll = |v: &[u8]| -> Vec<u8> { (0..n).flat_map(|i| v[((i + 1) % n) * per..((i + 1) % n + 1) * per].iter().copied()).collect() };
    let rollf = |v: &[f32]| -> Vec<f32> { (0..n).flat_map(|i| v[((i + 1) % n) * per..((i + 1) % n + 1) * per].iter().copied()).collect() };
    Batch { raw: roll(&source.raw), images: rollf(&source.images), labels: None, ..source.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;

    fn batch(raw: Vec<u8>, labels: Option<Vec<u8>>, n: usize, h: usize, w: usize) -> Batch {
        let mut images: Vec<f32> = raw.iter().map(|&v| v as f32).collect();
        normalize_planar_in_place(&mut images, h * w);
        Batch {
            index: 0,
            height: h,
            width: w,
            images,
            raw,
            labels,
            names: (0..n).map(|i| i.to_string()).collect(),
            indices: (0..n).collect(),
            rare_classes: vec![None; n],
        }
    }

    #[test]
    fn pasted_classes_carry_source_pixels_labels_and_weight_one() {
        // One 1×4 image; source classes 3 and 7 (two pixels each), values 200; target 10.
        let source = batch(vec![200; 12], Some(vec![3, 3, 7, 7]), 1, 1, 4);
        let target = batch(vec![10; 12], None, 1, 1, 4);
        let none = StrongAugConfig { color_jitter_prob: 0.0, blur_prob: 0.0, ..StrongAugConfig::default() };
        let mixed = class_mix(&source, &target, &[1, 2, 1, 2], &[0.5; 4], true, &none, &mut seeded_rng(1, 2)).unwrap();
        // ⌈2/2⌉ = 1 class pasted.
        assert_eq!(mixed.classes[0].len(), 1);
        let pasted = mixed.classes[0][0];
        let from_source: Vec<bool> = [3u8, 3, 7, 7].iter().map(|&c| c == pasted).collect();
        for (j, &s) in from_source.iter().enumerate() {
            assert_eq!(mixed.labels[j], if s { pasted } else { [1, 2, 1, 2][j] });
            assert_eq!(mixed.weights[j], if s { 1.0 } else { 0.5 });
            for ch in 0..3 {
                assert_eq!(mixed.raw[ch * 4 + j], if s { 200.0 } else { 10.0 });
            }
        }
        // Normalised with ImageNet statistics: channel 0 of a pasted pixel.
        let j = from_source.iter().position(|&s| s).unwrap();
        assert!((mixed.images[j] - (200.0 - 123.675) / 58.395).abs() < 1e-5);
        // Without ClassMix the target and its pseudo-labels pass through.
        let plain = class_mix(&source, &target, &[1, 2, 1, 2], &[0.5; 4], false, &none, &mut seeded_rng(1, 2)).unwrap();
        assert_eq!((plain.labels, plain.weights), (vec![1, 2, 1, 2], vec![0.5; 4]));
        assert!(plain.raw.iter().all(|&v| v == 10.0));
    }

    #[test]
    fn rolled_style_pairs_each_image_with_the_next() {
        let b = batch(vec![1, 1, 1, 2, 2, 2, 3, 3, 3], Some(vec![0, 1, 2]), 3, 1, 1);
        let r = rolled_style(&b);
        assert_eq!(r.raw, vec![2, 2, 2, 3, 3, 3, 1, 1, 1]);
        assert_eq!(r.images[0], b.images[3]);
        assert!(r.labels.is_none());
    }

    #[test]
    fn pseudo_target_takes_the_target_mean_colour() {
        // FDA with β large enough to swap the zero frequency: a flat source image takes the
        // target's mean, channel by channel.
        let (h, w) = (4, 4);
        let source = batch([50u8, 100, 150].iter().flat_map(|&v| vec![v; h * w]).collect(), Some(vec![0; h * w]), 1, h, w);
        let target = batch([20u8, 30, 40].iter().flat_map(|&v| vec![v; h * w]).collect(), None, 1, h, w);
        let (images, raw) = pseudo_target(&source, &target, &Fda::new(0.01).unwrap()).unwrap();
        for (ch, want) in [20.0f32, 30.0, 40.0].iter().enumerate() {
            assert!(raw[ch * h * w..(ch + 1) * h * w].iter().all(|v| (v - want).abs() < 1e-3), "channel {ch}");
        }
        assert!((images[0] - (20.0 - 123.675) / 58.395).abs() < 1e-4);
    }
}
