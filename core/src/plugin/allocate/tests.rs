use super::*;
use crate::annotations::ContainerAssignment;

fn share(uuid: &str) -> GpuShare {
    GpuShare {
        uuid: uuid.into(),
        mem_mib: 4096,
        core_milli: 300,
    }
}

fn pod(name: &str, bind_time_ms: i64, containers: &[(&str, &[&str])]) -> PodView {
    PodView {
        namespace: "ml".into(),
        name: name.into(),
        uid: String::new(),
        phase: BindPhase::Allocating,
        bind_time_ms: Some(bind_time_ms),
        assignment: Some(Assignment {
            node: "gpu-1".into(),
            containers: containers
                .iter()
                .map(|(c, uuids)| ContainerAssignment {
                    container: (*c).into(),
                    init: false,
                    gpus: uuids.iter().map(|u| share(u)).collect(),
                })
                .collect(),
        }),
    }
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn oldest_allocating_pod_of_the_requested_size_wins() {
    let pods = [
        pod("young", 200, &[("c", &["GPU-a"])]),
        pod("old", 100, &[("c", &["GPU-b"])]),
    ];
    let m = match_request(
        "gpu-1",
        &pods,
        1,
        &ids(&["GPU-c::0"]),
        &ids(&["GPU-c"]),
        &[],
    )
    .unwrap();
    assert_eq!(
        (m.name.as_str(), m.shares[0].uuid.as_str()),
        ("old", "GPU-b")
    );
}

#[test]
fn a_container_assigned_exactly_the_slots_gpus_beats_an_older_one() {
    let pods = [
        pod("young", 200, &[("c", &["GPU-a"])]),
        pod("old", 100, &[("c", &["GPU-b"])]),
    ];
    let m = match_request(
        "gpu-1",
        &pods,
        1,
        &ids(&["GPU-a::3"]),
        &ids(&["GPU-a"]),
        &[],
    )
    .unwrap();
    assert_eq!(m.name, "young");
}

#[test]
fn served_containers_and_other_phases_and_nodes_are_skipped() {
    let mut done = pod("done", 1, &[("c", &["GPU-a"])]);
    done.phase = BindPhase::Allocated;
    let mut elsewhere = pod("elsewhere", 2, &[("c", &["GPU-a"])]);
    elsewhere.assignment.as_mut().unwrap().node = "gpu-2".into();
    let two = pod("two", 3, &[("a", &["GPU-a"]), ("b", &["GPU-b"])]);
    let served = vec![("ml/two".to_string(), "a".to_string())];
    let pods = [done, elsewhere, two];
    let m = match_request(
        "gpu-1",
        &pods,
        1,
        &ids(&["GPU-a::0"]),
        &ids(&["GPU-a"]),
        &served,
    )
    .unwrap();
    assert_eq!((m.name.as_str(), m.container.as_str()), ("two", "b"));
}

#[test]
fn no_match_names_node_request_and_candidates() {
    let pods = [pod("big", 1, &[("c", &["GPU-a", "GPU-b"])])];
    let err = match_request(
        "gpu-1",
        &pods,
        1,
        &ids(&["GPU-a::0"]),
        &ids(&["GPU-a"]),
        &[],
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no pod in bind-phase allocating on node gpu-1 has a container assigned 1 GPU(s) \
         (request [\"GPU-a::0\"]); candidates: ml/big[c=2]"
    );
    let err =
        match_request("gpu-1", &[], 1, &ids(&["GPU-a::0"]), &ids(&["GPU-a"]), &[]).unwrap_err();
    assert!(err.to_string().ends_with("candidates: none"), "{err}");
}

#[test]
fn pod_is_fully_served_once_every_gpu_container_is() {
    let p = pod("two", 3, &[("a", &["GPU-a"]), ("b", &["GPU-b"])]);
    let a = p.assignment.as_ref().unwrap();
    let mut served = vec![("ml/two".to_string(), "a".to_string())];
    assert!(!fully_served(a, "ml/two", &served));
    served.push(("ml/two".into(), "b".into()));
    assert!(fully_served(a, "ml/two", &served));
}

#[test]
fn preferred_slots_lie_on_the_assigned_gpus() {
    let m = Matched {
        namespace: "ml".into(),
        name: "p".into(),
        identity: "ml/p".into(),
        container: "c".into(),
        shares: vec![share("GPU-b"), share("GPU-c")],
    };
    let available = ids(&["GPU-a::0", "GPU-a::1", "GPU-b::0", "GPU-c::4", "GPU-c::5"]);
    assert_eq!(
        preferred_slots(Some(&m), &available, &[], 2),
        ids(&["GPU-b::0", "GPU-c::4"])
    );
    assert_eq!(
        preferred_slots(Some(&m), &available, &ids(&["GPU-c::5"]), 2),
        ids(&["GPU-c::5", "GPU-b::0"])
    );
    assert_eq!(
        preferred_slots(None, &available, &[], 1),
        ids(&["GPU-a::0"])
    );
}

#[test]
fn a_pod_re_created_under_a_served_name_is_a_new_pod() {
    // A StatefulSet member deleted and re-created on the node keeps its name, not its UID.
    let mut again = pod("db-0", 5, &[("c", &["GPU-a"])]);
    again.uid = "uid-2".into();
    let served = vec![("uid-1".to_string(), "c".to_string())];
    let m = match_request(
        "gpu-1",
        &[again],
        1,
        &ids(&["GPU-a::0"]),
        &ids(&["GPU-a"]),
        &served,
    )
    .unwrap();
    assert_eq!((m.name.as_str(), m.identity.as_str()), ("db-0", "uid-2"));
}

#[test]
fn after_an_init_container_the_kubelet_reusing_its_slot_is_matched_to_the_same_pod() {
    // `p`'s init container ran on GPU-a and was served; the kubelet hands its slot on to the
    // app container, assigned GPU-b. An older pod assigned exactly GPU-a must not take it.
    let mut with_init = pod("p", 200, &[("warm", &["GPU-a"]), ("main", &["GPU-b"])]);
    if let Some(a) = with_init.assignment.as_mut() {
        a.containers[0].init = true;
    }
    let pods = [pod("older", 100, &[("c", &["GPU-a"])]), with_init];
    let served = [("ml/p".to_string(), "warm".to_string())];
    let m = match_request(
        "gpu-1",
        &pods,
        1,
        &ids(&["GPU-a::0"]),
        &ids(&["GPU-a"]),
        &served,
    )
    .unwrap();
    assert_eq!(
        (
            m.name.as_str(),
            m.container.as_str(),
            m.shares[0].uuid.as_str()
        ),
        ("p", "main", "GPU-b")
    );
}
