//! Which pod and container a process belongs to, read from the text of `/proc/<pid>/cgroup`.
//!
//! NVML names GPU processes by host PID only; the kubelet puts every container in a cgroup whose
//! path carries the pod UID and the container ID, so the cgroup file is the join between NVML
//! and the pods the device plugin watches. Reading the file is the device plugin's business;
//! this module only parses its text. The forms understood are the kubelet's two cgroup drivers:
//!
//! - systemd: `…/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope` (also `crio-`,
//!   `docker-`; the UID's `-` written as `_`, because systemd reserves `-` for nesting);
//! - cgroupfs: `…/kubepods/burstable/pod<uid>/<id>` (the UID as the API server writes it).
//!
//! The path may start with `/..` segments when the reader sits in its own cgroup namespace; only
//! the segments matter, so those are skipped like any other.

/// The pod and container a cgroup path names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CgroupOwner {
    /// Pod UID as the API server writes it (`-` separated).
    pub pod_uid: String,
    /// The runtime's container ID (hex), without a `containerd://` style prefix.
    pub container_id: String,
}

/// Runtime prefixes of a container's systemd scope name.
const SCOPE_PREFIXES: [&str; 4] = ["cri-containerd-", "crio-", "docker-", "cri-o-"];

/// The owner named by a `/proc/<pid>/cgroup` file: the cgroup v2 line (`0::…`) when it names a
/// container, else the first v1 line that does. `None` for a process outside any pod.
pub fn owner(cgroup_file: &str) -> Option<CgroupOwner> {
    let paths: Vec<&str> = cgroup_file
        .lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .collect();
    let v2 = cgroup_file
        .lines()
        .find_map(|line| line.strip_prefix("0::"));
    v2.into_iter().chain(paths).find_map(owner_of_path)
}

/// The owner named by one cgroup path.
pub fn owner_of_path(path: &str) -> Option<CgroupOwner> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segments.windows(2).find_map(|pair| {
        let pod_uid = pod_uid(pair[0])?;
        let container_id = container_id(pair[1])?;
        Some(CgroupOwner {
            pod_uid,
            container_id,
        })
    })
}

/// The pod UID of a pod's cgroup segment: `kubepods[-qos]-pod<uid>.slice` or `pod<uid>`.
fn pod_uid(segment: &str) -> Option<String> {
    let raw = match segment.strip_suffix(".slice") {
        Some(slice) if slice.starts_with("kubepods") => slice.rsplit_once("-pod")?.1,
        Some(_) => return None,
        None => segment.strip_prefix("pod")?,
    };
    let uid = raw.replace('_', "-");
    is_uid(&uid).then_some(uid)
}

/// The container ID of a container's cgroup segment: `<runtime>-<id>.scope` or `<id>`.
fn container_id(segment: &str) -> Option<String> {
    let id = match segment.strip_suffix(".scope") {
        Some(scope) => SCOPE_PREFIXES.iter().find_map(|p| scope.strip_prefix(p))?,
        None => segment,
    };
    is_container_id(id).then(|| id.to_string())
}

/// A Kubernetes UID: 36 characters, hex digits and four dashes (8-4-4-4-12).
fn is_uid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A runtime container ID: 64 hex digits for containerd, CRI-O and Docker.
fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The bare ID of a pod status' `containerID` (`containerd://<id>`, `cri-o://<id>`).
pub fn status_container_id(container_id: &str) -> &str {
    container_id
        .split_once("://")
        .map_or(container_id, |(_, id)| id)
}

#[cfg(test)]
mod tests;
