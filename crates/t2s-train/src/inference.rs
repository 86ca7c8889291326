//! Whole-image and sliding-window inference (method.md §7, mmseg's `whole_inference` and
//! `slide_inference`): logits at the input's resolution, to be resized to the label's.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
pub use t2s_model::window_starts;
use t2s_model::Segmentor;
use t2s_model::T2sBackend;

/// How a network sees a test image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum InferenceMode {
    /// The whole image in one forward pass (DAFormer's test mode).
    #[default]
    Whole,
    /// Overlapping `crop` windows `[h, w]` every `stride` `[h, w]` pixels, logits averaged where
    /// windows overlap (HRDA/mmseg `mode='slide'`).
    Slide {
        /// Window size `[height, width]`.
        crop: [usize; 2],
        /// Step between windows `[height, width]`.
        stride: [usize; 2],
    },
}

impl InferenceMode {
    /// Checks that sliding windows cover every pixel: crop and stride positive, the stride at
    /// most the crop (a longer step would leave pixels no window sees). `setting` names the
    /// option in the message.
    pub fn validate(&self, setting: &str) -> Result<(), String> {
        let InferenceMode::Slide { crop, stride } = self else { return Ok(()) };
        if crop.contains(&0) || stride.contains(&0) {
            return Err(format!("{setting}: crop {crop:?} and stride {stride:?} must be positive"));
        }
        if stride[0] > crop[0] || stride[1] > crop[1] {
            return Err(format!(
                "{setting}: stride {stride:?} is longer than the crop {crop:?}, so pixels between windows would get no prediction; \
                 use a stride of at most the crop"
            ));
        }
        Ok(())
    }
}

/// Logits `[1, C, H, W]` of `image` `[1, 3, H, W]` (normalised) with the given mode.
pub fn infer_logits<B: T2sBackend>(model: &Segmentor<B>, image: Tensor<B, 4>, mode: InferenceMode) -> Tensor<B, 4> {
    match mode {
        InferenceMode::Whole => model.predict(image),
        InferenceMode::Slide { crop, stride } => {
            let [n, ch, h, w] = image.dims();
            let device = image.device();
            let mut sum: Option<Tensor<B, 4>> = None;
            let mut count = Tensor::<B, 4>::zeros([1, 1, h, w], &device);
            for &y in &window_starts(h, crop[0], stride[0]) {
                for &x in &window_starts(w, crop[1], stride[1]) {
                    let (y2, x2) = (y.saturating_add(crop[0]).min(h), x.saturating_add(crop[1]).min(w));
                    let logits = model.predict(image.clone().slice([0..n, 0..ch, y..y2, x..x2])); // [1, C, y2−y, x2−x]
                    let c = logits.dims()[1];
                    let acc = sum.take().unwrap_or_else(|| Tensor::zeros([n, c, h, w], &device));
                    let region = acc.clone().slice([0..n, 0..c, y..y2, x..x2]) + logits;
                    sum = Some(acc.slice_assign([0..n, 0..c, y..y2, x..x2], region));
                    let ones = count.clone().slice([0..1, 0..1, y..y2, x..x2]).add_scalar(1.0);
                    count = count.slice_assign([0..1, 0..1, y..y2, x..x2], ones);
                }
            }
            // Every pixel is covered at least once (the last window reaches the border).
            sum.expect("at least one window") / count
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::Distribution;
    use t2s_model::SegmentorConfig;

    #[test]
    fn windows_must_cover_the_image() {
        let slide = |crop, stride| InferenceMode::Slide { crop, stride }.validate("eval.inference");
        assert!(slide([512, 512], [341, 512]).is_ok() && InferenceMode::Whole.validate("x").is_ok());
        let e = slide([512, 512], [341, 600]).unwrap_err();
        assert!(e.starts_with("eval.inference: stride [341, 600] is longer than the crop [512, 512]"), "{e}");
        assert!(slide([0, 512], [1, 1]).unwrap_err().contains("must be positive"));
    }

    #[test]
    fn window_starts_follow_mmseg() {
        // H = 1024, crop 512, stride 341: grids = (1024 − 512 + 340) // 341 + 1 = 3;
        // starts 0, 341, then min(682 + 512, 1024) − 512 = 512.
        assert_eq!(window_starts(1024, 512, 341), vec![0, 341, 512]);
        assert_eq!(window_starts(512, 512, 341), vec![0]);
        // Image smaller than the crop: one window from 0.
        assert_eq!(window_starts(300, 512, 341), vec![0]);
        // `--crop`/`--stride` of any size: one window, no overflow.
        assert_eq!(window_starts(300, usize::MAX, usize::MAX), vec![0]);
        assert_eq!(window_starts(10, 4, 3), vec![0, 3, 6]);
    }

    #[test]
    fn slide_averages_the_windows_where_they_overlap() {
        let device = Default::default();
        let model = SegmentorConfig::preset("deeplabv2-r18").unwrap().init::<Flex>(&device).unwrap();
        let image = Tensor::<Flex, 4>::random([1, 3, 64, 96], Distribution::Normal(0.0, 1.0), &device);
        let got = infer_logits(&model, image.clone(), InferenceMode::Slide { crop: [64, 64], stride: [64, 32] });
        // Independent recomputation: windows at x = 0 and 32 (width 64 each) overlap on 32..64.
        let a = model.predict(image.clone().slice([0..1, 0..3, 0..64, 0..64]));
        let b = model.predict(image.clone().slice([0..1, 0..3, 0..64, 32..96]));
        let c = a.dims()[1];
        let left = a.clone().slice([0..1, 0..c, 0..64, 0..32]);
        let mid = (a.slice([0..1, 0..c, 0..64, 32..64]) + b.clone().slice([0..1, 0..c, 0..64, 0..32])) / 2.0;
        let right = b.slice([0..1, 0..c, 0..64, 32..64]);
        let want = Tensor::cat(vec![left, mid, right], 3);
        let diff = (got - want).abs().max().into_scalar();
        assert!(diff < 1e-5, "{diff}");
        // A single window covering the image is whole-image inference.
        let whole = infer_logits(&model, image.clone(), InferenceMode::Whole);
        let one = infer_logits(&model, image, InferenceMode::Slide { crop: [64, 96], stride: [64, 96] });
        assert!((whole - one).abs().max().into_scalar() < 1e-6);
    }
}
