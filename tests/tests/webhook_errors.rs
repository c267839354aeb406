//! The webhook's error contract over real HTTPS. The fixtures README records what the
//! kube-apiserver does with each kind of bad answer (wrong uid, missing kind, patch without
//! patchType, a patch that does not apply…); these tests pin that ours never gives one by
//! accident, and that refusals are the ones we mean.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod webhook_support;

use serde_json::{Value, json};
use tessera_webhook::profiles;
use webhook_support::{Ca, Client, Options, Server, fixture, patch_of};

async fn setup(opts: Options) -> (Server, Client) {
    let ca = Ca::new("errors-test");
    let server = Server::start(&ca, opts).await;
    let client = Client::connect(server.addr, ca.client_config())
        .await
        .unwrap();
    (server, client)
}

fn error_text(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).expect("error bodies are JSON");
    v["error"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn undecodable_reviews_get_400_with_a_json_body_naming_the_problem() {
    let (_s, mut c) = setup(Options::default()).await;
    let cases: [(&[u8], &str); 5] = [
        (b"not json", "request body is not an AdmissionReview: expected ident"),
        (b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"\xff\"}",
         "request body is not UTF-8: invalid utf-8 sequence of 1 bytes from index 44"),
        (br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u"}}"#,
         "expected apiVersion admission.k8s.io/v1 kind AdmissionReview, got apiVersion \"admission.k8s.io/v1beta1\""),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#, "AdmissionReview has no request"),
        (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"object":{}}}"#,
         "request body is not an AdmissionReview: missing field `uid`"),
    ];
    for (body, want) in cases {
        let (status, out) = c.request("POST", "/mutate", body.to_vec()).await.unwrap();
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(body));
        let text = error_text(&out);
        assert!(
            text.starts_with(want),
            "{text:?} should start with {want:?}"
        );
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let (_s, mut c) = setup(Options {
        max_body_bytes: 1024,
        ..Options::default()
    })
    .await;
    let review = fixture("pod-bare.request.json");
    let (status, out) = c
        .request("POST", "/mutate", serde_json::to_vec(&review).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 413);
    assert!(error_text(&out).contains("over the limit of 1024 bytes"));
}

#[tokio::test]
async fn unselected_pod_is_allowed_without_patch_fields_and_echoes_the_uid() {
    let (_s, mut c) = setup(Options::default()).await;
    let review = fixture("pod-bare.request.json");
    let (status, out) = c.mutate(&review).await;
    assert_eq!(status, 200);
    assert_eq!(out["response"]["allowed"], true);
    assert!(patch_of(&review, &out).is_none());
    let keys: Vec<_> = out["response"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["allowed", "uid"], "no patchType without a patch");
}

#[tokio::test]
async fn a_profile_that_cannot_render_denies_with_profile_and_field_and_no_patch() {
    let (_s, mut c) = setup(Options::default()).await;
    let mut review = fixture("pod-statefulset-zk-0.request.json");
    review["request"]["object"]["spec"]
        .as_object_mut()
        .unwrap()
        .remove("subdomain");
    let (status, out) = c.mutate(&review).await;
    assert_eq!(status, 200);
    let r = &out["response"];
    assert_eq!(r["uid"], review["request"]["uid"]);
    assert_eq!(r["allowed"], false);
    assert!(r.get("patch").is_none() && r.get("patchType").is_none());
    assert_eq!(r["status"]["code"], 403);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("profile \"zookeeper\": spec.identity.") && msg.contains("spec.subdomain"),
        "{msg}"
    );
}

#[tokio::test]
async fn unknown_profile_in_the_opt_in_annotation_is_a_warning_not_a_failure() {
    let (_s, mut c) = setup(Options::default()).await;
    let mut review = fixture("pod-bare.request.json");
    review["request"]["object"]["metadata"]["annotations"] =
        json!({"tessera.dev/inject": "no-such"});
    let (_, out) = c.mutate(&review).await;
    assert_eq!(out["response"]["allowed"], true);
    assert_eq!(
        out["response"]["warnings"],
        json!(["tessera.dev/inject: no InjectionProfile named \"no-such\""])
    );
}

#[tokio::test]
async fn non_pod_and_non_create_requests_pass_unchanged() {
    let (_s, mut c) = setup(Options::default()).await;
    let mut review = fixture("pod-statefulset-zk-0.request.json");
    review["request"]["operation"] = json!("UPDATE");
    let (_, out) = c.mutate(&review).await;
    assert!(patch_of(&review, &out).is_none());
    let mut review = fixture("pod-statefulset-zk-0.request.json");
    review["request"]["kind"] = json!({"group": "apps", "version": "v1", "kind": "Pod"});
    let (_, out) = c.mutate(&review).await;
    assert!(patch_of(&review, &out).is_none());
}

#[tokio::test]
async fn readyz_waits_for_profiles_and_health_and_metrics_answer() {
    let (s, mut c) = setup(Options {
        profiles: None,
        ..Options::default()
    })
    .await;
    assert_eq!(c.request("GET", "/healthz", vec![]).await.unwrap().0, 200);
    assert_eq!(c.request("GET", "/readyz", vec![]).await.unwrap().0, 503);
    s.state
        .set_profiles(webhook_support::shipped_profiles().profiles, 1);
    assert_eq!(c.request("GET", "/readyz", vec![]).await.unwrap().0, 200);
    c.mutate(&fixture("pod-statefulset-zk-0.request.json"))
        .await;
    c.request("POST", "/mutate", b"{".to_vec()).await.unwrap();
    let (status, body) = c.request("GET", "/metrics", vec![]).await.unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    for line in [
        "tessera_webhook_requests_total{result=\"patched\",profile=\"zookeeper\"} 1",
        "tessera_webhook_requests_total{result=\"bad_request\",profile=\"\"} 1",
        "tessera_webhook_profiles_loaded 6",
        "tessera_webhook_profiles_invalid 1",
        "tessera_webhook_request_duration_seconds_count 2",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let expiry = text
        .lines()
        .find_map(|l| l.strip_prefix("tessera_webhook_tls_cert_expiry_seconds "))
        .unwrap();
    // rcgen's default validity runs to 4096; anything positive shows the expiry was read.
    assert!(expiry.parse::<i64>().unwrap() > 0, "{expiry}");
    tessera_tests::promtool::assert_clean(&text);
}

#[tokio::test]
async fn invalid_profiles_in_a_file_are_reported_and_the_rest_served() {
    let text = "\
apiVersion: tessera.dev/v1alpha1
kind: InjectionProfile
metadata: {name: bad}
spec: {identity: {env: {X: '{{nope}}'}}}
---
apiVersion: tessera.dev/v1alpha1
kind: InjectionProfile
metadata: {name: ok}
spec: {selector: {}, sidecars: {containers: [{name: s, image: s}]}}
";
    let loaded = profiles::parse(text);
    assert_eq!(loaded.errors.len(), 1);
    let (_s, mut c) = setup(Options {
        profiles: Some(loaded),
        ..Options::default()
    })
    .await;
    let review = fixture("pod-bare.request.json");
    let (_, out) = c.mutate(&review).await;
    assert!(
        patch_of(&review, &out).is_some(),
        "the valid profile still injects"
    );
}

#[tokio::test]
async fn shutdown_drains_and_stops_accepting() {
    let ca = Ca::new("shutdown-test");
    let server = Server::start(&ca, Options::default()).await;
    let addr = server.addr;
    let mut c = Client::connect(addr, ca.client_config()).await.unwrap();
    assert_eq!(c.mutate(&fixture("pod-bare.request.json")).await.0, 200);
    server.stop().await;
    assert!(Client::connect(addr, ca.client_config()).await.is_err());
}
