//! The controller's metrics: membership changes by kind, ensembles waiting and why, and
//! ensembles below the fault tolerance their target promises.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of a membership change.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabels {
    /// `join`, `leave`, `release` or `restart`.
    pub kind: String,
}

/// Labels of a waiting ensemble.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WaitLabels {
    /// `namespace/statefulset`.
    pub ensemble: String,
    /// Why it waits.
    pub reason: String,
}

/// Metric handles.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Steps carried out.
    pub changes: Family<ChangeLabels, Counter>,
    /// 1 per ensemble and reason while its next step waits.
    pub waiting: Family<WaitLabels, Gauge>,
    /// Ensembles whose voters tolerate fewer losses than their target would.
    pub below_tolerance: Gauge,
    /// Steps that failed (a command that failed or could not run).
    pub failures: Counter,
}

impl Metrics {
    /// Registers the handles in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        registry.register(
            "tessera_ensemble_membership_changes",
            "Membership steps carried out, by kind",
            m.changes.clone(),
        );
        registry.register(
            "tessera_ensemble_steps_waiting",
            "1 while an ensemble's next step waits, by ensemble and reason",
            m.waiting.clone(),
        );
        registry.register(
            "tessera_ensemble_below_fault_tolerance",
            "Ensembles whose voters tolerate fewer member losses than their target size would",
            m.below_tolerance.clone(),
        );
        registry.register(
            "tessera_ensemble_step_failures",
            "Membership steps that failed or could not be run",
            m.failures.clone(),
        );
        m
    }
}
