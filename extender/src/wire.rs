//! The kube-scheduler extender v1 wire types (k8s.io/kube-scheduler/extender/v1), with the Go
//! field names as JSON keys. Captured requests carry both `Nodes` and `NodeNames`, the unused one
//! `null`; objects inside have no `kind`/`apiVersion`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use serde::{Deserialize, Serialize};

use crate::slim_pod::SlimPod;

/// A node list as the scheduler sends it (`metadata` plus `items`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct NodeList {
    /// List metadata (empty in practice).
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The nodes.
    #[serde(default)]
    pub items: Vec<Node>,
}

/// A node name as read from a request: borrowed from the body when it needs no unescaping, so
/// the thousands of names in a `NodeNames` request are not copied.
pub type NodeName<'a> = Cow<'a, str>;

/// `ExtenderArgs`: the body of `filter` and `prioritize`.
#[derive(Debug, Clone, Deserialize)]
pub struct ExtenderArgs<'a> {
    /// The pod being scheduled, as far as the decisions read it.
    #[serde(rename = "Pod")]
    pub pod: SlimPod,
    /// Full nodes (extenders that are not `nodeCacheCapable`).
    #[serde(rename = "Nodes", default)]
    pub nodes: Option<NodeList>,
    /// Node names (`nodeCacheCapable: true`).
    #[serde(
        rename = "NodeNames",
        default,
        borrow,
        deserialize_with = "bounded_names"
    )]
    pub node_names: Option<Vec<NodeName<'a>>>,
}

/// Most candidate node names one request may carry: well above any cluster Kubernetes supports
/// (5,000 nodes; the largest run about 65,000). Decoding stops at the first name past it, so a
/// request of a million names costs what 100,000 do.
pub const MAX_NODE_NAMES: usize = 100_000;

/// `NodeNames`, refused while decoding once past [`MAX_NODE_NAMES`].
fn bounded_names<'de, D>(d: D) -> Result<Option<Vec<NodeName<'de>>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Names;
    impl<'de> serde::de::Visitor<'de> for Names {
        type Value = Option<Vec<NodeName<'de>>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "null or a list of at most {MAX_NODE_NAMES} node names")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut names = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_NODE_NAMES));
            while let Some(Borrowed(name)) = seq.next_element()? {
                if names.len() == MAX_NODE_NAMES {
                    return Err(serde::de::Error::custom(format!(
                        "NodeNames: more than {MAX_NODE_NAMES} node names"
                    )));
                }
                names.push(name);
            }
            Ok(Some(names))
        }
    }
    d.deserialize_option(Names)
}

/// A string borrowed from the body when it needs no unescaping.
struct Borrowed<'a>(NodeName<'a>);

impl<'de> Deserialize<'de> for Borrowed<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Inner<'a>(#[serde(borrow)] Cow<'a, str>);
        Inner::deserialize(d).map(|Inner(name)| Borrowed(name))
    }
}

impl<'a> ExtenderArgs<'a> {
    /// The candidate node names, whichever shape was sent.
    pub fn candidate_names(&self) -> Vec<NodeName<'a>> {
        match (&self.node_names, &self.nodes) {
            (Some(names), _) => names.clone(),
            (None, Some(list)) => list
                .items
                .iter()
                .filter_map(|n| n.metadata.name.clone().map(Cow::Owned))
                .collect(),
            (None, None) => Vec::new(),
        }
    }
}

/// `ExtenderFilterResult`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtenderFilterResult<'a> {
    /// Passing nodes, when the request sent full nodes.
    #[serde(rename = "Nodes", skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeList>,
    /// Passing node names, when the request sent names.
    #[serde(rename = "NodeNames", skip_serializing_if = "Option::is_none")]
    pub node_names: Option<Vec<NodeName<'a>>>,
    /// Nodes that do not fit now, with the reason.
    #[serde(rename = "FailedNodes", default)]
    pub failed_nodes: BTreeMap<NodeName<'a>, String>,
    /// Nodes that preemption cannot make fit, with the reason.
    #[serde(rename = "FailedAndUnresolvableNodes", default)]
    pub failed_and_unresolvable_nodes: BTreeMap<NodeName<'a>, String>,
    /// A whole-request failure (fails the scheduling attempt).
    #[serde(rename = "Error", default)]
    pub error: String,
}

/// `HostPriority`: one node's score, 0–10.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPriority<'a> {
    /// Node name.
    #[serde(rename = "Host")]
    pub host: NodeName<'a>,
    /// Score.
    #[serde(rename = "Score")]
    pub score: i64,
}

/// `ExtenderBindingArgs`: the body of `bind`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ExtenderBindingArgs {
    /// Pod name.
    #[serde(rename = "PodName")]
    pub pod_name: String,
    /// Pod namespace.
    #[serde(rename = "PodNamespace")]
    pub pod_namespace: String,
    /// Pod UID.
    #[serde(rename = "PodUID")]
    pub pod_uid: String,
    /// The node kube-scheduler chose.
    #[serde(rename = "Node")]
    pub node: String,
}

/// `ExtenderBindingResult`: an empty `Error` means the Binding was created.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtenderBindingResult {
    /// Why the bind failed; empty on success.
    #[serde(rename = "Error", default)]
    pub error: String,
}

/// `Victims`: pods kube-scheduler would evict on a node. It sends full objects; only their UIDs
/// are read, so the rest of each pod is skipped while decoding, never held (a body of thousands
/// of victims would otherwise cost hundreds of times its size).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Victims {
    /// The pods, by UID.
    #[serde(rename = "Pods", default)]
    pub pods: Vec<VictimPod>,
    /// PodDisruptionBudgets violated by evicting them.
    #[serde(rename = "NumPDBViolations", default)]
    pub num_pdb_violations: i64,
}

/// A victim as far as it is read: `metadata.uid`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct VictimPod {
    /// Its metadata.
    #[serde(default)]
    pub metadata: VictimMeta,
}

/// A victim's metadata as far as it is read.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct VictimMeta {
    /// Pod UID.
    #[serde(default)]
    pub uid: Option<String>,
}

/// `MetaPod`: a pod named by UID only.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
pub struct MetaPod {
    /// Pod UID.
    #[serde(rename = "UID")]
    pub uid: String,
}

/// `MetaVictims`: victims named by UID (`nodeCacheCapable` extenders).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
pub struct MetaVictims {
    /// The pods.
    #[serde(rename = "Pods", default)]
    pub pods: Vec<MetaPod>,
    /// PodDisruptionBudgets violated by evicting them.
    #[serde(rename = "NumPDBViolations", default)]
    pub num_pdb_violations: i64,
}

/// `ExtenderPreemptionArgs`: the body of `preempt`.
#[derive(Debug, Clone, Deserialize)]
pub struct ExtenderPreemptionArgs {
    /// The pod that would preempt, as far as the decisions read it.
    #[serde(rename = "Pod")]
    pub pod: SlimPod,
    /// Candidate nodes and their victims, as full pods.
    #[serde(rename = "NodeNameToVictims", default)]
    pub node_name_to_victims: Option<BTreeMap<String, Victims>>,
    /// Candidate nodes and their victims, by UID (`nodeCacheCapable: true`).
    #[serde(rename = "NodeNameToMetaVictims", default)]
    pub node_name_to_meta_victims: Option<BTreeMap<String, MetaVictims>>,
}

/// `ExtenderPreemptionResult`: the nodes kept and their victims. It has no error field: a node
/// the extender cannot help is left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ExtenderPreemptionResult {
    /// Nodes kept, with their (possibly extended) victims.
    #[serde(rename = "NodeNameToMetaVictims", default)]
    pub node_name_to_meta_victims: BTreeMap<String, MetaVictims>,
}
