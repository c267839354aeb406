use std::collections::BTreeMap;

use super::*;
use crate::annotations::{ContainerAssignment, GpuShare};

const GPU0: &str = "GPU-0";
const GPU1: &str = "GPU-1";
const GIB: u64 = 1024 * MIB;

fn id(n: u8) -> String {
    format!("{n:064x}")
}

fn uid(n: u8) -> String {
    format!("00000000-0000-0000-0000-{n:012x}")
}

/// Pod `ml/<name>` with UID `uid(n)`, one started container `main` (ID `id(n)`) assigned
/// `mem_mib` on each of `gpus`.
fn pod(name: &str, n: u8, gpus: &[&str], mem_mib: u64) -> PodContainers {
    PodContainers {
        namespace: "ml".into(),
        name: name.into(),
        uid: uid(n),
        containers: vec![("main".into(), id(n))],
        assignment: Some(Assignment {
            node: "node-1".into(),
            containers: vec![ContainerAssignment {
                container: "main".into(),
                gpus: gpus
                    .iter()
                    .map(|g| GpuShare {
                        uuid: (*g).into(),
                        mem_mib,
                        core_milli: 250,
                    })
                    .collect(),
                init: false,
            }],
        }),
    }
}

fn owner(n: u8) -> CgroupOwner {
    CgroupOwner {
        pod_uid: uid(n),
        container_id: id(n),
    }
}

fn gpu(uuid: &str, procs: &[(u32, u64)], sm: Option<&[(u32, u32)]>) -> GpuProcesses {
    GpuProcesses {
        uuid: uuid.into(),
        processes: procs
            .iter()
            .map(|&(pid, used)| GpuProcess {
                pid,
                used_bytes: Some(used),
            })
            .collect(),
        sm_percent: sm.map(|s| s.iter().copied().collect()),
    }
}

fn row(u: &ContainerUsage) -> (&str, &str, u64, u64, Option<f64>) {
    (
        u.pod.as_str(),
        u.gpu.as_str(),
        u.used_bytes,
        u.limit_bytes,
        u.sm_ratio,
    )
}

#[test]
fn two_share_clients_on_one_gpu_are_told_apart_by_cgroup() {
    let gpus = [gpu(
        GPU0,
        &[(100, 3 * GIB), (200, 5 * GIB), (300, GIB)],
        Some(&[(100, 20), (200, 45)]),
    )];
    // PID 300 is the MPS server: it belongs to no share container.
    let owners = BTreeMap::from([(100, owner(1)), (200, owner(2))]);
    let pods = [pod("a", 1, &[GPU0], 4096), pod("b", 2, &[GPU0], 4096)];
    let got = join(&gpus, &owners, &pods);
    let rows: Vec<_> = got.iter().map(row).collect();
    assert_eq!(
        rows,
        vec![
            ("a", GPU0, 3 * GIB, 4 * GIB, Some(0.2)),
            ("b", GPU0, 5 * GIB, 4 * GIB, Some(0.45)),
        ]
    );
    assert!(!got[0].over_limit());
    assert!(got[1].over_limit(), "5 GiB used of a 4 GiB share");
}

#[test]
fn a_container_with_several_processes_and_gpus_sums_per_gpu() {
    let gpus = [
        gpu(
            GPU0,
            &[(10, GIB), (11, 2 * GIB)],
            Some(&[(10, 70), (11, 60)]),
        ),
        gpu(GPU1, &[(12, GIB)], None),
    ];
    let owners = BTreeMap::from([(10, owner(1)), (11, owner(1)), (12, owner(1))]);
    let got = join(&gpus, &owners, &[pod("a", 1, &[GPU0, GPU1], 8192)]);
    let rows: Vec<_> = got.iter().map(row).collect();
    assert_eq!(
        rows,
        vec![
            // 130 % across two processes in one window is capped at the whole GPU.
            ("a", GPU0, 3 * GIB, 8 * GIB, Some(1.0)),
            // No utilisation sampling on this GPU: no ratio rather than a false zero.
            ("a", GPU1, GIB, 8 * GIB, None),
        ]
    );
}

#[test]
fn idle_containers_show_zero_and_unknown_pids_count_for_nobody() {
    let gpus = [gpu(GPU0, &[(7, GIB), (8, 2 * GIB)], Some(&[]))];
    // PID 7 has no cgroup owner (it ended); PID 8 is a pod without a Tessera share.
    let owners = BTreeMap::from([(8, owner(9))]);
    let got = join(&gpus, &owners, &[pod("a", 1, &[GPU0], 1024)]);
    let rows: Vec<_> = got.iter().map(row).collect();
    assert_eq!(rows, vec![("a", GPU0, 0, GIB, Some(0.0))]);
}

#[test]
fn only_started_containers_with_a_share_on_a_known_gpu_are_counted() {
    let gpus = [gpu(GPU0, &[], None)];
    let mut not_started = pod("not-started", 1, &[GPU0], 1024);
    not_started.containers.clear();
    let mut no_assignment = pod("cpu-only", 2, &[GPU0], 1024);
    no_assignment.assignment = None;
    let elsewhere = pod("other-gpu", 3, &["GPU-unknown"], 1024);
    let got = join(
        &gpus,
        &BTreeMap::new(),
        &[not_started, no_assignment, elsewhere],
    );
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn a_restarted_container_is_matched_by_its_new_id_only() {
    let gpus = [gpu(GPU0, &[(1, GIB), (2, 2 * GIB)], None)];
    let mut a = pod("a", 1, &[GPU0], 4096);
    a.containers = vec![("main".into(), id(5))];
    // PID 1 is a leftover of the old container; PID 2 runs in the new one.
    let owners = BTreeMap::from([
        (1, owner(1)),
        (
            2,
            CgroupOwner {
                pod_uid: uid(1),
                container_id: id(5),
            },
        ),
    ]);
    let got = join(&gpus, &owners, &[a]);
    assert_eq!(got[0].used_bytes, 2 * GIB);
}
