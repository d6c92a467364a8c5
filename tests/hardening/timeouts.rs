//! Every request has a total timeout, so a service that stops answering cannot hang `sync`: a
//! hung request is cut and retried, and a service that never answers ends the run with an
//! error. (`--request-timeout` is a hidden flag; the default is 30 s. The client's own tests
//! cover the timeout against a server that accepts and never answers.)

use tfe_policy_sync::emulator::{Fault, Faults};

use crate::support::cli::{Cmd, PolicyDir};
use crate::support::emulator::{start_with, unlimited};
use crate::support::hardening::{Proc, assert_converged};

#[tokio::test]
async fn a_hung_request_is_cut_by_the_timeout_and_retried() {
    let mut config = unlimited();
    // The first two changes hang before they are applied: both are cut and sent again.
    config.faults = Faults {
        hang: Fault::next(2).mutating(),
        ..Faults::default()
    };
    let server = start_with(config).await;
    let dir = PolicyDir::generated(3);
    let run =
        Proc::spawn(Cmd::against(&server, "sync", dir.path()).args(["--request-timeout", "500ms"]))
            .wait()
            .await;
    assert_eq!(run.run.code, Some(0), "{:#?}", run.run);
    let hung = server
        .emulator
        .requests()
        .iter()
        .filter(|r| r.status == 0)
        .count();
    assert_eq!(hung, 2, "two requests hung and were retried");
    assert_converged(&server, dir.path());
}

#[tokio::test]
async fn a_service_that_never_answers_ends_the_sync_with_an_error() {
    let mut config = unlimited();
    config.faults = Faults {
        hang: Fault::rate(1.0),
        ..Faults::default()
    };
    let server = start_with(config).await;
    let dir = PolicyDir::generated(1);
    // Bounded by the guard of `wait`: the attempts and their backoff, never forever.
    let exit = Proc::spawn(Cmd::against(&server, "sync", dir.path()).args([
        "--request-timeout",
        "200ms",
        "--max-retries",
        "2",
    ]))
    .wait()
    .await;
    assert_eq!(exit.run.code, Some(1), "{:#?}", exit.run);
    assert!(
        exit.run
            .stderr
            .contains("no complete response within 200ms"),
        "{}",
        exit.run.stderr
    );
    assert!(server.emulator.requests().iter().all(|r| !r.is_mutating()));
    assert_eq!(
        server.emulator.requests().len(),
        3,
        "one try and two retries of the first list page"
    );
}
