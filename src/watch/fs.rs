//! The file source: native file events for the policy directory, bridged into tokio.
//!
//! The directory is watched, recursively, never single files: editors save by writing a temp
//! file and renaming it over the original, vim may remove and recreate, and a Kubernetes
//! ConfigMap volume swaps a `..data` symlink. All of these are events somewhere in the directory.
//! Events carry no information the daemon uses (each reconcile re-reads the whole directory), so
//! the bridge is a small bounded channel of `()` and a full channel drops the event: one queued
//! event already guarantees a reconcile.
//!
//! When the directory resolves somewhere new (a git-sync symlink swap), was removed and created
//! again, or could not be watched before, [`DirWatcher::ensure`] re-establishes the watch; it
//! is called at every reconcile.
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

/// Where a watch was set up: the path the directory resolved to, and which directory that
/// was. A directory removed and created again under the same path is another directory (the
/// old watch died with it), told apart by its device and inode numbers (unless the new one got
/// the old inode number back; the timer still converges then).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Watched {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Watched {
    fn of(dir: &Path) -> std::io::Result<Self> {
        let path = std::fs::canonicalize(dir)?;
        let meta = std::fs::metadata(&path)?;
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        // Elsewhere only the path tells directories apart.
        #[cfg(not(unix))]
        let (dev, ino) = {
            let _ = meta;
            (0, 0)
        };
        Ok(Watched { path, dev, ino })
    }
}

/// Watches one directory and sends `()` on `events` for every relevant change in it.
pub struct DirWatcher {
    dir: PathBuf,
    events: mpsc::Sender<()>,
    /// The live watch and the directory it was set up on.
    active: Option<(RecommendedWatcher, Watched)>,
    /// The last failure, so a persistent one is logged once, not every cycle.
    last_error: Option<String>,
}

impl std::fmt::Debug for DirWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatcher")
            .field("dir", &self.dir)
            .field("active", &self.active.as_ref().map(|(_, w)| &w.path))
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

    /// Starts the watch, or restarts it when the directory now resolves to another place or
    /// is another directory than the one watched. A failure is logged as a warning (once while
    /// it persists); the timer then carries on.
    pub fn ensure(&mut self) {
        let now = match Watched::of(&self.dir) {
            Ok(w) => w,
            Err(e) => {
                self.active = None;
                self.fail(format!("{}: {e}", self.dir.display()));
                return;
            }
        };
        if self.active.as_ref().is_some_and(|(_, w)| *w == now) {
            return;
        }
        match self.start(&now.path) {
            Ok(watcher) => {
                if self.active.is_some() {
                    tracing::info!(
                        dir = %self.dir.display(),
                        "the policy directory was replaced (it resolves to {}); watching it",
                        now.path.display()
                    );
                } else {
                    tracing::debug!(dir = %self.dir.display(), "watching the policy directory");
                }
                self.active = Some((watcher, now));
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

    /// Bug: a directory removed and created again under the same path (`rm -rf` and a fresh
    /// checkout between two reconciles) resolved to the same path, so `ensure` kept the dead
    /// watch of the old directory and only the timer reconciled from then on.
    #[tokio::test]
    async fn a_directory_removed_and_created_again_is_watched_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("policies");
        std::fs::create_dir(&dir).unwrap();
        let (tx, mut rx) = mpsc::channel(CHANNEL_CAPACITY);
        let mut w = DirWatcher::new(&dir, tx);
        w.ensure();
        assert!(w.is_active());
        // Moved away and removed only once the new one exists, so the new directory cannot
        // get the old one's inode number back (which would hide the replacement; the timer
        // still converges then).
        let old = tmp.path().join("policies.old");
        std::fs::rename(&dir, &old).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::remove_dir_all(&old).unwrap();
        w.ensure();
        while rx.try_recv().is_ok() {}
        std::fs::write(dir.join("policies.yaml"), "policies: []\n").unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv())
            .await
            .expect("a file event from the new directory within 20 s")
            .expect("the channel is open");
    }
}
