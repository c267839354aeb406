//! The published results of the FGD paper's policies (`fgd-baselines.csv`), read as input data
//! so that a comparison prints the published figure beside our re-implementation.

use std::io::BufRead;

use serde::Serialize;

use super::trace::{TraceError, read_rows};

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
    const COLUMNS: [&str; 5] = [
        "trace",
        "policy",
        "alloc_pct_at_100_mean",
        "alloc_pct_at_130_mean",
        "unallocated_gpus_at_130",
    ];
    let mut rows = Vec::new();
    read_rows(
        reader,
        file,
        |t| {
            let mut cols = [0usize; 5];
            for (slot, name) in cols.iter_mut().zip(COLUMNS) {
                *slot = t.column(name)?;
            }
            Ok(cols)
        },
        |t, cols, line, row| {
            let num = |k: usize| t.parsed::<f64>(row, line, cols[k], COLUMNS[k], "a number");
            rows.push(Published {
                trace: t.field(row, line, cols[0], COLUMNS[0])?.to_string(),
                policy: t.field(row, line, cols[1], COLUMNS[1])?.to_string(),
                alloc_pct_100: num(2)?,
                alloc_pct_130: num(3)?,
                unallocated_gpus_130: num(4)?,
            });
            Ok(())
        },
    )?;
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
