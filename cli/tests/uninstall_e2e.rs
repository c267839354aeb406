//! `tessera uninstall` against the real apiserver in `TESSERA_E2E_KUBECONFIG` (skipped, saying
//! so, when unset). Tessera's cluster-scoped admission objects as shipped — the webhook
//! configuration (failurePolicy Fail) pointing at a webhook Service that is not there, and the
//! guard policies — refuse pods with Tessera's labels; `tessera uninstall --dry-run` lists them
//! and deletes nothing; `tessera uninstall` removes them, admission objects first, and then an
//! ordinary pod and pods with Tessera's labels are admitted. The objects are renamed, carry a
//! label of this run (passed as `--selector`, so an installed Tessera is never touched) and are
//! narrowed to this test's namespace, so other pods of the cluster are not affected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_tests::e2e;

/// Label that narrows the admission objects to this test's namespace.
const SCOPE: &str = "tessera-e2e-scope";
/// Label naming this run's objects, beside `app.kubernetes.io/part-of: tessera`.
const RUN: &str = "tessera.dev/e2e-uninstall";

struct Cleanup {
    kubeconfig: PathBuf,
    run: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let run = self.run.clone();
        e2e::cleanup_blocking(self.kubeconfig.clone(), move |client| async move {
            let selected = ListParams::default().labels(&format!("{RUN}={run}"));
            delete_all::<MutatingWebhookConfiguration>(&client, &selected).await;
            delete_all::<ValidatingAdmissionPolicyBinding>(&client, &selected).await;
            delete_all::<ValidatingAdmissionPolicy>(&client, &selected).await;
            delete_all::<Namespace>(&client, &selected).await;
            let api: Api<Namespace> = Api::all(client);
            let _ = api.delete(&run, &DeleteParams::default()).await;
        });
    }
}

async fn delete_all<K>(client: &Client, params: &ListParams)
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    let _ = api
        .delete_collection(&DeleteParams::default(), params)
        .await;
}

fn shipped(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Renames `doc` after the run and labels it as the run's.
fn claim(doc: &mut Value, run: &str) {
    let name = doc["metadata"]["name"].as_str().unwrap().to_string();
    doc["metadata"]["name"] = json!(format!("{run}-{name}"));
    doc["metadata"]["labels"][RUN] = json!(run);
    assert_eq!(
        doc["metadata"]["labels"]["app.kubernetes.io/part-of"],
        "tessera"
    );
}

/// The shipped webhook configuration, calling a webhook Service in `system` that does not exist.
fn webhook_configuration(run: &str, system: &str) -> MutatingWebhookConfiguration {
    let mut doc = shipped("manifests/webhook/mutatingwebhookconfiguration.yaml").remove(0);
    claim(&mut doc, run);
    for hook in doc["webhooks"].as_array_mut().unwrap() {
        hook["clientConfig"]["service"]["namespace"] = json!(system);
        hook["namespaceSelector"]["matchExpressions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": SCOPE, "operator": "In", "values": [run]}));
    }
    serde_json::from_value(doc).unwrap()
}

/// The shipped guard policies and their bindings, the bindings narrowed to the test's namespace.
fn guards(
    run: &str,
) -> (
    Vec<ValidatingAdmissionPolicy>,
    Vec<ValidatingAdmissionPolicyBinding>,
) {
    let (mut policies, mut bindings) = (Vec::new(), Vec::new());
    for mut doc in shipped("manifests/guard/validating-admission-policy.yaml") {
        claim(&mut doc, run);
        if doc["kind"] == "ValidatingAdmissionPolicyBinding" {
            let policy = doc["spec"]["policyName"].as_str().unwrap().to_string();
            doc["spec"]["policyName"] = json!(format!("{run}-{policy}"));
            doc["spec"]["matchResources"] =
                json!({"namespaceSelector": {"matchLabels": {SCOPE: run}}});
            bindings.push(serde_json::from_value(doc).unwrap());
        } else {
            policies.push(serde_json::from_value(doc).unwrap());
        }
    }
    (policies, bindings)
}

fn pod(labels: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"generateName": "probe-", "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "local/app:1"}]}
    }))
    .unwrap()
}

/// A server-side dry run: admission runs, nothing is stored.
async fn admitted(client: &Client, ns: &str, pod: &Pod) -> Result<(), String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    api.create(&dry, pod)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn create<K>(client: &Client, object: &K)
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    api.create(&PostParams::default(), object).await.unwrap();
}

fn uninstall(kubeconfig: &Path, run: &str, extra: &[&str]) -> String {
    let selector = format!("app.kubernetes.io/part-of=tessera,{RUN}={run}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["uninstall", "--selector", &selector, "--kubeconfig"])
        .arg(kubeconfig)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tessera uninstall: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Positions of `kinds` in `out`, each the first line naming it; they must increase.
fn assert_order(out: &str, kinds: &[&str]) {
    let at: Vec<usize> = kinds
        .iter()
        .map(|k| {
            out.lines()
                .position(|l| l.contains(&format!(" {k} ")))
                .unwrap_or_else(|| panic!("no {k} in:\n{out}"))
        })
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "order {kinds:?}:\n{out}"
    );
}

#[tokio::test]
async fn uninstall_removes_the_admission_objects_that_refuse_pods() {
    let Some(kubeconfig) = e2e::kubeconfig("uninstall_e2e") else {
        return;
    };
    let client = e2e::client(&kubeconfig).await.unwrap();
    let run = e2e::unique("tessera-e2e-uninstall");
    let system = format!("{run}-system");
    let _cleanup = Cleanup {
        kubeconfig: kubeconfig.clone(),
        run: run.clone(),
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for (name, labels) in [
        (&run, json!({SCOPE: run})),
        (
            &system,
            json!({"app.kubernetes.io/part-of": "tessera", RUN: run}),
        ),
    ] {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    create(&client, &webhook_configuration(&run, &system)).await;
    let (policies, bindings) = guards(&run);
    for p in &policies {
        create(&client, p).await;
    }
    for b in &bindings {
        create(&client, b).await;
    }

    let ordinary = pod(json!({"app": "web"}));
    let opted_in = pod(json!({"tessera.dev/inject": "true", "tessera.dev/quorum": "true"}));
    // Past the webhook (opted out of it), the quorum label meets the guard.
    let guarded = pod(json!({"tessera.dev/inject": "false", "tessera.dev/quorum": "true"}));
    let limit = Duration::from_secs(30);
    for (what, p) in [("opted-in", &opted_in), ("guarded", &guarded)] {
        e2e::wait_for(&format!("the {what} pod refused"), limit, || async {
            admitted(&client, &run, p).await.err()
        })
        .await
        .unwrap();
    }
    admitted(&client, &run, &ordinary)
        .await
        .expect("an ordinary pod is admitted while Tessera is installed");

    let planned = uninstall(&kubeconfig, &run, &["--dry-run"]);
    assert_order(
        &planned,
        &[
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicyBinding",
            "ValidatingAdmissionPolicy",
            "Namespace",
        ],
    );
    assert!(
        planned.lines().all(|l| !l.starts_with("deleted")),
        "{planned}"
    );
    assert!(
        admitted(&client, &run, &opted_in).await.is_err(),
        "a dry run deleted nothing"
    );

    let done = uninstall(&kubeconfig, &run, &[]);
    assert_order(
        &done,
        &[
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicyBinding",
            "ValidatingAdmissionPolicy",
            "Namespace",
        ],
    );
    assert!(!done.contains("CustomResourceDefinition"), "{done}");
    for (what, p) in [
        ("ordinary", &ordinary),
        ("opted-in", &opted_in),
        ("guarded", &guarded),
    ] {
        e2e::wait_for(&format!("the {what} pod admitted"), limit, || async {
            admitted(&client, &run, p).await.ok()
        })
        .await
        .unwrap();
    }
    let selected = ListParams::default().labels(&format!("{RUN}={run}"));
    let left = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .list(&selected)
        .await
        .unwrap()
        .items
        .len()
        + Api::<ValidatingAdmissionPolicy>::all(client.clone())
            .list(&selected)
            .await
            .unwrap()
            .items
            .len()
        + Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
            .list(&selected)
            .await
            .unwrap()
            .items
            .len();
    assert_eq!(left, 0, "admission objects left behind");
    println!("uninstall: {}", done.lines().count());
}
