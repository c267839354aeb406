//! `promtool check metrics` on an exposition: the linter Prometheus operators run. Tests that
//! use it print a skip line where promtool is not installed (`.ci/run` installs it).

#![allow(clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::io::Write;
use std::process::{Command, Stdio};

/// Lints `text` (Prometheus text format). `None` when promtool is not installed; otherwise
/// `Err` with promtool's complaints.
pub fn check(text: &str) -> Option<Result<(), String>> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("skipping promtool check: promtool is not installed");
        return None;
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .expect("writing to promtool");
    }
    let out = child.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics: {said}\n--- exposition ---\n{text}"
        ))
    })
}

/// Panics with promtool's complaints, if any (skips where promtool is missing).
pub fn assert_clean(text: &str) {
    if let Some(Err(why)) = check(text) {
        panic!("{why}");
    }
}

/// `promtool check rules` on a rule file (`groups:` at the top). `None` when promtool is not
/// installed; otherwise `Err` with promtool's complaints.
pub fn check_rules(path: &std::path::Path) -> Option<Result<(), String>> {
    let out = match Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(path)
        .output()
    {
        Ok(out) => out,
        Err(_) => {
            eprintln!("skipping promtool check rules: promtool is not installed");
            return None;
        }
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!("promtool check rules: {said}"))
    })
}
