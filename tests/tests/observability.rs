//! What an operator's monitoring reads: every component's metrics pass `promtool check metrics`
//! in the text format plain scrapers get, and every metric the shipped Grafana dashboard queries
//! is one a component exports.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers fail loudly

use std::collections::BTreeSet;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tessera_core::cluster::NodeFacts;
use tessera_core::testing;
use tessera_extender::{Config, ExtenderState};
use tessera_serve::exposition::to_prometheus_text;
use tessera_tests::promtool;

fn text_of(registry: &Registry) -> String {
    let mut open = String::new();
    encode(&mut open, registry).unwrap();
    to_prometheus_text(&open)
}

/// The webhook's metrics after a patched and a refused request and a certificate reload.
fn webhook() -> String {
    let mut registry = Registry::default();
    let m = tessera_webhook::metrics::Metrics::register(&mut registry);
    m.request(
        tessera_webhook::metrics::Outcome::Patched,
        &["zookeeper".to_string()],
        0.000_4,
    );
    m.request(tessera_webhook::metrics::Outcome::BadRequest, &[], 0.000_1);
    m.profiles(6, 1);
    m.cert_reload(Some(4_000_000_000));
    m.profile_reload(true);
    m.before_scrape();
    text_of(&registry)
}

/// The extender's metrics with two GPU nodes, one share held, after a filter and a bind.
fn extender() -> String {
    let state = ExtenderState::new(Config::default(), std::sync::Arc::new(NoBinder));
    state.update(|c| {
        for (name, gpus, model) in [("node-1", 4, "T4"), ("node-2", 8, "A100")] {
            let mut inventory = testing::gpus(name, gpus, model, 16384);
            for gpu in &mut inventory.gpus {
                gpu.isolation = tessera_core::inventory::Isolation::None;
            }
            c.apply_node(NodeFacts {
                name: name.into(),
                zone: None,
                inventory,
                inventory_error: None,
                heartbeat: Some(990),
            });
        }
        testing::hold(c.ledger.node_mut("node-1").unwrap(), "ml/a", 0, 8192, 500);
    });
    let metrics = state.metrics();
    // Serving HTTPS: the certificate's expiry is exported.
    metrics
        .cert_not_after()
        .store(4_000_000_000, std::sync::atomic::Ordering::Relaxed);
    metrics.observe("filter", true, 0.000_3);
    metrics.bind_outcome("ok");
    let open = metrics.encode(&state.read(), 1_000);
    to_prometheus_text(&open)
}

struct NoBinder;

impl tessera_extender::Binder for NoBinder {
    fn bind(&self, _: tessera_extender::BindTarget) -> tessera_extender::BindFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}

/// The device plugin's metrics with one GPU's usage, an XID, a failed Allocate, one share
/// container's use and no conflicting device plugin.
fn device_plugin() -> String {
    use tessera_device_plugin::metrics::{Metrics, ReasonLabel, ResourceLabel, XidLabel};
    let mut registry = Registry::default();
    let m = Metrics::new(&mut registry);
    m.set_usage(
        "node-1",
        &[tessera_device_plugin::nvml::GpuUsage {
            uuid: "GPU-0".into(),
            used_bytes: 1 << 30,
            total_bytes: 16 << 30,
            util_percent: 40,
        }],
    );
    m.xid_events
        .get_or_create(&XidLabel {
            node: "node-1".into(),
            gpu: "GPU-0".into(),
            critical: "true".into(),
        })
        .inc();
    m.allocate_errors
        .get_or_create(&ReasonLabel {
            reason: "no_match".into(),
        })
        .inc();
    m.allocate_duration.observe(0.002);
    m.registrations.inc();
    m.set_containers(
        "node-1",
        &[tessera_core::plugin::accounting::ContainerUsage {
            namespace: "ml".into(),
            pod: "train-0".into(),
            container: "main".into(),
            gpu: "GPU-0".into(),
            used_bytes: 5 << 30,
            limit_bytes: 4 << 30,
            sm_ratio: Some(0.25),
        }],
    );
    m.conflict
        .get_or_create(&ResourceLabel {
            resource: "nvidia.com/gpu".into(),
        })
        .set(0);
    m.shares_assigned
        .get_or_create(&tessera_device_plugin::metrics::GpuLabel::new(
            "node-1", "GPU-0",
        ))
        .set(1);
    m.healthy
        .get_or_create(&tessera_device_plugin::metrics::GpuLabel::new(
            "node-1", "GPU-0",
        ))
        .set(1);
    text_of(&registry)
}

/// The MPS daemon's metrics after a health check.
fn mps_daemon() -> String {
    let mut registry = Registry::default();
    let m = tessera_mps::metrics::Metrics::new(&mut registry);
    m.ready.set(1);
    m.check("ok");
    text_of(&registry)
}

#[test]
fn every_component_passes_promtool_in_the_text_format() {
    for (name, text) in [
        ("webhook", webhook()),
        ("extender", extender()),
        ("device plugin", device_plugin()),
        ("mps daemon", mps_daemon()),
    ] {
        assert!(!text.contains("# EOF"), "{name}: OpenMetrics left in text");
        match promtool::check(&text) {
            None => return,
            Some(Err(why)) => panic!("{name}: {why}"),
            Some(Ok(())) => {}
        }
    }
}

#[test]
fn the_extender_exports_allocation_per_node_and_gpu_model() {
    let text = extender();
    for line in [
        "tessera_extender_node_gpus{node=\"node-2\",model=\"A100\"} 8",
        "tessera_extender_node_gpu_memory_bytes{node=\"node-1\",model=\"T4\"} 68719476736",
        "tessera_extender_node_gpu_memory_allocated_bytes{node=\"node-1\",model=\"T4\"} 8589934592",
        "tessera_extender_node_gpu_compute_allocated_gpus{node=\"node-1\",model=\"T4\"} 0.5",
        "tessera_extender_node_gpu_compute_allocated_gpus{node=\"node-2\",model=\"A100\"} 0.0",
        "tessera_extender_node_gpus_by_isolation{node=\"node-1\",model=\"T4\",isolation=\"none\"} 4",
        "tessera_extender_node_heartbeat_age_seconds{node=\"node-2\"} 10",
        "# TYPE tessera_extender_binds_total counter",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(
        text.contains("tessera_extender_node_gpu_fragmented_gpus{node=\"node-1\",model=\"T4\"}")
    );
}

/// Metric family names a text exposition defines (its `# TYPE` lines).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_dashboard_queries_only_metrics_that_exist() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../install/components/monitoring/dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exported = BTreeSet::new();
    for text in [webhook(), extender(), device_plugin(), mps_daemon()] {
        exported.extend(families(&text));
    }
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "a dashboard worth shipping");
    let mut queried = 0;
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !word.starts_with("tessera_") {
                    continue;
                }
                queried += 1;
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s).filter(|f| exported.contains(*f)))
                    .unwrap_or(word);
                assert!(
                    exported.contains(family),
                    "panel {:?} queries {word}, which no component exports",
                    panel["title"]
                );
            }
        }
    }
    assert!(
        queried > panels.len(),
        "every panel queries Tessera metrics"
    );
}

/// Every `tessera_*` word of a PromQL expression, reduced to its family name.
fn queried_families(expr: &str, exported: &BTreeSet<String>) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("tessera_"))
        .map(|w| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| w.strip_suffix(s).filter(|f| exported.contains(*f)))
                .unwrap_or(w)
                .to_string()
        })
        .collect()
}

#[test]
fn the_alert_rules_pass_promtool_and_query_only_metrics_that_exist() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../install/components/monitoring/prometheusrule.yaml"
    );
    let rule: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let spec = &rule["spec"];
    let mut exported = BTreeSet::new();
    for text in [webhook(), extender(), device_plugin(), mps_daemon()] {
        exported.extend(families(&text));
    }
    let mut alerts = BTreeSet::new();
    for group in spec["groups"].as_sequence().unwrap() {
        for r in group["rules"].as_sequence().unwrap() {
            alerts.insert(r["alert"].as_str().unwrap().to_string());
            for family in queried_families(r["expr"].as_str().unwrap(), &exported) {
                assert!(
                    exported.contains(&family),
                    "alert {:?} queries {family}, which no component exports",
                    r["alert"]
                );
            }
        }
    }
    for wanted in [
        "TesseraWebhookCertificateExpiring",
        "TesseraExtenderLeaderCount",
        "TesseraMpsNotReady",
        "TesseraShareOverLimit",
        "TesseraInventoryHeartbeatStale",
    ] {
        assert!(alerts.contains(wanted), "missing alert {wanted}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(spec).unwrap()).unwrap();
    if let Some(Err(why)) = promtool::check_rules(&file) {
        panic!("{why}");
    }
}
