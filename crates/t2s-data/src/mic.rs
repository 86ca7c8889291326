//! MIC's masked target images (Hoyer et al., "MIC: Masked Image Consistency", lhoyer/MIC's
//! `BlockMaskGenerator` and `MaskingConsistencyModule` in its `separatetrgaug` mode): the target
//! batch, colour-augmented with a fresh draw of the strong augmentation, normalised, then with a
//! random set of square blocks set to 0 (the mean colour after normalisation), per image.

use rand::Rng;

use crate::error::{DataError, Result};
use crate::transforms::planar::normalize_planar_in_place;
use crate::{Batch, StrongAug, StrongAugConfig, IMAGENET_MEAN};

/// The block mask's settings (MIC's defaults: blocks of 64 pixels, 70 % of them masked).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockMaskConfig {
    /// Side of a block in pixels (MIC: 64).
    pub block_size: usize,
    /// Probability that a block is masked (MIC: 0.7).
    pub mask_ratio: f64,
}

impl Default for BlockMaskConfig {
    fn default() -> Self {
        Self { block_size: 64, mask_ratio: 0.7 }
    }
}

impl BlockMaskConfig {
    /// Checks the ranges: a block of at least one pixel, a ratio in `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        if self.block_size == 0 {
            return Err(DataError::Setting { setting: "block_size".into(), message: "must be at least 1 pixel".into() });
        }
        if !(0.0..1.0).contains(&self.mask_ratio) {
            return Err(DataError::Setting {
                setting: "mask_ratio".into(),
                message: format!("{} must be in [0, 1) (MIC's is 0.7)", self.mask_ratio),
            });
        }
        Ok(())
    }

    /// The mask grid of an `h × w` image: `(round(h / block), round(w / block))` with Python's
    /// rounding (halves to even, as MIC's `round`), at least one cell each way.
    pub fn grid(&self, h: usize, w: usize) -> (usize, usize) {
        let cells = |len: usize| ((len as f64 / self.block_size as f64).round_ties_even() as usize).max(1);
        (cells(h), cells(w))
    }
}

/// One image's block mask: `keep[i · gw + j]` for grid cell `(i, j)`.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockMask {
    /// Grid height and width.
    pub grid: (usize, usize),
    /// Whether each cell is kept (row-major).
    pub keep: Vec<bool>,
}

impl BlockMask {
    /// Draws a mask for an `h × w` image: one `U(0, 1)` per cell, row-major, the cell kept when
    /// the draw exceeds `mask_ratio` (MIC: `torch.rand(...) > mask_ratio`).
    pub fn sample(cfg: &BlockMaskConfig, h: usize, w: usize, rng: &mut impl Rng) -> Self {
        let grid = cfg.grid(h, w);
        let keep = (0..grid.0 * grid.1).map(|_| rng.random::<f64>() > cfg.mask_ratio).collect();
        Self { grid, keep }
    }

    /// The pixel mask `[h, w]` (1 kept, 0 masked): the grid upsampled with PyTorch's nearest
    /// interpolation (MIC's `resize(mask, size)`): pixel row `y` takes cell row
    /// `min(⌊y · (gh / h)⌋, gh − 1)` with the scale in f32, likewise for columns.
    pub fn pixels(&self, h: usize, w: usize) -> Vec<bool> {
        let (gh, gw) = self.grid;
        let rows: Vec<usize> = (0..h).map(|y| torch_nearest(y, gh, h)).collect();
        let cols: Vec<usize> = (0..w).map(|x| torch_nearest(x, gw, w)).collect();
        rows.iter().flat_map(|&r| cols.iter().map(move |&c| self.keep[r * gw + c])).collect()
    }
}

/// PyTorch's `nearest_idx`: the source index of output index `dst` when `input` cells are
/// resized to `output` (the same size: itself; twice the size: `dst / 2`; otherwise
/// `min(⌊dst · (input / output)⌋, input − 1)` in f32).
fn torch_nearest(dst: usize, input: usize, output: usize) -> usize {
    if input == output {
        dst
    } else if output == 2 * input {
        dst >> 1
    } else {
        let scale = input as f32 / output as f32;
        ((dst as f32 * scale).floor() as usize).min(input - 1)
    }
}

/// The masked batch for the student.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedBatch {
    /// `[B, 3, H, W]` ImageNet-normalised, 0 in masked blocks.
    pub images: Vec<f32>,
    /// `[B, 3, H, W]` raw values after the augmentation, the ImageNet mean colour in masked blocks
    /// (what the network sees, for debug images).
    pub raw: Vec<f32>,
    /// Fraction of masked pixels per image.
    pub masked_fraction: Vec<f32>,
}

/// MIC's masked images of `target`: when `strong` is given, its fresh draw for the batch
/// (MIC's `separatetrgaug`; draws first), then one block mask per image (draws in image order).
pub fn masked_target(target: &Batch, strong: Option<&StrongAugConfig>, mask: &BlockMaskConfig, rng: &mut impl Rng) -> Result<MaskedBatch> {
    mask.validate()?;
    let (n, h, w) = (target.len(), target.height, target.width);
    let plane = h * w;
    let mut raw: Vec<f32> = target.raw.iter().map(|&v| f32::from(v)).collect();
    if let Some(cfg) = strong {
        StrongAug::sample(cfg, n, rng).apply_batch(&mut raw, h, w);
    }
    let mut images = raw.clone();
    normalize_planar_in_place(&mut images, plane);
    let mut masked_fraction = Vec::with_capacity(n);
    for i in 0..n {
        let keep = BlockMask::sample(mask, h, w, rng).pixels(h, w);
        let (img, rw) = (&mut images[i * 3 * plane..(i + 1) * 3 * plane], &mut raw[i * 3 * plane..(i + 1) * 3 * plane]);
        for (c, mean) in IMAGENET_MEAN.iter().enumerate() {
            for (j, _) in keep.iter().enumerate().filter(|(_, &k)| !k) {
                img[c * plane + j] = 0.0;
                rw[c * plane + j] = *mean;
            }
        }
        masked_fraction.push(keep.iter().filter(|&&k| !k).count() as f32 / plane.max(1) as f32);
    }
    Ok(MaskedBatch { images, raw, masked_fraction })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;

    #[test]
    fn grid_rounds_halves_to_even_like_python() {
        let cfg = BlockMaskConfig { block_size: 64, mask_ratio: 0.7 };
        // round(96/64 = 1.5) = 2, round(160/64 = 2.5) = 2, round(224/64 = 3.5) = 4 in Python.
        assert_eq!(cfg.grid(96, 160), (2, 2));
        assert_eq!(cfg.grid(224, 512), (4, 8));
        // round(16/64 = 0.25) = 0 would leave no cell: one cell instead.
        assert_eq!(cfg.grid(16, 16), (1, 1));
    }

    #[test]
    fn nearest_upsampling_matches_pytorch_indices() {
        // F.interpolate(nearest) of 2 cells to 5 pixels: scale 0.4, ⌊0, 0.4, 0.8, 1.2, 1.6⌋.
        let m = BlockMask { grid: (2, 1), keep: vec![false, true] };
        assert_eq!(m.pixels(5, 1), vec![false, false, false, true, true]);
        // 3 cells to 7: scale 3/7, ⌊0, .43, .86, 1.29, 1.71, 2.14, 2.57⌋ = 0 0 0 1 1 2 2.
        let m = BlockMask { grid: (1, 3), keep: vec![true, false, true] };
        assert_eq!(m.pixels(1, 7), vec![true, true, true, false, false, true, true]);
        // Exactly twice: each cell twice.
        let m = BlockMask { grid: (1, 2), keep: vec![false, true] };
        assert_eq!(m.pixels(1, 4), vec![false, false, true, true]);
    }

    #[test]
    fn cells_are_kept_when_the_draw_exceeds_the_ratio() {
        let cfg = BlockMaskConfig { block_size: 2, mask_ratio: 0.7 };
        let mut rng = seeded_rng(3, 0);
        let m = BlockMask::sample(&cfg, 8, 6, &mut rng);
        let mut again = seeded_rng(3, 0);
        let draws: Vec<bool> = (0..12).map(|_| again.random::<f64>() > 0.7).collect();
        assert_eq!(m.grid, (4, 3));
        assert_eq!(m.keep, draws);
        // Over many cells about 30 % are kept.
        let big = BlockMask::sample(&BlockMaskConfig { block_size: 1, mask_ratio: 0.7 }, 100, 100, &mut rng);
        let kept = big.keep.iter().filter(|&&k| k).count() as f64 / 10_000.0;
        assert!((kept - 0.3).abs() < 0.02, "{kept}");
    }

    #[test]
    fn masked_blocks_are_zero_and_the_rest_is_the_normalised_image() {
        let (n, h, w) = (2, 4, 4);
        let raw: Vec<u8> = (0..n * 3 * h * w).map(|i| (i * 7 % 256) as u8).collect();
        let target = Batch {
            index: 0,
            height: h,
            width: w,
            images: Vec::new(),
            raw: raw.clone(),
            labels: None,
            names: vec!["a".into(), "b".into()],
            indices: vec![0, 1],
            rare_classes: vec![None, None],
        };
        let cfg = BlockMaskConfig { block_size: 2, mask_ratio: 0.5 };
        let out = masked_target(&target, None, &cfg, &mut seeded_rng(9, 1)).unwrap();
        // The same draws by hand: 2×2 cells per image, each a 2×2 pixel block.
        let mut rng = seeded_rng(9, 1);
        let plane = h * w;
        for i in 0..n {
            let keep: Vec<bool> = (0..4).map(|_| rng.random::<f64>() > 0.5).collect();
            let mut masked = 0;
            for (c, (mean, std)) in IMAGENET_MEAN.iter().zip(crate::IMAGENET_STD).enumerate() {
                for y in 0..h {
                    for x in 0..w {
                        let k = i * 3 * plane + c * plane + y * w + x;
                        let v = out.images[k];
                        if keep[(y / 2) * 2 + x / 2] {
                            let expect = (f32::from(raw[k]) - mean) / std;
                            assert!((v - expect).abs() < 1e-6);
                            assert_eq!(out.raw[k], f32::from(raw[k]));
                        } else {
                            assert_eq!(v, 0.0);
                            assert_eq!(out.raw[k], IMAGENET_MEAN[c]);
                            masked += (c == 0) as usize;
                        }
                    }
                }
            }
            assert_eq!(out.masked_fraction[i], masked as f32 / plane as f32);
        }
    }
}
