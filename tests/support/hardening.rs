//! Helpers for the hardening tests: the real binary spawned so a test can signal or kill it
//! mid-run, polling with generous deadlines (never a timed assertion), and checks that read the
//! emulator's state and request log against the policy directory itself.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tfe_policy_sync::emulator::{Running, StoredPolicy};
use tfe_policy_sync::manifest;
use tokio::io::AsyncReadExt;
use tokio::process::Child;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::cli::{Cmd, Run};
use super::emulator::ORG;

/// How often polling loops look again.
const POLL: Duration = Duration::from_millis(2);

/// A deadline that only a hung process or a broken promise can reach: it guards against
/// hanging the test suite, it measures nothing.
pub const GUARD: Duration = Duration::from_secs(60);

/// A running `tfe-policy-sync` whose output is collected as it comes (so a chatty `-vvvv` run
/// never blocks on a full pipe) and which can be signalled or killed.
pub struct Proc {
    child: Child,
    pid: u32,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    /// Keeps the command's temporary `HOME` alive as long as the process.
    _cmd: Cmd,
}

/// How a spawned process ended and what it printed.
#[derive(Debug)]
pub struct Exit {
    pub status: ExitStatus,
    pub run: Run,
}

impl Exit {
    /// Whether the process died of `signal` (e.g. 9 for SIGKILL).
    pub fn killed_by(&self, signal: i32) -> bool {
        self.status.signal() == Some(signal)
    }
}

fn collect(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr captured.
    pub fn spawn(mut cmd: Cmd) -> Proc {
        let mut child = cmd
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let pid = child.id().expect("a running child has a pid");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().expect("piped"), stdout.clone()),
            collect(child.stderr.take().expect("piped"), stderr.clone()),
        ];
        Proc {
            child,
            pid,
            stdout,
            stderr,
            readers,
            _cmd: cmd,
        }
    }

    /// Sends `signal` (`INT`, `TERM`, …), as a user or a CI runner would.
    pub fn signal(&self, signal: &str) {
        super::send_signal(self.pid, signal);
    }

    /// SIGKILL: no handler, no cleanup, exactly like a crash or an OOM kill.
    pub fn sigkill(&mut self) {
        self.child.start_kill().expect("SIGKILL is delivered");
    }

    /// What the process wrote to stdout so far.
    pub fn stdout_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits for the process to end; `Err` (after killing it) when it outlives `deadline`.
    pub async fn wait_within(mut self, deadline: Duration) -> Result<Exit, String> {
        let status = match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(status) => status.expect("waiting for the child works"),
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                return Err(format!(
                    "still running after {deadline:?}; stderr so far:\n{}",
                    self.stderr_so_far()
                ));
            }
        };
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
        let text =
            |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
        Ok(Exit {
            status,
            run: Run {
                code: status.code(),
                stdout: text(&self.stdout),
                stderr: text(&self.stderr),
            },
        })
    }

    /// Waits for the process to end within [`GUARD`]; panics otherwise.
    pub async fn wait(self) -> Exit {
        self.wait_within(GUARD)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Polls `cond` until it holds; panics with `what` after [`GUARD`].
pub async fn poll_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < GUARD, "gave up waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Mutating requests (POST, PUT, PATCH, DELETE) the emulator has answered so far.
pub fn mutations(server: &Running) -> usize {
    server
        .emulator
        .requests()
        .iter()
        .filter(|r| r.is_mutating())
        .count()
}

/// The ids of every `DELETE /api/v2/policies/:id` the emulator received.
pub fn deleted_ids(server: &Running) -> Vec<String> {
    server
        .emulator
        .requests()
        .iter()
        .filter(|r| r.method == reqwest::Method::DELETE)
        .filter_map(|r| r.path.strip_prefix("/api/v2/policies/").map(str::to_owned))
        .collect()
}

/// The organization's policies by name; panics on a duplicate name.
pub fn remote_by_name(server: &Running) -> BTreeMap<String, StoredPolicy> {
    let policies = server.emulator.policies(ORG);
    let count = policies.len();
    let by_name: BTreeMap<String, StoredPolicy> =
        policies.into_iter().map(|p| (p.name.clone(), p)).collect();
    assert_eq!(
        by_name.len(),
        count,
        "two policies share a name: {by_name:#?}"
    );
    by_name
}

/// The organization holds exactly the policies of `dir`, each with its mode and its code byte
/// for byte, and nothing else.
#[track_caller]
pub fn assert_converged(server: &Running, dir: &std::path::Path) {
    let desired = manifest::load(dir)
        .unwrap_or_else(|e| panic!("{} should load: {e}", dir.display()))
        .desired;
    let remote = remote_by_name(server);
    let wanted: Vec<&str> = desired.policies.keys().map(|n| n.as_str()).collect();
    let have: Vec<&str> = remote.keys().map(String::as_str).collect();
    assert_eq!(
        have, wanted,
        "the organization holds other policies than the manifest"
    );
    for (name, policy) in &desired.policies {
        let stored = &remote[name.as_str()];
        assert_eq!(stored.mode, policy.mode, "{name}: mode");
        assert_eq!(
            stored.code.as_deref(),
            Some(policy.code.as_slice()),
            "{name}: code"
        );
    }
}
