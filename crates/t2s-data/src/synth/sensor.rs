//! From the rendered canvas to the 8-bit image: per-class surface texture, haze, colour grading
//! (saturation, contrast, exposure and white balance), vignetting, lens blur and sensor noise.
//! The source domain's look turns most of these off; the target's "camera" uses all of them.
//! Nothing here touches the label map.

use image::RgbImage;

use super::appearance::{mix, scaled, Look};
use super::noise::{gaussian, mix64, xorshift, ValueNoise};
use super::raster::Canvas;

/// Develops the canvas into the image a camera with `look` would record.
pub(crate) fn develop(c: &Canvas, look: &Look) -> RgbImage {
    let (w, h) = (c.width, c.height);
    let mut buf: Vec<[f32; 3]> = Vec::with_capacity(w * h);
    let texture = ValueNoise::new(look.pixel_seed);
    // Normalising by the height keeps textures the same size relative to the scene at any
    // resolution.
    let inv_h = 1.0 / h.max(1) as f32;
    let (inv_w2, inv_h2) = (2.0 / w.max(1) as f32, 2.0 / h.max(1) as f32);
    for row in 0..h {
        let v = (row as f32 + 0.5) * inv_h;
        let dy = (row as f32 + 0.5) * inv_h2 - 1.0;
        for col in 0..w {
            let i = row * w + col;
            let label = c.label[i] as usize;
            let mut px = c.color[i];
            if let Some(t) = look.textures.get(label).filter(|t| t.amp > 0.0) {
                // Each class gets its own patch of the noise field, so neighbouring regions of
                // different classes do not share a pattern across their boundary.
                let u = (col as f32 + 0.5) * inv_h;
                let n = texture.fractal(u * t.freq + label as f32 * 37.1, v * t.freq);
                px = scaled(px, 1.0 + t.amp * n);
            }
            if let Some((haze, visibility, strength)) = look.haze {
                let a = strength * (1.0 - (-c.depth[i] / visibility).exp());
                px = mix(px, haze, a);
            }
            let lum = 0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2];
            let dx = (col as f32 + 0.5) * inv_w2 - 1.0;
            let vignette = 1.0 - look.vignette * 0.5 * (dx * dx + dy * dy);
            for (value, gain) in px.iter_mut().zip(look.gain) {
                let graded = 0.5 + (lum + (*value - lum) * look.saturation - 0.5) * look.contrast;
                *value = graded * gain * vignette;
            }
            buf.push(px);
        }
    }
    let sigma = look.blur * h as f32;
    if sigma >= 0.25 {
        gaussian_blur(&mut buf, w, h, sigma);
    }
    let noise_seed = mix64(look.pixel_seed ^ 0x5eed_5e45);
    let mut raw = Vec::with_capacity(w * h * 3);
    for (i, px) in buf.iter().enumerate() {
        // One hash per pixel, stepped once per channel.
        let mut bits = mix64(noise_seed ^ i as u64);
        for &value in px {
            let noisy = if look.noise_sd > 0.0 {
                bits = xorshift(bits);
                value + look.noise_sd * gaussian(bits)
            } else {
                value
            };
            raw.push((noisy.clamp(0.0, 1.0) * 255.0 + 0.5) as u8);
        }
    }
    RgbImage::from_raw(w as u32, h as u32, raw).unwrap_or_else(|| RgbImage::new(w as u32, h as u32))
}

/// Separable Gaussian blur with clamped edges (a lens slightly out of focus).
fn gaussian_blur(buf: &mut [[f32; 3]], w: usize, h: usize, sigma: f32) {
    let radius = ((2.5 * sigma).ceil() as usize).clamp(1, 16);
    let mut kernel: Vec<f32> = (0..=2 * radius)
        .map(|k| {
            let d = k as f32 - radius as f32;
            (-d * d / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let total: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);
    let mut tmp = vec![[0.0f32; 3]; buf.len()];
    for row in 0..h {
        let line = &buf[row * w..(row + 1) * w];
        for col in 0..w {
            let mut acc = [0.0f32; 3];
            for (k, &wt) in kernel.iter().enumerate() {
                let src = (col + k).saturating_sub(radius).min(w - 1);
                for ch in 0..3 {
                    acc[ch] += wt * line[src][ch];
                }
            }
            tmp[row * w + col] = acc;
        }
    }
    for row in 0..h {
        for col in 0..w {
            let mut acc = [0.0f32; 3];
            for (k, &wt) in kernel.iter().enumerate() {
                let src = (row + k).saturating_sub(radius).min(h - 1);
                for ch in 0..3 {
                    acc[ch] += wt * tmp[src * w + col][ch];
                }
            }
            buf[row * w + col] = acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_preserves_flat_regions_and_mean() {
        let (w, h) = (9, 7);
        let mut flat = vec![[0.3f32, 0.5, 0.7]; w * h];
        gaussian_blur(&mut flat, w, h, 1.2);
        assert!(flat.iter().all(|p| (p[0] - 0.3).abs() < 1e-5 && (p[2] - 0.7).abs() < 1e-5));
        let mut spike = vec![[0.0f32; 3]; w * h];
        spike[3 * w + 4] = [1.0; 3];
        gaussian_blur(&mut spike, w, h, 0.8);
        let sum: f32 = spike.iter().map(|p| p[0]).sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
        assert!(spike[3 * w + 4][0] < 0.5 && spike[3 * w + 5][0] > 0.01);
    }
}
