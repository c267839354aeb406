//! report placeholder
use super::replay::ReplayResult;
/// x
pub fn trace_report(_title: &str, _runs: &[ReplayResult]) -> String { String::new() }
