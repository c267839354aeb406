use super::*;

const UID: &str = "0b2a5c1e-7d4f-4e8a-9c3b-1f2e3d4c5b6a";
const ID: &str = "4f1c9e2b7a3d5c6e8f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e";

fn owned() -> Option<CgroupOwner> {
    Some(CgroupOwner {
        pod_uid: UID.into(),
        container_id: ID.into(),
    })
}

#[test]
fn reads_the_kubelets_cgroup_forms() {
    let systemd_uid = UID.replace('-', "_");
    let cases = [
        (
            "cgroup v2, systemd driver, containerd, burstable",
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{systemd_uid}.slice/cri-containerd-{ID}.scope\n"
            ),
        ),
        (
            "cgroup v2, systemd driver, guaranteed pod (no QoS slice)",
            format!(
                "0::/kubepods.slice/kubepods-pod{systemd_uid}.slice/cri-containerd-{ID}.scope\n"
            ),
        ),
        (
            "cgroup v2, systemd driver, CRI-O, besteffort",
            format!(
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{systemd_uid}.slice/crio-{ID}.scope\n"
            ),
        ),
        (
            "cgroup v2 read from another cgroup namespace",
            format!(
                "0::/../../kubepods-burstable-pod{systemd_uid}.slice/cri-containerd-{ID}.scope\n"
            ),
        ),
        (
            "cgroup v2, the container made its own sub-cgroup",
            format!(
                "0::/kubepods.slice/kubepods-pod{systemd_uid}.slice/cri-containerd-{ID}.scope/init\n"
            ),
        ),
        (
            "cgroup v2, cgroupfs driver",
            format!("0::/kubepods/burstable/pod{UID}/{ID}\n"),
        ),
        (
            "cgroup v1, cgroupfs driver, several hierarchies",
            format!(
                "12:pids:/kubepods/besteffort/pod{UID}/{ID}\n11:memory:/kubepods/besteffort/pod{UID}/{ID}\n1:name=systemd:/kubepods/besteffort/pod{UID}/{ID}\n"
            ),
        ),
        (
            "cgroup v1, systemd driver, docker",
            format!(
                "5:cpu,cpuacct:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{systemd_uid}.slice/docker-{ID}.scope\n"
            ),
        ),
    ];
    for (name, text) in cases {
        assert_eq!(owner(&text), owned(), "{name}");
    }
}

#[test]
fn processes_outside_pods_have_no_owner() {
    let cases = [
        (
            "a host service",
            "0::/system.slice/containerd.service\n".to_string(),
        ),
        ("the root cgroup", "0::/\n".to_string()),
        ("empty file", String::new()),
        (
            "the pod's sandbox-level cgroup only",
            format!(
                "0::/kubepods.slice/kubepods-pod{}.slice\n",
                UID.replace('-', "_")
            ),
        ),
        (
            "a conmon scope is not a container",
            format!(
                "0::/kubepods.slice/kubepods-pod{}.slice/crio-conmon-{ID}.scope\n",
                UID.replace('-', "_")
            ),
        ),
        (
            "a UID of the wrong shape",
            format!("0::/kubepods/burstable/podnot-a-uid/{ID}\n"),
        ),
        (
            "a container ID of the wrong shape",
            format!("0::/kubepods/burstable/pod{UID}/abc\n"),
        ),
        (
            "a slice that is not the kubelet's",
            format!(
                "0::/user.slice/user-pod{}.slice/cri-containerd-{ID}.scope\n",
                UID.replace('-', "_")
            ),
        ),
    ];
    for (name, text) in cases {
        assert_eq!(owner(&text), None, "{name}");
    }
}

#[test]
fn the_v2_line_wins_over_v1_lines() {
    let other = "a".repeat(64);
    let text = format!("1:name=systemd:/kubepods/pod{UID}/{other}\n0::/kubepods/pod{UID}/{ID}\n");
    assert_eq!(owner(&text), owned());
}

#[test]
fn status_container_ids_lose_their_runtime_prefix() {
    assert_eq!(status_container_id(&format!("containerd://{ID}")), ID);
    assert_eq!(status_container_id(&format!("cri-o://{ID}")), ID);
    assert_eq!(status_container_id(ID), ID);
}
