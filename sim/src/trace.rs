//! Parsing the public GPU cluster trace (`openb_node_list*.csv`, `openb_pod_list*.csv`) from
//! readers. Columns are found by header name; every bad value is reported with its file, line and
//! field, so a broken trace fails loudly instead of skewing a comparison.

use std::io::BufRead;

use thiserror::Error;

/// A node of the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceNode {
    /// Node name (`sn`).
    pub name: String,
    /// CPU, millicores.
    pub cpu_milli: u64,
    /// Host memory, MiB.
    pub memory_mib: u64,
    /// Number of GPUs.
    pub gpus: u32,
    /// GPU model (empty for CPU-only nodes).
    pub model: String,
}

/// A pod of the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracePod {
    /// Pod name.
    pub name: String,
    /// CPU, millicores.
    pub cpu_milli: u64,
    /// Host memory, MiB.
    pub memory_mib: u64,
    /// Number of GPUs (0: CPU-only).
    pub num_gpu: u32,
    /// Thousandths of each GPU, clamped to 1000 (0 for CPU-only pods).
    pub gpu_milli: u32,
    /// Allowed GPU models (empty: any).
    pub gpu_spec: Vec<String>,
}

impl TracePod {
    /// Thousandths of a GPU requested in total.
    pub fn total_gpu_milli(&self) -> u64 {
        u64::from(self.num_gpu) * u64::from(self.gpu_milli)
    }
}

/// Why a trace file could not be read.
#[derive(Debug, Error)]
pub enum TraceError {
    /// Reading failed.
    #[error("{file}: {source}")]
    Io {
        /// File name.
        file: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// No header line.
    #[error("{file}: empty file, expected a CSV header")]
    Empty {
        /// File name.
        file: String,
    },
    /// A required column is not in the header.
    #[error("{file}: header has no column {column:?}")]
    MissingColumn {
        /// File name.
        file: String,
        /// Column name.
        column: &'static str,
    },
    /// A value that does not parse.
    #[error("{file}:{line}: field {field:?}: {value:?} is not {expected}")]
    Field {
        /// File name.
        file: String,
        /// 1-based line number.
        line: usize,
        /// Column name.
        field: &'static str,
        /// The text found.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

/// A CSV file's header, for finding columns and reading fields with located errors.
pub(super) struct Table<'a> {
    file: &'a str,
    header: Vec<String>,
}

impl<'a> Table<'a> {
    pub(super) fn column(&self, name: &'static str) -> Result<usize, TraceError> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or(TraceError::MissingColumn {
                file: self.file.to_string(),
                column: name,
            })
    }

    pub(super) fn field<'r>(
        &self,
        row: &[&'r str],
        line: usize,
        col: usize,
        name: &'static str,
    ) -> Result<&'r str, TraceError> {
        row.get(col).copied().ok_or_else(|| TraceError::Field {
            file: self.file.to_string(),
            line,
            field: name,
            value: String::new(),
            expected: "present (row too short)",
        })
    }

    fn number(
        &self,
        row: &[&str],
        line: usize,
        col: usize,
        name: &'static str,
    ) -> Result<u64, TraceError> {
        self.parsed(row, line, col, name, "a non-negative integer")
    }

    /// Field `name` parsed as `T`; `expected` says what it should have been.
    pub(super) fn parsed<T: std::str::FromStr>(
        &self,
        row: &[&str],
        line: usize,
        col: usize,
        name: &'static str,
        expected: &'static str,
    ) -> Result<T, TraceError> {
        let text = self.field(row, line, col, name)?;
        text.trim().parse().map_err(|_| TraceError::Field {
            file: self.file.to_string(),
            line,
            field: name,
            value: text.to_string(),
            expected,
        })
    }
}

/// Reads rows after the header, calling `row` with the 1-based line number and the fields.
pub(super) fn read_rows<C>(
    reader: impl BufRead,
    file: &str,
    on_header: impl FnOnce(&Table<'_>) -> Result<C, TraceError>,
    mut row: impl FnMut(&Table<'_>, &C, usize, &[&str]) -> Result<(), TraceError>,
) -> Result<(), TraceError> {
    let io = |source| TraceError::Io {
        file: file.to_string(),
        source,
    };
    let mut lines = reader.lines();
    let header = lines
        .next()
        .ok_or(TraceError::Empty {
            file: file.to_string(),
        })?
        .map_err(io)?;
    let table = Table {
        file,
        header: header
            .trim()
            .split(',')
            .map(|s| s.trim().to_string())
            .collect(),
    };
    let cols = on_header(&table)?;
    for (i, line) in lines.enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim_end().split(',').collect();
        row(&table, &cols, i + 2, &fields)?;
    }
    Ok(())
}

/// Parses a node list.
pub fn parse_nodes(reader: impl BufRead, file: &str) -> Result<Vec<TraceNode>, TraceError> {
    let mut nodes = Vec::new();
    read_rows(
        reader,
        file,
        |t| {
            let mut cols = [0usize; 5];
            for (slot, name) in
                cols.iter_mut()
                    .zip(["sn", "cpu_milli", "memory_mib", "gpu", "model"])
            {
                *slot = t.column(name)?;
            }
            Ok(cols)
        },
        |t, cols, line, row| {
            nodes.push(TraceNode {
                name: t.field(row, line, cols[0], "sn")?.to_string(),
                cpu_milli: t.number(row, line, cols[1], "cpu_milli")?,
                memory_mib: t.number(row, line, cols[2], "memory_mib")?,
                gpus: u32::try_from(t.number(row, line, cols[3], "gpu")?).unwrap_or(u32::MAX),
                model: t.field(row, line, cols[4], "model")?.trim().to_string(),
            });
            Ok(())
        },
    )?;
    Ok(nodes)
}

/// Parses a pod list (the `gpu_spec` column is optional, as in the multigpu files).
pub fn parse_pods(reader: impl BufRead, file: &str) -> Result<Vec<TracePod>, TraceError> {
    let mut pods = Vec::new();
    read_rows(
        reader,
        file,
        |t| {
            let mut cols = [0usize; 5];
            for (slot, name) in
                cols.iter_mut()
                    .zip(["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"])
            {
                *slot = t.column(name)?;
            }
            Ok((cols, t.column("gpu_spec").ok()))
        },
        |t, (cols, spec_col), line, row| {
            let num_gpu =
                u32::try_from(t.number(row, line, cols[3], "num_gpu")?).unwrap_or(u32::MAX);
            let milli = t.number(row, line, cols[4], "gpu_milli")?.min(1000) as u32;
            let spec = match *spec_col {
                Some(c) => tessera_core::request::split_models(row.get(c).copied().unwrap_or("")),
                None => Vec::new(),
            };
            pods.push(TracePod {
                name: t.field(row, line, cols[0], "name")?.to_string(),
                cpu_milli: t.number(row, line, cols[1], "cpu_milli")?,
                memory_mib: t.number(row, line, cols[2], "memory_mib")?,
                num_gpu,
                gpu_milli: if num_gpu == 0 { 0 } else { milli },
                gpu_spec: spec,
            });
            Ok(())
        },
    )?;
    Ok(pods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_parse_with_and_without_spec_column() {
        let csv = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos\np1,4000,100,1,460,V100M16|V100M32,LS\np2,8000,0,0,0,,BE\n";
        let pods = parse_pods(csv.as_bytes(), "pods.csv").unwrap();
        assert_eq!(pods[0].gpu_spec, vec!["V100M16", "V100M32"]);
        assert_eq!((pods[0].num_gpu, pods[0].gpu_milli), (1, 460));
        assert_eq!(pods[1].total_gpu_milli(), 0);
        let short = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np3,1,2,8,1000\n";
        assert_eq!(
            parse_pods(short.as_bytes(), "m.csv").unwrap()[0].total_gpu_milli(),
            8000
        );
    }

    #[test]
    fn bad_rows_name_file_line_and_field() {
        let csv = "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np1,4000,100,1,460\np2,lots,0,0,0\n";
        let err = parse_pods(csv.as_bytes(), "pods.csv").unwrap_err();
        assert_eq!(
            err.to_string(),
            "pods.csv:3: field \"cpu_milli\": \"lots\" is not a non-negative integer"
        );
        let err = parse_nodes("sn,cpu_milli,memory_mib,gpu\n".as_bytes(), "nodes.csv").unwrap_err();
        assert_eq!(err.to_string(), "nodes.csv: header has no column \"model\"");
        let err = parse_nodes("".as_bytes(), "nodes.csv").unwrap_err();
        assert!(matches!(err, TraceError::Empty { .. }));
        let err = parse_nodes(
            "sn,cpu_milli,memory_mib,gpu,model\nn1,1\n".as_bytes(),
            "nodes.csv",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("nodes.csv:2: field \"memory_mib\""),
            "{err}"
        );
    }
}
