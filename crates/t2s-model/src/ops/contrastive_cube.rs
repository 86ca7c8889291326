//! The per-query part of the T2S contrastive loss as two CubeCL kernels (CUDA, wgpu), forward
//! and backward, one cube per query (issue 24; docs/benchmarks.md).
//!
//! For query row i with negatives n_i1 … n_iM:
//!
//! ```text
//! q̂_i  = q_i / max(‖q_i‖, ε), k̂ = k / max(‖k‖, ε)  (F.normalize, ε = 1e-12)
//! s_i0 = q̂_i·p_i / τ,  s_ij = q̂_i·k̂_{n_ij} / τ      (p_i: normalised already)
//! ℓ_i  = logsumexp(s_i0 … s_iM) − s_i0
//! ```
//!
//! and, for an upstream gradient g_i of ℓ_i, with π_ij = exp(s_ij − lse_i):
//!
//! ```text
//! ∂ℓ_i/∂q̂_i = ((π_i0 − 1)·p_i + Σ_j π_ij·k̂_{n_ij}) / τ
//! ∂ℓ_i/∂q_i = g_i·(∂q̂ − q̂ (q̂·∂q̂)) / ‖q_i‖          (‖q_i‖ ≥ ε; below, g_i·∂q̂ / ε)
//! ```
//!
//! The tensor-operation form takes a dozen launches each way (norms, gathers, the batched product,
//! max, exp, sums, and their gradients); these are one each. The keys are normalised as they are
//! read (the norm of a gathered row costs nothing beside its dot product), which saves a pass
//! over the whole bank (60,000 × 256) and a copy of it. Positives and keys carry no gradient:
//! they are the EMA teacher's prototypes and key bank.

use burn::tensor::{Shape, TensorMetadata};
use burn_cubecl::cubecl;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

/// ε of the L2 normalisation, as PyTorch's `F.normalize`.
const NORM_EPS: f32 = 1e-12;

/// Units per cube: a power of two (the tree reductions halve it).
const BLOCK: u32 = 64;

/// Sums `shared[0..CUBE_DIM_X]` into `shared[0]` (a power-of-two cube); every unit of the cube
/// must call it.
#[cube]
fn block_sum<F: Float>(shared: &mut SharedMemory<F>, unit: usize) {
    let mut s = CUBE_DIM_X as usize / 2;
    while s > 0 {
        if unit < s {
            let v = shared[unit] + shared[unit + s];
            shared[unit] = v;
        }
        sync_cube();
        s /= 2;
    }
}

/// Maximum of `shared[0..CUBE_DIM_X]` into `shared[0]`; every unit of the cube must call it.
#[cube]
fn block_max<F: Float>(shared: &mut SharedMemory<F>, unit: usize) {
    let mut s = CUBE_DIM_X as usize / 2;
    while s > 0 {
        if unit < s {
            let v = F::max(shared[unit], shared[unit + s]);
            shared[unit] = v;
        }
        sync_cube();
        s /= 2;
    }
}

/// Forward: one cube per query; the units share the norm's sum over D, then each scores the
/// logits j = unit, unit + BLOCK, … (the positive is logit 0) and writes them, then the cube
/// reduces their maximum and exponential sum.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn contrastive_rows_kernel<F: Float, I: Numeric>(
    queries: &Tensor<F>,       // [Nq, D]
    positives: &Tensor<F>,     // [Nq, D]
    keys: &Tensor<F>,          // [K, D]
    negatives: &Tensor<I>,     // [Nq, M]
    rows: &mut Tensor<F>,      // [Nq] ℓ
    lse: &mut Tensor<F>,       // [Nq]
    norms: &mut Tensor<F>,     // [Nq] ‖q‖ (unclamped)
    logits: &mut Tensor<F>,    // [Nq, M + 1]
    key_norms: &mut Tensor<F>, // [Nq, M] max(‖k‖, ε) of each gathered key
    inv_tau: f32,
    #[comptime] block: u32,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let i = CUBE_POS_X as usize;
    let unit = UNIT_POS_X as usize;
    let step = block as usize;
    let d = queries.shape(1);
    let m = negatives.shape(1);
    let mut shared = SharedMemory::<F>::new(block as usize);

    let mut acc = F::new(0.0);
    let mut k = unit;
    while k < d {
        let v = queries[i * d + k];
        acc += v * v;
        k += step;
    }
    shared[unit] = acc;
    sync_cube();
    block_sum::<F>(&mut shared, unit);
    let norm = F::sqrt(shared[0]);
    sync_cube();
    let scale = F::cast_from(inv_tau) / F::max(norm, F::new(NORM_EPS));

    // Each unit's logits; their maximum.
    let mut local_max = F::min_value();
    let mut j = unit;
    while j <= m {
        let mut dot = F::new(0.0);
        if j == 0 {
            for k in 0..d {
                dot += queries[i * d + k] * positives[i * d + k];
            }
        } else {
            let row = u32::cast_from(negatives[i * m + j - 1]) as usize;
            let mut sq = F::new(0.0);
            for k in 0..d {
                let key = keys[row * d + k];
                dot += queries[i * d + k] * key;
                sq += key * key;
            }
            let key_norm = F::max(F::sqrt(sq), F::new(NORM_EPS));
            key_norms[i * m + j - 1] = key_norm;
            dot /= key_norm;
        }
        let s = dot * scale;
        logits[i * (m + 1) + j] = s;
        local_max = F::max(local_max, s);
        j += step;
    }
    shared[unit] = local_max;
    sync_cube();
    block_max::<F>(&mut shared, unit);
    let max = shared[0];
    sync_cube();

    let mut sum = F::new(0.0);
    let mut j = unit;
    while j <= m {
        sum += F::exp(logits[i * (m + 1) + j] - max);
        j += step;
    }
    shared[unit] = sum;
    sync_cube();
    block_sum::<F>(&mut shared, unit);
    if unit == 0 {
        let l = max + F::ln(shared[0]);
        lse[i] = l;
        rows[i] = l - logits[i * (m + 1)];
        norms[i] = norm;
    }
}

/// Backward: one cube per query; each unit builds ∂ℓ/∂q̂ for the components k = unit,
/// unit + BLOCK, … (written into `grad` first), the cube reduces q̂·∂q̂, and each unit projects
/// its components.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn contrastive_rows_backward_kernel<F: Float, I: Numeric>(
    queries: &Tensor<F>,   // [Nq, D]
    positives: &Tensor<F>, // [Nq, D]
    keys: &Tensor<F>,      // [K, D]
    negatives: &Tensor<I>, // [Nq, M]
    logits: &Tensor<F>,    // [Nq, M + 1]
    key_norms: &Tensor<F>, // [Nq, M]
    lse: &Tensor<F>,       // [Nq]
    norms: &Tensor<F>,     // [Nq]
    upstream: &Tensor<F>,  // [Nq]
    grad: &mut Tensor<F>,  // [Nq, D]
    inv_tau: f32,
    #[comptime] block: u32,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let i = CUBE_POS_X as usize;
    let unit = UNIT_POS_X as usize;
    let step = block as usize;
    let d = queries.shape(1);
    let m = negatives.shape(1);
    let mut shared = SharedMemory::<F>::new(block as usize);
    let l = lse[i];
    let tau_inv = F::cast_from(inv_tau);
    let norm = norms[i];
    let clamped = norm < F::new(NORM_EPS);
    let denom = F::max(norm, F::new(NORM_EPS));

    let p0 = F::exp(logits[i * (m + 1)] - l) - F::new(1.0);
    let mut dot = F::new(0.0);
    let mut k = unit;
    while k < d {
        let mut acc = p0 * positives[i * d + k];
        for j in 0..m {
            let row = u32::cast_from(negatives[i * m + j]) as usize;
            acc += F::exp(logits[i * (m + 1) + j + 1] - l) * keys[row * d + k] / key_norms[i * m + j];
        }
        let g = acc * tau_inv;
        grad[i * d + k] = g;
        dot += g * queries[i * d + k] / denom;
        k += step;
    }
    shared[unit] = dot;
    sync_cube();
    block_sum::<F>(&mut shared, unit);
    let proj = shared[0];
    let up = upstream[i];
    let mut k = unit;
    while k < d {
        let g = grad[i * d + k];
        if clamped {
            grad[i * d + k] = up * g / denom;
        } else {
            grad[i * d + k] = up * (g - queries[i * d + k] / denom * proj) / denom;
        }
        k += step;
    }
}

/// The forward kernel on `queries [Nq, D]`, `positives [Nq, D]` (normalised), `keys [K, D]` (not
/// normalised) and `negatives [Nq, M]` (row indices into `keys`), at `1/τ = inv_tau`. All float
/// inputs must have one dtype. Returns ℓ per query `[Nq]`, each query's log-sum-exp `[Nq]`, its
/// norm `[Nq]` (before the clamp at ε), its scaled logits `[Nq, M + 1]` (the positive first) and
/// the clamped norms of its gathered keys `[Nq, M]`.
pub fn contrastive_rows<R: CubeRuntime>(
    queries: CubeTensor<R>,
    positives: CubeTensor<R>,
    keys: CubeTensor<R>,
    negatives: CubeTensor<R>,
    inv_tau: f32,
) -> [CubeTensor<R>; 5] {
    let (queries, positives, keys, negatives) =
        (into_contiguous(queries), into_contiguous(positives), into_contiguous(keys), into_contiguous(negatives));
    let [nq, _] = queries.shape().dims::<2>();
    let [_, m] = negatives.shape().dims::<2>();
    let (client, device, dtype, itype) = (queries.client.clone(), queries.device.clone(), queries.dtype, negatives.dtype);
    let alloc = |shape: Vec<usize>| empty_device_contiguous_dtype::<R>(client.clone(), device.clone(), Shape::from(shape), dtype);
    let out = [alloc(vec![nq]), alloc(vec![nq]), alloc(vec![nq]), alloc(vec![nq, m + 1]), alloc(vec![nq, m])];
    if nq == 0 {
        return out;
    }
    contrastive_rows_kernel::launch::<R>(
        &client,
        CubeCount::Static(nq as u32, 1, 1),
        CubeDim::new_1d(BLOCK),
        queries.into_tensor_arg(),
        positives.into_tensor_arg(),
        keys.into_tensor_arg(),
        negatives.into_tensor_arg(),
        out[0].clone().into_tensor_arg(),
        out[1].clone().into_tensor_arg(),
        out[2].clone().into_tensor_arg(),
        out[3].clone().into_tensor_arg(),
        out[4].clone().into_tensor_arg(),
        inv_tau,
        BLOCK,
        [dtype.into(), itype.into()],
    );
    out
}

/// The backward kernel: the gradient `[Nq, D]` of `Σ_i upstream_i·ℓ_i` with respect to the
/// queries, from the forward pass's `[lse, norms, logits, key_norms]`.
#[allow(clippy::too_many_arguments)]
pub fn contrastive_rows_backward<R: CubeRuntime>(
    queries: CubeTensor<R>,
    positives: CubeTensor<R>,
    keys: CubeTensor<R>,
    negatives: CubeTensor<R>,
    [lse, norms, logits, key_norms]: [CubeTensor<R>; 4],
    upstream: CubeTensor<R>,
    inv_tau: f32,
) -> CubeTensor<R> {
    let (queries, positives, keys, negatives, upstream) = (
        into_contiguous(queries),
        into_contiguous(positives),
        into_contiguous(keys),
        into_contiguous(negatives),
        into_contiguous(upstream),
    );
    let [nq, d] = queries.shape().dims::<2>();
    let (client, device, dtype, itype) = (queries.client.clone(), queries.device.clone(), queries.dtype, negatives.dtype);
    let grad = empty_device_contiguous_dtype::<R>(client.clone(), device, Shape::new([nq, d]), dtype);
    if nq == 0 {
        return grad;
    }
    contrastive_rows_backward_kernel::launch::<R>(
        &client,
        CubeCount::Static(nq as u32, 1, 1),
        CubeDim::new_1d(BLOCK),
        queries.into_tensor_arg(),
        positives.into_tensor_arg(),
        keys.into_tensor_arg(),
        negatives.into_tensor_arg(),
        into_contiguous(logits).into_tensor_arg(),
        into_contiguous(key_norms).into_tensor_arg(),
        into_contiguous(lse).into_tensor_arg(),
        into_contiguous(norms).into_tensor_arg(),
        upstream.into_tensor_arg(),
        grad.clone().into_tensor_arg(),
        inv_tau,
        BLOCK,
        [dtype.into(), itype.into()],
    );
    grad
}
