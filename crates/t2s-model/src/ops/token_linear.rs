//! A linear layer over the tokens of a batch as one 2-D matrix product.
//!
//! Why: Burn's `linear` on `[N, L, C]` broadcasts the weight to `[1, C, O]`, so its backward pass
//! computes the weight gradient as N batched products `[N, C, O]` summed over the batch (one
//! reduction and an N-fold temporary) and the bias gradient as two reductions, one per leading
//! axis. On the same tokens seen as `[N·L, C]` rows the weight gradient is one product and the
//! bias gradient one reduction: two kernel launches fewer per layer and backward pass (MiT-B5 has
//! 260 linear layers per pass; docs/benchmarks.md).

use burn::nn::Linear;
use burn::tensor::{backend::Backend, Tensor};

/// `linear` applied to every token: `[N, L, C]` → `[N, L, O]`. Contiguous tokens are reshaped
/// without a copy; others are copied once into rows (which Burn's batched product would
/// otherwise do itself to pack them).
pub fn linear_tokens<B: Backend>(linear: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [n, l, c] = x.dims();
    // [N·L, O]
    let y = linear.forward(x.reshape([n * l, c]));
    let out = y.dims()[1];
    y.reshape([n, l, out])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::LinearConfig;
    use burn::tensor::{Distribution, Tolerance};

    type AD = Autodiff<Flex>;

    /// Output and the gradients of input, weight and bias equal Burn's batched linear layer's,
    /// also for tokens that are a transposed view (as MiT's `[N, C, L]` → `[N, L, C]`).
    #[test]
    fn matches_batched_linear() {
        let device = Default::default();
        let linear = LinearConfig::new(6, 4).init::<AD>(&device);
        let map = Tensor::<AD, 3>::random([2, 6, 5], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<AD, 3>::random([2, 5, 4], Distribution::Normal(0.0, 1.0), &device);
        let run = |rows: bool| {
            let map = map.clone().require_grad();
            // [N, C, L] → [N, L, C], a view with swapped strides.
            let x = map.clone().swap_dims(1, 2);
            let y = if rows { linear_tokens(&linear, x) } else { linear.forward(x) };
            let grads = (y.clone() * w.clone()).sum().backward();
            let weight = linear.weight.val().grad(&grads).unwrap().into_data();
            let bias = linear.bias.as_ref().unwrap().val().grad(&grads).unwrap().into_data();
            (y.into_data(), map.grad(&grads).unwrap().into_data(), weight, bias)
        };
        let (a, b) = (run(true), run(false));
        let tol = Tolerance::<f32>::absolute(1e-5);
        a.0.assert_approx_eq::<f32>(&b.0, tol);
        a.1.assert_approx_eq::<f32>(&b.1, tol);
        a.2.assert_approx_eq::<f32>(&b.2, tol);
        a.3.assert_approx_eq::<f32>(&b.3, tol);
    }
}
