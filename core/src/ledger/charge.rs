//! What a placement takes from each GPU, by Kubernetes' init rule.
//!
//! Containers that run together (native sidecars and app containers) add up. An ordinary init
//! container runs alone, before the app containers, beside the sidecars started before it; the
//! kubelet hands its devices on to the containers after it. So on each GPU the pod is charged,
//! per resource (memory, compute, slots), the larger of what runs together there and what each
//! init phase uses there: Kubernetes' pod-level rule (`request/init.rs` in the kernel) applied
//! GPU by GPU. Without init containers the charge is the shares themselves.

use super::{ContainerPlacement, Placement};

/// The GPUs chosen for an ordinary init container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InitPlacement {
    /// Its name and shares.
    pub placement: ContainerPlacement,
    /// How many entries at the front of [`Placement::containers`] are native sidecars started
    /// before it (they hold their shares while it runs).
    pub sidecars_before: usize,
}

/// What a pod takes from one GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// GPU index on the node.
    pub gpu: usize,
    /// MiB of memory.
    pub mem_mib: u64,
    /// Thousandths of compute.
    pub core_milli: u32,
    /// Slots.
    pub slots: u32,
}

impl Charge {
    fn max(self, other: Charge) -> Charge {
        Charge {
            gpu: self.gpu,
            mem_mib: self.mem_mib.max(other.mem_mib),
            core_milli: self.core_milli.max(other.core_milli),
            slots: self.slots.max(other.slots),
        }
    }
}

impl Placement {
    /// What the pod takes from each GPU it uses; one entry per share when no init container
    /// holds GPUs, else one per GPU.
    pub fn charges(&self) -> Vec<Charge> {
        let one = |s: &super::Share| Charge {
            gpu: s.gpu,
            mem_mib: s.mem_mib,
            core_milli: s.core_milli,
            slots: 1,
        };
        if self.init.is_empty() {
            return self
                .containers
                .iter()
                .flat_map(|c| &c.shares)
                .map(one)
                .collect();
        }
        let mut out = per_gpu(&self.containers, []);
        for i in &self.init {
            let before = &self.containers[..i.sidecars_before.min(self.containers.len())];
            for phase in per_gpu(before, [&i.placement]) {
                match out.iter_mut().find(|c| c.gpu == phase.gpu) {
                    Some(c) => *c = c.max(phase),
                    None => out.push(phase),
                }
            }
        }
        out.sort_by_key(|c| c.gpu);
        out
    }
}

/// The shares of containers that run at once, summed per GPU.
fn per_gpu<'a>(
    together: &'a [ContainerPlacement],
    more: impl IntoIterator<Item = &'a ContainerPlacement>,
) -> Vec<Charge> {
    let mut out: Vec<Charge> = Vec::new();
    for s in together.iter().chain(more).flat_map(|c| &c.shares) {
        match out.iter_mut().find(|c| c.gpu == s.gpu) {
            Some(c) => {
                c.mem_mib = c.mem_mib.saturating_add(s.mem_mib);
                c.core_milli = c.core_milli.saturating_add(s.core_milli);
                c.slots += 1;
            }
            None => out.push(Charge {
                gpu: s.gpu,
                mem_mib: s.mem_mib,
                core_milli: s.core_milli,
                slots: 1,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Share;

    fn on(container: &str, shares: &[(usize, u64, u32)]) -> ContainerPlacement {
        ContainerPlacement {
            container: container.into(),
            shares: shares
                .iter()
                .map(|&(gpu, mem_mib, core_milli)| Share {
                    gpu,
                    mem_mib,
                    core_milli,
                })
                .collect(),
        }
    }

    fn charge(gpu: usize, mem_mib: u64, core_milli: u32, slots: u32) -> Charge {
        Charge {
            gpu,
            mem_mib,
            core_milli,
            slots,
        }
    }

    #[test]
    fn an_init_share_counts_only_where_it_exceeds_what_runs_together() {
        let placement = Placement {
            containers: vec![
                on("proxy", &[(0, 1024, 100)]),
                on("main", &[(0, 4096, 300)]),
            ],
            init: vec![
                InitPlacement {
                    placement: on("warm", &[(0, 8192, 200)]),
                    sidecars_before: 1,
                },
                InitPlacement {
                    placement: on("fetch", &[(1, 2048, 500)]),
                    sidecars_before: 0,
                },
            ],
        };
        // GPU 0: together 5120 MiB / 400, warm's phase 9216 / 300 → 9216 / 400, 2 slots.
        // GPU 1: only fetch's phase.
        assert_eq!(
            placement.charges(),
            [charge(0, 9216, 400, 2), charge(1, 2048, 500, 1)]
        );
    }

    #[test]
    fn without_init_containers_each_share_is_charged_as_it_is() {
        let placement = Placement {
            containers: vec![on("a", &[(0, 10, 1)]), on("b", &[(0, 20, 2)])],
            init: Vec::new(),
        };
        assert_eq!(
            placement.charges(),
            [charge(0, 10, 1, 1), charge(0, 20, 2, 1)]
        );
    }
}
