//! Majority-rule downscaling of label maps to embedding resolution (method.md §4.3).
//!
//! The contrastive loss works on the projection head's embedding, which is coarser than the
//! label map by an integer factor. Each `f×f` block of labels becomes one embedding-resolution
//! label: the block's most frequent class if it covers at least `min_fraction` of the block,
//! otherwise the ignore index. This is the spec's "one-hot, average-pool, argmax, ignore if the
//! winning fraction < 0.75", computed with exact integer counts.

use burn::tensor::{backend::Backend, Int, Tensor};

use crate::error::LossError;

/// Downscales `labels` `[N, H, W]` by `factor` with the majority rule; returns `[N, H/f, W/f]`.
///
/// For every non-overlapping `factor × factor` block:
///
/// * each real class `c ∈ 0..num_classes` gets its pixel count `n_c` in the block;
/// * pixels equal to `ignore_index`, and labels outside `0..num_classes` (data errors, see
///   [`check_labels`](crate::check_labels)), count toward **no** class but still toward the
///   block size `f²`, so they lower every class's fraction `n_c / f²` (SePiCo's extra "ignore"
///   channel gives the same labels at 0.75: docs/method-notes.md);
/// * the winner is the class with the largest count, ties broken toward the **lower** class
///   index (deterministic on every backend; ties can only matter when `min_fraction ≤ 0.5`);
/// * the block's label is the winner if `n_winner / f² ≥ min_fraction` (inclusive: with
///   `f = 2`, 3 of 4 pixels is exactly 0.75 and is kept) and `n_winner ≥ 1`, otherwise
///   `ignore_index`. A fully ignored block is therefore always ignored, even with
///   `min_fraction = 0`.
///
/// The threshold is turned into a minimum integer count on the host (the smallest `k` with
/// `k as f32 / f² as f32 ≥ min_fraction`, i.e. the same comparison an f32 average-pool would
/// make), and the counts are integer sums on the device, so blocks sitting exactly on the
/// threshold are classified exactly, without float rounding in the pooled fractions.
///
/// Everything runs on the labels' device with tensor ops (no read-back). Memory: the per-class
/// comparison materialises one `[N, H, W, C]` integer/boolean tensor (≈ 10 M elements for
/// `N = 2`, `512 × 512`, `C = 19`).
///
/// Ignored pixels take precedence: if `ignore_index < num_classes` those pixels still count
/// toward no class.
///
/// # Errors
///
/// * [`LossError::LabelSizeNotDivisible`] if `H` or `W` is not a multiple of `factor`;
/// * [`LossError::InvalidArgument`] if `factor == 0`, `num_classes == 0`, `min_fraction` is not
///   in `[0, 1]` (or is NaN), or the block scores `f²·C + C` would not fit in an `i32` (the
///   narrowest integer element type among Burn's backends).
///
/// All checks use only shapes and scalars, on the host.
pub fn downscale_labels_majority<B: Backend>(
    labels: Tensor<B, 3, Int>,
    num_classes: usize,
    factor: usize,
    min_fraction: f32,
    ignore_index: usize,
) -> Result<Tensor<B, 3, Int>, LossError> {
    let [n, height, width] = labels.dims();
    if factor == 0 {
        return Err(LossError::InvalidArgument { name: "factor", reason: "the downscale factor must be at least 1".to_string() });
    }
    if num_classes == 0 {
        return Err(LossError::InvalidArgument { name: "num_classes", reason: "at least one class is required".to_string() });
    }
    if !(0.0..=1.0).contains(&min_fraction) {
        return Err(LossError::InvalidArgument { name: "min_fraction", reason: format!("must be in [0, 1], got {min_fraction}") });
    }
    // Scores below are `count·C + (C − 1 − c)` < (f² + 1)·C; keep them within i32.
    let fits_i32 = factor
        .checked_mul(factor)
        .and_then(|area| area.checked_add(1))
        .and_then(|a| a.checked_mul(num_classes))
        .is_some_and(|bound| bound <= i32::MAX as usize);
    if !fits_i32 {
        return Err(LossError::InvalidArgument {
            name: "factor",
            reason: format!("factor {factor} with {num_classes} classes overflows the i32 block scores"),
        });
    }

    if height % factor != 0 || width % factor != 0 {
        return Err(LossError::LabelSizeNotDivisible { height, width, factor });
    }

    let area = factor * factor; // cannot overflow: checked above
                                // Smallest winning count that passes the threshold, using the same f32 comparison an
                                // average-pooled fraction would; at least 1 so an all-ignored block never yields a class.
    let min_count = (0..=area).find(|&k| k as f32 / area as f32 >= min_fraction).unwrap_or(area).max(1);

    let (h, w, c) = (height / factor, width / factor, num_classes);
    let device = labels.device();

    // Ignored pixels → −1, which matches no class (takes precedence over a class index).
    let ignore_value = i64::try_from(ignore_index).unwrap_or(i64::MAX);
    let labels = labels.clone().mask_fill(labels.equal_elem(ignore_value), -1);

    // [N, H, W] → [N, h, f, w, f, 1] (a free reshape, H = h·f row-major), compared with the
    // class ids [1, 1, 1, 1, 1, C]: summing over the two in-block axes gives per-block counts
    // without any permute.
    let blocks: Tensor<B, 6, Int> = labels.reshape([n, h, factor, w, factor, 1]);
    let classes: Tensor<B, 6, Int> = Tensor::<B, 1, Int>::arange(0..c as i64, &device).reshape([1, 1, 1, 1, 1, c]);
    let shape = [n, h, factor, w, factor, c];
    let counts: Tensor<B, 4, Int> = blocks.expand(shape).equal(classes.expand(shape)).int().sum_dims(&[2, 4]).reshape([n, h, w, c]);

    // Unique score per class: count·C + (C − 1 − c). The argmax of the score is the class
    // with the most pixels, ties going to the lower index, whatever the backend's argmax tie
    // rule; and count ≥ k ⇔ score ≥ k·C because the tie-break term is < C.
    let tie_break: Tensor<B, 4, Int> =
        Tensor::<B, 1, Int>::arange(0..c as i64, &device).neg().add_scalar(c as i64 - 1).reshape([1, 1, 1, c]);
    let scores = counts.mul_scalar(c as i64) + tie_break;
    let (best_score, winner) = scores.max_dim_with_indices(3); // [N, h, w, 1] each

    let too_small = best_score.lower_elem((min_count * c) as i64);
    Ok(winner.mask_fill(too_small, ignore_value).reshape([n, h, w]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    type B = Flex;

    const IGNORE: i64 = 255;

    fn labels3(values: Vec<i64>, shape: [usize; 3]) -> Tensor<B, 3, Int> {
        Tensor::from_data(TensorData::new(values, shape), &Default::default())
    }

    fn to_vec(t: Tensor<B, 3, Int>) -> Vec<i64> {
        t.into_data().convert::<i64>().to_vec::<i64>().unwrap()
    }

    /// One 4×4 map, factor 2, four blocks (top-left, top-right, bottom-left, bottom-right):
    /// * TL: all class 1                       → 1 (clean block)
    /// * TR: three 2s and one 0 (3/4 = 0.75)   → 2 (threshold is inclusive)
    /// * BL: two 3s and two 0s (2/4)           → ignore
    /// * BR: three 3s and one ignored pixel    → 3 (3/4, the ignored pixel counts in the
    ///   denominator only)
    #[test]
    fn majority_rule_on_hand_built_blocks() {
        #[rustfmt::skip]
        let map = vec![
            1, 1,   2, 2,
            1, 1,   0, 2,
            3, 0,   3, 3,
            0, 3,   IGNORE, 3,
        ];
        let out = downscale_labels_majority(labels3(map, [1, 4, 4]), 4, 2, 0.75, 255).unwrap();
        assert_eq!(out.dims(), [1, 2, 2]);
        assert_eq!(to_vec(out), vec![1, 2, IGNORE, 3]);
    }

    /// Blocks with ignored pixels, factor 2, 0.75:
    /// * two ignored + two class 0 (2/4)       → ignore (ignored pixels are in the denominator)
    /// * all four ignored                      → ignore (never class 0, even at threshold 0)
    /// * one out-of-range label (9) + three 1s → 1 (counts toward no class, like ignore)
    /// * two ignored + one 2 + one 1           → ignore
    #[test]
    fn ignored_pixels_count_toward_no_class() {
        #[rustfmt::skip]
        let map = vec![
            IGNORE, 0,        IGNORE, IGNORE,
            0, IGNORE,        IGNORE, IGNORE,
            9, 1,             2, IGNORE,
            1, 1,             IGNORE, 1,
        ];
        let out = downscale_labels_majority(labels3(map.clone(), [1, 4, 4]), 4, 2, 0.75, 255).unwrap();
        assert_eq!(to_vec(out), vec![IGNORE, IGNORE, 1, IGNORE]);

        // Threshold 0: any block with at least one class pixel keeps its majority class (the
        // 1-vs-1 tie in the last block goes to the lower class index); the all-ignored block
        // still stays ignored.
        let out = downscale_labels_majority(labels3(map, [1, 4, 4]), 4, 2, 0.0, 255).unwrap();
        assert_eq!(to_vec(out), vec![0, IGNORE, 1, 1]);
    }

    /// Pseudo-random batch of two 8×12 maps over classes {0, 1, 2} and ignore, factors 2 and
    /// 4, thresholds from 0 to 1, checked against a direct counting loop (which also covers
    /// count ties, broken toward the lower class).
    #[test]
    fn random_maps_match_counting_loop() {
        let (n, hh, ww, c) = (2usize, 8usize, 12usize, 3usize);
        let mut seed = 3u64;
        let map: Vec<i64> = (0..n * hh * ww)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                // Skewed toward class 0 so that some blocks pass high thresholds.
                match (seed >> 33) % 8 {
                    0..=3 => 0,
                    4..=5 => 1,
                    6 => 2,
                    _ => IGNORE,
                }
            })
            .collect();

        let mut outcomes = [0usize; 2]; // [kept, ignored] over all configurations
        for f in [2usize, 4] {
            for threshold in [0.0f32, 0.25, 0.5, 0.75, 1.0] {
                let out = to_vec(downscale_labels_majority(labels3(map.clone(), [n, hh, ww]), c, f, threshold, 255).unwrap());
                let mut expected = Vec::new();
                for b in 0..n {
                    for by in 0..hh / f {
                        for bx in 0..ww / f {
                            let mut counts = vec![0usize; c];
                            for dy in 0..f {
                                for dx in 0..f {
                                    let v = map[(b * hh + by * f + dy) * ww + bx * f + dx];
                                    if (0..c as i64).contains(&v) {
                                        counts[v as usize] += 1;
                                    }
                                }
                            }
                            let mut best = 0;
                            for k in 1..c {
                                if counts[k] > counts[best] {
                                    best = k;
                                }
                            }
                            let fraction = counts[best] as f64 / (f * f) as f64;
                            let keep = counts[best] >= 1 && fraction >= threshold as f64;
                            outcomes[usize::from(!keep)] += 1;
                            expected.push(if keep { best as i64 } else { IGNORE });
                        }
                    }
                }
                assert_eq!(out, expected, "factor {f}, min_fraction {threshold}");
            }
        }
        assert!(outcomes[0] > 10 && outcomes[1] > 10, "degenerate map: {outcomes:?}");
    }

    /// Factor 3 (9-pixel blocks): 7/9 ≥ 0.75 is kept, 6/9 < 0.75 is not. With factor 1 the map
    /// is unchanged except that out-of-range labels become ignore.
    #[test]
    fn odd_factor_and_identity_factor() {
        let mut map = vec![4i64; 18]; // [1, 3, 6]: two 3×3 blocks
                                      // Left block: 7 of 9 are class 4 (two 0s). Right block: 6 of 9 (three 1s).
        for &(y, x, v) in &[(0, 0, 0), (1, 1, 0), (0, 3, 1), (1, 4, 1), (2, 5, 1)] {
            map[y * 6 + x] = v;
        }
        let out = downscale_labels_majority(labels3(map, [1, 3, 6]), 5, 3, 0.75, 255).unwrap();
        assert_eq!(to_vec(out), vec![4, IGNORE]);

        let map = vec![0, 1, IGNORE, 7];
        let out = downscale_labels_majority(labels3(map, [1, 2, 2]), 3, 1, 0.75, 255).unwrap();
        assert_eq!(to_vec(out), vec![0, 1, IGNORE, IGNORE]);
    }

    #[test]
    fn invalid_arguments_are_errors_not_panics() {
        let map = || labels3(vec![0; 12], [1, 3, 4]);
        assert_eq!(
            downscale_labels_majority(map(), 19, 2, 0.75, 255).unwrap_err(),
            LossError::LabelSizeNotDivisible { height: 3, width: 4, factor: 2 }
        );
        assert_eq!(
            downscale_labels_majority(map(), 19, 2, 0.75, 255).unwrap_err().to_string(),
            "label map of size 3x4 cannot be downscaled by 2: height and width must both be \
             multiples of the factor"
        );
        assert!(matches!(downscale_labels_majority(map(), 19, 0, 0.75, 255), Err(LossError::InvalidArgument { name: "factor", .. })));
        assert!(matches!(downscale_labels_majority(map(), 0, 1, 0.75, 255), Err(LossError::InvalidArgument { name: "num_classes", .. })));
        for bad in [f32::NAN, -0.1, 1.5] {
            assert!(matches!(
                downscale_labels_majority(map(), 19, 1, bad, 255),
                Err(LossError::InvalidArgument { name: "min_fraction", .. })
            ));
        }
        // 20000² · 20 > i32::MAX (checked from the scalars, before the shape).
        assert!(matches!(downscale_labels_majority(map(), 19, 20_000, 0.75, 255), Err(LossError::InvalidArgument { name: "factor", .. })));
    }
}
