//! `tessera_build_info{version,commit,component} 1` in every registry the binary owns, so a
//! dashboard or an alert can tell which release each replica and node agent runs (a rollout
//! half done shows as two versions).

use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Registers `tessera_build_info` for `component` (`webhook`, `device-plugin`, …) at the root of
/// `registry`, outside any component prefix.
pub fn register(registry: &mut Registry, component: &str) {
    let info = Info::new(vec![
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("commit", env!("TESSERA_COMMIT").to_string()),
        ("component", component.to_string()),
    ]);
    registry.register(
        "tessera_build",
        "The release and commit this binary was built from",
        info,
    );
}
