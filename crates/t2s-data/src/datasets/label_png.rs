//! Decoding label PNGs to their stored values, without the colour conversions an image library
//! applies: palette PNGs give their indices (GTA5 stores labelIds as palette indices, which
//! `image` would expand to colours) and 16-bit PNGs their full sample values (SYNTHIA).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use png::{BitDepth, ColorType, Transformations};

use crate::error::{DataError, Result};

/// How a dataset stores its label values in PNG files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelEncoding {
    /// One 8-bit (or 1/2/4-bit) value per pixel: a grey level or a palette index, both read as
    /// the stored number.
    Index8,
    /// 16 bits per channel, RGB or RGBA; the value is the first (red) channel.
    FirstChannel16,
}

impl LabelEncoding {
    /// Words for the error message when a file has another format.
    fn expected(self) -> &'static str {
        match self {
            LabelEncoding::Index8 => "an 8-bit single-channel PNG (greyscale or palette; the value or palette index is the label)",
            LabelEncoding::FirstChannel16 => "a 16-bit RGB PNG whose first channel holds the class id",
        }
    }
}

/// Largest decoded label accepted, in bytes (1 GiB).
const MAX_LABEL_BYTES: usize = 1 << 30;

/// A decoded label file: stored values, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLabel {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// One stored value per pixel, `width·height` of them.
    pub values: Vec<u16>,
}

/// Reads a label PNG in `encoding`; errors name the file and, for a wrong format, what was found
/// and what was expected.
pub fn read_label_png(path: &Path, encoding: LabelEncoding) -> Result<RawLabel> {
    crate::image_io::decode_error_for_panic(path, || read_label_file(path, encoding))
}

fn read_label_file(path: &Path, encoding: LabelEncoding) -> Result<RawLabel> {
    let file = File::open(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let decode_err = |e: png::DecodingError| DataError::Decode { path: path.to_path_buf(), message: e.to_string() };
    let mut decoder = png::Decoder::new(BufReader::with_capacity(1 << 16, file));
    // No expansion, no 16→8 stripping: the stored numbers are the labels.
    decoder.set_transformations(Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(decode_err)?;
    let (color, depth) = reader.output_color_type();
    let found = || format!("{} with {} bits per sample", color_name(color), depth as u8);
    let format_err = || DataError::LabelFormat { path: path.to_path_buf(), found: found(), expected: encoding.expected().to_string() };
    let accepted = match encoding {
        LabelEncoding::Index8 => matches!(color, ColorType::Grayscale | ColorType::Indexed) && depth != BitDepth::Sixteen,
        LabelEncoding::FirstChannel16 => matches!(color, ColorType::Rgb | ColorType::Rgba) && depth == BitDepth::Sixteen,
    };
    if !accepted {
        return Err(format_err());
    }
    // A damaged or hostile header must not make us allocate without bound (the largest real
    // labels, Mapillary's, are a few tens of megabytes).
    let size = reader.output_buffer_size().filter(|&n| n <= MAX_LABEL_BYTES).ok_or_else(|| DataError::Decode {
        path: path.to_path_buf(),
        message: format!("{}×{} pixels is too large for a label map", reader.info().width, reader.info().height),
    })?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(decode_err)?;
    let (width, height) = (info.width, info.height);
    let values = match encoding {
        LabelEncoding::Index8 => unpack_rows(&buf, width, height, info.line_size, depth as u8),
        LabelEncoding::FirstChannel16 => {
            let bytes_per_pixel = 2 * color.samples();
            let mut values = Vec::with_capacity(width as usize * height as usize);
            for row in buf.chunks(info.line_size).take(height as usize) {
                // PNG stores 16-bit samples big-endian.
                values.extend(row.chunks_exact(bytes_per_pixel).take(width as usize).map(|px| u16::from_be_bytes([px[0], px[1]])));
            }
            values
        }
    };
    if values.len() != width as usize * height as usize {
        return Err(DataError::Decode { path: path.to_path_buf(), message: "fewer pixels than the header declares".into() });
    }
    Ok(RawLabel { width, height, values })
}

/// Single-channel rows of `bits` bits per pixel (1, 2, 4 or 8, most significant bits first, as
/// PNG packs them) to one value per pixel.
fn unpack_rows(buf: &[u8], width: u32, height: u32, line_size: usize, bits: u8) -> Vec<u16> {
    let mut values = Vec::with_capacity(width as usize * height as usize);
    let per_byte = 8 / bits as usize;
    let mask = ((1u16 << bits) - 1) as u8;
    for row in buf.chunks(line_size).take(height as usize) {
        if bits == 8 {
            values.extend(row.iter().take(width as usize).map(|&v| v as u16));
            continue;
        }
        for x in 0..width as usize {
            let byte = row[x / per_byte];
            let shift = 8 - bits as usize * (x % per_byte + 1);
            values.push(((byte >> shift) & mask) as u16);
        }
    }
    values
}

/// Human words for a PNG colour type.
fn color_name(color: ColorType) -> &'static str {
    match color {
        ColorType::Grayscale => "greyscale",
        ColorType::Rgb => "RGB",
        ColorType::Indexed => "palette",
        ColorType::GrayscaleAlpha => "greyscale+alpha",
        ColorType::Rgba => "RGBA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::test_fixtures::{write_gray8, write_palette, write_png_raw, write_rgb16};

    #[test]
    fn palette_indices_are_read_not_colours() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.png");
        write_palette(&p, 3, 2, &[7, 26, 0, 33, 255, 1]);
        let raw = read_label_png(&p, LabelEncoding::Index8).unwrap();
        assert_eq!((raw.width, raw.height), (3, 2));
        assert_eq!(raw.values, [7, 26, 0, 33, 255, 1]);
    }

    #[test]
    fn packed_4_bit_palettes_unpack_msb_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l4.png");
        // 3 pixels of 4 bits: 0x7A, 0x30 → 7, 10, 3 (the last nibble is padding).
        write_png_raw(&p, 3, 1, ColorType::Indexed, BitDepth::Four, &[0x7A, 0x30], Some(&[0u8; 48]));
        assert_eq!(read_label_png(&p, LabelEncoding::Index8).unwrap().values, [7, 10, 3]);
    }

    #[test]
    fn sixteen_bit_first_channel_is_big_endian() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.png");
        write_rgb16(&p, 2, 1, &[3, 300]);
        let raw = read_label_png(&p, LabelEncoding::FirstChannel16).unwrap();
        assert_eq!(raw.values, [3, 300]);
    }

    #[test]
    fn wrong_formats_name_file_and_expectation() {
        let dir = tempfile::tempdir().unwrap();
        let rgb8 = dir.path().join("colour.png");
        image::RgbImage::new(2, 2).save(&rgb8).unwrap();
        let err = read_label_png(&rgb8, LabelEncoding::Index8).unwrap_err().to_string();
        assert!(err.contains("colour.png") && err.contains("RGB with 8 bits") && err.contains("palette"), "{err}");
        let grey = dir.path().join("grey.png");
        write_gray8(&grey, 2, 1, &[1, 2]);
        let err = read_label_png(&grey, LabelEncoding::FirstChannel16).unwrap_err().to_string();
        assert!(err.contains("grey.png") && err.contains("greyscale with 8 bits") && err.contains("16-bit RGB"), "{err}");
    }

    #[test]
    fn absurd_header_sizes_are_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("huge.png");
        write_gray8(&p, 1, 1, &[0]);
        // Patch IHDR to 100000×100000 (10 GB of pixels) and fix its CRC: a valid but absurd header.
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        std::fs::write(&p, bytes).unwrap();
        let err = read_label_png(&p, LabelEncoding::Index8).unwrap_err().to_string();
        assert!(err.contains("huge.png") && err.contains("100000×100000 pixels is too large"), "{err}");
    }

    /// CRC-32 (IEEE, as PNG chunks use), bit by bit.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn truncated_and_garbage_files_are_decode_errors() {
        let dir = tempfile::tempdir().unwrap();
        // Incompressible values, so that half the file ends inside the pixel data.
        let good = dir.path().join("good.png");
        let noise: Vec<u8> = (0..64 * 64u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        write_gray8(&good, 64, 64, &noise);
        assert_eq!(read_label_png(&good, LabelEncoding::Index8).unwrap().values.len(), 4096);
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.png");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = read_label_png(&cut, LabelEncoding::Index8).unwrap_err().to_string();
        assert!(err.contains("cut.png") && err.contains("cannot decode"), "{err}");
        let junk = dir.path().join("junk.png");
        std::fs::write(&junk, b"not a png at all").unwrap();
        let err = read_label_png(&junk, LabelEncoding::Index8).unwrap_err().to_string();
        assert!(err.contains("junk.png") && err.contains("cannot decode"), "{err}");
    }
}
