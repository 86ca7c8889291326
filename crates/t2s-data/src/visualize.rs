//! Writing predictions people look at: train-id label PNGs, colourised maps and overlays.

use std::path::Path;

use image::{GrayImage, RgbImage};

use crate::error::{DataError, Result};
use crate::label_space::LabelSpace;

/// A label map (train ids, 255 = ignore) as an 8-bit grey image, `labels.len() == w·h`.
pub fn label_image(labels: &[u8], width: u32, height: u32) -> GrayImage {
    GrayImage::from_raw(width, height, labels.to_vec()).unwrap_or_else(|| GrayImage::new(width, height))
}

/// Colourises a label map with the label space's palette (ignore → black).
pub fn colorize(labels: &[u8], width: u32, height: u32, space: &LabelSpace) -> RgbImage {
    let mut out = RgbImage::new(width, height);
    for (px, &l) in out.pixels_mut().zip(labels) {
        px.0 = space.color(l);
    }
    out
}

/// Blends the colourised labels over the image: `alpha·colour + (1−alpha)·image`.
pub fn overlay(image: &RgbImage, color: &RgbImage, alpha: f32) -> RgbImage {
    let mut out = image.clone();
    for (o, c) in out.pixels_mut().zip(color.pixels()) {
        for k in 0..3 {
            o.0[k] = (alpha * c.0[k] as f32 + (1.0 - alpha) * o.0[k] as f32).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Saves an image as PNG, naming the file on failure.
pub fn save_png<P, C>(img: &image::ImageBuffer<P, C>, path: &Path) -> Result<()>
where
    P: image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    img.save_with_format(path, image::ImageFormat::Png).map_err(|e| DataError::Write { path: path.to_path_buf(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_and_overlay_are_hand_checked() {
        let space = LabelSpace::cityscapes();
        let c = colorize(&[0, 13, 255], 3, 1, &space);
        assert_eq!(c.get_pixel(0, 0).0, [128, 64, 128]);
        assert_eq!(c.get_pixel(1, 0).0, [0, 0, 142]);
        assert_eq!(c.get_pixel(2, 0).0, [0, 0, 0]);
        let img = RgbImage::from_pixel(3, 1, image::Rgb([100, 100, 100]));
        let o = overlay(&img, &c, 0.5);
        assert_eq!(o.get_pixel(0, 0).0, [114, 82, 114]);
        assert_eq!(o.get_pixel(1, 0).0, [50, 50, 121]);
    }
}
