//! Keeps the cluster state in step with the apiserver: a metadata watch on nodes (zone label,
//! `gpu-inventory` and its heartbeat) and a watch on the pods of the Tessera scheduler profile
//! (their `gpu-assignment`, node and group). A (re-)list is applied as one resync, so objects
//! deleted while the watch was down are dropped; the state is ready once both have listed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tessera_core::cluster::{NodeFacts, Notice, PodFacts};

use crate::slim_pod::SlimPod;
use crate::stale;
use crate::state::ExtenderState;

/// Which pods to watch.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Scheduler name of the profile that uses the extender: only its pods can hold shares.
    pub scheduler_name: String,
}

/// Runs both watches, and the DRA path's, until the process ends, marking the state ready once
/// both have listed (readiness also waits for the DRA path's, see `watch_dra`).
pub async fn run(client: Client, state: Arc<ExtenderState>, config: WatchConfig) {
    let nodes_listed = Arc::new(AtomicBool::new(false));
    let pods_listed = Arc::new(AtomicBool::new(false));
    let nodes = watch_nodes(
        client.clone(),
        state.clone(),
        nodes_listed.clone(),
        pods_listed.clone(),
    );
    let dra = crate::watch_dra::start(client.clone(), state.clone());
    let pods = watch_pods(client, state, config, pods_listed, nodes_listed);
    futures::join!(nodes, pods, dra);
}

fn node_facts(meta: &PartialObjectMeta<Node>) -> NodeFacts {
    let m = &meta.metadata;
    NodeFacts::from_metadata(
        m.name.as_deref().unwrap_or_default(),
        m.labels.as_ref(),
        m.annotations.as_ref(),
    )
}

async fn watch_nodes(
    client: Client,
    state: Arc<ExtenderState>,
    listed: Arc<AtomicBool>,
    other_listed: Arc<AtomicBool>,
) {
    // Metadata only: node status updates are frequent and carry nothing the ledger needs.
    let api: Api<PartialObjectMeta<Node>> = Api::all(client);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    consume(
        stream,
        &state,
        &listed,
        &other_listed,
        |state, batch| match batch {
            Batch::One(Event::Apply(n)) => state.update(|c| c.apply_node(node_facts(&n))),
            Batch::One(Event::Delete(n)) => {
                state.update(|c| c.remove_node(n.metadata.name.as_deref().unwrap_or_default()));
                Vec::new()
            }
            Batch::One(_) => Vec::new(),
            Batch::Relist(all) => {
                state.update(|c| c.resync_nodes(all.iter().map(node_facts).collect()))
            }
        },
    )
    .await;
}

async fn watch_pods(
    client: Client,
    state: Arc<ExtenderState>,
    config: WatchConfig,
    listed: Arc<AtomicBool>,
    other_listed: Arc<AtomicBool>,
) {
    // Decoded slim: each pod comes by several times (created, bound, running, gone), and the
    // ledger keeps a few facts of it.
    let api: Api<SlimPod> = Api::all(client.clone());
    let selector = format!("spec.schedulerName={}", config.scheduler_name);
    let stream =
        watcher::watcher(api, watcher::Config::default().fields(&selector)).default_backoff();
    consume(
        stream,
        &state,
        &listed,
        &other_listed,
        |state, batch| match batch {
            Batch::One(Event::Apply(p)) => {
                let facts = PodFacts::from_pod(&p);
                let writer = state.leadership().writer();
                let judge = state.judge(writer.as_ref());
                let now_ms = state.now_ms();
                // Judged in the same update: applying an unbound pod changes no reservation.
                let (notices, stale) = state.update(|c| {
                    let stale = c.is_stale_assignment(&facts, &judge);
                    if c.adopt_in_flight(&facts, &judge, now_ms) {
                        tracing::info!(pod = %facts.key, "holding another term's bind in flight");
                    }
                    (c.apply_pod(facts), stale)
                });
                if stale {
                    stale::clear(&client, &p);
                }
                notices
            }
            Batch::One(Event::Delete(p)) => {
                state.update(|c| c.remove_pod(&PodFacts::from_pod(&p).key));
                Vec::new()
            }
            Batch::One(_) => Vec::new(),
            Batch::Relist(all) => {
                let facts: Vec<PodFacts> = all.iter().map(|p| PodFacts::from_pod(p)).collect();
                let writer = state.leadership().writer();
                let judge = state.judge(writer.as_ref());
                let now_ms = state.now_ms();
                let (notices, stale) = state.update(|c| {
                    let stale: Vec<usize> = (0..facts.len())
                        .filter(|&i| c.is_stale_assignment(&facts[i], &judge))
                        .collect();
                    for f in &facts {
                        c.adopt_in_flight(f, &judge, now_ms);
                    }
                    (c.resync_pods(facts), stale)
                });
                for i in stale {
                    stale::clear(&client, &all[i]);
                }
                notices
            }
        },
    )
    .await;
}

/// A single event, or a whole re-list gathered from `Init` … `InitDone`.
enum Batch<K> {
    One(Event<K>),
    Relist(Vec<K>),
}

async fn consume<K, S>(
    stream: S,
    state: &ExtenderState,
    listed: &AtomicBool,
    other_listed: &AtomicBool,
    apply: impl Fn(&ExtenderState, Batch<K>) -> Vec<Notice>,
) where
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut relist: Option<Vec<K>> = None;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(error = %e, "watch failed; retrying with backoff");
                continue;
            }
        };
        let notices = match event {
            Event::Init => {
                relist = Some(Vec::new());
                Vec::new()
            }
            Event::InitApply(obj) => {
                relist.get_or_insert_with(Vec::new).push(obj);
                Vec::new()
            }
            Event::InitDone => {
                let all = relist.take().unwrap_or_default();
                let notices = apply(state, Batch::Relist(all));
                listed.store(true, Ordering::Release);
                if other_listed.load(Ordering::Acquire) && !state.is_ready() {
                    state.update(|c| c.refresh_mix());
                    state.set_ready(true);
                    tracing::info!("caches synced; ready");
                }
                notices
            }
            other => apply(state, Batch::One(other)),
        };
        for notice in notices {
            tracing::warn!("{notice}");
        }
    }
}
