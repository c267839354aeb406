//! The parts of a profile's patch that do not depend on the pod: its marker entry, the volumes
//! and mounts of its identity, its membership hook and its SPIFFE token volume. They are built
//! and serialised once, when the profile is compiled, and every review shares them
//! ([`Shared`]) instead of building, writing and dropping the same JSON each time.

use serde_json::{Value, json};

use super::hold_stop::{MARKER_VOLUME, hold_stop_hook, marker_volume};
use super::patch::{PreStop, Shared};
use super::profile::{InjectionProfileSpec, Spiffe};
use super::{FILES_ANNOTATION_DOMAIN, TOKEN_VOLUME};

/// A volume the patch adds, by name.
#[derive(Debug, Clone)]
pub(super) struct Volume {
    pub name: String,
    pub value: Shared,
}

/// A mount added to every app container, by mount path.
#[derive(Debug, Clone)]
pub(super) struct Mount {
    pub path: String,
    pub value: Shared,
}

/// The peer list's volume and mount (the volume names the StatefulSet's ConfigMap, so only its
/// name is fixed here).
#[derive(Debug, Clone)]
pub(super) struct Peers {
    pub volume: String,
    pub mount: Mount,
}

/// The rendered files' projected volume and mount, and the annotation each file is read from.
#[derive(Debug, Clone)]
pub(super) struct Files {
    /// The annotation key of each file, in the order of the profile's file templates.
    pub keys: Vec<String>,
    pub volume: Volume,
    pub mount: Mount,
}

/// What a member whose membership Tessera keeps gets: the release marker's volume and mount
/// and the hook that holds its stop.
#[derive(Debug, Clone)]
pub(super) struct Membership {
    pub volume: Volume,
    pub mount: Shared,
    pub pre_stop: PreStop,
}

/// The pod-independent parts of one profile's patch.
#[derive(Debug, Clone)]
pub(super) struct Parts {
    /// `name@hash`: the profile's entry in the `tessera.dev/injected` marker.
    pub marker: String,
    pub peers: Option<Peers>,
    pub files: Option<Files>,
    pub membership: Option<Membership>,
    /// The projected token volume for the profile's own SPIFFE settings.
    pub token: Option<Volume>,
}

impl Parts {
    /// The parts of profile `name` (already validated) with hash `hash`; `files` names the
    /// file templates in order.
    pub fn of(name: &str, hash: &str, spec: &InjectionProfileSpec, files: &[String]) -> Parts {
        let identity = spec.identity.as_ref();
        Parts {
            marker: format!("{name}@{hash}"),
            peers: identity.and_then(|i| i.peers.as_ref()).map(|_| peers(name)),
            files: identity
                .and_then(|i| i.files.as_ref())
                .map(|f| files_parts(name, &f.mount_path, files)),
            membership: identity.and_then(|i| i.membership.as_ref()).map(membership),
            token: spec.spiffe.as_ref().map(token_volume),
        }
    }
}

fn peers(profile: &str) -> Peers {
    let volume = format!("tessera-{profile}-peers");
    let mount = read_only_mount(&volume, &peers_mount_path(profile));
    Peers { volume, mount }
}

fn files_parts(profile: &str, mount_path: &str, files: &[String]) -> Files {
    let keys: Vec<String> = files
        .iter()
        .map(|file| format!("{profile}.{FILES_ANNOTATION_DOMAIN}/{file}"))
        .collect();
    let items: Vec<Value> = files
        .iter()
        .zip(&keys)
        .map(|(file, key)| {
            let field = format!("metadata.annotations['{key}']");
            json!({"path": file, "fieldRef": {"fieldPath": field}})
        })
        .collect();
    let name = format!("tessera-{profile}-files");
    let value =
        json!({"name": name, "projected": {"sources": [{"downwardAPI": {"items": items}}]}});
    Files {
        keys,
        mount: read_only_mount(&name, mount_path),
        volume: Volume {
            name,
            value: Shared::new(value),
        },
    }
}

fn membership(m: &super::profile::Membership) -> Membership {
    let (volume, mount) = marker_volume();
    let hook = hold_stop_hook(m);
    let lifecycle = json!({ "preStop": hook });
    Membership {
        volume: Volume {
            name: MARKER_VOLUME.to_string(),
            value: Shared::new(volume),
        },
        mount: Shared::new(mount),
        pre_stop: PreStop {
            hook: Shared::new(hook),
            lifecycle: Shared::new(lifecycle),
        },
    }
}

/// The projected service-account token for SPIFFE settings `s`.
pub(super) fn token_volume(s: &Spiffe) -> Volume {
    let token = json!({"serviceAccountToken": {
        "audience": s.audience, "expirationSeconds": s.expiration_seconds, "path": "token"}});
    let value = json!({"name": TOKEN_VOLUME, "projected": {"sources": [token]}});
    Volume {
        name: TOKEN_VOLUME.to_string(),
        value: Shared::new(value),
    }
}

/// A read-only mount of `volume` at `path`, keyed by its path.
pub(super) fn read_only_mount(volume: &str, path: &str) -> Mount {
    Mount {
        path: path.to_string(),
        value: Shared::new(json!({"name": volume, "mountPath": path, "readOnly": true})),
    }
}

/// Where injected members see their peer list's ConfigMap: `/etc/tessera/<profile>-peers`.
pub fn peers_mount_path(profile: &str) -> String {
    format!("/etc/tessera/{profile}-peers")
}
