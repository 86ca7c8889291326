//! The backends t2s's networks run on: Burn's [`Backend`] plus the operations t2s computes its own
//! way on some of them ([`T2sBackend`]).
//!
//! A trait because Autodiff is a backend decorator: an operation can only get its own, shorter
//! backward pass in an implementation for [`Autodiff`]; every other backend takes the trait's
//! default bodies, written with tensors (docs/architecture.md, "Own operations").

use crate::ops::depthwise::{depthwise_nhwc_via_nchw, windowed_taps, DepthwiseGeometry, Layout};
use crate::ops::layer_norm::burn_layer_norm;
use burn::backend::{Autodiff, Flex};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Int, Tensor};

/// A Burn backend with t2s's own operations. Implemented for every backend t2s builds with
/// (Flex, CubeBackend, Fusion, Autodiff of any of them); networks are generic over it.
pub trait T2sBackend: Backend {
    /// Depth-wise 2-D convolution, stride 1, no bias: `x: [N, C, H, W]`, `weight: [C, 1, kh, kw]`
    /// → `[N, C, H + top + bottom − dh(kh − 1), W + left + right − dw(kw − 1)]`, computed as
    /// one product over the tap windows ([`windowed_taps`]); the CubeCL backends run Burn's
    /// direct convolution kernel instead (`crate::ops::cube_backend`), and [`Autodiff`] gives it a
    /// backward pass of its own.
    fn depthwise_conv2d(x: Tensor<Self, 4>, weight: Tensor<Self, 4>, geometry: DepthwiseGeometry) -> Tensor<Self, 4> {
        windowed_taps(x, weight, geometry)
    }

    /// The same depth-wise convolution channels-last: `x: [N, H, W, C]` (MiT's tokens `[N, h·w,
    /// C]` without a copy), `weight: [C, 1, kh, kw]` → `[N, H', W', C]`. By default through
    /// [`T2sBackend::depthwise_conv2d`] with the views between the layouts
    /// ([`depthwise_nhwc_via_nchw`]); the CubeCL backends run Burn's direct convolution kernel on
    /// the channels-last tensors, one kernel with the padding read as zeros (`crate::ops::cube_backend`),
    /// and [`Autodiff`] gives it a channels-last backward pass (`crate::ops::depthwise_autodiff`).
    fn depthwise_conv2d_nhwc(x: Tensor<Self, 4>, weight: Tensor<Self, 4>, geometry: DepthwiseGeometry) -> Tensor<Self, 4> {
        depthwise_nhwc_via_nchw(x, weight, geometry)
    }

    /// LayerNorm over the last dimension, `[..., C]` → `[..., C]`, with scale `gamma: [C]` and
    /// shift `beta: [C]` (PyTorch's `nn.LayerNorm`, biased variance). Burn's computation
    /// ([`burn_layer_norm`]); [`Autodiff`] gives it a backward pass of its own
    /// (`crate::ops::layer_norm`).
    fn layer_norm_last_dim<const D: usize>(
        x: Tensor<Self, D>,
        gamma: Tensor<Self, 1>,
        beta: Tensor<Self, 1>,
        epsilon: f64,
    ) -> Tensor<Self, D> {
        burn_layer_norm(x, gamma, beta, epsilon)
    }

    /// Softmax over the last dimension (attention weights), shape kept. Burn's `softmax`;
    /// [`Autodiff`] gives it a backward pass of its own (`crate::ops::activation`).
    fn softmax_last_dim<const D: usize>(x: Tensor<Self, D>) -> Tensor<Self, D> {
        softmax(x, D - 1)
    }

    /// The exact (erf) GELU `x·Φ(x)`, PyTorch's `nn.GELU()`, shape kept. Burn's `gelu`, whose
    /// forward pass is exact on every backend; [`Autodiff`] gives it the exact derivative as one
    /// operation (`crate::ops::activation`), where Burn's CubeCL backward is the tanh
    /// approximation's.
    fn gelu_exact<const D: usize>(x: Tensor<Self, D>) -> Tensor<Self, D> {
        gelu(x)
    }

    /// The device memory this thread's allocator holds on `device` (the CubeCL backends: the
    /// memory pools of the calling thread's stream, which Burn's fusion runs its operations on);
    /// `None` on the CPU backend, where the process's memory is the measure.
    fn device_memory(_device: &Self::Device) -> Option<DeviceMemory> {
        None
    }

    /// Whether [`T2sBackend::contrastive_rows_fused`] runs kernels here (the CubeCL backends and
    /// their fusion and autodiff wrappers). Elsewhere the T2S loss computes the term with tensor
    /// operations, which autodiff differentiates one by one (`t2s_loss::t2s_contrastive_loss`).
    const FUSED_CONTRASTIVE: bool = false;

    /// The per-query term of the T2S contrastive loss as fused kernels
    /// (`crate::ops::contrastive_cube` gives the formula): `queries [Nq, D]` (the only input
    /// with a gradient), each query's normalised prototype `positives [Nq, D]`, the key bank
    /// `keys [K, D]` (normalised as it is read), `negatives [Nq, M]` (rows of `keys`, M ≥ 1),
    /// `1/τ` → ℓ per query
    /// `[Nq]` with what its backward pass needs. `None` where [`T2sBackend::FUSED_CONTRASTIVE`]
    /// is false.
    fn contrastive_rows_fused(
        _queries: Tensor<Self, 2>,
        _positives: Tensor<Self, 2>,
        _keys: Tensor<Self, 2>,
        _negatives: Tensor<Self, 2, Int>,
        _inv_tau: f32,
    ) -> Option<ContrastiveRows<Self>> {
        None
    }

    /// The gradient `[Nq, D]` of `Σ_i upstream_i·ℓ_i` with respect to the queries, from the
    /// forward pass's `saved` values; `None` where [`T2sBackend::FUSED_CONTRASTIVE`] is false.
    #[allow(clippy::too_many_arguments)]
    fn contrastive_rows_fused_backward(
        _queries: Tensor<Self, 2>,
        _positives: Tensor<Self, 2>,
        _keys: Tensor<Self, 2>,
        _negatives: Tensor<Self, 2, Int>,
        _saved: &ContrastiveSaved<Self>,
        _upstream: Tensor<Self, 1>,
        _inv_tau: f32,
    ) -> Option<Tensor<Self, 2>> {
        None
    }
}

/// What a device's memory allocator holds ([`T2sBackend::device_memory`]), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceMemory {
    /// Reserved from the driver: the allocator's pages, in use or free for reuse (what
    /// nvidia-smi counts, less the CUDA context). Pages stay reserved across iterations, so after
    /// the first steps this is close to a step's high-water mark.
    pub reserved: u64,
    /// Held by live tensors now.
    pub in_use: u64,
}

impl DeviceMemory {
    /// Bytes to MiB, rounded to the nearest.
    pub fn mib(bytes: u64) -> u64 {
        (bytes + (1 << 19)) >> 20
    }
}

/// The fused contrastive term's outputs ([`T2sBackend::contrastive_rows_fused`]).
#[derive(Debug, Clone)]
pub struct ContrastiveRows<B: Backend> {
    /// ℓ per query `[Nq]` (on the graph of the queries under autodiff).
    pub rows: Tensor<B, 1>,
    /// What the backward pass needs.
    pub saved: ContrastiveSaved<B>,
}

impl<B: Backend> ContrastiveRows<B> {
    /// From the kernels' outputs `[rows, lse, norms, logits, key_norms]`.
    pub fn from_primitives([rows, lse, norms, logits, key_norms]: [FloatTensor<B>; 5]) -> Self {
        let saved = ContrastiveSaved { lse: tensor(lse), norms: tensor(norms), logits: tensor(logits), key_norms: tensor(key_norms) };
        Self { rows: tensor(rows), saved }
    }
}

impl<B: Backend> ContrastiveSaved<B> {
    /// `[lse, norms, logits, key_norms]`, as the backward kernel takes them.
    pub fn into_primitives(self) -> [FloatTensor<B>; 4] {
        [
            self.lse.into_primitive().tensor(),
            self.norms.into_primitive().tensor(),
            self.logits.into_primitive().tensor(),
            self.key_norms.into_primitive().tensor(),
        ]
    }
}

/// What the fused contrastive term's backward pass needs of its forward pass.
#[derive(Debug, Clone)]
pub struct ContrastiveSaved<B: Backend> {
    /// Log-sum-exp of each query's logits `[Nq]`.
    pub lse: Tensor<B, 1>,
    /// ‖q‖ per query `[Nq]`, before the clamp at ε.
    pub norms: Tensor<B, 1>,
    /// The scaled logits `[Nq, M + 1]`, the positive first.
    pub logits: Tensor<B, 2>,
    /// `max(‖k‖, ε)` of each query's gathered keys `[Nq, M]`.
    pub key_norms: Tensor<B, 2>,
}

/// A float primitive as a tensor of rank D: what t2s's own backward passes (`crate::ops::depthwise_autodiff`,
/// `crate::ops::layer_norm`, `crate::ops::activation`) receive and keep, as tensors again.
pub(crate) fn tensor<B: Backend, const D: usize>(primitive: burn::tensor::ops::FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(burn::tensor::TensorPrimitive::Float(primitive))
}

/// An autodiff backend whose inner backend (teacher, evaluation, pseudo-labels) is a
/// [`T2sBackend`] too.
pub trait T2sAutodiffBackend: AutodiffBackend<InnerBackend: T2sBackend> + T2sBackend {}

impl<B> T2sAutodiffBackend for B where B: AutodiffBackend<InnerBackend: T2sBackend> + T2sBackend {}

impl T2sBackend for Flex {}

impl<B: T2sBackend, C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy> T2sBackend for Autodiff<B, C> {
    fn depthwise_conv2d(x: Tensor<Self, 4>, weight: Tensor<Self, 4>, geometry: DepthwiseGeometry) -> Tensor<Self, 4> {
        crate::ops::depthwise_autodiff::depthwise_conv2d_autodiff(x, weight, geometry, Layout::ChannelsFirst)
    }

    fn depthwise_conv2d_nhwc(x: Tensor<Self, 4>, weight: Tensor<Self, 4>, geometry: DepthwiseGeometry) -> Tensor<Self, 4> {
        crate::ops::depthwise_autodiff::depthwise_conv2d_autodiff(x, weight, geometry, Layout::ChannelsLast)
    }

    fn layer_norm_last_dim<const D: usize>(
        x: Tensor<Self, D>,
        gamma: Tensor<Self, 1>,
        beta: Tensor<Self, 1>,
        epsilon: f64,
    ) -> Tensor<Self, D> {
        crate::ops::layer_norm::layer_norm_autodiff(x, gamma, beta, epsilon)
    }

    fn softmax_last_dim<const D: usize>(x: Tensor<Self, D>) -> Tensor<Self, D> {
        crate::ops::activation::softmax_autodiff(x)
    }

    fn gelu_exact<const D: usize>(x: Tensor<Self, D>) -> Tensor<Self, D> {
        crate::ops::activation::gelu_autodiff(x)
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
        crate::ops::contrastive_autodiff::contrastive_rows_autodiff(queries, positives, keys, negatives, inv_tau)
    }
}

// The CubeCL backends (`CubeBackend`, and `Fusion` over it) are implemented in
// `crate::ops::cube_backend`, next to the kernel call they add.
