//! A placement in its annotation form (`tessera.dev/gpu-assignment`) and back.
//!
//! The annotation lists containers in spec order: native sidecars and ordinary init containers
//! as they come in `initContainers`, then app containers; an ordinary init container is marked
//! `"init": true`. Reading it back, the unmarked entries before an init container are the
//! sidecars started before it (app containers come after every init container). Assignments
//! written before init containers were placed carry no mark and read as before.

use crate::annotations::{Assignment, ContainerAssignment, GpuShare};

use super::{ContainerPlacement, InitPlacement, LedgerError, NodeLedger, Placement, Share};

impl NodeLedger {
    /// The annotation form of a placement on this node (GPU indices become UUIDs).
    pub fn to_assignment(&self, placement: &Placement) -> Assignment {
        let entry = |c: &ContainerPlacement, init: bool| ContainerAssignment {
            container: c.container.clone(),
            gpus: c.shares.iter().map(|s| self.share_of(s)).collect(),
            init,
        };
        let mut containers = Vec::with_capacity(placement.containers.len() + placement.init.len());
        let mut together = placement.containers.iter();
        let mut emitted = 0;
        for i in &placement.init {
            while emitted < i.sidecars_before {
                let Some(c) = together.next() else { break };
                containers.push(entry(c, false));
                emitted += 1;
            }
            containers.push(entry(&i.placement, true));
        }
        containers.extend(together.map(|c| entry(c, false)));
        Assignment {
            node: self.name.clone(),
            containers,
        }
    }

    fn share_of(&self, s: &Share) -> GpuShare {
        GpuShare {
            uuid: self
                .gpus
                .get(s.gpu)
                .map(|g| g.ident.uuid.clone())
                .unwrap_or_default(),
            mem_mib: s.mem_mib,
            core_milli: s.core_milli,
        }
    }

    /// The placement an annotation describes on this node; unknown UUIDs are an error.
    pub fn placement_of(&self, assignment: &Assignment) -> Result<Placement, LedgerError> {
        let mut placement = Placement::default();
        for c in &assignment.containers {
            let mut shares = Vec::with_capacity(c.gpus.len());
            for s in &c.gpus {
                let gpu = self
                    .gpus
                    .iter()
                    .position(|g| g.ident.uuid == s.uuid)
                    .ok_or_else(|| LedgerError::UnknownGpu {
                        node: self.name.clone(),
                        uuid: s.uuid.clone(),
                    })?;
                shares.push(Share {
                    gpu,
                    mem_mib: s.mem_mib,
                    core_milli: s.core_milli,
                });
            }
            let container = ContainerPlacement {
                container: c.container.clone(),
                shares,
            };
            if c.init {
                placement.init.push(InitPlacement {
                    placement: container,
                    sidecars_before: placement.containers.len(),
                });
            } else {
                placement.containers.push(container);
            }
        }
        Ok(placement)
    }
}
