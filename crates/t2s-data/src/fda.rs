//! Fourier Domain Adaptation (Yang & Soatto, CVPR 2020), docs/method.md §5: the source image
//! takes the target's low-frequency amplitude spectrum and keeps its own phase.
//!
//! Per channel: 2-D DFT of source and target; in the square of frequencies `(k_y, k_x)` with
//! `|k_y| ≤ b` and `|k_x| ≤ b` (signed frequencies, i.e. wrapping around zero), the source's
//! amplitude is replaced by the target's and its phase kept; inverse DFT, real part; finally
//! clamped to `[0, 255]`. `b = ⌊β · min(H, W)⌋`.
//!
//! This is exactly the original `low_freq_mutate_np` (FDA's `utils/__init__.py`): after
//! `fftshift` the zero frequency sits at `c = ⌊n/2⌋` and the slice `c − b .. c + b + 1` covers
//! the signed frequencies `−b..=b`, both ends included, for odd and even sizes. With `b = 0` only
//! the DC term (the mean colour) is swapped. `scripts/fda_reference.py` runs that numpy code and
//! its frozen outputs are the test fixture. β is limited to `[0, 0.5]`: beyond it the original's
//! slice starts at a negative index and stops meaning a square.
//!
//! How it is computed: real FFT along rows (`realfft`), complex FFT along the columns — but only
//! the `b + 1` columns `k_x = 0..=b` of the half spectrum, the others are not changed — swap,
//! inverse column FFT, inverse real FFT along rows. The spectrum of a real image is Hermitian and
//! the square is symmetric, so editing the half spectrum is the same as editing the full one.
//! Plans are cached per image size; the work per plane is about three row FFT passes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::{Fft, FftPlanner};

use crate::error::{DataError, Result};

/// Largest β: the square reaches the Nyquist frequency of the shorter side.
pub const MAX_BETA: f64 = 0.5;

/// FFT plans of one image size.
struct Plans {
    row_forward: Arc<dyn RealToComplex<f32>>,
    row_inverse: Arc<dyn ComplexToReal<f32>>,
    column_forward: Arc<dyn Fft<f32>>,
    column_inverse: Arc<dyn Fft<f32>>,
}

/// Buffers of one worker, reused across planes.
struct Workspace {
    source: Vec<Complex<f32>>,
    target: Vec<Complex<f32>>,
    source_columns: Vec<Complex<f32>>,
    target_columns: Vec<Complex<f32>>,
    row_in: Vec<f32>,
    row_scratch: Vec<Complex<f32>>,
    column_scratch: Vec<Complex<f32>>,
}

/// The FDA transform with a fixed β and its FFT plans (cached per image size; `Fda` is `Sync`,
/// share one across threads).
pub struct Fda {
    beta: f64,
    plans: Mutex<HashMap<(usize, usize), Arc<Plans>>>,
}

impl std::fmt::Debug for Fda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fda").field("beta", &self.beta).finish_non_exhaustive()
    }
}

/// The half-width `b = ⌊β · min(H, W)⌋` of the swapped square (computed in f64 like numpy).
pub fn low_frequency_half_width(beta: f64, height: usize, width: usize) -> usize {
    (beta * height.min(width) as f64).floor().max(0.0) as usize
}

/// Signed frequency of FFT bin `k` of an `n`-point transform (`n/2` counts as `−n/2`, where
/// `fftshift` puts it).
fn signed_frequency(k: usize, n: usize) -> isize {
    if k < n.div_ceil(2) {
        k as isize
    } else {
        k as isize - n as isize
    }
}

impl Fda {
    /// FDA with band `beta` ∈ `[0, 0.5]` (0.01 is FDA's single-band value for GTA5 → Cityscapes).
    pub fn new(beta: f64) -> Result<Self> {
        if !(0.0..=MAX_BETA).contains(&beta) {
            return Err(DataError::Setting {
                setting: "fda beta".into(),
                message: format!("{beta} is outside [0, {MAX_BETA}] (FDA uses 0.01 to 0.09)"),
            });
        }
        Ok(Self { beta, plans: Mutex::new(HashMap::new()) })
    }

    /// The band β.
    pub fn beta(&self) -> f64 {
        self.beta
    }

    fn plans(&self, height: usize, width: usize) -> Arc<Plans> {
        // A poisoned lock only means another thread panicked mid-insert of an Arc; the map is
        // still valid.
        let mut cache = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry((height, width))
            .or_insert_with(|| {
                let mut real = RealFftPlanner::<f32>::new();
                let mut complex = FftPlanner::<f32>::new();
                Arc::new(Plans {
                    row_forward: real.plan_fft_forward(width),
                    row_inverse: real.plan_fft_inverse(width),
                    column_forward: complex.plan_fft_forward(height),
                    column_inverse: complex.plan_fft_inverse(height),
                })
            })
            .clone()
    }

    /// Translates `source` to the style of `target`: both planar `[N, H, W]` buffers of raw
    /// 0–255 values (N planes: 3 for one RGB image, 3·B for a `[B, 3, H, W]` batch), each plane
    /// paired with the same plane of `target`. Returns `[N, H, W]` clamped to `[0, 255]`.
    /// Planes run in parallel on the current rayon pool.
    ///
    /// Errors when the buffers' lengths differ or are not a whole number of `H × W` planes.
    pub fn apply(&self, source: &[f32], target: &[f32], height: usize, width: usize) -> Result<Vec<f32>> {
        let mut out = self.apply_unclamped(source, target, height, width)?;
        for v in &mut out {
            *v = v.clamp(0.0, 255.0);
        }
        Ok(out)
    }

    /// [`Fda::apply`] on raw bytes (`[N, H, W]` u8, e.g. a batch's `raw` images).
    pub fn apply_u8(&self, source: &[u8], target: &[u8], height: usize, width: usize) -> Result<Vec<f32>> {
        let s: Vec<f32> = source.iter().map(|&v| v as f32).collect();
        let t: Vec<f32> = target.iter().map(|&v| v as f32).collect();
        self.apply(&s, &t, height, width)
    }

    /// [`Fda::apply`] without the final clamp (the original FDA's output, for comparisons).
    pub fn apply_unclamped(&self, source: &[f32], target: &[f32], height: usize, width: usize) -> Result<Vec<f32>> {
        let plane = height * width;
        if source.len() != target.len() {
            return Err(DataError::Shape {
                what: format!("FDA source has {} values but target has {}; crop both to the same size", source.len(), target.len()),
            });
        }
        if plane == 0 || !source.len().is_multiple_of(plane) {
            return Err(DataError::Shape {
                what: format!("FDA input of {} values is not a whole number of {height}×{width} planes", source.len()),
            });
        }
        let plans = self.plans(height, width);
        let b = low_frequency_half_width(self.beta, height, width);
        let mut out = vec![0f32; source.len()];
        out.par_chunks_mut(plane).zip(source.par_chunks(plane).zip(target.par_chunks(plane))).for_each_init(
            || Workspace::new(&plans, height, width, b),
            |ws, (out, (s, t))| translate_plane(&plans, ws, s, t, height, width, b, out),
        );
        Ok(out)
    }
}

impl Workspace {
    fn new(plans: &Plans, height: usize, width: usize, b: usize) -> Self {
        let half = width / 2 + 1;
        let columns = (b + 1).min(half);
        Self {
            source: vec![Complex::default(); height * half],
            target: vec![Complex::default(); height * half],
            source_columns: vec![Complex::default(); columns * height],
            target_columns: vec![Complex::default(); columns * height],
            row_in: vec![0.0; width],
            row_scratch: vec![Complex::default(); plans.row_forward.get_scratch_len().max(plans.row_inverse.get_scratch_len())],
            column_scratch: vec![
                Complex::default();
                plans.column_forward.get_inplace_scratch_len().max(plans.column_inverse.get_inplace_scratch_len())
            ],
        }
    }
}

/// Real FFT of every row of `plane` into `spectrum` (`H × (W/2 + 1)`).
fn rows_forward(
    plans: &Plans,
    ws_row: &mut [f32],
    scratch: &mut [Complex<f32>],
    plane: &[f32],
    spectrum: &mut [Complex<f32>],
    width: usize,
) {
    let half = width / 2 + 1;
    for (row, spec) in plane.chunks_exact(width).zip(spectrum.chunks_exact_mut(half)) {
        ws_row.copy_from_slice(row);
        plans.row_forward.process_with_scratch(ws_row, spec, scratch).expect("buffer lengths come from the plan");
    }
}

/// Copies columns `0..columns` of an `H × half` spectrum into `columns × H` contiguous buffers.
fn gather_columns(spectrum: &[Complex<f32>], half: usize, height: usize, columns: usize, out: &mut [Complex<f32>]) {
    for kx in 0..columns {
        for y in 0..height {
            out[kx * height + y] = spectrum[y * half + kx];
        }
    }
}

/// The FDA of one plane (module documentation), unclamped, into `out`.
#[allow(clippy::too_many_arguments)]
fn translate_plane(
    plans: &Plans,
    ws: &mut Workspace,
    source: &[f32],
    target: &[f32],
    height: usize,
    width: usize,
    b: usize,
    out: &mut [f32],
) {
    let half = width / 2 + 1;
    let columns = (b + 1).min(half);
    rows_forward(plans, &mut ws.row_in, &mut ws.row_scratch, source, &mut ws.source, width);
    rows_forward(plans, &mut ws.row_in, &mut ws.row_scratch, target, &mut ws.target, width);
    gather_columns(&ws.source, half, height, columns, &mut ws.source_columns);
    gather_columns(&ws.target, half, height, columns, &mut ws.target_columns);
    plans.column_forward.process_with_scratch(&mut ws.source_columns, &mut ws.column_scratch);
    plans.column_forward.process_with_scratch(&mut ws.target_columns, &mut ws.column_scratch);

    for kx in 0..columns {
        for ky in 0..height {
            if signed_frequency(ky, height).unsigned_abs() > b {
                continue;
            }
            let i = kx * height + ky;
            let s = ws.source_columns[i];
            let amplitude = ws.target_columns[i].norm();
            let magnitude = s.norm();
            // numpy's angle(0) is 0, so a zero source coefficient takes the amplitude as real.
            ws.source_columns[i] = if magnitude > 0.0 { s * (amplitude / magnitude) } else { Complex::new(amplitude, 0.0) };
        }
    }

    plans.column_inverse.process_with_scratch(&mut ws.source_columns, &mut ws.column_scratch);
    let inv_h = 1.0 / height as f32;
    for kx in 0..columns {
        for y in 0..height {
            ws.source[y * half + kx] = ws.source_columns[kx * height + y] * inv_h;
        }
    }
    let inv_w = 1.0 / width as f32;
    let nyquist = width.is_multiple_of(2).then_some(half - 1);
    for (spec, row) in ws.source.chunks_exact_mut(half).zip(out.chunks_exact_mut(width)) {
        // The DC (and, for even widths, Nyquist) bins of a real row are real; the swap keeps
        // Hermitian symmetry, so their imaginary parts are rounding noise, which realfft rejects.
        spec[0].im = 0.0;
        if let Some(n) = nyquist {
            spec[n].im = 0.0;
        }
        plans.row_inverse.process_with_scratch(spec, row, &mut ws.row_scratch).expect("buffer lengths come from the plan");
        for v in row.iter_mut() {
            *v *= inv_w;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// One case of `tests/fixtures/fda_reference.json`, written by `scripts/fda_reference.py`.
    #[derive(Deserialize)]
    struct Case {
        height: usize,
        width: usize,
        beta: f64,
        b: usize,
        source: Vec<f32>,
        target: Vec<f32>,
        expected: Vec<f32>,
    }

    fn cases() -> Vec<Case> {
        let text = include_str!("../tests/fixtures/fda_reference.json");
        serde_json::from_str(text).expect("fixture parses")
    }

    #[test]
    fn matches_the_original_numpy_fda() {
        let cases = cases();
        assert!(cases.len() >= 4);
        for c in &cases {
            assert_eq!(low_frequency_half_width(c.beta, c.height, c.width), c.b, "b of {}×{}", c.height, c.width);
            let fda = Fda::new(c.beta).unwrap();
            let raw = fda.apply_unclamped(&c.source, &c.target, c.height, c.width).unwrap();
            let clamped = fda.apply(&c.source, &c.target, c.height, c.width).unwrap();
            for ((r, k), e) in raw.iter().zip(&clamped).zip(&c.expected) {
                assert!((r - e).abs() < 2e-3, "{}×{} β={}: {r} vs {e}", c.height, c.width, c.beta);
                assert!((k - e.clamp(0.0, 255.0)).abs() < 2e-3);
            }
        }
        // The fixture exercises clamping: some reference values leave [0, 255].
        assert!(cases.iter().flat_map(|c| &c.expected).any(|v| !(0.0..=255.0).contains(v)));
    }

    /// `sum_{x} v[x] e^{∓2πi k x / n}` of one plane, the textbook O(N²) DFT in f64.
    fn dft2(plane: &[Complex<f64>], h: usize, w: usize, inverse: bool) -> Vec<Complex<f64>> {
        let sign = if inverse { 1.0 } else { -1.0 };
        let mut out = vec![Complex::default(); h * w];
        for ky in 0..h {
            for kx in 0..w {
                let mut acc = Complex::<f64>::default();
                for y in 0..h {
                    for x in 0..w {
                        let phase = sign * 2.0 * std::f64::consts::PI * ((ky * y) as f64 / h as f64 + (kx * x) as f64 / w as f64);
                        acc += plane[y * w + x] * Complex::new(phase.cos(), phase.sin());
                    }
                }
                out[ky * w + kx] = acc;
            }
        }
        out
    }

    #[test]
    fn matches_a_direct_dft_on_odd_sizes() {
        // 9×14, β = 0.25 → b = 2: the swap written out on the full spectrum with a plain DFT.
        let (h, w, beta) = (9, 14, 0.25);
        let s: Vec<f32> = (0..h * w).map(|i| ((i * 53 + 7) % 251) as f32).collect();
        let t: Vec<f32> = (0..h * w).map(|i| ((i * i * 13 + 101) % 241) as f32).collect();
        let to_c = |v: &[f32]| v.iter().map(|&x| Complex::new(x as f64, 0.0)).collect::<Vec<_>>();
        let (fs, ft) = (dft2(&to_c(&s), h, w, false), dft2(&to_c(&t), h, w, false));
        let b = 2isize;
        let mut mixed = fs.clone();
        for ky in 0..h {
            for kx in 0..w {
                let (fy, fx) = (signed_frequency(ky, h), signed_frequency(kx, w));
                if fy.abs() <= b && fx.abs() <= b {
                    let i = ky * w + kx;
                    mixed[i] = Complex::from_polar(ft[i].norm(), fs[i].arg());
                }
            }
        }
        let back = dft2(&mixed, h, w, true);
        let got = Fda::new(beta).unwrap().apply_unclamped(&s, &t, h, w).unwrap();
        for (g, e) in got.iter().zip(&back) {
            assert!((*g as f64 - e.re / (h * w) as f64).abs() < 1e-3, "{g} vs {}", e.re / (h * w) as f64);
        }
    }

    #[test]
    fn beta_zero_swaps_the_mean_only() {
        // b = 0: only the DC term changes, so the output is the source shifted to the target's
        // mean (when the source mean is positive).
        let (h, w) = (6, 5);
        let s: Vec<f32> = (0..h * w).map(|i| (i * 3 + 20) as f32).collect();
        let t: Vec<f32> = (0..h * w).map(|i| (200 - i * 2) as f32).collect();
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        let shift = mean(&t) - mean(&s);
        let out = Fda::new(0.0).unwrap().apply(&s, &t, h, w).unwrap();
        assert_eq!(out.len(), s.len());
        for (o, x) in out.iter().zip(&s) {
            assert!((o - (x + shift)).abs() < 1e-3);
        }
    }

    #[test]
    fn same_image_is_unchanged_and_sizes_must_agree() {
        let (h, w) = (12, 16);
        let img: Vec<f32> = (0..3 * h * w).map(|i| ((i * 31) % 256) as f32).collect();
        let fda = Fda::new(0.2).unwrap();
        let out = fda.apply(&img, &img, h, w).unwrap();
        assert_eq!(out.len(), img.len());
        assert!(out.iter().zip(&img).all(|(a, b)| (a - b).abs() < 1e-3));
        let err = fda.apply(&img, &img[..h * w], h, w).unwrap_err().to_string();
        assert!(err.contains("same size"), "{err}");
        assert!(fda.apply(&img, &img, 7, 7).is_err());
        assert!(Fda::new(0.6).is_err() && Fda::new(-0.1).is_err() && Fda::new(f64::NAN).is_err());
    }

    #[test]
    fn signed_frequencies_follow_fftshift() {
        assert_eq!((0..7).map(|k| signed_frequency(k, 7)).collect::<Vec<_>>(), [0, 1, 2, 3, -3, -2, -1]);
        assert_eq!((0..6).map(|k| signed_frequency(k, 6)).collect::<Vec<_>>(), [0, 1, 2, -3, -2, -1]);
    }
}
