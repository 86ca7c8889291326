//! The per-pixel linear embedding of the MiT decode heads (mmseg's `MLP` with a `proj` layer):
//! a linear map over the channels of every pixel of a feature map.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{backend::Backend, Tensor};

use crate::nets::host_init::{drawn, Draw};

/// A linear map `C → E` applied to every pixel (SegFormer's `linear_c{k}`, DAFormer's
/// `embed_layers.{k}`).
#[derive(Module, Debug)]
pub struct MlpEmbed<B: Backend> {
    /// The biased `C → E` linear layer.
    pub proj: Linear<B>,
}

impl<B: Backend> MlpEmbed<B> {
    /// An embedding `in_channels → embed_dim` with PyTorch's default `nn.Linear` initialisation
    /// (uniform in ±1/√in_channels for weight and bias; the heads do not re-initialise it).
    pub fn new(in_channels: usize, embed_dim: usize, device: &B::Device) -> Self {
        let mut proj = LinearConfig::new(in_channels, embed_dim).init(device);
        // Drawn on the host (`crate::nets::host_init`); Burn's `[d_in, d_out]` layout.
        let draw = Draw::torch_default(in_channels);
        proj.weight = drawn([in_channels, embed_dim], draw, device);
        proj.bias = Some(drawn([embed_dim], draw, device));
        Self { proj }
    }

    /// `[N, C, H, W]` → `[N, E, H, W]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        // [N, C, H, W] → [N, C, L] → [N, L, C] (the original's `flatten(2).transpose(1, 2)`)
        let tokens = x.reshape([n, c, h * w]).swap_dims(1, 2);
        // [N, L, E]
        let tokens = self.proj.forward(tokens);
        let [_, _, e] = tokens.dims();
        // [N, L, E] → [N, E, L] → [N, E, H, W]
        tokens.swap_dims(1, 2).reshape([n, e, h, w])
    }
}

/// Embeds every backbone stage with its layer and resizes it to the first (largest) stage:
/// `[N, C_k, H_k, W_k]` (k = 1…4) → `[N, E, H_1, W_1]` each, in stage order. Shared by the
/// SegFormer and DAFormer heads, which differ in how they fuse the result.
///
/// # Panics
/// When `features` does not hold one map per embedding layer (`head` names the caller).
pub fn embed_stages<B: Backend>(features: Vec<Tensor<B, 4>>, layers: &[MlpEmbed<B>], head: &str) -> Vec<Tensor<B, 4>> {
    assert_eq!(features.len(), layers.len(), "{head} expects one feature map per backbone stage");
    let [_, _, h, w] = features[0].dims();
    features.into_iter().zip(layers).map(|(x, embed)| crate::ops::resize::resize_bilinear(embed.forward(x), h, w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::mit::tests::{assert_close, rand_nd, Nd};
    use burn::backend::Flex;

    type B = Flex;

    #[test]
    fn embeds_every_pixel_linearly() {
        let (n, c, e, h, w) = (2, 3, 4, 2, 5);
        let mut m = MlpEmbed::<B>::new(c, e, &Default::default());
        let wt = rand_nd(&[c, e], 1, 1.0);
        let b = rand_nd(&[e], 2, 0.5);
        m.proj.weight = wt.param();
        m.proj.bias = Some(b.param());
        let x = rand_nd(&[n, c, h, w], 3, 1.0);
        // y[n, o, i, j] = b[o] + Σ_c x[n, c, i, j]·W[c, o]
        let mut expected = Nd::zeros(&[n, e, h, w]);
        for ni in 0..n {
            for o in 0..e {
                for i in 0..h {
                    for j in 0..w {
                        let v = b.data[o] + (0..c).map(|ci| x.at(&[ni, ci, i, j]) * wt.at(&[ci, o])).sum::<f64>();
                        expected.set(&[ni, o, i, j], v);
                    }
                }
            }
        }
        assert_close(&m.forward(x.tensor()), &expected, "mlp embed");
    }
}
