//! The fused kernels of the T2S contrastive loss's per-query term
//! (`t2s_model::ops::contrastive_cube`, CubeCL) on wgpu, against the formula evaluated in f64 on
//! the host: per-query losses and the gradient of the queries, on shapes that cross the kernels'
//! block of 64 units (D and M below and above it, a row count that is not a multiple), with
//! all-zero query rows (the normalisation's ε clamp).
//!
//! Skipped without a wgpu adapter unless `T2S_REQUIRE_WGPU` is set (CI installs lavapipe and
//! sets it).
#![cfg(feature = "wgpu")]

use burn::tensor::{Int, Tensor, TensorData, TensorPrimitive};
use burn_wgpu::{CubeBackend, WgpuRuntime};
use rand::{Rng, SeedableRng};
use t2s_model::ops::contrastive_cube::{contrastive_rows, contrastive_rows_backward};

type Cube = CubeBackend<WgpuRuntime, f32, i32, u32>;

fn wgpu_available() -> bool {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    if pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY)).is_empty() {
        assert!(std::env::var_os("T2S_REQUIRE_WGPU").is_none(), "no wgpu adapter but T2S_REQUIRE_WGPU is set");
        eprintln!("skipped: no wgpu adapter");
        return false;
    }
    true
}

/// Rows of `d` values, each scaled to unit length.
fn unit_rows(rng: &mut impl Rng, n: usize, d: usize) -> Vec<f64> {
    let mut v: Vec<f64> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    for row in v.chunks_mut(d) {
        let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// ℓ_i and ∂(Σ g_i ℓ_i)/∂q_i in f64, straight from the definition (crate docs).
#[allow(clippy::too_many_arguments)]
fn reference(q: &[f64], p: &[f64], keys: &[f64], neg: &[usize], g: &[f64], d: usize, m: usize, tau: f64) -> (Vec<f64>, Vec<f64>) {
    let nq = q.len() / d;
    let (mut rows, mut grad) = (vec![0.0; nq], vec![0.0; nq * d]);
    for i in 0..nq {
        let qi = &q[i * d..(i + 1) * d];
        let norm = qi.iter().map(|x| x * x).sum::<f64>().sqrt();
        let denom = norm.max(1e-12);
        let qh: Vec<f64> = qi.iter().map(|x| x / denom).collect();
        let dot = |v: &[f64]| qh.iter().zip(v).map(|(a, b)| a * b).sum::<f64>() / tau;
        let mut s = vec![dot(&p[i * d..(i + 1) * d])];
        s.extend((0..m).map(|j| dot(&keys[neg[i * m + j] * d..(neg[i * m + j] + 1) * d])));
        let max = s.iter().cloned().fold(f64::MIN, f64::max);
        let lse = max + s.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        rows[i] = lse - s[0];
        let pi: Vec<f64> = s.iter().map(|v| (v - lse).exp()).collect();
        let mut dqh: Vec<f64> = (0..d).map(|k| (pi[0] - 1.0) * p[i * d + k] / tau).collect();
        for j in 0..m {
            for (k, x) in dqh.iter_mut().enumerate() {
                *x += pi[j + 1] * keys[neg[i * m + j] * d + k] / tau;
            }
        }
        let proj: f64 = qh.iter().zip(&dqh).map(|(a, b)| a * b).sum();
        for k in 0..d {
            grad[i * d + k] = if norm < 1e-12 { g[i] * dqh[k] / 1e-12 } else { g[i] * (dqh[k] - qh[k] * proj) / norm };
        }
    }
    (rows, grad)
}

#[test]
fn fused_contrastive_rows_match_the_formula() {
    if !wgpu_available() {
        return;
    }
    let device = Default::default();
    let float = |v: &[f64], shape: [usize; 2]| {
        let data = TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), shape);
        Tensor::<Cube, 2>::from_data(data, &device).into_primitive().tensor()
    };
    let read = |t| Tensor::<Cube, 1>::from_primitive(TensorPrimitive::Float(t)).into_data().to_vec::<f32>().unwrap();
    let read2 = |t| Tensor::<Cube, 2>::from_primitive(TensorPrimitive::Float(t)).into_data().to_vec::<f32>().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    // (queries, D, negatives M, keys K): below and above the 64-unit block in D and M.
    for (nq, d, m, k) in [(70, 20, 5, 30), (9, 130, 70, 200), (1, 64, 64, 64)] {
        let tau = 0.2;
        let mut q: Vec<f64> = (0..nq * d).map(|_| rng.random_range(-2.0..2.0)).collect();
        // An all-zero query (ε clamp) where there is more than one.
        if nq > 1 {
            q[d..2 * d].iter_mut().for_each(|x| *x = 0.0);
        }
        let p = unit_rows(&mut rng, nq, d);
        let keys = unit_rows(&mut rng, k, d);
        let neg: Vec<usize> = (0..nq * m).map(|_| rng.random_range(0..k)).collect();
        let g: Vec<f64> = (0..nq).map(|_| rng.random_range(0.1..2.0)).collect();
        let (want_rows, want_grad) = reference(&q, &p, &keys, &neg, &g, d, m, tau);

        let negatives =
            Tensor::<Cube, 2, Int>::from_data(TensorData::new(neg.iter().map(|&i| i as i32).collect::<Vec<_>>(), [nq, m]), &device)
                .into_primitive();
        let inputs = (float(&q, [nq, d]), float(&p, [nq, d]), float(&keys, [k, d]), negatives);
        let saved = contrastive_rows(inputs.0.clone(), inputs.1.clone(), inputs.2.clone(), inputs.3.clone(), (1.0 / tau) as f32);
        let upstream = Tensor::<Cube, 1>::from_data(TensorData::new(g.iter().map(|&x| x as f32).collect::<Vec<_>>(), [nq]), &device)
            .into_primitive()
            .tensor();
        let grad = contrastive_rows_backward(inputs.0, inputs.1, inputs.2, inputs.3, &saved, upstream, (1.0 / tau) as f32);
        let (rows, grad) = (read(saved.rows), read2(grad));
        for (i, (a, b)) in rows.iter().zip(&want_rows).enumerate() {
            assert!((*a as f64 - b).abs() <= 1e-5 * b.abs().max(1.0), "shape {nq}×{d}, M {m}: ℓ[{i}] {a} vs {b}");
        }
        // Per query row (the all-zero row's gradient is 1/ε times larger).
        for (r, (got, want)) in grad.chunks(d).zip(want_grad.chunks(d)).enumerate() {
            let scale = want.iter().fold(0f64, |s, v| s.max(v.abs()));
            for (a, b) in got.iter().zip(want) {
                assert!((*a as f64 - b).abs() <= 1e-5 * scale, "shape {nq}×{d}, M {m}: ∂q row {r}: {a} vs {b} (scale {scale})");
            }
        }
    }
}
