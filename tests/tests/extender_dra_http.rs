//! Claim-bearing pods through the extender's real HTTPS stack (`tessera-serve` with the link's
//! certificates, as kube-scheduler reaches it): the captured `ExtenderArgs` with its pod turned
//! into one that names a ResourceClaimTemplate of the `gpu.tessera.dev` DeviceClass, against
//! the ResourceSlices `tessera dra-plugin` publishes (made by its own `resource_slice`) and the
//! allocated claims of `tests/fixtures/dra/`. Filter and prioritize read the DRA ledger; bind
//! writes the plain Binding with no assignment.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceClaimTemplate};
use serde_json::{Value, json};
use tessera_core::dra::{ClaimFacts, SliceFacts, spec_requests};
use tessera_core::inventory::GpuInfo;
use tessera_core::plugin::mps::{MpsStatus, STATUS_VERSION};
use tessera_core::score::Policy;
use tessera_dra_plugin::decide::slice::{NodeGpus, resource_slice};
use tessera_extender::mtls::{Pairs, next_pairs};
use tessera_extender::{BindFuture, BindTarget, Binder, Config, ExtenderState, router};
use tessera_serve::Limits;
use tessera_serve::tls::{self, CertStore};
use tessera_tests::tls_client::{client, request};

#[derive(Default)]
struct Binds(Mutex<Vec<BindTarget>>);

impl Binder for Binds {
    fn bind(&self, target: BindTarget) -> BindFuture<'_> {
        self.0.lock().unwrap().push(target);
        Box::pin(async { Ok(()) })
    }
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

fn fixture(path: &str) -> Value {
    let path = format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The driver's slice for `node`: one 32 GiB GPU with a ready multi-user MPS daemon.
fn slice(node: &str) -> SliceFacts {
    let uuid = format!("GPU-{node}-0");
    let gpus = vec![GpuInfo {
        index: 0,
        uuid: uuid.clone(),
        model: "NVIDIA A100".into(),
        memory_mib: 32768,
        healthy: true,
        mig: false,
        mps: true,
        isolation: Default::default(),
    }];
    let live = MpsStatus {
        version: STATUS_VERSION.into(),
        gpus: vec![uuid],
        multi_user: true,
        heartbeat: now().as_secs() as i64,
    };
    let node = NodeGpus {
        node: node.into(),
        node_uid: "uid".into(),
        gpus,
        driver_version: None,
    };
    SliceFacts::from_slice(&resource_slice(&node, Some(&live), 1)).unwrap()
}

/// gpu-node-1's GPU holds the two fixture claims (8 GiB / 25% and 16 GiB / 50%); gpu-node-2's
/// is idle; node-4 publishes nothing. Templates `ml/small` (8 GiB / 25%, fits both) and
/// `ml/wide` (8 GiB / 30%, fits only the idle GPU).
fn fill(state: &ExtenderState) {
    state.dra().update(|c| {
        c.apply_slice(slice("gpu-node-1"));
        c.apply_slice(slice("gpu-node-2"));
        for f in [
            "dra/resourceclaim.8gi-25.json",
            "dra/resourceclaim.16gi-50.json",
        ] {
            let claim: ResourceClaim = serde_json::from_value(fixture(f)).unwrap();
            assert!(c.apply_claim(ClaimFacts::from_claim(&claim)).is_empty());
        }
        for (name, compute) in [("small", "25"), ("wide", "30")] {
            let t: ResourceClaimTemplate = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ml"},
                "spec": {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": {
                    "deviceClassName": "gpu.tessera.dev",
                    "capacity": {"requests": {"memory": "8Gi", "compute": compute}}}}]}}}
            }))
            .unwrap();
            c.apply_template(&format!("ml/{name}"), spec_requests(&t.spec.spec));
        }
        c.refresh_mix();
    });
}

/// The extender with `policy` serving HTTPS with the link's pairs, filled as above.
async fn extender(pairs: &Pairs, policy: Policy) -> (Arc<ExtenderState>, Arc<Binds>, SocketAddr) {
    let binds = Arc::new(Binds::default());
    let config = Config {
        policy,
        heartbeat_max_age: Some(Duration::from_secs(60)),
        client_certificates: false,
        ..Config::default()
    };
    let state = Arc::new(ExtenderState::new(config, binds.clone()));
    state.set_ready(true);
    fill(&state);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &pairs.serving_cert).unwrap();
    std::fs::write(&key, &pairs.serving_key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let store = CertStore::new(tls::load(&cert, &key, &provider).unwrap().key);
    let server = tls::server_config(store, provider).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits {
        refusals: state.metrics().refusals(),
        ..Limits::default()
    };
    tokio::spawn(tessera_serve::serve_tls(
        listener,
        server,
        router(state.clone()),
        std::future::pending(),
        Duration::from_secs(1),
        limits,
    ));
    (state, binds, addr)
}

/// The captured filter request, its pod in namespace `ml` naming template `template` (and no
/// device-plugin share), the candidates the three nodes.
fn args(template: &str) -> Value {
    let mut body = fixture("extender/filter.nodenames.request.json");
    let pod = &mut body["Pod"];
    pod["metadata"]["namespace"] = json!("ml");
    pod["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "500m"},
        "claims": [{"name": "gpu"}]});
    pod["spec"]["resourceClaims"] = json!([{"name": "gpu", "resourceClaimTemplateName": template}]);
    body["NodeNames"] = json!(["gpu-node-2", "node-4", "gpu-node-1"]);
    body
}

async fn post(addr: SocketAddr, pairs: &Pairs, verb: &str, body: &Value) -> Value {
    let tls = client(&pairs.ca_cert, None);
    let (status, text) = request(addr, tls, "POST", &format!("/{verb}"), &body.to_string())
        .await
        .unwrap();
    assert_eq!(status, 200, "{verb}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn pairs() -> Pairs {
    next_pairs(None, vec!["127.0.0.1".into()], now()).unwrap().0
}

#[tokio::test]
async fn a_claim_pod_is_filtered_by_the_dra_ledger_with_reasons() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pairs = pairs();
    let (_, _, addr) = extender(&pairs, Policy::Fragmentation).await;
    let out = post(addr, &pairs, "filter", &args("small")).await;
    assert_eq!(
        out["NodeNames"],
        json!(["gpu-node-2", "gpu-node-1"]),
        "{out}"
    );
    assert_eq!(
        out["FailedAndUnresolvableNodes"]["node-4"],
        "node node-4 publishes no GPU of driver gpu.tessera.dev (no ResourceSlice)"
    );
    let out = post(addr, &pairs, "filter", &args("wide")).await;
    assert_eq!(out["NodeNames"], json!(["gpu-node-2"]), "{out}");
    let why = out["FailedNodes"]["gpu-node-1"].as_str().unwrap();
    assert!(why.starts_with("gpu.tessera.dev claim: "), "{why}");
    assert!(
        why.contains("gpu-node-1/gpu-0: 25% compute free, needs 30%"),
        "{why}"
    );
    // A template not seen yet fails the attempt (kube-scheduler retries), naming it.
    let out = post(addr, &pairs, "filter", &args("missing")).await;
    assert!(
        out["Error"]
            .as_str()
            .unwrap()
            .contains("ResourceClaimTemplate ml/missing is not known"),
        "{out}"
    );
}

#[tokio::test]
async fn a_claim_pod_is_scored_by_the_policy_over_the_dra_gpus() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pairs = pairs();
    for (policy, best, other) in [
        (Policy::Fragmentation, "gpu-node-1", "gpu-node-2"),
        (Policy::Binpack, "gpu-node-1", "gpu-node-2"),
        (Policy::Spread, "gpu-node-2", "gpu-node-1"),
    ] {
        let (_, _, addr) = extender(&pairs, policy).await;
        let mut body = args("small");
        body["NodeNames"] = json!(["gpu-node-1", "gpu-node-2"]);
        let out = post(addr, &pairs, "prioritize", &body).await;
        // Sparse: a node left out scores 0.
        let score = |host: &str| {
            out.as_array()
                .unwrap()
                .iter()
                .find(|h| h["Host"] == host)
                .map_or(0, |h| h["Score"].as_i64().unwrap())
        };
        assert!(score(best) > score(other), "{policy:?}: {out}");
    }
}

#[tokio::test]
async fn a_claim_pod_is_bound_with_the_plain_binding() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pairs = pairs();
    let (state, binds, addr) = extender(&pairs, Policy::Fragmentation).await;
    let body = args("small");
    post(addr, &pairs, "filter", &body).await;
    let bind = json!({"PodName": body["Pod"]["metadata"]["name"], "PodNamespace": "ml",
                      "PodUID": body["Pod"]["metadata"]["uid"], "Node": "gpu-node-1"});
    let out = post(addr, &pairs, "bind", &bind).await;
    assert_eq!(out["Error"], "", "{out}");
    let binds = binds.0.lock().unwrap();
    assert_eq!(binds.len(), 1);
    assert_eq!(binds[0].node, "gpu-node-1");
    assert!(
        binds[0].annotations.is_empty(),
        "{:?}",
        binds[0].annotations
    );
    // Nothing reserved on the device-plugin path: the allocator's claim status is the record.
    assert!(state.read().reservations.is_empty());
}
