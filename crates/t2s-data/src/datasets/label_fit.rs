//! Making a label map fit its image: the size policy of each reader, and nearest-neighbour
//! resizing (the only resize labels may undergo: it never invents a class).

use std::path::Path;

use image::GrayImage;

use crate::error::{DataError, Result};

/// What a reader does when an image and its label differ in size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizePolicy {
    /// Resize the label to the image with nearest neighbour and say so (GTA5, where a handful of
    /// pairs are known to differ).
    ResizeLabel,
    /// Refuse the pair with an error naming both files (every other reader: there a mismatch
    /// means a wrong or damaged file).
    Error,
}

/// Applies `policy` to a label of `label`'s size for an image of `image_size`; returns the
/// fitted label and, if it was resized, a sentence saying so.
pub fn fit_label(
    label: GrayImage,
    image_size: (u32, u32),
    policy: SizePolicy,
    image_path: &Path,
    label_path: &Path,
) -> Result<(GrayImage, Option<String>)> {
    let (lw, lh) = label.dimensions();
    let (iw, ih) = image_size;
    if (lw, lh) == (iw, ih) {
        return Ok((label, None));
    }
    match policy {
        SizePolicy::ResizeLabel => {
            let note = format!("label {} is {lw}×{lh}, image is {iw}×{ih}: label resized (nearest neighbour)", label_path.display());
            Ok((resize_nearest_centred(&label, iw, ih), Some(note)))
        }
        SizePolicy::Error => Err(DataError::SizeMismatch {
            image: image_path.to_path_buf(),
            label: label_path.to_path_buf(),
            image_w: iw,
            image_h: ih,
            label_w: lw,
            label_h: lh,
        }),
    }
}

/// Nearest-neighbour resize sampling at pixel centres: output pixel `x` takes source pixel
/// `floor((x + ½)·src_w / dst_w)` (PIL's NEAREST), symmetric for up- and downscaling.
pub fn resize_nearest_centred(src: &GrayImage, width: u32, height: u32) -> GrayImage {
    let (sw, sh) = src.dimensions();
    if sw == 0 || sh == 0 {
        return GrayImage::new(width, height);
    }
    // Integer form of floor((2x + 1)·src / (2·dst)): exact, no float rounding at boundaries.
    let map = |d: u32, s: u32, dst_len: u32| (((2 * d as u64 + 1) * s as u64) / (2 * dst_len as u64)).min(s as u64 - 1) as u32;
    let xs: Vec<u32> = (0..width).map(|x| map(x, sw, width)).collect();
    GrayImage::from_fn(width, height, |x, y| *src.get_pixel(xs[x as usize], map(y, sh, height)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_down_and_up_hand_checked() {
        // 4×1 → 2×1: centres 0.5·4/2 = 1 and 1.5·4/2 = 3.
        let src = GrayImage::from_raw(4, 1, vec![10, 11, 12, 13]).unwrap();
        assert_eq!(resize_nearest_centred(&src, 2, 1).into_raw(), [11, 13]);
        // 2×1 → 5×1: floor((x+0.5)·2/5) = 0, 0, 1, 1, 1.
        let src = GrayImage::from_raw(2, 1, vec![1, 2]).unwrap();
        assert_eq!(resize_nearest_centred(&src, 5, 1).into_raw(), [1, 1, 2, 2, 2]);
        // Rows the same way: 1×3 → 1×2 takes rows floor(0.5·3/2)=0 and floor(1.5·3/2)=2.
        let src = GrayImage::from_raw(1, 3, vec![5, 6, 7]).unwrap();
        assert_eq!(resize_nearest_centred(&src, 1, 2).into_raw(), [5, 7]);
    }

    #[test]
    fn policies() {
        let label = GrayImage::from_raw(2, 1, vec![1, 2]).unwrap();
        let (same, note) = fit_label(label.clone(), (2, 1), SizePolicy::Error, Path::new("i.png"), Path::new("l.png")).unwrap();
        assert_eq!((same, note), (label.clone(), None));
        let (fixed, note) = fit_label(label.clone(), (4, 1), SizePolicy::ResizeLabel, Path::new("i.png"), Path::new("l.png")).unwrap();
        assert_eq!(fixed.into_raw(), [1, 1, 2, 2]);
        assert!(note.unwrap().contains("l.png is 2×1, image is 4×1"));
        let err = fit_label(label, (4, 1), SizePolicy::Error, Path::new("i.png"), Path::new("l.png")).unwrap_err().to_string();
        assert!(err.contains("l.png") && err.contains("i.png") && err.contains("2×1") && err.contains("4×1"), "{err}");
    }
}
