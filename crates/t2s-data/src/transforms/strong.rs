//! The strong augmentation of DACS/DAFormer's mixed image: colour jitter with probability 0.8 and
//! Gaussian blur with probability 0.5, decided **once per iteration** for the whole batch
//! (DAFormer draws `color_jitter = U(0, 1)` and `blur = U(0, 1)` per training step), with jitter
//! factors drawn per image and one application order and one blur σ per batch (as kornia and
//! DAFormer do).
//!
//! Parameters are drawn first ([`StrongAug::sample`]) and applied separately
//! ([`StrongAug::apply`]), so the trainer can log them or apply the same draw on the device.

use rand::seq::SliceRandom;
use rand::Rng;
use rayon::prelude::*;

use super::blur::{daformer_blur_kernel_size, gaussian_blur_in_place};
use super::photometric::{color_jitter_in_place, ColorJitterFactors, JitterOp};
use crate::error::{DataError, Result};
use crate::sample::uniform;

/// Settings of the strong augmentation (defaults: DAFormer's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StrongAugConfig {
    /// Jitter strength `s`: brightness, contrast and saturation factors uniform in
    /// `[max(0, 1 − s), 1 + s]`, hue in `[−s, s]` turns (capped at ±0.5). DAFormer: 0.2.
    pub color_jitter_strength: f32,
    /// Probability that the batch is jittered (DAFormer: jitter when `U(0,1) > 0.2`, so 0.8).
    pub color_jitter_prob: f64,
    /// Probability that the batch is blurred (DAFormer: 0.5).
    pub blur_prob: f64,
    /// Range of the blur's σ in pixels (DAFormer: 0.15 to 1.15).
    pub blur_sigma: (f32, f32),
}

impl Default for StrongAugConfig {
    fn default() -> Self {
        Self { color_jitter_strength: 0.2, color_jitter_prob: 0.8, blur_prob: 0.5, blur_sigma: (0.15, 1.15) }
    }
}

impl StrongAugConfig {
    /// Checks the ranges: probabilities in `[0, 1]`, strength ≥ 0, `0 < σ_min ≤ σ_max`.
    pub fn validate(&self) -> Result<()> {
        let bad = |setting: &str, message: String| Err(DataError::Setting { setting: setting.into(), message });
        for (name, p) in [("color_jitter_prob", self.color_jitter_prob), ("blur_prob", self.blur_prob)] {
            if !(0.0..=1.0).contains(&p) {
                return bad(name, format!("{p} is not a probability in [0, 1]"));
            }
        }
        if !(self.color_jitter_strength >= 0.0 && self.color_jitter_strength.is_finite()) {
            return bad("color_jitter_strength", format!("{} must be finite and ≥ 0", self.color_jitter_strength));
        }
        let (lo, hi) = self.blur_sigma;
        if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
            return bad("blur_sigma", format!("({lo}, {hi}) must satisfy 0 < min ≤ max"));
        }
        Ok(())
    }
}

/// The strong augmentation drawn for one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct StrongAug {
    /// When the batch is jittered: the order of the four operations and one set of factors per
    /// image.
    pub jitter: Option<([JitterOp; 4], Vec<ColorJitterFactors>)>,
    /// When the batch is blurred: σ.
    pub blur_sigma: Option<f32>,
}

impl StrongAug {
    /// Draws the augmentation of a batch of `batch_size` images. Draw order: `U` for jitter,
    /// `U` for blur; then, when jittering, the order (a shuffle of the four operations) and per
    /// image brightness, contrast, saturation, hue; then, when blurring, σ.
    pub fn sample(cfg: &StrongAugConfig, batch_size: usize, rng: &mut impl Rng) -> Self {
        let jitter = rng.random::<f64>() < cfg.color_jitter_prob;
        let blur = rng.random::<f64>() < cfg.blur_prob;
        let s = cfg.color_jitter_strength;
        let jitter = jitter.then(|| {
            let mut order = JitterOp::ALL;
            order.shuffle(rng);
            let (lo, h) = ((1.0 - s).max(0.0), s.min(0.5));
            let factors = (0..batch_size)
                .map(|_| ColorJitterFactors {
                    brightness: uniform(rng, (lo, 1.0 + s)),
                    contrast: uniform(rng, (lo, 1.0 + s)),
                    saturation: uniform(rng, (lo, 1.0 + s)),
                    hue: uniform(rng, (-h, h)),
                })
                .collect();
            (order, factors)
        });
        let blur_sigma = blur.then(|| uniform(rng, (cfg.blur_sigma.0, cfg.blur_sigma.1)));
        Self { jitter, blur_sigma }
    }

    /// Applies the draw to image `index` of the batch: a planar `[3, H, W]` buffer of raw 0–255
    /// values (before normalisation), jitter first, then blur with DAFormer's kernel size.
    pub fn apply(&self, index: usize, image: &mut [f32], height: usize, width: usize) {
        if let Some((order, factors)) = &self.jitter {
            if let Some(f) = factors.get(index) {
                color_jitter_in_place(image, height * width, f, order);
            }
        }
        if let Some(sigma) = self.blur_sigma {
            let (kh, kw) = (daformer_blur_kernel_size(height), daformer_blur_kernel_size(width));
            gaussian_blur_in_place(image, height, width, kh, kw, sigma);
        }
    }

    /// Applies the draw to a whole `[B, 3, H, W]` batch of raw values.
    pub fn apply_batch(&self, images: &mut [f32], height: usize, width: usize) {
        let per_image = 3 * height * width;
        if per_image == 0 {
            return;
        }
        // Images in parallel: the training step applies this between the teacher's pass and the
        // student's, while the GPU waits (ClassMix with this was ~5 % of the main thread in the
        // H100 MiT-B5 profile, docs/gpu.md). The draw is fixed, so the result does not depend
        // on the thread count.
        images.par_chunks_exact_mut(per_image).enumerate().for_each(|(i, img)| self.apply(i, img, height, width));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;

    #[test]
    fn probabilities_and_ranges_match_the_config() {
        let cfg = StrongAugConfig::default();
        let n = 4000u64;
        let (mut jit, mut blur) = (0u64, 0u64);
        let mut orders = std::collections::HashSet::new();
        for i in 0..n {
            let a = StrongAug::sample(&cfg, 2, &mut seeded_rng(5, i));
            if let Some((order, f)) = &a.jitter {
                jit += 1;
                orders.insert(*order);
                assert_eq!(f.len(), 2);
                for f in f {
                    for v in [f.brightness, f.contrast, f.saturation] {
                        assert!((0.8..=1.2).contains(&v));
                    }
                    assert!((-0.2..=0.2).contains(&f.hue));
                }
            }
            if let Some(s) = a.blur_sigma {
                blur += 1;
                assert!((0.15..=1.15).contains(&s));
            }
        }
        // Binomial bounds at 5 sd: sd(jitter) = sqrt(4000·0.8·0.2) ≈ 25.3, sd(blur) ≈ 31.6.
        assert!((jit as i64 - 3200).abs() <= 127, "{jit}");
        assert!((blur as i64 - 2000).abs() <= 158, "{blur}");
        // All 24 orders occur (each has p = 1/24 per jittered draw; missing one in 3,200 draws has
        // probability 24·(23/24)^3200 ≈ 0).
        assert_eq!(orders.len(), 24);
    }

    #[test]
    fn apply_is_jitter_then_blur() {
        let f = ColorJitterFactors { brightness: 1.1, contrast: 0.9, saturation: 1.2, hue: 0.05 };
        let order = [JitterOp::Hue, JitterOp::Contrast, JitterOp::Brightness, JitterOp::Saturation];
        let aug = StrongAug { jitter: Some((order, vec![ColorJitterFactors::IDENTITY, f])), blur_sigma: Some(0.8) };
        let (h, w) = (30, 40);
        let img: Vec<f32> = (0..3 * h * w).map(|i| ((i * 37) % 256) as f32).collect();
        let mut batch = [img.clone(), img.clone()].concat();
        aug.apply_batch(&mut batch, h, w);
        // Kernel sizes: 30 → ⌈3⌉ = 3, 40 → ⌈4⌉ = 4 → 3. Image 0 goes through the identity
        // jitter too (not bit-exact: HSV round trip), then the blur.
        let mut expect0 = img.clone();
        color_jitter_in_place(&mut expect0, h * w, &ColorJitterFactors::IDENTITY, &order);
        gaussian_blur_in_place(&mut expect0, h, w, 3, 3, 0.8);
        let mut expect1 = img;
        color_jitter_in_place(&mut expect1, h * w, &f, &order);
        gaussian_blur_in_place(&mut expect1, h, w, 3, 3, 0.8);
        assert_eq!(&batch[..3 * h * w], &expect0[..]);
        assert_eq!(&batch[3 * h * w..], &expect1[..]);
    }

    #[test]
    fn invalid_settings_are_named() {
        let bad = StrongAugConfig { blur_prob: 1.5, ..Default::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("blur_prob"));
        let bad = StrongAugConfig { blur_sigma: (0.0, 1.0), ..Default::default() };
        assert!(bad.validate().unwrap_err().to_string().contains("blur_sigma"));
        StrongAugConfig::default().validate().unwrap();
    }
}
