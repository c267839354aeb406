//! The supervision loop: runs the control daemon, checks it with `get_server_list`, publishes
//! the status file while it answers, and restarts it with backoff when it dies or stops
//! answering. On shutdown: status removed first (no new share starts), `quit`, then the modes.

use std::path::Path;
use std::time::{Duration, Instant};

use tessera_core::plugin::mps::{MpsStatus, STATUS_FILE, STATUS_VERSION};
use tokio::process::Child;
use tokio::sync::watch;

use crate::config::{Config, MultiUser};
use crate::control::Control;
use crate::metrics::Metrics;

/// Longest wait for one `get_server_list` or `quit` answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// When the first health check of a fresh control daemon comes, at the latest.
const FIRST_CHECK: Duration = Duration::from_millis(300);

/// The wait before restart `n` (0-based): 0.5 s doubling to 30 s.
pub fn backoff(restarts: u32) -> Duration {
    let ms = 500u64.saturating_mul(1u64 << restarts.min(16));
    Duration::from_millis(ms.min(30_000))
}

/// How a run of the control daemon ended.
enum Ended {
    /// Shutdown was asked; the daemon has been told to quit.
    Shutdown,
    /// It exited or stopped answering; `healthy` says whether it ever answered.
    Failed { healthy: bool },
}

/// Supervises the control daemon for `gpus` until `shutdown`; `ready` follows its health.
pub async fn run(
    config: &Config,
    gpus: Vec<String>,
    metrics: &Metrics,
    ready: &watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let control = Control::new(&config.control, &config.root);
    let mut multi_user = config.multi_user != MultiUser::Never;
    let mut restarts = 0u32;
    loop {
        let started = Instant::now();
        let ended = match control.spawn_daemon(multi_user) {
            Ok(child) => {
                tracing::info!(multi_user, gpus = ?gpus, "MPS control daemon started");
                let run = Run {
                    config,
                    control: &control,
                    gpus: &gpus,
                    multi_user,
                    metrics,
                    ready,
                };
                run.watch(child, &mut shutdown).await
            }
            Err(e) => {
                tracing::error!(program = %config.control.display(), error = %e, "cannot start the MPS control daemon");
                Ended::Failed { healthy: false }
            }
        };
        set_ready(config, ready, metrics, None);
        let Ended::Failed { healthy } = ended else {
            return;
        };
        metrics.restarts.inc();
        if !healthy && multi_user && config.multi_user == MultiUser::Auto {
            // The driver's control daemon refused `-M` (or died before answering with it).
            tracing::warn!(
                "the MPS control daemon did not come up with -M; running the single-user server (one Linux user's clients at a time)"
            );
            multi_user = false;
        }
        if healthy && started.elapsed() > Duration::from_secs(60) {
            restarts = 0;
        }
        let wait = backoff(restarts);
        restarts = restarts.saturating_add(1);
        tracing::warn!(?wait, "restarting the MPS control daemon");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

struct Run<'a> {
    config: &'a Config,
    control: &'a Control,
    gpus: &'a [String],
    multi_user: bool,
    metrics: &'a Metrics,
    ready: &'a watch::Sender<bool>,
}

impl Run<'_> {
    async fn watch(&self, mut child: Child, shutdown: &mut watch::Receiver<bool>) -> Ended {
        // The first check waits a moment: the control daemon needs it to open its pipe.
        let first = tokio::time::Instant::now() + self.config.health_every.min(FIRST_CHECK);
        let mut tick = tokio::time::interval_at(first, self.config.health_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut healthy, mut failed) = (false, 0u32);
        loop {
            tokio::select! {
                status = child.wait() => {
                    tracing::error!(?status, "the MPS control daemon exited; its GPUs are not isolated until it is back");
                    return Ended::Failed { healthy };
                }
                _ = shutdown.wait_for(|s| *s) => {
                    self.stop(child).await;
                    return Ended::Shutdown;
                }
                _ = tick.tick() => {}
            }
            match self.control.ask("get_server_list", ASK_TIMEOUT).await {
                Ok(_) => {
                    self.metrics.check("ok");
                    healthy = true;
                    failed = 0;
                    let status = MpsStatus {
                        version: STATUS_VERSION.to_string(),
                        gpus: self.gpus.to_vec(),
                        multi_user: self.multi_user,
                        heartbeat: jiff::Timestamp::now().as_second(),
                    };
                    set_ready(self.config, self.ready, self.metrics, Some(&status));
                }
                Err(why) => {
                    self.metrics.check("failed");
                    failed += 1;
                    tracing::warn!(%why, failed, "MPS health check failed");
                    if failed >= self.config.failures {
                        set_ready(self.config, self.ready, self.metrics, None);
                        let _ = child.kill().await;
                        return Ended::Failed { healthy };
                    }
                }
            }
        }
    }

    /// Tells the daemon to quit (it waits for running clients), then kills it after the grace.
    async fn stop(&self, mut child: Child) {
        set_ready(self.config, self.ready, self.metrics, None);
        if let Err(why) = self.control.ask("quit", ASK_TIMEOUT).await {
            tracing::warn!(%why, "MPS quit was not taken");
        }
        match tokio::time::timeout(self.config.stop_grace, child.wait()).await {
            Ok(status) => tracing::info!(?status, "MPS control daemon stopped"),
            Err(_) => {
                tracing::warn!(grace = ?self.config.stop_grace, "MPS control daemon still running clients; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

/// Publishes readiness: the status file (written whole, then renamed into place, so the device
/// plugin never reads half of it), the `/readyz` flag and the gauge.
fn set_ready(
    config: &Config,
    ready: &watch::Sender<bool>,
    metrics: &Metrics,
    status: Option<&MpsStatus>,
) {
    let file = config.root.join(STATUS_FILE);
    let result = match status {
        Some(s) => write_atomic(&file, &s.encode()),
        None => match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    };
    if let Err(e) = result {
        tracing::error!(file = %file.display(), error = %e, "cannot publish the MPS status");
    }
    let live = status.is_some();
    metrics.ready.set(i64::from(live));
    ready.send_if_modified(|r| std::mem::replace(r, live) != live);
}

fn write_atomic(file: &Path, text: &str) -> std::io::Result<()> {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_from_half_a_second_to_thirty() {
        let waits: Vec<u64> = (0..9).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(
            waits,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
    }
}
