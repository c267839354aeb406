//! admission.k8s.io/v1 `AdmissionReview` on the wire: the request decoded borrowed and only as
//! far as injection reads it, and the response written with the request's UID.
//!
//! What the apiserver rejects (fixtures README): a response without `apiVersion`/`kind`, another
//! UID, `patchType` without `patch` or the reverse, a patch that is not a base64 JSON Patch
//! array. [`Response`] writes `patchType` and `patch` together or not at all.

use serde::{Deserialize, Serialize};
use tessera_inject::{Op, PodView, Str};

/// The only API version served.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The review kind.
pub const KIND: &str = "AdmissionReview";

/// An incoming review.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review<'a> {
    /// Must be [`API_VERSION`].
    #[serde(borrow, default)]
    pub api_version: Option<Str<'a>>,
    /// Must be [`KIND`].
    #[serde(borrow, default)]
    pub kind: Option<Str<'a>>,
    /// The request.
    #[serde(borrow, default)]
    pub request: Option<Request<'a>>,
}

/// `request`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<'a> {
    /// Echoed in the response.
    #[serde(borrow)]
    pub uid: Str<'a>,
    /// Kind of the object.
    #[serde(borrow, default)]
    pub kind: Option<Kind<'a>>,
    /// Namespace of the object.
    #[serde(borrow, default)]
    pub namespace: Option<Str<'a>>,
    /// Name (absent for `generateName` pods).
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    /// CREATE, UPDATE, …
    #[serde(borrow, default)]
    pub operation: Option<Str<'a>>,
    /// Server-side dry run: same answer, no side effects (the webhook has none).
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// The pod.
    #[serde(borrow, default)]
    pub object: Option<PodView<'a>>,
}

/// Group/version/kind of the object.
#[derive(Debug, Deserialize)]
pub struct Kind<'a> {
    /// API group (`""` for core).
    #[serde(borrow, default)]
    pub group: Option<Str<'a>>,
    /// Kind.
    #[serde(borrow)]
    pub kind: Str<'a>,
}

impl Request<'_> {
    /// True for a core/v1 Pod CREATE, the only request that is mutated.
    pub fn is_pod_create(&self) -> bool {
        let pod = self.kind.as_ref().is_some_and(|k| {
            k.kind.as_str() == "Pod" && k.group.as_deref().unwrap_or("").is_empty()
        });
        pod && self.operation.as_deref() == Some("CREATE")
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: Response<'a>,
}

/// The response body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    /// The JSON Patch, written by [`Response::to_review_json`] (`patchType` and `patch`
    /// together, or neither).
    #[serde(skip)]
    ops: &'a [Op],
}

#[derive(Debug, Serialize)]
struct Status {
    code: u16,
    message: String,
}

impl<'a> Response<'a> {
    /// Allowed; with a JSON Patch when `ops` is not empty.
    pub fn allow(uid: &'a str, ops: &'a [Op], warnings: Vec<String>) -> Response<'a> {
        Response {
            uid,
            allowed: true,
            status: None,
            warnings,
            ops,
        }
    }

    /// Denied with HTTP-style `code` and a message for the user.
    pub fn deny(uid: &'a str, code: u16, message: String) -> Response<'a> {
        Response {
            uid,
            allowed: false,
            status: Some(Status { code, message }),
            warnings: Vec::new(),
            ops: &[],
        }
    }

    /// The full `AdmissionReview` JSON.
    pub fn to_review_json(self) -> Vec<u8> {
        let ops = self.ops;
        let out = ReviewOut {
            api_version: API_VERSION,
            kind: KIND,
            response: self,
        };
        let mut json = serde_json::to_vec(&out).unwrap_or_default();
        if !ops.is_empty() {
            append_patch(&mut json, ops);
        }
        json
    }
}

/// Adds `"patchType":"JSONPatch","patch":"<base64>"` to the response object that ends `json`
/// (`…}}`). The base64 text never needs escaping, so it is written straight into the answer
/// rather than passed through the JSON string escaper byte by byte (for a StatefulSet member's
/// 4 KiB answer that pass was about a tenth of the review's work).
fn append_patch(json: &mut Vec<u8>, ops: &[Op]) {
    use base64::Engine;
    // Plain structs of strings and JSON values always serialise.
    let patch = serde_json::to_vec(ops).unwrap_or_default();
    let closing = json.split_off(json.len().saturating_sub(2));
    json.extend_from_slice(br#","patchType":"JSONPatch","patch":""#);
    let engine = &base64::engine::general_purpose::STANDARD;
    let start = json.len();
    json.resize(
        start + base64::encoded_len(patch.len(), true).unwrap_or(0),
        0,
    );
    let written = engine.encode_slice(&patch, &mut json[start..]).unwrap_or(0);
    json.truncate(start + written);
    json.push(b'"');
    json.extend_from_slice(&closing);
}
