//! Identity facts of a pod and template rendering: the StatefulSet ordinal (label
//! `apps.kubernetes.io/pod-index`, else the `NAME-N` pod name), the headless service, replicas,
//! stable DNS names, the peer list, and the SPIFFE ID.

use super::compile::Profile;
use super::template::{Template, Var};
use super::view::PodView;
use super::{RenderError, RenderProblem};
use crate::keys;

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
}

impl Renderer<'_> {
    /// Renders `template`; `field` names it in errors.
    pub fn render(&self, field: &str, template: &Template) -> Result<String, RenderError> {
        self.render_as(field, template, None)
    }

    /// Renders as seen from peer `peer` (the peer list entry) or from the pod itself.
    fn render_as(
        &self,
        field: &str,
        template: &Template,
        peer: Option<u32>,
    ) -> Result<String, RenderError> {
        let err = |problem| RenderError {
            profile: self.profile.name.clone(),
            field: field.to_string(),
            problem,
        };
        template.render(|var| self.value(var, peer, field).map_err(err))
    }

    fn value(&self, var: Var, peer: Option<u32>, field: &str) -> Result<String, RenderProblem> {
        let f = self.facts;
        match var {
            Var::Namespace => return Ok(f.namespace.to_string()),
            Var::ClusterDomain => return Ok(self.cluster_domain.to_string()),
            Var::ServiceAccount => return Ok(f.service_account.to_string()),
            _ => {}
        }
        let (sts, own) = f.member.ok_or(RenderProblem::NotStatefulSetMember)?;
        let ordinal = peer.unwrap_or(own);
        let service = || f.service.ok_or(RenderProblem::NoService);
        let pod_name = || match peer {
            Some(i) => Ok(format!("{sts}-{i}")),
            None => f.pod.map(str::to_string).ok_or(RenderProblem::NoPodName),
        };
        Ok(match var {
            Var::Pod => pod_name()?,
            Var::Namespace => f.namespace.to_string(),
            Var::Ordinal(_) => ordinal.to_string(),
            Var::StatefulSet => sts.to_string(),
            Var::Service => service()?.to_string(),
            Var::Replicas => self.replicas()?.to_string(),
            Var::ClusterDomain => self.cluster_domain.to_string(),
            Var::ServiceAccount => f.service_account.to_string(),
            Var::Host => format!(
                "{}.{}.{}.svc.{}",
                pod_name()?,
                service()?,
                f.namespace,
                self.cluster_domain
            ),
            Var::Peers if peer.is_some() => return Err(RenderProblem::NestedPeers),
            Var::Peers => self.peers(field)?,
        })
    }

    fn replicas(&self) -> Result<u32, RenderProblem> {
        let known = self
            .replicas
            .or(self.profile.spec.identity.as_ref().and_then(|i| i.replicas))
            .ok_or(RenderProblem::NoReplicas)?;
        // Only a real pod's ordinal counts (the peers ConfigMap renders with a stand-in member 0).
        let own = self.facts.pod.and(self.facts.member).map(|(_, own)| own);
        Ok(at_least_member(known, own))
    }

    fn peers(&self, field: &str) -> Result<String, RenderProblem> {
        let (Some(entry), Some(ids)) = (&self.profile.peer_entry, &self.profile.spec.identity)
        else {
            return Err(RenderProblem::NestedPeers);
        };
        let sep = ids.peers.as_ref().map_or(",", |p| p.separator.as_str());
        let mut out = Vec::new();
        for i in 0..self.replicas()? {
            out.push(
                self.render_as(field, entry, Some(i))
                    .map_err(|e| e.problem)?,
            );
        }
        Ok(out.join(sep))
    }
}

/// `replicas`, raised to cover member `ordinal`: a pod `NAME-4` proves the ensemble has at least
/// five members even while the StatefulSet cache (or the profile's default) still says fewer, as
/// it does for a moment when a scale-out's pods are admitted.
pub(super) fn at_least_member(replicas: u32, ordinal: Option<u32>) -> u32 {
    ordinal.map_or(replicas, |o| replicas.max(o.saturating_add(1)))
}
