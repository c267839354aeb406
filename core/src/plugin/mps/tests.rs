use super::*;

fn gpu(uuid: &str, mps: bool) -> GpuInfo {
    GpuInfo {
        index: 0,
        uuid: uuid.into(),
        model: "H200".into(),
        memory_mib: 143_771,
        healthy: true,
        mig: false,
        mps,
        isolation: Isolation::None,
    }
}

fn share(uuid: &str, mem_mib: u64, core_milli: u32) -> GpuShare {
    GpuShare {
        uuid: uuid.into(),
        mem_mib,
        core_milli,
    }
}

fn status(gpus: &[&str], multi_user: bool) -> MpsStatus {
    MpsStatus {
        version: STATUS_VERSION.into(),
        gpus: gpus.iter().map(|g| (*g).to_string()).collect(),
        multi_user,
        heartbeat: 1_000,
    }
}

#[test]
fn status_round_trips_and_names_an_unknown_version() {
    let s = status(&["GPU-a"], true);
    assert_eq!(MpsStatus::decode(&s.encode()).unwrap(), s);
    let v2 = s.encode().replace("\"v1\"", "\"v2\"");
    assert_eq!(
        MpsStatus::decode(&v2).unwrap_err().to_string(),
        "MPS status file: unsupported version \"v2\" (this build reads \"v1\")"
    );
    assert!(s.is_fresh(1_010, 10));
    assert!(!s.is_fresh(1_011, 10), "a killed daemon's file goes stale");
}

#[test]
fn isolation_is_live_only_on_the_gpus_a_ready_daemon_holds() {
    let mut gpus = vec![
        gpu("GPU-a", true),
        gpu("GPU-b", true),
        gpu("GPU-old", false),
    ];
    apply_status(&mut gpus, Some(&status(&["GPU-a"], true)));
    let iso: Vec<Isolation> = gpus.iter().map(|g| g.isolation).collect();
    assert_eq!(
        iso,
        [Isolation::MpsMultiUser, Isolation::None, Isolation::None]
    );
    assert!(gpus.iter().all(|g| g.healthy));
    apply_status(&mut gpus, Some(&status(&["GPU-a"], false)));
    assert_eq!(gpus[0].isolation, Isolation::Mps);
}

#[test]
fn without_a_ready_daemon_mps_gpus_go_unhealthy_and_lose_isolation() {
    let mut gpus = vec![gpu("GPU-a", true), gpu("GPU-old", false)];
    apply_status(&mut gpus, None);
    assert!(!gpus[0].healthy, "a client now would run unlimited");
    assert!(
        gpus[1].healthy,
        "a GPU MPS cannot hold is not waiting for it"
    );
    assert!(gpus.iter().all(|g| g.isolation == Isolation::None));
}

#[test]
fn a_share_behind_mps_gets_the_pipe_and_shm_mounts() {
    let root = Path::new("/run/tessera/mps");
    let mut gpus = vec![gpu("GPU-a", true)];
    apply_status(&mut gpus, Some(&status(&["GPU-a"], true)));
    let client = client_for("n1", &[share("GPU-a", 8192, 250)], &gpus, Some(root))
        .unwrap()
        .unwrap();
    assert_eq!(
        client.env,
        [(
            "CUDA_MPS_PIPE_DIRECTORY".to_string(),
            "/run/tessera/mps/pipe".to_string()
        )]
    );
    let mounts: Vec<(&str, &str)> = client
        .mounts
        .iter()
        .map(|m| {
            (
                m.host_path.to_str().unwrap(),
                m.container_path.to_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        mounts,
        [
            ("/run/tessera/mps/pipe", "/run/tessera/mps/pipe"),
            ("/run/tessera/mps/shm", "/dev/shm")
        ]
    );
    // A whole GPU behind MPS is an MPS client too.
    let whole = client_for("n1", &[share("GPU-a", 143_771, 1000)], &gpus, Some(root)).unwrap();
    assert!(whole.is_some());
}

#[test]
fn allocate_refuses_gpus_the_node_lacks_is_unhealthy_or_cannot_isolate() {
    let root = Some(Path::new("/run/tessera/mps"));
    let mut gpus = vec![gpu("GPU-a", true), gpu("GPU-b", false)];
    apply_status(&mut gpus, Some(&status(&["GPU-a"], true)));
    let err = client_for("n1", &[share("GPU-gone", 1, 1)], &gpus, root).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the assignment names GPU GPU-gone, which node n1 does not have"
    );
    let err = client_for(
        "n1",
        &[share("GPU-a", 1, 1), share("GPU-b", 1, 1)],
        &gpus,
        root,
    )
    .unwrap_err();
    assert!(matches!(err, ShareRefused::Mixed { .. }), "{err}");
    gpus[1].healthy = false;
    let err = client_for("n1", &[share("GPU-b", 1, 1)], &gpus, root).unwrap_err();
    assert_eq!(err.to_string(), "GPU GPU-b on node n1 is unhealthy");
    apply_status(&mut gpus, None);
    let err = client_for("n1", &[share("GPU-a", 1, 1)], &gpus, root).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the MPS daemon of node n1 is not ready, so GPU GPU-a cannot isolate a share"
    );
}

#[test]
fn without_mps_a_share_gets_no_mounts() {
    let gpus = vec![gpu("GPU-a", true)];
    assert_eq!(
        client_for("n1", &[share("GPU-a", 1024, 100)], &gpus, None),
        Ok(None)
    );
}
