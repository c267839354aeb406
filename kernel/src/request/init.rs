//! Init containers and native sidecars: which of them hold GPUs at once with the app, and the
//! pod-level figure Kubernetes derives from them.
//!
//! Kubernetes' rule (KEP-753; `AggregateContainerRequests` in k8s.io/component-helpers
//! `resource/helpers.go`): init containers run one at a time, in order, before the app
//! containers; a native sidecar (an init container with `restartPolicy: Always`) keeps running
//! from its start until the pod ends. So the pod needs, at once, the larger of
//! (a) for each ordinary init container, its own request plus every sidecar started before it,
//! and (b) every sidecar plus every app container. Here the sidecars join the app containers in
//! [`super::PodRequest::containers`] (they hold their share for the pod's life) and each
//! ordinary init container remembers how many GPU sidecars ran before it.

use k8s_openapi::api::core::v1::Container;

use super::ContainerDemand;

/// An ordinary init container that asked for GPUs: it runs alone, after the sidecars before it
/// started and before any app container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitDemand {
    /// Its name and demand.
    pub container: ContainerDemand,
    /// How many entries at the front of [`super::PodRequest::containers`] are native sidecars
    /// started before it (they hold their shares while it runs).
    pub sidecars_before: usize,
}

/// True for a native sidecar: an init container with `restartPolicy: Always`.
pub fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// Host CPU (millicores) and memory (MiB) a container requests; unparsable values count as 0
/// because kube-scheduler, not Tessera, owns host resources.
pub(super) fn host_request(container: &Container) -> (u64, u64) {
    let Some(res) = container.resources.as_ref() else {
        return (0, 0);
    };
    let pick = |name: &str| {
        res.requests
            .as_ref()
            .and_then(|r| r.get(name))
            .or_else(|| res.limits.as_ref().and_then(|l| l.get(name)))
    };
    let cpu = pick("cpu")
        .and_then(|q| crate::quantity::parse_cpu_milli(&q.0).ok())
        .unwrap_or(0);
    let mem = pick("memory")
        .and_then(|q| crate::quantity::parse_mem_mib(&q.0).ok())
        .unwrap_or(0);
    (cpu, mem)
}

/// Host CPU (millicores) and memory (MiB) summed by Kubernetes' init rule, container by
/// container in spec order: init containers first, then the app containers.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct HostPhases {
    /// Every sidecar and app container: they run together.
    together: (u64, u64),
    /// The sidecars started so far.
    sidecars: (u64, u64),
    /// The largest init phase seen: an init container (or a sidecar's start) with the
    /// sidecars before it.
    init_peak: (u64, u64),
}

impl HostPhases {
    /// A native sidecar: runs from here on, beside everything after it.
    pub fn sidecar(&mut self, host: (u64, u64)) {
        self.together = add(self.together, host);
        self.sidecars = add(self.sidecars, host);
        self.init_peak = max(self.init_peak, self.sidecars);
    }

    /// An ordinary init container: runs alone beside the sidecars started before it.
    pub fn init(&mut self, host: (u64, u64)) {
        self.init_peak = max(self.init_peak, add(host, self.sidecars));
    }

    /// An app container.
    pub fn app(&mut self, host: (u64, u64)) {
        self.together = add(self.together, host);
    }

    /// The pod's effective request: each resource's larger phase.
    pub fn effective(&self) -> (u64, u64) {
        max(self.together, self.init_peak)
    }
}

// Saturating: a sum past u64 fits no node, which is the answer an overflow should give.
fn add(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0.saturating_add(b.0), a.1.saturating_add(b.1))
}

fn max(a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
    (a.0.max(b.0), a.1.max(b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, steps, expected)`: steps are ('s' sidecar | 'i' init | 'a' app, cpu milli).
    type Case<'a> = (&'a str, &'a [(char, u64)], u64);

    #[test]
    fn host_figure_is_the_larger_of_the_init_peak_and_everything_running_together() {
        let cases: &[Case<'_>] = &[
            ("apps only add up", &[('a', 100), ('a', 200)], 300),
            ("a big init wins", &[('i', 500), ('a', 100)], 500),
            (
                "inits do not add up",
                &[('i', 300), ('i', 400), ('a', 100)],
                400,
            ),
            ("a sidecar adds to the apps", &[('s', 50), ('a', 100)], 150),
            (
                "a sidecar before an init adds to it",
                &[('s', 50), ('i', 300), ('a', 100)],
                350,
            ),
            (
                "a sidecar after an init does not",
                &[('i', 300), ('s', 50), ('a', 100)],
                300,
            ),
        ];
        for (name, steps, want) in cases {
            let mut p = HostPhases::default();
            for (kind, cpu) in *steps {
                match kind {
                    's' => p.sidecar((*cpu, 0)),
                    'i' => p.init((*cpu, 0)),
                    _ => p.app((*cpu, 0)),
                }
            }
            assert_eq!(p.effective().0, *want, "{name}");
        }
    }
}
