//! Writers of tiny files in the real datasets' formats (palette, 8-bit grey and 16-bit RGB label
//! PNGs, RGB images), for the readers' tests.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use png::{BitDepth, ColorType};

/// Writes a PNG with the given raw (already packed) rows; `palette` is RGB triples.
pub fn write_png_raw(path: &Path, w: u32, h: u32, color: ColorType, depth: BitDepth, data: &[u8], palette: Option<&[u8]>) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let mut enc = png::Encoder::new(BufWriter::new(File::create(path).unwrap()), w, h);
    enc.set_color(color);
    enc.set_depth(depth);
    if let Some(p) = palette {
        enc.set_palette(p.to_vec());
    }
    enc.write_header().unwrap().write_image_data(data).unwrap();
}

/// An 8-bit palette PNG ("P" mode, as GTA5 labels) whose indices are `indices`; the palette
/// colours deliberately differ from the indices so that expanding it would be caught.
pub fn write_palette(path: &Path, w: u32, h: u32, indices: &[u8]) {
    let palette: Vec<u8> = (0..256u32).flat_map(|i| [(i * 3 % 256) as u8, 200, (255 - i) as u8]).collect();
    write_png_raw(path, w, h, ColorType::Indexed, BitDepth::Eight, indices, Some(&palette));
}

/// An 8-bit greyscale PNG.
pub fn write_gray8(path: &Path, w: u32, h: u32, values: &[u8]) {
    write_png_raw(path, w, h, ColorType::Grayscale, BitDepth::Eight, values, None);
}

/// A 16-bit RGB PNG (as SYNTHIA `GT/LABELS`) with `first` in the red channel and other numbers
/// in green and blue.
pub fn write_rgb16(path: &Path, w: u32, h: u32, first: &[u16]) {
    let data: Vec<u8> = first.iter().flat_map(|&v| [v.to_be_bytes(), 1000u16.to_be_bytes(), 7u16.to_be_bytes()].concat()).collect();
    write_png_raw(path, w, h, ColorType::Rgb, BitDepth::Sixteen, &data, None);
}

/// An RGB image whose pixels encode their position, saved in the format the extension names.
pub fn write_image(path: &Path, w: u32, h: u32) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 99])).save(path).unwrap();
}
