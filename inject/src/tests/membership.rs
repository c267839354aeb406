//! Members of an ensemble whose membership Tessera keeps, rendered with the shipped ZooKeeper
//! profile: a joining member starts knowing the recorded members and itself as a learner, a
//! member's stop is held while it votes, and quorum spreading follows the recorded voters.

use std::collections::BTreeMap;

use serde_json::json;
use tessera_kernel::ensemble::Record;

use super::{ctx, run, zk_pod};
use crate::membership::{RELEASED, member};
use crate::{Context, InjectionProfileSpec, Profile, compile_all};

fn shipped_zookeeper() -> Vec<Profile> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/profiles/zookeeper.yaml"
    );
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let spec: InjectionProfileSpec = serde_yaml_ng::from_value(doc["spec"].clone()).unwrap();
    let (ok, bad) = compile_all([("zookeeper".to_string(), spec)]);
    assert!(bad.is_empty(), "{bad:?}");
    ok
}

fn record(voters: &[u32], learners: &[u32], target: u32) -> Record {
    Record {
        voters: voters.iter().copied().collect(),
        learners: learners.iter().copied().collect(),
        target,
        ..Record::default()
    }
}

fn env_of(doc: &serde_json::Value) -> BTreeMap<String, String> {
    doc["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["value"].as_str().unwrap_or("").into(),
            )
        })
        .collect()
}

fn host(ordinal: u32) -> String {
    format!("zk-{ordinal}.zk-hs.default.svc.cluster.local")
}

fn line(ordinal: u32, role: &str) -> String {
    let h = host(ordinal);
    format!("server.{}={h}:2888:3888:{role};{h}:2181", ordinal + 1)
}

#[test]
fn a_new_ensemble_starts_with_every_replica_voting() {
    let ps = shipped_zookeeper();
    let replicas = |_: &str| Some(3);
    let c = Context {
        replicas: Some(&replicas),
        ..ctx()
    };
    let (_, _, doc) = run(&ps, &zk_pod(0), &c);
    let want: Vec<String> = (0..3).map(|o| line(o, "participant")).collect();
    assert_eq!(env_of(&doc)["ZOO_SERVERS"], want.join(" "));
}

#[test]
fn a_joining_member_knows_the_recorded_members_and_itself_as_an_observer() {
    let ps = shipped_zookeeper();
    // Scaling 3 -> 5: member 3 is a learner already, member 4 is being created.
    let replicas = |_: &str| Some(5);
    let rec = record(&[0, 1, 2], &[3], 5);
    let membership = |_: &str| Some(rec.clone());
    let c = Context {
        replicas: Some(&replicas),
        membership: Some(&membership),
        ..ctx()
    };
    let (_, pod, doc) = run(&ps, &zk_pod(4), &c);
    let want = [
        line(0, "participant"),
        line(1, "participant"),
        line(2, "participant"),
        line(3, "observer"),
        line(4, "observer"),
    ];
    assert_eq!(env_of(&doc)["ZOO_SERVERS"], want.join(" "));
    // Spread by the three voters until the new members vote, not by the five replicas.
    assert_eq!(pod.metadata.labels.unwrap()["tessera.dev/group-size"], "3");
}

#[test]
fn a_record_naming_no_voter_is_rendered_as_none() {
    let ps = shipped_zookeeper();
    let replicas = |_: &str| Some(3);
    let empty = record(&[], &[], 3);
    let membership = |_: &str| Some(empty.clone());
    let c = Context {
        replicas: Some(&replicas),
        membership: Some(&membership),
        ..ctx()
    };
    let (_, pod, doc) = run(&ps, &zk_pod(0), &c);
    let want: Vec<String> = (0..3).map(|o| line(o, "participant")).collect();
    assert_eq!(env_of(&doc)["ZOO_SERVERS"], want.join(" "));
    assert_eq!(pod.metadata.labels.unwrap()["tessera.dev/group-size"], "3");
}

#[test]
fn a_restarted_voter_keeps_its_vote_and_a_removed_member_is_left_out() {
    let ps = shipped_zookeeper();
    // After 5 -> 3, members 3 and 4 are gone from the record; member 1 restarts.
    let rec = record(&[0, 1, 2], &[], 3);
    let membership = |_: &str| Some(rec.clone());
    let c = Context {
        membership: Some(&membership),
        ..ctx()
    };
    let (_, _, doc) = run(&ps, &zk_pod(1), &c);
    let want: Vec<String> = (0..3).map(|o| line(o, "participant")).collect();
    assert_eq!(env_of(&doc)["ZOO_SERVERS"], want.join(" "));
}

#[test]
fn a_members_stop_is_held_while_it_votes_and_released_by_the_marker() {
    let ps = shipped_zookeeper();
    let (_, pod, doc) = run(&ps, &zk_pod(2), &ctx());
    assert_eq!(
        pod.metadata.labels.unwrap()["tessera.dev/membership"],
        "zookeeper"
    );
    let hook = &doc["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"];
    assert_eq!(hook[0], "sh");
    let script = hook[2].as_str().unwrap();
    assert!(
        script.contains(&format!("[ -e {RELEASED} ] && exit 0")),
        "{script}"
    );
    assert!(
        script.contains("-lt 60 ]"),
        "bounded by the profile's timeout: {script}"
    );
    assert!(
        script.contains(":participant;"),
        "runs the profile's votes command: {script}"
    );
    let mounts = doc["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap();
    assert!(mounts.iter().any(
        |m| m == &json!({"name": "tessera-membership", "mountPath": "/run/tessera-membership"})
    ));
}

#[test]
fn a_container_with_its_own_pre_stop_is_refused_by_name() {
    let ps = shipped_zookeeper();
    let mut pod = zk_pod(0);
    pod["spec"]["containers"][0]["lifecycle"] = json!({"preStop": {"exec": {"command": ["true"]}}});
    let text = pod.to_string();
    let view: crate::PodView<'_> = serde_json::from_str(&text).unwrap();
    let err = crate::mutate(&ps, &view, &ctx()).unwrap_err().to_string();
    assert!(
        err.contains("\"zookeeper\" already has a preStop hook"),
        "{err}"
    );
}

#[test]
fn the_controller_names_a_member_by_its_id_and_its_voter_entry() {
    let ps = shipped_zookeeper();
    let m = member(&ps[0], "zk", "default", Some("zk-hs"), 4, "cluster.local").unwrap();
    assert_eq!(m.id, "5");
    assert_eq!(m.entry, line(4, "participant"));
}
