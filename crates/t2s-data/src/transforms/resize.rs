//! Resizing as mmseg does it: `mmcv.imresize` with its default OpenCV backend, i.e.
//! `cv2.INTER_LINEAR` for images and `cv2.INTER_NEAREST` for label maps.
//!
//! Semantics, axis by axis:
//! - **bilinear** (images): pixel centres are aligned (`src = (dst + 0.5) · in/out − 0.5`, what
//!   PyTorch calls `align_corners = false`); coordinates below 0 or above `in − 1` are clamped to
//!   the border pixel; no anti-aliasing when shrinking (OpenCV's `INTER_LINEAR` has none either).
//!   OpenCV blends in 11-bit fixed point; we blend in `f32` and round half up, so results can
//!   differ from OpenCV's by one grey level on a few pixels.
//! - **nearest** (labels): `src = ⌊dst · in/out⌋` (OpenCV's `INTER_NEAREST`, which is *not*
//!   centre-aligned), computed in integers so there is no rounding at exact multiples. Labels are
//!   never interpolated: every output value is one of the input's.

use image::{GrayImage, RgbImage};

/// How the loader resizes an image before cropping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resize {
    /// Keep the size as decoded.
    #[default]
    Original,
    /// Resize to exactly `width × height`, ignoring the aspect ratio.
    Exact {
        /// Output width in pixels.
        width: u32,
        /// Output height in pixels.
        height: u32,
    },
    /// mmseg's `Resize(img_scale=(long, short), keep_ratio=True)`, which DAFormer uses: the
    /// largest scale at which the long side fits `long` and the short side fits `short`; see
    /// [`rescale_size`]. GTA5's 1914×1052 becomes 1280×704, Cityscapes' 2048×1024 1024×512.
    KeepRatio {
        /// Bound on the longer side.
        long: u32,
        /// Bound on the shorter side.
        short: u32,
    },
}

impl Resize {
    /// The output size for an input of `width × height`.
    pub fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        match *self {
            Resize::Original => (width, height),
            Resize::Exact { width, height } => (width, height),
            Resize::KeepRatio { long, short } => rescale_size(width, height, long, short),
        }
    }
}

/// mmcv's `rescale_size` for a `(long, short)` scale: factor
/// `s = min(long / max(w, h), short / min(w, h))`, output `(⌊w·s + 0.5⌋, ⌊h·s + 0.5⌋)`, at least
/// 1×1. Returns `(width, height)`.
pub fn rescale_size(width: u32, height: u32, long: u32, short: u32) -> (u32, u32) {
    let (w, h) = (width as f64, height as f64);
    let (long, short) = (long.max(short) as f64, long.min(short) as f64);
    let s = (long / w.max(h)).min(short / w.min(h));
    let scaled = |v: f64| ((v * s + 0.5).floor() as u32).max(1);
    (scaled(w), scaled(h))
}

/// Source taps of one output position along one axis: `value = (1 − frac)·src[lo] + frac·src[hi]`.
#[derive(Debug, Clone, Copy)]
struct Tap {
    lo: usize,
    hi: usize,
    frac: f32,
}

/// The bilinear taps of output positions `start..start + count` when `in_len` samples are
/// resized to `out_len` (OpenCV `INTER_LINEAR`, see the module documentation).
fn linear_taps(in_len: u32, out_len: u32, start: u32, count: u32) -> Vec<Tap> {
    let scale = in_len as f64 / out_len as f64;
    let last = in_len as usize - 1;
    (start..start + count)
        .map(|d| {
            let f = (d as f64 + 0.5) * scale - 0.5;
            let s = f.floor();
            if s < 0.0 {
                Tap { lo: 0, hi: 0, frac: 0.0 }
            } else if s as usize >= last {
                Tap { lo: last, hi: last, frac: 0.0 }
            } else {
                Tap { lo: s as usize, hi: s as usize + 1, frac: (f - s) as f32 }
            }
        })
        .collect()
}

/// Bilinear resize of an RGB image to `out_w × out_h` (see the module documentation).
pub fn resize_bilinear(src: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    resize_bilinear_window(src, out_w, out_h, 0, 0, out_w, out_h)
}

/// The window `x0..x0 + win_w`, `y0..y0 + win_h` of [`resize_bilinear`]`(src, out_w, out_h)`,
/// computed without the rest of the resized image (the loader resizes only the crop it keeps).
/// The window must lie inside `out_w × out_h`; it is clipped to it otherwise.
pub fn resize_bilinear_window(src: &RgbImage, out_w: u32, out_h: u32, x0: u32, y0: u32, win_w: u32, win_h: u32) -> RgbImage {
    let (in_w, in_h) = src.dimensions();
    let x0 = x0.min(out_w);
    let y0 = y0.min(out_h);
    let win_w = win_w.min(out_w - x0);
    let win_h = win_h.min(out_h - y0);
    if in_w == 0 || in_h == 0 || win_w == 0 || win_h == 0 {
        return RgbImage::new(win_w, win_h);
    }
    if (in_w, in_h) == (out_w, out_h) {
        return image::imageops::crop_imm(src, x0, y0, win_w, win_h).to_image();
    }
    let xt = linear_taps(in_w, out_w, x0, win_w);
    let yt = linear_taps(in_h, out_h, y0, win_h);
    // Horizontal pass over just the source rows the window's vertical taps read.
    let row_lo = yt.iter().map(|t| t.lo).min().unwrap_or(0);
    let row_hi = yt.iter().map(|t| t.hi).max().unwrap_or(0);
    let ww = win_w as usize;
    let raw = src.as_raw();
    let stride = in_w as usize * 3;
    let mut rows = vec![0f32; (row_hi - row_lo + 1) * ww * 3];
    for (r, out_row) in (row_lo..=row_hi).zip(rows.chunks_exact_mut(ww * 3)) {
        let line = &raw[r * stride..(r + 1) * stride];
        for (t, px) in xt.iter().zip(out_row.chunks_exact_mut(3)) {
            for c in 0..3 {
                let a = line[t.lo * 3 + c] as f32;
                let b = line[t.hi * 3 + c] as f32;
                px[c] = a + (b - a) * t.frac;
            }
        }
    }
    // Vertical pass, rounding half up to u8 as OpenCV's fixed-point path does.
    let mut out = vec![0u8; ww * win_h as usize * 3];
    for (t, out_row) in yt.iter().zip(out.chunks_exact_mut(ww * 3)) {
        let a = &rows[(t.lo - row_lo) * ww * 3..(t.lo - row_lo + 1) * ww * 3];
        let b = &rows[(t.hi - row_lo) * ww * 3..(t.hi - row_lo + 1) * ww * 3];
        for ((o, &va), &vb) in out_row.iter_mut().zip(a).zip(b) {
            *o = (va + (vb - va) * t.frac + 0.5).floor().clamp(0.0, 255.0) as u8;
        }
    }
    RgbImage::from_raw(win_w, win_h, out).expect("buffer sized from the window")
}

/// Nearest-neighbour resize of a label map (OpenCV `INTER_NEAREST`: `src = ⌊dst · in/out⌋`).
pub fn resize_nearest(src: &GrayImage, out_w: u32, out_h: u32) -> GrayImage {
    let (in_w, in_h) = src.dimensions();
    if (in_w, in_h) == (out_w, out_h) || in_w == 0 || in_h == 0 {
        return if (in_w, in_h) == (out_w, out_h) { src.clone() } else { GrayImage::new(out_w, out_h) };
    }
    let xs: Vec<usize> = (0..out_w as u64).map(|x| ((x * in_w as u64) / out_w as u64) as usize).collect();
    let raw = src.as_raw();
    let mut out = Vec::with_capacity(out_w as usize * out_h as usize);
    for y in 0..out_h as u64 {
        let sy = ((y * in_h as u64) / out_h as u64) as usize;
        let line = &raw[sy * in_w as usize..(sy + 1) * in_w as usize];
        out.extend(xs.iter().map(|&sx| line[sx]));
    }
    GrayImage::from_raw(out_w, out_h, out).expect("buffer sized from the output")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_ratio_sizes_match_mmcv() {
        // GTA5: s = min(1280/1914, 720/1052) = 0.668757…; 1052·s + 0.5 = 704.03 → 704.
        assert_eq!(rescale_size(1914, 1052, 1280, 720), (1280, 704));
        // Cityscapes: s = 0.5 exactly.
        assert_eq!(rescale_size(2048, 1024, 1024, 512), (1024, 512));
        // SYNTHIA 1280×760 at (1280, 760) is unchanged; the order of the scale pair is irrelevant.
        assert_eq!(rescale_size(1280, 760, 760, 1280), (1280, 760));
        assert_eq!(Resize::KeepRatio { long: 1280, short: 720 }.output_size(1914, 1052), (1280, 704));
    }

    #[test]
    fn bilinear_upscale_by_two_hand_values() {
        // One row 0, 100, 200 → 6 samples: src = (d + 0.5)/2 − 0.5 = −0.25, 0.25, 0.75, 1.25, 1.75, 2.25
        // → 0 (clamped), 25, 75, 125, 175, 200 (clamped).
        let mut img = RgbImage::new(3, 1);
        for (x, v) in [0u8, 100, 200].into_iter().enumerate() {
            img.put_pixel(x as u32, 0, image::Rgb([v, 255 - v, v / 2]));
        }
        let out = resize_bilinear(&img, 6, 1);
        let r: Vec<u8> = out.pixels().map(|p| p.0[0]).collect();
        assert_eq!(r, [0, 25, 75, 125, 175, 200]);
        let g: Vec<u8> = out.pixels().map(|p| p.0[1]).collect();
        assert_eq!(g, [255, 230, 180, 130, 80, 55]);
        // 0, 50, 100 halves: 0, 12.5 → 13 (half up), 37.5 → 38, 62.5 → 63, 87.5 → 88, 100.
        let b: Vec<u8> = out.pixels().map(|p| p.0[2]).collect();
        assert_eq!(b, [0, 13, 38, 63, 88, 100]);
    }

    #[test]
    fn bilinear_downscale_by_two_averages_pairs() {
        // 4×4 → 2×2: src = 2d + 0.5, the average of the 2×2 block.
        let vals: Vec<u8> = (0..16).map(|i| (i * 10) as u8).collect();
        let mut img = RgbImage::new(4, 4);
        for (i, v) in vals.iter().enumerate() {
            img.put_pixel(i as u32 % 4, i as u32 / 4, image::Rgb([*v, *v, *v]));
        }
        let out = resize_bilinear(&img, 2, 2);
        // Block means: (0+10+40+50)/4 = 25, (20+30+60+70)/4 = 45, 105, 125.
        let r: Vec<u8> = out.pixels().map(|p| p.0[0]).collect();
        assert_eq!(r, [25, 45, 105, 125]);
    }

    #[test]
    fn window_equals_crop_of_full_resize() {
        let mut img = RgbImage::new(37, 23);
        for (x, y, p) in img.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 7 + y * 3) as u8, (x * y) as u8, (255 - x * 5) as u8]);
        }
        let full = resize_bilinear(&img, 50, 31);
        let win = resize_bilinear_window(&img, 50, 31, 11, 6, 20, 17);
        let cut = image::imageops::crop_imm(&full, 11, 6, 20, 17).to_image();
        assert_eq!(win, cut);
        // Windows past the border are clipped.
        assert_eq!(resize_bilinear_window(&img, 50, 31, 40, 25, 20, 20).dimensions(), (10, 6));
    }

    #[test]
    fn nearest_never_invents_labels() {
        // 3 columns 1, 2, 255 → 7: src = ⌊7·… ⌋: d·3/7 = 0,0,0,1,1,2,2.
        let lab = GrayImage::from_raw(3, 1, vec![1, 2, 255]).unwrap();
        let out = resize_nearest(&lab, 7, 1);
        assert_eq!(out.as_raw(), &vec![1, 1, 1, 2, 2, 255, 255]);
        // Down by two keeps the top-left of each pair (not a blend).
        let lab = GrayImage::from_raw(4, 2, vec![1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert_eq!(resize_nearest(&lab, 2, 1).as_raw(), &vec![1, 3]);
    }
}
