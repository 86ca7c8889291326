//! The depth-wise convolution (t2s_model::depthwise) on wgpu: forward pass and the gradients of
//! input, weight and bias equal the CPU's (where `conv2d_forward` uses Burn's grouped
//! convolution). It guards a wgpu fusion fault met while writing it (a fused sum over all nine
//! weight-column slices of one tensor came out wrong). Skipped without a
//! wgpu adapter unless `T2S_REQUIRE_WGPU` is set (CI installs lavapipe and sets it).
#![cfg(feature = "wgpu")]

use burn::backend::{Autodiff, Flex, Wgpu};
use burn::module::Param;
use burn::tensor::{backend::AutodiffBackend, Distribution, Tensor, TensorData};
use t2s_model::conv_bn::ConvSpec;
use t2s_model::depthwise::{conv2d_forward, uses_shifted_taps};

/// Output, input gradient, weight gradient and bias gradient of a dilated depth-wise 3×3
/// convolution on backend `B`, from the given data.
fn run<B: AutodiffBackend>(x: &TensorData, w: &TensorData, b: &TensorData, field: &TensorData) -> [Vec<f32>; 4] {
    let device = Default::default();
    let mut conv = ConvSpec::new(12, 12, 3).dilated(2).groups(12).bias(true).init::<B>(&device);
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
fn depthwise_forward_and_gradients_match_cpu() {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    if pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY)).is_empty() {
        assert!(std::env::var_os("T2S_REQUIRE_WGPU").is_none(), "no wgpu adapter but T2S_REQUIRE_WGPU is set");
        eprintln!("skipped: no wgpu adapter");
        return;
    }
    let d = Default::default();
    // wgpu computes with the shifted multiply-adds, the CPU with Burn's grouped convolution: the
    // comparison checks the rewrite on wgpu against an independent computation.
    assert!(uses_shifted_taps::<Autodiff<Wgpu>>(&Default::default()), "{}", <Autodiff<Wgpu> as burn::tensor::backend::Backend>::name(&Default::default()));
    assert!(!uses_shifted_taps::<Autodiff<Flex>>(&d));
    let r = |shape: [usize; 4]| Tensor::<Flex, 4>::random(shape, Distribution::Normal(0.0, 1.0), &d).into_data();
    let (x, w, field) = (r([2, 12, 9, 14]), r([12, 1, 3, 3]), r([2, 12, 9, 14]));
    let b = Tensor::<Flex, 1>::random([12], Distribution::Normal(0.0, 1.0), &d).into_data();
    let cpu = run::<Autodiff<Flex>>(&x, &w, &b, &field);
    let gpu = run::<Autodiff<Wgpu>>(&x, &w, &b, &field);
    for (name, (a, b)) in ["output", "input gradient", "weight gradient", "bias gradient"].iter().zip(cpu.iter().zip(&gpu)) {
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(diff <= 1e-5 * scale, "{name}: wgpu differs from the CPU by {diff} (scale {scale})");
    }
}
