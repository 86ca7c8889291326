//! Per-pixel randomness without a random-number stream: integer hashes, value noise and
//! approximately Gaussian sensor noise.
//!
//! Instance-level choices (where a car stands, its colour) come from the sample's ChaCha8 stream;
//! per-pixel quantities (texture, sensor noise) come from hashing the pixel's coordinates with a
//! seed drawn from that stream. Hashing costs a few nanoseconds where drawing ~100k numbers from
//! ChaCha8 per image would dominate the render time, and it keeps every pixel independent of the
//! order in which pixels are visited.

use std::sync::OnceLock;

/// SplitMix64's finaliser: a fast bijective mixer with good avalanche.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One xorshift64 step: a cheap way to draw further well-mixed words from one hash.
#[inline]
pub(crate) fn xorshift(mut h: u64) -> u64 {
    h ^= h << 13;
    h ^= h >> 7;
    h ^ (h << 17)
}

/// A hash mapped to [-1, 1).
#[inline]
fn signed_unit(h: u64) -> f32 {
    // 24 bits are all an f32 mantissa holds.
    (h >> 40) as f32 * (2.0 / (1u32 << 24) as f32) - 1.0
}

/// An approximately standard-normal number from one hash: the sum of four 16-bit uniforms
/// (Irwin–Hall, variance 1/3 each quarter), centred and scaled to unit variance. Its tails end at
/// ±3.46σ, which is all sensor noise needs.
#[inline]
pub(crate) fn gaussian(h: u64) -> f32 {
    let scale = 1.0 / 65536.0;
    let s = (h & 0xffff) as f32 + ((h >> 16) & 0xffff) as f32 + ((h >> 32) & 0xffff) as f32 + (h >> 48) as f32;
    (s * scale - 2.0) * 3f32.sqrt()
}

/// `x.floor() as i32` without the library call `floor` compiles to on baseline x86-64 (no
/// SSE4.1), which dominated texturing; exact for |x| < 2^31.
#[inline]
fn fast_floor(x: f32) -> i32 {
    let t = x as i32;
    t - ((x < t as f32) as i32)
}

/// Side of the lattice table value noise reads from (a power of two).
const LATTICE: usize = 256;

/// The random lattice values, computed once: reading a table is several times faster than
/// hashing four lattice points per lookup, and texturing is the generator's hottest loop.
fn lattice() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| (0..LATTICE * LATTICE).map(|i| signed_unit(mix64(0x7a11_ce5e ^ i as u64))).collect())
}

/// Smooth 2-D value noise in [-1, 1]: random values on the integer lattice, interpolated with a
/// smoothstep so that the texture has no visible grid creases. The lattice is a fixed 256×256
/// table, wrapped; the seed picks where in it a field starts, so fields of different seeds
/// differ while repeating only every 256 lattice units (several image heights at the
/// frequencies used).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ValueNoise {
    offset: (i32, i32),
    table: &'static [f32],
}

impl ValueNoise {
    /// Noise field of a seed.
    pub(crate) fn new(seed: u64) -> Self {
        let h = mix64(seed);
        Self { offset: ((h & 0xffff) as i32, ((h >> 16) & 0xffff) as i32), table: lattice() }
    }

    #[inline]
    fn value(&self, x: i32, y: i32) -> f32 {
        let mask = LATTICE as i32 - 1;
        let (xi, yi) = ((x.wrapping_add(self.offset.0) & mask) as usize, (y.wrapping_add(self.offset.1) & mask) as usize);
        self.table[yi * LATTICE + xi]
    }

    /// The noise at `(x, y)` (lattice units).
    #[inline]
    pub(crate) fn at(&self, x: f32, y: f32) -> f32 {
        let (xi, yi) = (fast_floor(x), fast_floor(y));
        let (tx, ty) = (x - xi as f32, y - yi as f32);
        let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
        let v00 = self.value(xi, yi);
        let v10 = self.value(xi.wrapping_add(1), yi);
        let v01 = self.value(xi, yi.wrapping_add(1));
        let v11 = self.value(xi.wrapping_add(1), yi.wrapping_add(1));
        let top = v00 + (v10 - v00) * sx;
        let bottom = v01 + (v11 - v01) * sx;
        top + (bottom - top) * sy
    }

    /// Two octaves (the second at twice the frequency, half the weight), still in [-1, 1].
    #[inline]
    pub(crate) fn fractal(&self, x: f32, y: f32) -> f32 {
        // The offset decorrelates the octaves, which share the lattice seed.
        (2.0 * self.at(x, y) + self.at(2.0 * x + 17.31, 2.0 * y + 5.79)) * (1.0 / 3.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_has_unit_variance_and_zero_mean() {
        let n = 200_000;
        let (mut sum, mut sq) = (0.0f64, 0.0f64);
        for i in 0..n {
            let g = gaussian(mix64(i)) as f64;
            sum += g;
            sq += g * g;
        }
        let mean = sum / n as f64;
        let var = sq / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn fast_floor_matches_floor() {
        for x in [-3.5f32, -3.0, -0.2, 0.0, 0.7, 2.0, 2.999, 1e6 + 0.5, -1e6 - 0.5] {
            assert_eq!(fast_floor(x), x.floor() as i32, "{x}");
        }
    }

    #[test]
    fn value_noise_is_bounded_continuous_and_seeded() {
        let a = ValueNoise::new(1);
        let b = ValueNoise::new(2);
        let mut differs = false;
        for i in 0..1000 {
            let (x, y) = (i as f32 * 0.173 - 40.0, i as f32 * 0.311 - 90.0);
            let v = a.fractal(x, y);
            assert!((-1.0..=1.0).contains(&v));
            // Continuity: a tiny step changes the value a little.
            assert!((a.at(x, y) - a.at(x + 1e-3, y)).abs() < 0.01);
            differs |= (a.at(x, y) - b.at(x, y)).abs() > 1e-3;
        }
        assert!(differs);
    }
}
