//! Unreliable target pixels by entropy percentile with a linear schedule (method.md §4.5, the
//! rule of U2PL, Wang et al. CVPR 2022).

use crate::LossError;

/// The percentage α_t of target pixels treated as unreliable at iteration `iter` of `max_iter`:
/// linear from `start` (20 by default) to `end` (0), constant after `max_iter`.
pub fn unreliable_percent(iter: usize, max_iter: usize, start: f32, end: f32) -> f32 {
    let progress = if max_iter == 0 { 1.0 } else { (iter as f32 / max_iter as f32).min(1.0) };
    start + (end - start) * progress
}

/// `np.percentile(values, q)` with NumPy's default linear interpolation between the closest
/// ranks (`q` in 0..=100; `None` for an empty slice).
pub fn numpy_percentile(values: &[f32], q: f32) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f32::total_cmp);
    let rank = (q.clamp(0.0, 100.0) as f64 / 100.0) * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    Some((v[lo] as f64 + (v[hi] as f64 - v[lo] as f64) * (rank - lo as f64)) as f32)
}

/// Indices of the unreliable pixels: those among the valid ones (all when `valid` is `None`)
/// whose entropy is at least the `100 − percent` percentile of the valid entropies, as U2PL's
/// `entropy.ge(np.percentile(entropy[valid], 100 - percent))`. `percent ≤ 0` selects nothing
/// (U2PL would still select the pixels equal to the maximum; at α_t = 0 the method means none).
pub fn select_unreliable(entropy: &[f32], valid: Option<&[bool]>, percent: f32) -> Result<Vec<usize>, LossError> {
    if let Some(v) = valid {
        if v.len() != entropy.len() {
            return Err(LossError::InvalidArgument {
                name: "valid",
                reason: format!("has {} entries for {} pixels", v.len(), entropy.len()),
            });
        }
    }
    if percent.is_nan() || percent > 100.0 {
        return Err(LossError::InvalidArgument { name: "percent", reason: format!("{percent} is outside 0..=100") });
    }
    if percent <= 0.0 {
        return Ok(Vec::new());
    }
    let is_valid = |i: usize| valid.is_none_or(|v| v[i]);
    let valid_values: Vec<f32> = (0..entropy.len()).filter(|&i| is_valid(i)).map(|i| entropy[i]).collect();
    let Some(threshold) = numpy_percentile(&valid_values, 100.0 - percent) else { return Ok(Vec::new()) };
    Ok((0..entropy.len()).filter(|&i| is_valid(i) && entropy[i] >= threshold).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_linear_then_constant() {
        assert_eq!(unreliable_percent(0, 100, 20.0, 0.0), 20.0);
        assert_eq!(unreliable_percent(25, 100, 20.0, 0.0), 15.0);
        assert_eq!(unreliable_percent(100, 100, 20.0, 0.0), 0.0);
        assert_eq!(unreliable_percent(300, 100, 20.0, 0.0), 0.0);
    }

    #[test]
    fn percentile_matches_numpy() {
        // np.percentile([3, 1, 4, 1, 5], q) for q = 0, 25, 50, 80, 90, 100 → 1, 1, 3, 4.2, 4.6, 5.
        let v = [3.0, 1.0, 4.0, 1.0, 5.0];
        for (q, want) in [(0.0, 1.0), (25.0, 1.0), (50.0, 3.0), (80.0, 4.2), (90.0, 4.6), (100.0, 5.0)] {
            assert!((numpy_percentile(&v, q).unwrap() - want).abs() < 1e-6, "q={q}");
        }
        assert_eq!(numpy_percentile(&[], 50.0), None);
    }

    #[test]
    fn selects_the_top_fraction_of_valid_pixels() {
        // Entropies 0..100 (one per pixel): the 80th percentile is 79.2, so 20 % → pixels 80..=99.
        let e: Vec<f32> = (0..100).map(|i| i as f32).collect();
        assert_eq!(select_unreliable(&e, None, 20.0).unwrap(), (80..100).collect::<Vec<_>>());
        // Invalid pixels neither count towards the percentile nor get selected: with only the even
        // pixels valid (0, 2, …, 98), the 50th percentile is 49 → 50, 52, …, 98.
        let valid: Vec<bool> = (0..100).map(|i| i % 2 == 0).collect();
        assert_eq!(select_unreliable(&e, Some(&valid), 50.0).unwrap(), (50..100).step_by(2).collect::<Vec<_>>());
        assert!(select_unreliable(&e, None, 0.0).unwrap().is_empty());
        assert!(select_unreliable(&e, Some(&[true]), 10.0).is_err());
        assert!(select_unreliable(&e, None, 120.0).is_err());
    }
}
