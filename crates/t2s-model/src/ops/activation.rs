//! The exact GELU and the softmax of attention, each as one autodiff operation with its own
//! backward pass ([`T2sBackend::gelu_exact`], [`T2sBackend::softmax_last_dim`] on [`Autodiff`]).
//!
//! Why: the CubeCL backends' GELU backward differentiates the tanh approximation, and Burn's
//! softmax backward goes operation by operation; as one operation each, GELU's is
//! `dx = g·(Φ(x) + x·φ(x))` keeping x, softmax's `dx = y·(g − Σ g·y)` keeping y
//! (docs/architecture.md, "Own operations").

use crate::ops::backend::{tensor, T2sBackend};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};
use core::f64::consts::{PI, SQRT_2};

#[derive(Debug)]
struct GeluBackward<const D: usize>;

impl<B: Backend, const D: usize> Backward<B, 1> for GeluBackward<D> {
    /// The input x.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let grad = tensor::<B, D>(grads.consume::<B>(&ops.node));
        if let Some(node) = node_x {
            let x = tensor::<B, D>(ops.state);
            // Φ(x) = (1 + erf(x/√2))/2 and φ(x) = exp(−x²/2)/√(2π).
            let cdf = x.clone().div_scalar(SQRT_2).erf().add_scalar(1.0).div_scalar(2.0);
            let pdf = (x.clone() * x.clone()).mul_scalar(-0.5).exp().div_scalar((2.0 * PI).sqrt());
            grads.register::<B>(node.id, (grad * (cdf + x * pdf)).into_primitive().tensor());
        }
    }
}

/// [`T2sBackend::gelu_exact`] on [`Autodiff`]: the inner backend's GELU, recorded as one
/// operation whose backward pass is [`GeluBackward`].
pub(crate) fn gelu_autodiff<B: T2sBackend, C: CheckpointStrategy, const D: usize>(
    x: Tensor<Autodiff<B, C>, D>,
) -> Tensor<Autodiff<B, C>, D> {
    let x = x.into_primitive().tensor();
    let forward = |x: FloatTensor<B>| B::gelu_exact(tensor::<B, D>(x)).into_primitive().tensor();
    let out = match GeluBackward::<D>.prepare::<C>([x.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let out = forward(x.primitive.clone());
            prep.finish(x.primitive, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive)),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

#[derive(Debug)]
struct SoftmaxBackward<const D: usize>;

impl<B: Backend, const D: usize> Backward<B, 1> for SoftmaxBackward<D> {
    /// The output y.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let grad = tensor::<B, D>(grads.consume::<B>(&ops.node));
        if let Some(node) = node_x {
            let y = tensor::<B, D>(ops.state);
            let dot = (grad.clone() * y.clone()).sum_dim(D - 1);
            grads.register::<B>(node.id, (y * (grad - dot)).into_primitive().tensor());
        }
    }
}

/// [`T2sBackend::softmax_last_dim`] on [`Autodiff`]: the inner backend's softmax, recorded as one
/// operation whose backward pass is [`SoftmaxBackward`].
pub(crate) fn softmax_autodiff<B: T2sBackend, C: CheckpointStrategy, const D: usize>(
    x: Tensor<Autodiff<B, C>, D>,
) -> Tensor<Autodiff<B, C>, D> {
    let x = x.into_primitive().tensor();
    let forward = |x: FloatTensor<B>| B::softmax_last_dim(tensor::<B, D>(x)).into_primitive().tensor();
    let out = match SoftmaxBackward::<D>.prepare::<C>([x.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let out = forward(x.primitive);
            prep.finish(out.clone(), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive)),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{Distribution, TensorData, Tolerance};

    type AD = Autodiff<Flex>;

    // GELU's value and derivative against an f64 erf reference: `mit::tests::gelu_is_exact_in_value_and_gradient`.

    /// Input gradient under a weighted loss `Σ f(x)·w`, for a given `f`.
    fn grad_of(x0: &Tensor<AD, 3>, w: &Tensor<AD, 3>, f: impl Fn(Tensor<AD, 3>) -> Tensor<AD, 3>) -> (TensorData, TensorData) {
        let x = x0.clone().require_grad();
        let y = f(x.clone());
        let grads = (y.clone() * w.clone()).sum().backward();
        (y.into_data(), x.grad(&grads).unwrap().into_data())
    }

    /// The own softmax backward against Burn's autodiff of its softmax.
    #[test]
    fn softmax_matches_burn_autodiff() {
        let device = Default::default();
        let x0 = Tensor::<AD, 3>::random([2, 3, 11], Distribution::Normal(0.0, 3.0), &device);
        let w = Tensor::<AD, 3>::random([2, 3, 11], Distribution::Normal(0.0, 1.0), &device);
        let (y, dx) = grad_of(&x0, &w, AD::softmax_last_dim);
        let (y_ref, dx_ref) = grad_of(&x0, &w, |x| burn::tensor::activation::softmax(x, 2));
        let tol = Tolerance::<f32>::absolute(1e-6);
        y.assert_approx_eq::<f32>(&y_ref, tol);
        dx.assert_approx_eq::<f32>(&dx_ref, tol);
    }

    /// Hand-derived: softmax of `[0, ln 3]` is `[1/4, 3/4]`; with loss `y₀` the gradient is
    /// `y₀·(e₀ − y)` = `[1/4·3/4, −1/4·3/4]` = `[3/16, −3/16]`.
    #[test]
    fn softmax_hand_derived() {
        let device = Default::default();
        let x0 = Tensor::<AD, 3>::from_data(TensorData::new(vec![0.0f32, 3f32.ln()], [1, 1, 2]), &device);
        let w = Tensor::<AD, 3>::from_data(TensorData::new(vec![1.0f32, 0.0], [1, 1, 2]), &device);
        let (y, dx) = grad_of(&x0, &w, AD::softmax_last_dim);
        let tol = Tolerance::<f32>::absolute(1e-6);
        y.assert_approx_eq::<f32>(&TensorData::new(vec![0.25f32, 0.75], [1, 1, 2]), tol);
        dx.assert_approx_eq::<f32>(&TensorData::new(vec![3.0f32 / 16.0, -3.0 / 16.0], [1, 1, 2]), tol);
    }
}
