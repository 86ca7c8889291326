//! A rough estimate of the memory one whole-image inference pass needs, so that `predict` can
//! switch to sliding windows before an allocation fails (docs/networks.md, "Memory of one
//! inference pass").

use crate::nets::resnet::ResNetConfig;
use crate::nets::segmentor::{BackboneConfig, DecodeHeadConfig, SegmentorConfig};

const F32: u64 = 4;

impl SegmentorConfig {
    /// Estimated peak bytes of an f32 inference pass (no gradients) over one `h × w` image: the
    /// largest set of intermediate tensors alive together in the backbone or the decode head,
    /// plus the input and the full-resolution logits. For the Mix Transformer the attention
    /// matrices dominate and grow with the square of the pixel count (docs/networks.md, "Memory
    /// of one inference pass"). An estimate, not a measurement: it errs high.
    ///
    /// An HRDA network's whole-image pass is its context pass at half the resolution, then its
    /// detail pass, over all its sliding detail crops at once (or the whole full-resolution
    /// image without `slide_inference`): the larger of the two.
    pub fn inference_bytes(&self, h: usize, w: usize) -> u64 {
        let Some(hrda) = &self.hrda else { return self.single_scale_bytes(h, w) };
        let context = self.single_scale_bytes(h / 2, w / 2);
        let detail = if hrda.slide_inference {
            let crop = [hrda.detail_crop[0].min(h), hrda.detail_crop[1].min(w)];
            crate::nets::hrda::slide_boxes(h, w, crop, true).len() as u64 * self.single_scale_bytes(crop[0], crop[1])
        } else {
            self.single_scale_bytes(h, w)
        };
        context.max(detail)
    }

    /// [`inference_bytes`](Self::inference_bytes) of the single-scale network.
    fn single_scale_bytes(&self, h: usize, w: usize) -> u64 {
        let backbone = match &self.backbone {
            BackboneConfig::Mit(mit) => {
                let (mut sh, mut sw) = (h, w);
                (0..4)
                    .map(|i| {
                        // Overlapping patch embedding: kernel p, stride s, padding p/2.
                        let (p, s) = (mit.patch_sizes[i], mit.strides[i]);
                        sh = (sh + 2 * (p / 2)).saturating_sub(p) / s + 1;
                        sw = (sw + 2 * (p / 2)).saturating_sub(p) / s + 1;
                        let tokens = (sh * sw) as u64;
                        let r = mit.sr_ratios[i];
                        let keys = if r > 1 { ((sh / r) * (sw / r)).max(1) as u64 } else { tokens };
                        let c = mit.embed_dims[i] as u64;
                        // Scores and softmax; the Mix-FFN's hidden map before and after its
                        // activation; the residual stream, q, the output and a copy.
                        2 * mit.num_heads[i] as u64 * tokens * keys + 2 * tokens * c * mit.mlp_ratio as u64 + 4 * tokens * c
                    })
                    .max()
                    .unwrap_or(0)
            }
            BackboneConfig::Resnet(resnet) => resnet_peak(resnet, h, w),
        };
        // The decode head works at the first stage's resolution (1/4) for MiT, at the last's for
        // ResNet.
        let quarter = (h.div_ceil(4) * w.div_ceil(4)) as u64;
        let head = match &self.decode_head {
            // Four embedded maps upsampled and concatenated (and the concatenation), the ASPP
            // branches, the fused feature.
            DecodeHeadConfig::Daformer(d) => quarter * (8 * d.embed_dim as u64 + (d.dilations.len() as u64 + 1) * d.channels as u64),
            DecodeHeadConfig::Segformer(s) => quarter * 9 * s.embed_dim as u64,
            DecodeHeadConfig::Deeplabv2(d) => {
                let os = match &self.backbone {
                    BackboneConfig::Resnet(r) => r.output_stride,
                    BackboneConfig::Mit(_) => 32,
                };
                (h.div_ceil(os) * w.div_ceil(os)) as u64 * (d.dilations.len() as u64 + 1) * self.num_classes as u64
            }
        };
        let pixels = (h * w) as u64;
        // The input, and the logits upsampled to the image with their argmax.
        let ends = 3 * pixels + 2 * self.num_classes as u64 * pixels + pixels * 2;
        F32 * (backbone.max(head) + ends)
    }
}

/// Largest three-tensor working set (a block's input, middle and output) of a ResNet's stages.
fn resnet_peak(r: &ResNetConfig, h: usize, w: usize) -> u64 {
    let area = |stride: usize| (h.div_ceil(stride) * w.div_ceil(stride)) as u64;
    let out = r.out_channels().unwrap_or([256, 512, 1024, 2048]);
    // Strides of the four stages: 4, 8, then 16 and 32 unless dilation keeps them at the output
    // stride (DeepLabV2: 8, 8).
    let strides = [4, 8, 16.min(r.output_stride.max(8)), 32.min(r.output_stride.max(8))];
    let stem = 3 * area(2) * r.stem_width as u64;
    (0..4).map(|i| 3 * area(strides[i]) * out[i] as u64).max().unwrap_or(0).max(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mit_b5_attention_on_a_12_megapixel_image_is_counted() {
        let cfg = SegmentorConfig::preset("daformer-mitb5").unwrap();
        // Hand-derived: stage 1 is 1000×750 tokens (7×7 stride-4 patches, padding 3), its keys
        // 125×93 after the stride-8 reduction; one head; scores and softmax in f32.
        let attention = 2 * 4 * 750_000u64 * (125 * 93);
        let got = cfg.inference_bytes(3000, 4000);
        assert!(got >= attention && got < attention + attention / 5, "{got} vs {attention}");
        // 1024×1024: stage 1 has 65,536 queries × 1,024 keys (0.5 GiB for both), the head's maps
        // at 256×256 dominate; a few GiB in all, far below the whole 12-megapixel pass.
        let crop = cfg.inference_bytes(1024, 1024);
        assert!(crop > 2 * 4 * 65_536 * 1_024 && crop < 4 << 30, "{crop}");
    }

    #[test]
    fn hrda_counts_its_batched_detail_crops() {
        let mut cfg = SegmentorConfig::preset("daformer-mitb5").unwrap();
        let single = cfg.inference_bytes(512, 512);
        let whole = cfg.inference_bytes(1024, 1024);
        cfg.hrda = Some(crate::HrdaConfig::default());
        // 1024×1024: 3 × 3 detail crops of 512×512 at stride 256, in one batch, outweigh the
        // 512×512 context pass.
        assert_eq!(cfg.inference_bytes(1024, 1024), 9 * single);
        cfg.hrda.as_mut().unwrap().slide_inference = false;
        assert_eq!(cfg.inference_bytes(1024, 1024), whole);
    }

    #[test]
    fn resnet_estimates_grow_with_the_pixels() {
        let cfg = SegmentorConfig::preset("deeplabv2-r101").unwrap();
        // Output stride 8: layer4's 2048 channels at 1/8, three maps of them, dominate:
        // 3 × 128 × 256 × 2048 floats at 1024×2048, plus the ends (3 + 2·19 + 2 per pixel).
        let want = 4 * (3 * 128 * 256 * 2048 + (3 + 38 + 2) * 1024 * 2048);
        assert_eq!(cfg.inference_bytes(1024, 2048), want);
        assert!(cfg.inference_bytes(2048, 4096) > 3 * want);
    }
}
