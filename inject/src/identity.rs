//! Identity facts of a pod and template rendering: the StatefulSet ordinal (label
//! `apps.kubernetes.io/pod-index`, else the `NAME-N` pod name), the headless service, replicas,
//! stable DNS names, the peer list, and the SPIFFE ID.

use std::cell::OnceCell;

use super::bounds;
use super::compile::Profile;
use super::template::{Template, Var};
use super::view::PodView;
use super::{RenderError, RenderProblem};
use tessera_kernel::ensemble::Record;
use tessera_kernel::keys;

/// Answers the recorded membership of a StatefulSet (by name, in the request's namespace).
pub type MembershipLookup<'c> = &'c dyn Fn(&str) -> Option<Record>;

/// Answers the replica count of a StatefulSet (by name, in the request's namespace).
pub type ReplicaLookup<'c> = &'c dyn Fn(&str) -> Option<u32>;

/// What the templates of one pod can refer to.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// Pod name (absent for `generateName` pods).
    pub pod: Option<&'a str>,
    /// Namespace.
    pub namespace: &'a str,
    /// Owning StatefulSet and the pod's ordinal in it.
    pub member: Option<(&'a str, u32)>,
    /// Headless service.
    pub service: Option<&'a str>,
    /// Service account.
    pub service_account: &'a str,
}

impl<'a> Facts<'a> {
    /// Reads the facts from `pod`. A StatefulSet member whose ordinal cannot be read is an error.
    pub fn of(pod: &'a PodView<'a>, namespace: &'a str) -> Result<Facts<'a>, RenderProblem> {
        let spec = pod.spec.as_ref();
        let pod_name = pod.metadata.name.as_deref();
        let member = match pod.statefulset() {
            None => None,
            Some(sts) => Some((sts, ordinal(pod, sts)?)),
        };
        Ok(Facts {
            pod: pod_name,
            namespace,
            member,
            service: spec.and_then(|s| s.subdomain.as_deref()),
            service_account: spec
                .and_then(|s| s.service_account_name.as_deref())
                .unwrap_or("default"),
        })
    }

    /// `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
    pub fn spiffe_id(&self, trust_domain: &str) -> String {
        format!(
            "spiffe://{trust_domain}/ns/{}/sa/{}",
            self.namespace, self.service_account
        )
    }
}

pub(super) fn ordinal(pod: &PodView<'_>, statefulset: &str) -> Result<u32, RenderProblem> {
    if let Some(v) = pod.label(keys::LABEL_POD_INDEX) {
        return v.parse().map_err(|_| {
            RenderProblem::BadOrdinal(format!("label {}={v:?}", keys::LABEL_POD_INDEX))
        });
    }
    let name = pod.metadata.name.as_deref().unwrap_or("");
    name.strip_prefix(statefulset)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| RenderProblem::BadOrdinal(format!("pod name {name:?}")))
}

/// Renders one profile's identity templates for one pod.
pub(super) struct Renderer<'f> {
    pub facts: &'f Facts<'f>,
    pub profile: &'f Profile,
    pub replicas: Option<u32>,
    pub cluster_domain: &'f str,
    /// The ensemble's recorded membership, when Tessera keeps it.
    pub record: Option<&'f Record>,
    /// `{{peers}}` as rendered for the pod, kept for the next template naming it.
    pub peer_list: OnceCell<String>,
}

impl Renderer<'_> {
    /// Renders `template`; `field` names it in errors (formatted only then).
    pub fn render(
        &self,
        field: impl std::fmt::Display,
        template: &Template,
    ) -> Result<String, RenderError> {
        let mut out = String::new();
        self.render_into(&mut out, template, None)
            .map_err(|problem| RenderError {
                profile: self.profile.name.clone(),
                field: field.to_string(),
                problem,
            })?;
        Ok(out)
    }

    /// Renders onto `out` as seen from peer `peer` (a peer list entry) or from the pod itself.
    fn render_into(
        &self,
        out: &mut String,
        template: &Template,
        peer: Option<u32>,
    ) -> Result<(), RenderProblem> {
        template.render_into(out, |var, out| self.value(var, peer, out))
    }

    /// Writes the value of `var` onto `out`.
    fn value(&self, var: Var, peer: Option<u32>, out: &mut String) -> Result<(), RenderProblem> {
        let f = self.facts;
        let known = match var {
            Var::Namespace => Some(f.namespace),
            Var::ClusterDomain => Some(self.cluster_domain),
            Var::ServiceAccount => Some(f.service_account),
            _ => None,
        };
        if let Some(text) = known {
            out.push_str(text);
            return Ok(());
        }
        let (sts, own) = f.member.ok_or(RenderProblem::NotStatefulSetMember)?;
        let service = || f.service.ok_or(RenderProblem::NoService);
        let pod_name = |out: &mut String| {
            match peer {
                Some(i) => {
                    out.push_str(sts);
                    out.push('-');
                    write_display(out, i);
                }
                None => out.push_str(f.pod.ok_or(RenderProblem::NoPodName)?),
            }
            Ok(())
        };
        match var {
            Var::Pod => pod_name(out)?,
            Var::Ordinal(offset) => {
                write_display(out, i64::from(peer.unwrap_or(own)) + offset);
            }
            Var::StatefulSet => out.push_str(sts),
            Var::Service => out.push_str(service()?),
            Var::Replicas => write_display(out, self.replicas()?),
            Var::Host => {
                pod_name(out)?;
                let service = service()?;
                for part in [".", service, ".", f.namespace, ".svc.", self.cluster_domain] {
                    out.push_str(part);
                }
            }
            Var::Peers if peer.is_some() => return Err(RenderProblem::NestedPeers),
            Var::Peers => self.peers(out)?,
            Var::Role => out.push_str(self.role(peer.unwrap_or(own))?),
            Var::Namespace | Var::ClusterDomain | Var::ServiceAccount => {}
        }
        Ok(())
    }

    fn replicas(&self) -> Result<u32, RenderProblem> {
        let known = self
            .replicas
            .or(self.profile.spec.identity.as_ref().and_then(|i| i.replicas))
            .ok_or(RenderProblem::NoReplicas)?;
        // Only a real pod's ordinal counts (the peers ConfigMap renders with a stand-in member 0).
        let own = self.facts.pod.and(self.facts.member).map(|(_, own)| own);
        bounds::check_replicas(at_least_member(known, own))
    }

    /// Writes the peer list, rendered once per renderer: templates often name it twice (an
    /// env var and a file).
    fn peers(&self, out: &mut String) -> Result<(), RenderProblem> {
        // Within the budget as a whole, the list rendered again would be the same text; past it,
        // it is rendered again to fail where it did.
        if let Some(list) = self.peer_list.get()
            && bounds::check_rendered(out.len() + list.len()).is_ok()
        {
            out.push_str(list);
            return Ok(());
        }
        let start = out.len();
        self.render_peers(out)?;
        let _ = self.peer_list.set(out[start..].to_string());
        Ok(())
    }

    fn render_peers(&self, out: &mut String) -> Result<(), RenderProblem> {
        let (Some(entry), Some(ids)) = (&self.profile.peer_entry, &self.profile.spec.identity)
        else {
            return Err(RenderProblem::NestedPeers);
        };
        let sep = ids.peers.as_ref().map_or(",", |p| p.separator.as_str());
        let members = self.members()?;
        for (k, i) in members.into_iter().enumerate() {
            if k > 0 {
                out.push_str(sep);
            }
            self.render_into(out, entry, Some(i))?;
            // Stop at the budget rather than render the whole list and measure it after.
            bounds::check_rendered(out.len())?;
        }
        Ok(())
    }
}

impl Renderer<'_> {
    /// The members the peer list names: every ordinal below the replicas, or, once Tessera
    /// records the membership, the recorded members plus the pod itself (a joining member
    /// starts knowing the current membership and itself as a learner).
    fn members(&self) -> Result<Vec<u32>, RenderProblem> {
        let Some(record) = self.record.filter(|_| self.profile.membership_id.is_some()) else {
            return Ok((0..self.replicas()?).collect());
        };
        let own = self.facts.pod.and(self.facts.member).map(|(_, own)| own);
        let mut members: Vec<u32> = record.voters.union(&record.learners).copied().collect();
        if let Some(own) = own.filter(|o| !record.knows(*o)) {
            members.push(own);
            members.sort_unstable();
        }
        bounds::check_replicas(u32::try_from(members.len()).unwrap_or(u32::MAX))?;
        Ok(members)
    }

    /// `{{role}}` of `member`: a voter when recorded as one (or, before any record, when below
    /// the replicas: a new ensemble starts with every member voting), else a learner.
    fn role(&self, member: u32) -> Result<&str, RenderProblem> {
        let roles = self
            .profile
            .spec
            .identity
            .as_ref()
            .and_then(|i| i.membership.as_ref())
            .map(|m| &m.roles)
            .ok_or(RenderProblem::NoMembership)?;
        let votes = match self.record {
            Some(r) => r.voters.contains(&member),
            None => member < self.replicas()?,
        };
        Ok(if votes { &roles.voter } else { &roles.learner })
    }
}

/// Appends `value` to `out` (writing to a `String` cannot fail).
fn write_display(out: &mut String, value: impl std::fmt::Display) {
    use std::fmt::Write;
    let _ = write!(out, "{value}");
}

/// `replicas`, raised to cover member `ordinal`: a pod `NAME-4` proves the ensemble has at least
/// five members even while the StatefulSet cache (or the profile's default) still says fewer, as
/// it does for a moment when a scale-out's pods are admitted.
pub(super) fn at_least_member(replicas: u32, ordinal: Option<u32>) -> u32 {
    ordinal.map_or(replicas, |o| replicas.max(o.saturating_add(1)))
}
