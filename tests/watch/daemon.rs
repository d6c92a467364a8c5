//! Helpers for the `watch` tests: a policy directory in a temp dir, the real binary running as a
//! daemon against an emulator, its log lines, and polling with a generous deadline.
//!
//! Polling is not timing: a check waits up to [`DEADLINE`] for a state the daemon must reach,
//! and passes as soon as it is there. A slow machine makes a test slower, never red.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tfe_policy_sync::emulator::{Running, StoredPolicy};

use crate::support::emulator::{ORG, TOKEN};

/// How long a test waits for the daemon to reach a state before failing.
pub const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

/// Waits until `check` returns `Some`, polling every 50 ms up to [`DEADLINE`].
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "gave up after {DEADLINE:?} waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A policy directory in a temporary directory.
pub struct PolicyDir {
    pub tmp: tempfile::TempDir,
}

impl PolicyDir {
    /// A directory whose manifest lists `policies` (name, mode) and whose code files hold
    /// `code` for each.
    pub fn new(policies: &[(&str, &str, &str)]) -> Self {
        let dir = PolicyDir {
            tmp: tempfile::tempdir().expect("a temp dir"),
        };
        for (name, _, code) in policies {
            dir.write(&format!("{name}.sentinel"), code);
        }
        dir.write("policies.yaml", &manifest(policies));
        dir
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Writes in place (truncate and write), like a simple editor.
    pub fn write(&self, rel: &str, content: &str) {
        let path = self.file(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create the parent directory");
        }
        std::fs::write(path, content).expect("write a policy file");
    }

    /// Writes a temp file beside the target and renames it over the target, as most editors
    /// and `git checkout` do.
    pub fn write_atomically(&self, rel: &str, content: &str) {
        let tmp = self.file(&format!(".{rel}.tmp-save"));
        std::fs::write(&tmp, content).expect("write the temp file");
        std::fs::rename(&tmp, self.file(rel)).expect("rename over the target");
    }
}

/// A manifest listing `policies` (name, mode, _code).
pub fn manifest(policies: &[(&str, &str, &str)]) -> String {
    let mut yaml = String::from("policies:\n");
    for (name, mode, _) in policies {
        yaml.push_str(&format!("  - name: {name}\n    mode: {mode}\n"));
    }
    yaml
}

/// The real binary running `watch`, its stderr collected line by line.
pub struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    _token_dir: tempfile::TempDir,
}

/// Options for [`Daemon::start`] beyond the connection.
pub struct Opts<'a> {
    pub interval: &'a str,
    pub debounce: &'a str,
    pub extra: &'a [&'a str],
    pub token: &'a str,
    pub organization: &'a str,
    pub listen: bool,
    /// `RUST_LOG` for the daemon; the tests read its info lines (reconciles, actions, the
    /// listen address).
    pub rust_log: &'a str,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            // Long enough that the timer never fires in a test unless a test wants it to.
            interval: "1h",
            debounce: "100ms",
            extra: &[],
            token: TOKEN,
            organization: ORG,
            listen: true,
            rust_log: "info",
        }
    }
}

impl Daemon {
    pub fn start(emulator: &Running, dir: &Path, opts: Opts<'_>) -> Daemon {
        Daemon::start_at(&emulator.base_url(), dir, opts)
    }

    /// The daemon for the service at `address`, which need not be up.
    pub fn start_at(address: &str, dir: &Path, opts: Opts<'_>) -> Daemon {
        let token_dir = tempfile::tempdir().expect("a temp dir for the token");
        let token_file = token_dir.path().join("token");
        std::fs::write(&token_file, opts.token).expect("write the token file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tfe-policy-sync"));
        cmd.arg("watch")
            .arg("--dir")
            .arg(dir)
            .args(["--address", address])
            .args(["--organization", opts.organization])
            .arg("--token-file")
            .arg(&token_file)
            .args(["--interval", opts.interval])
            .args(["--debounce", opts.debounce]);
        if opts.listen {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(opts.extra)
            .env("RUST_LOG", opts.rust_log)
            .env_remove("TFE_TOKEN")
            .env_remove("TFE_ADDRESS")
            .env_remove("TFE_ORGANIZATION")
            .env_remove("TFE_HOSTNAME")
            .env("HOME", token_dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn tfe-policy-sync watch");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Daemon {
            child,
            lines,
            _token_dir: token_dir,
        }
    }

    /// Every stderr line so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn log_text(&self) -> String {
        self.log().join("\n")
    }

    /// How many log lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits for a log line containing every one of `needles`, and returns it.
    pub async fn wait_for_line(&self, needles: &[&str]) -> String {
        let what = format!("a log line with {needles:?}");
        let lines = self.lines.clone();
        eventually(&what, || {
            lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .cloned()
        })
        .await
    }

    /// Waits until at least `n` log lines contain `needle`.
    pub async fn wait_for_count(&self, needle: &str, n: usize) {
        let what = format!("{n} log lines with {needle:?}");
        eventually(&what, || (self.count(needle) >= n).then_some(())).await
    }

    /// The `http://127.0.0.1:PORT` the health server announced.
    pub async fn health_url(&self) -> String {
        let line = self.wait_for_line(&["serving /healthz"]).await;
        let start = line.find("http://").expect("the line names the address");
        line[start..]
            .split_whitespace()
            .next()
            .expect("an address")
            .trim_end_matches([',', ';', '.'])
            .to_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. "TERM", "INT") to the daemon.
    pub fn signal(&self, signal: &str) {
        crate::support::send_signal(self.pid(), signal);
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let child = &mut self.child;
        eventually("the daemon to exit", || child.try_wait().expect("try_wait")).await
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The emulator's policies of the default organization, by name.
pub fn remote(emulator: &Running) -> std::collections::BTreeMap<String, StoredPolicy> {
    emulator
        .emulator
        .policies(ORG)
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect()
}

/// Waits until the organization holds exactly `policies` (name, mode, code).
pub async fn converged(emulator: &Running, policies: &[(&str, &str, &str)]) {
    let what = format!("the organization to hold exactly {policies:?}");
    eventually(&what, || {
        let have = remote(emulator);
        let same = have.len() == policies.len()
            && policies.iter().all(|(name, mode, code)| {
                have.get(*name).is_some_and(|p| {
                    p.mode.as_str() == *mode && p.code.as_deref() == Some(code.as_bytes())
                })
            });
        same.then_some(())
    })
    .await
}

/// GET `url`, returning the status and the body.
pub async fn http_get(url: &str) -> (u16, String) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client")
        .get(url)
        .send()
        .await
        .expect("the health server answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text body"))
}

/// Waits until GET `url` answers `status`.
pub async fn wait_for_status(url: &str, status: u16) {
    let start = Instant::now();
    loop {
        let (got, body) = http_get(url).await;
        if got == status {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "gave up after {DEADLINE:?} waiting for {url} to answer {status}; last: {got} {body}"
        );
        tokio::time::sleep(POLL).await;
    }
}
