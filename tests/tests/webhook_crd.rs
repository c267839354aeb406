//! The checked-in CRD (manifests/crd/injectionprofile.yaml) is what `tessera crd` generates
//! from the Rust type; regenerate it with `tessera crd > manifests/crd/injectionprofile.yaml`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

#[test]
fn checked_in_crd_matches_the_rust_type() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crd/injectionprofile.yaml");
    let checked_in = std::fs::read_to_string(&path).unwrap();
    let generated = tessera_webhook::crd::injection_profile_yaml().unwrap();
    assert!(
        checked_in == generated,
        "{} is stale: regenerate it with `tessera crd > manifests/crd/injectionprofile.yaml`",
        path.display()
    );
}

#[test]
fn crd_is_cluster_scoped_v1alpha1_with_an_open_container_schema() {
    let yaml = tessera_webhook::crd::injection_profile_yaml().unwrap();
    let crd: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(crd["metadata"]["name"], "injectionprofiles.tessera.dev");
    assert_eq!(crd["spec"]["scope"], "Cluster");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    let sidecars =
        &version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["sidecars"];
    assert_eq!(
        sidecars["properties"]["containers"]["items"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
}
