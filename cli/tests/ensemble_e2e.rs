//! A real ZooKeeper ensemble kept whole by `tessera ensemble` through scale-out, scale-in and
//! member loss, against the cluster in `TESSERA_E2E_KUBECONFIG` with the image named by
//! `TESSERA_E2E_ZOOKEEPER_IMAGE` (tests/images/zookeeper; skipped, saying so, when either is
//! unset). The members run on the testbed's kubelet with host networking, each on its own
//! loopback address, and `hostAliases` give them the stable names the profile renders (the
//! testbed has no cluster DNS). A writer creates sequential znodes the whole time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tessera_ensemble::exec;
use tessera_inject::InjectionProfile;
use tessera_kernel::ensemble::Record;
use tessera_tests::cluster::Harness;
use tessera_tests::e2e;
use tessera_tests::process::{free_addr, spawn_logged};

const STEP_LIMIT: Duration = Duration::from_secs(240);
const IMAGE_ENV: &str = "TESSERA_E2E_ZOOKEEPER_IMAGE";

/// Removes what the test registered cluster-wide, pass or fail.
struct Registered(PathBuf, String);

impl Drop for Registered {
    fn drop(&mut self) {
        let name = self.1.clone();
        e2e::cleanup_blocking(self.0.clone(), move |client| async move {
            let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
            let _ = api.delete(&name, &DeleteParams::default()).await;
            let api: Api<InjectionProfile> = Api::all(client);
            let _ = api.delete("zookeeper", &DeleteParams::default()).await;
        });
    }
}

/// The shipped profile, also for host-network pods: the testbed has no cluster DNS, so the
/// members run on the host network at addresses fixed in advance for their `hostAliases`.
fn shipped_profile() -> InjectionProfile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/profiles/zookeeper.yaml");
    let mut p: InjectionProfile =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    p.spec.host_network = true;
    p
}

fn host(ns: &str, ordinal: u32) -> String {
    format!("zk-{ordinal}.zk-hs.{ns}.svc.cluster.local")
}

fn statefulset(ns: &str, image: &str, node: &str) -> StatefulSet {
    let aliases: Vec<_> = (0..6)
        .map(|o| json!({"ip": format!("127.0.0.{}", 20 + o), "hostnames": [host(ns, o)]}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": "zk"},
        // OnDelete: the controller orders rolling restarts (followers first, the leader last).
        "spec": {"replicas": 3, "serviceName": "zk-hs", "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete"},
            "selector": {"matchLabels": {"app": "zk"}},
            "template": {"metadata": {"labels": {"app": "zk"}},
                "spec": {"nodeName": node, "hostNetwork": true, "hostAliases": aliases,
                    "terminationGracePeriodSeconds": 90,
                    "containers": [{"name": "zookeeper", "image": image,
                        "imagePullPolicy": "Never",
                        "readinessProbe": {"exec": {"command": ["sh", "-c",
                            "zk-4lw srvr | grep -q '^Mode: '"]},
                            "periodSeconds": 2, "failureThreshold": 1}}]}}}
    }))
    .unwrap()
}

/// Runs `sh -c script` in member `pod` (as the controller runs the profile's commands); its
/// stdout, or `None` when it failed.
async fn sh(pods: &Api<Pod>, pod: &str, script: &str) -> Option<String> {
    let ran = exec::run(pods, pod, "zookeeper", script, Duration::from_secs(30))
        .await
        .ok()?;
    ran.ok.then_some(ran.stdout)
}

/// Ready member pods by ordinal.
async fn ready_members(pods: &Api<Pod>) -> BTreeSet<u32> {
    let list = pods.list(&Default::default()).await.unwrap();
    list.items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| {
            p.metadata
                .name
                .as_deref()?
                .strip_prefix("zk-")?
                .parse()
                .ok()
        })
        .collect()
}

/// The voters each ready member reports (4lw `conf`, no JVM).
async fn views(pods: &Api<Pod>, members: &BTreeSet<u32>) -> Vec<BTreeSet<u32>> {
    let mut out = Vec::new();
    for o in members {
        let text = sh(pods, &format!("zk-{o}"), "zk-4lw conf")
            .await
            .unwrap_or_default();
        let voters: BTreeSet<u32> = text
            .lines()
            .filter(|l| l.contains(":participant;"))
            .filter_map(|l| {
                l.strip_prefix("server.")?
                    .split('=')
                    .next()?
                    .parse::<u32>()
                    .ok()
            })
            .map(|id| id - 1)
            .collect();
        out.push(voters);
    }
    out
}

/// Waits until the record, the pods and every member agree on voters `0..n`; how long it took.
async fn settle(sts: &Api<StatefulSet>, pods: &Api<Pod>, n: u32) -> Duration {
    let start = Instant::now();
    let want: BTreeSet<u32> = (0..n).collect();
    loop {
        let s = sts.get("zk").await.unwrap();
        let record = s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("tessera.dev/membership"))
            .and_then(|t| Record::parse(t).ok());
        let ready = ready_members(pods).await;
        if record
            .as_ref()
            .is_some_and(|r| r.voters == want && r.learners.is_empty())
            && ready == want
        {
            let views = views(pods, &ready).await;
            if views.iter().all(|v| *v == want) {
                return start.elapsed();
            }
        }
        assert!(
            start.elapsed() < STEP_LIMIT,
            "the ensemble did not settle on {n} voters: record {record:?}, ready {ready:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Writes sequential znodes through any ready member until stopped; the acknowledged names.
struct Writer {
    acked: Arc<Mutex<Vec<String>>>,
    attempts: Arc<Mutex<u32>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(pods: Api<Pod>) -> Writer {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(Mutex::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, t, s) = (acked.clone(), attempts.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut k = 0u32;
            while !s.load(std::sync::atomic::Ordering::Acquire) {
                let ready: Vec<u32> = ready_members(&pods).await.into_iter().collect();
                if ready.is_empty() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                let o = ready[k as usize % ready.len()];
                k += 1;
                *t.lock().unwrap() += 1;
                let script = "zkCli.sh -server \"$ZOO_CLIENT\" create -s /w/n- x 2>&1 | sed -n 's/^Created //p'";
                if let Some(out) = sh(&pods, &format!("zk-{o}"), script).await {
                    let name = out.trim().to_string();
                    if name.starts_with("/w/n-") {
                        a.lock().unwrap().push(name);
                    }
                }
            }
        });
        Writer {
            acked,
            attempts,
            stop,
            task,
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn finish(self) -> (Vec<String>, u32) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let _ = self.task.await;
        let acked = self.acked.lock().unwrap().clone();
        let attempts = *self.attempts.lock().unwrap();
        (acked, attempts)
    }
}

/// Waits until the writer's acknowledged count passes `past` (the ensemble serves writes).
async fn serves(w: &Writer, past: usize, what: &str) -> Duration {
    let start = Instant::now();
    while w.acked() <= past {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no write acknowledged {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    start.elapsed()
}

/// Kills members `which` (their pods deleted at once, no grace) and checks that writes go on.
async fn lose(pods: &Api<Pod>, w: &Writer, which: &[u32], what: &str) -> Duration {
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    for o in which {
        pods.delete(&format!("zk-{o}"), &now).await.unwrap();
    }
    let before = w.acked();
    // Two writes after the loss, while the lost members are still starting again (a JVM).
    serves(w, before + 1, what).await
}

/// Member `ordinal`'s mode (`leader`, `follower`, ...) asked over its client port from this
/// machine (the members use the host network), without a JVM or an exec.
fn mode(ordinal: u32) -> Option<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 20 + ordinal as u8], 2181));
    let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    conn.set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    conn.write_all(b"srvr").ok()?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).ok()?;
    answer
        .lines()
        .find_map(|l| l.strip_prefix("Mode: ").map(str::to_string))
}

/// Watches for a leader every 100 ms until stopped; the longest time none of `members` led.
fn watch_leaderless(
    members: u32,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        let (mut longest, mut since) = (Duration::ZERO, None::<Instant>);
        while !stop.load(std::sync::atomic::Ordering::Acquire) {
            let led = (0..members).any(|o| mode(o).as_deref() == Some("leader"));
            match (led, since) {
                (true, Some(t)) => {
                    longest = longest.max(t.elapsed());
                    since = None;
                }
                (false, None) => since = Some(Instant::now()),
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        longest.max(since.map_or(Duration::ZERO, |t| t.elapsed()))
    })
}

/// Waits until pod `name` exists with a UID other than `not` (and, with `terminating`, is
/// being deleted); its UID.
async fn pod_seen(pods: &Api<Pod>, name: &str, not: Option<&str>, terminating: bool) -> String {
    e2e::wait_for(&format!("pod {name}"), Duration::from_secs(60), || {
        let pods = pods.clone();
        let (name, not) = (name.to_string(), not.map(str::to_string));
        async move {
            let p = pods.get_opt(&name).await.ok()??;
            let uid = p.metadata.uid?;
            let stopping = p.metadata.deletion_timestamp.is_some();
            (Some(&uid) != not.as_ref() && stopping == terminating).then_some(uid)
        }
    })
    .await
    .unwrap()
}

async fn scale(sts: &Api<StatefulSet>, n: u32) {
    let patch = json!({"spec": {"replicas": n}});
    sts.patch("zk", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zookeeper_ensemble_keeps_its_quorum_through_scale_and_member_loss() {
    let test = "a_zookeeper_ensemble_keeps_its_quorum_through_scale_and_member_loss";
    let Some(kubeconfig) = e2e::kubeconfig(test) else {
        return;
    };
    let Ok(image) = std::env::var(IMAGE_ENV) else {
        println!("skipped {test}: {IMAGE_ENV} is not set (build tests/images/zookeeper)");
        return;
    };
    let node = std::env::var("TESSERA_E2E_NODE").unwrap_or_else(|_| "node-1".into());
    let h = Harness::start_with(&kubeconfig, 0, 0).await;
    let client: Client = h.client.clone();
    let _registered = Registered(kubeconfig.clone(), h.ns.clone());

    // The profile in the cluster (the controller reads it there), the webhook from the file.
    e2e::install_profile_crd(&client).await;
    let profiles: Api<InjectionProfile> = Api::all(client.clone());
    profiles
        .patch(
            "zookeeper",
            &PatchParams::apply("tessera-e2e").force(),
            &Patch::Apply(&shipped_profile()),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let profile_file = dir.path().join("zookeeper.yaml");
    std::fs::write(
        &profile_file,
        serde_yaml_ng::to_string(&shipped_profile()).unwrap(),
    )
    .unwrap();
    let webhook = support::file_mode_webhook_with(
        dir.path(),
        &profile_file,
        &["--kubeconfig".as_ref(), kubeconfig.as_os_str()],
    );
    support::register_by_url(&client, &h.ns, "ensemble.tessera.dev", &h.ns, &webhook).await;
    // Dry runs until the apiserver calls the webhook (it picks up new configurations shortly).
    let probe: Pod = serde_json::from_value(json!({
        "metadata": {"name": "probe", "labels": {"app": "zk"}},
        "spec": {"hostNetwork": true, "containers": [{"name": "zookeeper", "image": image}]}}))
    .unwrap();
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let probe_pods: Api<Pod> = Api::namespaced(client.clone(), &h.ns);
    e2e::wait_for("the webhook to be called", Duration::from_secs(60), || {
        let (api, probe, dry) = (probe_pods.clone(), probe.clone(), dry.clone());
        async move {
            let made = api.create(&dry, &probe).await.ok()?;
            made.metadata
                .annotations?
                .contains_key("tessera.dev/injected")
                .then_some(())
        }
    })
    .await
    .unwrap();

    let metrics = free_addr().to_string();
    let log = dir.path().join("ensemble.log");
    let _controller = spawn_logged(
        Path::new(env!("CARGO_BIN_EXE_tessera")),
        [
            "--log-level",
            "info",
            "ensemble",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--period",
            "2",
            "--command-timeout",
            "20",
            "--metrics-listen",
            &metrics,
        ],
        &log,
    );
    let services: Api<Service> = Api::namespaced(client.clone(), &h.ns);
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
        "metadata": {"name": "zk-hs"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": true, "selector": {"app": "zk"},
                 "ports": [{"name": "client", "port": 2181}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &h.ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &h.ns);
    sts.create(&PostParams::default(), &statefulset(&h.ns, &image, &node))
        .await
        .unwrap();

    let log_of = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = settle(&sts, &pods, 3).await;
    println!("3 members up and recorded in {started:?}");
    // The parent of the writer's znodes.
    assert!(
        sh(
            &pods,
            "zk-0",
            "zkCli.sh -server \"$ZOO_CLIENT\" create /w x 2>&1 | grep -q Created"
        )
        .await
        .is_some()
    );
    let w = Writer::start(pods.clone());
    serves(&w, 0, "at the start").await;

    let mut report = Vec::new();
    // Each loss takes members the ensemble had before the step, which is what breaks an
    // ensemble whose membership did not follow the scale (the new members not voting after
    // 3->5; the old five-member voter set after 5->3).
    for (from, to, lost) in [
        (3u32, 5u32, vec![0u32, 1]),
        (5, 3, vec![2]),
        (3, 4, vec![0]),
    ] {
        scale(&sts, to).await;
        let took = settle(&sts, &pods, to).await;
        let budget = e2e::wait_for(
            "the ensemble's PodDisruptionBudget",
            Duration::from_secs(30),
            || {
                let client = client.clone();
                let ns = h.ns.clone();
                async move {
                    let api: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
                        Api::namespaced(client, &ns);
                    let b = api.get_opt("zk-quorum").await.ok()??;
                    b.spec?.max_unavailable
                }
            },
        )
        .await
        .unwrap();
        let tolerance = (to - 1) / 2;
        assert_eq!(
            budget,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(tolerance as i32)
        );
        assert_eq!(
            lost.len() as u32,
            tolerance,
            "the test loses what {to} members can lose"
        );
        let served = lose(&pods, &w, &lost, &format!("after losing {lost:?} of {to}")).await;
        let back = settle(&sts, &pods, to).await;
        println!(
            "scale {from}->{to}: settled in {took:?}; lost {lost:?}, next write in {served:?}; back in {back:?}"
        );
        report.push((from, to, took, served));
        assert!(
            log_of().contains("membership step"),
            "the controller took no step:\n{}",
            log_of()
        );
    }

    // A restart (not a scale-in) removes nothing: the held stop is released by the controller,
    // well before the hook's own 60 s limit, and the voters stay four.
    let before = pods.get("zk-1").await.unwrap().metadata.uid;
    let restart = Instant::now();
    pods.delete("zk-1", &DeleteParams::default()).await.unwrap();
    e2e::wait_for("zk-1 to be replaced", Duration::from_secs(50), || {
        let (pods, before) = (pods.clone(), before.clone());
        async move { (pods.get_opt("zk-1").await.ok()??.metadata.uid != before).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\ncontroller log:\n{}", log_of()));
    let released = restart.elapsed();
    let back = settle(&sts, &pods, 4).await;
    println!("restart of zk-1: stop released in {released:?}, back in {back:?}");
    assert!(
        log_of().contains("release member 1"),
        "the controller did not release the stop:\n{}",
        log_of()
    );

    // A member killed in the middle of a join: the controller finishes the join once the
    // StatefulSet has made the member again.
    scale(&sts, 5).await;
    pod_seen(&pods, "zk-4", None, false).await;
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    pods.delete("zk-4", &now).await.unwrap();
    let took = settle(&sts, &pods, 5).await;
    println!("4->5 with the joiner killed mid-join: settled in {took:?}");

    // A member killed in the middle of its leave (its stop held by the hook): the controller
    // removes the dead voter.
    scale(&sts, 4).await;
    pod_seen(&pods, "zk-4", None, true).await;
    pods.delete("zk-4", &now).await.unwrap();
    let took = settle(&sts, &pods, 4).await;
    println!("5->4 with the leaver killed mid-leave: settled in {took:?}");

    // A rolling restart under the writer: followers first, the leader last, each once the
    // others are back; the ensemble is never long without a leader.
    let leader = (0..4)
        .find(|o| mode(*o).as_deref() == Some("leader"))
        .expect("a leader");
    let uids: Vec<String> = futures::future::join_all((0..4).map(|o| {
        let pods = pods.clone();
        async move {
            pods.get(&format!("zk-{o}"))
                .await
                .unwrap()
                .metadata
                .uid
                .unwrap()
        }
    }))
    .await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gaps = watch_leaderless(4, stop.clone());
    let roll = Instant::now();
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {"e2e/rolled": "1"}}}}});
    sts.patch("zk", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let mut replaced = Vec::new();
    while replaced.len() < 4 {
        assert!(
            roll.elapsed() < STEP_LIMIT,
            "rolling restart stuck after {replaced:?}:\n{}",
            log_of()
        );
        for o in 0..4u32 {
            let now_uid = pods
                .get_opt(&format!("zk-{o}"))
                .await
                .unwrap()
                .and_then(|p| p.metadata.uid);
            if now_uid.is_some_and(|u| u != uids[o as usize]) && !replaced.contains(&o) {
                replaced.push(o);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let back = settle(&sts, &pods, 4).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    let leaderless = gaps.join().unwrap();
    println!(
        "rolling restart: order {replaced:?} (leader was {leader}), done in {:?}, longest without a leader {leaderless:?}",
        roll.elapsed() - back
    );
    assert_eq!(replaced.last(), Some(&leader), "the leader restarts last");

    // `tessera inspect --ensembles` shows the ensemble as recorded. The record is written at
    // each of the controller's passes: one that ran while the restarted leader was still
    // starting says "no member reports the membership" and names no leader until the next.
    let inspect = || {
        let kubeconfig = kubeconfig.as_os_str();
        let args: [&std::ffi::OsStr; 8] = [
            "inspect".as_ref(),
            "--ensembles".as_ref(),
            "-o".as_ref(),
            "json".as_ref(),
            "-n".as_ref(),
            h.ns.as_ref(),
            "--kubeconfig".as_ref(),
            kubeconfig,
        ];
        let out = tessera_tests::process::output_ok(Path::new(env!("CARGO_BIN_EXE_tessera")), args);
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()
    };
    let asked = Instant::now();
    let shown = loop {
        let shown = inspect();
        if shown[0]["leader"].is_u64() {
            break shown;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "no leader recorded 30 s after the roll: {shown}\n{}",
            log_of()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    println!(
        "inspect: leader recorded {:?} after the roll settled",
        asked.elapsed()
    );
    assert_eq!(shown[0]["name"], "zk", "{shown}");
    assert_eq!(shown[0]["voters"], json!([0, 1, 2, 3]), "{shown}");
    assert_eq!(shown[0]["target"], 4, "{shown}");
    assert_eq!(shown[0]["faultTolerance"], 1, "{shown}");

    // The controller counts its steps by kind, and its gauge of ensembles below their fault
    // tolerance returns to 0 once the restarted leader votes again (it is set at each pass, so
    // a scrape right after the roll may still show the pass that saw the leader down).
    let scrape = || {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(&metrics).unwrap();
        conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        text
    };
    let whole = e2e::wait_for(
        "the ensemble back at its fault tolerance in the metrics",
        Duration::from_secs(30),
        || {
            let text = scrape();
            async move {
                text.contains("tessera_ensemble_below_fault_tolerance 0")
                    .then_some(text)
            }
        },
    )
    .await;
    let scraped = whole.unwrap_or_else(|e| panic!("{e}\n{}", scrape()));
    let count = |kind: &str| {
        let key = format!("tessera_ensemble_membership_changes_total{{kind=\"{kind}\"}} ");
        scraped
            .lines()
            .find_map(|l| l.strip_prefix(key.as_str())?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        count("join") >= 4 && count("leave") >= 3 && count("release") >= 1 && count("restart") >= 4,
        "{scraped}"
    );

    let (acked, attempts) = w.finish().await;
    let listed = sh(
        &pods,
        "zk-0",
        "zkCli.sh -server \"$ZOO_CLIENT\" ls /w 2>/dev/null | tail -1",
    )
    .await
    .unwrap();
    let present: BTreeSet<String> = listed
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|s| format!("/w/{}", s.trim()))
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|a| !present.contains(*a)).collect();
    println!(
        "writes: {attempts} attempted, {} acknowledged, {} present, {} missing",
        acked.len(),
        present.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    assert!(acked.len() >= 6, "too few writes to judge: {}", acked.len());
    let _ = webhook;
}
