//! `tessera dra-plugin` over its real unix sockets, with NVML answered by the stand-in and
//! claims in the `resource.k8s.io/v1` shape of `tests/fixtures/dra/`: registration as the
//! plugin watcher sees it, NodePrepareResources writing CDI specs with the MPS limits of the
//! capacity each claim consumed, idempotence, unprepare, and the checkpoint across a restart.

mod dra_plugin_support;

use dra_plugin_support::{GPU, Node, Running, large, named, small, spec_env};
use tessera_dra_plugin::api::pluginregistration::RegistrationStatus;

#[tokio::test]
async fn get_info_names_the_driver_its_dra_socket_and_the_v1_service() {
    let running = Running::start(Node::one_gpu()).await;
    let info = running.register().await;
    assert_eq!(info.r#type, "DRAPlugin");
    assert_eq!(info.name, "gpu.tessera.dev");
    assert_eq!(info.supported_versions, ["v1.DRAPlugin"]);
    let endpoint = running
        .node
        .kubelet_root()
        .join("plugins/gpu.tessera.dev/dra.sock");
    assert_eq!(info.endpoint, endpoint.display().to_string());
    assert!(running.plugin.shared().is_registered());
    running.stop().await;
}

#[tokio::test]
async fn two_claims_of_one_gpu_get_cdi_specs_with_their_own_limits_and_the_mps_mounts() {
    let running = Running::start(Node::one_gpu()).await;
    running.isolated().await;
    let (s, l) = (named(&small()), named(&large()));
    let answers = running.prepare(&[s.clone(), l.clone()]).await;
    for (answer, claim) in answers.iter().zip([&s, &l]) {
        assert_eq!(answer.error, "");
        let d = &answer.devices[0];
        assert_eq!(
            (d.pool_name.as_str(), d.device_name.as_str()),
            ("gpu-node-1", "gpu-0")
        );
        assert_eq!(d.request_names, ["gpu"]);
        assert_eq!(
            d.cdi_device_ids,
            [format!("gpu.tessera.dev/claim={}-0", claim.uid)]
        );
    }
    let node = &running.node;
    assert_eq!(node.cdi_files().len(), 2);
    for (claim, mem, percent) in [(&s, "0=8192M", "25"), (&l, "0=16384M", "50")] {
        let spec = node.cdi_spec(&format!("gpu.tessera.dev-claim_{}.json", claim.uid));
        assert_eq!(spec["cdiVersion"], "0.6.0");
        assert_eq!(spec["kind"], "gpu.tessera.dev/claim");
        assert_eq!(spec["devices"][0]["name"], format!("{}-0", claim.uid));
        let env = spec_env(&spec);
        assert_eq!(env["NVIDIA_VISIBLE_DEVICES"], GPU);
        assert_eq!(env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"], mem);
        assert_eq!(env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"], percent);
        let pipe = node.mps_root().join("pipe").display().to_string();
        assert_eq!(env["CUDA_MPS_PIPE_DIRECTORY"], pipe);
        assert_eq!(env["TESSERA_ALLOCATED_FOR"], format!("ml/{}", claim.name));
        let mounts = spec["devices"][0]["containerEdits"]["mounts"]
            .as_array()
            .unwrap();
        let pairs: Vec<(&str, &str)> = mounts
            .iter()
            .map(|m| {
                (
                    m["hostPath"].as_str().unwrap(),
                    m["containerPath"].as_str().unwrap(),
                )
            })
            .collect();
        let shm = node.mps_root().join("shm").display().to_string();
        assert_eq!(
            pairs,
            [(pipe.as_str(), pipe.as_str()), (shm.as_str(), "/dev/shm")]
        );
    }
    running.stop().await;
}

#[tokio::test]
async fn preparing_a_claim_twice_gives_the_same_answer_and_one_spec() {
    let running = Running::start(Node::one_gpu()).await;
    running.isolated().await;
    let s = named(&small());
    let first = running.prepare(std::slice::from_ref(&s)).await;
    let written = std::fs::metadata(
        running
            .node
            .cdi_dir()
            .join(format!("gpu.tessera.dev-claim_{}.json", s.uid)),
    )
    .unwrap()
    .modified()
    .unwrap();
    let second = running.prepare(std::slice::from_ref(&s)).await;
    assert_eq!(first, second);
    assert_eq!(running.node.cdi_files().len(), 1);
    let again = std::fs::metadata(
        running
            .node
            .cdi_dir()
            .join(format!("gpu.tessera.dev-claim_{}.json", s.uid)),
    )
    .unwrap()
    .modified()
    .unwrap();
    assert_eq!(written, again, "the spec is not rewritten");
    running.stop().await;
}

#[tokio::test]
async fn unprepare_removes_the_spec_and_an_unknown_claim_succeeds() {
    let running = Running::start(Node::one_gpu()).await;
    running.isolated().await;
    let (s, l) = (named(&small()), named(&large()));
    running.prepare(&[s.clone(), l.clone()]).await;
    let mut unknown = s.clone();
    unknown.uid = "00000000-dead-beef-0000-000000000000".into();
    let errors = running.unprepare(&[s.clone(), unknown]).await;
    assert_eq!(errors, ["", ""]);
    assert_eq!(
        running.node.cdi_files(),
        [format!("gpu.tessera.dev-claim_{}.json", l.uid)]
    );
    // Unpreparing again is done, too.
    assert_eq!(running.unprepare(std::slice::from_ref(&s)).await, [""]);
    running.stop().await;
}

#[tokio::test]
async fn a_restarted_plugin_keeps_the_claims_prepared_before() {
    let running = Running::start(Node::one_gpu()).await;
    running.isolated().await;
    let (s, l) = (named(&small()), named(&large()));
    let before = running.prepare(&[s.clone(), l.clone()]).await;
    let node = running.stop().await;
    assert!(node.config().checkpoint().exists());

    let restarted = Running::start(node).await;
    // No MPS wait: a prepared claim is answered from the checkpoint, not decided again.
    assert_eq!(restarted.prepare(&[s.clone(), l.clone()]).await, before);
    assert_eq!(restarted.node.cdi_files().len(), 2);
    assert_eq!(restarted.unprepare(std::slice::from_ref(&s)).await, [""]);
    let node = restarted.stop().await;

    let third = Running::start(node).await;
    assert_eq!(
        third.node.cdi_files(),
        [format!("gpu.tessera.dev-claim_{}.json", l.uid)]
    );
    assert_eq!(third.prepare(std::slice::from_ref(&l)).await, before[1..]);
    third.stop().await;
}

#[tokio::test]
async fn a_claim_that_cannot_be_served_fails_alone() {
    let running = Running::start(Node::one_gpu()).await;
    running.isolated().await;
    let mut missing = named(&small());
    missing.name = "no-such-claim".into();
    missing.uid = "99999999-0000-0000-0000-000000000000".into();
    let mut recreated = named(&large());
    recreated.uid = "11111111-2222-3333-4444-555555555555".into();
    let answers = running
        .prepare(&[missing, recreated, named(&small())])
        .await;
    assert!(
        answers[0].error.contains("no-such-claim"),
        "{}",
        answers[0].error
    );
    assert!(answers[1].error.contains("has UID"), "{}", answers[1].error);
    assert_eq!(answers[2].error, "");
    assert_eq!(running.node.cdi_files().len(), 1);
    running.stop().await;
}

#[tokio::test]
async fn no_share_is_prepared_while_the_mps_daemon_is_down() {
    let running = Running::start(Node::one_gpu()).await;
    running.isolated().await;
    running.node.set_mps_ready(false);
    running
        .slice_where(|s| dra_plugin_support::mps_live(s) == Some(false))
        .await;
    let answer = running.prepare(&[named(&small())]).await;
    assert!(
        answer[0].error.contains("MPS daemon"),
        "{}",
        answer[0].error
    );
    assert!(running.node.cdi_files().is_empty());
    running.stop().await;
}

#[tokio::test]
async fn a_refused_registration_is_offered_again_on_a_new_socket() {
    let running = Running::start(Node::one_gpu()).await;
    running.register().await;
    let socket = running.node.config().registration_socket();
    // Its bind time: a new socket may reuse the removed one's inode number.
    let made = std::fs::metadata(&socket).unwrap().modified().unwrap();
    running
        .registration()
        .await
        .notify_registration_status(RegistrationStatus {
            plugin_registered: false,
            error: "driver name conflicts".into(),
        })
        .await
        .unwrap();
    assert!(!running.plugin.shared().is_registered());
    tokio::time::timeout(std::time::Duration::from_secs(15), async {
        loop {
            let now = std::fs::metadata(&socket).and_then(|m| m.modified()).ok();
            if now.is_some_and(|t| t != made) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a new registration socket after the retry pause");
    running.register().await;
    assert!(running.plugin.shared().is_registered());
    running.stop().await;
}
