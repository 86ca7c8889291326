//! What the MiT decode heads (SegFormer, DAFormer) return, and the channel dropout they apply
//! before classifying.

use burn::nn::Dropout;
use burn::tensor::{backend::Backend, Tensor};

/// Output of a decode head.
#[derive(Debug, Clone)]
pub struct HeadOutput<B: Backend> {
    /// Class logits `[N, classes, h, w]` (h, w: the first backbone stage's size, 1/4 of the
    /// input for MiT).
    pub logits: Tensor<B, 4>,
    /// The fused feature the classifier reads, before dropout, `[N, E, h, w]`: what the
    /// segmentor's contrastive projection head is applied to.
    pub feature: Tensor<B, 4>,
}

/// PyTorch's `nn.Dropout2d` (what mmseg's `BaseDecodeHead.dropout` is): during training, each
/// channel of each sample of `x: [N, C, H, W]` is zeroed with probability `dropout.prob` and
/// otherwise scaled by `1/(1 − prob)`; whole maps are dropped, not single pixels (Burn's
/// `Dropout::forward` would drop pixels). Identity when the backend records no gradients or
/// `prob` is 0.
pub fn channel_dropout<B: Backend>(dropout: &Dropout, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let device = x.device();
    let prob = dropout.prob;
    if prob <= 0.0 || !B::ad_enabled(&device) {
        return x;
    }
    if prob >= 1.0 {
        // As PyTorch: everything dropped (no division by a zero keep probability).
        return x.zeros_like();
    }
    let keep = 1.0 - prob;
    let [n, c, _, _] = x.dims();
    // One Bernoulli(keep) draw per (sample, channel), broadcast over the map: [N, C, 1, 1].
    let mask = super::masks::bernoulli_mask::<B, 4>([n, c, 1, 1], keep, &device, x.dtype());
    x * mask.div_scalar(keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::DropoutConfig;

    #[test]
    fn channel_dropout_drops_whole_maps_when_training() {
        type A = Autodiff<Flex>;
        let device = Default::default();
        let dropout = DropoutConfig::new(0.5).init();
        let x = Tensor::<A, 4>::ones([4, 16, 3, 5], &device);
        let y = channel_dropout(&dropout, x).into_data().to_vec::<f32>().unwrap();
        let mut kept = 0;
        for map in y.chunks(15) {
            // Every map is entirely dropped (0) or entirely kept and scaled by 1/(1−0.5) = 2.
            assert!(map.iter().all(|&v| v == map[0]), "{map:?}");
            assert!(map[0] == 0.0 || map[0] == 2.0, "{map:?}");
            kept += usize::from(map[0] == 2.0);
        }
        // 64 maps with p = 0.5: all kept or all dropped has probability 2^-63.
        assert!(kept > 0 && kept < 64, "{kept} of 64 maps kept");
    }

    #[test]
    fn channel_dropout_is_identity_at_inference() {
        type B = Flex;
        let device = Default::default();
        let dropout = DropoutConfig::new(0.5).init();
        let x = Tensor::<B, 4>::ones([2, 3, 4, 4], &device);
        let y = channel_dropout(&dropout, x.clone());
        assert_eq!(y.into_data().to_vec::<f32>().unwrap(), x.into_data().to_vec::<f32>().unwrap());
    }
}
