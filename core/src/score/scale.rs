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
    // Rank = number of distinct better values; one sort instead of a search per node.
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| {
        scores[*b]
            .partial_cmp(&scores[*a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut ranks = vec![0usize; scores.len()];
    let mut rank = 0;
    for (k, &i) in order.iter().enumerate() {
        if k > 0 && scores[i] != scores[order[k - 1]] {
            rank += 1;
        }
        ranks[i] = rank;
    }
    let worst = ((rank + 1).max(2) as f64).ln();
    ranks
        .into_iter()
        .map(|rank| {
            let fall =
                (MAX_EXTENDER_SCORE as f64 * (1.0 + rank as f64).ln() / worst).round() as i64;
            MAX_EXTENDER_SCORE - fall
        })
        .collect()
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
}
