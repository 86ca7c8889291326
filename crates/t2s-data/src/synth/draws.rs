//! The random draws and placement rules that `street.rs` (the street) and `traffic.rs` (people
//! and vehicles) share; every draw takes the sample's stream, so scenes stay reproducible.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::appearance::uniform;
use super::layout::Range;

/// A Poisson-distributed count (Knuth's method; means here are small).
pub(super) fn poisson(rng: &mut ChaCha8Rng, mean: f32) -> usize {
    let limit = (-mean).exp();
    let mut p = rng.random::<f32>();
    let mut k = 0;
    while p > limit && k < 64 {
        p *= rng.random::<f32>();
        k += 1;
    }
    k
}

/// A depth drawn log-uniformly: as many objects between 5 and 10 m as between 20 and 40 m,
/// which matches how often objects occupy a given share of the image.
pub(super) fn log_uniform(rng: &mut ChaCha8Rng, (a, b): Range) -> f32 {
    uniform(rng, (a.ln(), b.ln())).exp()
}

/// True with probability `p`.
pub(super) fn chance(rng: &mut ChaCha8Rng, p: f32) -> bool {
    rng.random::<f32>() < p
}

/// `x` moved `d` metres away from the road on `side`.
pub(super) fn away(side: usize, x: f32, d: f32) -> f32 {
    if side == 0 {
        x - d
    } else {
        x + d
    }
}
