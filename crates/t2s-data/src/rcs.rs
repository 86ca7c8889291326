//! Rare Class Sampling (DAFormer, Hoyer et al. 2022; docs/method.md §3): sample source images so
//! that rare classes are seen often.
//!
//! From per-image class pixel counts: `f_c` = class `c`'s share of all labelled pixels of the
//! dataset (255 excluded), `p(c) = softmax_c((1 − f_c) / T)` over the classes that occur at all,
//! `T = 0.01`. A draw picks a class by `p`, then uniformly one of the images with **more than**
//! `min_pixels` (3,000) pixels of it (DAFormer's `rcs_min_pixels`, strict inequality).
//!
//! DAFormer asserts that every class has such an image; here a class without one is left out and
//! `p` renormalised over the others ([`RareClassSampler::skipped_classes`] lists them so the
//! trainer can say so). DAFormer's separate re-crop until the crop holds `min_crop_ratio ·
//! min_pixels` pixels of the class is not part of this sampler.

use rand::Rng;

use crate::error::{DataError, Result};

/// Settings of rare class sampling (defaults: DAFormer's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RcsConfig {
    /// Softmax temperature `T` (DAFormer: 0.01); smaller is more aggressive.
    pub temperature: f64,
    /// An image is eligible for class `c` when it has more than this many pixels of `c`.
    pub min_pixels: u64,
}

impl Default for RcsConfig {
    fn default() -> Self {
        Self { temperature: 0.01, min_pixels: 3000 }
    }
}

/// The sampler built from class statistics (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct RareClassSampler {
    classes: Vec<u8>,
    probabilities: Vec<f64>,
    cumulative: Vec<f64>,
    images: Vec<Vec<usize>>,
    frequencies: Vec<f64>,
    skipped: Vec<u8>,
}

impl RareClassSampler {
    /// Builds the sampler from `counts[i][c]` = pixels of class `c` in image `i` (labelled
    /// classes only, so at most 255 entries; shorter rows mean zeros). Errors when the
    /// temperature is not positive, when a row has more than 255 classes, or when no class has an
    /// eligible image.
    pub fn new(counts: &[Vec<u64>], cfg: RcsConfig) -> Result<Self> {
        let setting = |message: String| DataError::Setting { setting: "rare class sampling".into(), message };
        if !(cfg.temperature > 0.0 && cfg.temperature.is_finite()) {
            return Err(setting(format!("temperature {} must be positive", cfg.temperature)));
        }
        let num_classes = counts.iter().map(Vec::len).max().unwrap_or(0);
        if num_classes > 255 {
            return Err(setting(format!("{num_classes} classes; train ids go up to 254 (255 is ignore)")));
        }
        let mut totals = vec![0u64; num_classes];
        for row in counts {
            for (t, &n) in totals.iter_mut().zip(row) {
                *t = t.saturating_add(n);
            }
        }
        let all: u64 = totals.iter().fold(0, |s, &n| s.saturating_add(n));
        if all == 0 {
            return Err(setting("the class statistics have no labelled pixel".into()));
        }
        let frequencies: Vec<f64> = totals.iter().map(|&n| n as f64 / all as f64).collect();
        // Softmax over classes that occur, shifted by the largest logit for stability.
        let occurring: Vec<usize> = (0..num_classes).filter(|&c| totals[c] > 0).collect();
        let logits: Vec<f64> = occurring.iter().map(|&c| (1.0 - frequencies[c]) / cfg.temperature).collect();
        let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut classes = Vec::new();
        let mut weights = Vec::new();
        let mut images = Vec::new();
        let mut skipped = Vec::new();
        for (&c, &logit) in occurring.iter().zip(&logits) {
            let eligible: Vec<usize> =
                counts.iter().enumerate().filter(|(_, row)| row.get(c).copied().unwrap_or(0) > cfg.min_pixels).map(|(i, _)| i).collect();
            if eligible.is_empty() {
                skipped.push(c as u8);
                continue;
            }
            classes.push(c as u8);
            weights.push((logit - top).exp());
            images.push(eligible);
        }
        if classes.is_empty() {
            return Err(setting(format!("no image has more than {} pixels of any class; lower min_pixels", cfg.min_pixels)));
        }
        let sum: f64 = weights.iter().sum();
        let probabilities: Vec<f64> = weights.iter().map(|w| w / sum).collect();
        let mut cumulative = Vec::with_capacity(probabilities.len());
        let mut acc = 0.0;
        for p in &probabilities {
            acc += p;
            cumulative.push(acc);
        }
        Ok(Self { classes, probabilities, cumulative, images, frequencies, skipped })
    }

    /// The sampled classes and their probabilities `p(c)`, ascending by class.
    pub fn class_probabilities(&self) -> Vec<(u8, f64)> {
        self.classes.iter().copied().zip(self.probabilities.iter().copied()).collect()
    }

    /// `f_c` of every class id `0..num_classes` (0 for classes that never occur).
    pub fn class_frequencies(&self) -> &[f64] {
        &self.frequencies
    }

    /// Classes that occur but have no image above `min_pixels` (left out of the sampling).
    pub fn skipped_classes(&self) -> &[u8] {
        &self.skipped
    }

    /// The images eligible for `class` (more than `min_pixels` of it), ascending.
    pub fn images_with(&self, class: u8) -> &[usize] {
        self.classes.iter().position(|&c| c == class).map_or(&[], |i| &self.images[i])
    }

    /// How many different images the sampler effectively draws from: with `q_i` the probability
    /// that a draw returns image `i` (`q_i = Σ_c p(c)·[i eligible for c] / #eligible(c)`), the
    /// inverse Simpson index `1 / Σ_i q_i²` (the number of equally likely images with the same
    /// repeat rate). A pool far below the dataset's size means training sees a few images over and
    /// over: `min_pixels` is too high for the image size (DAFormer's 3,000 is 0.15 % of a 1914×1052
    /// GTA5 label) or the temperature too low.
    pub fn effective_pool(&self) -> f64 {
        let mut q: std::collections::HashMap<usize, f64> = std::collections::HashMap::new();
        for (p, list) in self.probabilities.iter().zip(&self.images) {
            for &i in list {
                *q.entry(i).or_default() += p / list.len() as f64;
            }
        }
        1.0 / q.values().map(|v| v * v).sum::<f64>()
    }

    /// Draws `(class, image index)`: one uniform for the class (inverse CDF), one for the image.
    pub fn sample(&self, rng: &mut impl Rng) -> (u8, usize) {
        let u = rng.random::<f64>() * self.cumulative.last().copied().unwrap_or(1.0);
        // The last class takes any rounding leftover of the cumulative sum.
        let k = self.cumulative.iter().position(|&c| u < c).unwrap_or(self.cumulative.len() - 1);
        let list = &self.images[k];
        (self.classes[k], list[rng.random_range(0..list.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;

    /// Four images, three classes; class 2 is rare.
    fn counts() -> Vec<Vec<u64>> {
        vec![vec![60_000, 30_000, 0], vec![50_000, 20_000, 3_500], vec![40_000, 10_000, 3_000], vec![70_000, 0, 6_000]]
    }

    #[test]
    fn probabilities_follow_the_softmax_by_hand() {
        // Totals 220,000 / 60,000 / 12,500 of 292,500.
        let rcs = RareClassSampler::new(&counts(), RcsConfig { temperature: 0.1, min_pixels: 3000 }).unwrap();
        let f = [220_000.0 / 292_500.0, 60_000.0 / 292_500.0, 12_500.0 / 292_500.0];
        let e: Vec<f64> = f.iter().map(|f: &f64| ((1.0 - f) / 0.1).exp()).collect();
        let z: f64 = e.iter().sum();
        for ((c, p), (i, e)) in rcs.class_probabilities().into_iter().zip(e.iter().enumerate()) {
            assert_eq!(c as usize, i);
            assert!((p - e / z).abs() < 1e-12);
        }
        assert!((rcs.class_frequencies()[2] - f[2]).abs() < 1e-15);
        // Strictly more than 3,000: image 2 (exactly 3,000) is not eligible for class 2.
        assert_eq!(rcs.images_with(2), &[1, 3]);
        assert_eq!(rcs.images_with(1), &[0, 1, 2]);
    }

    #[test]
    fn empirical_frequencies_match_p() {
        let rcs = RareClassSampler::new(&counts(), RcsConfig { temperature: 0.1, min_pixels: 3000 }).unwrap();
        let n = 20_000u64;
        let mut per_class = [0u64; 3];
        let mut per_image = [[0u64; 4]; 3];
        for i in 0..n {
            let (c, img) = rcs.sample(&mut seeded_rng(17, i));
            per_class[c as usize] += 1;
            per_image[c as usize][img] += 1;
            assert!(counts()[img][c as usize] > 3000);
        }
        // Each count is binomial(n, p): allow 5 standard deviations (+1 for tiny p).
        for (c, p) in rcs.class_probabilities() {
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            let got = per_class[c as usize] as f64;
            assert!((got - n as f64 * p).abs() <= 5.0 * sd + 1.0, "class {c}: {got} vs {}", n as f64 * p);
        }
        // Within class 2 the two eligible images are equally likely.
        let k = per_class[2] as f64;
        let got = per_image[2][1] as f64;
        assert!((got - k / 2.0).abs() <= 5.0 * (k / 4.0).sqrt(), "{got} of {k}");
    }

    #[test]
    fn daformer_temperature_concentrates_on_rare_classes() {
        // T = 0.01: p(c) ∝ exp(−100 f_c); class 0 (f = 0.75) has p ≈ e^{−100·0.71}, nil.
        let rcs = RareClassSampler::new(&counts(), RcsConfig::default()).unwrap();
        let p = rcs.class_probabilities();
        let f = rcs.class_frequencies();
        let ratio = p[2].1 / p[1].1;
        assert!((ratio - (100.0 * (f[1] - f[2])).exp()).abs() / ratio < 1e-9);
        assert!(p[0].1 < 1e-25);
    }

    #[test]
    fn effective_pool_by_hand() {
        // T = 0.1: p = (p0, p1, p2) from the softmax; class 0 eligible in images 0..4 (all four
        // above 3,000), class 1 in 0, 1, 2, class 2 in 1, 3.
        let rcs = RareClassSampler::new(&counts(), RcsConfig { temperature: 0.1, min_pixels: 3000 }).unwrap();
        let p: Vec<f64> = rcs.class_probabilities().iter().map(|&(_, p)| p).collect();
        let q = [p[0] / 4.0 + p[1] / 3.0, p[0] / 4.0 + p[1] / 3.0 + p[2] / 2.0, p[0] / 4.0 + p[1] / 3.0, p[0] / 4.0 + p[2] / 2.0];
        let want = 1.0 / q.iter().map(|v| v * v).sum::<f64>();
        assert!((rcs.effective_pool() - want).abs() < 1e-12, "{} vs {want}", rcs.effective_pool());
        // One class in one image: a pool of one; uniform over n images: a pool of n.
        let one = RareClassSampler::new(&[vec![5_000], vec![10]], RcsConfig::default()).unwrap();
        assert!((one.effective_pool() - 1.0).abs() < 1e-12);
        let flat = RareClassSampler::new(&vec![vec![5_000]; 7], RcsConfig::default()).unwrap();
        assert!((flat.effective_pool() - 7.0).abs() < 1e-9);
    }

    #[test]
    fn classes_without_eligible_images_are_skipped() {
        let counts = vec![vec![5_000, 100], vec![4_000, 200]];
        let rcs = RareClassSampler::new(&counts, RcsConfig::default()).unwrap();
        assert_eq!(rcs.skipped_classes(), &[1]);
        assert_eq!(rcs.class_probabilities(), vec![(0, 1.0)]);
        assert!(RareClassSampler::new(&[vec![10, 10]], RcsConfig::default()).is_err());
        assert!(RareClassSampler::new(&[], RcsConfig::default()).is_err());
        assert!(RareClassSampler::new(&counts, RcsConfig { temperature: 0.0, min_pixels: 1 }).is_err());
    }
}
