//! The checked-in gRPC bindings in `src/api/` are exactly what `tonic-prost-build` makes from
//! `proto/` (STYLE.md 2.6: generated artifacts are committed and a test fails on drift).
//!
//! Regenerates into a temporary directory with the `protoc` of `protoc-bin-vendored`; when the
//! result differs it rewrites the checked-in files and fails, so refreshing them is: run this
//! test once, review the diff, commit.

use std::path::Path;

/// (proto, the file tonic-prost-build names after its package).
const FILES: [(&str, &str); 2] = [
    ("pluginregistration_v1.proto", "pluginregistration.rs"),
    ("dra_v1.proto", "k8s.io.kubelet.pkg.apis.dra.v1.rs"),
];

#[test]
fn checked_in_bindings_match_the_protos() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let protos: Vec<_> = FILES
        .iter()
        .map(|(proto, _)| root.join("proto").join(proto))
        .collect();
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path().expect("a vendored protoc"));
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .emit_rerun_if_changed(false)
        .out_dir(out.path())
        .compile_with_config(config, &protos, &[root.join("proto")])
        .expect("protoc and tonic-prost-build regenerate the bindings");

    let mut stale = Vec::new();
    for (_, rs) in FILES {
        let fresh = std::fs::read_to_string(out.path().join(rs)).unwrap();
        let checked_in = root.join("src/api").join(rs);
        let current = std::fs::read_to_string(&checked_in).unwrap_or_default();
        if current != fresh {
            std::fs::write(&checked_in, &fresh).unwrap();
            stale.push(rs);
        }
    }
    assert!(
        stale.is_empty(),
        "src/api/{stale:?} differed from the protos and were rewritten; review and commit them"
    );
}
