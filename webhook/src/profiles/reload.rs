//! Reloading `--profiles FILE` when its content changes.
//!
//! Content is polled, as for the serving certificate (`tessera_serve::tls`): that catches a
//! plain rewrite and a ConfigMap volume's `..data` symlink swap alike. A changed content is
//! taken only once two polls in a row read it, so a file caught half-written is not served. A
//! file that does not parse as YAML (or cannot be read) keeps the profiles being served; the
//! failure is logged and counted, and the file is tried again when it changes next. Within a
//! file that parses, invalid documents are skipped as at startup.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tracing::{info, warn};

use super::{DocumentError, Loaded, parse};
use crate::state::WebhookState;

/// Why a profiles file cannot be used at all.
#[derive(Debug, Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// Not UTF-8 text.
    #[error("{path}: not UTF-8 text")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// Not YAML.
    #[error("{path}: {source}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The document where parsing stopped.
        #[source]
        source: DocumentError,
    },
}

/// Parses the content of the profiles file at `path`; an error when the file as a whole is
/// unusable. Invalid documents are in [`Loaded::errors`].
pub fn read_file(path: &Path, content: &[u8]) -> Result<Loaded, FileError> {
    let text = std::str::from_utf8(content).map_err(|_| FileError::NotText {
        path: path.to_path_buf(),
    })?;
    let mut loaded = parse(text);
    if let Some(i) = loaded
        .errors
        .iter()
        .position(|e| matches!(e, DocumentError::Syntax { .. }))
    {
        return Err(FileError::Syntax {
            path: path.to_path_buf(),
            source: loaded.errors.swap_remove(i),
        });
    }
    Ok(loaded)
}

/// Logs what a load of the file at `path` gave.
pub(crate) fn log_loaded(path: &Path, loaded: &Loaded) {
    for e in &loaded.errors {
        warn!(file = %path.display(), error = %e, "profile skipped");
    }
    info!(
        file = %path.display(),
        profiles = loaded.profiles.len(),
        invalid = loaded.errors.len(),
        "profiles loaded"
    );
}

/// What to do after one look at the file.
#[derive(Debug)]
pub enum Step {
    /// Nothing: unchanged, or changed and waiting one more poll to settle.
    Wait,
    /// The file cannot be read (said once until it can be again).
    Unreadable(std::io::Error),
    /// New content, stable for two polls: load it.
    Load(Vec<u8>),
}

/// The poller's memory, as plain data: the content last taken and a change waiting to settle.
#[derive(Debug)]
pub struct FilePoll {
    taken: Vec<u8>,
    pending: Option<Vec<u8>>,
    unreadable: bool,
}

impl FilePoll {
    /// Starts from the content already served.
    pub fn new(taken: Vec<u8>) -> FilePoll {
        FilePoll {
            taken,
            pending: None,
            unreadable: false,
        }
    }

    /// One look at the file: its content, or why it could not be read. Content handed out in
    /// [`Step::Load`] counts as taken whether or not it then parses, so a broken file is
    /// reported once, not at every poll.
    pub fn observe(&mut self, read: std::io::Result<Vec<u8>>) -> Step {
        let content = match read {
            Ok(c) => c,
            Err(_) if self.unreadable => return Step::Wait,
            Err(e) => {
                self.unreadable = true;
                return Step::Unreadable(e);
            }
        };
        self.unreadable = false;
        if content == self.taken {
            self.pending = None;
            return Step::Wait;
        }
        if self.pending.as_ref() == Some(&content) {
            self.pending = None;
            self.taken = content.clone();
            return Step::Load(content);
        }
        self.pending = Some(content);
        Step::Wait
    }
}

/// Polls `path` every `every` and serves its profiles through `state` when the content changes,
/// until `stop` resolves. `taken` is the content already served. `on_reload` hears every
/// attempt: true when a new set is served, false when the file was refused.
pub async fn reload(
    path: PathBuf,
    every: Duration,
    state: Arc<WebhookState>,
    taken: Vec<u8>,
    on_reload: impl Fn(bool),
    stop: impl Future<Output = ()>,
) {
    let mut poll = FilePoll::new(taken);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(every) => {}
        }
        match poll.observe(tokio::fs::read(&path).await) {
            Step::Wait => {}
            Step::Unreadable(error) => {
                on_reload(false);
                warn!(file = %path.display(), %error,
                    "profiles file unreadable; keeping the profiles being served");
            }
            Step::Load(content) => match read_file(&path, &content) {
                Ok(loaded) => {
                    log_loaded(&path, &loaded);
                    state.set_profiles(loaded.profiles, loaded.errors.len());
                    on_reload(true);
                }
                Err(error) => {
                    on_reload(false);
                    warn!(%error, "profiles file not reloaded; keeping the profiles being served");
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdmissionConfig;
    use crate::metrics::Metrics;
    use prometheus_client::registry::Registry;
    use tokio::sync::mpsc;

    const LIMIT: Duration = Duration::from_secs(10);

    fn profiles(names: &[&str]) -> String {
        names
            .iter()
            .map(|n| {
                format!(
                    "apiVersion: tessera.dev/v1alpha1\nkind: InjectionProfile\n\
                     metadata: {{name: {n}}}\nspec: {{selector: {{}}}}\n"
                )
            })
            .collect::<Vec<_>>()
            .join("---\n")
    }

    fn state() -> Arc<WebhookState> {
        let metrics = Metrics::register(&mut Registry::default());
        let admission = AdmissionConfig::default();
        Arc::new(WebhookState::new(admission, metrics, LIMIT))
    }

    fn served(state: &WebhookState) -> Vec<String> {
        state.profiles().iter().map(|p| p.name.clone()).collect()
    }

    /// Serves `path` and reloads it every few milliseconds; results arrive on the receiver.
    fn watch(path: &Path, state: &Arc<WebhookState>) -> mpsc::UnboundedReceiver<bool> {
        let content = std::fs::read(path).unwrap();
        let loaded = read_file(path, &content).unwrap();
        state.set_profiles(loaded.profiles, 0);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = reload(
            path.to_path_buf(),
            Duration::from_millis(5),
            state.clone(),
            content,
            move |ok| {
                let _ = tx.send(ok);
            },
            std::future::pending(),
        );
        tokio::spawn(task);
        rx
    }

    async fn next(rx: &mut mpsc::UnboundedReceiver<bool>) -> bool {
        tokio::time::timeout(LIMIT, rx.recv())
            .await
            .expect("no reload within the limit")
            .unwrap()
    }

    #[test]
    fn a_change_is_taken_once_two_polls_read_it() {
        let mut poll = FilePoll::new(b"a".to_vec());
        assert!(matches!(poll.observe(Ok(b"a".to_vec())), Step::Wait));
        assert!(matches!(poll.observe(Ok(b"a-half".to_vec())), Step::Wait));
        assert!(matches!(poll.observe(Ok(b"b".to_vec())), Step::Wait));
        assert!(matches!(poll.observe(Ok(b"b".to_vec())), Step::Load(c) if c == b"b"));
        assert!(matches!(poll.observe(Ok(b"b".to_vec())), Step::Wait));
    }

    #[test]
    fn an_unreadable_file_is_reported_once_until_it_reads_again() {
        let mut poll = FilePoll::new(b"a".to_vec());
        let gone = || Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(matches!(poll.observe(gone()), Step::Unreadable(_)));
        assert!(matches!(poll.observe(gone()), Step::Wait));
        assert!(matches!(poll.observe(Ok(b"a".to_vec())), Step::Wait));
        assert!(matches!(poll.observe(gone()), Step::Unreadable(_)));
    }

    #[test]
    fn a_file_that_is_not_yaml_or_not_text_is_refused_naming_it() {
        let path = Path::new("profiles.yaml");
        let broken = format!("{}---\nmetadata: {{name: [\n", profiles(&["a"]));
        let err = read_file(path, broken.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("profiles.yaml: document 1: "), "{err}");
        let err = read_file(path, &[0xff, 0xfe]).unwrap_err().to_string();
        assert_eq!(err, "profiles.yaml: not UTF-8 text");
        let loaded = read_file(path, profiles(&["a", "b"]).as_bytes()).unwrap();
        assert_eq!(loaded.profiles.len(), 2);
    }

    #[tokio::test]
    async fn a_rewritten_file_is_served_and_a_broken_one_keeps_the_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.yaml");
        std::fs::write(&path, profiles(&["a"])).unwrap();
        let state = state();
        let mut results = watch(&path, &state);
        std::fs::write(&path, profiles(&["a", "b"])).unwrap();
        assert!(next(&mut results).await);
        assert_eq!(served(&state), ["a", "b"]);
        let generation = *state.subscribe().borrow();
        std::fs::write(&path, "apiVersion: [\n").unwrap();
        assert!(!next(&mut results).await);
        assert_eq!(served(&state), ["a", "b"]);
        assert_eq!(
            *state.subscribe().borrow(),
            generation,
            "nothing republished"
        );
        std::fs::write(&path, profiles(&["c"])).unwrap();
        assert!(next(&mut results).await);
        assert_eq!(served(&state), ["c"]);
    }

    #[tokio::test]
    async fn a_configmap_volume_symlink_swap_is_served() {
        // The kubelet's layout: profiles.yaml -> ..data/profiles.yaml, ..data -> ..<version>/,
        // and an update renames a new ..data link over the old one.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (version, names) in [("..v1", &["a"][..]), ("..v2", &["a", "z"][..])] {
            std::fs::create_dir(d.join(version)).unwrap();
            std::fs::write(d.join(version).join("profiles.yaml"), profiles(names)).unwrap();
        }
        std::os::unix::fs::symlink("..v1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/profiles.yaml", d.join("profiles.yaml")).unwrap();
        let state = state();
        let mut results = watch(&d.join("profiles.yaml"), &state);
        assert_eq!(served(&state), ["a"]);
        std::os::unix::fs::symlink("..v2", d.join("..data_tmp")).unwrap();
        std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        assert!(next(&mut results).await);
        assert_eq!(served(&state), ["a", "z"]);
    }
}
