//! Random crop with mmseg's class-balance re-draw, and padding of samples smaller than the crop.
//!
//! mmseg's `RandomCrop(crop_size, cat_max_ratio=0.75)`, which DAFormer uses on source images:
//! draw an offset uniformly; while the labelled crop is dominated by one class, draw again. The
//! crop is accepted when it holds **more than one** class (255 excluded) and the largest class
//! covers **less than** `cat_max_ratio` of its non-ignored pixels. mmseg checks at most 10 times
//! and, when all 10 fail, keeps the 11th draw unchecked; so does [`draw_crop`].

use image::{GrayImage, RgbImage};
use rand::Rng;

use crate::label_space::IGNORE_LABEL;
use crate::Sample;

/// Settings of the random crop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropConfig {
    /// Crop height in pixels.
    pub height: u32,
    /// Crop width in pixels.
    pub width: u32,
    /// Re-draw while one class covers this fraction or more of the crop's labelled pixels
    /// (mmseg `cat_max_ratio`; DAFormer 0.75 on the source). 1.0 or more disables the check,
    /// and so does a sample without a label.
    pub cat_max_ratio: f64,
    /// How many crops are checked before the next one is kept unchecked (mmseg: 10).
    pub max_checks: u32,
    /// RGB value of image pixels added when the sample is smaller than the crop (labels get
    /// 255). mmseg pads *after* normalisation with 0, which is the mean colour
    /// `[124, 116, 104]` in raw terms; the default here pads raw pixels with black.
    pub pad_rgb: [u8; 3],
}

impl CropConfig {
    /// DAFormer's crop of `height × width` with the 0.75 re-draw and black padding.
    pub fn daformer(height: u32, width: u32) -> Self {
        Self { height, width, cat_max_ratio: 0.75, max_checks: 10, pad_rgb: [0, 0, 0] }
    }
}

/// A crop rectangle inside an image (already clipped to the image: it is smaller than the
/// requested crop where the image is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width, `min(crop width, image width)`.
    pub width: u32,
    /// Height, `min(crop height, image height)`.
    pub height: u32,
}

/// mmseg's `get_crop_bbox`: offsets uniform in `0..=max(size − crop, 0)`, the row offset drawn
/// first.
fn random_box(img_w: u32, img_h: u32, cfg: &CropConfig, rng: &mut impl Rng) -> CropBox {
    let margin_h = img_h.saturating_sub(cfg.height);
    let margin_w = img_w.saturating_sub(cfg.width);
    let y = rng.random_range(0..=margin_h);
    let x = rng.random_range(0..=margin_w);
    CropBox { x, y, width: cfg.width.min(img_w), height: cfg.height.min(img_h) }
}

/// Whether a crop of `label` passes mmseg's balance test (see the module documentation).
fn balanced(label: &GrayImage, b: &CropBox, cat_max_ratio: f64) -> bool {
    let mut hist = [0u64; 256];
    let w = label.width() as usize;
    let raw = label.as_raw();
    for row in b.y as usize..(b.y + b.height) as usize {
        for &v in &raw[row * w + b.x as usize..row * w + (b.x + b.width) as usize] {
            hist[v as usize] += 1;
        }
    }
    hist[IGNORE_LABEL as usize] = 0;
    let classes = hist.iter().filter(|&&n| n > 0).count();
    let total: u64 = hist.iter().sum();
    let max = hist.iter().copied().max().unwrap_or(0);
    classes > 1 && (max as f64) / (total as f64) < cat_max_ratio
}

/// Draws the crop of an `img_w × img_h` sample: with a label and `cat_max_ratio < 1`, re-drawn as
/// mmseg does (module documentation); otherwise one uniform draw.
pub fn draw_crop(img_w: u32, img_h: u32, cfg: &CropConfig, label: Option<&GrayImage>, rng: &mut impl Rng) -> CropBox {
    let mut b = random_box(img_w, img_h, cfg, rng);
    if let Some(label) = label.filter(|_| cfg.cat_max_ratio < 1.0) {
        for _ in 0..cfg.max_checks {
            if balanced(label, &b, cfg.cat_max_ratio) {
                break;
            }
            b = random_box(img_w, img_h, cfg, rng);
        }
    }
    b
}

/// Cuts `b` out of the sample's image and label.
pub fn crop_sample(sample: &Sample, b: &CropBox) -> Sample {
    Sample {
        name: sample.name.clone(),
        image: image::imageops::crop_imm(&sample.image, b.x, b.y, b.width, b.height).to_image(),
        label: sample.label.as_ref().map(|l| image::imageops::crop_imm(l, b.x, b.y, b.width, b.height).to_image()),
    }
}

/// Pads the sample at the bottom and right to at least `height × width` (mmseg's `Pad`): image
/// pixels get `pad_rgb`, label pixels 255. Samples already large enough are returned unchanged.
pub fn pad_sample(sample: Sample, height: u32, width: u32, pad_rgb: [u8; 3]) -> Sample {
    let (w, h) = sample.image.dimensions();
    if w >= width && h >= height {
        return sample;
    }
    let (nw, nh) = (w.max(width), h.max(height));
    let mut image = RgbImage::from_pixel(nw, nh, image::Rgb(pad_rgb));
    image::imageops::replace(&mut image, &sample.image, 0, 0);
    let label = sample.label.map(|l| {
        let mut out = GrayImage::from_pixel(nw, nh, image::Luma([IGNORE_LABEL]));
        image::imageops::replace(&mut out, &l, 0, 0);
        out
    });
    Sample { name: sample.name, image, label }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;

    fn label_from(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)]))
    }

    #[test]
    fn balance_test_follows_mmseg() {
        let cfg = CropConfig::daformer(2, 2);
        let b = CropBox { x: 0, y: 0, width: 2, height: 2 };
        // One class plus ignore: rejected, mmseg wants more than one class.
        assert!(!balanced(&label_from(2, 2, |x, _| if x == 0 { 3 } else { 255 }), &b, cfg.cat_max_ratio));
        // 2 of 3 labelled pixels = 0.667 < 0.75: accepted; ignore pixels do not count.
        assert!(balanced(&label_from(2, 2, |x, y| [[1, 1], [2, 255]][y as usize][x as usize]), &b, 0.75));
        // 3 of 4 = 0.75 is not < 0.75: rejected.
        assert!(!balanced(&label_from(2, 2, |x, y| [[1, 1], [1, 2]][y as usize][x as usize]), &b, 0.75));
    }

    #[test]
    fn redraws_until_balanced_and_gives_up_after_ten() {
        // A 100×1 strip: columns 0..50 class 0, 50..100 class 1; 10×1 crops are balanced only when
        // they straddle column 50 with at least 3 pixels on each side (offsets 43..=47).
        let label = label_from(100, 1, |x, _| (x >= 50) as u8);
        let cfg = CropConfig { height: 1, width: 10, ..CropConfig::daformer(1, 10) };
        let mut accepted = 0;
        for s in 0..200 {
            let b = draw_crop(100, 1, &cfg, Some(&label), &mut seeded_rng(1, s));
            if (43..=47).contains(&b.x) {
                accepted += 1;
            }
        }
        // One draw hits with p = 5/91; eleven draws with 1 − (86/91)^11 = 0.463; the 200 seeded
        // trials must land near 93 (binomial sd 7), far from the 11 a single draw would give.
        assert!((65..=121).contains(&accepted), "{accepted}");
        // A label that can never pass: the draw sequence is the initial draw plus ten re-draws,
        // i.e. the 11th pair of offsets of the stream.
        let flat = label_from(100, 1, |_, _| 4);
        let b = draw_crop(100, 1, &cfg, Some(&flat), &mut seeded_rng(2, 0));
        let mut rng = seeded_rng(2, 0);
        let mut expect = (0, 0);
        for _ in 0..11 {
            let y: u32 = rng.random_range(0..=0);
            let x: u32 = rng.random_range(0..=90);
            expect = (x, y);
        }
        assert_eq!((b.x, b.y), expect);
    }

    #[test]
    fn small_samples_are_clipped_then_padded() {
        let sample = Sample {
            name: "s".into(),
            image: RgbImage::from_pixel(3, 2, image::Rgb([9, 8, 7])),
            label: Some(GrayImage::from_pixel(3, 2, image::Luma([5]))),
        };
        let cfg = CropConfig::daformer(4, 4);
        let b = draw_crop(3, 2, &cfg, None, &mut seeded_rng(0, 0));
        assert_eq!(b, CropBox { x: 0, y: 0, width: 3, height: 2 });
        let padded = pad_sample(crop_sample(&sample, &b), 4, 4, [0, 0, 0]);
        assert_eq!(padded.image.dimensions(), (4, 4));
        assert_eq!(padded.image.get_pixel(2, 1).0, [9, 8, 7]);
        assert_eq!(padded.image.get_pixel(3, 1).0, [0, 0, 0]);
        assert_eq!(padded.image.get_pixel(0, 2).0, [0, 0, 0]);
        let label = padded.label.unwrap();
        assert_eq!(label.get_pixel(2, 1).0, [5]);
        assert_eq!(label.get_pixel(3, 0).0, [255]);
        assert_eq!(label.get_pixel(1, 3).0, [255]);
    }
}
