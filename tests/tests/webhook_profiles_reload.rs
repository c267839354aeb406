//! `--profiles FILE` is reloaded while the webhook serves over real HTTPS: a profile added to
//! the file is applied to the next pod that opts in, and a file that no longer parses leaves
//! the served profiles as they were, counted on /metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod webhook_support;

use serde_json::{Value, json};
use webhook_support::{Ca, Client, LIMIT, Options, Server, apply, fixture, patch_of};

fn profile(name: &str, sidecar: &str) -> String {
    format!(
        "apiVersion: tessera.dev/v1alpha1\nkind: InjectionProfile\nmetadata: {{name: {name}}}\n\
         spec:\n  sidecars:\n    containers: [{{name: {sidecar}, image: registry.example/{sidecar}:1}}]\n"
    )
}

/// The captured bare pod, opting in to profile `name`.
fn opting_in(name: &str) -> Value {
    let mut review = fixture("pod-bare.request.json");
    review["request"]["object"]["metadata"]["annotations"] = json!({"tessera.dev/inject": name});
    review
}

/// Reads /metrics until it contains `line`.
async fn metrics_show(c: &mut Client, line: &str) {
    tokio::time::timeout(LIMIT, async {
        loop {
            let (_, body) = c.request("GET", "/metrics", vec![]).await.unwrap();
            if String::from_utf8(body).unwrap().contains(line) {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("/metrics never showed {line}"));
}

#[tokio::test]
async fn an_edited_profiles_file_is_served_and_a_broken_one_keeps_the_last_good_set() {
    let ca = Ca::new("profiles-reload-test");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("profiles.yaml");
    std::fs::write(&file, profile("first", "agent")).unwrap();
    let opts = Options {
        profiles: None,
        profiles_file: Some(file.clone()),
        ..Options::default()
    };
    let server = Server::start(&ca, opts).await;
    let mut c = Client::connect(server.addr, ca.client_config())
        .await
        .unwrap();
    let review = opting_in("second");
    let (_, resp) = c.mutate(&review).await;
    assert!(patch_of(&review, &resp).is_none(), "{resp}");

    let mut changes = server.state.subscribe();
    let both = format!(
        "{}---\n{}",
        profile("first", "agent"),
        profile("second", "proxy")
    );
    std::fs::write(&file, both).unwrap();
    tokio::time::timeout(LIMIT, changes.changed())
        .await
        .expect("the edited file was never served")
        .unwrap();
    let (_, resp) = c.mutate(&review).await;
    let patch = patch_of(&review, &resp).expect("the new profile applies");
    let pod = apply(&review, &patch);
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "proxy"]);
    metrics_show(&mut c, "tessera_webhook_profiles_loaded 2").await;

    std::fs::write(&file, "apiVersion: tessera.dev/v1alpha1\nkind: [\n").unwrap();
    metrics_show(
        &mut c,
        "tessera_webhook_profile_reloads_total{result=\"error\"} 1",
    )
    .await;
    let served: Vec<String> = server
        .state
        .profiles()
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(served, ["first", "second"]);
    let (_, resp) = c.mutate(&review).await;
    assert!(patch_of(&review, &resp).is_some(), "still served: {resp}");
    server.stop().await;
}
