//! `tessera inspect` against a real cluster (`TESSERA_E2E_KUBECONFIG`; skipped, saying so, when
//! unset): pods bound through the extender's binder show up under the GPUs of their assignment,
//! with what is left free.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use tessera_core::annotations::{Assignment, ContainerAssignment, GpuShare};
use tessera_core::decide::bind_annotations;
use tessera_core::keys;
use tessera_extender::api_binder::ApiBinder;
use tessera_extender::{BindTarget, Binder};
use tessera_tests::cluster::Harness;
use tessera_tests::e2e;
use tessera_tests::process::output_ok;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_shows_who_holds_which_share() {
    let Some(kubeconfig) = e2e::kubeconfig("inspect_shows_who_holds_which_share") else {
        return;
    };
    let h = Harness::start(&kubeconfig).await;
    let node = h.nodes[0].clone();
    let binder = ApiBinder::new(h.client.clone());
    for (name, gpu, mem, core) in [
        ("a", 0, 4096, 250),
        ("b", 0, 2048, 100),
        ("c", 1, 15360, 1000),
    ] {
        let pod = h
            .create_pod(
                name,
                &[
                    (keys::RESOURCE_GPU, "1"),
                    (keys::RESOURCE_GPU_MEM, &mem.to_string()),
                ],
                &[],
            )
            .await;
        let assignment = Assignment {
            node: node.clone(),
            containers: vec![ContainerAssignment {
                container: "main".into(),
                init: false,
                gpus: vec![GpuShare {
                    uuid: format!("GPU-{node}-{gpu}"),
                    mem_mib: mem,
                    core_milli: core,
                }],
            }],
        };
        let writer = tessera_core::annotations::Writer {
            holder: "inspect-e2e".into(),
            term: 0,
        };
        binder
            .bind(BindTarget {
                namespace: h.ns.clone(),
                name: name.into(),
                uid: pod.metadata.uid.clone().unwrap(),
                node: node.clone(),
                annotations: bind_annotations(&assignment, "2026-11-24T00:00:00Z", &writer),
                writer: writer.clone(),
            })
            .await
            .unwrap();
    }
    let tessera = std::path::Path::new(env!("CARGO_BIN_EXE_tessera"));
    let args = [
        "inspect",
        "--output",
        "json",
        "--node",
        &node,
        "--kubeconfig",
    ];
    let args = args.iter().map(std::ffi::OsStr::new);
    let out = output_ok(tessera, args.chain([kubeconfig.as_os_str()]));
    let report: Value = serde_json::from_slice(&out).unwrap();
    let gpus = &report["nodes"][0]["gpus"];
    assert_eq!(report["nodes"][0]["name"], node.as_str());
    let holders = |i: usize| -> Vec<String> {
        gpus[i]["holders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["pod"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(holders(0), [format!("{}/a", h.ns), format!("{}/b", h.ns)]);
    assert_eq!(holders(1), [format!("{}/c", h.ns)]);
    assert_eq!(gpus[0]["memFreeMib"], 15360 - 6144);
    assert_eq!(gpus[0]["coreFreeMilli"], 650);
    assert_eq!(gpus[1]["memFreeMib"], 0);

    let args = ["inspect", "--node", &node, "--kubeconfig"];
    let args = args.iter().map(std::ffi::OsStr::new);
    let table = output_ok(tessera, args.chain([kubeconfig.as_os_str()]));
    let text = String::from_utf8_lossy(&table);
    assert!(
        text.contains(&format!("{}/c [main]  15360 MiB, 100%", h.ns)),
        "{text}"
    );
    assert!(text.contains("full"), "{text}");
    assert!(
        text.contains("heartbeat "),
        "the node's heartbeat age: {text}"
    );
    assert!(text.contains("total: 1 node(s)"), "{text}");

    // kubectl's flags: --context names a context of the kubeconfig, -n keeps one namespace's
    // holders; an unknown context is refused by name.
    let context = kube::config::Kubeconfig::read_from(&kubeconfig)
        .unwrap()
        .current_context
        .expect("the e2e kubeconfig names a current context");
    let args = [
        "inspect",
        "-o",
        "json",
        "--node",
        &node,
        "--context",
        &context,
        "-n",
        "elsewhere",
        "--kubeconfig",
    ];
    let args = args.iter().map(std::ffi::OsStr::new);
    let out = output_ok(tessera, args.chain([kubeconfig.as_os_str()]));
    let report: Value = serde_json::from_slice(&out).unwrap();
    let holders: usize = report["nodes"][0]["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["holders"].as_array().unwrap().len())
        .sum();
    assert_eq!(holders, 0, "no holder of another namespace is shown");
    assert_eq!(report["totals"]["gpus"], 2, "{report}");
    assert!(
        report["nodes"][0]["heartbeatAgeSecs"].is_number(),
        "{report}"
    );
    let refused = std::process::Command::new(tessera)
        .args(["inspect", "--context", "no-such-context", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("no-such-context"), "{why}");
}
