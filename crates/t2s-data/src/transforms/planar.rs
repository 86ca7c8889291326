//! Interleaved `HWC` u8 images to planar `CHW` buffers, and ImageNet normalisation of planar
//! data. Network input is `[3, H, W]` f32; FDA, ClassMix and the strong augmentation work on
//! planar raw 0–255 values before normalisation.

use image::RgbImage;

use crate::image_io::{IMAGENET_MEAN, IMAGENET_STD};

/// `[3, H, W]` raw bytes of an RGB image.
pub fn to_planar_u8(img: &RgbImage) -> Vec<u8> {
    let plane = img.width() as usize * img.height() as usize;
    let mut out = vec![0u8; 3 * plane];
    for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
        out[i] = px[0];
        out[plane + i] = px[1];
        out[2 * plane + i] = px[2];
    }
    out
}

/// `[3, H, W]` raw values 0–255 as f32.
pub fn to_planar_f32(img: &RgbImage) -> Vec<f32> {
    to_planar_u8(img).into_iter().map(f32::from).collect()
}

/// Normalises planar RGB data in place: `(x − mean_c) / std_c` with ImageNet's statistics on the
/// 0–255 scale. `data` is `[N, 3, H, W]` (any `N`, including 1) with `plane = H·W`.
pub fn normalize_planar_in_place(data: &mut [f32], plane: usize) {
    if plane == 0 {
        return;
    }
    for (i, ch) in data.chunks_exact_mut(plane).enumerate() {
        let (mean, inv_std) = (IMAGENET_MEAN[i % 3], 1.0 / IMAGENET_STD[i % 3]);
        for v in ch {
            *v = (*v - mean) * inv_std;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize_imagenet;

    #[test]
    fn planar_layout_and_normalisation_agree_with_image_io() {
        let img = RgbImage::from_fn(3, 2, |x, y| image::Rgb([(x * 50) as u8, (y * 90) as u8, 200]));
        let raw = to_planar_u8(&img);
        // Plane 0 is red in row-major order: x·50 for rows 0 and 1.
        assert_eq!(&raw[..6], &[0, 50, 100, 0, 50, 100]);
        assert_eq!(&raw[6..12], &[0, 0, 0, 90, 90, 90]);
        assert_eq!(&raw[12..], &[200; 6]);
        // Two copies as a batch of two: each equals image_io's normaliser.
        let mut batch = [to_planar_f32(&img), to_planar_f32(&img)].concat();
        normalize_planar_in_place(&mut batch, 6);
        let expect = normalize_imagenet(&img);
        for (i, v) in batch.iter().enumerate() {
            assert!((v - expect[i % 18]).abs() < 1e-6);
        }
    }
}
