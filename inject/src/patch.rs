//! JSON Patch (RFC 6902) building against the pod exactly as the apiserver sent it.
//!
//! A patch that does not apply fails the pod's creation even under `failurePolicy: Ignore`
//! (fixtures README), so every change is first collected in [`Changes`] and only then written as
//! operations: a missing array or map is added whole, an existing one is appended to, and map
//! keys are escaped (`~` as `~0`, `/` as `~1`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

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
    pub value: Option<Value>,
}

impl Op {
    fn add(path: String, value: Value) -> Op {
        Op {
            op: "add",
            path,
            value: Some(value),
        }
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
    pub env: Vec<Value>,
    pub mounts: Vec<Value>,
    /// Per resource list (`limits`, `requests`): keys to remove, then keys to set.
    pub resources: BTreeMap<&'static str, ResourceEdit>,
    /// A `preStop` hook for a container that has none.
    pub pre_stop: Option<Value>,
}

/// Everything one admission adds or changes, before it is written as a patch.
#[derive(Debug, Default)]
pub(super) struct Changes {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub existing: BTreeMap<usize, ContainerChanges>,
    /// Changes to the pod's existing init containers, by index as received.
    pub existing_init: BTreeMap<usize, ContainerChanges>,
    pub containers: Vec<Value>,
    pub init_containers: Vec<Value>,
    pub volumes: Vec<Value>,
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
            container_ops(&mut ops, &format!("/spec/containers/{i}"), c, ch);
        }
        // Before the injected init containers are inserted at the front: these paths index
        // the init containers as received.
        let init = pod.init_containers();
        for (i, ch) in self.existing_init {
            let Some(c) = init.get(i) else { continue };
            container_ops(&mut ops, &format!("/spec/initContainers/{i}"), c, ch);
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
                ops.push(Op::add(format!("/spec/initContainers/{k}"), c));
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

/// The operations for one existing container at `base`.
fn container_ops(ops: &mut Vec<Op>, base: &str, c: &ContainerView<'_>, ch: ContainerChanges) {
    append(ops, &format!("{base}/env"), c.env.is_some(), ch.env);
    append(
        ops,
        &format!("{base}/volumeMounts"),
        c.volume_mounts.is_some(),
        ch.mounts,
    );
    resource_ops(ops, base, c.resources.as_ref(), ch.resources);
    if let Some(hook) = ch.pre_stop {
        ops.push(match c.lifecycle {
            Some(_) => Op::add(format!("{base}/lifecycle/preStop"), hook),
            None => Op::add(
                format!("{base}/lifecycle"),
                serde_json::json!({"preStop": hook}),
            ),
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
            ops.push(Op::add(format!("{path}/{}", escape(&k)), Value::String(v)));
        }
    } else if !keys.is_empty() {
        let map = keys
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        ops.push(Op::add(path.to_string(), Value::Object(map)));
    }
}

/// Appends `items` to the array at `path`, adding the array when the pod has none.
fn append(ops: &mut Vec<Op>, path: &str, exists: bool, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    if exists {
        for v in items {
            ops.push(Op::add(format!("{path}/-"), v));
        }
    } else {
        ops.push(Op::add(path.to_string(), Value::Array(items)));
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
            format!("{base}/resources"),
            Value::Object(Default::default()),
        ));
    }
    for (list, (remove, set)) in changes {
        let exists = have.is_some_and(|r| match list {
            "limits" => r.limits.is_some(),
            _ => r.requests.is_some(),
        });
        let path = format!("{base}/resources/{list}");
        for key in remove {
            ops.push(Op {
                op: "remove",
                path: format!("{path}/{}", escape(&key)),
                value: None,
            });
        }
        if exists {
            for (k, v) in set {
                ops.push(Op::add(format!("{path}/{}", escape(&k)), Value::String(v)));
            }
        } else if !set.is_empty() {
            let map = set
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            ops.push(Op::add(path, Value::Object(map)));
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
