//! Class-balanced query sampling (method.md §4.6).

use rand::Rng;

use crate::LossError;

/// Queries drawn from a label map: pixel indices and their classes, grouped by class in
/// ascending class order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerySample {
    /// Flat pixel indices into the label map, `[Nq]`.
    pub indices: Vec<usize>,
    /// Class of each query, `[Nq]`.
    pub classes: Vec<usize>,
    /// Number of queries per class, `[C]` (0 for classes absent from the labels).
    pub per_class: Vec<usize>,
}

/// How many queries each class gets.
///
/// Classes with `present[c] == false` get none. Every present class gets `min_per_class`; the
/// rest of `total` is split among present classes in proportion to `distribution[c]` (the
/// running label-distribution estimate π, any non-negative scale) by largest remainder, so the
/// counts sum to exactly `total` whenever `total ≥ min_per_class × #present`; otherwise every
/// present class gets `min_per_class` and the sum exceeds `total` (the minimum wins). When π is
/// zero on all present classes the remainder is split evenly. Ties in the remainder go to the
/// lower class id, so the result is deterministic.
pub fn allocate_queries(present: &[bool], distribution: &[f32], total: usize, min_per_class: usize) -> Result<Vec<usize>, LossError> {
    if present.len() != distribution.len() {
        return Err(LossError::InvalidArgument {
            name: "distribution",
            reason: format!("has {} entries for {} classes", distribution.len(), present.len()),
        });
    }
    if let Some((c, v)) = distribution.iter().enumerate().find(|(_, v)| !v.is_finite() || **v < 0.0) {
        return Err(LossError::InvalidArgument {
            name: "distribution",
            reason: format!("entry {c} is {v}; class frequencies must be finite and ≥ 0"),
        });
    }
    let classes: Vec<usize> = (0..present.len()).filter(|&c| present[c]).collect();
    let mut counts = vec![0usize; present.len()];
    if classes.is_empty() {
        return Ok(counts);
    }
    for &c in &classes {
        counts[c] = min_per_class;
    }
    let rest = total.saturating_sub(min_per_class * classes.len());
    if rest == 0 {
        return Ok(counts);
    }
    let mass: f64 = classes.iter().map(|&c| distribution[c] as f64).sum();
    let share = |c: usize| if mass > 0.0 { distribution[c] as f64 / mass } else { 1.0 / classes.len() as f64 };
    let mut given = 0usize;
    let mut remainders = Vec::with_capacity(classes.len());
    for &c in &classes {
        let exact = rest as f64 * share(c);
        let whole = exact.floor() as usize;
        counts[c] += whole;
        given += whole;
        remainders.push((exact - whole as f64, c));
    }
    // Largest remainder first; equal remainders go to the lower class id.
    remainders.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, c) in remainders.iter().take(rest - given) {
        counts[c] += 1;
    }
    Ok(counts)
}

/// Draws class-balanced queries from `labels` (flat, `[P]`, `ignore` = not a candidate):
/// [`allocate_queries`] over the classes present, then for each class uniformly, with
/// replacement, among its pixels.
pub fn sample_queries<R: Rng + ?Sized>(
    labels: &[u8],
    num_classes: usize,
    ignore: u8,
    distribution: &[f32],
    total: usize,
    min_per_class: usize,
    rng: &mut R,
) -> Result<QuerySample, LossError> {
    let pixels = pixels_by_class(labels, num_classes, ignore)?;
    let present: Vec<bool> = pixels.iter().map(|p| !p.is_empty()).collect();
    let per_class = allocate_queries(&present, distribution, total, min_per_class)?;
    let n: usize = per_class.iter().sum();
    let (mut indices, mut classes) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (c, &k) in per_class.iter().enumerate() {
        for _ in 0..k {
            indices.push(pixels[c][rng.random_range(0..pixels[c].len())]);
            classes.push(c);
        }
    }
    Ok(QuerySample { indices, classes, per_class })
}

/// Pixel indices of each class; labels other than `ignore` must be `< num_classes`.
pub(crate) fn pixels_by_class(labels: &[u8], num_classes: usize, ignore: u8) -> Result<Vec<Vec<usize>>, LossError> {
    let mut pixels = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        if l == ignore {
            continue;
        }
        match pixels.get_mut(l as usize) {
            Some(list) => list.push(i),
            None => {
                return Err(LossError::InvalidArgument {
                    name: "labels",
                    reason: format!("pixel {i} has label {l}, expected a class in 0..{num_classes} or the ignore label {ignore}"),
                })
            }
        }
    }
    Ok(pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn allocation_follows_distribution_with_minimum() {
        // 4 classes, class 2 absent. total 100, min 10 × 3: 70 left over, split 0.5 : 0.3 : 0.2
        // over classes 0, 1, 3 (class 2's mass is dropped) → 35, 21, 14.
        let counts = allocate_queries(&[true, true, false, true], &[5.0, 3.0, 9.0, 2.0], 100, 10).unwrap();
        assert_eq!(counts, vec![45, 31, 0, 24]);
        // Largest remainder: 10 over thirds → 3.33 each, one extra to class 0 (lowest id).
        assert_eq!(allocate_queries(&[true; 3], &[1.0; 3], 10, 0).unwrap(), vec![4, 3, 3]);
        // Minimum exceeding the total: the minimum wins.
        assert_eq!(allocate_queries(&[true; 3], &[1.0, 0.0, 0.0], 20, 16).unwrap(), vec![16, 16, 16]);
        // Zero mass on the present classes: even split.
        assert_eq!(allocate_queries(&[true, true], &[0.0, 0.0], 7, 1).unwrap(), vec![4, 3]);
        assert!(allocate_queries(&[true], &[f32::NAN], 7, 1).is_err());
        assert!(allocate_queries(&[true], &[1.0, 2.0], 7, 1).is_err());
    }

    #[test]
    fn queries_come_from_their_class_and_are_reproducible() {
        let labels: Vec<u8> = (0..600).map(|i| if i % 7 == 0 { 255 } else { (i % 3) as u8 }).collect();
        let a = sample_queries(&labels, 4, 255, &[1.0, 1.0, 2.0, 1.0], 40, 4, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        let b = sample_queries(&labels, 4, 255, &[1.0, 1.0, 2.0, 1.0], 40, 4, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.per_class, vec![11, 11, 18, 0]); // 28 over 1:1:2 → 7, 7, 14, plus 4 each
        for (&i, &c) in a.indices.iter().zip(&a.classes) {
            assert_eq!(labels[i] as usize, c);
        }
        assert!(sample_queries(&[0, 5], 4, 255, &[1.0; 4], 4, 1, &mut ChaCha8Rng::seed_from_u64(0)).is_err());
    }

    #[test]
    fn within_class_draws_are_uniform() {
        // Class 0 has 5 pixels; 50,000 draws: each pixel expected 10,000 times, sd = sqrt(n p (1-p))
        // = 89.4; a 5-sd band makes a false failure practically impossible.
        let labels = [0u8, 1, 0, 0, 1, 0, 0];
        let s = sample_queries(&labels, 2, 255, &[1.0, 0.0], 50_001, 1, &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
        assert_eq!(s.per_class, vec![50_000, 1]);
        let mut hist = [0usize; 7];
        for (&i, &c) in s.indices.iter().zip(&s.classes) {
            if c == 0 {
                hist[i] += 1;
            }
        }
        for &i in &[0, 2, 3, 5, 6] {
            assert!((hist[i] as f64 - 10_000.0).abs() < 5.0 * 89.4, "pixel {i}: {}", hist[i]);
        }
        assert_eq!(hist[1] + hist[4], 0);
    }
}
