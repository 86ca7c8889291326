//! Pixel-wise segmentation cross-entropy with an ignore index, matching mmsegmentation 0.16's
//! `CrossEntropyLoss` (as used by DAFormer), i.e. PyTorch's
//! `F.cross_entropy(logits, labels, reduction='none', ignore_index=255)` followed by mmseg's
//! `weight_reduce_loss`.

use burn::tensor::{backend::Backend, Bool, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::LossError;

/// How the per-pixel losses are reduced to a single value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// Average over pixels; the denominator depends on
    /// [`CrossEntropyOptions::avg_non_ignore`].
    #[default]
    Mean,
    /// Plain sum over all pixels (ignored pixels contribute 0).
    Sum,
}

/// Options of [`cross_entropy`]; the defaults are mmseg 0.16's `CrossEntropyLoss` defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CrossEntropyOptions {
    /// Label value whose pixels contribute nothing to the loss (default 255, the Cityscapes /
    /// GTA5 "void" label). It must be representable by the backend's integer element type.
    pub ignore_index: usize,
    /// Reduction over pixels (default [`Reduction::Mean`]).
    pub reduction: Reduction,
    /// With [`Reduction::Mean`]: divide by the number of non-ignored pixels instead of by all
    /// `N·H·W` pixels (default `false`, which is mmseg 0.16's behaviour: ignored pixels count
    /// in the denominator). Has no effect with [`Reduction::Sum`], as in mmseg.
    pub avg_non_ignore: bool,
    /// Factor applied to the reduced loss (default 1.0).
    pub loss_weight: f32,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        Self { ignore_index: 255, reduction: Reduction::Mean, avg_non_ignore: false, loss_weight: 1.0 }
    }
}

/// Segmentation cross-entropy of `logits` `[N, C, H, W]` against `labels` `[N, H, W]`.
///
/// Per pixel, `l = −log_softmax(logits)[label]` (computed with the per-pixel maximum
/// subtracted, so logits of any magnitude are safe), set to 0 where `label == ignore_index`,
/// then multiplied by `pixel_weights` `[N, H, W]` if given (DAFormer's pseudo-label
/// confidence weights). The per-pixel losses are reduced according to `opts`:
///
/// * [`Reduction::Mean`] with `avg_non_ignore == false`: sum / (N·H·W), ignored pixels
///   included in the denominator (mmseg 0.16's `loss.mean()`);
/// * [`Reduction::Mean`] with `avg_non_ignore == true`: sum / (number of non-ignored
///   pixels), or 0 when every pixel is ignored;
/// * [`Reduction::Sum`]: plain sum.
///
/// The result is multiplied by `opts.loss_weight` and returned as a one-element tensor that
/// stays on the device and on the autodiff graph (nothing is read back to the host).
///
/// Ignored pixels are fully inert: their logits and weights are masked out before any
/// arithmetic, so even infinite or NaN logits there yield neither NaN values nor NaN
/// gradients, and their gradient is exactly 0.
///
/// Labels that are neither the ignore index nor in `0..C` are a data error; validate with
/// [`check_labels`]. Here they are clamped into `[0, C−1]` so that the gather can never read
/// out of bounds on any backend (the loss is then that of the clamped class).
///
/// # Panics
///
/// If `C == 0`, or if the shapes of `labels` or `pixel_weights` are not `[N, H, W]`
/// (programming errors, checked on the host from the shapes only).
pub fn cross_entropy<B: Backend>(
    logits: Tensor<B, 4>,
    labels: Tensor<B, 3, Int>,
    opts: &CrossEntropyOptions,
    pixel_weights: Option<Tensor<B, 3>>,
) -> Tensor<B, 1> {
    let [n, c, h, w] = logits.dims();
    assert!(c > 0, "cross_entropy: logits have no class channel (C = 0)");
    assert_eq!(
        labels.dims(),
        [n, h, w],
        "cross_entropy: labels must be [N, H, W] = {:?} to match logits [N, C, H, W] = {:?}",
        [n, h, w],
        [n, c, h, w]
    );
    if let Some(weights) = &pixel_weights {
        assert_eq!(weights.dims(), [n, h, w], "cross_entropy: pixel weights must be [N, H, W] = {:?}", [n, h, w]);
    }

    // An ignore index beyond i64 can never match a label; saturating keeps that true.
    let ignore_value = i64::try_from(opts.ignore_index).unwrap_or(i64::MAX);
    let ignored: Tensor<B, 3, Bool> = labels.clone().equal_elem(ignore_value);

    // Replace ignored labels by a safe class BEFORE the gather (255 would read out of
    // bounds), and clamp so that invalid labels cannot either; `check_labels` reports them.
    let safe_labels = labels.mask_fill(ignored.clone(), 0).clamp(0, (c - 1) as i64);

    // Neutralise the logits of ignored pixels: masking (a select, not a multiply) gives those
    // pixels a finite loss and an exactly-zero gradient even if their logits are ±inf or NaN.
    // PyTorch would produce NaN gradients there; pseudo-labels make such pixels common.
    let ignored_4d: Tensor<B, 4, Bool> = ignored.clone().unsqueeze_dim::<4>(1).expand([n, c, h, w]);
    let logits = logits.mask_fill(ignored_4d, 0.0);

    // Numerically stable log-softmax along C: subtract the per-pixel max (detached: it is a
    // constant shift, log-softmax is invariant to it), so exp() never overflows.
    let max = logits.clone().detach().max_dim(1); // [N, 1, H, W]
    let shifted = logits - max;
    let log_sum_exp = shifted.clone().exp().sum_dim(1).log(); // [N, 1, H, W], >= 0
                                                              // nll = log_sum_exp − shifted[label]; gathering from `shifted` avoids materialising the
                                                              // full [N, C, H, W] log-probabilities.
    let picked = shifted.gather(1, safe_labels.unsqueeze_dim::<4>(1)); // [N, 1, H, W]
    let nll: Tensor<B, 3> = (log_sum_exp - picked).squeeze_dim::<3>(1);

    // Zero the ignored pixels explicitly (their sanitised nll is log C, not 0).
    let mut per_pixel = nll.mask_fill(ignored.clone(), 0.0);
    if let Some(weights) = pixel_weights {
        // Masked too, so a NaN/inf weight on an ignored pixel cannot leak in (0 · inf = NaN).
        per_pixel = per_pixel * weights.mask_fill(ignored.clone(), 0.0);
    }

    let total = per_pixel.clone().sum();
    let reduced = match (opts.reduction, opts.avg_non_ignore) {
        (Reduction::Sum, _) => total,
        // mmseg 0.16 `loss.mean()`: every pixel counts, ignored ones as 0. `max(1)` only
        // guards an empty tensor, whose sum is 0 anyway.
        (Reduction::Mean, false) => total.div_scalar((n * h * w).max(1) as f64),
        (Reduction::Mean, true) => {
            // Counted on the device, in the loss dtype, off the graph. With no valid pixel
            // the sum is 0, so clamping the count to 1 yields 0 instead of 0/0 = NaN.
            let valid_count = per_pixel.ones_like().detach().mask_fill(ignored, 0.0).sum().clamp_min(1.0);
            total / valid_count
        }
    };
    reduced.mul_scalar(opts.loss_weight as f64)
}

/// Checks that every label is either the ignore index or a class in `0..num_classes`.
///
/// Returns [`LossError::LabelOutOfRange`] describing the first offending value (row-major
/// order), its position and how many pixels are bad. This reads the whole tensor back to the
/// host (a device sync), so use it for data validation, not inside the training step;
/// [`cross_entropy`] itself only clamps bad labels so it can never index out of bounds.
pub fn check_labels<B: Backend>(labels: &Tensor<B, 3, Int>, num_classes: usize, ignore_index: usize) -> Result<(), LossError> {
    let [_, height, width] = labels.dims();
    let data = labels.to_data();
    let ignore = i64::try_from(ignore_index).ok();
    let num_classes_i64 = i64::try_from(num_classes).unwrap_or(i64::MAX);

    let mut first: Option<(usize, i64)> = None;
    let mut count = 0usize;
    for (index, value) in data.iter::<i64>().enumerate() {
        let valid = (0..num_classes_i64).contains(&value) || Some(value) == ignore;
        if !valid {
            count += 1;
            first.get_or_insert((index, value));
        }
    }

    match first {
        None => Ok(()),
        Some((index, value)) => {
            let plane = (height * width).max(1);
            Err(LossError::LabelOutOfRange {
                value,
                n: index / plane,
                h: (index % plane) / width.max(1),
                w: index % width.max(1),
                num_classes,
                ignore_index,
                count,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, scalar};
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::TensorData;

    type B = Flex;
    type AB = Autodiff<Flex>;

    const IGNORE: i64 = 255;

    fn logits4<Bk: Backend>(values: Vec<f32>, shape: [usize; 4]) -> Tensor<Bk, 4> {
        Tensor::from_data(TensorData::new(values, shape), &Default::default())
    }

    fn labels3<Bk: Backend>(values: Vec<i64>, shape: [usize; 3]) -> Tensor<Bk, 3, Int> {
        Tensor::from_data(TensorData::new(values, shape), &Default::default())
    }

    fn weights3<Bk: Backend>(values: Vec<f32>, shape: [usize; 3]) -> Tensor<Bk, 3> {
        Tensor::from_data(TensorData::new(values, shape), &Default::default())
    }

    fn opts(reduction: Reduction, avg_non_ignore: bool, loss_weight: f32) -> CrossEntropyOptions {
        CrossEntropyOptions { ignore_index: 255, reduction, avg_non_ignore, loss_weight }
    }

    /// Tiny [1, 3, 2, 2] example whose per-pixel losses have closed forms:
    /// * (0,0): logits (0, 0, 0), label 1      → softmax 1/3 each      → ln 3
    /// * (0,1): logits (0, ln2, ln5), label 2  → softmax (1, 2, 5)/8   → ln(8/5)
    /// * (1,0): logits (ln3, 0, 0), label 0    → softmax (3, 1, 1)/5   → ln(5/3)
    /// * (1,1): logits (7, −3, 2), label 255   → ignored               → 0
    ///
    /// Sum = ln 3 + ln(8/5) + ln(5/3) = ln 8.
    fn tiny<Bk: Backend>() -> (Tensor<Bk, 4>, Tensor<Bk, 3, Int>) {
        let (l2, l3, l5) = (2f32.ln(), 3f32.ln(), 5f32.ln());
        // Layout [n][c][h][w]: per channel, pixels (0,0), (0,1), (1,0), (1,1).
        let logits = vec![
            0.0, 0.0, l3, 7.0, // c = 0
            0.0, l2, 0.0, -3.0, // c = 1
            0.0, l5, 0.0, 2.0, // c = 2
        ];
        (logits4(logits, [1, 3, 2, 2]), labels3(vec![1, 2, 0, IGNORE], [1, 2, 2]))
    }

    #[test]
    fn tiny_example_matches_hand_derived_values() {
        let ln8 = 8f64.ln();
        let cases = [
            (opts(Reduction::Mean, false, 1.0), ln8 / 4.0, "mean over N*H*W"),
            (opts(Reduction::Mean, true, 1.0), ln8 / 3.0, "mean over non-ignored"),
            (opts(Reduction::Sum, false, 1.0), ln8, "sum"),
            (opts(Reduction::Sum, true, 1.0), ln8, "sum ignores avg_non_ignore"),
            (opts(Reduction::Mean, false, 0.5), 0.5 * ln8 / 4.0, "loss_weight 0.5"),
        ];
        for (o, expected, what) in cases {
            let (logits, labels) = tiny::<B>();
            let got = scalar(cross_entropy(logits, labels, &o, None));
            assert_close(got, expected, 1e-6, what);
        }

        // Pixel weights 0.5, 1, 2 on the valid pixels, 9 on the ignored one (must not count).
        let weighted_sum = 0.5 * 3f64.ln() + (8.0f64 / 5.0).ln() + 2.0 * (5.0f64 / 3.0).ln();
        let weight_cases = [
            (opts(Reduction::Mean, false, 1.0), weighted_sum / 4.0, "weighted mean"),
            (opts(Reduction::Mean, true, 1.0), weighted_sum / 3.0, "weighted non-ignored mean"),
            (opts(Reduction::Sum, false, 0.5), 0.5 * weighted_sum, "weighted sum, weight 0.5"),
        ];
        for (o, expected, what) in weight_cases {
            let (logits, labels) = tiny::<B>();
            let w = weights3::<B>(vec![0.5, 1.0, 2.0, 9.0], [1, 2, 2]);
            let got = scalar(cross_entropy(logits, labels, &o, Some(w)));
            assert_close(got, expected, 1e-6, what);
        }
    }

    #[test]
    fn default_options_are_mmseg_defaults_and_serde_round_trips() {
        let d = CrossEntropyOptions::default();
        assert_eq!(d.ignore_index, 255);
        assert_eq!(d.reduction, Reduction::Mean);
        assert!(!d.avg_non_ignore);
        assert_eq!(d.loss_weight, 1.0);

        let o = opts(Reduction::Sum, true, 0.25);
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<CrossEntropyOptions>(&json).unwrap(), o);
        // Missing fields fall back to the defaults.
        let partial: CrossEntropyOptions = serde_json::from_str(r#"{"reduction":"sum"}"#).unwrap();
        assert_eq!(partial, CrossEntropyOptions { reduction: Reduction::Sum, ..d });
    }

    /// Deterministic pseudo-random numbers in [-1, 1) (no RNG dependency needed).
    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    #[test]
    fn gradient_matches_softmax_minus_onehot_loop() {
        let (n, c, h, w) = (2usize, 4usize, 3usize, 3usize);
        let mut seed = 42u64;
        let logits: Vec<f32> = (0..n * c * h * w).map(|_| (3.0 * lcg(&mut seed)) as f32).collect();
        // Every third pixel ignored, the others cycle through the classes.
        let labels: Vec<i64> = (0..n * h * w).map(|p| if p % 3 == 1 { IGNORE } else { (p % c) as i64 }).collect();
        let weights: Vec<f32> = (0..n * h * w).map(|_| (1.0 + lcg(&mut seed)) as f32).collect();
        let num_valid = labels.iter().filter(|&&l| l != IGNORE).count();

        for (o, denom) in [
            (opts(Reduction::Mean, false, 1.0), (n * h * w) as f64),
            (opts(Reduction::Mean, true, 0.7), num_valid as f64),
            (opts(Reduction::Sum, false, 2.0), 1.0),
        ] {
            let x = logits4::<AB>(logits.clone(), [n, c, h, w]).require_grad();
            let loss =
                cross_entropy(x.clone(), labels3::<AB>(labels.clone(), [n, h, w]), &o, Some(weights3::<AB>(weights.clone(), [n, h, w])));
            let grads = loss.backward();
            let grad = x.grad(&grads).expect("logits gradient").into_data().to_vec::<f32>().unwrap();

            // Independent f64 recomputation: d loss / d x = lw · w · (softmax − onehot) / denom.
            let idx = |b: usize, k: usize, p: usize| (b * c + k) * h * w + p;
            for b in 0..n {
                for p in 0..h * w {
                    let label = labels[b * h * w + p];
                    for k in 0..c {
                        let g = grad[idx(b, k, p)] as f64;
                        if label == IGNORE {
                            assert_eq!(g, 0.0, "ignored pixel must have exactly zero gradient");
                            continue;
                        }
                        let row: Vec<f64> = (0..c).map(|j| logits[idx(b, j, p)] as f64).collect();
                        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
                        let softmax = (row[k] - m).exp() / z;
                        let onehot = if k as i64 == label { 1.0 } else { 0.0 };
                        let expected = o.loss_weight as f64 * weights[b * h * w + p] as f64 * (softmax - onehot) / denom;
                        assert!((g - expected).abs() < 1e-5, "grad[{b},{k},{p}] = {g}, expected {expected} ({o:?})");
                    }
                }
            }
        }
    }

    #[test]
    fn ignored_pixels_with_extreme_logits_do_not_produce_nan() {
        // Pixel 0: ignored, with extreme logits (inf, -inf, NaN); pixel 1: ignored, huge
        // finite; pixel 2: valid, logits (0, 0) label 0 → ln 2.
        let logits = vec![
            f32::INFINITY,
            f32::MAX,
            0.0, // c = 0
            f32::NAN,
            -f32::MAX,
            0.0, // c = 1
        ];
        let labels = vec![IGNORE, IGNORE, 0];
        for (o, expected) in [
            (opts(Reduction::Mean, false, 1.0), 2f64.ln() / 3.0),
            (opts(Reduction::Mean, true, 1.0), 2f64.ln()),
            (opts(Reduction::Sum, false, 1.0), 2f64.ln()),
        ] {
            let x = logits4::<AB>(logits.clone(), [1, 2, 1, 3]).require_grad();
            let loss = cross_entropy(x.clone(), labels3::<AB>(labels.clone(), [1, 1, 3]), &o, None);
            let value = scalar(loss.clone());
            assert_close(value, expected, 1e-6, "extreme ignored logits");
            let grad = x.grad(&loss.backward()).unwrap().into_data().to_vec::<f32>().unwrap();
            assert!(grad.iter().all(|g| g.is_finite()), "gradient has NaN/inf: {grad:?}");
            // Ignored pixels (columns 0 and 1 of each channel) get exactly zero gradient.
            for k in 0..2 {
                assert_eq!(grad[k * 3], 0.0);
                assert_eq!(grad[k * 3 + 1], 0.0);
            }
        }
    }

    #[test]
    fn all_ignored_input_gives_zero_for_every_reduction() {
        for o in [opts(Reduction::Mean, false, 1.0), opts(Reduction::Mean, true, 1.0), opts(Reduction::Sum, false, 1.0)] {
            let x = logits4::<AB>(vec![1e30, -5.0, 3.0, f32::NEG_INFINITY], [1, 2, 1, 2]).require_grad();
            let w = weights3::<AB>(vec![f32::NAN, 1.0], [1, 1, 2]);
            let loss = cross_entropy(x.clone(), labels3::<AB>(vec![IGNORE, IGNORE], [1, 1, 2]), &o, Some(w));
            assert_eq!(scalar(loss.clone()), 0.0, "all-ignored loss must be 0 ({o:?})");
            let grad = x.grad(&loss.backward()).unwrap().into_data().to_vec::<f32>().unwrap();
            assert!(grad.iter().all(|&g| g == 0.0), "all-ignored gradient must be 0: {grad:?}");
        }
    }

    #[test]
    fn large_logits_are_numerically_stable() {
        // Pixel 0: (1e4, 1e4 − 1, 1e4 − 2), label 0 → ln(1 + e^−1 + e^−2)
        // Pixel 1: (1e4, −1e4, 0), label 1       → 2e4 + ln(1 + e^−2e4 + e^−1e4) = 2e4
        // A naive exp(1e4) would overflow to inf and give NaN.
        let logits = vec![
            1e4,
            1e4, // c = 0
            1e4 - 1.0,
            -1e4, // c = 1
            1e4 - 2.0,
            0.0, // c = 2
        ];
        let p0 = (1.0 + (-1f64).exp() + (-2f64).exp()).ln();
        let p1 = 2e4;
        let x = logits4::<AB>(logits, [1, 3, 1, 2]).require_grad();
        let loss = cross_entropy(x.clone(), labels3::<AB>(vec![0, 1], [1, 1, 2]), &opts(Reduction::Sum, false, 1.0), None);
        let value = scalar(loss.clone());
        assert!(value.is_finite());
        assert_close(value, p0 + p1, 1e-6, "sum with logits ~1e4");

        let grad = x.grad(&loss.backward()).unwrap().into_data().to_vec::<f32>().unwrap();
        assert!(grad.iter().all(|g| g.is_finite()), "gradient not finite: {grad:?}");
        // Pixel 1: softmax ≈ (1, 0, 0), label 1 → gradient ≈ (1, −1, 0).
        assert_close(grad[1] as f64, 1.0, 1e-6, "grad c0 pixel 1");
        assert_close(grad[3] as f64, -1.0, 1e-6, "grad c1 pixel 1");
        assert_close(grad[5] as f64, 0.0, 1e-6, "grad c2 pixel 1");

        // Mean with separated-by-1 logits at 1e4: per-pixel value ln(1 + e^−1 + e^−2) ÷ 1.
        let x = logits4::<B>(vec![1e4, 1e4 - 1.0, 1e4 - 2.0], [1, 3, 1, 1]);
        let v = scalar(cross_entropy(x, labels3::<B>(vec![0], [1, 1, 1]), &Default::default(), None));
        assert_close(v, p0, 1e-5, "mean with logits ~1e4");
    }

    #[test]
    fn out_of_range_labels_are_clamped_not_read_out_of_bounds() {
        // C = 2; label 7 and −3 are invalid. They must not panic or read out of bounds: they
        // are clamped to classes 1 and 0 respectively.
        // Pixel 0: logits (0, ln 3) → softmax (1, 3)/4; clamped label 1 → ln(4/3).
        // Pixel 1: same logits; clamped label 0 → ln 4.
        let l3 = 3f32.ln();
        let x = logits4::<B>(vec![0.0, 0.0, l3, l3], [1, 2, 1, 2]);
        let v = scalar(cross_entropy(x, labels3::<B>(vec![7, -3], [1, 1, 2]), &opts(Reduction::Sum, false, 1.0), None));
        assert_close(v, (4.0f64 / 3.0).ln() + 4f64.ln(), 1e-6, "clamped labels");
    }

    #[test]
    fn check_labels_reports_out_of_range_label() {
        let labels = labels3::<B>(vec![0, 18, 255, 3, 19, 5, 19, 255], [2, 2, 2]);
        let err = check_labels(&labels, 19, 255).unwrap_err();
        assert_eq!(err, LossError::LabelOutOfRange { value: 19, n: 1, h: 0, w: 0, num_classes: 19, ignore_index: 255, count: 2 });
        let message = err.to_string();
        assert_eq!(
            message,
            "label 19 at [n=1, h=0, w=0] is out of range: expected a class in 0..19 \
             or the ignore index 255 (2 offending pixel(s) in total)"
        );

        let negative = labels3::<B>(vec![-1], [1, 1, 1]);
        assert!(matches!(check_labels(&negative, 19, 255), Err(LossError::LabelOutOfRange { value: -1, .. })));
        // 255 is not a class, but is only accepted as the ignore index.
        assert!(check_labels(&labels3::<B>(vec![255], [1, 1, 1]), 19, 0).is_err());
    }

    #[test]
    fn check_labels_accepts_valid_classes_and_ignore_index() {
        let labels = labels3::<B>(vec![0, 18, 255, 7, 255, 1], [1, 2, 3]);
        assert_eq!(check_labels(&labels, 19, 255), Ok(()));
    }
}
