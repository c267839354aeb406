//! `/metrics` in the format the scraper asks for. prometheus-client writes OpenMetrics; a
//! scraper that does not name `application/openmetrics-text` in its `Accept` header (curl,
//! `promtool check metrics`, older agents) gets the Prometheus text format 0.0.4 instead, where a
//! counter's HELP and TYPE must carry the `_total` name its samples have.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The OpenMetrics content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Prometheus text format content type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether `accept` prefers OpenMetrics to the text format (by q-value; OpenMetrics wins ties,
/// as Prometheus itself offers it first).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let (mut open, mut text) = (0.0_f32, 0.0_f32);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => open = open.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    open > 0.0 && open >= text
}

/// Rewrites an OpenMetrics exposition as Prometheus text format 0.0.4: counters' HELP and TYPE
/// take the `_total` sample name, `info` becomes a `_info` gauge, `unknown` becomes `untyped`,
/// and the `# UNIT`, `# EOF` and `_created` lines and exemplars, which 0.0.4 lacks, are dropped.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let types: HashMap<&str, &str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .collect();
    let renamed = |name: &str| -> (String, Option<&'static str>) {
        match types.get(name).copied() {
            Some("counter") => (format!("{name}_total"), Some("counter")),
            Some("info") => (format!("{name}_info"), Some("gauge")),
            Some("unknown") => (name.to_string(), Some("untyped")),
            Some("gaugehistogram") => (name.to_string(), Some("histogram")),
            _ => (name.to_string(), None),
        }
    };
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str(&format!("# HELP {} {help}\n", renamed(name).0));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, new_kind) = renamed(name);
            out.push_str(&format!("# TYPE {name} {}\n", new_kind.unwrap_or(kind)));
            continue;
        }
        let sample = line.split(" # ").next().unwrap_or(line);
        let name = sample.split(['{', ' ']).next().unwrap_or("");
        if name.ends_with("_created") && types.contains_key(name.trim_end_matches("_created")) {
            continue;
        }
        out.push_str(sample);
        out.push('\n');
    }
    out
}

/// The `/metrics` response for an OpenMetrics exposition, in the format `headers` ask for.
pub fn respond(headers: &HeaderMap, openmetrics: String) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if wants_openmetrics(accept) {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, OPENMETRICS)],
            openmetrics,
        )
            .into_response()
    } else {
        let text = to_prometheus_text(&openmetrics);
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
            text,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# HELP app_requests Requests by result.\n\
        # TYPE app_requests counter\n\
        app_requests_total{result=\"ok\"} 3\n\
        app_requests_created{result=\"ok\"} 1.7e9\n\
        # HELP app_latency_seconds Time to answer.\n\
        # TYPE app_latency_seconds histogram\n\
        # UNIT app_latency_seconds seconds\n\
        app_latency_seconds_sum 0.5\n\
        app_latency_seconds_count 2\n\
        app_latency_seconds_bucket{le=\"+Inf\"} 2 # {trace=\"x\"} 0.4\n\
        # HELP app_build Build.\n\
        # TYPE app_build info\n\
        app_build_info{version=\"1\"} 1\n\
        # EOF\n";

    #[test]
    fn counters_carry_their_total_name_and_openmetrics_only_lines_go() {
        let text = to_prometheus_text(SAMPLE);
        assert!(text.contains("# HELP app_requests_total Requests by result.\n"));
        assert!(text.contains("# TYPE app_requests_total counter\n"));
        assert!(text.contains("app_requests_total{result=\"ok\"} 3\n"));
        assert!(!text.contains("_created"), "{text}");
        assert!(!text.contains("# UNIT"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            text.contains("app_latency_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE app_build_info gauge\n"), "{text}");
        assert!(text.contains("# TYPE app_latency_seconds histogram\n"));
    }

    #[test]
    fn prometheus_gets_openmetrics_and_plain_clients_get_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some(
            "application/openmetrics-text;q=0.2,text/plain;q=0.9"
        )));
    }
}
