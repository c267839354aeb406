//! JSON Patch (RFC 6902) building against the pod exactly as the apiserver sent it.
//!
//! A patch that does not apply fails the pod's creation even under `failurePolicy: Ignore`
//! (fixtures README), so every change is first collected in [`Changes`] and only then written as
//! operations: a missing array or map is added whole, an existing one is appended to, and map
//! keys are escaped (`~` as `~0`, `/` as `~1`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::view::{ContainerView, PodView, StrMap};

/// One JSON Patch operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    /// `add` or `remove`.
    pub op: &'static str,
    /// JSON Pointer into the pod.
    pub path: String,
    /// Value for `add`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<PatchValue>,
}

impl Op {
    fn add(path: String, value: impl Into<PatchValue>) -> Op {
        Op {
            op: "add",
            path,
            value: Some(value.into()),
        }
    }
}

/// The value of an `add`: what this pod needs, or what its profile adds to every pod. Each
/// form serialises as the JSON value it stands for, without building a [`Value`] tree for it.
#[derive(Debug, Clone)]
pub enum PatchValue {
    /// Built for this pod.
    Owned(Value),
    /// A constant of the profile, written as serialised when the profile was compiled.
    Shared(Shared),
    /// An env var rendered for this pod, one copy for every container that gets it.
    Env(Arc<EnvVar>),
    /// A string map added whole (labels, annotations, a resource list).
    Strings(BTreeMap<String, String>),
    /// An array added whole.
    List(Vec<PatchValue>),
}

impl PatchValue {
    /// The value as a JSON tree (built only for the forms that do not hold one).
    pub fn to_value(&self) -> Value {
        match self {
            PatchValue::Owned(v) => v.clone(),
            PatchValue::Shared(s) => s.value().clone(),
            PatchValue::Env(var) => serde_json::json!({"name": var.name, "value": var.value}),
            PatchValue::Strings(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
            PatchValue::List(items) => items.iter().map(PatchValue::to_value).collect(),
        }
    }

    /// The JSON tree when this value holds one.
    pub fn as_value(&self) -> Option<&Value> {
        match self {
            PatchValue::Owned(v) => Some(v),
            PatchValue::Shared(s) => Some(s.value()),
            PatchValue::Env(_) | PatchValue::Strings(_) | PatchValue::List(_) => None,
        }
    }

    /// Length as compact JSON.
    pub(super) fn json_len(&self) -> usize {
        match self {
            PatchValue::Shared(s) => s.json().get().len(),
            other => super::bounds::json_len(other),
        }
    }
}

impl From<Value> for PatchValue {
    fn from(v: Value) -> PatchValue {
        PatchValue::Owned(v)
    }
}

impl From<Shared> for PatchValue {
    fn from(s: Shared) -> PatchValue {
        PatchValue::Shared(s)
    }
}

/// Equal when they stand for the same JSON value.
impl PartialEq for PatchValue {
    fn eq(&self, other: &PatchValue) -> bool {
        self.to_value() == other.to_value()
    }
}

impl Serialize for PatchValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PatchValue::Owned(v) => v.serialize(s),
            PatchValue::Shared(shared) => shared.json().serialize(s),
            PatchValue::Env(var) => var.serialize(s),
            PatchValue::Strings(map) => map.serialize(s),
            PatchValue::List(items) => items.serialize(s),
        }
    }
}

/// `{"name": …, "value": …}`: the fields in the order of a JSON object's keys (sorted), as
/// a [`Value`] would write them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvVar {
    /// The variable's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

impl From<EnvVar> for PatchValue {
    fn from(var: EnvVar) -> PatchValue {
        PatchValue::Env(Arc::new(var))
    }
}

/// A part of the patch that depends on the profile alone: built and serialised once, when the
/// profile is compiled, and shared by every review (a clone counts a reference).
#[derive(Debug, Clone)]
pub struct Shared(Arc<(Value, Box<RawValue>)>);

impl Shared {
    pub(super) fn new(value: Value) -> Shared {
        // A JSON value always serialises; the fallback is never taken.
        let json =
            serde_json::value::to_raw_value(&value).unwrap_or_else(|_| RawValue::NULL.to_owned());
        Shared(Arc::new((value, json)))
    }

    /// The value.
    pub fn value(&self) -> &Value {
        &self.0.0
    }

    /// The value as compact JSON.
    fn json(&self) -> &RawValue {
        &self.0.1
    }
}

/// Escapes a map key for a JSON Pointer (RFC 6901).
pub fn escape(key: &str) -> Cow<'_, str> {
    if key.contains(['~', '/']) {
        Cow::Owned(key.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(key)
    }
}

/// Edits of one resource list: keys to remove, then keys to set.
pub(super) type ResourceEdit = (Vec<String>, Vec<(String, String)>);

/// Changes to one of the pod's existing containers.
#[derive(Debug, Default)]
pub(super) struct ContainerChanges {
    pub env: Vec<PatchValue>,
    pub mounts: Vec<PatchValue>,
    /// Per resource list (`limits`, `requests`): keys to remove, then keys to set.
    pub resources: BTreeMap<&'static str, ResourceEdit>,
    /// A `preStop` hook for a container that has none.
    pub pre_stop: Option<PreStop>,
}

/// A `preStop` hook, and the `lifecycle` holding only it (for a container without one).
#[derive(Debug, Clone)]
pub(super) struct PreStop {
    pub hook: Shared,
    pub lifecycle: Shared,
}

/// Everything one admission adds or changes, before it is written as a patch.
#[derive(Debug, Default)]
pub(super) struct Changes {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub existing: BTreeMap<usize, ContainerChanges>,
    /// Changes to the pod's existing init containers, by index as received.
    pub existing_init: BTreeMap<usize, ContainerChanges>,
    pub containers: Vec<PatchValue>,
    pub init_containers: Vec<PatchValue>,
    pub volumes: Vec<PatchValue>,
    pub scheduler_name: Option<String>,
}

impl Changes {
    /// Writes the changes as operations that apply to `pod` as received.
    pub fn into_ops(self, pod: &PodView<'_>) -> Vec<Op> {
        let mut ops = Vec::new();
        let spec = pod.spec.as_ref();
        let meta = &pod.metadata;
        set_keys(
            &mut ops,
            "/metadata/labels",
            meta.labels.as_ref(),
            self.labels,
        );
        set_keys(
            &mut ops,
            "/metadata/annotations",
            meta.annotations.as_ref(),
            self.annotations,
        );
        let containers = pod.containers();
        for (i, ch) in self.existing {
            let Some(c) = containers.get(i) else { continue };
            container_ops(&mut ops, &indexed("/spec/containers/", i), c, ch);
        }
        // Before the injected init containers are inserted at the front: these paths index
        // the init containers as received.
        let init = pod.init_containers();
        for (i, ch) in self.existing_init {
            let Some(c) = init.get(i) else { continue };
            container_ops(&mut ops, &indexed("/spec/initContainers/", i), c, ch);
        }
        let has_containers = spec.is_some_and(|s| s.containers.is_some());
        append(
            &mut ops,
            "/spec/containers",
            has_containers,
            self.containers,
        );
        let has_init = spec.is_some_and(|s| s.init_containers.is_some());
        if has_init {
            // Inserted in order at the front: injected init containers run first.
            for (k, c) in self.init_containers.into_iter().enumerate() {
                ops.push(Op::add(indexed("/spec/initContainers/", k), c));
            }
        } else {
            append(
                &mut ops,
                "/spec/initContainers",
                false,
                self.init_containers,
            );
        }
        let has_volumes = spec.is_some_and(|s| s.volumes.is_some());
        append(&mut ops, "/spec/volumes", has_volumes, self.volumes);
        if let Some(s) = self.scheduler_name {
            // `add` on an object member replaces it when present (RFC 6902, 4.1), so this
            // applies whether or not the apiserver defaulted the field.
            ops.push(Op::add("/spec/schedulerName".into(), Value::String(s)));
        }
        ops
    }
}

/// `prefix` followed by `index` (`/spec/containers/0`).
fn indexed(prefix: &str, index: usize) -> String {
    use std::fmt::Write;
    let mut path = String::with_capacity(prefix.len() + 4);
    path.push_str(prefix);
    // Writing to a String cannot fail.
    let _ = write!(path, "{index}");
    path
}

/// The operations for one existing container at `base`.
fn container_ops(ops: &mut Vec<Op>, base: &str, c: &ContainerView<'_>, ch: ContainerChanges) {
    append(ops, &[base, "/env"].concat(), c.env.is_some(), ch.env);
    append(
        ops,
        &[base, "/volumeMounts"].concat(),
        c.volume_mounts.is_some(),
        ch.mounts,
    );
    resource_ops(ops, base, c.resources.as_ref(), ch.resources);
    if let Some(p) = ch.pre_stop {
        ops.push(match c.lifecycle {
            Some(_) => Op::add([base, "/lifecycle/preStop"].concat(), p.hook),
            None => Op::add([base, "/lifecycle"].concat(), p.lifecycle),
        });
    }
}

/// Sets string `keys` in the map at `path`, adding the map whole when the pod has none (an
/// `add` below a missing map fails to apply). Keys that already hold the value are left out.
fn set_keys(
    ops: &mut Vec<Op>,
    path: &str,
    existing: Option<&StrMap<'_>>,
    keys: BTreeMap<String, String>,
) {
    if let Some(have) = existing {
        for (k, v) in keys {
            if have.get(k.as_str()).is_some_and(|h| h.as_str() == v) {
                continue;
            }
            ops.push(Op::add(key_path(path, &k), Value::String(v)));
        }
    } else if !keys.is_empty() {
        ops.push(Op::add(path.to_string(), PatchValue::Strings(keys)));
    }
}

/// The pointer to map key `key` of the map at `path`.
fn key_path(path: &str, key: &str) -> String {
    [path, "/", &escape(key)].concat()
}

/// Appends `items` to the array at `path`, adding the array when the pod has none.
fn append(ops: &mut Vec<Op>, path: &str, exists: bool, items: Vec<PatchValue>) {
    if items.is_empty() {
        return;
    }
    if exists {
        for v in items {
            ops.push(Op::add([path, "/-"].concat(), v));
        }
    } else {
        ops.push(Op::add(path.to_string(), PatchValue::List(items)));
    }
}

fn resource_ops(
    ops: &mut Vec<Op>,
    base: &str,
    have: Option<&super::view::ResourcesView<'_>>,
    changes: BTreeMap<&'static str, ResourceEdit>,
) {
    if changes.is_empty() {
        return;
    }
    if have.is_none() {
        ops.push(Op::add(
            [base, "/resources"].concat(),
            Value::Object(Default::default()),
        ));
    }
    for (list, (remove, set)) in changes {
        let exists = have.is_some_and(|r| match list {
            "limits" => r.limits.is_some(),
            _ => r.requests.is_some(),
        });
        let path = [base, "/resources/", list].concat();
        for key in remove {
            ops.push(Op {
                op: "remove",
                path: key_path(&path, &key),
                value: None,
            });
        }
        if exists {
            for (k, v) in set {
                ops.push(Op::add(key_path(&path, &k), Value::String(v)));
            }
        } else if !set.is_empty() {
            ops.push(Op::add(
                path,
                PatchValue::Strings(set.into_iter().collect()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_slash_and_tilde_in_keys() {
        assert_eq!(escape("tessera.dev/injected"), "tessera.dev~1injected");
        assert_eq!(escape("a~b/c"), "a~0b~1c");
        assert_eq!(escape("plain"), "plain");
    }
}
