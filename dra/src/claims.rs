//! Where ResourceClaims come from. The kubelet names a claim by namespace, name and UID only,
//! so `NodePrepareResources` reads the claim's allocation from the apiserver ([`KubeClaims`]);
//! tests feed captured `resource.k8s.io/v1` claims through [`MemoryClaims`].

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::api::resource::v1::ResourceClaim;
use kube::Api;

/// A source of ResourceClaims.
#[tonic::async_trait]
pub trait Claims: Send + Sync + 'static {
    /// The claim `namespace/name`, or why it could not be read.
    async fn get(&self, namespace: &str, name: &str) -> Result<ResourceClaim, String>;
}

/// Claims read from the apiserver, one GET per prepare (the kubelet prepares a claim once per
/// pod start, so a watch cache would cost more than it saves).
pub struct KubeClaims {
    client: kube::Client,
}

impl KubeClaims {
    /// Claims through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

#[tonic::async_trait]
impl Claims for KubeClaims {
    async fn get(&self, namespace: &str, name: &str) -> Result<ResourceClaim, String> {
        Api::<ResourceClaim>::namespaced(self.client.clone(), namespace)
            .get(name)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Claims held in memory (tests, and anything that already has them).
#[derive(Default)]
pub struct MemoryClaims {
    claims: Mutex<BTreeMap<(String, String), ResourceClaim>>,
}

impl MemoryClaims {
    /// Adds or replaces a claim (keyed by its namespace and name).
    pub fn insert(&self, claim: ResourceClaim) {
        let key = (
            claim.metadata.namespace.clone().unwrap_or_default(),
            claim.metadata.name.clone().unwrap_or_default(),
        );
        if let Ok(mut claims) = self.claims.lock() {
            claims.insert(key, claim);
        }
    }
}

#[tonic::async_trait]
impl Claims for MemoryClaims {
    async fn get(&self, namespace: &str, name: &str) -> Result<ResourceClaim, String> {
        let claims = self.claims.lock().map_err(|e| e.to_string())?;
        claims
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| format!("resourceclaims \"{name}\" not found in {namespace}"))
    }
}
