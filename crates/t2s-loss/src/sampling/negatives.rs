//! Domain-equalized negative sampling (method.md §4.7).

use rand::Rng;

use super::queries::{pixels_by_class, QuerySample};
use crate::LossError;

/// An unreliable target key that may serve as a negative: its index among the target keys and
/// the teacher's top-3 classes there (it is a negative for class c only if c is not among them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetCandidate {
    /// Index into the target keys `[Kt, D]`.
    pub index: usize,
    /// The teacher's three most probable classes at this pixel.
    pub top: [u8; 3],
}

/// Negatives for a set of queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegativeSample {
    /// The queries that got negatives (those of classes with no candidate in either domain are
    /// dropped; that happens only when the batch holds a single class, where the loss is 0).
    pub queries: QuerySample,
    /// `[Nq × m]` row-major indices into the key bank `cat([source keys (Ks), target keys (Kt)])`:
    /// source key `i` is `i`, target key `j` is `Ks + j`.
    pub indices: Vec<usize>,
    /// Negatives per query.
    pub m: usize,
    /// How many of the indices point at target keys (for logging the domain balance).
    pub from_target: usize,
}

/// Draws `m` negatives for every query of class c, uniformly with replacement:
/// - `domain_equalized`: ⌊m/2⌋ from the source keys whose label is neither c nor `ignore` and
///   m − ⌊m/2⌋ from the target candidates without c in their top 3; when one domain has no
///   candidate for c, all m come from the other;
/// - otherwise: all m from the union of both candidate sets.
///
/// `source_labels` are the labels of the source keys (`[Ks]`, flat, at embedding resolution).
#[allow(clippy::too_many_arguments)]
pub fn sample_negatives<R: Rng + ?Sized>(
    queries: &QuerySample,
    source_labels: &[u8],
    num_classes: usize,
    ignore: u8,
    target: &[TargetCandidate],
    num_target_keys: usize,
    m: usize,
    domain_equalized: bool,
    rng: &mut R,
) -> Result<NegativeSample, LossError> {
    if m == 0 {
        return Err(LossError::InvalidArgument { name: "m", reason: "the number of negatives per query must be at least 1".into() });
    }
    if let Some(t) = target.iter().find(|t| t.index >= num_target_keys) {
        return Err(LossError::InvalidArgument {
            name: "target",
            reason: format!("candidate index {} is outside the {num_target_keys} target keys", t.index),
        });
    }
    let source_by_class = pixels_by_class(source_labels, num_classes, ignore)?;
    let ks = source_labels.len();
    let mut pools: Vec<Option<(Vec<usize>, Vec<usize>)>> = vec![None; num_classes];
    let mut kept = QuerySample { indices: Vec::new(), classes: Vec::new(), per_class: vec![0; num_classes] };
    let (mut indices, mut from_target) = (Vec::with_capacity(queries.indices.len() * m), 0usize);
    for (&q, &c) in queries.indices.iter().zip(&queries.classes) {
        if c >= num_classes {
            return Err(LossError::InvalidArgument { name: "queries", reason: format!("query class {c} is outside 0..{num_classes}") });
        }
        let (src, tgt) = pools[c].get_or_insert_with(|| {
            let src: Vec<usize> = (0..num_classes).filter(|&o| o != c).flat_map(|o| source_by_class[o].iter().copied()).collect();
            let tgt: Vec<usize> = target.iter().filter(|t| !t.top.contains(&(c as u8))).map(|t| ks + t.index).collect();
            (src, tgt)
        });
        if src.is_empty() && tgt.is_empty() {
            continue;
        }
        let n_src = match (domain_equalized, src.is_empty(), tgt.is_empty()) {
            (true, false, false) => m / 2,
            (true, _, true) => m,
            (true, true, false) => 0,
            (false, _, _) => {
                // Pooled: one uniform draw over the union.
                for _ in 0..m {
                    let r = rng.random_range(0..src.len() + tgt.len());
                    if r < src.len() {
                        indices.push(src[r]);
                    } else {
                        indices.push(tgt[r - src.len()]);
                        from_target += 1;
                    }
                }
                kept.indices.push(q);
                kept.classes.push(c);
                kept.per_class[c] += 1;
                continue;
            }
        };
        for _ in 0..n_src {
            indices.push(src[rng.random_range(0..src.len())]);
        }
        for _ in n_src..m {
            indices.push(tgt[rng.random_range(0..tgt.len())]);
            from_target += 1;
        }
        kept.indices.push(q);
        kept.classes.push(c);
        kept.per_class[c] += 1;
    }
    Ok(NegativeSample { queries: kept, indices, m, from_target })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn queries(classes: &[usize], c: usize) -> QuerySample {
        let mut per_class = vec![0; c];
        classes.iter().for_each(|&k| per_class[k] += 1);
        QuerySample { indices: (0..classes.len()).collect(), classes: classes.to_vec(), per_class }
    }

    #[test]
    fn equalized_negatives_respect_classes_and_domains() {
        // Source keys: labels 0,0,1,1,2,255 (Ks = 6). Target candidates: key 0 top {0,1,2},
        // key 1 top {1,2,3}, key 2 top {0,2,3} (Kt = 3).
        let source = [0u8, 0, 1, 1, 2, 255];
        let target = [
            TargetCandidate { index: 0, top: [0, 1, 2] },
            TargetCandidate { index: 1, top: [1, 2, 3] },
            TargetCandidate { index: 2, top: [0, 2, 3] },
        ];
        let q = queries(&[0, 1, 3], 4);
        let s = sample_negatives(&q, &source, 4, 255, &target, 3, 10, true, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        assert_eq!(s.queries, q);
        let allowed: [&[usize]; 3] = [
            &[2, 3, 4, 6 + 1],   // class 0: source labels 1, 2; target key 1 (no 0 in its top 3)
            &[0, 1, 4, 6 + 2],   // class 1: source labels 0, 2; target key 2
            &[0, 1, 2, 3, 4, 6], // class 3: every labelled source key; target key 0
        ];
        for (row, ok) in s.indices.chunks(10).zip(allowed) {
            assert!(row.iter().all(|i| ok.contains(i)), "{row:?} not within {ok:?}");
            assert_eq!(row.iter().filter(|&&i| i >= 6).count(), 5, "m/2 from each domain: {row:?}");
        }
        assert_eq!(s.from_target, 15);
    }

    #[test]
    fn falls_back_to_the_domain_that_has_candidates() {
        // Class 0 has no target candidate (every top 3 contains 0) → all from source; class 2
        // has no source candidate (the only other label is ignore) → all from target.
        let target = [TargetCandidate { index: 0, top: [0, 1, 3] }];
        let s = sample_negatives(&queries(&[0], 4), &[0, 1], 4, 255, &target, 1, 7, true, &mut ChaCha8Rng::seed_from_u64(2)).unwrap();
        assert_eq!(s.indices, vec![1; 7]);
        let s = sample_negatives(&queries(&[2], 4), &[2, 255], 4, 255, &target, 1, 7, true, &mut ChaCha8Rng::seed_from_u64(2)).unwrap();
        assert_eq!(s.indices, vec![2; 7]);
        // No candidate at all: the query is dropped.
        let s = sample_negatives(&queries(&[0, 1], 4), &[0], 4, 255, &[], 0, 3, true, &mut ChaCha8Rng::seed_from_u64(2)).unwrap();
        assert_eq!(s.queries.classes, vec![1]);
        assert_eq!(s.indices, vec![0; 3]);
    }

    #[test]
    fn negatives_are_uniform_within_each_domain_and_pooled_without_equalization() {
        // Class 0 queries; source candidates: 3 keys of class 1 and 1 of class 2; target: 4 allowed
        // keys. Equalized: each source key 1/4 of the source half, each target key 1/4 of the
        // target half. Pooled over 8 candidates: each 1/8, so target share 1/2 only because the
        // pools have equal size — make them unequal (1 target key) to tell the rules apart.
        let source = [0u8, 1, 1, 1, 2];
        let target: Vec<TargetCandidate> = (0..4).map(|i| TargetCandidate { index: i, top: [1, 2, 3] }).collect();
        let (n, m) = (2000, 50);
        let q = queries(&vec![0; n], 3);
        let s = sample_negatives(&q, &source, 3, 255, &target, 4, m, true, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
        let mut hist = [0f64; 9];
        s.indices.iter().for_each(|&i| hist[i] += 1.0);
        // 50,000 draws per domain, 4 keys each: expected 12,500, sd = sqrt(50,000 · 1/4 · 3/4) = 96.8.
        for (i, h) in hist.iter().enumerate().skip(1) {
            assert!((h - 12_500.0).abs() < 5.0 * 96.8, "key {i}: {h}");
        }
        assert_eq!(hist[0], 0.0);
        let one_target = &target[..1];
        let s = sample_negatives(&q, &source, 3, 255, one_target, 4, m, false, &mut ChaCha8Rng::seed_from_u64(6)).unwrap();
        // Pooled over 5 candidates (4 source + 1 target): target share 1/5 of 100,000 draws,
        // sd = sqrt(100,000 · 0.2 · 0.8) = 126.5.
        assert!((s.from_target as f64 - 20_000.0).abs() < 5.0 * 126.5, "{}", s.from_target);
        let s = sample_negatives(&q, &source, 3, 255, one_target, 4, m, true, &mut ChaCha8Rng::seed_from_u64(6)).unwrap();
        assert_eq!(s.from_target, n * m / 2);
    }
}
