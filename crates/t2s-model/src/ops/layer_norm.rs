//! LayerNorm over the last dimension (MiT's token norms), as a module with PyTorch's parameter
//! layout and as one autodiff operation with its own backward pass
//! ([`T2sBackend::layer_norm_last_dim`] on [`Autodiff`]).
//!
//! Why not `burn::nn::LayerNorm`: Burn differentiates its nine tensor operations one by one and
//! keeps three tensors (docs/architecture.md, "Own operations"); as one operation the backward
//! pass is the closed form
//!
//! `dx = r·(g·γ − mean(g·γ) − x̂·mean(g·γ·x̂))`, `dγ = Σ_rows g·x̂`, `dβ = Σ_rows g`
//!
//! (x̂ the normalised input, r = 1/√(var + ε)), four reductions, keeping only x̂ and r.

use crate::ops::backend::{tensor, T2sBackend};
use crate::precision::in_f32;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::module::{Initializer, Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

/// LayerNorm over the last dimension with a learnt scale and shift, PyTorch's `nn.LayerNorm(dim,
/// eps)` (biased variance). Parameters are named as Burn's `LayerNorm` (`gamma`, `beta`), which
/// the checkpoint loader maps from PyTorch's `weight` / `bias`.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// Scale γ, `[C]`, initialised to 1.
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift β, `[C]`, initialised to 0.
    pub beta: Param<Tensor<B, 1>>,
    /// Added to the variance before the square root.
    pub epsilon: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// A LayerNorm over `dim` channels with γ = 1, β = 0.
    pub fn new(dim: usize, epsilon: f64, device: &B::Device) -> Self {
        Self { gamma: Initializer::Ones.init([dim], device), beta: Initializer::Zeros.init([dim], device), epsilon }
    }
}

impl<B: T2sBackend> LayerNorm<B> {
    /// `[..., C]` → `[..., C]`, each row normalised to zero mean and unit variance, then scaled
    /// and shifted per channel.
    /// In f32 whatever `x`'s type, which the output keeps (`crate::precision::in_f32`).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        in_f32(x, |x| B::layer_norm_last_dim(x, self.gamma.val(), self.beta.val(), self.epsilon))
    }
}

/// Burn's LayerNorm computation (`ModuleOps::layer_norm`): the default body of
/// [`T2sBackend::layer_norm_last_dim`], fused into one kernel on Flex.
pub fn burn_layer_norm<B: Backend, const D: usize>(x: Tensor<B, D>, gamma: Tensor<B, 1>, beta: Tensor<B, 1>, epsilon: f64) -> Tensor<B, D> {
    let out = <B as burn::tensor::ops::ModuleOps<B>>::layer_norm(
        x.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        Some(beta.into_primitive().tensor()),
        epsilon,
    );
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// `[C]` → `[1, …, 1, C]` of rank D, to broadcast over the rows.
fn per_channel<B: Backend, const D: usize>(v: Tensor<B, 1>) -> Tensor<B, D> {
    let mut shape = [1usize; D];
    shape[D - 1] = v.dims()[0];
    v.reshape(shape)
}

/// Sum over every axis but the last: `[..., C]` → `[C]`.
fn sum_rows<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, 1> {
    let dims = x.dims();
    let c = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    x.reshape([rows, c]).sum_dim(0).reshape([c])
}

/// The normalised input `x̂ = (x − mean)·r` and `r = 1/√(var + ε)` (`[..., 1]`), over the last
/// dimension.
fn normalise<B: Backend, const D: usize>(x: Tensor<B, D>, epsilon: f64) -> (Tensor<B, D>, Tensor<B, D>) {
    let centred = x.clone() - x.mean_dim(D - 1);
    let rstd = (centred.clone() * centred.clone()).mean_dim(D - 1).add_scalar(epsilon).sqrt().recip();
    (centred * rstd.clone(), rstd)
}

#[derive(Debug)]
struct LayerNormBackward<const D: usize>;

impl<B: Backend, const D: usize> Backward<B, 3> for LayerNormBackward<D> {
    /// x̂ `[..., C]`, r `[..., 1]` and γ `[C]`.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = tensor::<B, D>(grads.consume::<B>(&ops.node));
        let (xhat, rstd, gamma) = ops.state;
        let xhat = tensor::<B, D>(xhat);
        if let Some(node) = node_beta {
            grads.register::<B>(node.id, sum_rows(grad.clone()).into_primitive().tensor());
        }
        if let Some(node) = node_gamma {
            grads.register::<B>(node.id, sum_rows(grad.clone() * xhat.clone()).into_primitive().tensor());
        }
        if let Some(node) = node_x {
            let g = grad * per_channel::<B, D>(tensor::<B, 1>(gamma));
            let mean_g = g.clone().mean_dim(D - 1);
            let mean_gx = (g.clone() * xhat.clone()).mean_dim(D - 1);
            let dx = (g - mean_g - xhat * mean_gx) * tensor::<B, D>(rstd);
            grads.register::<B>(node.id, dx.into_primitive().tensor());
        }
    }
}

/// [`T2sBackend::layer_norm_last_dim`] on [`Autodiff`]: when gradients are tracked, the forward
/// pass computed so that it yields x̂ and r, recorded as one operation whose backward pass is
/// [`LayerNormBackward`]; otherwise the inner backend's own LayerNorm.
pub(crate) fn layer_norm_autodiff<B: T2sBackend, C: CheckpointStrategy, const D: usize>(
    x: Tensor<Autodiff<B, C>, D>,
    gamma: Tensor<Autodiff<B, C>, 1>,
    beta: Tensor<Autodiff<B, C>, 1>,
    epsilon: f64,
) -> Tensor<Autodiff<B, C>, D> {
    let (x, gamma, beta) = (x.into_primitive().tensor(), gamma.into_primitive().tensor(), beta.into_primitive().tensor());
    let nodes = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
    let out = match LayerNormBackward::<D>.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (xhat, rstd) = normalise(tensor::<B, D>(x.primitive), epsilon);
            let out = xhat.clone() * per_channel::<B, D>(tensor(gamma.primitive.clone())) + per_channel::<B, D>(tensor(beta.primitive));
            let state = (xhat.into_primitive().tensor(), rstd.into_primitive().tensor(), gamma.primitive);
            prep.finish(state, out.into_primitive().tensor())
        }
        OpsKind::UnTracked(prep) => {
            let out = B::layer_norm_last_dim(tensor::<B, D>(x.primitive), tensor(gamma.primitive), tensor(beta.primitive), epsilon);
            prep.finish(out.into_primitive().tensor())
        }
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{Distribution, TensorData, Tolerance};

    type B = Flex;
    type AD = Autodiff<Flex>;

    /// The forward pass and all three gradients against Burn's LayerNorm differentiated operation by
    /// operation, on a 3-D input with non-trivial γ and β and a weighted loss (so that the output
    /// gradient is not uniform, which would make `dx` vanish).
    #[test]
    fn own_backward_matches_burn_autodiff() {
        let device = Default::default();
        let x0 = Tensor::<AD, 3>::random([2, 5, 7], Distribution::Normal(0.5, 2.0), &device);
        let g0 = Tensor::<AD, 1>::random([7], Distribution::Normal(1.0, 0.5), &device);
        let b0 = Tensor::<AD, 1>::random([7], Distribution::Normal(0.0, 0.5), &device);
        let weights = Tensor::<AD, 3>::random([2, 5, 7], Distribution::Normal(0.0, 1.0), &device);
        let run = |own: bool| {
            let (x, g, b) = (x0.clone().require_grad(), g0.clone().require_grad(), b0.clone().require_grad());
            let y = if own {
                AD::layer_norm_last_dim(x.clone(), g.clone(), b.clone(), 1e-6)
            } else {
                burn_layer_norm(x.clone(), g.clone(), b.clone(), 1e-6)
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let d = |t: &Tensor<AD, 3>| t.grad(&grads).unwrap().into_data();
            let d1 = |t: &Tensor<AD, 1>| t.grad(&grads).unwrap().into_data();
            (y.into_data(), d(&x), d1(&g), d1(&b))
        };
        let (y, dx, dg, db) = run(true);
        let (y_ref, dx_ref, dg_ref, db_ref) = run(false);
        let tol = Tolerance::<f32>::absolute(2e-5);
        y.assert_approx_eq::<f32>(&y_ref, tol);
        dx.assert_approx_eq::<f32>(&dx_ref, tol);
        dg.assert_approx_eq::<f32>(&dg_ref, tol);
        db.assert_approx_eq::<f32>(&db_ref, tol);
    }

    /// Hand-derived: the row `[1, 2, 3]` has mean 2 and biased variance 2/3, so with ε = 0 the
    /// normalised row is `[−√1.5, 0, √1.5]`; with γ = `[1, 2, 3]` and β = `[0, 1, 0]` the output is
    /// `[−√1.5, 1, 3√1.5]`. The loss `Σ y·[1, 0, 0]` has `dβ = [1, 0, 0]`, `dγ = [−√1.5, 0, 0]`
    /// and `dx = r·(g·γ − mean(g·γ) − x̂·mean(g·γ·x̂))` with `g·γ = [1, 0, 0]`, r = √1.5:
    /// `√1.5·([1, 0, 0] − 1/3 − x̂·(−√1.5/3))` = `√1.5·[1 − 1/3 − 1/2, −1/3, −1/3 + 1/2]`.
    #[test]
    fn hand_derived_row() {
        let device = Default::default();
        let x = Tensor::<AD, 2>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0], [1, 3]), &device).require_grad();
        let g = Tensor::<AD, 1>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0], [3]), &device).require_grad();
        let b = Tensor::<AD, 1>::from_data(TensorData::new(vec![0.0f32, 1.0, 0.0], [3]), &device).require_grad();
        let y = AD::layer_norm_last_dim(x.clone(), g.clone(), b.clone(), 0.0);
        let pick = Tensor::<AD, 2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0], [1, 3]), &device);
        let grads = (y.clone() * pick).sum().backward();
        let s = 1.5f32.sqrt();
        let tol = Tolerance::<f32>::absolute(1e-5);
        y.into_data().assert_approx_eq::<f32>(&TensorData::new(vec![-s, 1.0, 3.0 * s], [1, 3]), tol);
        b.grad(&grads).unwrap().into_data().assert_approx_eq::<f32>(&TensorData::new(vec![1.0f32, 0.0, 0.0], [3]), tol);
        g.grad(&grads).unwrap().into_data().assert_approx_eq::<f32>(&TensorData::new(vec![-s, 0.0, 0.0], [3]), tol);
        let dx = vec![s * (1.0 - 1.0 / 3.0 - 0.5), -s / 3.0, s * (-1.0 / 3.0 + 0.5)];
        x.grad(&grads).unwrap().into_data().assert_approx_eq::<f32>(&TensorData::new(dx, [1, 3]), tol);
    }

    /// Without autodiff the module is Burn's LayerNorm computation.
    #[test]
    fn module_forward_is_layer_norm() {
        let device = Default::default();
        let mut norm = LayerNorm::<B>::new(4, 1e-5, &device);
        norm.gamma = Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32, -2.0, 0.5, 3.0], [4]), &device));
        let x = Tensor::<B, 3>::random([2, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        let reference = burn_layer_norm(x.clone(), norm.gamma.val(), norm.beta.val(), 1e-5);
        norm.forward(x).into_data().assert_approx_eq::<f32>(&reference.into_data(), Tolerance::absolute(1e-6));
    }
}
