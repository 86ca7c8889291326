//! [`T2sBackend`] for the CubeCL backends (CUDA, wgpu) and for Burn's fusion wrapper over them:
//! depth-wise convolutions, channels-last ([`T2sBackend::depthwise_conv2d_nhwc`]) and
//! channels-first ([`T2sBackend::depthwise_conv2d`]), as one kernel, Burn's direct convolution
//! (`burn_cubecl::kernel::conv::conv_forward_nhwc`) with `groups = C`; the T2S contrastive
//! loss's per-query term ([`T2sBackend::contrastive_rows_fused`]) as t2s's own kernels
//! (`crate::ops::contrastive_cube`); every other operation takes the trait's default body.
//!
//! Why: Burn's direct kernel reads MiT's channels-last tokens in place and the padding as zeros,
//! where the tap windows pad, change layout and build a k²-fold product; Burn's grouped *backward*
//! passes stay avoided (docs/architecture.md, "Own operations").

use crate::ops::backend::{tensor, ContrastiveRows, ContrastiveSaved, DeviceMemory, T2sBackend};
use crate::ops::depthwise::DepthwiseGeometry;
use burn::tensor::{Int, Tensor};

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
    fn depthwise_conv2d(x: Tensor<Self, 4>, weight: Tensor<Self, 4>, geometry: DepthwiseGeometry) -> Tensor<Self, 4> {
        // Channels-first maps (the DAFormer head's separable ASPP, the input gradients) as a
        // channels-last view: the kernel copies the input into that layout once, which is
        // cheaper than the padded copy and the k²-fold product of the tap windows.
        let input = x.clone().permute([0, 2, 3, 1]).into_primitive().tensor();
        match direct_nhwc::<R>(input, channels_last_kernel(weight.clone()), geometry) {
            Some(out) => tensor::<Self, 4>(out).permute([0, 3, 1, 2]),
            None => crate::ops::depthwise::windowed_taps(x, weight, geometry),
        }
    }

    fn depthwise_conv2d_nhwc(x: Tensor<Self, 4>, weight: Tensor<Self, 4>, geometry: DepthwiseGeometry) -> Tensor<Self, 4> {
        match direct_nhwc::<R>(x.clone().into_primitive().tensor(), channels_last_kernel(weight.clone()), geometry) {
            Some(out) => tensor(out),
            None => crate::ops::depthwise::windowed_taps(x.permute([0, 3, 1, 2]), weight, geometry).permute([0, 2, 3, 1]),
        }
    }

    fn device_memory(device: &Self::Device) -> Option<DeviceMemory> {
        let usage = <R as burn_cubecl::cubecl::Runtime>::client(device).memory_usage().ok()?;
        Some(DeviceMemory { reserved: usage.bytes_reserved, in_use: usage.bytes_in_use })
    }

    const FUSED_CONTRASTIVE: bool = true;

    fn contrastive_rows_fused(
        queries: Tensor<Self, 2>,
        positives: Tensor<Self, 2>,
        keys: Tensor<Self, 2>,
        negatives: Tensor<Self, 2, Int>,
        inv_tau: f32,
    ) -> Option<ContrastiveRows<Self>> {
        Some(ContrastiveRows::from_primitives(crate::ops::contrastive_cube::contrastive_rows::<R>(
            queries.into_primitive().tensor(),
            positives.into_primitive().tensor(),
            keys.into_primitive().tensor(),
            negatives.into_primitive(),
            inv_tau,
        )))
    }

    fn contrastive_rows_fused_backward(
        queries: Tensor<Self, 2>,
        positives: Tensor<Self, 2>,
        keys: Tensor<Self, 2>,
        negatives: Tensor<Self, 2, Int>,
        saved: &ContrastiveSaved<Self>,
        upstream: Tensor<Self, 1>,
        inv_tau: f32,
    ) -> Option<Tensor<Self, 2>> {
        Some(tensor(crate::ops::contrastive_cube::contrastive_rows_backward::<R>(
            queries.into_primitive().tensor(),
            positives.into_primitive().tensor(),
            keys.into_primitive().tensor(),
            negatives.into_primitive(),
            saved.clone().into_primitives(),
            upstream.into_primitive().tensor(),
            inv_tau,
        )))
    }
}

/// A depth-wise weight `[C, 1, kh, kw]` as the channels-last kernel takes it: `[C, kh, kw, 1]`
/// (output channels, kernel, input channels per group last), the same memory.
#[cfg(feature = "cubecl")]
fn channels_last_kernel<B: burn::tensor::backend::Backend>(weight: Tensor<B, 4>) -> burn::tensor::ops::FloatTensor<B> {
    let [c, _, kh, kw] = weight.dims();
    weight.reshape([c, kh, kw, 1]).into_primitive().tensor()
}

/// Burn's direct convolution kernel with `groups = C` on channels-last `x: [N, H, W, C]` (made
/// contiguous in that layout if it is not) and `kernel: [C, kh, kw, 1]` → `[N, H', W', C]`;
/// `None` for padding that differs between the two sides of an axis, which Burn's options cannot
/// say.
#[cfg(feature = "cubecl")]
fn direct_nhwc<R: burn_cubecl::CubeRuntime>(
    x: burn_cubecl::tensor::CubeTensor<R>,
    kernel: burn_cubecl::tensor::CubeTensor<R>,
    geometry: DepthwiseGeometry,
) -> Option<burn_cubecl::tensor::CubeTensor<R>> {
    use burn::tensor::ops::ConvOptions;
    use burn_cubecl::kernel::conv::{conv_forward_nhwc, ConvStrategy};
    let [top, bottom, left, right] = geometry.padding;
    if top != bottom || left != right {
        return None;
    }
    let channels = kernel.meta.shape()[0];
    let options = ConvOptions::new([1, 1], [top, left], geometry.dilation, channels);
    // The direct kernel has no shape constraints; should Burn's add one, the caller falls back.
    conv_forward_nhwc::<R, 2>(x, kernel, None, options, ConvStrategy::Direct).ok()
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

    /// The fused contrastive term's forward kernel as one operation of the fusion stream:
    /// queries, positives, keys (float) and negatives (int) in; rows, lse, norms, logits out.
    #[derive(Debug)]
    struct ContrastiveForward<B> {
        desc: CustomOpIr,
        inv_tau: f32,
        _backend: PhantomData<B>,
    }

    impl<B: FusionBackend + T2sBackend> Operation<B::FusionRuntime> for ContrastiveForward<B> {
        fn execute(&self, handles: &mut HandleContainer<<B::FusionRuntime as FusionRuntime>::FusionHandle>) {
            let ([q, p, k, n], [rows, lse, norms, logits, key_norms]) = self.desc.as_fixed();
            let out = B::contrastive_rows_fused(
                tensor(handles.get_float_tensor::<B>(q)),
                tensor(handles.get_float_tensor::<B>(p)),
                tensor(handles.get_float_tensor::<B>(k)),
                Tensor::from_primitive(handles.get_int_tensor::<B>(n)),
                self.inv_tau,
            )
            .expect("queued only for a wrapped backend with the fused kernels");
            handles.register_float_tensor::<B>(&rows.id, out.rows.into_primitive().tensor());
            handles.register_float_tensor::<B>(&lse.id, out.saved.lse.into_primitive().tensor());
            handles.register_float_tensor::<B>(&norms.id, out.saved.norms.into_primitive().tensor());
            handles.register_float_tensor::<B>(&logits.id, out.saved.logits.into_primitive().tensor());
            handles.register_float_tensor::<B>(&key_norms.id, out.saved.key_norms.into_primitive().tensor());
        }
    }

    /// The fused contrastive term's backward kernel as one operation of the fusion stream.
    #[derive(Debug)]
    struct ContrastiveBackward<B> {
        desc: CustomOpIr,
        inv_tau: f32,
        _backend: PhantomData<B>,
    }

    impl<B: FusionBackend + T2sBackend> Operation<B::FusionRuntime> for ContrastiveBackward<B> {
        fn execute(&self, handles: &mut HandleContainer<<B::FusionRuntime as FusionRuntime>::FusionHandle>) {
            let ([q, p, k, n, lse, norms, logits, key_norms, up], [dq]) = self.desc.as_fixed();
            let saved = ContrastiveSaved {
                lse: tensor(handles.get_float_tensor::<B>(lse)),
                norms: tensor(handles.get_float_tensor::<B>(norms)),
                logits: tensor(handles.get_float_tensor::<B>(logits)),
                key_norms: tensor(handles.get_float_tensor::<B>(key_norms)),
            };
            let grad = B::contrastive_rows_fused_backward(
                tensor(handles.get_float_tensor::<B>(q)),
                tensor(handles.get_float_tensor::<B>(p)),
                tensor(handles.get_float_tensor::<B>(k)),
                Tensor::from_primitive(handles.get_int_tensor::<B>(n)),
                &saved,
                tensor(handles.get_float_tensor::<B>(up)),
                self.inv_tau,
            )
            .expect("queued only for a wrapped backend with the fused kernels");
            handles.register_float_tensor::<B>(&dq.id, grad.into_primitive().tensor());
        }
    }

    impl<B: FusionBackend + T2sBackend> T2sBackend for Fusion<B> {
        fn depthwise_conv2d(x: Tensor<Self, 4>, weight: Tensor<Self, 4>, geometry: DepthwiseGeometry) -> Tensor<Self, 4> {
            // The wrapped backend's kernel through the channels-last operation below (its
            // fallback for one-sided padding is the tap windows, which fusion runs as they are).
            let [top, bottom, left, right] = geometry.padding;
            if top != bottom || left != right {
                return crate::ops::depthwise::windowed_taps(x, weight, geometry);
            }
            Self::depthwise_conv2d_nhwc(x.permute([0, 2, 3, 1]), weight, geometry).permute([0, 3, 1, 2])
        }

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

        fn device_memory(device: &Self::Device) -> Option<DeviceMemory> {
            B::device_memory(device)
        }

        const FUSED_CONTRASTIVE: bool = B::FUSED_CONTRASTIVE;

        fn contrastive_rows_fused(
            queries: Tensor<Self, 2>,
            positives: Tensor<Self, 2>,
            keys: Tensor<Self, 2>,
            negatives: Tensor<Self, 2, Int>,
            inv_tau: f32,
        ) -> Option<ContrastiveRows<Self>> {
            if !B::FUSED_CONTRASTIVE {
                return None;
            }
            let [nq, _] = queries.dims();
            let m = negatives.dims()[1];
            let (q, p, k) = (queries.into_primitive().tensor(), positives.into_primitive().tensor(), keys.into_primitive().tensor());
            let n = negatives.into_primitive();
            let client = q.client.clone();
            let dtype = q.dtype;
            let streams = OperationStreams::with_inputs([&q, &p, &k, &n]);
            let out = |shape: Vec<usize>| TensorIr::uninit(client.create_empty_handle(), Shape::from(shape), dtype);
            let outs = [out(vec![nq]), out(vec![nq]), out(vec![nq]), out(vec![nq, m + 1]), out(vec![nq, m])];
            let desc = CustomOpIr::new("t2s_contrastive_rows", &[q.into_ir(), p.into_ir(), k.into_ir(), n.into_ir()], &outs);
            let op = ContrastiveForward::<B> { desc: desc.clone(), inv_tau, _backend: PhantomData };
            let outputs: [_; 5] = client.register(streams, OperationIr::Custom(desc), op).try_into().expect("five outputs registered");
            Some(ContrastiveRows::from_primitives(outputs))
        }

        fn contrastive_rows_fused_backward(
            queries: Tensor<Self, 2>,
            positives: Tensor<Self, 2>,
            keys: Tensor<Self, 2>,
            negatives: Tensor<Self, 2, Int>,
            saved: &ContrastiveSaved<Self>,
            upstream: Tensor<Self, 1>,
            inv_tau: f32,
        ) -> Option<Tensor<Self, 2>> {
            if !B::FUSED_CONTRASTIVE {
                return None;
            }
            let shape = queries.shape();
            let float = |t: Tensor<Self, 2>| t.into_primitive().tensor();
            let (q, p, k) = (float(queries), float(positives), float(keys));
            let n = negatives.into_primitive();
            let [lse, norms, logits, key_norms] = saved.clone().into_primitives();
            let up = upstream.into_primitive().tensor();
            let client = q.client.clone();
            let streams = OperationStreams::with_inputs([&q, &p, &k, &n, &lse, &norms, &logits, &key_norms, &up]);
            let out = TensorIr::uninit(client.create_empty_handle(), shape, q.dtype);
            let inputs = [
                q.into_ir(),
                p.into_ir(),
                k.into_ir(),
                n.into_ir(),
                lse.into_ir(),
                norms.into_ir(),
                logits.into_ir(),
                key_norms.into_ir(),
                up.into_ir(),
            ];
            let desc = CustomOpIr::new("t2s_contrastive_rows_backward", &inputs, &[out]);
            let op = ContrastiveBackward::<B> { desc: desc.clone(), inv_tau, _backend: PhantomData };
            let mut outputs = client.register(streams, OperationIr::Custom(desc), op);
            Some(tensor(outputs.remove(0)))
        }
    }
}
