//! Keeps the DRA path's state in step with the apiserver: ResourceSlices (the GPUs of each node
//! of driver `gpu.tessera.dev`), ResourceClaims (the shares allocated on them) and
//! ResourceClaimTemplates (what a pod naming one asks), all read into tessera-core's facts as
//! they arrive. A re-list is applied as one resync; the state is listed once all three have
//! listed. An apiserver that does not serve `resource.k8s.io/v1` (before 1.34) has nothing to
//! list: claim pods are then not scored, and the extender does not wait for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{Stream, StreamExt};
use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceClaimTemplate, ResourceSlice};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tessera_core::dra::{ClaimFacts, RequestShape, SliceFacts, spec_requests};

use crate::dra_state::DraState;
use crate::state::ExtenderState;

/// The API group version the watches read.
const RESOURCE_V1: &str = "resource.k8s.io/v1";

/// The three watches, to run until the process ends; from this call on, the extender is not
/// ready until they have listed.
pub fn start(client: Client, state: Arc<ExtenderState>) -> impl Future<Output = ()> {
    state.dra().expect_listing();
    run(client, state)
}

async fn run(client: Client, state: Arc<ExtenderState>) {
    let dra = state.dra();
    if let Err(e) = client.list_api_group_resources(RESOURCE_V1).await {
        if matches!(&e, kube::Error::Api(s) if s.code == 404) {
            tracing::info!("{RESOURCE_V1} is not served: claim pods are left to kube-scheduler");
            dra.set_listed();
            return;
        }
        // Anything else (a passing outage) is the watches' to retry.
        tracing::warn!(error = %e, "discovering {RESOURCE_V1}; watching anyway");
    }
    let listed = Arc::new(AtomicUsize::new(0));
    let slices = watch(
        Api::<ResourceSlice>::all(client.clone()),
        dra,
        &listed,
        slice_batch,
    );
    let claims = watch(
        Api::<ResourceClaim>::all(client.clone()),
        dra,
        &listed,
        claim_batch,
    );
    let templates = watch(
        Api::<ResourceClaimTemplate>::all(client),
        dra,
        &listed,
        template_batch,
    );
    futures::join!(slices, claims, templates);
}

/// A single change, or a whole re-list.
enum Batch<K> {
    Apply(K),
    Delete(K),
    Relist(Vec<K>),
}

fn slice_batch(dra: &DraState, batch: Batch<ResourceSlice>) {
    let errors = match batch {
        Batch::Apply(s) => match SliceFacts::from_slice(&s) {
            Some(facts) => dra.update(|c| c.apply_slice(facts)),
            // A slice handed to another driver or node-less now: as if deleted.
            None => dra.update(|c| c.remove_slice(&name(&s.metadata))),
        },
        Batch::Delete(s) => dra.update(|c| c.remove_slice(&name(&s.metadata))),
        Batch::Relist(all) => {
            let facts = all.iter().filter_map(SliceFacts::from_slice).collect();
            dra.update(|c| c.resync_slices(facts))
        }
    };
    for e in errors {
        tracing::warn!("ResourceClaim not counted yet: {e}");
    }
}

fn claim_batch(dra: &DraState, batch: Batch<ResourceClaim>) {
    let errors = match batch {
        Batch::Apply(c) => dra.update(|d| {
            let errors = d.apply_claim(ClaimFacts::from_claim(&c));
            // Cold start: the first shares teach the mix at once (otherwise periodically).
            if d.mix_is_empty() {
                d.refresh_mix();
            }
            errors
        }),
        Batch::Delete(c) => {
            dra.update(|d| d.remove_claim(&ClaimFacts::from_claim(&c).key));
            Vec::new()
        }
        Batch::Relist(all) => {
            let facts = all.iter().map(ClaimFacts::from_claim).collect();
            dra.update(|d| d.resync_claims(facts))
        }
    };
    for e in errors {
        tracing::warn!("ResourceClaim not counted yet: {e}");
    }
}

fn template_facts(t: &ResourceClaimTemplate) -> (String, Vec<RequestShape>) {
    (key(&t.metadata), spec_requests(&t.spec.spec))
}

fn template_batch(dra: &DraState, batch: Batch<ResourceClaimTemplate>) {
    match batch {
        Batch::Apply(t) => {
            let (key, requests) = template_facts(&t);
            dra.update(|c| c.apply_template(&key, requests));
        }
        Batch::Delete(t) => dra.update(|c| c.remove_template(&key(&t.metadata))),
        Batch::Relist(all) => {
            let facts = all.iter().map(template_facts).collect();
            dra.update(|c| c.resync_templates(facts));
        }
    }
}

fn name(meta: &kube::api::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn key(meta: &kube::api::ObjectMeta) -> String {
    let ns = meta.namespace.as_deref().unwrap_or("default");
    format!("{ns}/{}", name(meta))
}

/// Watches `api`, handing each change to `apply`; counts itself listed once, and marks the
/// state listed when the third watch has.
async fn watch<K>(api: Api<K>, dra: &DraState, listed: &AtomicUsize, apply: fn(&DraState, Batch<K>))
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    consume(stream, dra, listed, apply).await;
}

async fn consume<K, S>(
    stream: S,
    dra: &DraState,
    listed: &AtomicUsize,
    apply: fn(&DraState, Batch<K>),
) where
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut relist: Option<Vec<K>> = None;
    let mut counted = false;
    while let Some(event) = stream.next().await {
        match event {
            Err(e) => tracing::warn!(error = %e, "DRA watch failed; retrying with backoff"),
            Ok(Event::Init) => relist = Some(Vec::new()),
            Ok(Event::InitApply(obj)) => relist.get_or_insert_with(Vec::new).push(obj),
            Ok(Event::InitDone) => {
                apply(dra, Batch::Relist(relist.take().unwrap_or_default()));
                if !counted && listed.fetch_add(1, Ordering::AcqRel) + 1 == 3 {
                    dra.update(|c| c.refresh_mix());
                    dra.set_listed();
                    tracing::info!("DRA caches synced");
                }
                counted = true;
            }
            Ok(Event::Apply(obj)) => apply(dra, Batch::Apply(obj)),
            Ok(Event::Delete(obj)) => apply(dra, Batch::Delete(obj)),
        }
    }
}
