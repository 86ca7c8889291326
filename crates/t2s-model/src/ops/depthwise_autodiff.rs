//! The depth-wise convolution as one autodiff operation with its own backward pass
//! ([`T2sBackend::depthwise_conv2d`] on [`Autodiff`]).
//!
//! Why: Burn's autodiff differentiates the tensor form primitive by primitive, while here the
//! backward pass is two depth-wise computations written directly, for both layouts (also
//! [`T2sBackend::depthwise_conv2d_nhwc`]; docs/architecture.md, "Own operations").

use crate::ops::backend::{tensor, T2sBackend};
use crate::ops::depthwise::{depthwise_input_grad, depthwise_weight_grad, DepthwiseGeometry, Layout};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

/// The backward pass, for maps in `layout`.
#[derive(Debug)]
struct DepthwiseBackward {
    layout: Layout,
}

impl<B: T2sBackend> Backward<B, 2> for DepthwiseBackward {
    /// The input (not padded: the CubeCL backends' forward kernel pads as it reads, so the padded
    /// copy is made by the weight gradient alone and not held from the forward pass to the
    /// backward pass), the weight and the geometry.
    type State = (FloatTensor<B>, FloatTensor<B>, DepthwiseGeometry);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let grad = tensor::<B, 4>(grads.consume::<B>(&ops.node));
        let (x, weight, geometry) = ops.state;
        let weight = tensor::<B, 4>(weight);
        let [_, _, kh, kw] = weight.dims();
        if let Some(node) = node_x {
            let dx = depthwise_input_grad(grad.clone(), weight, geometry, self.layout);
            grads.register::<B>(node.id, dx.into_primitive().tensor());
        }
        if let Some(node) = node_weight {
            let dw = depthwise_weight_grad(tensor::<B, 4>(x), grad, geometry, [kh, kw], self.layout);
            grads.register::<B>(node.id, dw.into_primitive().tensor());
        }
    }
}

/// [`T2sBackend::depthwise_conv2d`] (`layout` channels-first) or
/// [`T2sBackend::depthwise_conv2d_nhwc`] (channels-last) on [`Autodiff`]: the inner backend's
/// forward pass, recorded as one operation whose backward pass is [`DepthwiseBackward`].
pub(crate) fn depthwise_conv2d_autodiff<B: T2sBackend, C: CheckpointStrategy>(
    x: Tensor<Autodiff<B, C>, 4>,
    weight: Tensor<Autodiff<B, C>, 4>,
    geometry: DepthwiseGeometry,
    layout: Layout,
) -> Tensor<Autodiff<B, C>, 4> {
    let x = x.into_primitive().tensor();
    let weight = weight.into_primitive().tensor();
    let forward = |x: FloatTensor<B>, weight: FloatTensor<B>| {
        layout.depthwise_conv2d(tensor::<B, 4>(x), tensor::<B, 4>(weight), geometry).into_primitive().tensor()
    };
    let out = match (DepthwiseBackward { layout }).prepare::<C>([x.node.clone(), weight.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let out = forward(x.primitive.clone(), weight.primitive.clone());
            prep.finish((x.primitive, weight.primitive, geometry), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive, weight.primitive)),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}
