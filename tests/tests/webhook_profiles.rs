//! The shipped profiles (manifests/profiles/) against AdmissionReviews a real kube-apiserver
//! sent (tests/fixtures/admission, see its README), over real HTTPS: each patch applies to the
//! object as received, the result reads as a k8s-openapi Pod holding what the profile says, the
//! patch equals the golden one beside the fixtures, and sending the patched pod again (as a
//! reinvocation would, with a new uid) gets no patch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod webhook_support;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};
use webhook_support::{Client, Server, admitted_as_golden, fixture, patch_of, server_and_client};

/// Posts `review`, applies the patch, checks the golden patch and the second pass.
async fn inject(client: &mut Client, case: &str, review: &Value) -> (Pod, Value) {
    admitted_as_golden(client, "/mutate", case, review, &["/mutate"]).await
}

fn env_of(c: &Container) -> BTreeMap<String, String> {
    c.env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

async fn setup() -> (Server, Client) {
    server_and_client("profiles-test").await
}

/// A captured StatefulSet pod turned into member `ordinal` of StatefulSet `sts` labelled `app`.
fn member(from: &str, sts: &str, app: &str, ordinal: u32) -> Value {
    let mut r = fixture(from);
    let name = format!("{sts}-{ordinal}");
    r["request"]["name"] = json!(name);
    let o = &mut r["request"]["object"];
    o["metadata"]["name"] = json!(name);
    o["metadata"]["generateName"] = json!(format!("{sts}-"));
    o["metadata"]["labels"] = json!({"app": app, "apps.kubernetes.io/pod-index": ordinal.to_string(),
        "statefulset.kubernetes.io/pod-name": name});
    o["metadata"]["ownerReferences"][0]["name"] = json!(sts);
    o["spec"]["hostname"] = json!(name);
    o["spec"]["subdomain"] = json!(format!("{sts}-hs"));
    r
}

#[tokio::test]
async fn zookeeper_members_get_myid_and_the_server_list() {
    let (_server, mut client) = setup().await;
    for (ordinal, file) in [
        (0, "pod-statefulset-zk-0.request.json"),
        (1, "pod-statefulset-zk-1.request.json"),
    ] {
        let (pod, _) = inject(
            &mut client,
            &format!("zookeeper-zk-{ordinal}"),
            &fixture(file),
        )
        .await;
        let env = env_of(&pod.spec.as_ref().unwrap().containers[0]);
        assert_eq!(env["ZOO_MY_ID"], (ordinal + 1).to_string());
        assert_eq!(
            env["ZOO_SERVERS"],
            (0..3)
                .map(|o| {
                    let h = format!("zk-{o}.zk-hs.default.svc.cluster.local");
                    format!("server.{}={h}:2888:3888:participant;{h}:2181", o + 1)
                })
                .collect::<Vec<_>>()
                .join(" ")
        );
        let ann = pod.metadata.annotations.clone().unwrap();
        assert_eq!(
            ann["zookeeper.files.tessera.dev/myid"],
            (ordinal + 1).to_string()
        );
        assert!(ann["tessera.dev/injected"].starts_with("zookeeper@"));
        // A quorum group: handed to the Tessera scheduler with the labels its extender reads.
        let labels = pod.metadata.labels.clone().unwrap();
        assert_eq!(labels["tessera.dev/group"], "zk");
        assert_eq!(labels["tessera.dev/quorum"], "true");
        assert_eq!(labels["tessera.dev/group-size"], "3");
        assert_eq!(
            tessera_core::request::pod_group(&pod),
            Some(tessera_core::request::Group {
                key: "default/zk".into(),
                quorum: true,
                size: Some(3)
            })
        );
        let spec = pod.spec.unwrap();
        assert_eq!(spec.scheduler_name.as_deref(), Some("tessera-scheduler"));
        let peers = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "tessera-zookeeper-peers")
            .unwrap();
        let cm = peers.config_map.as_ref().unwrap();
        assert_eq!((cm.name.as_str(), cm.optional), ("zk-peers", Some(true)));
        let mounts = spec.containers[0].volume_mounts.clone().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.mount_path == "/etc/tessera/zookeeper-peers")
        );
        assert!(
            mounts
                .iter()
                .any(|m| m.mount_path == "/etc/tessera/zookeeper" && m.read_only == Some(true))
        );
    }
}

#[tokio::test]
async fn rocketmq_broker_gets_broker_name_id_and_nameserver() {
    let (_server, mut client) = setup().await;
    let review = member(
        "pod-statefulset-zk-1.request.json",
        "broker",
        "rocketmq-broker",
        1,
    );
    let (pod, _) = inject(&mut client, "rocketmq-broker-1", &review).await;
    let env = env_of(&pod.spec.as_ref().unwrap().containers[0]);
    assert_eq!(env["BROKER_NAME"], "broker-1");
    assert_eq!(env["BROKER_ID"], "0");
    assert_eq!(
        env["NAMESRV_ADDR"],
        "rocketmq-namesrv.default.svc.cluster.local:9876"
    );
    // Spread, not a quorum; the profile names no replica count, so no size label.
    let labels = pod.metadata.labels.clone().unwrap();
    assert_eq!(labels["tessera.dev/group"], "broker");
    assert!(
        !labels.contains_key("tessera.dev/quorum")
            && !labels.contains_key("tessera.dev/group-size")
    );
    assert_eq!(
        pod.spec.as_ref().unwrap().scheduler_name.as_deref(),
        Some("tessera-scheduler")
    );
    let conf = &pod.metadata.annotations.unwrap()["rocketmq-broker.files.tessera.dev/broker-identity.conf"];
    assert!(
        conf.contains("brokerIP1=broker-1.broker-hs.default.svc.cluster.local\n"),
        "{conf}"
    );
}

#[tokio::test]
async fn kafka_broker_gets_node_id_and_controller_quorum() {
    let (_server, mut client) = setup().await;
    let review = member("pod-statefulset-zk-0.request.json", "kafka", "kafka", 2);
    let (pod, _) = inject(&mut client, "kafka-2", &review).await;
    let env = env_of(&pod.spec.as_ref().unwrap().containers[0]);
    assert_eq!(
        (
            env["KAFKA_NODE_ID"].as_str(),
            env["KAFKA_BROKER_ID"].as_str()
        ),
        ("2", "2")
    );
    // The dynamic quorum (KIP-853): controllers are found, not listed as fixed voters.
    assert!(!env.contains_key("KAFKA_CONTROLLER_QUORUM_VOTERS"));
    assert_eq!(
        env["KAFKA_CONTROLLER_QUORUM_BOOTSTRAP_SERVERS"],
        "kafka-0.kafka-hs.default.svc.cluster.local:9093,\
         kafka-1.kafka-hs.default.svc.cluster.local:9093,\
         kafka-2.kafka-hs.default.svc.cluster.local:9093"
    );
    assert_eq!(
        env["KAFKA_ADVERTISED_LISTENERS"],
        "PLAINTEXT://kafka-2.kafka-hs.default.svc.cluster.local:9092"
    );
    // Every member votes in the KRaft controller quorum.
    let group = tessera_core::request::pod_group(&pod).unwrap();
    assert_eq!(
        (group.key.as_str(), group.quorum, group.size),
        ("default/kafka", true, Some(3))
    );
    assert_eq!(
        pod.spec.unwrap().scheduler_name.as_deref(),
        Some("tessera-scheduler")
    );
}

#[tokio::test]
async fn python_service_from_a_deployment_gets_the_mesh() {
    let (_server, mut client) = setup().await;
    let mut review = fixture("pod-deployment-web-a.request.json");
    review["request"]["object"]["metadata"]["labels"]["tessera.dev/mesh"] = json!("python");
    let (pod, _) = inject(&mut client, "mesh-python-deployment", &review).await;
    let spec = pod.spec.unwrap();
    let init: Vec<_> = spec
        .init_containers
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(init, ["mesh-proxy", "mesh-agent-python"]);
    assert_eq!(
        spec.init_containers.as_ref().unwrap()[0]
            .restart_policy
            .as_deref(),
        Some("Always")
    );
    let app = &spec.containers[0];
    let env = env_of(app);
    assert_eq!(env["PYTHONPATH"], "/opt/mesh-agent");
    assert_eq!(
        env["SPIFFE_ID"],
        "spiffe://cluster.local/ns/default/sa/default"
    );
    let token = spec
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "tessera-spiffe-token")
        .unwrap();
    let sat = token.projected.unwrap().sources.unwrap()[0]
        .service_account_token
        .clone()
        .unwrap();
    assert_eq!(
        (sat.audience.as_deref(), sat.path.as_str()),
        (Some("mesh"), "token")
    );
    let paths: Vec<_> = app
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert!(
        paths.contains(&"/opt/mesh-agent")
            && paths.contains(&"/var/run/secrets/tessera.dev/spiffe"),
        "{paths:?}"
    );
}

#[tokio::test]
async fn nodejs_service_with_its_own_init_containers_gets_the_mesh_first() {
    let (_server, mut client) = setup().await;
    let mut review = fixture("pod-native-sidecar.request.json");
    review["request"]["object"]["metadata"]["labels"] = json!({"tessera.dev/mesh": "nodejs"});
    let (pod, _) = inject(&mut client, "mesh-nodejs-native-sidecar", &review).await;
    let spec = pod.spec.unwrap();
    let init: Vec<_> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    // The captured pod already has its own native sidecar named "proxy" and "init-config".
    assert_eq!(
        init,
        ["mesh-proxy", "mesh-agent-nodejs", "init-config", "proxy"]
    );
    assert_eq!(
        env_of(&spec.containers[0])["NODE_OPTIONS"],
        "--require /opt/mesh-agent/register.js"
    );
}

#[tokio::test]
async fn gpushare_pod_gets_tessera_names_and_scheduler() {
    let (_server, mut client) = setup().await;
    let mut review = fixture("pod-extended-resource-gpu-mem.request.json");
    let o = &mut review["request"]["object"];
    o["metadata"]["annotations"] = json!({"tessera.dev/inject": "gpu-sharing"});
    for list in ["limits", "requests"] {
        let map = o["spec"]["containers"][0]["resources"][list]
            .as_object_mut()
            .unwrap();
        map.remove("example.dev/gpu-mem").unwrap();
        map.insert("aliyun.com/gpu-mem".into(), json!("4"));
    }
    let (pod, _) = inject(&mut client, "gpu-sharing-gpushare", &review).await;
    let spec = pod.spec.unwrap();
    assert_eq!(spec.scheduler_name.as_deref(), Some("tessera-scheduler"));
    let res = spec.containers[0].resources.clone().unwrap();
    for list in [res.limits.unwrap(), res.requests.unwrap()] {
        let names: BTreeMap<_, _> = list
            .iter()
            .map(|(k, v)| (k.as_str(), v.0.as_str()))
            .collect();
        assert_eq!(
            names,
            BTreeMap::from([("tessera.dev/gpu", "1"), ("tessera.dev/gpu-mem", "4096")])
        );
    }
}

/// The captured pod with an init container and a native sidecar, both asking for gpushare
/// memory: both are translated (by index in the pod as received, before the patch inserts
/// anything in front) and the pod goes to the Tessera scheduler, though its app container
/// asks for no GPU.
#[tokio::test]
async fn gpu_shares_in_init_containers_and_native_sidecars_are_translated_and_routed() {
    let (_server, mut client) = setup().await;
    let mut review = fixture("pod-native-sidecar.request.json");
    let o = &mut review["request"]["object"];
    o["metadata"]["annotations"] = json!({"tessera.dev/inject": "gpu-sharing"});
    // init-config (ordinary) and proxy (restartPolicy: Always), in that order.
    for (i, gib) in [(0, "2"), (1, "1")] {
        o["spec"]["initContainers"][i]["resources"] =
            json!({"limits": {"aliyun.com/gpu-mem": gib}, "requests": {"aliyun.com/gpu-mem": gib}});
    }
    let (pod, _) = inject(&mut client, "gpu-sharing-init-containers", &review).await;
    let spec = pod.spec.unwrap();
    assert_eq!(spec.scheduler_name.as_deref(), Some("tessera-scheduler"));
    let init = spec.init_containers.unwrap();
    let limits = |c: &Container| -> BTreeMap<String, String> {
        let res = c.resources.clone().unwrap().limits.unwrap();
        res.into_iter().map(|(k, v)| (k, v.0)).collect()
    };
    let want = |mib: &str| {
        BTreeMap::from([
            ("tessera.dev/gpu".to_string(), "1".to_string()),
            ("tessera.dev/gpu-mem".to_string(), mib.to_string()),
        ])
    };
    assert_eq!(
        (init[0].name.as_str(), limits(&init[0])),
        ("init-config", want("2048"))
    );
    assert_eq!(
        (init[1].name.as_str(), limits(&init[1])),
        ("proxy", want("1024"))
    );
}

/// An ephemeral container asking for a share is refused, saying why (the apiserver refuses
/// ephemeral containers at creation too; the webhook answers first).
#[tokio::test]
async fn a_share_in_an_ephemeral_container_is_refused() {
    let (_server, mut client) = setup().await;
    let mut review = fixture("pod-bare.request.json");
    let o = &mut review["request"]["object"];
    o["metadata"]["annotations"] = json!({"tessera.dev/inject": "gpu-sharing"});
    o["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox:1",
        "resources": {"limits": {"tessera.dev/gpu-mem": "1024"}}}]);
    let (status, resp) = client.mutate(&review).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["response"]["allowed"], false, "{resp}");
    let message = resp["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("ephemeral container \"debug\" asks for tessera.dev/gpu-mem"),
        "{message}"
    );
}

#[tokio::test]
async fn captured_pods_no_profile_selects_get_no_patch() {
    let (_server, mut client) = setup().await;
    for file in [
        "pod-bare.request.json",
        "pod-generatename.request.json",
        "pod-namespace-labeled.request.json",
        "reinvocation/1-webhook-a.request.json",
        "reinvocation/2-webhook-b.request.json",
    ] {
        let review = fixture(file);
        let (status, resp) = client.mutate(&review).await;
        assert_eq!(status, 200, "{file}");
        assert_eq!(resp["response"]["allowed"], true, "{file}");
        assert!(patch_of(&review, &resp).is_none(), "{file}: {resp}");
    }
}
