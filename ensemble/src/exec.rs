//! Runs a profile's command in a member's container (`pods/exec`, `sh -c`), with the member
//! acted on passed as `TESSERA_ID` and `TESSERA_ENTRY`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::AttachParams;
use tokio::io::AsyncReadExt;

/// What a command printed and whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Standard output.
    pub stdout: String,
    /// Exit status 0.
    pub ok: bool,
}

/// Why a command could not be run (as opposed to running and failing).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The exec request failed.
    #[error("exec in pod {pod}: {source}")]
    Api {
        /// The pod.
        pod: String,
        /// Why.
        source: kube::Error,
    },
    /// The command ran past its limit.
    #[error("exec in pod {pod}: no answer within {limit:?}")]
    Timeout {
        /// The pod.
        pod: String,
        /// The limit.
        limit: Duration,
    },
}

/// Quotes `text` for a POSIX shell.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The script run for `command` with the member's id and entry in its environment.
pub fn script(command: &str, id: Option<&str>, entry: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(id) = id {
        out.push_str(&format!("TESSERA_ID={}; export TESSERA_ID; ", quote(id)));
    }
    if let Some(entry) = entry {
        out.push_str(&format!(
            "TESSERA_ENTRY={}; export TESSERA_ENTRY; ",
            quote(entry)
        ));
    }
    out.push_str(command);
    out
}

/// Runs `script` with `sh -c` in `container` of `pod`.
pub async fn run(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    script: &str,
    limit: Duration,
) -> Result<Ran, ExecError> {
    let work = async {
        let params = AttachParams::default()
            .container(container)
            .stdout(true)
            .stderr(false);
        let mut attached = pods
            .exec(pod, ["sh", "-c", script], &params)
            .await
            .map_err(|source| ExecError::Api {
                pod: pod.to_string(),
                source,
            })?;
        let mut stdout = String::new();
        if let Some(mut out) = attached.stdout() {
            // A command that prints what is not text is answered as empty.
            let _ = out.read_to_string(&mut stdout).await;
        }
        let status = match attached.take_status() {
            Some(s) => s.await,
            None => None,
        };
        let _ = attached.join().await;
        let ok = status.is_some_and(|s| s.status.as_deref() == Some("Success"));
        Ok(Ran { stdout, ok })
    };
    tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
        Err(ExecError::Timeout {
            pod: pod.to_string(),
            limit,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_entries_reach_the_command_quoted() {
        let s = script(
            "echo \"$TESSERA_ENTRY\"",
            Some("5"),
            Some("server.5=a:1;it's"),
        );
        assert_eq!(
            s,
            "TESSERA_ID='5'; export TESSERA_ID; TESSERA_ENTRY='server.5=a:1;it'\\''s'; \
             export TESSERA_ENTRY; echo \"$TESSERA_ENTRY\""
        );
    }
}
