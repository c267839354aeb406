//! Profiles from the cluster: a watch on `InjectionProfile` objects feeding [`ProfileSource`],
//! whose valid profiles are served. While the apiserver is unreachable the last set keeps being
//! served (the watcher retries with backoff); a profile that fails validation is logged, counted
//! (`tessera_webhook_profiles_invalid`), reported as a Warning Event on the object naming the
//! field ([`crate::events`]) and never takes the others down.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use tessera_inject::{InjectionProfile, InjectionProfileSpec, Profile, ProfileError, compile_all};
use tracing::{info, warn};

use crate::events::{ProfileEvents, Reported};
use crate::state::WebhookState;

/// The profiles the watch has seen, as plain data changed by named methods.
#[derive(Debug, Default)]
pub struct ProfileSource {
    specs: BTreeMap<String, InjectionProfileSpec>,
    /// Objects of a relist in progress; they replace `specs` when it completes.
    relist: Option<BTreeMap<String, InjectionProfileSpec>>,
    /// The object behind each name (uid, resourceVersion), for Events about it.
    refs: BTreeMap<String, ObjectReference>,
    synced: bool,
}

impl ProfileSource {
    /// A profile was created or changed.
    pub fn apply(&mut self, name: &str, spec: InjectionProfileSpec) {
        self.specs.insert(name.to_string(), spec);
    }

    /// A profile was deleted.
    pub fn remove(&mut self, name: &str) {
        self.specs.remove(name);
    }

    /// A relist started; [`ProfileSource::relisted`] collects its objects.
    pub fn relist_started(&mut self) {
        self.relist = Some(BTreeMap::new());
    }

    /// One object of the relist.
    pub fn relisted(&mut self, name: &str, spec: InjectionProfileSpec) {
        self.relist
            .get_or_insert_with(BTreeMap::new)
            .insert(name.to_string(), spec);
    }

    /// The relist is complete: its objects are now the whole set.
    pub fn relist_done(&mut self) {
        if let Some(all) = self.relist.take() {
            self.specs = all;
        }
        let specs = &self.specs;
        self.refs.retain(|name, _| specs.contains_key(name));
        self.synced = true;
    }

    /// The object each profile name was last seen as.
    pub fn references(&self) -> &BTreeMap<String, ObjectReference> {
        &self.refs
    }

    /// True once a full list has been seen.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Validates every profile: the valid ones and the errors of the others.
    pub fn compile(&self) -> (Vec<Profile>, Vec<ProfileError>) {
        compile_all(self.specs.iter().map(|(n, s)| (n.clone(), s.clone())))
    }

    /// Applies one watch event; true when the served set may have changed.
    pub fn handle(&mut self, event: Event<InjectionProfile>) -> bool {
        let name = |p: &InjectionProfile| p.metadata.name.clone().unwrap_or_default();
        match event {
            Event::Apply(p) => {
                self.seen(&p);
                self.apply(&name(&p), p.spec);
            }
            Event::Delete(p) => {
                self.refs.remove(&name(&p));
                self.remove(&name(&p));
            }
            Event::Init => {
                self.relist_started();
                return false;
            }
            Event::InitApply(p) => {
                self.seen(&p);
                self.relisted(&name(&p), p.spec);
                return false;
            }
            Event::InitDone => self.relist_done(),
        }
        self.synced
    }

    fn seen(&mut self, p: &InjectionProfile) {
        let mut reference = p.object_ref(&());
        reference.resource_version = p.metadata.resource_version.clone();
        self.refs
            .insert(p.metadata.name.clone().unwrap_or_default(), reference);
    }
}

/// Watches every `InjectionProfile` and serves the valid ones through `state` until the
/// stream ends (it does not: errors are retried with backoff).
pub async fn run(client: kube::Client, state: Arc<WebhookState>) {
    let recorder = ProfileEvents::new(client.clone());
    let api: Api<InjectionProfile> = Api::all(client);
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut source = ProfileSource::default();
    let mut reported = Reported::default();
    while let Some(event) = events.next().await {
        match event {
            Ok(e) => {
                if source.handle(e) {
                    let bad = publish(&source, &state);
                    for (reference, message) in reported.fresh(&bad, source.references()) {
                        recorder.invalid(&reference, &message).await;
                    }
                }
            }
            Err(e) => warn!(error = %e, "profile watch failed; serving the last profiles seen"),
        }
    }
}

/// Serves the valid profiles and returns the errors of the others.
fn publish(source: &ProfileSource, state: &WebhookState) -> Vec<ProfileError> {
    let (ok, bad) = source.compile();
    for e in &bad {
        warn!(error = %e, "InjectionProfile rejected");
    }
    info!(
        profiles = ok.len(),
        invalid = bad.len(),
        "profiles from the cluster"
    );
    state.set_profiles(ok, bad.len());
    bad
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_inject::profile::Sidecars;

    fn spec(image: &str) -> InjectionProfileSpec {
        serde_json::from_value(serde_json::json!({
            "sidecars": {"containers": [{"name": "s", "image": image}]}
        }))
        .unwrap_or_else(|_| InjectionProfileSpec {
            sidecars: Some(Sidecars::default()),
            ..Default::default()
        })
    }

    fn names(s: &ProfileSource) -> Vec<String> {
        s.compile().0.into_iter().map(|p| p.name).collect()
    }

    #[test]
    fn a_relist_replaces_the_set_and_marks_it_synced() {
        let mut s = ProfileSource::default();
        s.apply("old", spec("a"));
        s.relist_started();
        s.relisted("new", spec("b"));
        assert!(!s.synced());
        assert_eq!(
            names(&s),
            ["old"],
            "the old set serves until the relist completes"
        );
        s.relist_done();
        assert!(s.synced());
        assert_eq!(names(&s), ["new"]);
        s.remove("new");
        assert!(names(&s).is_empty());
    }

    #[test]
    fn references_for_events_follow_the_objects() {
        let mut s = ProfileSource::default();
        let mut p = InjectionProfile::new("bad", spec(""));
        p.metadata.uid = Some("u-1".into());
        p.metadata.resource_version = Some("7".into());
        s.handle(Event::Apply(p.clone()));
        let r = &s.references()["bad"];
        assert_eq!(
            (
                r.kind.as_deref(),
                r.api_version.as_deref(),
                r.uid.as_deref(),
                r.resource_version.as_deref(),
                r.namespace.as_deref()
            ),
            (
                Some("InjectionProfile"),
                Some("tessera.dev/v1alpha1"),
                Some("u-1"),
                Some("7"),
                None
            )
        );
        s.handle(Event::Delete(p));
        assert!(s.references().is_empty());
    }

    #[test]
    fn an_invalid_profile_is_reported_beside_the_valid_ones() {
        let mut s = ProfileSource::default();
        s.apply("good", spec("a"));
        s.apply("bad", spec(""));
        let (ok, bad) = s.compile();
        assert_eq!(ok.len(), 1);
        assert_eq!(bad[0].profile, "bad");
    }
}
