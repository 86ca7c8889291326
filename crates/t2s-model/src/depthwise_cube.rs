//! [`T2sBackend`] for the CubeCL backends (CUDA, wgpu) and for Burn's fusion wrapper over them:
//! the channels-last depth-wise convolution ([`T2sBackend::depthwise_conv2d_nhwc`]) as one
//! kernel, Burn's direct convolution (`burn_cubecl::kernel::conv::conv_forward_nhwc`) with
//! `groups = C`; every other operation takes the trait's default body.
//!
//! Why: MiT's Mix-FFN holds its activations as tokens `[N, h·w, C]`, which are `[N, h, w, C]`
//! channels-last with no copy. Through the channels-first operation each depth-wise layer cost
//! a copy into `[N, C, h, w]` and one back, each way, plus a zero-filled padded copy of its
//! input and a product k² times the output's size; Burn's direct kernel reads the channels-last
//! input where it lies and treats the padding as zeros. Burn's grouped-convolution *backward*
//! passes are what t2s avoids on these backends (one launch per channel, `crate::depthwise`):
//! the input gradient is this same forward operation on the output gradient
//! (`crate::depthwise::depthwise_input_grad_nhwc`), and the weight gradient stays a tap-window
//! product (`crate::depthwise::depthwise_weight_grad_nhwc`).

use crate::backend::{tensor, T2sBackend};
use crate::depthwise::DepthwiseGeometry;
use burn::tensor::Tensor;

#[cfg(feature = "cubecl")]
impl<R, F, I, BT> T2sBackend for burn_cubecl::CubeBackend<R, F, I, BT>
where
    R: burn_cubecl::CubeRuntime,
    R::Server: burn_cubecl::cubecl::server::ComputeServer,
    R::Device: burn::tensor::backend::DeviceOps,
    F: burn_cubecl::FloatElement,
    I: burn_cubecl::IntElement,
    BT: burn_cubecl::BoolElement,
{
    fn depthwise_conv2d_nhwc(x: Tensor<Self, 4>, weight: Tensor<Self, 4>, geometry: DepthwiseGeometry) -> Tensor<Self, 4> {
        use crate::depthwise::depthwise_nhwc_via_nchw;
        use burn::tensor::ops::ConvOptions;
        use burn_cubecl::kernel::conv::{conv_forward_nhwc, ConvStrategy};
        let [top, bottom, left, right] = geometry.padding;
        // Burn's convolution options pad both sides alike; the networks' depth-wise layers do.
        if top != bottom || left != right {
            return depthwise_nhwc_via_nchw(x, weight, geometry);
        }
        let [c, _, kh, kw] = weight.dims();
        // [C, 1, kh, kw] and [C, kh, kw, 1] (output channels, kernel, input channels per group
        // last, as the channels-last kernel takes it) are the same memory.
        let kernel = weight.clone().reshape([c, kh, kw, 1]);
        let options = ConvOptions::new([1, 1], [top, left], geometry.dilation, c);
        match conv_forward_nhwc::<R, 2>(
            x.clone().into_primitive().tensor(),
            kernel.into_primitive().tensor(),
            None,
            options,
            ConvStrategy::Direct,
        ) {
            Ok(out) => tensor(out),
            // The direct kernel has no shape constraints; should Burn's add one, stay correct.
            Err(_) => depthwise_nhwc_via_nchw(x, weight, geometry),
        }
    }
}

#[cfg(feature = "fusion")]
mod fusion {
    use super::*;
    use burn::tensor::Shape;
    use burn_fusion::stream::{Operation, OperationStreams};
    use burn_fusion::{Fusion, FusionBackend, FusionRuntime};
    use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};
    use core::marker::PhantomData;

    /// The channels-last depth-wise convolution as one operation of the fusion stream, run by
    /// the wrapped backend (which gives it its kernel). It ends a fused run, as any kernel that
    /// fusion cannot merge does.
    #[derive(Debug)]
    struct DepthwiseNhwc<B> {
        desc: CustomOpIr,
        geometry: DepthwiseGeometry,
        _backend: PhantomData<B>,
    }

    impl<B: FusionBackend + T2sBackend> Operation<B::FusionRuntime> for DepthwiseNhwc<B> {
        fn execute(&self, handles: &mut HandleContainer<<B::FusionRuntime as FusionRuntime>::FusionHandle>) {
            let ([x, weight], [out]) = self.desc.as_fixed();
            let x = tensor::<B, 4>(handles.get_float_tensor::<B>(x));
            let weight = tensor::<B, 4>(handles.get_float_tensor::<B>(weight));
            let y = B::depthwise_conv2d_nhwc(x, weight, self.geometry);
            handles.register_float_tensor::<B>(&out.id, y.into_primitive().tensor());
        }
    }

    impl<B: FusionBackend + T2sBackend> T2sBackend for Fusion<B> {
        fn depthwise_conv2d_nhwc(x: Tensor<Self, 4>, weight: Tensor<Self, 4>, geometry: DepthwiseGeometry) -> Tensor<Self, 4> {
            let [n, h, w, c] = x.dims();
            let [_, _, kh, kw] = weight.dims();
            let [oh, ow] = geometry.output_size(h, w, kh, kw);
            let x = x.into_primitive().tensor();
            let weight = weight.into_primitive().tensor();
            let client = x.client.clone();
            let streams = OperationStreams::with_inputs([&x, &weight]);
            let out = TensorIr::uninit(client.create_empty_handle(), Shape::new([n, oh, ow, c]), x.dtype);
            let desc = CustomOpIr::new("t2s_depthwise_conv2d_nhwc", &[x.into_ir(), weight.into_ir()], &[out]);
            let op = DepthwiseNhwc::<B> { desc: desc.clone(), geometry, _backend: PhantomData };
            let mut outputs = client.register(streams, OperationIr::Custom(desc), op);
            tensor(outputs.remove(0))
        }
    }
}
