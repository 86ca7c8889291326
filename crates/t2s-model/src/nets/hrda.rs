//! HRDA's multi-resolution pieces (Hoyer et al., lhoyer/HRDA: `HRDAEncoderDecoder`, `HRDAHead`):
//! the detail crop's box, the sliding detail crops of inference and their merge, and the
//! scale-attention fusion of the context (low-resolution) and detail (high-resolution)
//! predictions. Host geometry plus tensor operations with Burn's backward passes; the networks
//! that produce the three inputs are the segmentor's.

use burn::tensor::{backend::Backend, Tensor, TensorData};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::ops::resize::resize_bilinear;

fn default_detail_crop() -> [usize; 2] {
    [512, 512]
}
fn default_divisible() -> usize {
    8
}
fn default_detail_weight() -> f64 {
    0.1
}
fn yes() -> bool {
    true
}
fn default_attention_width() -> usize {
    256
}

/// HRDA (`[model.network.hrda]`): the network sees each image twice, whole at half resolution
/// (the context) and as a detail crop at full resolution, and a scale-attention head decides
/// per pixel (and class) how much of each to use. Defaults: lhoyer/HRDA's
/// `gtaHR2csHR_hrda.py` (context scale 0.5, detail crop 512×512 of a 1024×1024 training crop).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HrdaConfig {
    /// Detail crop `[height, width]` in full-resolution pixels (`hr_crop_size`, 512×512).
    #[serde(default = "default_detail_crop")]
    pub detail_crop: [usize; 2],
    /// Detail-crop coordinates are multiples of this (`crop_coord_divisible`, 8): twice the
    /// logit stride, so the crop lands on whole context logits.
    #[serde(default = "default_divisible")]
    pub crop_divisible: usize,
    /// Weight of the detail prediction's own loss on its crop (`hr_loss_weight`, 0.1); the fused
    /// prediction's loss takes 1 minus it.
    #[serde(default = "default_detail_weight")]
    pub detail_loss_weight: f64,
    /// One attention map per class (`attention_classwise`, true) or one for all.
    #[serde(default = "yes")]
    pub attention_classwise: bool,
    /// Width of the scale-attention head (`attention_embed_dim`, 256); a DAFormer head's
    /// attention twin fuses with one 1×1 conv instead of the ASPP.
    #[serde(default = "default_attention_width")]
    pub attention_embed_dim: usize,
    /// Whole images (inference, the teacher's pseudo-labels) take their detail prediction from
    /// overlapping sliding detail crops (`hr_slide_inference`, true), or from one pass over the
    /// whole full-resolution image.
    #[serde(default = "yes")]
    pub slide_inference: bool,
}

impl Default for HrdaConfig {
    fn default() -> Self {
        Self {
            detail_crop: default_detail_crop(),
            crop_divisible: default_divisible(),
            detail_loss_weight: default_detail_weight(),
            attention_classwise: true,
            attention_embed_dim: default_attention_width(),
            slide_inference: true,
        }
    }
}

impl HrdaConfig {
    /// Checks the settings for a network of logit stride `os`, naming the one at fault.
    pub fn validate(&self, os: usize) -> Result<()> {
        let err = |m: String| Err(ModelError::Config(format!("model.network.hrda.{m}")));
        let cell = 2 * os;
        if self.crop_divisible == 0 || !self.crop_divisible.is_multiple_of(cell) {
            return err(format!(
                "crop_divisible = {} must be a multiple of {cell} (twice the logit stride {os}), so the detail crop covers whole context logits",
                self.crop_divisible
            ));
        }
        if self.detail_crop.iter().any(|&c| c == 0 || !c.is_multiple_of(cell)) {
            return err(format!("detail_crop = {:?} must be positive multiples of {cell} (twice the logit stride {os})", self.detail_crop));
        }
        if !(0.0..1.0).contains(&self.detail_loss_weight) {
            return err(format!("detail_loss_weight = {} must be in [0, 1) (HRDA's is 0.1)", self.detail_loss_weight));
        }
        if self.attention_embed_dim == 0 {
            return err("attention_embed_dim must be positive".into());
        }
        Ok(())
    }
}

/// Which of HRDA's predictions a whole-image pass gives (`--hrda-output` of `t2s eval` and
/// `t2s predict`; HRDA's debug outputs "Fused", "High Res" and "Low Res"). Training always
/// fuses; the other two show what each scale contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HrdaBranch {
    /// The scale-attention fusion of the two (the network's prediction).
    #[default]
    Fused,
    /// The detail scale alone: the full-resolution pass (sliding detail crops when
    /// `slide_inference`), as if the attention were 1 everywhere.
    Detail,
    /// The context scale alone: the half-resolution pass, upsampled ×2, as if the attention
    /// were 0 everywhere.
    Context,
}

impl HrdaBranch {
    /// The name `--hrda-output` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fused => "fused",
            Self::Detail => "detail",
            Self::Context => "context",
        }
    }
}

impl std::str::FromStr for HrdaBranch {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "fused" => Ok(Self::Fused),
            "detail" => Ok(Self::Detail),
            "context" => Ok(Self::Context),
            _ => Err(format!("unknown HRDA output `{s}`: expected fused, detail or context")),
        }
    }
}

impl std::fmt::Display for HrdaBranch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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
    let (ys, xs) = (window_starts(img_h, ch, sh), window_starts(img_w, cw, sw));
    let boxes = ys.iter().flat_map(|&y1| xs.iter().map(move |&x1| (y1, x1)));
    boxes.map(|(y1, x1)| CropBox { y1, y2: y1.saturating_add(ch).min(img_h), x1, x2: x1.saturating_add(cw).min(img_w) }).collect()
}

/// Start offsets of sliding windows along one axis of length `size`, as mmseg computes them:
/// `grids = max(size − crop + stride − 1, 0) / stride + 1`; window i starts at
/// `max(min(i·stride + crop, size) − crop, 0)`, so the last window ends at the border.
pub fn window_starts(size: usize, crop: usize, stride: usize) -> Vec<usize> {
    // A crop beyond the size gives the one window at 0 either way (stride ≤ crop); clamped, no
    // sum below can overflow, whatever the command line gave.
    let crop = crop.min(size);
    let grids = size.saturating_add(stride).saturating_sub(crop + 1) / stride.max(1) + 1;
    (0..grids).map(|i| ((i * stride + crop).min(size)).saturating_sub(crop)).collect()
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
        // An image smaller than the crop is one box, the image.
        assert_eq!(slide_boxes(32, 40, [64, 64], true), [CropBox { y1: 0, y2: 32, x1: 0, x2: 40 }]);
    }
}

/// The HRDA network's wiring, checked at the attention's extremes, where the fusion reduces to
/// one of the single-scale network's own predictions.
#[cfg(test)]
mod network_tests {
    use super::*;
    use crate::nets::segmentor::{DecodeHead, Segmentor, SegmentorConfig};
    use burn::backend::Flex;
    use burn::module::Param;
    use burn::tensor::Distribution;

    type B = Flex;

    fn config(slide: bool) -> SegmentorConfig {
        let mut cfg: SegmentorConfig = serde_json::from_str(
            r#"{"backbone":{"type":"mit","embed_dims":[8,16,24,32],"depths":[1,1,1,1],"num_heads":[1,2,3,4],"sr_ratios":[8,4,2,1]},
                "decode_head":{"type":"daformer","embed_dim":16,"channels":16},"num_classes":5,"projection":{"dim":8},
                "hrda":{"detail_crop":[32,32],"attention_embed_dim":8}}"#,
        )
        .unwrap();
        cfg.hrda.as_mut().unwrap().slide_inference = slide;
        cfg
    }

    /// The network with its scale attention fixed at sigmoid(`bias`) everywhere.
    fn with_attention(mut net: Segmentor<B>, bias: f32) -> Segmentor<B> {
        let Some(DecodeHead::DaFormer(h)) = net.scale_attention.as_mut() else { panic!("a DAFormer attention head") };
        let [o, i, kh, kw] = h.conv_seg.weight.dims();
        h.conv_seg.weight = Param::from_tensor(Tensor::zeros([o, i, kh, kw], &Default::default()));
        h.conv_seg.bias = Some(Param::from_tensor(Tensor::full([o], bias, &Default::default())));
        net
    }

    /// The network without HRDA: the same backbone and decode head.
    fn single(net: &Segmentor<B>) -> Segmentor<B> {
        Segmentor { scale_attention: None, hrda: None, ..net.clone() }
    }

    fn max_diff(a: Tensor<B, 4>, b: Tensor<B, 4>) -> f32 {
        assert_eq!(a.dims(), b.dims());
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn settings_that_cannot_line_up_are_refused_by_name() {
        let refused = |edit: &dyn Fn(&mut SegmentorConfig)| {
            let mut cfg = config(true);
            edit(&mut cfg);
            cfg.validate().unwrap_err().to_string()
        };
        // Logit stride 4: crops and their coordinates on multiples of 8.
        let e = refused(&|c| c.hrda.as_mut().unwrap().crop_divisible = 4);
        assert!(e.contains("model.network.hrda.crop_divisible = 4 must be a multiple of 8"), "{e}");
        let e = refused(&|c| c.hrda.as_mut().unwrap().detail_crop = [36, 32]);
        assert!(e.contains("model.network.hrda.detail_crop = [36, 32]"), "{e}");
        let e = refused(&|c| c.hrda.as_mut().unwrap().detail_loss_weight = 1.0);
        assert!(e.contains("detail_loss_weight = 1 must be in [0, 1)"), "{e}");
        let e = refused(&|c| c.decode_head = serde_json::from_str(r#"{"type":"segformer","embed_dim":16}"#).unwrap());
        assert!(e.contains("model.network.hrda") && e.contains("segformer"), "{e}");
        assert!(config(true).validate().is_ok());
    }

    #[test]
    fn shapes_follow_the_context_and_detail_scales() {
        let device = Default::default();
        let net = config(true).init::<B>(&device).unwrap();
        assert!(net.scale_attention.is_some());
        let x = Tensor::<B, 4>::random([2, 3, 64, 96], Distribution::Normal(0.0, 1.0), &device);
        let out = net.forward(x.clone());
        assert_eq!(out.logits.dims(), [2, 5, 16, 24]);
        // The embedding is the context pass's, at half the resolution.
        assert_eq!(out.embedding.unwrap().dims(), [2, 8, 8, 12]);
        let crops = [CropBox { y1: 0, y2: 32, x1: 8, x2: 40 }, CropBox { y1: 32, y2: 64, x1: 64, x2: 96 }];
        let t = net.forward_hrda(x, &crops, false);
        assert_eq!((t.fused.dims(), t.detail.dims(), t.context.logits.dims()), ([2, 5, 16, 24], [2, 5, 8, 8], [2, 5, 8, 12]));
        // Any size: padded to whole crops and cropped back (⌈130/4⌉ × ⌈70/4⌉ logits, ⌈130/8⌉ ×
        // ⌈70/8⌉ embedding pixels); `predict` also pads images too small for the context pass.
        let odd = Tensor::<B, 4>::random([1, 3, 130, 70], Distribution::Normal(0.0, 1.0), &device);
        let out = net.forward(odd.clone());
        assert_eq!((out.logits.dims(), out.embedding.unwrap().dims()), ([1, 5, 33, 18], [1, 8, 17, 9]));
        assert_eq!(net.predict(odd).dims(), [1, 5, 130, 70]);
        assert_eq!(net.predict(Tensor::<B, 4>::zeros([1, 3, 50, 70], &device)).dims(), [1, 5, 50, 70]);
    }

    #[test]
    fn no_attention_leaves_the_upsampled_context_prediction() {
        let device = Default::default();
        let net = with_attention(config(true).init::<B>(&device).unwrap(), -40.0);
        let x = Tensor::<B, 4>::random([2, 3, 64, 96], Distribution::Normal(0.0, 1.0), &device);
        let context = single(&net).forward(resize_bilinear(x.clone(), 32, 48)).logits;
        let expected = resize_bilinear(context, 16, 24);
        assert!(max_diff(net.forward(x.clone()).logits, expected.clone()) < 1e-5);
        let crops = [CropBox { y1: 16, y2: 48, x1: 40, x2: 72 }];
        assert!(max_diff(net.forward_hrda(x, &crops, false).fused, expected) < 1e-5);
    }

    #[test]
    fn full_attention_takes_the_detail_prediction() {
        let device = Default::default();
        let x = Tensor::<B, 4>::random([1, 3, 64, 96], Distribution::Normal(0.0, 1.0), &device);
        // Whole-image inference without sliding: the single-scale network on the full image.
        let net = with_attention(config(false).init::<B>(&device).unwrap(), 40.0);
        assert!(max_diff(net.forward(x.clone()).logits, single(&net).forward(x.clone()).logits) < 1e-5);
        // Training: the detail pass on the crop inside it (away from its border, where the
        // upsampled attention mask is whole), the upsampled context prediction outside.
        let crop = CropBox { y1: 16, y2: 48, x1: 40, x2: 72 };
        let out = net.forward_hrda(x.clone(), &[crop], false);
        let detail = single(&net).forward(x.clone().slice([0..1, 0..3, 16..48, 40..72])).logits;
        let inner = |t: Tensor<B, 4>, y: std::ops::Range<usize>, xr: std::ops::Range<usize>| t.slice([0..1, 0..5, y, xr]);
        assert!(max_diff(inner(out.fused.clone(), 5..11, 11..17), inner(detail, 1..7, 1..7)) < 1e-5);
        let context = resize_bilinear(single(&net).forward(resize_bilinear(x, 32, 48)).logits, 16, 24);
        assert!(max_diff(inner(out.fused, 0..16, 0..9), inner(context, 0..16, 0..9)) < 1e-5);
    }

    #[test]
    fn one_scale_alone_is_the_fusion_at_that_extreme_of_the_attention() {
        let device = Default::default();
        // 80 × 112: sliding 32 × 32 detail crops overlap unevenly (x at 0, 16, …, 80).
        let x = Tensor::<B, 4>::random([1, 3, 80, 112], Distribution::Normal(0.0, 1.0), &device);
        for slide in [false, true] {
            let net = config(slide).init::<B>(&device).unwrap();
            let branch = |b: HrdaBranch| net.clone().with_hrda_branch(b).unwrap().forward(x.clone()).logits;
            let detail = branch(HrdaBranch::Detail);
            assert!(max_diff(detail.clone(), with_attention(net.clone(), 40.0).forward(x.clone()).logits) < 1e-5, "slide {slide}");
            let context = branch(HrdaBranch::Context);
            assert!(max_diff(context.clone(), with_attention(net.clone(), -40.0).forward(x.clone()).logits) < 1e-5, "slide {slide}");
            assert_eq!(max_diff(branch(HrdaBranch::Fused), net.forward(x.clone()).logits), 0.0);
            if !slide {
                // Independently: the single-scale network on the full image and on the half-size one.
                assert!(max_diff(detail, single(&net).forward(x.clone()).logits) < 1e-5);
                let half = single(&net).forward(resize_bilinear(x.clone(), 40, 56)).logits;
                assert!(max_diff(context, resize_bilinear(half, 20, 28)) < 1e-5);
            }
        }
        let e = single(&config(true).init::<B>(&device).unwrap()).with_hrda_branch(HrdaBranch::Detail).unwrap_err().to_string();
        assert!(e.contains("HRDA detail prediction needs an HRDA network (model.network.hrda)"), "{e}");
        assert!(single(&config(true).init::<B>(&device).unwrap()).with_hrda_branch(HrdaBranch::Fused).is_ok());
        assert_eq!(["fused", "detail", "context"].map(|n| n.parse::<HrdaBranch>().unwrap().to_string()), ["fused", "detail", "context"]);
        assert!("high".parse::<HrdaBranch>().unwrap_err().contains("expected fused, detail or context"));
    }
}
