//! The file source: native file events for the policy directory, bridged into tokio.
//!
//! The directory is watched, recursively, never single files: editors save by writing a temp
//! file and renaming it over the original, vim may remove and recreate, and a Kubernetes
//! ConfigMap volume swaps a `..data` symlink. All of these are events somewhere in the directory.
//! Events carry no information the daemon uses (each reconcile re-reads the whole directory), so
//! the bridge is a small bounded channel of `()` and a full channel drops the event: one queued
//! event already guarantees a reconcile.
//!
//! When the directory resolves somewhere new (a git-sync symlink swap) or could not be watched
//! before, [`DirWatcher::ensure`] re-establishes the watch; it is called at every reconcile.
//! Where native events do not work at all (some network filesystems), the timer still converges.

use std::path::{Path, PathBuf};

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Room for a few events; more are pointless (see the module docs).
pub const CHANNEL_CAPACITY: usize = 16;

/// Editor scratch files that change while someone merely has a file open (vim writes its swap
/// file every few seconds). They never affect the snapshot, so they do not trigger a reconcile.
fn is_scratch(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".swo")
        || name.ends_with('~')
        || name.starts_with(".#")
        || name == "4913"
}

/// Whether a native event may mean the directory's contents changed.
pub fn is_relevant(event: &Event) -> bool {
    if event.need_rescan() {
        return true;
    }
    if matches!(event.kind, EventKind::Access(_)) {
        return false;
    }
    event.paths.is_empty() || event.paths.iter().any(|p| !is_scratch(p))
}

/// Watches one directory and sends `()` on `events` for every relevant change in it.
pub struct DirWatcher {
    dir: PathBuf,
    events: mpsc::Sender<()>,
    /// The live watch and the path it resolved to when it was set up.
    active: Option<(RecommendedWatcher, PathBuf)>,
    /// The last failure, so a persistent one is logged once, not every cycle.
    last_error: Option<String>,
}

impl std::fmt::Debug for DirWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatcher")
            .field("dir", &self.dir)
            .field("active", &self.active.as_ref().map(|(_, p)| p))
            .finish()
    }
}

impl DirWatcher {
    /// Prepares a watch of `dir`; nothing is watched until [`DirWatcher::ensure`].
    pub fn new(dir: impl Into<PathBuf>, events: mpsc::Sender<()>) -> Self {
        DirWatcher {
            dir: dir.into(),
            events,
            active: None,
            last_error: None,
        }
    }

    /// Whether native events are flowing.
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// Starts the watch, or restarts it when the directory now resolves to another place.
    /// A failure is logged as a warning (once while it persists); the timer then carries on.
    pub fn ensure(&mut self) {
        let resolved = match std::fs::canonicalize(&self.dir) {
            Ok(p) => p,
            Err(e) => {
                self.active = None;
                self.fail(format!("{}: {e}", self.dir.display()));
                return;
            }
        };
        if self.active.as_ref().is_some_and(|(_, p)| *p == resolved) {
            return;
        }
        match self.start(&resolved) {
            Ok(watcher) => {
                if self.active.is_some() {
                    tracing::info!(
                        dir = %self.dir.display(),
                        "the policy directory now resolves to {}; watching it",
                        resolved.display()
                    );
                } else {
                    tracing::debug!(dir = %self.dir.display(), "watching the policy directory");
                }
                self.active = Some((watcher, resolved));
                self.last_error = None;
            }
            Err(e) => {
                self.active = None;
                self.fail(e.to_string());
            }
        }
    }

    fn fail(&mut self, message: String) {
        if self.last_error.as_deref() != Some(message.as_str()) {
            tracing::warn!(
                dir = %self.dir.display(),
                "cannot watch the policy directory for changes ({message}); reconciling on \
                 the --interval timer only until it can be watched"
            );
            self.last_error = Some(message);
        }
    }

    fn start(&self, resolved: &Path) -> notify::Result<RecommendedWatcher> {
        let events = self.events.clone();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
            let relevant = match &res {
                Ok(event) => is_relevant(event),
                // An error (an overflowed event queue, say) may hide a change: reconcile.
                Err(e) => {
                    tracing::debug!("file watcher error: {e}");
                    true
                }
            };
            if relevant {
                if let Ok(event) = &res {
                    tracing::trace!(kind = ?event.kind, paths = ?event.paths, "file event");
                }
                // Full: a reconcile is already due. Closed: the daemon is shutting down.
                let _ = events.try_send(());
            }
        })?;
        watcher.watch(resolved, RecursiveMode::Recursive)?;
        Ok(watcher)
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, CreateKind, ModifyKind, RenameMode};

    use super::*;

    fn event(kind: EventKind, paths: &[&str]) -> Event {
        paths
            .iter()
            .fold(Event::new(kind), |e, p| e.add_path(PathBuf::from(p)))
    }

    #[test]
    fn opening_or_reading_a_file_is_not_a_change() {
        let e = event(EventKind::Access(AccessKind::Any), &["/p/policies.yaml"]);
        assert!(!is_relevant(&e));
    }

    #[test]
    fn an_atomic_save_is_a_change() {
        let rename = event(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &["/p/.policies.yaml.tmp123", "/p/policies.yaml"],
        );
        assert!(is_relevant(&rename));
        let create = event(EventKind::Create(CreateKind::File), &["/p/..data_tmp"]);
        assert!(is_relevant(&create));
    }

    #[test]
    fn editor_swap_files_are_not_changes() {
        for scratch in [
            "/p/.a.sentinel.swp",
            "/p/a.sentinel~",
            "/p/4913",
            "/p/.#a.sentinel",
        ] {
            let e = event(EventKind::Modify(ModifyKind::Any), &[scratch]);
            assert!(!is_relevant(&e), "{scratch}");
        }
    }

    #[tokio::test]
    async fn a_missing_directory_is_reported_and_watched_once_it_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("later");
        let (tx, mut rx) = mpsc::channel(CHANNEL_CAPACITY);
        let mut w = DirWatcher::new(&dir, tx);
        w.ensure();
        assert!(!w.is_active());
        std::fs::create_dir(&dir).unwrap();
        w.ensure();
        assert!(w.is_active());
        std::fs::write(dir.join("policies.yaml"), "policies: []\n").unwrap();
        // Real file events: wait for the first one, with a generous bound so a slow machine
        // cannot fail the test.
        tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv())
            .await
            .expect("a file event within 20 s")
            .expect("the channel is open");
    }
}
