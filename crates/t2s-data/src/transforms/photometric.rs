//! Colour jitter as DACS and DAFormer apply it: `kornia.augmentation.ColorJitter(brightness=s,
//! contrast=s, saturation=s, hue=s)` (kornia 0.5, DAFormer's pinned version) on images scaled to
//! `[0, 1]`. Kornia's operations differ from torchvision's and we follow kornia:
//!
//! - brightness: `x + (b − 1)`, clamped to `[0, 1]` (additive, not a blend with black);
//! - contrast: `x · c`, clamped (a plain gain, not a blend with the mean grey);
//! - saturation: in HSV, `S ← clamp(S · s, 0, 1)`;
//! - hue: in HSV, `H ← (H + h · 2π) mod 2π`;
//!
//! in a random order shared by the whole batch, factors drawn per image (see
//! [`super::strong`]). HSV is the standard hexcone model (`V = max`, `S = (max − min)/max`, 0 for
//! black). Every operation is per pixel, so images are processed pixel by pixel.

/// One of the four jitter operations, for the application order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JitterOp {
    /// Additive brightness.
    Brightness,
    /// Multiplicative contrast.
    Contrast,
    /// Saturation gain in HSV.
    Saturation,
    /// Hue rotation in HSV.
    Hue,
}

impl JitterOp {
    /// kornia's index order (`params['order']` indexes this list).
    pub const ALL: [JitterOp; 4] = [JitterOp::Brightness, JitterOp::Contrast, JitterOp::Saturation, JitterOp::Hue];
}

/// The factors of one image, in kornia's parametrisation: `brightness`, `contrast` and
/// `saturation` around 1 (identity), `hue` around 0 in turns (`±0.5` = half the colour wheel).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitterFactors {
    /// Brightness factor; the image gains `brightness − 1` (on the `[0, 1]` scale).
    pub brightness: f32,
    /// Contrast gain.
    pub contrast: f32,
    /// Saturation gain.
    pub saturation: f32,
    /// Hue shift in turns.
    pub hue: f32,
}

impl ColorJitterFactors {
    /// The factors that change nothing.
    pub const IDENTITY: ColorJitterFactors = ColorJitterFactors { brightness: 1.0, contrast: 1.0, saturation: 1.0, hue: 0.0 };
}

/// `[r, g, b]` in `[0, 1]` → `(h in turns [0, 1), s, v)`.
fn rgb_to_hsv([r, g, b]: [f32; 3]) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let s = if max > 0.0 { delta / max } else { 0.0 };
    if delta == 0.0 {
        return (0.0, s, max);
    }
    let sector = if max == r {
        (g - b) / delta
    } else if max == g {
        (b - r) / delta + 2.0
    } else {
        (r - g) / delta + 4.0
    };
    ((sector / 6.0).rem_euclid(1.0), s, max)
}

/// `(h in turns, s, v)` → `[r, g, b]`; `h` may be any real (it wraps).
fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h6 = (h.rem_euclid(1.0) * 6.0).rem_euclid(6.0);
    let sector = h6.floor();
    let f = h6 - sector;
    let p = v * (1.0 - s);
    let q = v * (1.0 - f * s);
    let t = v * (1.0 - (1.0 - f) * s);
    match sector as u32 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// Applies the jitter to one pixel in `[0, 1]`.
fn jitter_pixel(mut px: [f32; 3], f: &ColorJitterFactors, order: &[JitterOp; 4]) -> [f32; 3] {
    for op in order {
        match op {
            JitterOp::Brightness => px = px.map(|x| (x + (f.brightness - 1.0)).clamp(0.0, 1.0)),
            JitterOp::Contrast => px = px.map(|x| (x * f.contrast).clamp(0.0, 1.0)),
            JitterOp::Saturation => {
                let (h, s, v) = rgb_to_hsv(px);
                px = hsv_to_rgb(h, (s * f.saturation).clamp(0.0, 1.0), v);
            }
            JitterOp::Hue => {
                let (h, s, v) = rgb_to_hsv(px);
                px = hsv_to_rgb(h + f.hue, s, v);
            }
        }
    }
    px
}

/// Jitters a planar `[3, H, W]` image on the raw 0–255 scale in place (`plane = H·W`); values
/// are scaled to `[0, 1]` for kornia's arithmetic and back, so the result stays in `[0, 255]`
/// (not rounded).
pub fn color_jitter_in_place(image: &mut [f32], plane: usize, factors: &ColorJitterFactors, order: &[JitterOp; 4]) {
    let (r, rest) = image.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for ((r, g), b) in r.iter_mut().zip(g.iter_mut()).zip(b[..plane].iter_mut()) {
        let out = jitter_pixel([*r / 255.0, *g / 255.0, *b / 255.0], factors, order);
        *r = out[0] * 255.0;
        *g = out[1] * 255.0;
        *b = out[2] * 255.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(px: [f32; 3], f: ColorJitterFactors, order: [JitterOp; 4]) -> [f32; 3] {
        let mut img = vec![px[0] * 255.0, px[1] * 255.0, px[2] * 255.0];
        color_jitter_in_place(&mut img, 1, &f, &order);
        [img[0] / 255.0, img[1] / 255.0, img[2] / 255.0]
    }

    fn close(a: [f32; 3], b: [f32; 3]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn hsv_round_trip_and_known_values() {
        // Orange (1, 0.5, 0): V = 1, S = 1, H = 30° = 1/12 turn.
        let (h, s, v) = rgb_to_hsv([1.0, 0.5, 0.0]);
        assert!((h - 1.0 / 12.0).abs() < 1e-6 && s == 1.0 && v == 1.0);
        for px in [[0.2, 0.7, 0.4], [0.9, 0.1, 0.6], [0.3, 0.3, 0.3], [0.0, 0.0, 0.0], [0.5, 0.25, 0.75]] {
            let (h, s, v) = rgb_to_hsv(px);
            close(hsv_to_rgb(h, s, v), px);
        }
    }

    #[test]
    fn brightness_is_additive_and_contrast_a_gain() {
        let order = JitterOp::ALL;
        let f = ColorJitterFactors { brightness: 1.1, ..ColorJitterFactors::IDENTITY };
        // +0.1 then clamp: 0.95 → 1.
        close(one([0.5, 0.25, 0.95], f, order), [0.6, 0.35, 1.0]);
        let f = ColorJitterFactors { contrast: 1.2, ..ColorJitterFactors::IDENTITY };
        close(one([0.5, 0.25, 0.9], f, order), [0.6, 0.3, 1.0]);
        // Order matters: (0.5 + 0.1)·1.2 = 0.72 but 0.5·1.2 + 0.1 = 0.7.
        let f = ColorJitterFactors { brightness: 1.1, contrast: 1.2, ..ColorJitterFactors::IDENTITY };
        close(one([0.5, 0.5, 0.5], f, order), [0.72; 3]);
        let swapped = [JitterOp::Contrast, JitterOp::Brightness, JitterOp::Saturation, JitterOp::Hue];
        close(one([0.5, 0.5, 0.5], f, swapped), [0.7; 3]);
    }

    #[test]
    fn saturation_and_hue_hand_values() {
        let order = JitterOp::ALL;
        // Saturation 0 turns (0.8, 0.4, 0.2) grey at V = 0.8.
        let f = ColorJitterFactors { saturation: 0.0, ..ColorJitterFactors::IDENTITY };
        close(one([0.8, 0.4, 0.2], f, order), [0.8; 3]);
        // Saturation 0.5: S 0.75 → 0.375, min = V(1 − S) = 0.5; hue 20° keeps
        // g = min + (V − min)·(20/60) = 0.6.
        let f = ColorJitterFactors { saturation: 0.5, ..ColorJitterFactors::IDENTITY };
        close(one([0.8, 0.4, 0.2], f, order), [0.8, 0.6, 0.5]);
        // A third of a turn maps red to green and green to blue; −1/3 maps red to blue.
        let f = ColorJitterFactors { hue: 1.0 / 3.0, ..ColorJitterFactors::IDENTITY };
        close(one([0.6, 0.1, 0.1], f, order), [0.1, 0.6, 0.1]);
        close(one([0.1, 0.6, 0.1], f, order), [0.1, 0.1, 0.6]);
        let f = ColorJitterFactors { hue: -1.0 / 3.0, ..ColorJitterFactors::IDENTITY };
        close(one([0.6, 0.1, 0.1], f, order), [0.1, 0.1, 0.6]);
        // Identity factors change nothing.
        close(one([0.3, 0.6, 0.9], ColorJitterFactors::IDENTITY, order), [0.3, 0.6, 0.9]);
    }
}
