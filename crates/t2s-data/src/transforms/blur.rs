//! Gaussian blur as DACS/DAFormer apply it: `kornia.filters.GaussianBlur2d(kernel_size,
//! (σ, σ))` with reflect borders, the kernel size set from the image size by DAFormer's
//! `strong_transform.gaussian_blur`:
//! `kernel = ⌊⌈0.1·n⌉ − 0.5 + (⌈0.1·n⌉ mod 2)⌋`, i.e. `⌈0.1·n⌉` rounded down to an odd number
//! (512 → 51, 1024 → 103, 20 → 1).
//!
//! The filter is separable and linear with weights summing to 1, so blurring raw 0–255 pixels
//! and normalising afterwards equals DAFormer's blurring of the normalised image.
//!
//! Taps whose normalised weight is below `1e-12` are dropped (with σ ≤ 1.15 a 51-tap kernel has
//! about 21 non-negligible taps); their total weight is under `1e-10` for kernels of up to 100
//! taps, far below `f32` resolution on the 0–255 scale, and the remaining weights are not
//! renormalised, so they are kornia's values.

/// Weights under this are skipped (see the module documentation).
const NEGLIGIBLE_WEIGHT: f32 = 1e-12;

/// DAFormer's blur kernel size for an image side of `len` pixels (module documentation).
pub fn daformer_blur_kernel_size(len: usize) -> usize {
    let c = (len as f64 * 0.1).ceil();
    (c - 0.5 + c % 2.0).floor().max(1.0) as usize
}

/// kornia's 1-D Gaussian window: `exp(−x²/2σ²)` at `x = i − ⌊size/2⌋` (+0.5 for even sizes),
/// normalised to sum 1. `sigma` must be positive. DAFormer's sizes are always odd; an even
/// kernel is applied at offsets `−size/2 .. size/2 − 1`.
pub fn gaussian_kernel(size: usize, sigma: f32) -> Vec<f32> {
    let half = (size / 2) as f64;
    let shift = if size.is_multiple_of(2) { 0.5 } else { 0.0 };
    let sigma = sigma as f64;
    let w: Vec<f64> = (0..size)
        .map(|i| {
            let x = i as f64 - half + shift;
            (-x * x / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f64 = w.iter().sum();
    w.iter().map(|v| (v / sum) as f32).collect()
}

/// Reflect-101 index (PyTorch `reflect` padding: `−1 → 1`, `n → n − 2`), repeated as needed.
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m >= n as isize { period - m } else { m }) as usize
}

/// Convolves `line` with `taps` (offsets relative to the output sample) into `out`, reflecting
/// at the borders.
fn convolve_line(line: &[f32], taps: &[(isize, f32)], out: &mut [f32]) {
    let n = line.len();
    let reach = taps.iter().map(|t| t.0.unsigned_abs()).max().unwrap_or(0);
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = 0f32;
        if i >= reach && i + reach < n {
            for &(d, w) in taps {
                acc += w * line[(i as isize + d) as usize];
            }
        } else {
            for &(d, w) in taps {
                acc += w * line[reflect(i as isize + d, n)];
            }
        }
        *o = acc;
    }
}

/// The non-negligible taps of a centred kernel as `(offset, weight)`.
fn taps(kernel: &[f32]) -> Vec<(isize, f32)> {
    let half = (kernel.len() / 2) as isize;
    kernel.iter().enumerate().filter(|(_, &w)| w >= NEGLIGIBLE_WEIGHT).map(|(i, &w)| (i as isize - half, w)).collect()
}

/// Blurs every `height × width` plane of a planar buffer (`[C, H, W]`, any `C`) in place with a
/// `(kernel_h, kernel_w)` Gaussian of standard deviation `sigma` in both directions, reflect
/// borders (kornia `GaussianBlur2d`). Use [`daformer_blur_kernel_size`] for the kernel sizes.
pub fn gaussian_blur_in_place(data: &mut [f32], height: usize, width: usize, kernel_h: usize, kernel_w: usize, sigma: f32) {
    let plane = height * width;
    if plane == 0 {
        return;
    }
    let tx = taps(&gaussian_kernel(kernel_w, sigma));
    let ty = taps(&gaussian_kernel(kernel_h, sigma));
    let mut column = vec![0f32; height];
    let mut column_out = vec![0f32; height];
    let mut row_out = vec![0f32; width];
    for p in data.chunks_exact_mut(plane) {
        for row in p.chunks_exact_mut(width) {
            convolve_line(row, &tx, &mut row_out);
            row.copy_from_slice(&row_out);
        }
        for x in 0..width {
            for (y, c) in column.iter_mut().enumerate() {
                *c = p[y * width + x];
            }
            convolve_line(&column, &ty, &mut column_out);
            for (y, &v) in column_out.iter().enumerate() {
                p[y * width + x] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_sizes_follow_daformer() {
        // ⌈0.1·n⌉: 512 → 52 (even) → 51; 1024 → 103 (odd) stays; 30 → 3; 20 → 2 → 1; 7 → 1 → 1.
        assert_eq!(daformer_blur_kernel_size(512), 51);
        assert_eq!(daformer_blur_kernel_size(1024), 103);
        assert_eq!(daformer_blur_kernel_size(30), 3);
        assert_eq!(daformer_blur_kernel_size(20), 1);
        assert_eq!(daformer_blur_kernel_size(7), 1);
        assert_eq!(daformer_blur_kernel_size(720), 71);
    }

    #[test]
    fn kernel_matches_closed_form() {
        // size 3, σ = 1: [e^−½, 1, e^−½] / (1 + 2e^−½).
        let e = (-0.5f64).exp();
        let k = gaussian_kernel(3, 1.0);
        let s = 1.0 + 2.0 * e;
        for (a, b) in k.iter().zip([e / s, 1.0 / s, e / s]) {
            assert!((*a as f64 - b).abs() < 1e-7);
        }
        // Even sizes are centred between samples: size 2 gives [½, ½].
        assert_eq!(gaussian_kernel(2, 0.7), vec![0.5, 0.5]);
    }

    #[test]
    fn impulse_response_is_the_outer_product_with_reflect_borders() {
        // 5×5 plane, kernel 3×3 σ = 1, impulse 1 at (row 2, col 0).
        let e = (-0.5f64).exp();
        let k = [e / (1.0 + 2.0 * e), 1.0 / (1.0 + 2.0 * e), e / (1.0 + 2.0 * e)];
        let mut p = vec![0f32; 25];
        p[2 * 5] = 1.0;
        gaussian_blur_in_place(&mut p, 5, 5, 3, 3, 1.0);
        // Along x the impulse sits on the border: reflection gives column 0 weight k1 (its own
        // centre tap), column 1 weight k0 (it sees the impulse to its left). Nothing reaches
        // column 2. Along y rows 1, 2, 3 get k0, k1, k2.
        let wx = [k[1], k[0], 0.0, 0.0, 0.0];
        let wy = [0.0, k[0], k[1], k[2], 0.0];
        for y in 0..5 {
            for x in 0..5 {
                assert!((p[y * 5 + x] as f64 - wy[y] * wx[x]).abs() < 1e-7, "({y}, {x})");
            }
        }
        // A constant plane stays constant (weights sum to 1), here on a second channel.
        let mut two = vec![0f32; 50];
        two[25..].fill(100.0);
        gaussian_blur_in_place(&mut two, 5, 5, 3, 3, 1.0);
        assert!(two[25..].iter().all(|v| (v - 100.0).abs() < 1e-4));
        assert!(two[..25].iter().all(|v| *v == 0.0));
    }

    #[test]
    fn reflect_indices() {
        assert_eq!([-2, -1, 0, 4, 5, 6].map(|i| reflect(i, 5)), [2, 1, 0, 4, 3, 2]);
        assert_eq!(reflect(-3, 1), 0);
    }
}
