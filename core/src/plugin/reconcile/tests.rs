use super::*;
use crate::plugin::allocate::BindPhase;

fn share(uuid: &str, mem_mib: u64) -> GpuShare {
    GpuShare {
        uuid: uuid.into(),
        mem_mib,
        core_milli: 250,
    }
}

fn pod(name: &str, uuid: &str) -> PodView {
    PodView {
        namespace: "ml".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        phase: BindPhase::Allocated,
        bind_time_ms: Some(0),
        assignment: Some(Assignment {
            node: "gpu-1".into(),
            containers: vec![ContainerAssignment {
                container: "c".into(),
                init: false,
                gpus: vec![share(uuid, 4096)],
            }],
        }),
    }
}

fn held(name: &str, ids: &[&str]) -> Held {
    Held {
        namespace: "ml".into(),
        name: name.into(),
        container: "c".into(),
        device_ids: ids.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn two_same_size_pods_served_crosswise_get_their_real_gpus() {
    // Allocate served slot a::0 with A's assignment (GPU-a) but the kubelet gave it to B, and
    // slot b::0 with B's assignment (GPU-b) to A.
    let pods = [pod("a", "GPU-a"), pod("b", "GPU-b")];
    let served = BTreeMap::from([
        ("GPU-a::0".to_string(), vec![share("GPU-a", 4096)]),
        ("GPU-b::0".to_string(), vec![share("GPU-b", 4096)]),
    ]);
    let held = [held("a", &["GPU-b::0"]), held("b", &["GPU-a::0"])];
    let fixes = corrections("gpu-1", &held, &pods, &served);
    assert_eq!(fixes.len(), 2);
    assert_eq!(fixes[0].name, "a");
    assert_eq!(
        fixes[0].assignment.containers[0].gpus,
        vec![share("GPU-b", 4096)]
    );
    assert_eq!(fixes[0].changes, vec!["c: [\"GPU-a\"] -> [\"GPU-b\"]"]);
    assert_eq!(
        fixes[1].assignment.containers[0].gpus,
        vec![share("GPU-a", 4096)]
    );
}

#[test]
fn agreeing_pods_and_unknown_pods_need_nothing() {
    let pods = [pod("a", "GPU-a")];
    let served = BTreeMap::from([("GPU-a::0".to_string(), vec![share("GPU-a", 4096)])]);
    let held = [held("a", &["GPU-a::0"]), held("gone", &["GPU-b::0"])];
    assert!(corrections("gpu-1", &held, &pods, &served).is_empty());
}

#[test]
fn without_a_record_the_slots_gpus_replace_the_annotated_ones() {
    let pods = [pod("a", "GPU-a")];
    let fixes = corrections(
        "gpu-1",
        &[held("a", &["GPU-c::7"])],
        &pods,
        &BTreeMap::new(),
    );
    assert_eq!(
        fixes[0].assignment.containers[0].gpus,
        vec![share("GPU-c", 4096)]
    );
    let fine = corrections(
        "gpu-1",
        &[held("a", &["GPU-a::7"])],
        &pods,
        &BTreeMap::new(),
    );
    assert!(fine.is_empty());
}

#[test]
fn record_key_ignores_order() {
    let a = record_key(&["x::1".to_string(), "x::0".to_string()]);
    assert_eq!(a, record_key(&["x::0".to_string(), "x::1".to_string()]));
}

#[test]
fn without_a_record_a_pod_with_init_shares_is_not_moved_onto_its_slots_gpus() {
    // The app container holds the slot its init container ran on (the kubelet reuses it); its
    // assignment, on GPU-b, is where it runs.
    let mut p = pod("p", "GPU-b");
    if let Some(a) = p.assignment.as_mut() {
        a.containers.insert(
            0,
            ContainerAssignment {
                container: "warm".into(),
                init: true,
                gpus: vec![share("GPU-a", 4096)],
            },
        );
    }
    let fixes = corrections("gpu-1", &[held("p", &["GPU-a::0"])], &[p], &BTreeMap::new());
    assert!(fixes.is_empty(), "{fixes:?}");
}
