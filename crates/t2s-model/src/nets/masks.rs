//! Where the training masks (stochastic depth, channel dropout) draw their randomness.
//!
//! By default from the backend's generator, which `Backend::seed` re-seeds every iteration. That
//! generator is one per process on every Burn 0.21 backend (Flex, CubeCL), so data-parallel
//! replicas running as threads of one process would take their draws from it in whatever order
//! their threads reach it. A replica thread therefore installs a generator of its own
//! ([`seed_thread_masks`]), seeded from (seed, iteration, rank), and the masks are drawn on the
//! host from it and uploaded: the same draws whatever the threads' timing.

use std::cell::RefCell;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Distribution, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

thread_local! {
    static THREAD_MASKS: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Makes this thread draw its training masks from its own generator seeded with `seed` (`Some`),
/// or from the backend's again (`None`).
pub fn seed_thread_masks(seed: Option<u64>) {
    THREAD_MASKS.with(|m| *m.borrow_mut() = seed.map(StdRng::seed_from_u64));
}

/// A `shape` mask of Bernoulli(`keep`) draws (1 kept, 0 dropped) in `dtype`, from this thread's
/// generator when it has one ([`seed_thread_masks`]), else from the backend's.
pub fn bernoulli_mask<B: Backend, const D: usize>(shape: [usize; D], keep: f64, device: &B::Device, dtype: DType) -> Tensor<B, D> {
    let host = THREAD_MASKS.with(|m| {
        m.borrow_mut()
            .as_mut()
            .map(|rng| (0..shape.iter().product::<usize>()).map(|_| f32::from(rng.random_bool(keep.clamp(0.0, 1.0)))).collect::<Vec<f32>>())
    });
    match host {
        Some(values) => Tensor::<B, D>::from_data(TensorData::new(values, shape), device).cast(dtype),
        None => Tensor::<B, D>::random(shape, Distribution::Bernoulli(keep), (device, dtype)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn draw(keep: f64) -> Vec<f32> {
        bernoulli_mask::<Flex, 2>([64, 8], keep, &Default::default(), DType::F32).into_data().to_vec().unwrap()
    }

    #[test]
    fn a_seeded_thread_draws_the_same_masks_whatever_other_threads_do() {
        let on_a_thread = |seed| {
            std::thread::spawn(move || {
                seed_thread_masks(Some(seed));
                let masks = (draw(0.7), draw(0.7));
                seed_thread_masks(None);
                masks
            })
        };
        // Other threads drawing from the backend's generator meanwhile change nothing.
        let noise: Vec<_> = (0..3).map(|_| std::thread::spawn(|| (0..20).map(|_| draw(0.5)).count())).collect();
        let (a, b) = (on_a_thread(11), on_a_thread(11));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        noise.into_iter().for_each(|t| drop(t.join()));
        assert_eq!(a, b);
        assert_ne!(a.0, a.1, "consecutive masks differ");
        assert_ne!(a, on_a_thread(12).join().unwrap());
        // Only zeros and ones, about `keep` of them ones: 1024 draws, 0.7 ± 5 standard deviations.
        let ones = a.0.iter().chain(&a.1).filter(|&&v| v == 1.0).count();
        assert!(a.0.iter().all(|&v| v == 0.0 || v == 1.0));
        assert!((ones as f64 / 1024.0 - 0.7).abs() < 5.0 * (0.7f64 * 0.3 / 1024.0).sqrt(), "{ones} ones");
    }
}
