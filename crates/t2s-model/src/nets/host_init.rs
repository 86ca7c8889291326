//! Initial weights that depend on the seed only, not on the backend or on the order in which
//! parameters are first used: every random parameter is drawn on the host from its own ChaCha8
//! stream (seed, parameter number), lazily. So a run starts from the same network on the CPU,
//! wgpu and CUDA, and every clone of a lazy parameter draws the same values (Burn's own
//! initialisers draw from the backend's generator, once per clone).

use std::cell::Cell;

use burn::module::{Param, ParamId};
use burn::tensor::{backend::Backend, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Distribution;

use crate::error::Result;
use crate::nets::segmentor::{Segmentor, SegmentorConfig};

thread_local! {
    /// The seed of the network being built on this thread, and the stream of its next random
    /// parameter. Plain [`SegmentorConfig::init`] continues seed 0's streams (so two networks
    /// built in a row differ); [`SegmentorConfig::init_seeded`] starts at stream 0 of its seed.
    static DRAWS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The distribution of a randomly initialised parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Draw {
    /// Uniform in `[−bound, bound)`.
    Uniform(f64),
    /// Normal with mean 0 and this standard deviation.
    Normal(f64),
}

impl Draw {
    /// PyTorch's default for `nn.Conv2d` and `nn.Linear` weights and biases (Kaiming-uniform with
    /// a = √5, which is Burn's default too): uniform in ±1/√fan_in.
    pub(crate) fn torch_default(fan_in: usize) -> Self {
        Draw::Uniform(1.0 / (fan_in.max(1) as f64).sqrt())
    }
}

/// A lazily drawn parameter of `shape` on `device`: the next stream of this thread's seed.
pub(crate) fn drawn<B: Backend, const D: usize>(shape: [usize; D], draw: Draw, device: &B::Device) -> Param<Tensor<B, D>> {
    let (seed, stream) = DRAWS.with(|d| {
        let (seed, stream) = d.get();
        d.set((seed, stream + 1));
        (seed, stream)
    });
    let init = move |device: &B::Device, require_grad: bool| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        let n = shape.iter().product();
        let values: Vec<f32> = match draw {
            Draw::Uniform(bound) => {
                let bound = bound as f32;
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            }
            Draw::Normal(std) => {
                let normal = rand_distr::Normal::new(0.0f64, std).expect("a finite standard deviation");
                (0..n).map(|_| normal.sample(&mut rng) as f32).collect()
            }
        };
        let tensor = Tensor::from_data(TensorData::new(values, shape), device);
        if require_grad {
            tensor.require_grad()
        } else {
            tensor
        }
    };
    Param::uninitialized(ParamId::new(), init, device.clone(), true, shape.into())
}

impl SegmentorConfig {
    /// Builds the network with fresh (PyTorch-style) initialisation whose values depend on
    /// `seed` alone: the same on every backend and every time.
    pub fn init_seeded<B: Backend>(&self, seed: u64, device: &B::Device) -> Result<Segmentor<B>> {
        let outer = DRAWS.with(|d| d.replace((seed, 0)));
        let net = self.init::<B>(device);
        DRAWS.with(|d| d.set(outer));
        net
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Module;

    /// Every float parameter of a network, flattened in module order.
    fn values<B: Backend, M: Module<B>>(net: &M) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl<B: Backend> burn::module::ModuleVisitor<B> for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                self.0.extend(param.val().into_data().convert::<f32>().iter::<f32>());
            }
        }
        let mut c = Collect(Vec::new());
        net.visit(&mut c);
        c.0
    }

    #[test]
    fn the_seed_alone_fixes_the_initial_network() {
        let device = Default::default();
        let mut cfg = SegmentorConfig::preset("daformer-mitb0").unwrap();
        cfg.num_classes = 5;
        let a = cfg.init_seeded::<Flex>(3, &device).unwrap();
        // Other networks and the backend's generator in between do not matter: the seed does.
        let _ = cfg.init::<Flex>(&device).unwrap();
        let _ = Tensor::<Flex, 1>::random([1000], burn::tensor::Distribution::Default, &device);
        let b = cfg.init_seeded::<Autodiff<Flex>>(3, &device).unwrap();
        let c = cfg.init_seeded::<Flex>(4, &device).unwrap();
        // A clone of an undrawn network draws the same values.
        let a2 = a.clone();
        let (va, vb, vc, va2) = (values(&a), values(&b), values(&c), values(&a2));
        let same = |x: &[f32], y: &[f32]| x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
        let first_diff = |x: &[f32], y: &[f32]| x.iter().zip(y).position(|(p, q)| p != q);
        assert!(
            same(&va, &vb),
            "the same seed on another backend type: {} vs {} values, first difference at {:?}",
            va.len(),
            vb.len(),
            first_diff(&va, &vb)
        );
        assert!(same(&va, &va2), "a clone: first difference at {:?}", first_diff(&va, &va2));
        assert!(!same(&va, &vc), "another seed");
    }

    #[test]
    fn draws_follow_their_distributions() {
        let device = Default::default();
        let n = 200_000;
        let stats = |draw| {
            let p = drawn::<Flex, 1>([n], draw, &device);
            let v: Vec<f64> = p.val().into_data().iter::<f32>().map(f64::from).collect();
            let mean = v.iter().sum::<f64>() / n as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            (mean, var.sqrt(), v.iter().fold(0f64, |m, x| m.max(x.abs())))
        };
        // Uniform(±b): mean 0, standard deviation b/√3, never beyond b.
        let (mean, std, max) = stats(Draw::torch_default(64));
        assert!(mean.abs() < 1e-3 && (std - 0.125 / 3f64.sqrt()).abs() < 1e-3 && max <= 0.125, "{mean} {std} {max}");
        let (mean, std, _) = stats(Draw::Normal(0.02));
        assert!(mean.abs() < 2e-4 && (std - 0.02).abs() < 2e-4, "{mean} {std}");
    }
}
