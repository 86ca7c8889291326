//! The unit every reader, transform and the loader exchange: an RGB image with an optional
//! train-id label map, and the `Dataset` trait every source of samples implements.

use crate::{LabelSpace, Result};
use image::{GrayImage, RgbImage};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One example. `label`, when present, has the image's size and holds train ids of the
/// dataset's label space, 255 (`IGNORE_LABEL`) for pixels that are not trained or evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Stable identifier of the example (file stem or `synthetic-<index>`), for messages and
    /// output file names.
    pub name: String,
    /// RGB, 8 bits per channel, as stored (no normalisation).
    pub image: RgbImage,
    /// Train ids, same width and height as `image`; `None` for unlabelled target sets.
    pub label: Option<GrayImage>,
}

/// A finite, indexable set of samples: the real-dataset readers, the custom folder dataset and
/// the synthetic benchmark. `get` decodes on demand so that a loader can parallelise it.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Name of sample `index` without decoding it.
    fn name(&self, index: usize) -> String;
    /// Decodes sample `index` (`index < len()`); errors name the file at fault.
    fn get(&self, index: usize) -> Result<Sample>;
    /// Only the label of sample `index` (class statistics); sets that can skip the image
    /// override it.
    fn label(&self, index: usize) -> Result<Option<image::GrayImage>> {
        self.get(index).map(|s| s.label)
    }
    /// The classes the labels refer to (the 19 Cityscapes train ids for every built-in set).
    fn label_space(&self) -> &LabelSpace;
    /// Whether samples carry labels.
    fn has_labels(&self) -> bool;
}

/// The random generator of everything seeded in t2s-data: ChaCha8, whose output is fixed by its
/// specification, so a (seed, stream) pair gives the same numbers on every platform and version.
/// Use one stream per independent consumer (e.g. the sample index) so results do not depend on
/// the order in which parallel workers run.
pub fn seeded_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A uniform draw from `[a, b)`; unlike `random_range` it accepts `a == b` (no panic on an empty range).
pub(crate) fn uniform(rng: &mut impl rand::Rng, (a, b): (f32, f32)) -> f32 {
    a + (b - a) * rng.random::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u32> = (0..4).map(|_| 0).scan(seeded_rng(7, 1), |r, _: u32| Some(r.random())).collect();
        let b: Vec<u32> = (0..4).map(|_| 0).scan(seeded_rng(7, 1), |r, _: u32| Some(r.random())).collect();
        let c: Vec<u32> = (0..4).map(|_| 0).scan(seeded_rng(7, 2), |r, _: u32| Some(r.random())).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
