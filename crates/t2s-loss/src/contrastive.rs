//! The T2S-DA contrastive loss (method.md §4.8): pull each pseudo-target query towards the
//! source prototype of its class, push it away from its sampled negative keys, average per
//! class and combine the classes with the dynamic class weights.

use burn::tensor::{backend::Backend, Int, Tensor};
use t2s_model::T2sBackend;

/// Largest gathered negative block `[rows·M, D]`, in floats (64 MiB of f32), computed in one
/// piece; larger query sets are processed in chunks of rows. Lowered in tests to exercise it.
#[cfg(not(test))]
const MAX_GATHER_ELEMS: usize = 16 << 20;
#[cfg(test)]
const MAX_GATHER_ELEMS: usize = 64;

/// ε of the L2 normalisation, as in PyTorch's `F.normalize` (vectors are divided by
/// `max(‖x‖, ε)`).
const NORMALIZE_EPS: f64 = 1e-12;

/// T2S contrastive loss of `queries` against class `prototypes` and sampled negative `keys`.
///
/// Shapes (`Nq` queries, `D` embedding channels, `C` classes, `K` keys, `M` negatives per
/// query):
///
/// * `queries` `[Nq, D]`: student embeddings of pseudo-target pixels; the **only** input the
///   gradient flows to;
/// * `query_classes` `[Nq]`: class of each query, in `0..C`;
/// * `prototypes` `[C, D]`: source class prototypes (detached here);
/// * `keys` `[K, D]`: the key bank, source and target keys together (detached here);
/// * `negatives` `[Nq, M]`: for each query, indices into `keys` of its `M` negatives;
/// * `class_weights` `[C]`: non-negative dynamic class weights `w_c` (detached here);
/// * `temperature`: `τ > 0` (default 0.2 in the training config).
///
/// Queries, prototypes and keys are L2-normalised along `D` (dividing by `max(‖x‖, 1e-12)`,
/// as PyTorch's `F.normalize`). For a query `q` of class `c` with negatives `k_1 … k_M`:
///
/// ```text
/// ℓ(q) = −log( exp(q·P_c/τ) / (exp(q·P_c/τ) + Σ_j exp(q·k_j/τ)) )
///      = logsumexp(q·P_c/τ, q·k_1/τ, …, q·k_M/τ) − q·P_c/τ
/// L_c  = mean of ℓ over the queries of class c
/// L    = Σ_{c present} w_c·L_c / Σ_{c present} w_c
/// ```
///
/// computed as a log-sum-exp over the `M + 1` logits with the (detached) per-query maximum
/// subtracted, so any `τ` is safe (`1/τ = 100` would overflow a naive f32 `exp`). A class is
/// *present* when at least one query has it; absent classes' weights are masked out (so even a
/// NaN or infinite weight there cannot leak in). If the present classes' weights sum to 0 the
/// loss is 0. With `M = 0` every `ℓ` is 0.
///
/// With fewer than two classes present the loss is 0 (a single class gives no cross-class
/// signal, method.md §4.8) but it is still a node of the autodiff graph built from `queries`,
/// so `backward()` works and gives the queries an exactly-zero gradient.
///
/// Returns a one-element tensor on the queries' device and graph. Nothing is read back to the
/// host (the class count, presence and the "fewer than two classes" switch are device tensors).
/// On the CubeCL backends (CUDA, wgpu) the per-query ℓ and its query gradient are t2s's fused
/// kernels (`T2sBackend::contrastive_rows_fused`, `t2s_model::ops::contrastive_cube`: one launch
/// each way, the gathered keys normalised as they are read, no gathered block kept); on the
/// others, tensor operations as below ([`t2s_contrastive_loss_tensor_ops`] forces these
/// everywhere). The class weighting is tensor operations on every backend.
///
/// # Memory (the tensor operations)
///
/// The negatives are gathered, `keys_n[negatives]` → `[Nq, M, D]`, and scored with one batched
/// matrix product `[Nq, M, D] × [Nq, D, 1] → [Nq, M, 1]`. At the default sizes (`Nq = 4,864`,
/// `M = 50`, `D = 256`) the gathered block is 62 M floats (≈ 250 MB in f32), kept alive for the
/// backward pass; no gradient buffer of that size is needed since the keys are detached. The
/// gather runs in query chunks of at most 64 MiB, because wgpu adapters limit the size of one
/// storage binding. The alternatives are worse: the full similarity `queries_n · keys_nᵀ` would
/// be `[Nq, K]` = 292 M
/// floats for `K = 60,000`, and an elementwise `q ⊙ k` product would add a second 62 M-float
/// temporary. The key bank is normalised *before* the gather (`K·D` = 15 M floats, versus
/// normalising the `Nq·M·D` gathered copies). The per-class means couple all queries, so the
/// loss is computed in one piece; a caller short of memory should lower `Nq` or `M`.
///
/// # Indices
///
/// `query_classes` outside `0..C` and `negatives` outside `0..K` are caller bugs; they are
/// clamped into range so the gathers can never read out of bounds on any backend (such a
/// query then behaves as one of the clamped class / key).
///
/// # Panics
///
/// On shape mismatches, `C == 0`, `D == 0`, `M > 0` with an empty key bank, or a non-finite or
/// non-positive `temperature` (programming errors, checked on the host from shapes and scalars
/// only).
pub fn t2s_contrastive_loss<B: T2sBackend>(
    queries: Tensor<B, 2>,
    query_classes: Tensor<B, 1, Int>,
    prototypes: Tensor<B, 2>,
    keys: Tensor<B, 2>,
    negatives: Tensor<B, 2, Int>,
    class_weights: Tensor<B, 1>,
    temperature: f32,
) -> Tensor<B, 1> {
    contrastive_loss(queries, query_classes, prototypes, keys, negatives, class_weights, temperature, true)
}

/// [`t2s_contrastive_loss`] always as tensor operations, on every backend: what the fused
/// kernels are measured and tested against (`benches/contrastive_loss.rs`).
pub fn t2s_contrastive_loss_tensor_ops<B: T2sBackend>(
    queries: Tensor<B, 2>,
    query_classes: Tensor<B, 1, Int>,
    prototypes: Tensor<B, 2>,
    keys: Tensor<B, 2>,
    negatives: Tensor<B, 2, Int>,
    class_weights: Tensor<B, 1>,
    temperature: f32,
) -> Tensor<B, 1> {
    contrastive_loss(queries, query_classes, prototypes, keys, negatives, class_weights, temperature, false)
}

#[allow(clippy::too_many_arguments)]
fn contrastive_loss<B: T2sBackend>(
    queries: Tensor<B, 2>,
    query_classes: Tensor<B, 1, Int>,
    prototypes: Tensor<B, 2>,
    keys: Tensor<B, 2>,
    negatives: Tensor<B, 2, Int>,
    class_weights: Tensor<B, 1>,
    temperature: f32,
    allow_fused: bool,
) -> Tensor<B, 1> {
    let [nq, d] = queries.dims();
    let [c, proto_d] = prototypes.dims();
    let [k, key_d] = keys.dims();
    let [neg_rows, m] = negatives.dims();
    assert!(c > 0, "t2s_contrastive_loss: no classes (prototypes are [0, D])");
    assert!(d > 0, "t2s_contrastive_loss: empty embedding dimension (D = 0)");
    assert_eq!(query_classes.dims(), [nq], "t2s_contrastive_loss: query_classes must be [Nq] for queries [Nq, D] = {:?}", [nq, d]);
    assert_eq!(proto_d, d, "t2s_contrastive_loss: prototypes are [C, {proto_d}] but queries have D = {d}");
    assert_eq!(key_d, d, "t2s_contrastive_loss: keys are [K, {key_d}] but queries have D = {d}");
    assert_eq!(neg_rows, nq, "t2s_contrastive_loss: negatives must be [Nq = {nq}, M], got [{neg_rows}, {m}]");
    assert_eq!(class_weights.dims(), [c], "t2s_contrastive_loss: class_weights must be [C = {c}]");
    assert!(m == 0 || k > 0, "t2s_contrastive_loss: {m} negatives per query requested from an empty key bank");
    assert!(temperature.is_finite() && temperature > 0.0, "t2s_contrastive_loss: temperature must be finite and > 0, got {temperature}");

    if nq == 0 {
        // No query, no class present: 0, still hanging off `queries` for a uniform caller.
        return queries.sum().mul_scalar(0.0);
    }

    let device = queries.device();
    let inv_tau = 1.0 / temperature as f64;
    let classes = query_classes.clamp(0, c as i64 - 1);

    // Only the queries carry gradient: the prototypes and the key bank come from the EMA
    // teacher / running state, the weights are statistics.
    let prototypes_n = l2_normalize(prototypes.detach());
    let weights = class_weights.detach();
    let fused = if allow_fused && m > 0 && B::FUSED_CONTRASTIVE {
        // CUDA and wgpu: normalisation, scores and log-sum-exp in one kernel, the query gradient
        // in one more (`T2sBackend::contrastive_rows_fused`); the kernel normalises the keys it
        // gathers as it reads them.
        let positives = prototypes_n.clone().select(0, classes.clone());
        B::contrastive_rows_fused(
            queries.clone(),
            positives,
            keys.clone().detach(),
            negatives.clone().clamp(0, k as i64 - 1),
            inv_tau as f32,
        )
    } else {
        None
    };
    let per_query = match fused {
        Some(out) => out.rows.reshape([nq, 1]),
        None => tensor_rows(queries, prototypes_n, keys, negatives, classes.clone(), inv_tau),
    };

    // Per-class means through a constant one-hot [Nq, C] built on the device by comparing with
    // the class ids (Burn's `one_hot` reads indices back to the host). [Nq, C] is small
    // (4,864 × 19), so an elementwise product and column sums beat a matmul's overhead.
    let class_ids: Tensor<B, 2, Int> = Tensor::<B, 1, Int>::arange(0..c as i64, &device).reshape([1, c]);
    let one_hot: Tensor<B, 2> = classes.reshape([nq, 1]).expand([nq, c]).equal(class_ids.expand([nq, c])).float();
    // Counts [1, C] are exact small integers. Absent classes have sum 0 and count 0;
    // clamping the count keeps their mean a finite 0.
    let counts = one_hot.clone().sum_dim(0);
    let present = counts.clone().greater_elem(0.0);
    let class_means = (one_hot * per_query).sum_dim(0) / counts.clamp_min(1.0); // [1, C]

    // Mask (not multiply) absent classes' weights so a NaN/inf weight there cannot give NaN.
    let weights = weights.reshape([1, c]).mask_fill(present.clone().bool_not(), 0.0);
    let numerator = (weights.clone() * class_means).sum();
    let denominator = weights.sum();
    // All present weights 0 → numerator 0; divide by 1 instead of 0 to get 0, not NaN.
    let denominator = denominator.clone().mask_fill(denominator.lower_equal_elem(0.0), 1.0);
    let loss = numerator / denominator;

    // Fewer than two classes present → 0. `mask_fill` keeps the node on the graph and its
    // backward zeroes the incoming gradient exactly.
    let fewer_than_two = present.int().sum().lower_elem(2); // [1]
    loss.mask_fill(fewer_than_two, 0.0)
}

/// ℓ per query `[Nq, 1]` with tensor operations (every backend without the fused kernels):
/// `queries [Nq, D]`, normalised `prototypes_n [C, D]`, `keys [K, D]`, `negatives [Nq, M]`,
/// `classes [Nq]` (clamped to `0..C`), `1/τ`.
fn tensor_rows<B: Backend>(
    queries: Tensor<B, 2>,
    prototypes_n: Tensor<B, 2>,
    keys: Tensor<B, 2>,
    negatives: Tensor<B, 2, Int>,
    classes: Tensor<B, 1, Int>,
    inv_tau: f64,
) -> Tensor<B, 2> {
    let [nq, d] = queries.dims();
    let [k, _] = keys.dims();
    let m = negatives.dims()[1];
    let queries_n = l2_normalize(queries);
    // Positive logit q·P_c/τ: gather each query's prototype ([Nq, D], small) and dot.
    let positive: Tensor<B, 2> = (queries_n.clone() * prototypes_n.select(0, classes)).sum_dim(1).mul_scalar(inv_tau); // [Nq, 1]

    // Logits [Nq, 1 + M], the positive at index 0. See "Memory" above for the layout choice.
    let logits = if m == 0 {
        positive.clone()
    } else {
        let keys_n = l2_normalize(keys.detach());
        let negatives = negatives.clamp(0, k as i64 - 1);
        // Query chunks whose gathered block stays under MAX_GATHER_ELEMS floats: wgpu adapters
        // cap one storage binding (lavapipe failed on the 250 MB block of the default size).
        let chunk = (MAX_GATHER_ELEMS / (m * d)).clamp(1, nq);
        let mut parts = Vec::with_capacity(nq.div_ceil(chunk));
        for start in (0..nq).step_by(chunk) {
            let end = (start + chunk).min(nq);
            let rows = end - start;
            let flat = negatives.clone().slice([start..end, 0..m]).reshape([rows * m]);
            let gathered: Tensor<B, 3> = keys_n.clone().select(0, flat).reshape([rows, m, d]);
            // [rows, M, D] × [rows, D, 1]: no transpose of the big gathered block is needed.
            let q = queries_n.clone().slice([start..end, 0..d]).unsqueeze_dim::<3>(2);
            parts.push(gathered.matmul(q).reshape([rows, m]));
        }
        let negative: Tensor<B, 2> = if parts.len() == 1 { parts.remove(0) } else { Tensor::cat(parts, 0) }.mul_scalar(inv_tau);
        Tensor::cat(vec![positive.clone(), negative], 1)
    };

    // ℓ = logsumexp(logits) − logits[0], with the detached row maximum subtracted first (a
    // constant shift: it cancels in the difference, and exp() can no longer overflow).
    let max = logits.clone().detach().max_dim(1); // [Nq, 1]
    let log_sum_exp = (logits - max.clone()).exp().sum_dim(1).log() + max; // [Nq, 1]
    log_sum_exp - positive // [Nq, 1], ≥ 0
}

/// Row-wise L2 normalisation `x / max(‖x‖, ε)`, PyTorch `F.normalize(x, dim=1)` semantics.
///
/// Written as `x / sqrt(max(Σx², ε²))` rather than clamping the norm: the clamp then sits
/// before the square root, so for an all-zero row (e.g. a dead ReLU embedding) the clamp's
/// zeroed gradient meets `d sqrt` at `ε²` (finite) instead of `0 · ∞ = NaN` at 0. Such a row
/// still gets the direct `1/ε`-scaled gradient of `x / ε`, exactly as in PyTorch. `ε² = 1e-24`
/// is a normal f32 (it would flush to 0 in f16).
pub(crate) fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().square().sum_dim(1).clamp_min(NORMALIZE_EPS * NORMALIZE_EPS).sqrt(); // [rows, 1]
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, scalar};
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::TensorData;

    type B = Flex;
    type AB = Autodiff<Flex>;

    fn float2<Bk: Backend>(values: &[f32], shape: [usize; 2]) -> Tensor<Bk, 2> {
        Tensor::from_data(TensorData::new(values.to_vec(), shape), &Default::default())
    }

    fn float1<Bk: Backend>(values: &[f32]) -> Tensor<Bk, 1> {
        Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), &Default::default())
    }

    fn int1<Bk: Backend>(values: &[usize]) -> Tensor<Bk, 1, Int> {
        let v: Vec<i64> = values.iter().map(|&x| x as i64).collect();
        Tensor::from_data(TensorData::new(v, [values.len()]), &Default::default())
    }

    fn int2<Bk: Backend>(values: &[usize], shape: [usize; 2]) -> Tensor<Bk, 2, Int> {
        let v: Vec<i64> = values.iter().map(|&x| x as i64).collect();
        Tensor::from_data(TensorData::new(v, shape), &Default::default())
    }

    /// Deterministic pseudo-random numbers in [-1, 1) (no RNG dependency needed).
    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    /// All inputs of one loss evaluation, in host form.
    #[derive(Clone)]
    struct Case {
        d: usize,
        c: usize,
        queries: Vec<f32>,
        classes: Vec<usize>,
        prototypes: Vec<f32>,
        keys: Vec<f32>,
        m: usize,
        negatives: Vec<usize>,
        weights: Vec<f32>,
        tau: f32,
    }

    impl Case {
        fn nq(&self) -> usize {
            self.classes.len()
        }

        fn random(seed: u64, nq: usize, d: usize, c: usize, k: usize, m: usize) -> Self {
            let mut s = seed;
            let mut rand = |n: usize| -> Vec<f32> { (0..n).map(|_| lcg(&mut s) as f32).collect() };
            let queries = rand(nq * d);
            let prototypes = rand(c * d);
            let keys = rand(k * d);
            let mut s2 = seed ^ 0x9e37_79b9;
            let mut idx = |n: usize| ((lcg(&mut s2) + 1.0) * 0.5 * n as f64) as usize % n;
            let negatives = (0..nq * m).map(|_| idx(k)).collect();
            Self { d, c, queries, classes: vec![0; nq], prototypes, keys, m, negatives, weights: vec![1.0; c], tau: 0.2 }
        }

        fn loss<Bk: t2s_model::T2sBackend>(&self) -> Tensor<Bk, 1> {
            self.loss_with(float2::<Bk>(&self.queries, [self.nq(), self.d]))
        }

        fn loss_with<Bk: t2s_model::T2sBackend>(&self, queries: Tensor<Bk, 2>) -> Tensor<Bk, 1> {
            t2s_contrastive_loss(
                queries,
                int1::<Bk>(&self.classes),
                float2::<Bk>(&self.prototypes, [self.c, self.d]),
                float2::<Bk>(&self.keys, [self.keys.len() / self.d, self.d]),
                int2::<Bk>(&self.negatives, [self.nq(), self.m]),
                float1::<Bk>(&self.weights),
                self.tau,
            )
        }
    }

    /// Straightforward f64 re-implementation of the formula, loop by loop, evaluated at the
    /// query values `q` (row-major `[Nq, D]`).
    fn reference_loss(case: &Case, q: &[f64]) -> f64 {
        let d = case.d;
        let normalize = |v: &[f64]| -> Vec<f64> {
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            v.iter().map(|x| x / n).collect()
        };
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let row =
            |data: &[f32], i: usize| -> Vec<f64> { normalize(&data[i * d..(i + 1) * d].iter().map(|&x| x as f64).collect::<Vec<_>>()) };
        let tau = case.tau as f64;

        let mut sum = vec![0.0; case.c];
        let mut count = vec![0usize; case.c];
        for i in 0..case.nq() {
            let qi = normalize(&q[i * d..(i + 1) * d]);
            let cls = case.classes[i];
            let mut logits = vec![dot(&qi, &row(&case.prototypes, cls)) / tau];
            for j in 0..case.m {
                logits.push(dot(&qi, &row(&case.keys, case.negatives[i * case.m + j])) / tau);
            }
            let mx = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = mx + logits.iter().map(|l| (l - mx).exp()).sum::<f64>().ln();
            sum[cls] += lse - logits[0];
            count[cls] += 1;
        }
        let present: Vec<usize> = (0..case.c).filter(|&c| count[c] > 0).collect();
        if present.len() < 2 {
            return 0.0;
        }
        let num: f64 = present.iter().map(|&c| case.weights[c] as f64 * sum[c] / count[c] as f64).sum();
        let den: f64 = present.iter().map(|&c| case.weights[c] as f64).sum();
        if den > 0.0 {
            num / den
        } else {
            0.0
        }
    }

    fn queries_f64(case: &Case) -> Vec<f64> {
        case.queries.iter().map(|&x| x as f64).collect()
    }

    /// Central finite differences of [`reference_loss`] with respect to every query entry.
    fn reference_gradient(case: &Case) -> Vec<f64> {
        let q0 = queries_f64(case);
        let h = 1e-6;
        (0..q0.len())
            .map(|i| {
                let mut plus = q0.clone();
                let mut minus = q0.clone();
                plus[i] += h;
                minus[i] -= h;
                (reference_loss(case, &plus) - reference_loss(case, &minus)) / (2.0 * h)
            })
            .collect()
    }

    /// Nq = 12, D = 5, C = 4, K = 9, M = 3, class 2 absent (its weight must not matter), the
    /// other classes with different query counts and non-uniform weights.
    fn small_random_case() -> Case {
        let mut case = Case::random(7, 12, 5, 4, 9, 3);
        case.classes = vec![0, 1, 3, 0, 0, 1, 3, 3, 3, 0, 1, 0];
        case.weights = vec![0.5, 2.0, 7.0, 1.3];
        case
    }

    fn query_grad(case: &Case) -> (f64, Vec<f64>) {
        let q = float2::<AB>(&case.queries, [case.nq(), case.d]).require_grad();
        let loss = case.loss_with(q.clone());
        let value = scalar(loss.clone());
        let grads = loss.backward();
        let g = q.grad(&grads).expect("queries must receive a gradient");
        let g = g.into_data().to_vec::<f32>().unwrap().into_iter().map(|x| x as f64).collect();
        (value, g)
    }

    #[test]
    fn random_case_value_matches_f64_loop() {
        let case = small_random_case();
        let expected = reference_loss(&case, &queries_f64(&case));
        assert!(expected > 0.1, "degenerate test case: {expected}");
        assert_close(scalar(case.loss::<B>()), expected, 1e-5, "loss (Flex)");
        assert_close(scalar(case.loss::<AB>()), expected, 1e-5, "loss (Autodiff<Flex>)");
    }

    #[test]
    fn random_case_query_gradient_matches_finite_differences() {
        let case = small_random_case();
        let expected = reference_gradient(&case);
        let (_, grad) = query_grad(&case);
        assert_eq!(grad.len(), expected.len());
        let scale = expected.iter().fold(0.0f64, |a, g| a.max(g.abs()));
        assert!(scale > 1e-3, "degenerate gradient");
        for (i, (g, e)) in grad.iter().zip(&expected).enumerate() {
            assert!((g - e).abs() <= 1e-4 * (1.0 + e.abs()), "grad[{i}] = {g}, expected {e}");
        }
    }

    /// Two queries in 2-D with τ = 1/ln 2, so every exp(logit) is a power of two:
    /// * q0 = (1, 0), class 0, P0 = (1, 0); negatives (0, 1), (−1, 0):
    ///   exps (2 | 1, ½) → ℓ0 = ln(3.5 / 2) = ln(7/4);
    /// * q1 = (0, 3), class 1, P1 = (0, 2) (unnormalised on purpose); negatives (2, 0),
    ///   (0, 0.5): exps (2 | 1, 2) → ℓ1 = ln(5/2).
    ///
    /// With weights (1, 3): L = (ln(7/4) + 3·ln(5/2)) / 4.
    ///
    /// Gradient: dℓ/dq̂ = (Σ_i p_i k_i − P)/τ over the softmax p of the M + 1 logits, then
    /// through the normalisation (I − q̂q̂ᵀ)/‖q‖, times w_c/Σw:
    /// * q0: p = (2, 1, ½)/3.5 → (Σ p k − P) = (−2, 1)/3.5 → projected (0, 1/3.5)·ln 2,
    ///   × ¼ → (0, ln2/14);
    /// * q1: p = (2, 1, 2)/5 → (1, −1)/5 → projected (1/5, 0)·ln 2, ÷ ‖q1‖ = 3, × ¾ →
    ///   (ln2/20, 0).
    #[test]
    fn hand_computed_two_query_case() {
        let ln2 = 2f64.ln();
        let case = Case {
            d: 2,
            c: 2,
            queries: vec![1.0, 0.0, 0.0, 3.0],
            classes: vec![0, 1],
            prototypes: vec![1.0, 0.0, 0.0, 2.0],
            keys: vec![0.0, 1.0, -1.0, 0.0, 2.0, 0.0, 0.0, 0.5],
            m: 2,
            negatives: vec![0, 1, 2, 3],
            weights: vec![1.0, 3.0],
            tau: (1.0 / ln2) as f32,
        };
        let expected = ((7.0f64 / 4.0).ln() + 3.0 * 2.5f64.ln()) / 4.0;
        let (value, grad) = query_grad(&case);
        assert_close(value, expected, 1e-6, "hand-computed loss");
        let expected_grad = [0.0, ln2 / 14.0, ln2 / 20.0, 0.0];
        for (i, (g, e)) in grad.iter().zip(expected_grad).enumerate() {
            assert!((g - e).abs() < 1e-6, "grad[{i}] = {g}, expected {e}");
        }
    }

    #[test]
    fn prototypes_keys_and_weights_receive_no_gradient() {
        let case = small_random_case();
        let q = float2::<AB>(&case.queries, [case.nq(), case.d]).require_grad();
        let p = float2::<AB>(&case.prototypes, [case.c, case.d]).require_grad();
        let k = float2::<AB>(&case.keys, [9, case.d]).require_grad();
        let w = float1::<AB>(&case.weights).require_grad();
        let loss = t2s_contrastive_loss(
            q.clone(),
            int1::<AB>(&case.classes),
            p.clone(),
            k.clone(),
            int2::<AB>(&case.negatives, [case.nq(), case.m]),
            w.clone(),
            case.tau,
        );
        let grads = loss.backward();
        assert!(q.grad(&grads).is_some(), "queries must get a gradient");
        assert!(p.grad(&grads).is_none(), "prototypes must be detached");
        assert!(k.grad(&grads).is_none(), "keys must be detached");
        assert!(w.grad(&grads).is_none(), "class weights must be detached");
    }

    #[test]
    fn single_class_gives_zero_loss_and_zero_gradient() {
        let mut case = small_random_case();
        case.classes = vec![2; case.nq()];
        assert_eq!(reference_loss(&case, &queries_f64(&case)), 0.0);
        let (value, grad) = query_grad(&case);
        assert_eq!(value, 0.0);
        assert!(grad.iter().all(|&g| g == 0.0), "gradient must be exactly 0: {grad:?}");

        // No query at all: also 0 (no class present).
        let empty = Case { queries: vec![], classes: vec![], negatives: vec![], ..case };
        let (value, grad) = query_grad(&empty);
        assert_eq!(value, 0.0);
        assert!(grad.is_empty());
    }

    #[test]
    fn zero_weight_class_does_not_contribute() {
        let mut case = Case::random(11, 9, 4, 3, 8, 4);
        case.classes = vec![0, 1, 2, 0, 1, 2, 0, 1, 2];
        case.weights = vec![1.5, 0.0, 0.5];
        let expected = reference_loss(&case, &queries_f64(&case));
        let (value, grad) = query_grad(&case);
        assert_close(value, expected, 1e-5, "loss with a zero-weight class");

        // Class-1 queries (rows 1, 4, 7) get exactly zero gradient, and replacing them by
        // other vectors leaves the loss unchanged.
        for row in [1, 4, 7] {
            for j in 0..case.d {
                assert_eq!(grad[row * case.d + j], 0.0, "row {row} of a zero-weight class");
            }
        }
        let mut moved = case.clone();
        for row in [1, 4, 7] {
            for j in 0..case.d {
                moved.queries[row * case.d + j] = (row * 10 + j) as f32 - 7.0;
            }
        }
        assert_close(scalar(moved.loss::<B>()), value, 1e-6, "moving zero-weight queries");

        // The remaining classes combine as (1.5·L0 + 0.5·L2) / 2: dropping the class-1 queries
        // altogether gives the same value.
        let mut dropped = case.clone();
        let keep: Vec<usize> = (0..case.nq()).filter(|i| case.classes[*i] != 1).collect();
        dropped.queries = keep.iter().flat_map(|&i| case.queries[i * case.d..(i + 1) * case.d].to_vec()).collect();
        dropped.negatives = keep.iter().flat_map(|&i| case.negatives[i * case.m..(i + 1) * case.m].to_vec()).collect();
        dropped.classes = keep.iter().map(|&i| case.classes[i]).collect();
        assert_close(scalar(dropped.loss::<B>()), value, 1e-6, "dropping zero-weight queries");

        // All present weights zero: 0, not NaN.
        case.weights = vec![0.0, 0.0, 0.0];
        assert_eq!(scalar(case.loss::<B>()), 0.0);
    }

    #[test]
    fn small_temperature_is_numerically_stable() {
        // τ = 0.01: logits up to ±100, exp(100) overflows f32.
        let mut case = small_random_case();
        case.tau = 0.01;
        let expected = reference_loss(&case, &queries_f64(&case));
        let (value, grad) = query_grad(&case);
        assert!(value.is_finite() && grad.iter().all(|g| g.is_finite()));
        assert_close(value, expected, 1e-4, "loss at τ = 0.01");
    }

    #[test]
    fn zero_query_vector_and_no_negatives_are_finite() {
        // A zero query normalises to 0 (logits 0) and must not produce NaN gradients.
        let mut case = small_random_case();
        for j in 0..case.d {
            case.queries[3 * case.d + j] = 0.0;
        }
        let expected = reference_loss(&case, &queries_f64(&case));
        let (value, grad) = query_grad(&case);
        assert_close(value, expected, 1e-5, "loss with a zero query");
        assert!(grad.iter().all(|g| g.is_finite()), "NaN gradient from a zero query");

        // M = 0: the positive is the only logit, ℓ = 0 for every query.
        let no_neg = Case { m: 0, negatives: vec![], ..small_random_case() };
        assert_eq!(reference_loss(&no_neg, &queries_f64(&no_neg)), 0.0);
        let (value, grad) = query_grad(&no_neg);
        assert_eq!(value, 0.0);
        assert!(grad.iter().all(|g| g.abs() < 1e-7));
    }
}
