//! The shipped profiles' `members` commands, run with `sh -c` as the controller runs them, read
//! the product's answer into the same membership the controller plans from. The product tools
//! are stand-ins here that print the products' output formats: ZooKeeper's as observed from the
//! real ZooKeeper 3.8 (the e2e test runs the real one); Kafka's and RocketMQ's as their tools
//! document them, since neither product is installable on these machines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use k8s_openapi::api::apps::v1::StatefulSet;
use tessera_ensemble::observe::{Ensemble, ids, parse_members};
use tessera_inject::{InjectionProfileSpec, Profile, compile_all};

fn shipped(name: &str) -> Profile {
    let path = format!(
        "{}/../manifests/profiles/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let spec: InjectionProfileSpec = serde_yaml_ng::from_value(doc["spec"].clone()).unwrap();
    let (mut ok, bad) = compile_all([(name.to_string(), spec)]);
    assert!(bad.is_empty(), "{bad:?}");
    ok.remove(0)
}

fn statefulset(name: &str) -> StatefulSet {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"replicas": 5, "serviceName": format!("{name}-hs"),
                 "selector": {}, "template": {}}
    }))
    .unwrap()
}

/// Puts an executable `name` running `body` (sh) in `dir`.
fn tool(dir: &Path, name: &str, body: &str) {
    let script = dir.join(name);
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `command` with `sh -c`, the tools in `dir` first on PATH and `env` set; its stdout.
fn sh(dir: &Path, command: &str, env: &[(&str, &str)]) -> String {
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .args(["-c", command])
        .env("PATH", path)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `command` with a tool `name` on PATH that prints `output`.
fn run(dir: &Path, name: &str, output: &str, command: &str, env: &[(&str, &str)]) -> String {
    tool(dir, name, &format!("cat <<'OUT'\n{output}\nOUT"));
    sh(dir, command, env)
}

fn members(profile: &Profile, sts: &str, answer: &str) -> (BTreeSet<u32>, BTreeSet<u32>) {
    let set = statefulset(sts);
    let e = Ensemble::of(&set).unwrap();
    let ids = ids(profile, &e, 8, "cluster.local");
    let m = profile
        .spec
        .identity
        .as_ref()
        .unwrap()
        .membership
        .as_ref()
        .unwrap();
    let live = parse_members(answer, &ids, &m.roles.voter, &m.roles.learner)
        .unwrap_or_else(|e| panic!("{e}: {answer:?}"));
    (live.voters, live.learners)
}

#[test]
fn zookeeper_config_is_read_into_voters_and_learners() {
    let p = shipped("zookeeper");
    let m = p
        .spec
        .identity
        .as_ref()
        .unwrap()
        .membership
        .as_ref()
        .unwrap();
    let h = |o: u32| format!("zk-{o}.zk-hs.ns.svc.cluster.local");
    let config = format!(
        "Connecting to {}:2181\n\nWATCHER::\n\nWatchedEvent state:SyncConnected type:None path:null\n\
         server.1={}:2888:3888:participant;{}:2181\nserver.2={}:2888:3888:participant;{}:2181\n\
         server.3={}:2888:3888:participant;{}:2181\nserver.4={}:2888:3888:observer;{}:2181\n\
         version=100000005",
        h(0),
        h(0),
        h(0),
        h(1),
        h(1),
        h(2),
        h(2),
        h(3),
        h(3)
    );
    let dir = tempfile::tempdir().unwrap();
    let answer = run(
        dir.path(),
        "zkCli.sh",
        &config,
        &m.commands.members,
        &[("ZOO_CLIENT", "x:2181")],
    );
    assert_eq!(members(&p, "zk", &answer), ([0, 1, 2].into(), [3].into()));
}

#[test]
fn kafka_replication_status_is_read_into_controllers_and_observers() {
    let p = shipped("kafka");
    let m = p
        .spec
        .identity
        .as_ref()
        .unwrap()
        .membership
        .as_ref()
        .unwrap();
    assert!(
        m.commands.add_in_member,
        "add-controller runs in the joining node"
    );
    let table = "NodeId\tDirectoryId\tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus\t\n\
                 0\tAAAAAAAAAAAAAAAAAAAAAA\t15\t0\t1\t1\tLeader\t\n\
                 1\tBBBBBBBBBBBBBBBBBBBBBB\t15\t0\t1\t1\tFollower\t\n\
                 2\tCCCCCCCCCCCCCCCCCCCCCC\t15\t0\t1\t1\tFollower\t\n\
                 3\tDDDDDDDDDDDDDDDDDDDDDD\t15\t0\t1\t1\tObserver\t";
    let dir = tempfile::tempdir().unwrap();
    let env = [("KAFKA_CONTROLLER_SELF", "x:9093"), ("KAFKA_NODE_ID", "3")];
    let answer = run(
        dir.path(),
        "kafka-metadata-quorum.sh",
        table,
        &m.commands.members,
        &env,
    );
    assert_eq!(
        members(&p, "kafka", &answer),
        ([0, 1, 2].into(), [3].into())
    );
    // The hold of a stop: node 3 is an observer, so its stop is not held; node 1 votes.
    let votes = |id: &str| {
        let env = [("KAFKA_CONTROLLER_SELF", "x:9093"), ("KAFKA_NODE_ID", id)];
        let cmd = format!("{} && echo held", m.commands.votes);
        run(dir.path(), "kafka-metadata-quorum.sh", table, &cmd, &env).trim() == "held"
    };
    assert!(votes("1") && !votes("3"));
}

#[test]
fn rocketmq_brokers_are_writable_voters_and_read_only_learners() {
    let p = shipped("rocketmq-broker");
    let m = p
        .spec
        .identity
        .as_ref()
        .unwrap()
        .membership
        .as_ref()
        .unwrap();
    // One stand-in answers both commands the pipeline runs, by its first argument.
    let dir = tempfile::tempdir().unwrap();
    tool(
        dir.path(),
        "mqadmin",
        "case $1 in\n\
         clusterList) printf '%s\\n' '#Cluster Name  #Broker Name  #BID  #Addr  #Version' \
         'DefaultCluster  broker-0  0  10.0.0.1:10911  V5' 'DefaultCluster  broker-1  0  10.0.0.2:10911  V5' \
         'DefaultCluster  other-0  0  10.0.0.9:10911  V5' ;;\n\
         getBrokerConfig) case $3 in 10.0.0.2:10911) echo 'brokerPermission = 4' ;; *) echo 'brokerPermission = 6' ;; esac ;;\n\
         esac\n",
    );
    let env = [("NAMESRV_ADDR", "ns:9876"), ("BROKER_SET", "broker")];
    let answer = sh(dir.path(), &m.commands.members, &env);
    assert_eq!(
        members(&p, "broker", &answer),
        ([0].into(), [1].into()),
        "{answer:?}"
    );
}
