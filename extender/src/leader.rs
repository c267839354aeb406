//! Leader election among extender replicas on a `coordination.k8s.io/v1` Lease, and the fence
//! every write checks. The election is kube-lease-manager's; what this module adds is the
//! answer to "may I write now, and as which term": the Lease as last seen by a watch (holder,
//! `leaseTransitions`, renew time) and a local deadline, so a replica paused or cut off past its
//! Lease stops binding and cleaning by its own clock, before another can take the Lease over.
//! Every replica keeps warm caches and is ready once they are synced; only the leader answers
//! the verbs (a standby answers 503). In a pod, the leader labels itself
//! `tessera.dev/extender-role: leader` and the Service selects that label, so kube-scheduler
//! reaches the leader. Readiness is not used to route: a standby that is never ready would stall
//! a rolling update (the new pods never become ready while an old one leads) and make the
//! leader's node impossible to drain under a PodDisruptionBudget.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use tessera_core::annotations::Writer;

/// A leader stops writing this long before its Lease would expire: the apiserver's clock and
/// ours may differ a little, and a standby may take the Lease the moment it expires.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(1500);

/// Where the Lease lives and how long a term lasts without renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// How long a holder's claim lasts after its last renewal (whole seconds, at least 3).
    pub duration: Duration,
}

impl LeaseSettings {
    /// Seconds before expiry at which the holder renews: a third of the term.
    fn grace_secs(&self) -> u64 {
        (self.duration.as_secs() / 3).max(1)
    }
}

/// What this replica knows about the Lease.
#[derive(Debug, Default)]
struct Seen {
    /// The election says this replica holds the Lease.
    won: bool,
    /// The Lease's holder as last watched.
    holder: Option<String>,
    /// `leaseTransitions` as last watched.
    term: u64,
    /// The holder's renew time plus the term's length, less the safety margin.
    valid_until: Option<SystemTime>,
}

/// This replica's standing: leader (and of which term) or standby.
#[derive(Debug)]
pub struct Leadership {
    identity: String,
    elected: bool,
    seen: Mutex<Seen>,
    /// Signalled when the watch sees the holder free the Lease (a leader stepping down).
    released: tokio::sync::Notify,
}

impl Leadership {
    /// A replica that runs alone (`--leader-elect=false`): always leads, as term 0.
    pub fn single(identity: impl Into<String>) -> Self {
        Leadership {
            identity: identity.into(),
            elected: false,
            seen: Mutex::default(),
            released: tokio::sync::Notify::new(),
        }
    }

    /// A replica that leads only while it holds the Lease.
    pub fn elected(identity: impl Into<String>) -> Self {
        Leadership {
            elected: true,
            ..Self::single(identity)
        }
    }

    /// This replica's identity in the Lease.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The writer to record on assignments, while this replica leads; `None` on a standby.
    pub fn writer(&self) -> Option<Writer> {
        self.writer_at(SystemTime::now())
    }

    /// [`Leadership::writer`] at `now`.
    pub fn writer_at(&self, now: SystemTime) -> Option<Writer> {
        if !self.elected {
            return Some(Writer {
                holder: self.identity.clone(),
                term: 0,
            });
        }
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let leads = seen.won
            && seen.holder.as_deref() == Some(self.identity.as_str())
            && seen.valid_until.is_some_and(|t| now < t);
        leads.then(|| Writer {
            holder: self.identity.clone(),
            term: seen.term,
        })
    }

    /// The Lease's holder as last seen (for telling a caller where the leader is).
    pub fn holder(&self) -> Option<String> {
        if !self.elected {
            return Some(self.identity.clone());
        }
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.holder.clone()
    }

    /// The election's verdict for this replica.
    pub fn set_won(&self, won: bool) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).won = won;
    }

    /// Records the Lease as watched (`None`: deleted).
    pub fn observe(&self, lease: Option<&Lease>) {
        let spec = lease.and_then(|l| l.spec.as_ref());
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let holder = spec.and_then(|s| s.holder_identity.clone());
        if seen.holder.is_some() && holder.is_none() {
            self.released.notify_one();
        }
        seen.holder = holder;
        seen.term = spec
            .and_then(|s| s.lease_transitions)
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(0);
        seen.valid_until = spec.and_then(|s| {
            let renewed = s.renew_time.as_ref()?.0;
            let seconds = u64::try_from(s.lease_duration_seconds?).ok()?;
            let renewed = SystemTime::UNIX_EPOCH
                + Duration::from_nanos(u64::try_from(renewed.as_nanosecond()).ok()?);
            (renewed + Duration::from_secs(seconds)).checked_sub(SAFETY_MARGIN)
        });
    }
}

/// This replica's identity: the pod name when the Deployment passes it (`POD_NAME`), else the
/// host name and process ID.
pub fn identity() -> String {
    if let Ok(name) = std::env::var("POD_NAME")
        && !name.is_empty()
    {
        return name;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tessera-extender".into());
    format!("{host}_{}", std::process::id())
}

/// The namespace the Lease goes in when no flag names one: the pod's own, else
/// `tessera-system`.
pub fn default_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok()
        })
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "tessera-system".into())
}

/// Label on the leader's pod; the extender Service selects it.
pub const LABEL_ROLE: &str = "tessera.dev/extender-role";
/// Value of [`LABEL_ROLE`] on the leader.
pub const ROLE_LEADER: &str = "leader";

/// The pod this replica runs in (`POD_NAMESPACE`, `POD_NAME` from the downward API), if any.
pub fn own_pod() -> Option<(String, String)> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some((get("POD_NAMESPACE")?, get("POD_NAME")?))
}

/// Puts the leader label on this replica's pod (taking it off any other replica's pod that
/// still carries it, a deposed leader paused or cut off), or takes it off.
async fn mark(client: &Client, pod: &(String, String), leads: bool) -> Result<(), kube::Error> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{ListParams, Patch, PatchParams};
    let (namespace, name) = pod;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let label = |on: bool| {
        let value = on.then_some(ROLE_LEADER);
        serde_json::json!({"metadata": {"labels": {LABEL_ROLE: value}}})
    };
    let params = PatchParams::default();
    if leads {
        let others = ListParams::default().labels(&format!("{LABEL_ROLE}={ROLE_LEADER}"));
        for other in pods.list_metadata(&others).await? {
            let Some(other) = other.metadata.name else {
                continue;
            };
            if other != *name {
                pods.patch(&other, &params, &Patch::Merge(&label(false)))
                    .await?;
            }
        }
    }
    pods.patch(name, &params, &Patch::Merge(&label(leads)))
        .await?;
    Ok(())
}

/// [`mark`], retried a few times; a failure is logged (the label is set again on the next change).
async fn mark_retrying(client: &Client, pod: Option<&(String, String)>, leads: bool) {
    let Some(pod) = pod else { return };
    for attempt in 1..=5 {
        match mark(client, pod, leads).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, attempt, leads, "setting the leader label on this pod");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
        }
    }
}

/// A running election; [`Election::step_down`] ends it and frees the Lease.
pub struct Election {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Election {
    /// Stops leading at once, then releases the Lease (waiting at most a few seconds), so a
    /// standby need not wait for it to expire.
    pub async fn step_down(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// Starts the Lease watch and the election for `leadership`.
pub fn start(
    client: Client,
    leadership: std::sync::Arc<Leadership>,
    lease: LeaseSettings,
) -> Election {
    tokio::spawn(watch_lease(
        client.clone(),
        leadership.clone(),
        lease.clone(),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(elect(client, leadership, lease, stopped));
    Election { stop, task }
}

async fn watch_lease(client: Client, leadership: std::sync::Arc<Leadership>, lease: LeaseSettings) {
    let api: Api<Lease> = Api::namespaced(client, &lease.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", lease.name));
    let mut stream = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Apply(l) | Event::InitApply(l)) => leadership.observe(Some(&l)),
            Ok(Event::Delete(_)) => leadership.observe(None),
            Ok(Event::Init | Event::InitDone) => {}
            Err(e) => {
                tracing::warn!(error = %e, lease = %lease.name, "Lease watch failed; retrying")
            }
        }
    }
}

async fn elect(
    client: Client,
    leadership: std::sync::Arc<Leadership>,
    lease: LeaseSettings,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let pod = own_pod();
    loop {
        let Some(manager) = build_manager(&client, &leadership, &lease, &mut stopped).await else {
            return;
        };
        let (mut verdicts, task) = manager.watch().await;
        let stop = loop {
            tokio::select! {
                changed = verdicts.changed() => {
                    if changed.is_err() {
                        tracing::error!("leader election ended unexpectedly; joining again");
                        break false;
                    }
                    let won = *verdicts.borrow_and_update();
                    leadership.set_won(won);
                    match won {
                        true => tracing::info!(identity = leadership.identity(), "leading: serving the verbs"),
                        false => tracing::warn!(identity = leadership.identity(), "not leading: standing by"),
                    }
                    mark_retrying(&client, pod.as_ref(), won).await;
                }
                // The leader stepped down: a standby's manager sleeps until the old term would
                // have expired, so it is started afresh to take the free Lease at once.
                _ = leadership.released.notified(), if !*verdicts.borrow() => break false,
                _ = &mut stopped => break true,
            }
        };
        if stop {
            leadership.set_won(false);
            mark_retrying(&client, pod.as_ref(), false).await;
        }
        // Closing the channel makes the manager release the Lease (if held) and end.
        drop(verdicts);
        match task.await {
            Ok(Ok(_)) if stop => tracing::info!("leader Lease released"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "leaving the leader election"),
            Err(e) => tracing::warn!(error = %e, "leader election task"),
        }
        if stop {
            return;
        }
    }
}

/// The Lease manager, retried with backoff until the Lease can be used; `None` when stopped.
async fn build_manager(
    client: &Client,
    leadership: &Leadership,
    lease: &LeaseSettings,
    stopped: &mut tokio::sync::oneshot::Receiver<()>,
) -> Option<kube_lease_manager::LeaseManager> {
    let mut retry = Duration::from_millis(500);
    loop {
        let built = LeaseManagerBuilder::new(client.clone(), &lease.name)
            .with_namespace(&lease.namespace)
            .with_identity(leadership.identity())
            .with_duration(lease.duration.as_secs())
            .with_grace(lease.grace_secs())
            .build()
            .await;
        match built {
            Ok(manager) => return Some(manager),
            Err(e) => {
                tracing::warn!(error = %e, lease = %lease.name, namespace = %lease.namespace,
                    "cannot use the leader Lease; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(retry) => {}
                    _ = &mut *stopped => return None,
                }
                retry = (retry * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use k8s_openapi::jiff::Timestamp;

    fn lease(holder: &str, transitions: i32, renewed: SystemTime, seconds: i32) -> Lease {
        let since = renewed.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_transitions: Some(transitions),
                lease_duration_seconds: Some(seconds),
                renew_time: Some(MicroTime(
                    Timestamp::from_nanosecond(since.as_nanos() as i128).unwrap(),
                )),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_replica_leads_only_while_it_won_holds_and_its_term_is_fresh() {
        let now = SystemTime::now();
        let me = Leadership::elected("ext-a");
        assert_eq!(me.writer_at(now), None, "nothing seen yet");
        me.observe(Some(&lease("ext-a", 4, now, 10)));
        assert_eq!(me.writer_at(now), None, "the election has not said so yet");
        me.set_won(true);
        let writer = me.writer_at(now).unwrap();
        assert_eq!((writer.holder.as_str(), writer.term), ("ext-a", 4));
        // Paused past the renewal: it stops by its own clock before the Lease expires.
        let late = now + Duration::from_secs(10) - SAFETY_MARGIN;
        assert_eq!(me.writer_at(late - Duration::from_millis(1)), Some(writer));
        assert_eq!(me.writer_at(late), None);
        // Another holder, or a deleted Lease: standby even if the verdict lags.
        me.observe(Some(&lease("ext-b", 5, now, 10)));
        assert_eq!(me.writer_at(now), None);
        assert_eq!(me.holder().as_deref(), Some("ext-b"));
        me.observe(None);
        assert_eq!(me.writer_at(now), None);
    }

    #[test]
    fn a_single_replica_always_leads_as_term_zero() {
        let alone = Leadership::single("ext");
        let w = alone.writer().unwrap();
        assert_eq!((w.holder.as_str(), w.term), ("ext", 0));
    }
}
