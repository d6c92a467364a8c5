//! A reader that goes away (`tfe-policy-sync plan | head -1`, a CI step killed mid-log) makes
//! writing to stdout fail: that is an error with a message and exit status 1, never a panic.

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
