//! Writing a bind to the apiserver: one Binding that carries the pod's annotations (assignment,
//! bind time, `bind-phase: allocating`, the writer). A trait so that the HTTP verbs are tested
//! against a recording binder and production uses the apiserver.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use tessera_core::annotations::Writer;

/// What to bind where, and the annotations to write first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindTarget {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod UID (the Binding is refused if the pod was re-created meanwhile).
    pub uid: String,
    /// Node name.
    pub node: String,
    /// Annotations the Binding writes onto the pod with its node (empty for pods without GPUs).
    pub annotations: BTreeMap<String, String>,
    /// The leader and term binding it: each write waits for nothing and goes ahead only while
    /// this replica still leads in that term.
    pub writer: Writer,
}

/// A boxed future, so binders can be used as trait objects.
pub type BindFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Writes binds. `Ok` only once the Binding exists: kube-scheduler treats an empty error as a
/// bound pod and never retries.
pub trait Binder: Send + Sync {
    /// Creates the Binding, annotations included.
    fn bind(&self, target: BindTarget) -> BindFuture<'_>;
}
