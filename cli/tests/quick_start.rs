//! The README's quick start as an operator runs it, offline: `tessera overlay my-cluster` in a
//! directory outside the repository writes an install whose every reference resolves, whose
//! base is byte for byte the repository's manifests and components, and (with kubectl
//! installed) renders with the example's image and every object labelled; a second run keeps
//! the operator's kustomization. The README's commands come in an order that works.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_tests::kustomize;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `tessera overlay my-cluster`, run in `cwd`, exactly as the README writes it.
fn overlay(cwd: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["overlay", "my-cluster"])
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn the_quick_start_overlay_works_outside_the_repository() {
    let tmp = tempfile::tempdir().unwrap();
    overlay(tmp.path());
    let install = tmp.path().join("my-cluster");
    let missing = kustomize::unresolved(&install);
    assert!(missing.is_empty(), "{missing:?}");
    // The base is the repository's tree: a file added there and not embedded fails here.
    let mut shipped = Vec::new();
    files(&repo().join("manifests"), &mut shipped);
    files(&repo().join("install/components"), &mut shipped);
    for file in &shipped {
        let relative = file.strip_prefix(repo()).unwrap();
        let written = install.join("tessera").join(relative);
        let same = std::fs::read(&written).ok() == Some(std::fs::read(file).unwrap());
        assert!(same, "{} is not {}", written.display(), relative.display());
    }
    let Some(objects) = kustomize::render(&install) else {
        return;
    };
    let text = serde_json::to_string(&objects).unwrap();
    assert!(text.contains("registry.example.com/tessera:0.1.0"));
    assert!(!text.contains("ghcr.io/tessera-dev/tessera"));
    for o in &objects {
        assert_eq!(
            o["metadata"]["labels"]["app.kubernetes.io/part-of"], "tessera",
            "{} {}",
            o["kind"], o["metadata"]["name"]
        );
    }
}

#[test]
fn a_second_overlay_keeps_the_operators_kustomization() {
    let tmp = tempfile::tempdir().unwrap();
    overlay(tmp.path());
    let own = tmp.path().join("my-cluster/kustomization.yaml");
    let edited = std::fs::read_to_string(&own)
        .unwrap()
        .replace("newTag: 0.1.0", "newTag: 0.1.1");
    std::fs::write(&own, &edited).unwrap();
    overlay(tmp.path());
    assert_eq!(std::fs::read_to_string(&own).unwrap(), edited);
}

/// The quick start's shell lines, in order.
fn quick_start() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme.find("## Quick start").unwrap();
    let section = &readme[start..];
    let block = section.split("```sh").nth(1).unwrap();
    let block = &block[..block.find("```").unwrap()];
    block.lines().map(str::to_string).collect()
}

#[test]
fn the_readme_quick_start_runs_in_an_order_that_works() {
    let lines = quick_start();
    let at = |what: &str| {
        lines
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("the quick start never runs {what:?}"))
    };
    let before = |a: &str, b: &str| assert!(at(a) < at(b), "{a:?} must come before {b:?}");
    before("cargo build --release", "tessera overlay my-cluster");
    before(
        "ln -sf tessera ~/.local/bin/kubectl-tessera",
        "kubectl tessera inspect",
    );
    before("podman push", "kubectl apply -k my-cluster");
    before("tessera overlay my-cluster", "kubectl apply -k my-cluster");
    before("kubectl apply -k my-cluster", "condition=Established");
    before("condition=Established", "manifests/profiles/");
    before("kubectl create namespace ml", "kubectl label namespace ml");
    before("kubectl label namespace ml", "kubectl -n ml run share");
    before("condition=Available", "kubectl -n ml run share");
    let run = &lines[at("kubectl -n ml run share")];
    assert!(run.contains("--restart=Never"), "{run}");
    assert!(run.contains("tessera.dev/gpu-sharing=enabled"), "{run}");
}
