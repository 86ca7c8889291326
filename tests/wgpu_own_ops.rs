//! t2s's own operations on wgpu, against independent computations on the CPU:
//! - the convolution rewrites of `t2s_model::conv` (depth-wise as one product over the shifted
//!   windows with its own backward pass, dense as one matrix product): forward pass and the
//!   gradients of input, weight and bias equal the CPU's, where `conv2d_forward` uses Burn's own
//!   convolutions;
//! - LayerNorm, softmax and the exact GELU with their own backward passes
//!   (`T2sBackend::layer_norm_last_dim`, `softmax_last_dim`, `gelu_exact`): forward pass and
//!   gradients equal Burn's formulations differentiated operation by operation on the CPU;
//! - the channels-last depth-wise convolution of MiT's Mix-FFN (`T2sBackend::depthwise_conv2d_nhwc`,
//!   Burn's direct kernel as one fusion operation) with its backward pass, and MiT's spatial
//!   reduction on the tokens (`conv_gemm::patchify_tokens`).
//!
//! Skipped without a wgpu adapter unless `T2S_REQUIRE_WGPU` is set (CI installs lavapipe and
//! sets it).
#![cfg(feature = "wgpu")]

mod common;

use burn::backend::{Autodiff, Flex, Wgpu};
use burn::module::Param;
use burn::tensor::{Distribution, Tensor, TensorData};
use common::wgpu_available;
use core::f64::consts::SQRT_2;
use t2s_model::nets::conv_bn::ConvSpec;
use t2s_model::ops::conv::{conv2d_forward, gemm_geometry, uses_conv_rewrites};
use t2s_model::ops::conv_gemm::patchify_tokens;
use t2s_model::ops::depthwise::DepthwiseGeometry;
use t2s_model::ops::layer_norm::burn_layer_norm;
use t2s_model::{T2sAutodiffBackend, T2sBackend};

/// Asserts that every array of `gpu` equals the same-named one of `cpu` up to `rel` of its largest
/// magnitude.
fn assert_close(what: &str, names: &[&str], cpu: &[Vec<f32>], gpu: &[Vec<f32>], rel: f32) {
    for (name, (a, b)) in names.iter().zip(cpu.iter().zip(gpu)) {
        assert_eq!(a.len(), b.len(), "{what}: {name}");
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(diff <= rel * scale, "{what}: {name}: wgpu differs from the CPU by {diff} (scale {scale})");
    }
}

/// Output, input gradient, weight gradient and bias gradient of the convolution `spec` (with a
/// bias) on backend `B`, from the given data.
fn run<B: T2sAutodiffBackend>(spec: ConvSpec, x: &TensorData, w: &TensorData, b: &TensorData, field: &TensorData) -> [Vec<f32>; 4] {
    let device = Default::default();
    let mut conv = spec.bias(true).init::<B>(&device);
    conv.weight = Param::from_tensor(Tensor::from_data(w.clone(), &device).require_grad());
    conv.bias = Some(Param::from_tensor(Tensor::from_data(b.clone(), &device).require_grad()));
    let x = Tensor::<B, 4>::from_data(x.clone(), &device).require_grad();
    let y = conv2d_forward(&conv, x.clone());
    let grads = (y.clone() * Tensor::from_data(field.clone(), &device)).sum().backward();
    let v = |t: Tensor<B::InnerBackend, 4>| t.into_data().to_vec::<f32>().unwrap();
    [
        y.into_data().to_vec().unwrap(),
        v(x.grad(&grads).unwrap()),
        v(conv.weight.val().grad(&grads).unwrap()),
        conv.bias.as_ref().unwrap().val().grad(&grads).unwrap().into_data().to_vec().unwrap(),
    ]
}

#[test]
fn rewritten_convolutions_match_cpu() {
    if !wgpu_available() {
        return;
    }
    let d = Default::default();
    assert!(
        uses_conv_rewrites::<Autodiff<Wgpu>>(&Default::default()),
        "{}",
        <Autodiff<Wgpu> as burn::tensor::backend::Backend>::name(&Default::default())
    );
    assert!(!uses_conv_rewrites::<Autodiff<Flex>>(&d));
    let (n, c, h, w) = (2, 12, 9, 14);
    // The layer kinds of the networks: MiT's Mix-FFN and the DAFormer head's separable ASPP
    // (dilated depth-wise), 1×1 projections, MiT's spatial reduction (patchify, with a remainder
    // row to drop), DeepLabV2's dilated 3×3, the patch embeddings' strided 3×3.
    let cases = [
        ("depth-wise 3×3 (Mix-FFN)", ConvSpec::new(c, c, 3).groups(c)),
        ("depth-wise 3×3 dilation 2", ConvSpec::new(c, c, 3).dilated(2).groups(c)),
        ("1×1", ConvSpec::new(c, 8, 1)),
        ("2×2 stride 2", ConvSpec::new(c, 8, 2).stride(2).padding(0)),
        ("3×3 dilation 2", ConvSpec::new(c, 8, 3).dilated(2)),
        ("3×3 stride 2", ConvSpec::new(c, 8, 3).stride(2)),
    ];
    for (what, spec) in cases {
        let depthwise = spec.groups > 1;
        assert_eq!(gemm_geometry(&spec.init::<Flex>(&d)).is_some(), !depthwise, "{what}");
        let out_c = spec.out_channels;
        let k = spec.kernel;
        let (oh, ow) = (
            (h + 2 * spec.padding - spec.dilation * (k - 1) - 1) / spec.stride + 1,
            (w + 2 * spec.padding - spec.dilation * (k - 1) - 1) / spec.stride + 1,
        );
        let r = |shape: [usize; 4]| Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.0, 1.0), &d).into_data();
        let (x, wt, field) = (r([n, c, h, w]), r([out_c, c / spec.groups, k, k]), r([n, out_c, oh, ow]));
        let b = Tensor::<Flex, 1>::random([out_c], Distribution::Normal(0.0, 1.0), &d).into_data();
        let cpu = run::<Autodiff<Flex>>(spec, &x, &wt, &b, &field);
        let gpu = run::<Autodiff<Wgpu>>(spec, &x, &wt, &b, &field);
        assert_close(what, &["output", "input gradient", "weight gradient", "bias gradient"], &cpu, &gpu, 1e-5);
    }
}

/// Output and input gradient of `f` under the loss `Σ f(x)·field`, plus the gradients of `params`.
fn op_grads<B: T2sAutodiffBackend>(
    x: &TensorData,
    field: &TensorData,
    params: &[TensorData],
    f: impl Fn(Tensor<B, 3>, &[Tensor<B, 1>]) -> Tensor<B, 3>,
) -> Vec<Vec<f32>> {
    let device = Default::default();
    let x = Tensor::<B, 3>::from_data(x.clone(), &device).require_grad();
    let params: Vec<Tensor<B, 1>> = params.iter().map(|p| Tensor::from_data(p.clone(), &device).require_grad()).collect();
    let y = f(x.clone(), &params);
    let grads = (y.clone() * Tensor::from_data(field.clone(), &device)).sum().backward();
    let mut out = vec![y.into_data().to_vec().unwrap(), x.grad(&grads).unwrap().into_data().to_vec().unwrap()];
    out.extend(params.iter().map(|p| p.grad(&grads).unwrap().into_data().to_vec().unwrap()));
    out
}

#[test]
fn own_transformer_ops_match_burn_on_cpu() {
    if !wgpu_available() {
        return;
    }
    type Gpu = Autodiff<Wgpu>;
    type Cpu = Autodiff<Flex>;
    let d = Default::default();
    let r = |shape: [usize; 3], std: f64| Tensor::<Flex, 3>::random(shape, Distribution::Normal(0.0, std), &d).into_data();
    // Rows of 40 channels with an offset and spread, as tokens entering a LayerNorm.
    let shape = [2, 33, 40];
    let (x, field) = (Tensor::<Flex, 3>::random(shape, Distribution::Normal(0.7, 2.0), &d).into_data(), r(shape, 1.0));
    let gamma = Tensor::<Flex, 1>::random([40], Distribution::Normal(1.0, 0.3), &d).into_data();
    let beta = Tensor::<Flex, 1>::random([40], Distribution::Normal(0.0, 0.3), &d).into_data();
    let names = ["output", "input gradient", "gamma gradient", "beta gradient"];
    let params = [gamma, beta];
    let cpu = op_grads::<Cpu>(&x, &field, &params, |x, p| burn_layer_norm(x, p[0].clone(), p[1].clone(), 1e-6));
    let gpu = op_grads::<Gpu>(&x, &field, &params, |x, p| Gpu::layer_norm_last_dim(x, p[0].clone(), p[1].clone(), 1e-6));
    assert_close("LayerNorm", &names, &cpu, &gpu, 1e-5);

    // Attention logits (softmax over the last axis) and Mix-FFN activations (GELU).
    let logits = r(shape, 3.0);
    let cpu = op_grads::<Cpu>(&logits, &field, &[], |x, _| burn::tensor::activation::softmax(x, 2));
    let gpu = op_grads::<Gpu>(&logits, &field, &[], |x, _| Gpu::softmax_last_dim(x));
    assert_close("softmax", &names[..2], &cpu, &gpu, 1e-5);
    let cpu = op_grads::<Cpu>(&logits, &field, &[], |x, _| (x.clone() * x.div_scalar(SQRT_2).erf().add_scalar(1.0)).div_scalar(2.0));
    let gpu = op_grads::<Gpu>(&logits, &field, &[], |x, _| Gpu::gelu_exact(x));
    assert_close("GELU", &names[..2], &cpu, &gpu, 1e-5);
}

/// Output, input gradient and weight gradient of the depth-wise convolution on backend `B`, of
/// channels-last data: the channels-last operation (`T2sBackend::depthwise_conv2d_nhwc`), or
/// with `first` the channels-first one (`depthwise_conv2d`) between transposed views.
fn depthwise_nhwc<B: T2sAutodiffBackend>(
    x: &TensorData,
    w: &TensorData,
    field: &TensorData,
    geometry: DepthwiseGeometry,
    first: bool,
) -> [Vec<f32>; 3] {
    let device = Default::default();
    let x = Tensor::<B, 4>::from_data(x.clone(), &device).require_grad();
    let w = Tensor::<B, 4>::from_data(w.clone(), &device).require_grad();
    let y = if first {
        B::depthwise_conv2d(x.clone().permute([0, 3, 1, 2]), w.clone(), geometry).permute([0, 2, 3, 1])
    } else {
        B::depthwise_conv2d_nhwc(x.clone(), w.clone(), geometry)
    };
    let grads = (y.clone() * Tensor::from_data(field.clone(), &device)).sum().backward();
    let v = |t: Tensor<B::InnerBackend, 4>| t.into_data().to_vec::<f32>().unwrap();
    [y.into_data().to_vec().unwrap(), v(x.grad(&grads).unwrap()), v(w.grad(&grads).unwrap())]
}

/// Depth-wise convolutions on wgpu, channels-last (MiT's Mix-FFN) and channels-first (the
/// DAFormer head's separable ASPP): Burn's direct convolution kernel run through fusion as one
/// operation (symmetric padding) or the tap windows (one-sided padding), with t2s's backward
/// passes; against the CPU, where both go through the tap windows.
#[test]
fn channels_last_depthwise_matches_cpu() {
    if !wgpu_available() {
        return;
    }
    let d = Default::default();
    let (n, h, w, c) = (2, 9, 14, 12);
    for (kernel, geometry) in [
        ([3, 3], DepthwiseGeometry { padding: [1; 4], dilation: [1, 1] }),
        ([3, 3], DepthwiseGeometry { padding: [2; 4], dilation: [2, 2] }),
        ([3, 3], DepthwiseGeometry { padding: [0; 4], dilation: [1, 1] }),
        ([3, 3], DepthwiseGeometry { padding: [2, 0, 1, 3], dilation: [1, 2] }),
    ] {
        let [oh, ow] = geometry.output_size(h, w, kernel[0], kernel[1]);
        let r = |shape: [usize; 4]| Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.0, 1.0), &d).into_data();
        let (x, wt, field) = (r([n, h, w, c]), r([c, 1, kernel[0], kernel[1]]), r([n, oh, ow, c]));
        let cpu = depthwise_nhwc::<Autodiff<Flex>>(&x, &wt, &field, geometry, false);
        for first in [false, true] {
            let gpu = depthwise_nhwc::<Autodiff<Wgpu>>(&x, &wt, &field, geometry, first);
            assert_close(
                &format!("{geometry:?}, channels-first {first}"),
                &["output", "input gradient", "weight gradient"],
                &cpu,
                &gpu,
                1e-5,
            );
        }
    }
}

/// Output and the gradients of input, weight and bias of MiT's spatial reduction on tokens
/// (`conv_gemm::patchify_tokens`) on backend `B`.
fn patchify<B: T2sAutodiffBackend>(x: &TensorData, hw: [usize; 2], w: &TensorData, b: &TensorData, field: &TensorData) -> [Vec<f32>; 4] {
    let device = Default::default();
    let x = Tensor::<B, 3>::from_data(x.clone(), &device).require_grad();
    let w = Tensor::<B, 4>::from_data(w.clone(), &device).require_grad();
    let b = Tensor::<B, 1>::from_data(b.clone(), &device).require_grad();
    let y = patchify_tokens(x.clone(), hw[0], hw[1], w.clone(), Some(b.clone()));
    let grads = (y.clone() * Tensor::from_data(field.clone(), &device)).sum().backward();
    [
        y.into_data().to_vec().unwrap(),
        x.grad(&grads).unwrap().into_data().to_vec().unwrap(),
        w.grad(&grads).unwrap().into_data().to_vec().unwrap(),
        b.grad(&grads).unwrap().into_data().to_vec().unwrap(),
    ]
}

/// MiT's spatial reduction channels-last (a 2-D product over the tokens' patches) on wgpu equals
/// the CPU's, with a remainder row and column to drop.
#[test]
fn patchify_tokens_match_cpu() {
    if !wgpu_available() {
        return;
    }
    let (n, h, w, c, co, k) = (2, 13, 11, 8, 6, 4);
    let r = |shape: &[usize]| {
        TensorData::new(
            (0..shape.iter().product::<usize>()).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect::<Vec<f32>>(),
            shape.to_vec(),
        )
    };
    let (x, wt, b, field) = (r(&[n, h * w, c]), r(&[co, c, k, k]), r(&[co]), r(&[n, (h / k) * (w / k), co]));
    let cpu = patchify::<Autodiff<Flex>>(&x, [h, w], &wt, &b, &field);
    let gpu = patchify::<Autodiff<Wgpu>>(&x, [h, w], &wt, &b, &field);
    assert_close("patchify tokens", &["output", "input gradient", "weight gradient", "bias gradient"], &cpu, &gpu, 1e-5);
}
