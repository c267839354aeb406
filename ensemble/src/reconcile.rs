//! The control loop: every period, each ensemble is observed, planned and moved one step.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tessera_inject::membership::{RELEASED, member};
use tessera_inject::{InjectionProfile, Membership, Profile, compile_all, peers};
use tessera_kernel::ensemble::Record;
use tessera_kernel::keys;
use tessera_membership::{Live, Observation, Step, plan};
use tracing::{debug, info, warn};

use crate::exec::{self, Ran};
use crate::metrics::{ChangeLabels, Metrics, WaitLabels};
use crate::observe::{self, Ensemble};
use crate::options::Options;

/// Field manager of the controller's writes.
pub const FIELD_MANAGER: &str = "tessera-ensemble";

/// Caches and memory of the controller.
pub struct Controller {
    client: Client,
    options: Options,
    metrics: Metrics,
    profiles: Store<InjectionProfile>,
    statefulsets: Store<StatefulSet>,
    pods: Store<Pod>,
    /// Pods (by UID) whose stop was released as not a scale-in.
    released: std::sync::Mutex<HashSet<String>>,
    /// True while this replica leads (or there is no election).
    pub leading: Arc<AtomicBool>,
    /// True once the caches have filled (`/readyz`).
    pub ready: Arc<AtomicBool>,
}

impl Controller {
    /// Starts the watches; the caches fill in the background.
    pub fn start(client: Client, options: Options, metrics: Metrics) -> Arc<Controller> {
        let (profiles, w1) = reflector::store();
        let (statefulsets, w2) = reflector::store();
        let (pods, w3) = reflector::store();
        let members = watcher::Config::default().labels(keys::LABEL_MEMBERSHIP);
        spawn_reflector(
            w1,
            Api::<InjectionProfile>::all(client.clone()),
            watcher::Config::default(),
        );
        spawn_reflector(
            w2,
            Api::<StatefulSet>::all(client.clone()),
            watcher::Config::default(),
        );
        spawn_reflector(w3, Api::<Pod>::all(client.clone()), members);
        Arc::new(Controller {
            client,
            options,
            metrics,
            profiles,
            statefulsets,
            pods,
            released: Default::default(),
            leading: Arc::new(AtomicBool::new(true)),
            ready: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Runs the loop until the process ends.
    pub async fn run(self: Arc<Self>) {
        let _ = self.profiles.wait_until_ready().await;
        let _ = self.statefulsets.wait_until_ready().await;
        let _ = self.pods.wait_until_ready().await;
        info!("caches filled; keeping ensemble membership");
        self.ready.store(true, Ordering::Release);
        let mut tick = tokio::time::interval(self.options.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.leading.load(Ordering::Acquire) {
                self.pass().await;
            }
        }
    }

    /// One look at every ensemble.
    pub async fn pass(&self) {
        let specs = self
            .profiles
            .state()
            .iter()
            .map(|p| (p.name_any(), p.spec.clone()))
            .collect::<Vec<_>>();
        // Only profiles that keep membership hand an ensemble to this controller.
        let (mut profiles, _) = compile_all(specs);
        profiles.retain(|p| membership_of(p).is_some());
        self.metrics.waiting.clear();
        self.forget_gone_pods();
        let mut below = 0;
        for sts in self.statefulsets.state() {
            let Some(profile) = membership_profile(&profiles, &sts) else {
                continue;
            };
            let Some(ensemble) = Ensemble::of(&sts) else {
                continue;
            };
            match self.reconcile(&sts, &ensemble, profile).await {
                Ok(record) => {
                    let want = Record {
                        voters: (0..ensemble.target).collect(),
                        ..Record::default()
                    };
                    let has = record.as_ref().map_or(0, Record::fault_tolerance);
                    if has < want.fault_tolerance() {
                        below += 1;
                    }
                }
                Err(e) => {
                    self.metrics.failures.inc();
                    warn!(ensemble = %format!("{}/{}", ensemble.namespace, ensemble.name), error = %e, "membership step failed");
                }
            }
        }
        self.metrics.below_tolerance.set(below);
    }

    async fn reconcile(
        &self,
        sts: &StatefulSet,
        e: &Ensemble<'_>,
        profile: &Profile,
    ) -> Result<Option<Record>, StepError> {
        let m = membership_of(profile).ok_or(StepError::NoMembership)?;
        let key = format!("{}/{}", e.namespace, e.name);
        let pods = self.members(sts, e);
        let released = self.released.lock().map(|r| r.clone()).unwrap_or_default();
        let states: BTreeMap<u32, tessera_membership::PodState> = pods
            .iter()
            .map(|(o, p)| {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                (
                    *o,
                    observe::pod_state(p, e.update_revision, released.contains(&uid)),
                )
            })
            .collect();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), e.namespace);
        let container = |p: &Pod| container_of(p, m);
        let recorded = sts
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(keys::ANNOTATION_MEMBERSHIP))
            .and_then(|t| Record::parse(t).ok());
        let limit = pods.keys().max().map_or(0, |o| o + 1).max(e.target).max(
            recorded
                .as_ref()
                .and_then(|r| r.voters.iter().max().copied())
                .map_or(0, |o| o + 1),
        );
        let ids = observe::ids(profile, e, limit + 1, &self.options.cluster_domain);
        // Ask the recorded leader first, then every other live member, until one answers.
        let mut askers: Vec<u32> = states
            .iter()
            .filter(|(_, s)| s.ready && !s.terminating)
            .map(|(o, _)| *o)
            .collect();
        if let Some(l) = recorded.as_ref().and_then(|r| r.leader) {
            askers.sort_by_key(|o| *o != l);
        }
        let mut live: Option<Live> = None;
        for o in askers.iter().take(3) {
            let pod = &pods[o];
            let ran = self
                .exec(&api, pod, &container(pod), &m.commands.members, None)
                .await;
            match ran
                .map(|r| observe::parse_members(&r.stdout, &ids, &m.roles.voter, &m.roles.learner))
            {
                Ok(Ok(l)) => {
                    live = Some(l);
                    break;
                }
                Ok(Err(bad)) => {
                    debug!(ensemble = %key, member = o, error = %bad, "no membership in the answer")
                }
                Err(err) => debug!(ensemble = %key, member = o, error = %err, "cannot ask"),
            }
        }
        // Who leads: asked only of voters, and only when someone must be last in a roll or
        // the record has none yet.
        if let Some(l) = live.as_mut() {
            let stale = states.values().any(|s| !s.updated);
            let known = recorded
                .as_ref()
                .and_then(|r| r.leader)
                .filter(|x| l.voters.contains(x));
            l.leader = if stale || known.is_none() {
                self.leader(&api, &pods, &states, l, m).await
            } else {
                known
            };
        }
        let obs = Observation {
            target: e.target,
            pods: states,
            live: live.clone(),
            on_delete: e.on_delete,
        };
        let step = plan(&obs);
        if let Step::Wait(w) = step {
            self.metrics
                .waiting
                .get_or_create(&WaitLabels {
                    ensemble: key.clone(),
                    reason: w.reason().into(),
                })
                .set(1);
        }
        // Nothing is recorded before the ensemble has answered once: a record naming no voter
        // would have the webhook render a new ensemble's members without their peers.
        let record = match (&live, &recorded) {
            (Some(l), _) => Some(Record {
                voters: l.voters.clone(),
                learners: l.learners.clone(),
                leader: l.leader,
                target: e.target,
                step: Some(step.to_string()),
            }),
            (None, Some(r)) => Some(Record {
                target: e.target,
                step: Some(step.to_string()),
                ..r.clone()
            }),
            (None, None) => None,
        };
        if let Some(record) = &record {
            if recorded.as_ref() != Some(record) {
                self.write_record(e, record).await?;
            }
            self.ensure_budget(sts, e, record).await?;
        }
        if !matches!(step, Step::Wait(_) | Step::Steady) {
            info!(ensemble = %key, %step, "membership step");
        }
        self.act(&api, e, profile, m, &pods, live.as_ref(), step)
            .await?;
        Ok(record)
    }

    /// Drops released stops of pods that are gone (their UIDs never come back).
    fn forget_gone_pods(&self) {
        let present: HashSet<String> = self
            .pods
            .state()
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        if let Ok(mut released) = self.released.lock() {
            released.retain(|uid| present.contains(uid));
        }
    }

    /// The StatefulSet's member pods by ordinal.
    fn members(&self, sts: &StatefulSet, e: &Ensemble<'_>) -> BTreeMap<u32, Arc<Pod>> {
        let uid = sts.metadata.uid.as_deref();
        self.pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(e.namespace))
            .filter(|p| {
                p.owner_references()
                    .iter()
                    .any(|o| o.kind == "StatefulSet" && Some(o.uid.as_str()) == uid)
            })
            .filter_map(|p| observe::ordinal(&p, e.name).map(|o| (o, p)))
            .collect()
    }

    async fn leader(
        &self,
        api: &Api<Pod>,
        pods: &BTreeMap<u32, Arc<Pod>>,
        states: &BTreeMap<u32, tessera_membership::PodState>,
        live: &Live,
        m: &Membership,
    ) -> Option<u32> {
        let asks = live
            .voters
            .iter()
            .filter(|o| states.get(o).is_some_and(|s| s.ready))
            .filter_map(|o| pods.get(o).map(|p| (*o, p.clone())))
            .map(|(o, p)| async move {
                let ran = self
                    .exec(api, &p, &container_of(&p, m), &m.commands.leader, None)
                    .await;
                ran.ok().filter(|r| r.stdout.trim() == "leader").map(|_| o)
            });
        futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .next()
    }

    async fn exec(
        &self,
        api: &Api<Pod>,
        pod: &Pod,
        container: &str,
        command: &str,
        member: Option<&tessera_inject::membership::Member>,
    ) -> Result<Ran, exec::ExecError> {
        let script = exec::script(
            command,
            member.map(|m| m.id.as_str()),
            member.map(|m| m.entry.as_str()),
        );
        exec::run(
            api,
            &pod.name_any(),
            container,
            &script,
            self.options.command_timeout,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn act(
        &self,
        api: &Api<Pod>,
        e: &Ensemble<'_>,
        profile: &Profile,
        m: &Membership,
        pods: &BTreeMap<u32, Arc<Pod>>,
        live: Option<&Live>,
        step: Step,
    ) -> Result<(), StepError> {
        let render = |o: u32| {
            member(
                profile,
                e.name,
                e.namespace,
                e.service,
                o,
                &self.options.cluster_domain,
            )
            .map_err(|err| StepError::Render(err.to_string()))
        };
        // A voter that stays runs the change: the leader when known.
        let running = |o: u32| {
            pods.get(&o)
                .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
        };
        let runner = |member: u32, joining: bool| -> Option<&Arc<Pod>> {
            let add_in_member = m.commands.add_in_member;
            let order =
                crate::runner::candidates(member, joining, add_in_member, live?, e.target, running);
            order.first().and_then(|o| pods.get(o))
        };
        let (kind, result) = match step {
            Step::Join(o) => {
                let who = render(o)?;
                let pod = runner(o, true).ok_or(StepError::NoRunner)?;
                (
                    "join",
                    self.exec(api, pod, &container_of(pod, m), &m.commands.add, Some(&who))
                        .await,
                )
            }
            Step::Leave(o) => {
                let who = render(o)?;
                let pod = runner(o, false).ok_or(StepError::NoRunner)?;
                (
                    "leave",
                    self.exec(
                        api,
                        pod,
                        &container_of(pod, m),
                        &m.commands.remove,
                        Some(&who),
                    )
                    .await,
                )
            }
            Step::Keep(o) => {
                let pod = pods.get(&o).ok_or(StepError::NoRunner)?;
                let touch = format!("touch {RELEASED}");
                let ran = self
                    .exec(api, pod, &container_of(pod, m), &touch, None)
                    .await;
                if ran.as_ref().is_ok_and(|r| r.ok)
                    && let (Ok(mut r), Some(uid)) = (self.released.lock(), pod.metadata.uid.clone())
                {
                    r.insert(uid);
                }
                ("release", ran)
            }
            Step::Restart(o) => {
                let pod = pods.get(&o).ok_or(StepError::NoRunner)?;
                api.delete(&pod.name_any(), &DeleteParams::default())
                    .await
                    .map_err(StepError::Api)?;
                self.metrics
                    .changes
                    .get_or_create(&ChangeLabels {
                        kind: "restart".into(),
                    })
                    .inc();
                return Ok(());
            }
            Step::Wait(_) | Step::Steady => return Ok(()),
        };
        match result {
            Ok(Ran { ok: true, .. }) => {
                self.metrics
                    .changes
                    .get_or_create(&ChangeLabels { kind: kind.into() })
                    .inc();
                Ok(())
            }
            Ok(Ran { stdout, .. }) => Err(StepError::Failed {
                step: step.to_string(),
                output: stdout,
            }),
            Err(err) => Err(StepError::Exec(err)),
        }
    }

    async fn write_record(&self, e: &Ensemble<'_>, record: &Record) -> Result<(), StepError> {
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), e.namespace);
        let patch = json!({"metadata": {"annotations": {keys::ANNOTATION_MEMBERSHIP: record.to_annotation()}}});
        api.patch(e.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(StepError::Api)?;
        Ok(())
    }

    /// A PodDisruptionBudget per ensemble, owned by its StatefulSet: voluntary evictions never
    /// take more members than the recorded voters can lose.
    async fn ensure_budget(
        &self,
        sts: &StatefulSet,
        e: &Ensemble<'_>,
        record: &Record,
    ) -> Result<(), StepError> {
        let Some(selector) = sts.spec.as_ref().map(|s| s.selector.clone()) else {
            return Ok(());
        };
        let Some(owner) = sts.controller_owner_ref(&()) else {
            return Ok(());
        };
        let name = format!("{}-quorum", e.name);
        let budget = json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": e.namespace, "ownerReferences": [owner],
                         "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
            "spec": {"selector": selector, "maxUnavailable": record.fault_tolerance()},
        });
        let api: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), e.namespace);
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&budget),
        )
        .await
        .map_err(StepError::Api)?;
        Ok(())
    }
}

/// Why a step could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The profile lost its membership section.
    #[error("the profile has no identity.membership")]
    NoMembership,
    /// No live member to run the command in.
    #[error("no live member to run the command in")]
    NoRunner,
    /// Rendering the member failed.
    #[error("rendering the member: {0}")]
    Render(String),
    /// The command ran and failed.
    #[error("{step}: the command failed (output: {output:?})")]
    Failed {
        /// The step.
        step: String,
        /// What it printed.
        output: String,
    },
    /// The command could not be run.
    #[error(transparent)]
    Exec(exec::ExecError),
    /// An apiserver write failed.
    #[error("apiserver: {0}")]
    Api(kube::Error),
}

fn membership_of(p: &Profile) -> Option<&Membership> {
    p.spec.identity.as_ref()?.membership.as_ref()
}

/// The container the profile's commands run in.
fn container_of(pod: &Pod, m: &Membership) -> String {
    m.container.clone().unwrap_or_else(|| {
        pod.spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .map(|c| c.name.clone())
            .unwrap_or_default()
    })
}

/// The profile (of `profiles`, those with membership) that `sts`'s pod template selects.
fn membership_profile<'p>(profiles: &'p [Profile], sts: &StatefulSet) -> Option<&'p Profile> {
    let meta = sts.spec.as_ref()?.template.metadata.as_ref();
    let empty = BTreeMap::new();
    let labels = meta.and_then(|m| m.labels.as_ref()).unwrap_or(&empty);
    let annotations = meta.and_then(|m| m.annotations.as_ref()).unwrap_or(&empty);
    peers::peer_profile(profiles, labels, annotations)
}

fn spawn_reflector<K>(writer: reflector::store::Writer<K>, api: Api<K>, config: watcher::Config)
where
    K: Resource + Clone + std::fmt::Debug + Send + Sync + serde::de::DeserializeOwned + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    tokio::spawn(async move {
        let stream = watcher(api, config)
            .default_backoff()
            .reflect(writer)
            .applied_objects();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                warn!(error = %e, "watch error; retrying");
            }
        }
    });
}
