//! `tessera simulate` as a user runs it: the real binary, real files, stdout and exit codes.
#![allow(clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .expect("run tessera")
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trace")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// `tessera simulate --trace <fixtures> --pods tiny <extra> --output json`, which must succeed;
/// its JSON document.
fn trace_json(extra: &[&str]) -> serde_json::Value {
    let dir = fixtures();
    let mut args = vec![
        "simulate",
        "--trace",
        dir.to_str().expect("a UTF-8 path"),
        "--pods",
        "tiny",
    ];
    args.extend_from_slice(extra);
    args.extend(["--output", "json"]);
    let out = tessera(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("simulate prints JSON")
}

#[test]
fn bundled_scenario_prints_placement_summary() {
    let out = tessera(&["simulate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    for needle in [
        "bundled scenario — policy fragmentation",
        "pods placed",
        "GPU allocation",
        "fragmentation",
        "quorum violations    0 (ensembles with half or more of their voters on one node or zone)",
        "anti-affinity faults 6 (members placed on a node that already holds one of their group)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(
        text.contains("tessera.dev/gpu-core = 150 is outside 1..=100 percent"),
        "{text}"
    );
}

#[test]
fn bundled_scenario_json_has_the_trace_shape_with_violations() {
    let out = tessera(&["simulate", "--output", "json", "--compare"]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["trace"], "bundled");
    let policies = doc["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 7);
    for p in policies {
        assert!(p["alloc_pct"].as_f64().unwrap() > 0.0);
        assert_eq!(p["violations"]["quorum"], 0, "{p}");
    }
}

#[test]
fn trace_replay_json_reports_every_policy_and_seed() {
    let doc = trace_json(&["--seeds", "3", "--compare"]);
    assert_eq!(doc["trace"], "tiny");
    assert_eq!(doc["seeds"], serde_json::json!([42, 43, 44]));
    let policies = doc["policies"].as_array().unwrap();
    let names: Vec<&str> = policies
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "fragmentation",
            "random",
            "dotprod",
            "gpuclustering",
            "gpupacking",
            "bestfit",
            "fgd"
        ]
    );
    for p in policies {
        let a130 = p["alloc_pct_130"].as_f64().unwrap();
        assert!(a130 > 0.0 && a130 <= 100.0, "{p}");
        assert_eq!(p["per_seed"].as_array().unwrap().len(), 3);
        let unalloc = p["unallocated_gpus_130"].as_f64().unwrap();
        assert!(
            ((100.0 - a130) / 100.0 * 18.0 - unalloc).abs() < 1e-6,
            "{p}"
        );
    }
}

#[test]
fn report_is_a_self_contained_page_with_svg() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.html");
    let trace = fixtures();
    let out = tessera(&[
        "simulate",
        "--trace",
        trace.to_str().unwrap(),
        "--pods",
        "tiny",
        "--seeds",
        "1",
        "--compare",
        "--report",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.matches("<svg").count() >= 2, "curves and GPU picture");
    assert!(html.contains("fgd") && html.contains("node-c"));
    assert!(html.contains("id=\"alloc-zoom\"") && html.contains("<table class=\"numbers\""));
}

#[test]
fn bundled_scenario_report_shows_memory_only_pods_the_failed_pod_and_faults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.html");
    let out = tessera(&["simulate", "--report", path.to_str().unwrap()]);
    assert!(out.status.success());
    let html = std::fs::read_to_string(&path).unwrap();
    // gpushare pods ask for memory only: each has its memory segment and its legend entry.
    for i in 1..=6 {
        let pod = format!("research/gpushare-ocr-{i}");
        assert!(
            html.contains(&format!("class=\"mem\" data-pod=\"{pod}\"")),
            "{pod}"
        );
        assert_eq!(html.matches(&format!("title=\"{pod} — ")).count(), 1);
    }
    assert!(html.contains("research/typo-gpu-core"));
    assert!(html.contains("is outside 1..=100 percent"));
    assert!(html.contains("⚠ anti-affinity"));
}

#[test]
fn bad_input_names_file_line_and_field_and_exits_non_zero() {
    let dir = fixtures();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--pods", "broken"],
            "openb_pod_list_broken.csv:3: field \"cpu_milli\": \"four\" is not a non-negative integer",
        ),
        (
            &["--pods", "nosuch"],
            "--pods \"nosuch\": no openb_pod_list_nosuch.csv in",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["simulate", "--trace", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = tessera(&args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
    }
    let out = tessera(&["simulate", "--policy", "tetris"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'tetris'"));
    let out = tessera(&["simulate", "--trace", "/nonexistent-dir"]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot open /nonexistent-dir/openb_node_list_gpu_node.csv")
    );
}

#[test]
fn a_workload_file_with_a_wrong_version_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.yaml");
    std::fs::write(&path, "version: v2\npods: []\n").unwrap();
    let out = tessera(&["simulate", "--workload", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("w.yaml: version \"v2\" is not supported"),
        "{err}"
    );
}

#[test]
fn through_extender_mode_reports_both_numbers_per_policy() {
    let doc = trace_json(&["--seeds", "2", "--policy", "fgd", "--through-extender"]);
    let names: Vec<&str> = doc["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fgd", "fgd@0-10"]);
    let through = &doc["policies"][1];
    assert!(
        through.get("published").is_none(),
        "published figures are for the ideal mode only"
    );
    assert_eq!(through["per_seed"].as_array().unwrap().len(), 2);
}

#[test]
fn dra_mode_adds_first_fit_per_policy_and_kube_scheduler_alone() {
    let doc = trace_json(&[
        "--seeds",
        "2",
        "--policy",
        "fgd",
        "--through-extender",
        "--dra",
    ]);
    let policies = doc["policies"].as_array().unwrap();
    let names: Vec<&str> = policies
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "fgd",
            "fgd/first-fit",
            "fgd@0-10",
            "fgd@0-10/first-fit",
            "kube-scheduler/first-fit"
        ]
    );
    for p in &policies[1..] {
        assert!(p.get("published").is_none(), "{p}");
        assert_eq!(p["per_seed"].as_array().unwrap().len(), 2);
    }
}
