//! Which profiles apply to a pod: label selector, the `tessera.dev/inject` opt-in annotation,
//! the namespace opt-out label, the kube-system and hostNetwork exclusions, and the
//! `tessera.dev/injected` marker that makes injection idempotent.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::compile::Profile;
use super::view::{PodView, StrMap};
use tessera_kernel::keys;

/// The result of selection.
#[derive(Debug, Default)]
pub struct Selection<'p> {
    /// Profiles to apply now, in name order.
    pub apply: Vec<&'p Profile>,
    /// Selected profiles the `tessera.dev/injected` marker names: applied already if the pod
    /// holds what they add (checked by the caller).
    pub marked: Vec<&'p Profile>,
    /// Notes for the client (AdmissionResponse `warnings`).
    pub warnings: Vec<String>,
}

/// Profiles that `pod` in `namespace` selects. `namespace_labels` is `None` when the webhook
/// does not know them (the webhook configuration's namespace selector has already scoped).
pub fn select<'p>(
    profiles: &'p [Profile],
    pod: &PodView<'_>,
    namespace: &str,
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> Selection<'p> {
    let mut out = Selection::default();
    if namespace_labels
        .and_then(|l| l.get(keys::LABEL_INJECTION))
        .is_some_and(|v| v == "disabled")
    {
        return out;
    }
    let mut named: Vec<&str> = pod
        .annotation(keys::ANNOTATION_INJECT)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    // The label form names one profile; label values hold no commas.
    if let Some(name) = pod.label(keys::ANNOTATION_INJECT)
        && !matches!(name, "" | "true" | "false")
        && !named.contains(&name)
    {
        named.push(name);
    }
    // One warning per unknown name, each name once, at most MAX_NAME_WARNINGS of them: the
    // answer stays small however many names the annotation holds.
    let mut seen = std::collections::HashSet::new();
    let mut unknown = named
        .iter()
        .filter(|n| seen.insert(**n) && !profiles.iter().any(|p| p.name == **n));
    for n in unknown.by_ref().take(MAX_NAME_WARNINGS) {
        out.warnings.push(format!(
            "{}: no InjectionProfile named {n:?}",
            keys::ANNOTATION_INJECT
        ));
    }
    let more = unknown.count();
    if more > 0 {
        out.warnings.push(format!(
            "{}: and {more} more names with no InjectionProfile",
            keys::ANNOTATION_INJECT
        ));
    }
    let injected = injected_names(pod.annotation(keys::ANNOTATION_INJECTED));
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    for p in profiles {
        let by_name = named.contains(&p.name.as_str());
        let by_labels = p
            .spec
            .selector
            .as_ref()
            .is_some_and(|s| matches(s, pod.metadata.labels.as_ref()));
        let ns_ok = match (&p.spec.namespace_selector, namespace_labels) {
            (Some(sel), Some(labels)) => matches_owned(sel, labels),
            _ => true,
        };
        if !(by_name || by_labels) || !ns_ok {
            continue;
        }
        if (namespace == "kube-system" && !p.spec.kube_system)
            || (host_network && !p.spec.host_network)
        {
            continue;
        }
        if injected.iter().any(|(n, _)| *n == p.name) {
            out.marked.push(p);
        } else {
            out.apply.push(p);
        }
    }
    out
}

/// Most unknown profile names warned about one by one; the rest are counted in one warning.
pub const MAX_NAME_WARNINGS: usize = 8;

/// Parses the marker `name@hash,name@hash`.
pub fn injected_names(marker: Option<&str>) -> Vec<(&str, &str)> {
    marker
        .into_iter()
        .flat_map(|m| m.split(','))
        .filter_map(|entry| {
            let entry = entry.trim();
            if entry.is_empty() {
                return None;
            }
            Some(entry.split_once('@').unwrap_or((entry, "")))
        })
        .collect()
}

fn matches(sel: &LabelSelector, labels: Option<&StrMap<'_>>) -> bool {
    label_selector_matches(sel, |k| labels.and_then(|l| l.get(k)).map(|v| v.as_str()))
}

fn matches_owned(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    label_selector_matches(sel, |k| labels.get(k).map(String::as_str))
}

/// Kubernetes label-selector semantics: every `matchLabels` pair and every expression must hold;
/// an empty selector matches everything.
pub fn label_selector_matches<'l>(
    sel: &LabelSelector,
    get: impl Fn(&str) -> Option<&'l str>,
) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| get(k) == Some(v.as_str()));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let value = get(&e.key);
        let listed = || value.is_some_and(|v| e.values.iter().flatten().any(|x| x == v));
        match e.operator.as_str() {
            "In" => listed(),
            "NotIn" => !listed(),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}
