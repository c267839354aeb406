//! The container image: `install/image/assemble.py` makes the Containerfile's runtime (the
//! binary, the glibc and libgcc it links, user 65532) without a registry, and the result runs
//! `tessera --version` on its own root filesystem; the Containerfile builds that same runtime.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers fail loudly

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Assembles the image of this build's binary into `dir`; `None` (after saying so) without
/// python3 or ldd.
pub fn assemble(dir: &Path, tag: &str) -> Option<PathBuf> {
    for tool in ["python3", "ldd", "tar"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("skipping image assembly: {tool} is not installed");
            return None;
        }
    }
    let out = dir.join("image.tar");
    let done = Command::new("python3")
        .arg(repo().join("install/image/assemble.py"))
        .args(["--binary", env!("CARGO_BIN_EXE_tessera"), "--tag", tag])
        .arg("--out")
        .arg(&out)
        .args(["--commit", "c0ffee"])
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    Some(out)
}

fn untar(archive: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let ok = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(ok.success(), "untar {}", archive.display());
}

#[test]
fn the_assembled_image_runs_tessera_on_its_own_root_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let Some(archive) = assemble(dir.path(), "local/tessera:test") else {
        return;
    };
    let unpacked = dir.path().join("archive");
    untar(&archive, &unpacked);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest[0]["RepoTags"][0], "local/tessera:test");
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(unpacked.join(manifest[0]["Config"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(config["config"]["User"], "65532:65532", "runs as non-root");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/tessera"])
    );
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.revision"],
        "c0ffee"
    );
    let layers = manifest[0]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let rootfs = dir.path().join("rootfs");
    untar(&unpacked.join(layers[0].as_str().unwrap()), &rootfs);
    assert!(rootfs.join("tmp").is_dir());
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains(":65532:65532:"), "{passwd}");

    // Only what the image holds: chroot where we may (root), else its own loader and libraries.
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let out = if is_root {
        Command::new("chroot")
            .arg(&rootfs)
            .args(["/usr/local/bin/tessera", "--version"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .unwrap()
    } else {
        let loader = std::fs::read_dir(rootfs.join("lib64"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        Command::new(loader)
            .arg("--inhibit-cache")
            .arg("--library-path")
            .arg(rootfs.join("lib/x86_64-linux-gnu"))
            .arg(rootfs.join("usr/local/bin/tessera"))
            .arg("--version")
            .env_clear()
            .output()
            .unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(concat!("tessera ", env!("CARGO_PKG_VERSION"), " (commit ")),
        "{text}"
    );
}

#[test]
fn the_containerfile_builds_the_same_runtime_with_the_declared_toolchain() {
    let file = std::fs::read_to_string(repo().join("Containerfile")).unwrap();
    let workspace = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let rust_version = workspace
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        file.contains(&format!("ARG RUST_VERSION={rust_version}\n")),
        "the build stage uses the workspace's rust-version {rust_version}"
    );
    let stages: Vec<&str> = file.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[0].contains("rust:") && stages[0].ends_with(" AS build"));
    assert!(
        stages[1].contains("distroless/cc-debian12"),
        "a glibc runtime: NVML is loaded with dlopen"
    );
    assert!(file.contains("cargo build --release --locked -p tessera"));
    assert!(file.contains("USER 65532:65532"));
    assert!(file.contains("ENTRYPOINT [\"/usr/local/bin/tessera\"]"));
}

/// Environment variable naming the socket of the e2e node's containerd.
const CONTAINERD_ENV: &str = "TESSERA_E2E_CONTAINERD_SOCKET";

#[tokio::test]
async fn the_assembled_image_runs_in_a_pod_on_the_e2e_node() {
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::Api;
    use kube::api::{DeleteParams, LogParams, PostParams};
    use tessera_tests::e2e;

    let test = "the_assembled_image_runs_in_a_pod_on_the_e2e_node";
    let Some(kubeconfig) = e2e::kubeconfig(test) else {
        return;
    };
    let Some(socket) = std::env::var_os(CONTAINERD_ENV) else {
        eprintln!("skipping e2e test {test}: {CONTAINERD_ENV} is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tag = "local/tessera:e2e";
    let archive = assemble(dir.path(), tag).expect("python3, ldd and tar on an e2e machine");
    let import = Command::new("ctr")
        .arg("--address")
        .arg(&socket)
        .args(["-n", "k8s.io", "images", "import"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );

    let client = e2e::client(&kubeconfig).await.unwrap();
    let ns = e2e::unique("image");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    let node = std::env::var("TESSERA_E2E_NODE").unwrap_or_else(|_| "node-1".into());
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "tessera-version"},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": true},
            "containers": [{
                "name": "tessera",
                "image": tag,
                "imagePullPolicy": "Never",
                "args": ["--version"],
                "securityContext": {
                    "readOnlyRootFilesystem": true,
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}
                }
            }]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let phase = e2e::wait_for(
        "the pod to finish",
        std::time::Duration::from_secs(90),
        || {
            let pods = pods.clone();
            async move {
                let p = pods.get("tessera-version").await.ok()?;
                let phase = p.status?.phase?;
                matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
            }
        },
    )
    .await;
    let logs = pods
        .logs("tessera-version", &LogParams::default())
        .await
        .unwrap_or_default();
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    assert_eq!(phase.as_deref(), Ok("Succeeded"), "logs: {logs}");
    let local = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(logs, String::from_utf8(local.stdout).unwrap());
    eprintln!("the image ran on {node}: {}", logs.trim());
}
