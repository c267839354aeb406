//! The stand-in's config file and XID lines (format in the crate docs).

/// One simulated GPU.
pub struct Gpu {
    pub uuid: String,
    pub name: String,
    pub memory_mib: u64,
    pub mig: bool,
    pub compute_capability: (i32, i32),
    pub used_mib: u64,
    pub util_percent: u32,
    /// Accepts XID event registration.
    pub events: bool,
}

/// Parses `nvml-standin.conf`; the error names the line.
pub fn parse(text: &str) -> Result<Vec<Gpu>, String> {
    let mut gpus = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = || format!("nvml-standin.conf line {}: {line:?}", n + 1);
        let rest = line.strip_prefix("gpu ").ok_or_else(bad)?;
        let f: Vec<&str> = rest.split('|').map(str::trim).collect();
        if f.len() < 3 {
            return Err(bad());
        }
        let field = |i: usize, default: &'static str| f.get(i).copied().unwrap_or(default);
        let (major, minor) = field(4, "8.0").split_once('.').ok_or_else(bad)?;
        gpus.push(Gpu {
            uuid: f[0].to_string(),
            name: f[1].to_string(),
            memory_mib: f[2].parse().map_err(|_| bad())?,
            mig: field(3, "0") == "1",
            compute_capability: (
                major.parse().map_err(|_| bad())?,
                minor.parse().map_err(|_| bad())?,
            ),
            used_mib: field(5, "0").parse().map_err(|_| bad())?,
            util_percent: field(6, "0").parse().map_err(|_| bad())?,
            events: field(7, "1") == "1",
        });
    }
    Ok(gpus)
}

/// `INDEX XID` from one line of `nvml-standin.xid`.
pub fn parse_xid(line: &str) -> Option<(usize, u64)> {
    let mut parts = line.split_whitespace();
    let index = parts.next()?.parse().ok()?;
    let xid = parts.next()?.parse().ok()?;
    Some((index, xid))
}
