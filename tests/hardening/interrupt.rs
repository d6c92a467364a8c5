//! SIGINT and SIGTERM during a long `sync`: no new request starts, the process exits promptly
//! with a non-zero status — even while a request hangs — and the next run converges. A second
//! signal exits at once.

use std::time::Duration;

use tfe_policy_sync::emulator::{Fault, Faults};

use crate::support::cli::{Cmd, PolicyDir};
use crate::support::emulator::{start_with, unlimited};
use crate::support::hardening::{Proc, assert_converged, mutations, poll_until};

/// Far more than "a few seconds", far less than the 30 s request timeout: only a process that
/// waits for a hung request, or ignores the signal, reaches it.
const PROMPTLY: Duration = Duration::from_secs(10);

/// Whether a request is hung on the emulator (logged with status 0).
fn hung(server: &tfe_policy_sync::emulator::Running) -> bool {
    server.emulator.requests().iter().any(|r| r.status == 0)
}

async fn converge(server: &tfe_policy_sync::emulator::Running, dir: &PolicyDir) {
    server.emulator.set_latency(Duration::ZERO);
    server.emulator.set_faults(Faults::default());
    server.emulator.release_hung();
    let run = Cmd::against(server, "sync", dir.path()).run().await;
    assert_eq!(
        run.code,
        Some(0),
        "the run after the interruption: {run:#?}"
    );
    assert_converged(server, dir.path());
}

#[tokio::test]
async fn a_signal_during_a_long_sync_stops_it_promptly_and_the_next_run_converges() {
    for signal in ["INT", "TERM"] {
        let mut config = unlimited();
        // 200 policies, 2 at a time, 50 ms each: about 10 s of work if nothing stopped it.
        config.latency = Duration::from_millis(50);
        let server = start_with(config).await;
        let dir = PolicyDir::generated(200);

        let sync =
            Proc::spawn(Cmd::against(&server, "sync", dir.path()).args(["--concurrency", "2"]));
        poll_until("a few changes", || mutations(&server) >= 6).await;
        let answered_before = server.emulator.requests().len();
        sync.signal(signal);
        let exit = sync
            .wait_within(PROMPTLY)
            .await
            .unwrap_or_else(|e| panic!("SIG{signal}: {e}"));
        assert_eq!(exit.run.code, Some(1), "SIG{signal}: {:#?}", exit.run);
        assert!(
            exit.run.stderr.contains("interrupted"),
            "SIG{signal}: {}",
            exit.run.stderr
        );
        // The two requests in flight may finish; no new one starts. (Twice the concurrency:
        // the signal is handled a moment after `kill` returns.)
        let answered_after = server.emulator.requests().len() - answered_before;
        assert!(
            answered_after <= 4,
            "SIG{signal}: {answered_after} requests were answered after the signal"
        );
        converge(&server, &dir).await;
    }
}

#[tokio::test]
async fn a_signal_while_a_request_hangs_still_exits_promptly() {
    let server = start_with(unlimited()).await;
    let dir = PolicyDir::generated(5);
    // The service stops answering changes: without a bound, the process would wait for the
    // hung request until its timeout.
    server.emulator.set_faults(Faults {
        hang: Fault::rate(1.0).mutating(),
        ..Faults::default()
    });
    let sync = Proc::spawn(Cmd::against(&server, "sync", dir.path()));
    poll_until("a hung request", || hung(&server)).await;
    sync.signal("INT");
    let exit = sync
        .wait_within(PROMPTLY)
        .await
        .unwrap_or_else(|e| panic!("bug: a hung request kept an interrupted sync alive: {e}"));
    assert_eq!(exit.run.code, Some(1), "{:#?}", exit.run);
    assert!(
        exit.run.stderr.contains("interrupted"),
        "{}",
        exit.run.stderr
    );
    converge(&server, &dir).await;
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let server = start_with(unlimited()).await;
    let dir = PolicyDir::generated(5);
    server.emulator.set_faults(Faults {
        hang: Fault::rate(1.0).mutating(),
        ..Faults::default()
    });
    let sync = Proc::spawn(Cmd::against(&server, "sync", dir.path()));
    poll_until("a hung request", || hung(&server)).await;
    sync.signal("INT");
    poll_until("the first signal to be acknowledged", || {
        sync.stderr_so_far().contains("interrupted")
    })
    .await;
    sync.signal("INT");
    let exit = sync
        .wait_within(PROMPTLY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(exit.run.code, Some(130), "{:#?}", exit.run);
    converge(&server, &dir).await;
}
