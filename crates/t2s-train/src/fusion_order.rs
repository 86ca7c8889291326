//! The order in which per-tensor element-wise updates (the optimiser step, the EMA teacher
//! update) are queued, so that Burn's fusion joins them into few kernels of bounded size.
//!
//! Burn's fusion joins consecutive element-wise operations of one shape, up to the device's
//! binding limit, so equal-sized updates are queued together, in chunks of at most [`RUN`]: CUDA's
//! limit would allow kernels of thousands of operations (docs/benchmarks.md, "Kernel launches per
//! training iteration"). The next chunk is of the size with the most updates left, unless it was
//! the last one queued.

use std::collections::BTreeMap;
use std::collections::VecDeque;

/// The most equal-sized updates queued back to back.
pub const RUN: usize = 16;

/// The positions of `sizes` (each item's number of elements) in fusion order: chunks of at most
/// [`RUN`] items of one size, consecutive chunks of different sizes wherever another size has
/// items left; within a size, the input order.
pub fn fusion_order(sizes: &[usize]) -> Vec<usize> {
    let mut left: BTreeMap<usize, VecDeque<usize>> = BTreeMap::new();
    for (i, &n) in sizes.iter().enumerate() {
        left.entry(n).or_default().push_back(i);
    }
    let mut order = Vec::with_capacity(sizes.len());
    let mut last = None;
    while !left.is_empty() {
        // The most items left, the smaller size on ties; the size just queued only when it is
        // the only one left.
        let pick = |skip: Option<usize>| {
            left.iter().filter(|(n, _)| Some(**n) != skip).max_by_key(|(n, q)| (q.len(), std::cmp::Reverse(**n))).map(|(n, _)| *n)
        };
        let n = pick(last).or_else(|| pick(None)).expect("not empty");
        let queue = left.get_mut(&n).expect("picked from the map");
        order.extend(queue.drain(..queue.len().min(RUN)));
        if queue.is_empty() {
            left.remove(&n);
        }
        last = Some(n);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sizes_follow_each_other_in_chunks_of_at_most_run() {
        // 40 items of size 10 (MiT-B5's stage-3 blocks), 3 of size 5, 17 of size 7, interleaved.
        let mut sizes = Vec::new();
        for i in 0..40 {
            sizes.push(10);
            if i < 3 {
                sizes.push(5);
            }
            if i < 17 {
                sizes.push(7);
            }
        }
        let order = fusion_order(&sizes);
        let mut seen = order.clone();
        seen.sort();
        assert_eq!(seen, (0..sizes.len()).collect::<Vec<_>>(), "a permutation");
        // Runs of one size, in queue order, by hand: 10 has most left (40), then 7 (17), then
        // 10 (24), then 5 (3 against 7's 1; 10 was last), then 10 (8), then 7.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for &i in &order {
            match runs.last_mut() {
                Some((s, n)) if *s == sizes[i] => *n += 1,
                _ => runs.push((sizes[i], 1)),
            }
        }
        assert_eq!(runs, vec![(10, 16), (7, 16), (10, 16), (5, 3), (10, 8), (7, 1)]);
        // Within a size, the input order is kept.
        let tens: Vec<usize> = order.iter().copied().filter(|&i| sizes[i] == 10).collect();
        assert!(tens.windows(2).all(|w| w[0] < w[1]));
    }
}
