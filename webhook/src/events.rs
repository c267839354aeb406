//! Kubernetes Events (events.k8s.io/v1) about `InjectionProfile`s from the cluster watch: a
//! profile that fails validation gets a Warning Event naming the field that is wrong, so that
//! `kubectl describe injectionprofile NAME` shows why it is not served. The decision of what is
//! wrong is core's (`tessera_inject::compile_all`); this module only says it once per
//! version of the object and publishes it.
//!
//! InjectionProfiles are cluster-scoped, so their Events live in the `default` namespace (kube's
//! `Recorder` puts them there); the webhook's ClusterRole allows creating and patching them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tessera_inject::ProfileError;
use tracing::warn;

/// `reportingController` of the webhook's Events.
pub const REPORTER: &str = "tessera.dev/webhook";
/// Reason of the Event on a profile that fails validation.
pub const REASON_INVALID: &str = "InvalidProfile";
/// Action of that Event.
pub const ACTION_VALIDATE: &str = "Validate";
/// Longest note the events API accepts, in bytes.
const MAX_NOTE: usize = 1024;

/// What has been reported, so that each problem is said once per version of the object: a
/// relist or an unrelated change does not repeat it, an edit that is still invalid does.
#[derive(Debug, Default)]
pub struct Reported {
    /// Profile name → (resourceVersion, message) last reported.
    said: BTreeMap<String, (Option<String>, String)>,
}

impl Reported {
    /// The errors among `bad` to report now, each with the object it is about. Profiles that are
    /// valid again or gone are forgotten, so a later problem is reported afresh.
    pub fn fresh(
        &mut self,
        bad: &[ProfileError],
        refs: &BTreeMap<String, ObjectReference>,
    ) -> Vec<(ObjectReference, String)> {
        self.said
            .retain(|name, _| bad.iter().any(|e| e.profile == *name));
        let mut out = Vec::new();
        for e in bad {
            let Some(reference) = refs.get(&e.profile) else {
                continue;
            };
            let said = (reference.resource_version.clone(), e.to_string());
            if self.said.get(&e.profile) != Some(&said) {
                out.push((reference.clone(), said.1.clone()));
                self.said.insert(e.profile.clone(), said);
            }
        }
        out
    }
}

/// Publishes Events about profiles.
#[derive(Clone)]
pub struct ProfileEvents {
    recorder: Recorder,
}

impl ProfileEvents {
    /// Events reported as [`REPORTER`] from this host (the webhook's pod name).
    pub fn new(client: kube::Client) -> ProfileEvents {
        ProfileEvents {
            recorder: Recorder::new(client, Reporter::from(REPORTER)),
        }
    }

    /// A Warning Event on `reference` saying why the profile is invalid. A failure is logged:
    /// the profile stays unserved either way and the log holds the same message.
    pub async fn invalid(&self, reference: &ObjectReference, message: &str) {
        let event = Event {
            type_: EventType::Warning,
            reason: REASON_INVALID.into(),
            note: Some(truncate(message, MAX_NOTE).to_string()),
            action: ACTION_VALIDATE.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, reference).await {
            warn!(%error, profile = reference.name.as_deref().unwrap_or(""),
                "could not publish the Event for an invalid InjectionProfile");
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_inject::Problem;

    fn error(profile: &str, field: &str) -> ProfileError {
        ProfileError {
            profile: profile.into(),
            field: field.into(),
            problem: Problem::Empty,
        }
    }

    fn refs(entries: &[(&str, &str)]) -> BTreeMap<String, ObjectReference> {
        entries
            .iter()
            .map(|(name, rv)| {
                let r = ObjectReference {
                    name: Some(name.to_string()),
                    resource_version: Some(rv.to_string()),
                    ..Default::default()
                };
                (name.to_string(), r)
            })
            .collect()
    }

    #[test]
    fn each_problem_is_reported_once_per_version_of_the_object() {
        let mut r = Reported::default();
        let bad = [error("a", "spec.spiffe.audience")];
        let first = r.fresh(&bad, &refs(&[("a", "1")]));
        assert_eq!(first.len(), 1);
        assert!(
            first[0].1.contains("spec.spiffe.audience"),
            "{}",
            first[0].1
        );
        assert!(
            r.fresh(&bad, &refs(&[("a", "1")])).is_empty(),
            "a relist repeats nothing"
        );
        assert_eq!(
            r.fresh(&bad, &refs(&[("a", "2")])).len(),
            1,
            "an edit that is still invalid is reported"
        );
        assert_eq!(
            r.fresh(&[error("a", "spec.identity.env[X]")], &refs(&[("a", "2")]))
                .len(),
            1,
            "a different problem is reported"
        );
    }

    #[test]
    fn a_profile_valid_again_is_forgotten_and_unknown_objects_are_skipped() {
        let mut r = Reported::default();
        let bad = [error("a", "spec.spiffe.audience")];
        assert_eq!(r.fresh(&bad, &refs(&[("a", "1")])).len(), 1);
        assert!(r.fresh(&[], &refs(&[("a", "1")])).is_empty());
        assert_eq!(r.fresh(&bad, &refs(&[("a", "1")])).len(), 1);
        assert!(r.fresh(&[error("gone", "spec")], &refs(&[])).is_empty());
    }

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        let long = "é".repeat(600);
        let cut = truncate(&long, MAX_NOTE);
        assert!(cut.len() <= MAX_NOTE && cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate("short", MAX_NOTE), "short");
    }
}
