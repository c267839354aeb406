//! The Linux user a pod's GPU containers run as, as far as the spec says.
//!
//! An MPS control daemon without the multi-user server (`nvidia-cuda-mps-control -M`) runs one
//! MPS server at a time, with the UID of its first client; a client of another UID waits until
//! every client of that server has ended (measured on an H200: 31 s beside a short job, forever
//! beside a long one). On such a node the extender keeps every MPS client to one user, and this
//! is the user it compares.

use k8s_openapi::api::core::v1::{Container, Pod};

/// The user a pod's GPU containers run as.
///
/// `Unstated` (no `runAsUser` anywhere) is the image's user, which the scheduler cannot see;
/// pods that leave it unstated are taken to share it, as most GPU images run as root. A pod
/// whose GPU containers state different users is `Mixed`: on a single-user MPS node its own
/// containers would wait for each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum RunAs {
    /// No `runAsUser` on the container or the pod.
    #[default]
    Unstated,
    /// The container's (else the pod's) `securityContext.runAsUser`.
    Uid(i64),
    /// GPU containers with different users.
    Mixed,
}

impl RunAs {
    /// How the user is named in reasons and `tessera inspect`.
    pub fn describe(self) -> String {
        match self {
            RunAs::Unstated => "the image's user".to_string(),
            RunAs::Uid(uid) => format!("UID {uid}"),
            RunAs::Mixed => "several users".to_string(),
        }
    }
}

/// The user of the containers of `pod` named by `names` (the ones that hold GPUs).
pub fn run_as<'a>(pod: &Pod, names: impl IntoIterator<Item = &'a str>) -> RunAs {
    let Some(spec) = pod.spec.as_ref() else {
        return RunAs::Unstated;
    };
    let pod_uid = spec.security_context.as_ref().and_then(|s| s.run_as_user);
    // One pass over the containers: looking each name up in the list was quadratic (30k
    // containers took seconds per filter).
    let wanted: std::collections::HashSet<&str> = names.into_iter().collect();
    let mut found: Option<RunAs> = None;
    // Init containers and native sidecars that hold GPUs talk to the same MPS server.
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for container in all.filter(|c| wanted.contains(c.name.as_str())) {
        let user = container_user(container, pod_uid);
        match found {
            None => found = Some(user),
            Some(seen) if seen != user => return RunAs::Mixed,
            Some(_) => {}
        }
    }
    found.unwrap_or_default()
}

fn container_user(container: &Container, pod_uid: Option<i64>) -> RunAs {
    container
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        .or(pod_uid)
        .map_or(RunAs::Unstated, RunAs::Uid)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodSecurityContext, PodSpec, SecurityContext};

    use super::*;

    fn container(name: &str, uid: Option<i64>) -> Container {
        Container {
            name: name.into(),
            security_context: uid.map(|u| SecurityContext {
                run_as_user: Some(u),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(pod_uid: Option<i64>, containers: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers,
                security_context: pod_uid.map(|u| PodSecurityContext {
                    run_as_user: Some(u),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_container_user_wins_over_the_pods() {
        let p = pod(Some(1000), vec![container("gpu", Some(2000))]);
        assert_eq!(run_as(&p, ["gpu"]), RunAs::Uid(2000));
        let p = pod(Some(1000), vec![container("gpu", None)]);
        assert_eq!(run_as(&p, ["gpu"]), RunAs::Uid(1000));
        let p = pod(None, vec![container("gpu", None)]);
        assert_eq!(run_as(&p, ["gpu"]), RunAs::Unstated);
    }

    #[test]
    fn only_the_gpu_containers_count() {
        // A mesh sidecar running as 1337 does not make a GPU pod "mixed".
        let p = pod(
            None,
            vec![container("gpu", Some(1000)), container("proxy", Some(1337))],
        );
        assert_eq!(run_as(&p, ["gpu"]), RunAs::Uid(1000));
        assert_eq!(run_as(&p, ["gpu", "proxy"]), RunAs::Mixed);
    }
}
