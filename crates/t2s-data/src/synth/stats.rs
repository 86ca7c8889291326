//! Measuring what the generator produces: the share of pixels of each class.

use rayon::prelude::*;

use super::dataset::{Domain, Split};
use super::render_label;
use crate::label_space::IGNORE_LABEL;

/// Fraction of pixels of each of the 19 classes over samples `0..count` of a domain's split
/// (ignore pixels, of which the generator makes none, would count in no class). Renders in
/// parallel with rayon.
pub fn class_frequencies(domain: Domain, split: Split, width: u32, height: u32, seed: u64, count: usize) -> [f64; 19] {
    let counts = (0..count as u64)
        .into_par_iter()
        .map(|i| {
            let mut hist = [0u64; 19];
            let label = render_label(domain, width, height, seed, split.stream(i));
            {
                for &l in label.as_raw() {
                    if l != IGNORE_LABEL && (l as usize) < hist.len() {
                        hist[l as usize] += 1;
                    }
                }
            }
            hist
        })
        .reduce(
            || [0u64; 19],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        );
    let total = (count as f64 * width as f64 * height as f64).max(1.0);
    counts.map(|c| c as f64 / total)
}
