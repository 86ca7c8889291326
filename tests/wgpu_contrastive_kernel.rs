//! The fused kernels of the T2S contrastive loss's per-query term
//! (`t2s_model::ops::contrastive_cube`, CubeCL) on wgpu: against the formula evaluated in f64 on
//! the host (per-query losses and the gradient of the queries, on shapes that cross the kernels'
//! block of 64 units, with all-zero query rows: the normalisation's ε clamp), and the whole loss
//! through fusion and autodiff against its tensor-operation form on the CPU.
//!
//! Skipped without a wgpu adapter unless `T2S_REQUIRE_WGPU` is set (CI installs lavapipe and
//! sets it).
#![cfg(feature = "wgpu")]

mod common;

use burn::backend::{Autodiff, Flex, Wgpu};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData, TensorPrimitive};
use burn_wgpu::{CubeBackend, WgpuRuntime};
use common::wgpu_available;
use rand::{Rng, SeedableRng};
use t2s_loss::{t2s_contrastive_loss, t2s_contrastive_loss_tensor_ops};
use t2s_model::ops::contrastive_cube::{contrastive_rows, contrastive_rows_backward};
use t2s_model::{T2sAutodiffBackend, T2sBackend};

type Cube = CubeBackend<WgpuRuntime, f32, i32, u32>;

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
        // Key j of query i, normalised.
        let key = |j: usize| {
            let row = &keys[neg[i * m + j] * d..(neg[i * m + j] + 1) * d];
            let n = row.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            row.iter().map(|x| x / n).collect::<Vec<f64>>()
        };
        let mut s = vec![dot(&p[i * d..(i + 1) * d])];
        s.extend((0..m).map(|j| dot(&key(j))));
        let max = s.iter().cloned().fold(f64::MIN, f64::max);
        let lse = max + s.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        rows[i] = lse - s[0];
        let pi: Vec<f64> = s.iter().map(|v| (v - lse).exp()).collect();
        let mut dqh: Vec<f64> = (0..d).map(|k| (pi[0] - 1.0) * p[i * d + k] / tau).collect();
        for j in 0..m {
            for (x, kv) in dqh.iter_mut().zip(key(j)) {
                *x += pi[j + 1] * kv / tau;
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
        // Keys of any length: the kernel normalises them as it reads them.
        let mut keys = unit_rows(&mut rng, k, d);
        for row in keys.chunks_mut(d) {
            let s = rng.random_range(0.2..3.0);
            row.iter_mut().for_each(|x| *x *= s);
        }
        let neg: Vec<usize> = (0..nq * m).map(|_| rng.random_range(0..k)).collect();
        let g: Vec<f64> = (0..nq).map(|_| rng.random_range(0.1..2.0)).collect();
        let (want_rows, want_grad) = reference(&q, &p, &keys, &neg, &g, d, m, tau);

        let negatives =
            Tensor::<Cube, 2, Int>::from_data(TensorData::new(neg.iter().map(|&i| i as i32).collect::<Vec<_>>(), [nq, m]), &device)
                .into_primitive();
        let inputs = (float(&q, [nq, d]), float(&p, [nq, d]), float(&keys, [k, d]), negatives);
        let [rows, lse, norms, logits, key_norms] =
            contrastive_rows(inputs.0.clone(), inputs.1.clone(), inputs.2.clone(), inputs.3.clone(), (1.0 / tau) as f32);
        let upstream = Tensor::<Cube, 1>::from_data(TensorData::new(g.iter().map(|&x| x as f32).collect::<Vec<_>>(), [nq]), &device)
            .into_primitive()
            .tensor();
        let grad = contrastive_rows_backward(
            inputs.0,
            inputs.1,
            inputs.2,
            inputs.3,
            [lse, norms, logits, key_norms],
            upstream,
            (1.0 / tau) as f32,
        );
        let (rows, grad) = (read(rows), read2(grad));
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

/// One loss evaluation's inputs.
struct Case {
    nq: usize,
    d: usize,
    c: usize,
    k: usize,
    m: usize,
    queries: Vec<f32>,
    classes: Vec<i64>,
    prototypes: Vec<f32>,
    keys: Vec<f32>,
    negatives: Vec<i64>,
    weights: Vec<f32>,
}

impl Case {
    fn random(rng: &mut impl Rng, nq: usize, d: usize, c: usize, k: usize, m: usize) -> Self {
        let mut normal = |n: usize| (0..n).map(|_| rng.random_range(-1.5f32..1.5)).collect::<Vec<_>>();
        let (queries, prototypes, keys) = (normal(nq * d), normal(c * d), normal(k * d));
        Case {
            nq,
            d,
            c,
            k,
            m,
            queries,
            classes: (0..nq).map(|_| rng.random_range(0..c as i64)).collect(),
            prototypes,
            keys,
            negatives: (0..nq * m).map(|_| rng.random_range(0..k as i64)).collect(),
            weights: (0..c).map(|_| rng.random_range(0.1f32..3.0)).collect(),
        }
    }

    /// The loss and the query gradient on backend `B`, fused where `B` has the kernels or as
    /// tensor operations.
    fn run<B: T2sAutodiffBackend>(&self, fused: bool) -> (f32, Vec<f32>) {
        let device = Default::default();
        let f2 = |v: &[f32], shape: [usize; 2]| Tensor::<B, 2>::from_data(TensorData::new(v.to_vec(), shape), &device);
        let q = f2(&self.queries, [self.nq, self.d]).require_grad();
        let loss = if fused { t2s_contrastive_loss } else { t2s_contrastive_loss_tensor_ops };
        let loss = loss(
            q.clone(),
            Tensor::from_data(TensorData::new(self.classes.clone(), [self.nq]), &device),
            f2(&self.prototypes, [self.c, self.d]),
            f2(&self.keys, [self.k, self.d]),
            Tensor::from_data(TensorData::new(self.negatives.clone(), [self.nq, self.m]), &device),
            Tensor::from_data(TensorData::new(self.weights.clone(), [self.c]), &device),
            0.2,
        );
        let grads = loss.backward();
        let g = q.grad(&grads).map(|g| g.into_data().to_vec::<f32>().unwrap()).unwrap_or_else(|| vec![0.0; self.nq * self.d]);
        (loss.into_scalar().elem::<f32>(), g)
    }
}

/// `t2s_contrastive_loss` on wgpu (the fused kernels, through fusion and autodiff) against the
/// tensor-operation form on the CPU: loss and query gradient to 1e-5 of their size, on shapes
/// around the kernels' 64-unit block, with a class of weight 0, an all-zero query row and a
/// single present class (loss 0, gradient 0).
#[test]
fn the_fused_loss_equals_the_tensor_operations() {
    if !wgpu_available() {
        return;
    }
    const { assert!(Autodiff::<Wgpu>::FUSED_CONTRASTIVE && !Autodiff::<Flex>::FUSED_CONTRASTIVE) };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut cases = vec![
        Case::random(&mut rng, 70, 20, 5, 50, 5),
        Case::random(&mut rng, 9, 130, 3, 200, 70),
        Case::random(&mut rng, 64, 64, 19, 64, 64),
    ];
    cases[0].weights[1] = 0.0;
    let zero = &mut cases[1];
    zero.queries[..zero.d].iter_mut().for_each(|x| *x = 0.0);
    let mut single = Case::random(&mut rng, 12, 16, 4, 30, 6);
    single.classes.iter_mut().for_each(|c| *c = 2);
    cases.push(single);
    for (i, case) in cases.iter().enumerate() {
        let (cpu_loss, cpu_grad) = case.run::<Autodiff<Flex>>(true);
        let (gpu_loss, gpu_grad) = case.run::<Autodiff<Wgpu>>(true);
        let (ops_loss, _) = case.run::<Autodiff<Wgpu>>(false);
        assert!((gpu_loss - cpu_loss).abs() <= 1e-5 * cpu_loss.abs().max(1.0), "case {i}: fused {gpu_loss} vs CPU {cpu_loss}");
        assert!((ops_loss - cpu_loss).abs() <= 1e-5 * cpu_loss.abs().max(1.0), "case {i}: tensor ops {ops_loss} vs CPU {cpu_loss}");
        for (r, (got, want)) in gpu_grad.chunks(case.d).zip(cpu_grad.chunks(case.d)).enumerate() {
            let scale = want.iter().fold(0f32, |s, v| s.max(v.abs()));
            for (a, b) in got.iter().zip(want) {
                assert!((a - b).abs() <= 1e-5 * scale.max(1e-30), "case {i}, ∂q row {r}: fused {a} vs CPU {b} (scale {scale})");
            }
        }
        if i == 3 {
            assert!(gpu_loss == 0.0 && gpu_grad.iter().all(|&g| g == 0.0), "a single class: loss {gpu_loss}");
        }
    }
}
