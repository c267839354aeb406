//! Choosing among equal scores as kube-scheduler does, shared by the engine's extender path and
//! the kube-scheduler model.

use tessera_core::rng::Rng;

/// Index of a highest score, uniformly at random among ties (reservoir sampling, as
/// kube-scheduler picks among equally scored nodes).
pub(crate) fn random_top(scores: &[i64], rng: &mut Rng) -> usize {
    let (mut best, mut seen) = (0, 0u64);
    for (k, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            (best, seen) = (k, 1);
        } else if *s == scores[best] {
            seen += 1;
            if rng.below(seen) == 0 {
                best = k;
            }
        }
    }
    best
}
