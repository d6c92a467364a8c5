//! A reader that goes away (`tfe-policy-sync plan | head -1`, a CI step killed mid-log) makes
//! writing to stdout fail: that is an error with a message and exit status 1, never a panic.
//! A stderr that cannot be written (a closed log pipe) loses the messages, never the exit
//! status: the command still exits as it would have, not 101.

use std::os::unix::net::UnixStream;
use std::process::Stdio;

use crate::support::cli::{Cmd, PolicyDir, Run};
use crate::support::emulator::{start_with, unlimited};

/// Runs `cmd` with a stdout whose reader is already gone: every write fails with EPIPE.
async fn with_closed_stdout(mut cmd: Cmd) -> Run {
    let (ours, theirs) = UnixStream::pair().expect("a socket pair");
    drop(ours);
    let out = cmd
        .command()
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        // Not `output()`: tokio's would replace stdout with a pipe of its own.
        .spawn()
        .expect("the binary runs")
        .wait_with_output()
        .await
        .expect("the binary ends");
    Run {
        code: out.status.code(),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn a_closed_stdout_is_an_error_not_a_panic() {
    let server = start_with(unlimited()).await;
    let dir = PolicyDir::generated(2);
    let dir_arg = dir.path().to_str().unwrap();
    for (what, cmd) in [
        // Bug (fixed): `validate` printed with `println!`, which panics on a closed stdout.
        ("validate", Cmd::new(&["validate", "--dir", dir_arg])),
        ("plan", Cmd::against(&server, "plan", dir.path())),
        ("sync", Cmd::against(&server, "sync", dir.path())),
    ] {
        let run = with_closed_stdout(cmd).await;
        assert!(!run.stderr.contains("panicked"), "{what}: {}", run.stderr);
        assert_eq!(run.code, Some(1), "{what}: {run:#?}");
        assert!(run.stderr.contains("error:"), "{what}: {}", run.stderr);
    }
}

/// Runs `cmd` with a stderr whose reader is already gone: every write fails with EPIPE. (Not
/// a closed descriptor: Rust's runtime reopens a closed fd 2 on /dev/null at start.)
async fn with_closed_stderr(mut cmd: Cmd) -> Option<i32> {
    let (ours, theirs) = UnixStream::pair().expect("a socket pair");
    drop(ours);
    let status = cmd
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .status()
        .await
        .expect("the binary runs");
    status.code()
}

/// Bug (audit, MED): errors and log lines were written with `eprintln!` and a tracing
/// subscriber that reports its own write failures with `eprintln!`; both panic when stderr
/// is gone, turning every exit status into 101.
#[tokio::test]
async fn a_closed_stderr_keeps_the_exit_status_and_never_panics() {
    let server = start_with(unlimited()).await;
    let dir = PolicyDir::generated(1);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let cases = [
        // `error: the policy directory ... is invalid` through `eprintln!`.
        (
            "validate of a missing directory",
            Cmd::new(&["validate", "--dir", "/nonexistent/policies"]),
            1,
        ),
        // `error: ...` from main, after a warning-level log line.
        (
            "sync with a rejected token",
            Cmd::against(&server, "sync", dir.path())
                .env("TFE_TOKEN", "wrong")
                .arg("-vv"),
            1,
        ),
        // Log lines at info and an error through tracing only.
        (
            "watch that cannot bind --listen",
            Cmd::against(&server, "watch", dir.path()).args(["--listen", &taken]),
            1,
        ),
        // A success that logs (debug lines on stderr) still exits 0.
        (
            "plan -vv",
            Cmd::against(&server, "plan", dir.path()).arg("-vv"),
            0,
        ),
    ];
    for (what, cmd, code) in cases {
        assert_eq!(with_closed_stderr(cmd).await, Some(code), "{what}");
    }
}
