//! The per-sample geometric pipeline the loader runs (mmseg's `Resize → RandomCrop →
//! RandomFlip → Pad`, as in DAFormer's GTA5/SYNTHIA/Cityscapes training pipelines). Photometric
//! changes come later, on the mixed image ([`super::strong`]), and normalisation last.

use rand::Rng;

use super::crop::{draw_crop, pad_sample, CropConfig};
use super::flip::maybe_flip;
use super::resize::{resize_bilinear_window, resize_nearest, Resize};
use crate::error::{DataError, Result};
use crate::Sample;

/// What the loader does to every sample before batching.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentConfig {
    /// Resize applied first (bilinear image, nearest label).
    pub resize: Resize,
    /// Random crop (with the class-balance re-draw on labelled samples) and padding; `None`
    /// keeps the whole resized image.
    pub crop: Option<CropConfig>,
    /// Probability of a horizontal flip (0 disables).
    pub flip_prob: f64,
}

impl AugmentConfig {
    /// No change at all (evaluation on full images).
    pub fn identity() -> Self {
        Self { resize: Resize::Original, crop: None, flip_prob: 0.0 }
    }

    /// DAFormer's source pipeline: keep-ratio resize to `(long, short)` (GTA5: 1280, 720;
    /// SYNTHIA: 1280, 760), `crop × crop` random crop with the 0.75 re-draw, flip p = 0.5.
    pub fn daformer_source(long: u32, short: u32, crop: u32) -> Self {
        Self { resize: Resize::KeepRatio { long, short }, crop: Some(CropConfig::daformer(crop, crop)), flip_prob: 0.5 }
    }

    /// DAFormer's target pipeline: keep-ratio resize (Cityscapes: 1024, 512), plain random crop
    /// (no re-draw: target labels are not used in training), flip p = 0.5.
    pub fn daformer_target(long: u32, short: u32, crop: u32) -> Self {
        let crop = CropConfig { cat_max_ratio: 1.0, ..CropConfig::daformer(crop, crop) };
        Self { resize: Resize::KeepRatio { long, short }, crop: Some(crop), flip_prob: 0.5 }
    }
}

/// Runs resize → crop → flip → pad on one sample. Random draws, in this order, come from `rng`:
/// the crop offsets (row, column; repeated on re-draws), then one uniform for the flip. Only the
/// kept crop of the image is resized, which gives the same pixels as resizing everything.
///
/// Errors when the label's size differs from the image's.
pub fn augment(sample: Sample, cfg: &AugmentConfig, rng: &mut impl Rng) -> Result<Sample> {
    let (w, h) = sample.image.dimensions();
    if let Some(label) = &sample.label {
        if label.dimensions() != (w, h) {
            return Err(DataError::Shape {
                what: format!("{}: label is {}×{} but the image is {w}×{h}", sample.name, label.width(), label.height()),
            });
        }
    }
    let (out_w, out_h) = cfg.resize.output_size(w, h);
    let label = sample.label.as_ref().map(|l| resize_nearest(l, out_w, out_h));
    let mut out = match &cfg.crop {
        Some(crop) => {
            let b = draw_crop(out_w, out_h, crop, label.as_ref(), rng);
            Sample {
                image: resize_bilinear_window(&sample.image, out_w, out_h, b.x, b.y, b.width, b.height),
                label: label.map(|l| image::imageops::crop_imm(&l, b.x, b.y, b.width, b.height).to_image()),
                name: sample.name,
            }
        }
        None => Sample { image: resize_bilinear_window(&sample.image, out_w, out_h, 0, 0, out_w, out_h), label, name: sample.name },
    };
    maybe_flip(&mut out, cfg.flip_prob, rng);
    if let Some(crop) = &cfg.crop {
        out = pad_sample(out, crop.height, crop.width, crop.pad_rgb);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;
    use crate::transforms::resize::resize_bilinear;
    use image::{GrayImage, RgbImage};

    fn sample(w: u32, h: u32) -> Sample {
        Sample {
            name: "a".into(),
            image: RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])),
            label: Some(GrayImage::from_fn(w, h, |x, y| image::Luma([((x / 8 + y / 8) % 5) as u8]))),
        }
    }

    #[test]
    fn pipeline_equals_the_steps_done_by_hand() {
        let cfg = AugmentConfig { resize: Resize::Exact { width: 60, height: 40 }, ..AugmentConfig::daformer_source(0, 0, 16) };
        for stream in 0..8 {
            let out = augment(sample(90, 50), &cfg, &mut seeded_rng(3, stream)).unwrap();
            // Redo it step by step with the same stream.
            let mut rng = seeded_rng(3, stream);
            let s = sample(90, 50);
            let full = resize_bilinear(&s.image, 60, 40);
            let lab = resize_nearest(s.label.as_ref().unwrap(), 60, 40);
            let b = draw_crop(60, 40, cfg.crop.as_ref().unwrap(), Some(&lab), &mut rng);
            let mut img = image::imageops::crop_imm(&full, b.x, b.y, 16, 16).to_image();
            let mut l = image::imageops::crop_imm(&lab, b.x, b.y, 16, 16).to_image();
            if rng.random::<f64>() < 0.5 {
                image::imageops::flip_horizontal_in_place(&mut img);
                image::imageops::flip_horizontal_in_place(&mut l);
            }
            assert_eq!(out.image, img);
            assert_eq!(out.label.unwrap(), l);
        }
    }

    #[test]
    fn identity_keeps_the_sample_and_mismatched_labels_fail() {
        let s = sample(7, 5);
        assert_eq!(augment(s.clone(), &AugmentConfig::identity(), &mut seeded_rng(0, 0)).unwrap(), s);
        let mut bad = sample(7, 5);
        bad.label = Some(GrayImage::new(7, 4));
        let err = augment(bad, &AugmentConfig::identity(), &mut seeded_rng(0, 0)).unwrap_err().to_string();
        assert!(err.contains("7×4") && err.contains("7×5"), "{err}");
    }

    #[test]
    fn small_images_come_out_at_the_crop_size() {
        let cfg = AugmentConfig { flip_prob: 0.0, ..AugmentConfig::daformer_target(0, 0, 16) };
        let cfg = AugmentConfig { resize: Resize::Original, ..cfg };
        let out = augment(sample(10, 12), &cfg, &mut seeded_rng(0, 0)).unwrap();
        assert_eq!(out.image.dimensions(), (16, 16));
        assert_eq!(out.label.as_ref().unwrap().get_pixel(12, 3).0, [255]);
        assert_eq!(out.image.get_pixel(12, 3).0, [0, 0, 0]);
        assert_eq!(out.image.get_pixel(9, 11).0, [9, 11, 20]);
    }
}
