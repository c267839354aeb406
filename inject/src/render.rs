//! [`mutate`]: the whole admission decision for one pod, from selection to the patch.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use serde_json::{Value, json};

use super::compile::Profile;
use super::identity::{Facts, MembershipLookup, Renderer, ReplicaLookup};
use super::parts::{self, Mount, Volume};
use super::patch::{Changes, EnvVar, Op, PatchValue, Shared};
use super::profile::Spiffe;
use super::select::{injected_names, select};
use super::view::PodView;
use super::{ENV_SPIFFE_ID, RenderError, TOKEN_MOUNT_PATH, TOKEN_VOLUME, bounds, gpu, group};
use tessera_kernel::keys;

/// What the webhook knows beyond the pod.
#[derive(Clone, Copy, Default)]
pub struct Context<'c> {
    /// The request's namespace.
    pub namespace: &'c str,
    /// Cluster DNS domain (`cluster.local`).
    pub cluster_domain: &'c str,
    /// The namespace's labels, when the webhook has them cached.
    pub namespace_labels: Option<&'c BTreeMap<String, String>>,
    /// Replica count of a StatefulSet in the namespace, when the webhook has it cached.
    pub replicas: Option<ReplicaLookup<'c>>,
    /// Recorded membership of a StatefulSet in the namespace, when there is one.
    pub membership: Option<MembershipLookup<'c>>,
    /// SPIFFE settings for injected pods whose profiles set none.
    pub spiffe: Option<&'c Spiffe>,
}

/// The decision for one pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Profiles applied by this patch, in name order.
    pub applied: Vec<String>,
    /// Selected profiles that the marker says were applied before.
    pub already: Vec<String>,
    /// The JSON Patch; empty means no patch.
    pub ops: Vec<Op>,
    /// Notes for the client.
    pub warnings: Vec<String>,
}

/// Decides what to inject into `pod` and builds the patch. A profile that cannot render is an
/// error and nothing is patched.
pub fn mutate(
    profiles: &[Profile],
    pod: &PodView<'_>,
    ctx: &Context<'_>,
) -> Result<Outcome, RenderError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or(ctx.namespace);
    if pod.spec.is_none() {
        return Ok(Outcome::default());
    }
    let sel = select(profiles, pod, namespace, ctx.namespace_labels);
    let mut out = Outcome {
        warnings: sel.warnings,
        ..Outcome::default()
    };
    let mut apply = sel.apply;
    let mut held = Vec::new();
    for p in sel.marked {
        // The marker is a claim anyone creating the pod can write: it counts only when the pod
        // already holds everything the profile adds.
        if holds(p, pod, namespace, ctx) {
            out.already.push(p.name.clone());
            held.push(p);
        } else {
            apply.push(p);
        }
    }
    if apply.is_empty() {
        return Ok(out);
    }
    apply.sort_by(|a, b| a.name.cmp(&b.name));
    // The SPIFFE settings of a profile applied earlier reach the containers added now.
    let spiffe = spiffe_of(apply.iter().chain(&held).copied(), ctx);
    let mut b = build(&apply, spiffe, pod, namespace, ctx, &mut out.warnings)?;
    let mut marker: BTreeSet<String> = injected_names(pod.annotation(keys::ANNOTATION_INJECTED))
        .into_iter()
        .filter(|(n, _)| !apply.iter().any(|p| p.name == *n))
        .map(|(n, h)| format!("{n}@{h}"))
        .collect();
    marker.extend(apply.iter().map(|p| p.parts.marker.clone()));
    b.changes.annotations.insert(
        keys::ANNOTATION_INJECTED.to_string(),
        marker.into_iter().collect::<Vec<_>>().join(","),
    );
    out.ops = b
        .finish(pod)
        .map_err(|problem| error(apply[0], "spec.identity", problem))?;
    out.applied = apply.iter().map(|p| p.name.clone()).collect();
    Ok(out)
}

/// True when applying `p` to `pod` again would change nothing.
fn holds(p: &Profile, pod: &PodView<'_>, namespace: &str, ctx: &Context<'_>) -> bool {
    let mut warnings = Vec::new();
    let spiffe = spiffe_of([p], ctx);
    build(&[p], spiffe, pod, namespace, ctx, &mut warnings)
        .ok()
        .and_then(|b| b.finish(pod).ok())
        .is_some_and(|ops| ops.is_empty())
}

/// The SPIFFE settings the pod's containers get, with their token volume: the first of
/// `profiles` that has its own (its volume built when it was compiled), else the webhook's.
fn spiffe_of<'a>(
    profiles: impl IntoIterator<Item = &'a Profile>,
    ctx: &Context<'a>,
) -> Option<(&'a Spiffe, Cow<'a, Volume>)> {
    profiles
        .into_iter()
        .find_map(|p| {
            Some((
                p.spec.spiffe.as_ref()?,
                Cow::Borrowed(p.parts.token.as_ref()?),
            ))
        })
        .or_else(|| ctx.spiffe.map(|s| (s, Cow::Owned(parts::token_volume(s)))))
}

/// Collects what `apply` (not empty, in name order) adds to `pod`.
fn build<'a>(
    apply: &[&'a Profile],
    spiffe: Option<(&Spiffe, Cow<'_, Volume>)>,
    pod: &'a PodView<'_>,
    namespace: &str,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Result<Builder<'a>, RenderError> {
    let Some(first) = apply.first() else {
        return Ok(Builder::new(pod));
    };
    bounds::check_containers(pod).map_err(|problem| error(first, "spec.containers", problem))?;
    bounds::check_names(pod, namespace).map_err(|problem| error(first, "pod names", problem))?;
    let mut b = Builder::new(pod);
    let facts = Facts::of(pod, namespace);
    let statefulset = facts
        .as_ref()
        .ok()
        .and_then(|f| f.member)
        .map(|(sts, _)| sts);
    for p in apply {
        b.sidecars(p);
        // Read once per profile: the identity and the group size both follow it.
        let record = record_of(p, statefulset, ctx);
        if p.spec.identity.is_some()
            && let Ok(Facts {
                member: Some((sts, ordinal)),
                ..
            }) = &facts
        {
            let known = ctx.replicas.and_then(|f| f(sts));
            bounds::check_ordinal(pod, *ordinal, known)
                .map_err(|problem| error(p, "spec.identity", problem))?;
        }
        if has_identity(p)
            && let Some(facts) = member_facts(&facts, p)?
        {
            b.identity(p, facts, ctx, record.as_ref())?;
            if let Some(m) = p.spec.identity.as_ref().and_then(|i| i.membership.as_ref()) {
                b.hold_stop(p, m, pod, facts)?;
            }
        }
        b.gpu(p, pod, warnings)?;
        group::apply(
            p,
            pod,
            ctx.replicas,
            record.as_ref(),
            &mut b.changes,
            warnings,
        )?;
    }
    if let Some((s, token)) = spiffe {
        let sa = facts.as_ref().map_or("default", |f| f.service_account);
        let id = ["spiffe://", &s.trust_domain, "/ns/", namespace, "/sa/", sa].concat();
        b.spiffe(id, &token);
    }
    Ok(b)
}

/// The recorded membership of `p`'s StatefulSet, when `p` keeps membership and one is recorded.
fn record_of(
    p: &Profile,
    statefulset: Option<&str>,
    ctx: &Context<'_>,
) -> Option<tessera_kernel::ensemble::Record> {
    p.membership_id.as_ref()?;
    // A record naming no voter describes no ensemble: render as before any record.
    ctx.membership
        .and_then(|f| f(statefulset?))
        .filter(|r| !r.voters.is_empty())
}

fn error(p: &Profile, field: &str, problem: super::RenderProblem) -> RenderError {
    RenderError {
        profile: p.name.clone(),
        field: field.into(),
        problem,
    }
}

fn has_identity(p: &Profile) -> bool {
    !p.env.is_empty() || !p.files.is_empty()
}

/// The pod's facts; `None` when the profile's templates need a StatefulSet member and the pod
/// is not one (such a pod gets no identity from that profile).
fn member_facts<'f>(
    facts: &'f Result<Facts<'f>, super::RenderProblem>,
    p: &Profile,
) -> Result<Option<&'f Facts<'f>>, RenderError> {
    match facts {
        Ok(f) if f.member.is_some() || !p.needs_member => Ok(Some(f)),
        Ok(_) => Ok(None),
        Err(problem) => Err(RenderError {
            profile: p.name.clone(),
            field: "spec.identity".into(),
            problem: problem.clone(),
        }),
    }
}

/// Collects the changes of every applied profile, skipping whatever the pod already has.
struct Builder<'a> {
    changes: Changes,
    /// Container names in the pod or added (containers and init containers share one space).
    names: BTreeSet<&'a str>,
    volumes: BTreeSet<&'a str>,
    /// Env vars and mounts for every app container, in order, first of a name wins.
    env: Vec<(&'a str, PatchValue)>,
    mounts: Vec<(&'a str, PatchValue)>,
    /// Bytes of identity rendered so far (see [`bounds::MAX_RENDERED_BYTES`]).
    rendered: usize,
}

/// The SPIFFE token's mount, the same in every pod.
static TOKEN_MOUNT: LazyLock<Mount> =
    LazyLock::new(|| parts::read_only_mount(TOKEN_VOLUME, TOKEN_MOUNT_PATH));

impl<'a> Builder<'a> {
    fn new(pod: &'a PodView<'_>) -> Builder<'a> {
        let names = pod
            .containers()
            .iter()
            .chain(pod.init_containers())
            .map(|c| c.name.as_str())
            .collect();
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .into_iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        Builder {
            changes: Changes::default(),
            names,
            volumes,
            env: Vec::new(),
            mounts: Vec::new(),
            rendered: 0,
        }
    }

    fn sidecars(&mut self, p: &'a Profile) {
        let native = p.spec.sidecars.as_ref().is_some_and(|s| s.native);
        for (name, value) in &p.containers {
            if !self.names.insert(name) {
                continue;
            }
            // Compiled with `restartPolicy: Always` when native.
            let list = if native {
                &mut self.changes.init_containers
            } else {
                &mut self.changes.containers
            };
            list.push(value.clone().into());
        }
        for (name, value) in &p.init_containers {
            if self.names.insert(name) {
                self.changes.init_containers.push(value.clone().into());
            }
        }
        for (name, value) in &p.volumes {
            self.add_volume(name, value);
        }
        for (path, value) in &p.app_mounts {
            self.add_mount(path, value);
        }
    }

    fn add_volume(&mut self, name: &'a str, value: &Shared) {
        if self.volumes.insert(name) {
            self.changes.volumes.push(value.clone().into());
        }
    }

    fn add_env(&mut self, name: &'a str, value: String) {
        if !self.env.iter().any(|(n, _)| *n == name) {
            let var = EnvVar {
                name: name.to_string(),
                value,
            };
            self.env.push((name, var.into()));
        }
    }

    /// Adds a mount for every app container, keyed by its path.
    fn add_mount(&mut self, path: &'a str, value: &Shared) {
        if !self.mounts.iter().any(|(p, _)| *p == path) {
            self.mounts.push((path, value.clone().into()));
        }
    }

    fn identity(
        &mut self,
        p: &'a Profile,
        facts: &Facts<'_>,
        ctx: &Context<'_>,
        record: Option<&tessera_kernel::ensemble::Record>,
    ) -> Result<(), RenderError> {
        let domain = p.cluster_domain(ctx.cluster_domain);
        let replicas = facts
            .member
            .and_then(|(sts, _)| ctx.replicas.and_then(|f| f(sts)));
        let r = Renderer {
            facts,
            profile: p,
            replicas,
            cluster_domain: domain,
            record,
            peer_list: Default::default(),
        };
        for (name, t) in &p.env {
            let value = r.render(format_args!("spec.identity.env[{name}]"), t)?;
            bounds::add_rendered(&mut self.rendered, value.len())
                .map_err(|problem| error(p, "spec.identity.env", problem))?;
            self.add_env(name, value);
        }
        if let (Some(peers), Some((sts, _))) = (&p.parts.peers, facts.member) {
            // Kept current by the peers controller; optional so a member starts before it exists.
            let cm = [sts, super::peers::CONFIGMAP_SUFFIX].concat();
            let value = json!({"name": peers.volume, "configMap": {"name": cm, "optional": true}});
            if self.volumes.insert(&peers.volume) {
                self.changes.volumes.push(value.into());
            }
            self.add_mount(&peers.mount.path, &peers.mount.value);
        }
        let Some(files) = &p.parts.files else {
            return Ok(());
        };
        for ((file, t), key) in p.files.iter().zip(&files.keys) {
            let text = r.render(format_args!("spec.identity.files.items[{file}]"), t)?;
            bounds::add_rendered(&mut self.rendered, text.len())
                .map_err(|problem| error(p, "spec.identity.files", problem))?;
            self.changes.annotations.insert(key.clone(), text);
        }
        self.add_volume(&files.volume.name, &files.volume.value);
        self.add_mount(&files.mount.path, &files.mount.value);
        Ok(())
    }

    /// Labels a member whose membership Tessera keeps and holds its stop while it votes.
    fn hold_stop(
        &mut self,
        p: &'a Profile,
        m: &super::profile::Membership,
        pod: &PodView<'_>,
        facts: &Facts<'_>,
    ) -> Result<(), RenderError> {
        let Some(parts) = p
            .parts
            .membership
            .as_ref()
            .filter(|_| facts.member.is_some())
        else {
            return Ok(());
        };
        let containers = pod.containers();
        let index = match &m.container {
            None => Some(0),
            Some(name) => containers
                .iter()
                .position(|c| c.name.as_str() == name.as_str()),
        };
        let Some(index) = index.filter(|i| *i < containers.len()) else {
            return Err(error(
                p,
                "spec.identity.membership.container",
                super::RenderProblem::NoSuchContainer(m.container.clone().unwrap_or_default()),
            ));
        };
        let has_hook = containers[index]
            .lifecycle
            .as_ref()
            .is_some_and(|l| l.pre_stop.is_some());
        // The label and the hook go together: a labelled member's hook is the one added before.
        let ours = pod.label(keys::LABEL_MEMBERSHIP) == Some(p.name.as_str());
        if has_hook && ours {
            return Ok(());
        }
        if has_hook {
            return Err(error(
                p,
                "spec.identity.membership",
                super::RenderProblem::PreStopTaken(containers[index].name.to_string()),
            ));
        }
        self.changes
            .labels
            .insert(keys::LABEL_MEMBERSHIP.to_string(), p.name.clone());
        self.add_volume(&parts.volume.name, &parts.volume.value);
        let ch = self.changes.existing.entry(index).or_default();
        ch.mounts.push(parts.mount.clone().into());
        ch.pre_stop = Some(parts.pre_stop.clone());
        Ok(())
    }

    fn spiffe(&mut self, id: String, token: &Volume) {
        self.add_env(ENV_SPIFFE_ID, id);
        if self.volumes.insert(TOKEN_VOLUME) {
            self.changes.volumes.push(token.value.clone().into());
        }
        self.add_mount(&TOKEN_MOUNT.path, &TOKEN_MOUNT.value);
    }

    /// Translates foreign GPU names and picks the Tessera scheduler for GPU pods.
    fn gpu(
        &mut self,
        p: &Profile,
        pod: &PodView<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<(), RenderError> {
        let Some(scheduler) = p.scheduler_name() else {
            return Ok(());
        };
        let problem = |problem| RenderError {
            profile: p.name.clone(),
            field: "spec.gpu".into(),
            problem,
        };
        gpu::refuse_ephemeral(pod.ephemeral_containers(), p.translation).map_err(problem)?;
        for (i, c) in pod.containers().iter().enumerate() {
            let ch = self.changes.existing.entry(i).or_default();
            gpu::translate(c, p.translation, ch).map_err(problem)?;
        }
        // Init containers and native sidecars hold GPUs the same way (the init rule is the
        // extender's); their edits go to their own list, by index in the pod as received.
        for (i, c) in pod.init_containers().iter().enumerate() {
            let ch = self.changes.existing_init.entry(i).or_default();
            gpu::translate(c, p.translation, ch).map_err(problem)?;
        }
        let all = pod.init_containers().iter().chain(pod.containers());
        if self.changes.scheduler_name.is_some() || !gpu::asks_for_gpu(all, p.translation) {
            return Ok(());
        }
        match pod.scheduler_name() {
            None | Some("default-scheduler") => {
                self.changes.scheduler_name = Some(scheduler.to_string());
            }
            Some(s) if s == scheduler => {}
            Some(other) => warnings.push(format!(
                "profile {:?}: the pod asks for GPUs but keeps its scheduler {other:?}, \
                 so the Tessera extender will not place it",
                p.name
            )),
        }
        Ok(())
    }

    /// Adds the collected env and mounts to every app container and writes the patch; the
    /// copies are counted against their budget before any is made.
    fn finish(mut self, pod: &PodView<'_>) -> Result<Vec<Op>, super::RenderProblem> {
        let per_container = self
            .env
            .iter()
            .chain(&self.mounts)
            .map(|(_, v)| v.json_len() + 1)
            .sum();
        let targets = pod.containers().len()
            + self.changes.containers.len()
            + self.changes.init_containers.len();
        bounds::check_copies(per_container, targets)?;
        for (i, c) in pod.containers().iter().enumerate() {
            let have_env: BTreeSet<&str> =
                c.env.iter().flatten().map(|e| e.name.as_str()).collect();
            let have_paths: BTreeSet<&str> = c
                .volume_mounts
                .iter()
                .flatten()
                .map(|m| m.mount_path.as_str())
                .collect();
            let ch = self.changes.existing.entry(i).or_default();
            ch.env.extend(
                self.env
                    .iter()
                    .filter(|(n, _)| !have_env.contains(n))
                    .map(|(_, v)| v.clone()),
            );
            ch.mounts.extend(
                self.mounts
                    .iter()
                    .filter(|(p, _)| !have_paths.contains(p))
                    .map(|(_, v)| v.clone()),
            );
        }
        // Injected sidecars, native ones included, get the identity too (a mesh proxy needs the
        // SPIFFE token more than the app); init containers that run to completion do not.
        let native = self
            .changes
            .init_containers
            .iter_mut()
            .filter(|c| c.as_value().is_some_and(|v| v["restartPolicy"] == "Always"));
        if !self.env.is_empty() || !self.mounts.is_empty() {
            for c in self.changes.containers.iter_mut().chain(native) {
                // The profile's container is shared: this pod's copy is built only here.
                let mut own = c.to_value();
                merge(&mut own, "env", "name", &self.env);
                merge(&mut own, "volumeMounts", "mountPath", &self.mounts);
                *c = PatchValue::Owned(own);
            }
        }
        Ok(self.changes.into_ops(pod))
    }
}

/// Appends `items` to the array `field` of an injected container, skipping keys it has.
fn merge(container: &mut Value, field: &str, key: &str, items: &[(&str, PatchValue)]) {
    if items.is_empty() {
        return;
    }
    let Some(obj) = container.as_object_mut() else {
        return;
    };
    let list = obj.entry(field).or_insert_with(|| Value::Array(Vec::new()));
    let Some(arr) = list.as_array_mut() else {
        return;
    };
    for (k, v) in items {
        if !arr.iter().any(|e| e[key].as_str() == Some(*k)) {
            arr.push(v.to_value());
        }
    }
}
