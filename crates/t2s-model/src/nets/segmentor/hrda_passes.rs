//! The passes of an HRDA network (`[model.network.hrda]`): its whole-image prediction, its
//! training pass over context and detail crops, and the scale attention that fuses them.

use burn::tensor::activation::sigmoid;
use burn::tensor::{DType, Tensor};

use super::{Encode, HrdaOutput, SegOutput, Segmentor};
use crate::error::{ModelError, Result};
use crate::nets::hrda::{fuse_scales, merge_slide, slide_boxes, CropBox, HrdaBranch, HrdaConfig};
use crate::ops::resize::resize_bilinear;
use crate::precision::{cast_to, weight_dtype};
use crate::T2sBackend;

impl<B: T2sBackend> Segmentor<B> {
    /// HRDA's scale attention (through the sigmoid, f32) from the context pass's features:
    /// `[N, 1 or classes, H_1, W_1]` (class-wise by default).
    fn attention(&self, features: &[Tensor<B, 4>], sub_batches: usize) -> Tensor<B, 4> {
        let head = self.scale_attention.as_ref().expect("an HRDA network has a scale-attention head");
        let features: Vec<Tensor<B, 4>> = features.iter().map(|f| cast_to(f.clone(), weight_dtype(self))).collect();
        sigmoid(cast_to(Self::decode(head, &features, sub_batches).0, DType::F32))
    }

    /// HRDA's whole-image prediction (`HRDAEncoderDecoder.encode_decode`): the context pass on
    /// the images at half resolution, the detail prediction from overlapping sliding detail
    /// crops at full resolution (or one pass over the whole image without
    /// `slide_inference`), fused by the scale attention. The embedding and features are the
    /// context pass's. `[N, 3, H, W]` → logits `[N, classes, H/s, W/s]`.
    ///
    /// Sides that are not multiples of `crop_divisible` (photos of any size) are zero-padded at
    /// the bottom and right to the next multiple, so that both passes and every sliding crop land
    /// on whole logits; the logits are cropped back to `⌈H/s⌉ × ⌈W/s⌉` and the embedding to
    /// `⌈H/2s⌉ × ⌈W/2s⌉` (the features keep the padded size).
    pub fn hrda_whole(&self, x: Tensor<B, 4>, hrda: &HrdaConfig, sub_batches: usize, detach: bool) -> SegOutput<B> {
        let [n, c, h, w] = x.dims();
        let os = self.logit_stride;
        let m = hrda.crop_divisible.max(2 * os);
        let (ph, pw) = (h.next_multiple_of(m), w.next_multiple_of(m));
        if (ph, pw) != (h, w) {
            let padded = Tensor::zeros([n, c, ph, pw], (&x.device(), x.dtype())).slice_assign([0..n, 0..c, 0..h, 0..w], x);
            let out = self.hrda_whole(padded, hrda, sub_batches, detach);
            let classes = out.logits.dims()[1];
            let logits = out.logits.slice([0..n, 0..classes, 0..h.div_ceil(os), 0..w.div_ceil(os)]);
            let embedding = out.embedding.map(|e| {
                let d = e.dims()[1];
                e.slice([0..n, 0..d, 0..h.div_ceil(2 * os), 0..w.div_ceil(2 * os)])
            });
            return SegOutput { logits, embedding, features: out.features };
        }
        let context = self.single_scale(resize_bilinear(x.clone(), h / 2, w / 2), sub_batches, detach, &mut |x, k| self.features_of(x, k));
        if self.hrda_branch == HrdaBranch::Context {
            // `fuse_scales` at attention 0: the context logits upsampled ×2.
            let logits = resize_bilinear(context.logits.clone(), h / os, w / os);
            return SegOutput { logits, ..context };
        }
        let detail = if hrda.slide_inference {
            let crop = [hrda.detail_crop[0].min(h), hrda.detail_crop[1].min(w)];
            let boxes = slide_boxes(h, w, crop, true);
            // Crop-major: crop i of every image, then crop i + 1 (HRDA's `torch.cat(crop_imgs)`).
            let crops: Vec<Tensor<B, 4>> = boxes.iter().map(|b| x.clone().slice([0..n, 0..c, b.y1..b.y2, b.x1..b.x2])).collect();
            let features = self.features_of(Tensor::cat(crops, 0), 1);
            let logits = cast_to(Self::decode(&self.decode_head, &features, 1).0, DType::F32);
            let at_logits: Vec<CropBox> = boxes.iter().map(|b| b.shrunk(os)).collect();
            merge_slide(logits, &at_logits, n)
        } else {
            let features = self.features_of(x, sub_batches);
            cast_to(Self::decode(&self.decode_head, &features, sub_batches).0, DType::F32)
        };
        if self.hrda_branch == HrdaBranch::Detail {
            return SegOutput { logits: detail, ..context };
        }
        let att = self.attention(&context.features, sub_batches);
        let (fused, _) = fuse_scales(context.logits.clone(), att, detail, None, os);
        SegOutput { logits: fused, ..context }
    }

    /// This network with its whole-image passes (inference, `predict`) giving HRDA's `branch`
    /// prediction instead of the fusion. Refused for a network without HRDA, unless `branch`
    /// is the fusion (a single-scale network's only prediction).
    pub fn with_hrda_branch(mut self, branch: HrdaBranch) -> Result<Self> {
        if self.hrda.is_none() && branch != HrdaBranch::Fused {
            return Err(ModelError::Config(format!(
                "the HRDA {branch} prediction needs an HRDA network (model.network.hrda); this one has one scale only"
            )));
        }
        self.hrda_branch = branch;
        Ok(self)
    }

    /// HRDA's training pass (`HRDAEncoderDecoder.forward_train` and `HRDAHead.forward`) over
    /// `crops.len()` sub-batches of `[k·n, 3, H, W]` images: the context pass on the images at
    /// half resolution, the detail pass on each sub-batch's crop (`crops[i]`, in full-resolution
    /// pixels, all of one size: [`draw_crop_box`](crate::nets::hrda::draw_crop_box)), and their
    /// fusion. Batch-norm statistics per sub-batch, as [`forward_sub_batches`](Self::forward_sub_batches).
    ///
    /// # Panics
    /// On a network without HRDA, or crops of different sizes.
    pub fn forward_hrda(&self, x: Tensor<B, 4>, crops: &[CropBox], detach_projection_input: bool) -> HrdaOutput<B> {
        self.forward_hrda_encoded(x, crops, detach_projection_input, &mut |x, k| self.features_of(x, k))
    }

    /// [`forward_hrda`](Self::forward_hrda) with the backbone's stage outputs computed by
    /// `encode`, for the context pass and then for the detail crops (see
    /// [`forward_encoded`](Self::forward_encoded)).
    pub fn forward_hrda_encoded(
        &self,
        x: Tensor<B, 4>,
        crops: &[CropBox],
        detach_projection_input: bool,
        encode: &mut Encode<'_, B>,
    ) -> HrdaOutput<B> {
        let [total, c, h, w] = x.dims();
        let k = crops.len();
        let n = total / k;
        let os = self.logit_stride;
        let context = self.single_scale(resize_bilinear(x.clone(), h / 2, w / 2), k, detach_projection_input, encode);
        let att = self.attention(&context.features, k);
        let parts: Vec<Tensor<B, 4>> =
            crops.iter().enumerate().map(|(i, b)| x.clone().slice([i * n..(i + 1) * n, 0..c, b.y1..b.y2, b.x1..b.x2])).collect();
        let features = encode(Tensor::cat(parts, 0), k);
        let detail = cast_to(Self::decode(&self.decode_head, &features, k).0, DType::F32);
        let fused = crops
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let part = |t: &Tensor<B, 4>| t.clone().narrow(0, i * n, n);
                fuse_scales(part(&context.logits), part(&att), part(&detail), Some(*b), os).0
            })
            .collect();
        HrdaOutput { fused: Tensor::cat(fused, 0), detail, crops: crops.to_vec(), context }
    }
}
