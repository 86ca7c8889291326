//! HRDA's multi-resolution pieces (Hoyer et al., lhoyer/HRDA: `HRDAEncoderDecoder`, `HRDAHead`):
//! the detail crop's box, the sliding detail crops of inference and their merge, and the
//! scale-attention fusion of the context (low-resolution) and detail (high-resolution)
//! predictions. Host geometry plus tensor operations with Burn's backward passes; the networks
//! that produce the three inputs are the segmentor's.

use burn::tensor::{backend::Backend, Tensor, TensorData};
use rand::Rng;

use crate::ops::resize::resize_bilinear;

/// A box `[y1, y2) × [x1, x2)` in pixels (HRDA's `(y1, y2, x1, x2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub y1: usize,
    pub y2: usize,
    pub x1: usize,
    pub x2: usize,
}

impl CropBox {
    /// The box at `1/factor` of the resolution: every coordinate divided by `factor`,
    /// truncated (HRDA's `scale_box`, whose boxes are multiples of `factor` by construction).
    pub fn shrunk(&self, factor: usize) -> Self {
        Self { y1: self.y1 / factor, y2: self.y2 / factor, x1: self.x1 / factor, x2: self.x2 / factor }
    }

    /// Height and width.
    pub fn size(&self) -> (usize, usize) {
        (self.y2 - self.y1, self.x2 - self.x1)
    }
}

/// HRDA's `get_crop_bbox`: a `crop = [h, w]` box inside an `img_h × img_w` image with offsets
/// drawn uniformly among the multiples of `divisible` (`randint(0, (margin + 1) / divisible) ·
/// divisible`, the row offset first); the whole image when the crop is its size. A crop larger
/// than the image in a side starts at 0 in that side.
pub fn draw_crop_box(img_h: usize, img_w: usize, crop: [usize; 2], divisible: usize, rng: &mut impl Rng) -> CropBox {
    if img_h == crop[0] && img_w == crop[1] {
        return CropBox { y1: 0, y2: img_h, x1: 0, x2: img_w };
    }
    let d = divisible.max(1);
    let mut offset = |margin: usize| rng.random_range(0..((margin + 1) / d).max(1)) * d;
    let y1 = offset(img_h.saturating_sub(crop[0]));
    let x1 = offset(img_w.saturating_sub(crop[1]));
    CropBox { y1, y2: y1 + crop[0], x1, x2: x1 + crop[1] }
}

/// HRDA's `extract_slide_feat` boxes: `crop`-sized windows over an `img_h × img_w` image with
/// stride half the crop (`overlapping`, HRDA's default) or the crop itself, row-major, the last
/// row and column moved back inside the image.
pub fn slide_boxes(img_h: usize, img_w: usize, crop: [usize; 2], overlapping: bool) -> Vec<CropBox> {
    let [ch, cw] = crop;
    let (sh, sw) = if overlapping { ((ch / 2).max(1), (cw / 2).max(1)) } else { (ch, cw) };
    let grids = |len: usize, c: usize, s: usize| (len + s).saturating_sub(c + 1) / s + 1;
    let (gh, gw) = (grids(img_h, ch, sh), grids(img_w, cw, sw));
    let mut boxes = Vec::with_capacity(gh * gw);
    for i in 0..gh {
        for j in 0..gw {
            let (y2, x2) = ((i * sh + ch).min(img_h), (j * sw + cw).min(img_w));
            boxes.push(CropBox { y1: y2.saturating_sub(ch), y2, x1: x2.saturating_sub(cw), x2 });
        }
    }
    boxes
}

/// HRDA's `decode_hr` merge: the detail logits of sliding crops, `crop_logits [k·N, C, h, w]`
/// (crop-major: crop `i` is rows `i·N..(i+1)·N`), placed at `boxes` (in logit pixels, `k` of
/// them) and averaged where they overlap → `[N, C, H, W]` with `H, W` the boxes' far edges.
///
/// # Panics
/// When a pixel is covered by no box (the sliding boxes cover the image by construction).
pub fn merge_slide<B: Backend>(crop_logits: Tensor<B, 4>, boxes: &[CropBox], n: usize) -> Tensor<B, 4> {
    let [_, c, _, _] = crop_logits.dims();
    let (h, w) = (boxes.iter().map(|b| b.y2).max().unwrap_or(0), boxes.iter().map(|b| b.x2).max().unwrap_or(0));
    let device = crop_logits.device();
    let mut sum = Tensor::<B, 4>::zeros([n, c, h, w], (&device, crop_logits.dtype()));
    let mut count = vec![0f32; h * w];
    for (i, b) in boxes.iter().enumerate() {
        let ranges = [0..n, 0..c, b.y1..b.y2, b.x1..b.x2];
        let part = crop_logits.clone().narrow(0, i * n, n);
        sum = sum.clone().slice_assign(ranges.clone(), sum.slice(ranges) + part);
        for y in b.y1..b.y2 {
            count[y * w + b.x1..y * w + b.x2].iter_mut().for_each(|v| *v += 1.0);
        }
    }
    assert!(count.iter().all(|&v| v > 0.0), "sliding boxes that leave pixels uncovered");
    let inv: Vec<f32> = count.iter().map(|v| 1.0 / v).collect();
    sum * Tensor::<B, 4>::from_data(TensorData::new(inv, [1, 1, h, w]), (&device, crop_logits.dtype()))
}

/// HRDA's scale-attention fusion (`HRDAHead.forward` after its three heads), context scale half
/// the detail scale:
/// - `lr [N, C, h, w]`: the context prediction (the image at half resolution, at the head's
///   output stride `os`);
/// - `att [N, C or 1, h, w]`: the scale attention, already through the sigmoid;
/// - `hr`: the detail prediction, `[N, C, ch/os, cw/os]` for the training crop `crop` (in pixels
///   of the full-resolution image, multiples of `2·os`), or `[N, C, 2h, 2w]` for the whole image
///   (`crop` None: sliding inference, [`merge_slide`]).
///
/// With a crop, the attention is zeroed outside it. Returns `(fused [N, C, 2h, 2w],
/// (1 − att)·lr)`: `fused = up(att)·hr_placed + up((1 − att)·lr)`, `up` bilinear ×2 and
/// `hr_placed` the detail prediction at its crop, 0 elsewhere.
pub fn fuse_scales<B: Backend>(
    lr: Tensor<B, 4>,
    att: Tensor<B, 4>,
    hr: Tensor<B, 4>,
    crop: Option<CropBox>,
    os: usize,
) -> (Tensor<B, 4>, Tensor<B, 4>) {
    let [n, c, h, w] = lr.dims();
    let device = lr.device();
    let att = match crop {
        Some(b) => {
            let b = b.shrunk(2 * os);
            let mut mask = vec![0f32; h * w];
            for y in b.y1..b.y2.min(h) {
                mask[y * w + b.x1.min(w)..y * w + b.x2.min(w)].iter_mut().for_each(|v| *v = 1.0);
            }
            att * Tensor::<B, 4>::from_data(TensorData::new(mask, [1, 1, h, w]), (&device, lr.dtype()))
        }
        None => att,
    };
    let lr_scaled = att.clone().neg().add_scalar(1.0) * lr;
    let up_lr = resize_bilinear(lr_scaled.clone(), 2 * h, 2 * w);
    let up_att = resize_bilinear(att, 2 * h, 2 * w);
    let hr_placed = match crop {
        Some(b) => {
            let b = b.shrunk(os);
            Tensor::<B, 4>::zeros([n, c, 2 * h, 2 * w], (&device, hr.dtype())).slice_assign([0..n, 0..c, b.y1..b.y2, b.x1..b.x2], hr)
        }
        None => hr,
    };
    (up_att * hr_placed + up_lr, lr_scaled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn crop_offsets_are_multiples_of_the_divisor_and_cover_every_choice() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        // 1024 − 512 = 512 of margin at divisor 8: offsets 0, 8, …, 504 (randint(0, 64) · 8).
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5_000 {
            let b = draw_crop_box(1024, 1024, [512, 512], 8, &mut rng);
            assert!(b.y1 % 8 == 0 && b.x1 % 8 == 0 && b.y1 <= 504 && b.x1 <= 504, "{b:?}");
            assert_eq!(b.size(), (512, 512));
            seen.insert(b.y1);
        }
        assert_eq!(seen.len(), 64);
        assert_eq!(draw_crop_box(64, 96, [64, 96], 8, &mut rng), CropBox { y1: 0, y2: 64, x1: 0, x2: 96 });
    }

    #[test]
    fn sliding_boxes_step_by_half_a_crop_and_end_at_the_border() {
        // HRDA at test time: 1024×2048 detail scale, 512×512 crops, stride 256: 3 × 7 windows.
        let boxes = slide_boxes(1024, 2048, [512, 512], true);
        assert_eq!(boxes.len(), 21);
        assert_eq!(boxes[0], CropBox { y1: 0, y2: 512, x1: 0, x2: 512 });
        assert_eq!(boxes[20], CropBox { y1: 512, y2: 1024, x1: 1536, x2: 2048 });
        // 100 wide with 64-wide windows at stride 32: x1 = 0, 32, then 100 − 64 = 36.
        let xs: Vec<usize> = slide_boxes(64, 100, [64, 64], true).iter().map(|b| b.x1).collect();
        assert_eq!(xs, [0, 32, 36]);
        // Without overlap: 0 and 36.
        let xs: Vec<usize> = slide_boxes(64, 100, [64, 64], false).iter().map(|b| b.x1).collect();
        assert_eq!(xs, [0, 36]);
    }
}
