//! Mapping policy scores onto kube-scheduler's extender scale (integers 0–10).
//!
//! The scale is coarse and kube-scheduler adds its own plugins' scores, so the mapping keeps
//! the order of the policy's scores and spreads distinct values over the whole range by rank, on
//! a logarithmic scale: the best node alone gets 10 (so the policy's choice survives the coarse
//! scale), the next few get 9, 8, 7…, the worst 0, and equal scores stay equal. A linear min–max
//! mapping lets one outlier squash every other node onto one integer; a linear rank mapping puts
//! the best few percent of a large cluster all on 10, where kube-scheduler picks at random.

/// The highest score an extender may give.
pub const MAX_EXTENDER_SCORE: i64 = 10;

/// Extender scores (0–10) for `scores` (any totally ordered key, e.g. a tuple compared
/// lexicographically), in the same order.
pub fn to_extender_scale<T: PartialOrd + Copy>(scores: &[T]) -> Vec<i64> {
    // Rank = number of distinct better values; one sort of (score, position) pairs.
    let mut order: Vec<(T, usize)> = scores.iter().copied().zip(0..).collect();
    order.sort_unstable_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    let distinct = 1 + order.windows(2).filter(|w| w[0].0 != w[1].0).count();
    let worst = (distinct.max(2) as f64).ln();
    // The score falls by one each time ln(1 + rank) passes another tenth of ln(distinct):
    // walking the ranks in order, only those ten thresholds need a logarithm.
    let score_of = |rank: usize| {
        let fall = (MAX_EXTENDER_SCORE as f64 * (1.0 + rank as f64).ln() / worst).round() as i64;
        MAX_EXTENDER_SCORE - fall
    };
    let mut out = vec![0; scores.len()];
    let mut rank = 0;
    let mut score = score_of(0);
    let mut next_change = next_change_after(0, score, &score_of);
    for (k, &(value, i)) in order.iter().enumerate() {
        if k > 0 && value != order[k - 1].0 {
            rank += 1;
            if rank >= next_change {
                score = score_of(rank);
                next_change = next_change_after(rank, score, &score_of);
            }
        }
        out[i] = score;
    }
    out
}

/// The first rank after `rank` whose score differs from `score` (scores only fall with rank).
fn next_change_after(rank: usize, score: i64, score_of: &impl Fn(usize) -> i64) -> usize {
    // Exponential then binary search: a handful of logarithms per score step.
    let mut step = 1;
    while score_of(rank + step) == score && step < usize::MAX / 4 {
        if score == 0 {
            return usize::MAX;
        }
        step *= 2;
    }
    let (mut lo, mut hi) = (rank + step / 2, rank + step);
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        if score_of(mid) == score {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_gets_ten_worst_zero_and_order_and_ties_survive() {
        assert_eq!(to_extender_scale(&[3.0, 1e9, -5.0, 3.0]), vec![4, 10, 0, 4]);
        assert_eq!(to_extender_scale(&[7.0, 7.0]), vec![10, 10]);
        assert_eq!(to_extender_scale::<f64>(&[]), Vec::<i64>::new());
        let many: Vec<f64> = (0..40).map(f64::from).collect();
        let scaled = to_extender_scale(&many);
        assert!(scaled.windows(2).all(|w| w[0] <= w[1]), "{scaled:?}");
        assert_eq!((scaled[0], scaled[39]), (0, 10));
        assert_eq!(
            scaled.iter().filter(|s| **s == 10).count(),
            1,
            "the best node alone gets 10"
        );
    }

    /// The threshold walk gives exactly the per-rank formula, for any number of distinct values.
    #[test]
    fn the_walk_equals_the_formula_at_every_size() {
        for n in [1usize, 2, 3, 10, 57, 1000, 5001] {
            let scores: Vec<f64> = (0..n).map(|i| (i / 2) as f64).collect();
            let distinct = scores
                .iter()
                .map(|s| *s as i64)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let worst = (distinct.max(2) as f64).ln();
            let expected: Vec<i64> = scores
                .iter()
                .map(|s| {
                    let rank = distinct - 1 - *s as usize;
                    MAX_EXTENDER_SCORE
                        - (MAX_EXTENDER_SCORE as f64 * (1.0 + rank as f64).ln() / worst).round()
                            as i64
                })
                .collect();
            assert_eq!(to_extender_scale(&scores), expected, "n = {n}");
        }
    }
}
