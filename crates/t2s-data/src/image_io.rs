//! Reading images and turning them into normalised network input.

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::error::{DataError, Result};

/// ImageNet channel means in RGB on the 0–255 scale (mmseg's `img_norm_cfg`).
pub const IMAGENET_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
/// ImageNet channel standard deviations in RGB on the 0–255 scale.
pub const IMAGENET_STD: [f32; 3] = [58.395, 57.12, 57.375];

/// File extensions read as images.
const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "bmp", "webp"];

/// Decodes an image file as 8-bit RGB (grey and RGBA inputs are converted), pixels as stored.
pub fn read_rgb(path: &Path) -> Result<RgbImage> {
    decode(path, false).map(|(img, _)| img)
}

/// Decodes an image file as 8-bit RGB the way image viewers show it: turned as its EXIF
/// orientation says (phone photos are stored sideways with a tag). Returns whether it was turned.
/// Datasets are read with [`read_rgb`], untouched, so that images stay aligned with their labels.
pub fn read_rgb_oriented(path: &Path) -> Result<(RgbImage, bool)> {
    decode(path, true)
}

/// The image at `path` as RGB, turned upright when `orient` and its metadata say so.
fn decode(path: &Path, orient: bool) -> Result<(RgbImage, bool)> {
    if !path.is_file() {
        return Err(DataError::NotFound { path: path.to_path_buf(), hint: String::new() });
    }
    decode_error_for_panic(path, || decode_file(path, orient))
}

/// `decode` of a file that is there: `f`, with a panic of a decoder on a malformed file turned
/// into the file's decode error (the command goes on with its other files, or stops naming it).
pub(crate) fn decode_error_for_panic<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
        Err(DataError::Decode { path: path.to_path_buf(), message: format!("the decoder failed on it ({})", what.unwrap_or_default()) })
    })
}

fn decode_file(path: &Path, orient: bool) -> Result<(RgbImage, bool)> {
    let decode_error = |e: image::ImageError| DataError::Decode { path: path.to_path_buf(), message: e.to_string() };
    let mut decoder = image::ImageReader::open(path)
        .map_err(|source| DataError::Io { path: path.to_path_buf(), source })?
        .with_guessed_format()
        .map_err(|source| DataError::Io { path: path.to_path_buf(), source })?
        .into_decoder()
        .map_err(decode_error)?;
    let orientation = if orient {
        image::ImageDecoder::orientation(&mut decoder).map_err(decode_error)?
    } else {
        image::metadata::Orientation::NoTransforms
    };
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    img.apply_orientation(orientation);
    Ok((img.to_rgb8(), orientation != image::metadata::Orientation::NoTransforms))
}

/// The image files to process for an input path: the file itself, or every image directly in
/// the folder, sorted by name.
pub fn list_images(input: &Path) -> Result<Vec<PathBuf>> {
    if input.is_file() {
        return Ok(vec![input.to_path_buf()]);
    }
    if !input.is_dir() {
        return Err(DataError::NotFound { path: input.to_path_buf(), hint: " (give an image file or a folder of images)".into() });
    }
    let entries = std::fs::read_dir(input).map_err(|source| DataError::Io { path: input.to_path_buf(), source })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::NotFound {
            path: input.to_path_buf(),
            hint: format!(": the folder has no images ({})", IMAGE_EXTENSIONS.join(", ")),
        });
    }
    Ok(files)
}

/// `[3, H, W]` planar float data, `(pixel − mean) / std` per RGB channel.
pub fn normalize_imagenet(img: &RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (px.0[c] as f32 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_is_planar_and_hand_checked() {
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(0, 0, image::Rgb([123, 116, 103]));
        img.put_pixel(1, 0, image::Rgb([255, 0, 58]));
        let v = normalize_imagenet(&img);
        let expect = [
            (123.0 - 123.675) / 58.395,
            (255.0 - 123.675) / 58.395,
            (116.0 - 116.28) / 57.12,
            (0.0 - 116.28) / 57.12,
            (103.0 - 103.53) / 57.375,
            (58.0 - 103.53) / 57.375,
        ];
        for (a, b) in v.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    /// A decoder's panic becomes the file's decode error, with the panic's message.
    #[test]
    fn a_panicking_decoder_is_a_decode_error() {
        let path = Path::new("broken.png");
        let e = decode_error_for_panic::<()>(path, || panic!("index out of bounds")).unwrap_err();
        assert_eq!(
            e.to_string(),
            DataError::Decode { path: path.into(), message: "the decoder failed on it (index out of bounds)".into() }.to_string()
        );
        let e = decode_error_for_panic::<()>(path, || panic!("{} rows", 3)).unwrap_err();
        assert!(e.to_string().contains("the decoder failed on it (3 rows)"), "{e}");
    }

    #[test]
    fn bad_inputs_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.png");
        assert!(read_rgb(&missing).unwrap_err().to_string().contains("nope.png"));
        let corrupt = dir.path().join("corrupt.png");
        std::fs::write(&corrupt, b"\x89PNG\r\n\x1a\n garbage").unwrap();
        let err = read_rgb(&corrupt).unwrap_err().to_string();
        assert!(err.contains("corrupt.png") && err.contains("cannot decode"), "{err}");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let err = list_images(&empty).unwrap_err().to_string();
        assert!(err.contains("empty") && err.contains("no images"), "{err}");
    }

    #[test]
    fn folders_list_images_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.png", "a.jpg", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let files = list_images(dir.path()).unwrap();
        let names: Vec<_> = files.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
        assert_eq!(names, ["a.jpg", "b.png"]);
    }

    /// Every listed extension decodes (bmp and webp were listed once without their decoders).
    #[test]
    fn every_listed_format_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let img = RgbImage::from_fn(3, 2, |x, y| image::Rgb([40 * x as u8, 100 * y as u8, 7]));
        for ext in IMAGE_EXTENSIONS {
            let path = dir.path().join(format!("i.{ext}"));
            img.save(&path).unwrap_or_else(|e| panic!("{ext}: {e}"));
            let back = read_rgb(&path).unwrap_or_else(|e| panic!("{ext}: {e}"));
            assert_eq!(back.dimensions(), (3, 2), "{ext}");
            // JPEG is lossy; the others are lossless here (webp's encoder is its lossless one).
            if !ext.starts_with("jp") {
                assert_eq!(back, img, "{ext}");
            }
        }
    }
}
