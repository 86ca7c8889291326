//! ClassMix (DACS, Tranheden et al. 2021; DAFormer's `get_class_masks` / `one_mix`): half of the
//! classes of a source label map are cut out of the source image and pasted onto the target image;
//! the mixed label takes the source label there and the target pseudo-label elsewhere, the pixel
//! weight 1 there and the pseudo-label weight elsewhere (docs/method.md §3.5).
//!
//! Classes are those present in the **source label of the same sample, 255 excluded** (the spec
//! of method.md). DAFormer's code calls `torch.unique(labels)` on the whole batch, 255 included —
//! a known slip inherited from DACS; we do not reproduce it. The number chosen is
//! `(n + n mod 2) / 2 = ⌈n/2⌉`, without replacement, uniformly (numpy's
//! `choice(n, ⌈n/2⌉, replace=False)`).
//!
//! Buffers are row-major `[H, W]` for labels, masks and weights, planar `[C, H, W]` for images.

use rand::Rng;

use crate::error::{DataError, Result};
use crate::label_space::IGNORE_LABEL;

/// The paste mask of one sample: `true` where the source is pasted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassMixMask {
    /// The chosen source classes, ascending.
    pub classes: Vec<u8>,
    /// `[H, W]`, `true` on source pixels of a chosen class.
    pub mask: Vec<bool>,
}

/// The classes present in a label map (255 excluded), ascending.
pub fn classes_present(label: &[u8]) -> Vec<u8> {
    let mut seen = [false; 256];
    for &v in label {
        seen[v as usize] = true;
    }
    seen[IGNORE_LABEL as usize] = false;
    (0..=255u8).filter(|&c| seen[c as usize]).collect()
}

impl ClassMixMask {
    /// Chooses `⌈n/2⌉` of the `n` classes of `source_label` (`[H, W]`) uniformly without
    /// replacement and builds the mask. A label with no class (all 255) gives an empty mask.
    pub fn sample(source_label: &[u8], rng: &mut impl Rng) -> Self {
        let present = classes_present(source_label);
        let n = present.len();
        let mut classes: Vec<u8> = rand::seq::index::sample(rng, n, n.div_ceil(2)).into_iter().map(|i| present[i]).collect();
        classes.sort_unstable();
        Self::from_classes(source_label, classes)
    }

    /// The mask of the given classes in `source_label`.
    pub fn from_classes(source_label: &[u8], classes: Vec<u8>) -> Self {
        let mut chosen = [false; 256];
        for &c in &classes {
            chosen[c as usize] = true;
        }
        let mask = source_label.iter().map(|&v| chosen[v as usize]).collect();
        Self { classes, mask }
    }

    /// Number of pixels.
    pub fn len(&self) -> usize {
        self.mask.len()
    }

    /// True when the mask has no pixel.
    pub fn is_empty(&self) -> bool {
        self.mask.is_empty()
    }

    fn check(&self, what: &str, len: usize) -> Result<()> {
        if len != self.mask.len() {
            return Err(DataError::Shape { what: format!("ClassMix {what} has {len} pixels but the mask {}", self.mask.len()) });
        }
        Ok(())
    }

    /// Mixed planar image `[C, H, W]`: source where the mask is set, target elsewhere.
    pub fn mix_image<T: Copy>(&self, source: &[T], target: &[T]) -> Result<Vec<T>> {
        let plane = self.mask.len();
        if source.len() != target.len() || plane == 0 || !source.len().is_multiple_of(plane) {
            return Err(DataError::Shape {
                what: format!("ClassMix images of {} and {} values for a mask of {plane} pixels", source.len(), target.len()),
            });
        }
        Ok(source
            .chunks_exact(plane)
            .zip(target.chunks_exact(plane))
            .flat_map(|(s, t)| self.mask.iter().zip(s.iter().zip(t)).map(|(&m, (&s, &t))| if m { s } else { t }))
            .collect())
    }

    /// Mixed label `[H, W]`: the source label where the mask is set, the target (pseudo-)label
    /// elsewhere.
    pub fn mix_label(&self, source_label: &[u8], target_label: &[u8]) -> Result<Vec<u8>> {
        self.check("source label", source_label.len())?;
        self.check("target label", target_label.len())?;
        Ok(self.mask.iter().zip(source_label.iter().zip(target_label)).map(|(&m, (&s, &t))| if m { s } else { t }).collect())
    }

    /// Mixed pixel weights `[H, W]`: 1 where the mask is set, the target's pseudo-label weight
    /// elsewhere.
    pub fn mix_weight(&self, target_weight: &[f32]) -> Result<Vec<f32>> {
        self.check("target weight", target_weight.len())?;
        Ok(self.mask.iter().zip(target_weight).map(|(&m, &w)| if m { 1.0 } else { w }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeded_rng;

    #[test]
    fn half_the_classes_rounded_up_and_never_ignore() {
        // Classes {0, 3, 7} plus 255: ⌈3/2⌉ = 2 chosen.
        let label = [0, 3, 3, 7, 255, 0, 7, 255];
        for s in 0..50 {
            let m = ClassMixMask::sample(&label, &mut seeded_rng(4, s));
            assert_eq!(m.classes.len(), 2);
            assert!(m.classes.iter().all(|c| [0, 3, 7].contains(c)));
            assert!(!m.mask[4] && !m.mask[7], "ignore pixels are never pasted");
            for (i, &v) in label.iter().enumerate() {
                assert_eq!(m.mask[i], m.classes.contains(&v));
            }
        }
        // Four classes → 2; one class → 1; none → 0.
        assert_eq!(ClassMixMask::sample(&[1, 2, 3, 4], &mut seeded_rng(0, 0)).classes.len(), 2);
        assert_eq!(ClassMixMask::sample(&[5, 5], &mut seeded_rng(0, 0)).classes, vec![5]);
        let none = ClassMixMask::sample(&[255, 255], &mut seeded_rng(0, 0));
        assert!(none.classes.is_empty() && none.mask == vec![false, false]);
    }

    #[test]
    fn each_pair_of_three_is_equally_likely() {
        // 3 classes, 2 chosen: 3 possible pairs, p = 1/3 each; 3,000 draws → sd ≈ 25.8, 5 sd.
        let mut counts = std::collections::HashMap::new();
        for s in 0..3000 {
            *counts.entry(ClassMixMask::sample(&[1, 2, 3], &mut seeded_rng(11, s)).classes).or_insert(0i64) += 1;
        }
        assert_eq!(counts.len(), 3);
        assert!(counts.values().all(|&n| (n - 1000).abs() <= 129), "{counts:?}");
    }

    #[test]
    fn mixing_hand_made_2x3() {
        // Source label [[1, 2, 255], [2, 1, 3]], classes {1, 3} pasted.
        let source_label = [1, 2, 255, 2, 1, 3];
        let m = ClassMixMask::from_classes(&source_label, vec![1, 3]);
        assert_eq!(m.mask, [true, false, false, false, true, true]);
        let target_label = [9, 9, 9, 8, 8, 8];
        assert_eq!(m.mix_label(&source_label, &target_label).unwrap(), [1, 9, 9, 8, 1, 3]);
        assert_eq!(m.mix_weight(&[0.5; 6]).unwrap(), [1.0, 0.5, 0.5, 0.5, 1.0, 1.0]);
        // Two channels: source 10.., target 100..
        let src: Vec<u8> = (10..22).collect();
        let tgt: Vec<u8> = (100..112).collect();
        assert_eq!(m.mix_image(&src, &tgt).unwrap(), [10, 101, 102, 103, 14, 15, 16, 107, 108, 109, 20, 21]);
        assert!(m.mix_label(&source_label, &target_label[..5]).is_err());
        assert!(m.mix_image(&src, &tgt[..7]).is_err());
    }
}
