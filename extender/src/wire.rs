//! The kube-scheduler extender v1 wire types (k8s.io/kube-scheduler/extender/v1), with the Go
//! field names as JSON keys. Captured requests carry both `Nodes` and `NodeNames`, the unused one
//! `null`; objects inside have no `kind`/`apiVersion`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde::{Deserialize, Serialize};

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

/// `ExtenderArgs`: the body of `filter` and `prioritize`.
#[derive(Debug, Clone, Deserialize)]
pub struct ExtenderArgs {
    /// The pod being scheduled.
    #[serde(rename = "Pod")]
    pub pod: Pod,
    /// Full nodes (extenders that are not `nodeCacheCapable`).
    #[serde(rename = "Nodes", default)]
    pub nodes: Option<NodeList>,
    /// Node names (`nodeCacheCapable: true`).
    #[serde(rename = "NodeNames", default)]
    pub node_names: Option<Vec<String>>,
}

impl ExtenderArgs {
    /// The candidate node names, whichever shape was sent.
    pub fn candidate_names(&self) -> Vec<String> {
        match (&self.node_names, &self.nodes) {
            (Some(names), _) => names.clone(),
            (None, Some(list)) => list
                .items
                .iter()
                .filter_map(|n| n.metadata.name.clone())
                .collect(),
            (None, None) => Vec::new(),
        }
    }
}

/// `ExtenderFilterResult`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExtenderFilterResult {
    /// Passing nodes, when the request sent full nodes.
    #[serde(rename = "Nodes", skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeList>,
    /// Passing node names, when the request sent names.
    #[serde(rename = "NodeNames", skip_serializing_if = "Option::is_none")]
    pub node_names: Option<Vec<String>>,
    /// Nodes that do not fit now, with the reason.
    #[serde(rename = "FailedNodes", default)]
    pub failed_nodes: BTreeMap<String, String>,
    /// Nodes that preemption cannot make fit, with the reason.
    #[serde(rename = "FailedAndUnresolvableNodes", default)]
    pub failed_and_unresolvable_nodes: BTreeMap<String, String>,
    /// A whole-request failure (fails the scheduling attempt).
    #[serde(rename = "Error", default)]
    pub error: String,
}

/// `HostPriority`: one node's score, 0–10.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPriority {
    /// Node name.
    #[serde(rename = "Host")]
    pub host: String,
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
