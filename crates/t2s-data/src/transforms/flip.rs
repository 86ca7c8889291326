//! Random horizontal flip (mmseg's `RandomFlip(prob=0.5)`, horizontal direction).

use image::imageops::flip_horizontal_in_place;
use rand::Rng;

use crate::Sample;

/// Mirrors the image and its label left to right.
pub fn flip_sample(sample: &mut Sample) {
    flip_horizontal_in_place(&mut sample.image);
    if let Some(label) = sample.label.as_mut() {
        flip_horizontal_in_place(label);
    }
}

/// Flips with probability `prob`: one uniform draw `u ∈ [0, 1)`, flip when `u < prob` (mmseg's
/// `np.random.rand() < prob`). Returns whether it flipped.
pub fn maybe_flip(sample: &mut Sample, prob: f64, rng: &mut impl Rng) -> bool {
    let flip = rng.random::<f64>() < prob;
    if flip {
        flip_sample(sample);
    }
    flip
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;
    use image::{GrayImage, RgbImage};

    #[test]
    fn flips_image_and_label_together() {
        let mut s = Sample {
            name: "f".into(),
            image: RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8, y as u8, 0])),
            label: Some(GrayImage::from_fn(3, 2, |x, y| image::Luma([(10 * y + x) as u8]))),
        };
        flip_sample(&mut s);
        assert_eq!(s.image.get_pixel(0, 1).0, [2, 1, 0]);
        assert_eq!(s.label.as_ref().unwrap().as_raw(), &vec![2, 1, 0, 12, 11, 10]);
        // prob 0 never flips, prob 1 always does.
        assert!(!maybe_flip(&mut s, 0.0, &mut seeded_rng(0, 0)));
        assert!(maybe_flip(&mut s, 1.0, &mut seeded_rng(0, 0)));
        assert_eq!(s.label.unwrap().as_raw(), &vec![0, 1, 2, 10, 11, 12]);
    }

    #[test]
    fn half_of_the_samples_flip() {
        // 4,000 seeded draws at p = 0.5: sd = sqrt(4000 · 0.25) ≈ 31.6; allow 5 sd.
        let mut s = Sample { name: "f".into(), image: RgbImage::new(1, 1), label: None };
        let n = (0..4000).filter(|&i| maybe_flip(&mut s, 0.5, &mut seeded_rng(9, i))).count() as i64;
        assert!((n - 2000).abs() <= 158, "{n}");
    }
}
