//! The convolution rewrites of `t2s_model::conv` on wgpu (depth-wise as one product over the
//! shifted windows with its own backward pass, dense as one matrix product): forward pass and
//! the gradients of input, weight and bias equal the CPU's, where `conv2d_forward` uses Burn's
//! own convolutions, an independent computation. Skipped without a wgpu adapter unless
//! `T2S_REQUIRE_WGPU` is set (CI installs lavapipe and sets it).
#![cfg(feature = "wgpu")]

use burn::backend::{Autodiff, Flex, Wgpu};
use burn::module::Param;
use burn::tensor::{Distribution, Tensor, TensorData};
use t2s_model::conv::{conv2d_forward, gemm_geometry, uses_conv_rewrites};
use t2s_model::conv_bn::ConvSpec;
use t2s_model::T2sAutodiffBackend;

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
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    if pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY)).is_empty() {
        assert!(std::env::var_os("T2S_REQUIRE_WGPU").is_none(), "no wgpu adapter but T2S_REQUIRE_WGPU is set");
        eprintln!("skipped: no wgpu adapter");
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
        for (name, (a, b)) in ["output", "input gradient", "weight gradient", "bias gradient"].iter().zip(cpu.iter().zip(&gpu)) {
            assert_eq!(a.len(), b.len(), "{what}: {name}");
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(diff <= 1e-5 * scale, "{what}: {name}: wgpu differs from the CPU by {diff} (scale {scale})");
        }
    }
}
