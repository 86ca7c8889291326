//! The debug picture of an iteration (`run.debug_interval`): one row per sample, columns
//! source | source label | pseudo-target | target | pseudo-label | mixed image | mixed label |
//! prediction on the mixed image | MIC's masked target (`uda.mic`) — what DAFormer's `debug_img_interval` shows, so a glance
//! tells whether pseudo-labels, mixing and FDA look right.

use std::path::Path;

use image::{imageops, RgbImage};
use t2s_data::visualize::{colorize, save_png};
use t2s_data::LabelSpace;

use crate::{Result, TrainError};

/// One column of the strip.
pub enum Column<'a> {
    /// Raw RGB bytes `[B, 3, H, W]`.
    Bytes(&'a [u8]),
    /// Raw RGB values 0–255 `[B, 3, H, W]`.
    Floats(&'a [f32]),
    /// Train ids `[B, H, W]`, drawn in the label space's colours.
    Labels(&'a [u8]),
}

fn planar_to_rgb(get: impl Fn(usize) -> f32, h: usize, w: usize) -> RgbImage {
    let plane = h * w;
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let j = y as usize * w + x as usize;
        image::Rgb([0, 1, 2].map(|c| get(c * plane + j).round().clamp(0.0, 255.0) as u8))
    })
}

/// Builds the strip for `rows` samples of `h × w` images (a 2-pixel gap between tiles).
pub fn strip(columns: &[Column], rows: usize, h: usize, w: usize, space: &LabelSpace) -> RgbImage {
    let gap = 2;
    let mut out = RgbImage::from_pixel((columns.len() * (w + gap)) as u32, (rows * (h + gap)) as u32, image::Rgb([255, 255, 255]));
    for r in 0..rows {
        for (c, col) in columns.iter().enumerate() {
            let (rgb, lab) = (3 * h * w * r, h * w * r);
            let tile = match col {
                Column::Bytes(v) => planar_to_rgb(|i| v[rgb + i] as f32, h, w),
                Column::Floats(v) => planar_to_rgb(|i| v[rgb + i], h, w),
                Column::Labels(v) => colorize(&v[lab..lab + h * w], w as u32, h as u32, space),
            };
            imageops::replace(&mut out, &tile, (c * (w + gap)) as i64, (r * (h + gap)) as i64);
        }
    }
    out
}

/// Writes the strip to `path` (creating its folder).
pub fn write_strip(path: &Path, columns: &[Column], rows: usize, h: usize, w: usize, space: &LabelSpace) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::Io { path: dir.to_path_buf(), message: e.to_string() })?;
    }
    save_png(&strip(columns, rows, h, w, space), path).map_err(|e| TrainError::Usage(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_land_in_their_cells() {
        let space = LabelSpace::cityscapes();
        // Two samples of 1×2 pixels; image column: sample 0 red, sample 1 blue.
        let bytes = [255u8, 255, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255];
        let labels = [0u8, 0, 10, 10]; // road, sky
        let img = strip(&[Column::Bytes(&bytes), Column::Labels(&labels)], 2, 1, 2, &space);
        assert_eq!(img.dimensions(), (2 * 4, 2 * 3));
        assert_eq!(img.get_pixel(1, 0).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(0, 3).0, [0, 0, 255]);
        assert_eq!(img.get_pixel(4, 0).0, space.color(0));
        assert_eq!(img.get_pixel(5, 3).0, space.color(10));
        assert_eq!(img.get_pixel(2, 0).0, [255, 255, 255]); // gap
    }
}
