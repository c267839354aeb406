//! Profile validation and compilation: a profile is checked once, when it is loaded, and turned
//! into the precomputed form the webhook renders per pod. Every error names the profile and the
//! field; one bad profile never stops the others from loading ([`compile_all`]).

use std::collections::BTreeSet;
use std::hash::Hasher;

use serde_json::Value;
use thiserror::Error;

use super::parts::Parts;
use super::patch::Shared;
use super::profile::{InjectionProfileSpec, Spiffe};
use super::template::{Template, TemplateProblem, Var};
use tessera_kernel::hash::Fnv;
use tessera_kernel::keys;
use tessera_kernel::request::Translation;

/// Longest profile name: volume names (`tessera-<profile>-files`) must stay DNS labels.
pub const MAX_PROFILE_NAME: usize = 48;

/// Why a profile is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("profile {profile:?}: {field}: {problem}")]
pub struct ProfileError {
    /// Profile name.
    pub profile: String,
    /// The field, as a path into the spec (`spec.identity.env[MYID]`).
    pub field: String,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with a profile field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Problem {
    /// A template that does not parse.
    #[error("template: {0}")]
    Template(TemplateProblem),
    /// A required value is empty.
    #[error("must not be empty")]
    Empty,
    /// Two entries with one name.
    #[error("duplicate name {0:?}")]
    Duplicate(String),
    /// Not a DNS label.
    #[error("{0:?} is not a DNS label (lowercase letters, digits, '-', at most {1} characters)")]
    NotDnsLabel(String, usize),
    /// A file name with a path in it.
    #[error("{0:?} must be a plain file name (letters, digits, '.', '_', '-'; at most 63)")]
    NotFileName(String),
    /// A relative mount path.
    #[error("{0:?} must be an absolute path")]
    NotAbsolute(String),
    /// A number out of range.
    #[error("{value} is out of range ({range})")]
    OutOfRange {
        /// The value given.
        value: i64,
        /// The allowed range.
        range: &'static str,
    },
    /// A label-selector operator Kubernetes does not have.
    #[error("unknown operator {0:?} (In, NotIn, Exists, DoesNotExist)")]
    Operator(String),
    /// A mount of a volume the profile does not add.
    #[error("volume {0:?} is not in spec.sidecars.volumes")]
    UnknownVolume(String),
    /// `{{peers}}` used without `identity.peers`.
    #[error("uses {{{{peers}}}} but spec.identity.peers is not set")]
    PeersUnset,
}

/// A profile ready to render: validated, templates parsed, sidecars and every other part that
/// does not depend on the pod serialised once.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Profile name.
    pub name: String,
    /// Hash of the spec, recorded in the `tessera.dev/injected` marker.
    pub hash: String,
    /// The spec as given.
    pub spec: InjectionProfileSpec,
    /// Sidecars as injected (native ones with `restartPolicy: Always`), by name.
    pub(super) containers: Vec<(String, Shared)>,
    pub(super) init_containers: Vec<(String, Shared)>,
    pub(super) volumes: Vec<(String, Shared)>,
    pub(super) env: Vec<(String, Template)>,
    pub(super) files: Vec<(String, Template)>,
    pub(super) peer_entry: Option<Template>,
    /// `identity.membership.id`, when Tessera keeps the ensemble's membership.
    pub membership_id: Option<Template>,
    pub(super) translation: Translation,
    /// Mounts for every app container, keyed by mount path.
    pub(super) app_mounts: Vec<(String, Shared)>,
    /// The other parts of the patch that do not depend on the pod.
    pub(super) parts: Parts,
    /// Some template needs a StatefulSet member (ordinal, pod name, service, peers…).
    pub(super) needs_member: bool,
}

impl Profile {
    /// Validates and compiles one profile.
    pub fn compile(name: &str, spec: InjectionProfileSpec) -> Result<Profile, ProfileError> {
        let err = |field: &str, problem| ProfileError {
            profile: name.to_string(),
            field: field.to_string(),
            problem,
        };
        if !is_dns_label(name, MAX_PROFILE_NAME) {
            return Err(err(
                "metadata.name",
                Problem::NotDnsLabel(name.into(), MAX_PROFILE_NAME),
            ));
        }
        for (field, sel) in [
            ("spec.selector", &spec.selector),
            ("spec.namespaceSelector", &spec.namespace_selector),
        ] {
            check_selector(sel.as_ref()).map_err(|p| err(field, p))?;
        }
        let sidecars = spec.sidecars.clone().unwrap_or_default();
        let mut seen = BTreeSet::new();
        let containers = named_values(&sidecars.containers, |c| &c.name, "containers", &mut seen)
            .map_err(|(f, p)| err(&format!("spec.sidecars.{f}"), p))?;
        let init = named_values(
            &sidecars.init_containers,
            |c| &c.name,
            "initContainers",
            &mut seen,
        )
        .map_err(|(f, p)| err(&format!("spec.sidecars.{f}"), p))?;
        for c in sidecars.containers.iter().chain(&sidecars.init_containers) {
            if c.image.as_deref().unwrap_or("").is_empty() {
                return Err(err(
                    &format!("spec.sidecars.containers[{}].image", c.name),
                    Problem::Empty,
                ));
            }
        }
        let volumes = named_values(
            &sidecars.volumes,
            |v| &v.name,
            "volumes",
            &mut BTreeSet::new(),
        )
        .map_err(|(f, p)| err(&format!("spec.sidecars.{f}"), p))?;
        let identity = spec.identity.clone().unwrap_or_default();
        let peer_entry = match &identity.peers {
            Some(p) => {
                Some(parse("spec.identity.peers.entry", &p.entry).map_err(|(f, p)| err(&f, p))?)
            }
            None => None,
        };
        let membership_id = match &identity.membership {
            Some(m) => {
                if peer_entry.is_none() {
                    return Err(err("spec.identity.membership", Problem::PeersUnset));
                }
                let named = [
                    ("commands.members", &m.commands.members),
                    ("commands.leader", &m.commands.leader),
                    ("commands.add", &m.commands.add),
                    ("commands.remove", &m.commands.remove),
                    ("commands.votes", &m.commands.votes),
                    ("roles.voter", &m.roles.voter),
                    ("roles.learner", &m.roles.learner),
                ];
                if let Some((f, _)) = named.iter().find(|(_, v)| v.trim().is_empty()) {
                    return Err(err(
                        &format!("spec.identity.membership.{f}"),
                        Problem::Empty,
                    ));
                }
                Some(parse("spec.identity.membership.id", &m.id).map_err(|(f, p)| err(&f, p))?)
            }
            None => None,
        };
        let mut env = Vec::new();
        for (key, text) in &identity.env {
            let field = format!("spec.identity.env[{key}]");
            if key.is_empty() {
                return Err(err(&field, Problem::Empty));
            }
            env.push((
                key.clone(),
                parse_identity(&field, text, peer_entry.is_some()).map_err(|(f, p)| err(&f, p))?,
            ));
        }
        let mut files = Vec::new();
        if let Some(f) = &identity.files {
            if !f.mount_path.starts_with('/') {
                return Err(err(
                    "spec.identity.files.mountPath",
                    Problem::NotAbsolute(f.mount_path.clone()),
                ));
            }
            for (file, text) in &f.items {
                let field = format!("spec.identity.files.items[{file}]");
                if !is_file_name(file) {
                    return Err(err(&field, Problem::NotFileName(file.clone())));
                }
                files.push((
                    file.clone(),
                    parse_identity(&field, text, peer_entry.is_some())
                        .map_err(|(f, p)| err(&f, p))?,
                ));
            }
        }
        if let Some(s) = &spec.spiffe {
            check_spiffe(s).map_err(|(f, p)| err(f, p))?;
        }
        let translation = spec
            .gpu
            .as_ref()
            .map_or(Translation::default(), |g| Translation {
                gpushare: g.gpushare,
                hami: g.hami,
            });
        if let Some(g) = &spec.gpu
            && let Some(s) = &g.scheduler_name
            && s.is_empty()
        {
            return Err(err("spec.gpu.schedulerName", Problem::Empty));
        }
        let mut app_mounts = Vec::new();
        for (i, m) in sidecars.app_volume_mounts.iter().enumerate() {
            let field = format!("spec.sidecars.appVolumeMounts[{i}]");
            if !m.mount_path.starts_with('/') {
                return Err(err(&field, Problem::NotAbsolute(m.mount_path.clone())));
            }
            if !volumes.iter().any(|(n, _)| *n == m.name) {
                return Err(err(&field, Problem::UnknownVolume(m.name.clone())));
            }
            let value = serde_json::to_value(m).unwrap_or(Value::Null);
            app_mounts.push((m.mount_path.clone(), Shared::new(value)));
        }
        let needs_member = env
            .iter()
            .chain(&files)
            .map(|(_, t)| t)
            .chain(&peer_entry)
            .flat_map(Template::vars)
            .any(|v| !matches!(v, Var::Namespace | Var::ClusterDomain | Var::ServiceAccount));
        let hash = spec_hash(&spec);
        let file_names: Vec<String> = files.iter().map(|(f, _)| f.clone()).collect();
        let mut containers = containers;
        if sidecars.native {
            // A native sidecar is an init container that keeps running.
            for (_, c) in &mut containers {
                c["restartPolicy"] = Value::from("Always");
            }
        }
        Ok(Profile {
            name: name.to_string(),
            app_mounts,
            needs_member,
            parts: Parts::of(name, &hash, &spec, &file_names),
            hash,
            containers: shared(containers),
            init_containers: shared(init),
            volumes: shared(volumes),
            env,
            files,
            peer_entry,
            membership_id,
            translation,
            spec,
        })
    }

    /// The cluster DNS domain of the profile's names: its own, else `default`.
    pub fn cluster_domain<'a>(&'a self, default: &'a str) -> &'a str {
        self.spec
            .identity
            .as_ref()
            .and_then(|i| i.cluster_domain.as_deref())
            .unwrap_or(default)
    }

    /// The scheduler name for shared-GPU pods, when the profile handles GPUs.
    pub fn scheduler_name(&self) -> Option<&str> {
        let gpu = self.spec.gpu.as_ref()?;
        Some(
            gpu.scheduler_name
                .as_deref()
                .unwrap_or(keys::SCHEDULER_NAME),
        )
    }
}

/// Compiles every profile; the invalid ones come back as errors beside the valid ones.
pub fn compile_all(
    profiles: impl IntoIterator<Item = (String, InjectionProfileSpec)>,
) -> (Vec<Profile>, Vec<ProfileError>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (name, spec) in profiles {
        match Profile::compile(&name, spec) {
            Ok(p) => ok.push(p),
            Err(e) => bad.push(e),
        }
    }
    ok.sort_by(|a, b| a.name.cmp(&b.name));
    (ok, bad)
}

type FieldError = (String, Problem);

fn parse(field: &str, text: &str) -> Result<Template, FieldError> {
    Template::parse(text).map_err(|p| (field.to_string(), Problem::Template(p)))
}

fn parse_identity(field: &str, text: &str, has_peers: bool) -> Result<Template, FieldError> {
    let t = parse(field, text)?;
    if !has_peers && t.vars().any(|v| v == Var::Peers) {
        return Err((field.to_string(), Problem::PeersUnset));
    }
    Ok(t)
}

fn shared(values: Vec<(String, Value)>) -> Vec<(String, Shared)> {
    values
        .into_iter()
        .map(|(name, v)| (name, Shared::new(v)))
        .collect()
}

fn named_values<T: serde::Serialize>(
    items: &[T],
    name: impl Fn(&T) -> &String,
    field: &str,
    seen: &mut BTreeSet<String>,
) -> Result<Vec<(String, Value)>, FieldError> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let n = name(item);
        if !is_dns_label(n, 63) {
            return Err((
                format!("{field}[{i}].name"),
                Problem::NotDnsLabel(n.clone(), 63),
            ));
        }
        if !seen.insert(n.clone()) {
            return Err((format!("{field}[{i}].name"), Problem::Duplicate(n.clone())));
        }
        // k8s-openapi types are plain data: serialising them cannot fail.
        let value = serde_json::to_value(item).unwrap_or(Value::Null);
        out.push((n.clone(), value));
    }
    Ok(out)
}

fn check_selector(
    sel: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Result<(), Problem> {
    for expr in sel
        .iter()
        .flat_map(|s| s.match_expressions.iter().flatten())
    {
        if !matches!(
            expr.operator.as_str(),
            "In" | "NotIn" | "Exists" | "DoesNotExist"
        ) {
            return Err(Problem::Operator(expr.operator.clone()));
        }
    }
    Ok(())
}

fn check_spiffe(s: &Spiffe) -> Result<(), (&'static str, Problem)> {
    if s.trust_domain.is_empty() || s.trust_domain.contains('/') {
        return Err(("spec.spiffe.trustDomain", Problem::Empty));
    }
    if s.audience.is_empty() {
        return Err(("spec.spiffe.audience", Problem::Empty));
    }
    if !(600..=2 * 24 * 3600 * 365).contains(&s.expiration_seconds) {
        return Err((
            "spec.spiffe.expirationSeconds",
            Problem::OutOfRange {
                value: s.expiration_seconds,
                range: "600 to 63072000 seconds",
            },
        ));
    }
    Ok(())
}

/// RFC 1123 label of at most `max` characters.
pub(super) fn is_dns_label(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A name usable both as a file name and as the name part of an annotation key.
fn is_file_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// FNV-1a of the spec's JSON, 16 hex digits. Struct fields and maps serialise in a fixed order,
/// so the same spec always gives the same hash.
fn spec_hash(spec: &InjectionProfileSpec) -> String {
    let mut h = Fnv::default();
    h.write(serde_json::to_string(spec).unwrap_or_default().as_bytes());
    format!("{:016x}", h.finish())
}
