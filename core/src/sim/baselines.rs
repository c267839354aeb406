//! The published results of the FGD paper's policies (`fgd-baselines.csv`), read as input data
//! so that a comparison prints the published figure beside our re-implementation.

use std::io::BufRead;

use serde::Serialize;

use super::trace::TraceError;

/// One published row: a policy's mean figures on one trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Published {
    /// Trace name (`default`, `cpu050`, …).
    pub trace: String,
    /// Policy as published (`06-FGD`).
    pub policy: String,
    /// Mean allocation ratio (%) at 100% arrived.
    pub alloc_pct_100: f64,
    /// Mean allocation ratio (%) at 130% arrived.
    pub alloc_pct_130: f64,
    /// Mean unallocated GPUs at 130% arrived.
    pub unallocated_gpus_130: f64,
}

/// Parses the published table.
pub fn parse(reader: impl BufRead, file: &str) -> Result<Vec<Published>, TraceError> {
    let mut rows = Vec::new();
    let mut lines = reader.lines();
    let io = |source| TraceError::Io {
        file: file.to_string(),
        source,
    };
    let header = lines
        .next()
        .ok_or(TraceError::Empty {
            file: file.to_string(),
        })?
        .map_err(io)?;
    let cols: Vec<&str> = header.trim().split(',').collect();
    let find = |name: &'static str| {
        cols.iter()
            .position(|c| *c == name)
            .ok_or(TraceError::MissingColumn {
                file: file.to_string(),
                column: name,
            })
    };
    let idx = [
        find("trace")?,
        find("policy")?,
        find("alloc_pct_at_100_mean")?,
        find("alloc_pct_at_130_mean")?,
        find("unallocated_gpus_at_130")?,
    ];
    for (i, line) in lines.enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.trim().split(',').collect();
        let num = |k: usize, field: &'static str| -> Result<f64, TraceError> {
            let text = f.get(idx[k]).copied().unwrap_or("");
            text.parse().map_err(|_| TraceError::Field {
                file: file.to_string(),
                line: i + 2,
                field,
                value: text.to_string(),
                expected: "a number",
            })
        };
        rows.push(Published {
            trace: f.get(idx[0]).copied().unwrap_or("").to_string(),
            policy: f.get(idx[1]).copied().unwrap_or("").to_string(),
            alloc_pct_100: num(2, "alloc_pct_at_100_mean")?,
            alloc_pct_130: num(3, "alloc_pct_at_130_mean")?,
            unallocated_gpus_130: num(4, "unallocated_gpus_at_130")?,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_rows_parse_and_bad_numbers_are_named() {
        let csv = "trace,policy,seeds,alloc_pct_at_100_mean,alloc_pct_at_130_mean,alloc_pct_at_130_std,unallocated_gpus_at_130\ndefault,06-FGD,10,95.23,95.39,0.08,286.3\n";
        let rows = parse(csv.as_bytes(), "b.csv").unwrap();
        assert_eq!(rows[0].policy, "06-FGD");
        assert_eq!(rows[0].unallocated_gpus_130, 286.3);
        let bad = csv.replace("286.3", "many");
        let err = parse(bad.as_bytes(), "b.csv").unwrap_err();
        assert_eq!(
            err.to_string(),
            "b.csv:2: field \"unallocated_gpus_at_130\": \"many\" is not a number"
        );
    }
}
