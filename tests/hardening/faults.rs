//! A flaky service: 503s before acting and 502s after applying (the lost response), on a
//! single `sync` of 60 policies with every kind of drift, for several fault sequences.

use tfe_policy_sync::emulator::{Fault, Faults};

use super::seed_drift;
use crate::support::cli::{Cmd, PolicyDir};
use crate::support::emulator::{start_with, unlimited};
use crate::support::hardening::{assert_converged, remote_by_name};

/// One sync under faults drawn from `seed`; returns the seed's report on failure.
async fn sync_under_faults(seed: u64) {
    let server = start_with(unlimited()).await;
    let dir = PolicyDir::generated(60);
    let seeded = seed_drift(&server);
    let to_create = 60 - seeded.listed.len();
    server.emulator.set_faults(Faults {
        before: Fault::rate(0.2),
        after: Fault::rate(0.1).mutating(),
        seed,
        ..Faults::default()
    });

    let run = Cmd::against(&server, "sync", dir.path())
        .args(["--output", "json"])
        .run()
        .await;
    server.emulator.set_faults(Faults::default());
    assert_eq!(run.code, Some(0), "seed {seed}: {run:#?}");
    assert!(
        run.json()["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "ok"),
        "seed {seed}: {}",
        run.stdout
    );

    let log = server.emulator.requests();
    let injected = log.iter().filter(|r| matches!(r.status, 502 | 503)).count();
    assert!(injected > 0, "seed {seed}: no fault was injected");
    assert_converged(&server, dir.path());
    seeded.assert_listed_policies_survived(&server);
    // No duplicate, not even a transient one: every create the service applied (200, or 502
    // after applying) made one of the missing policies, once.
    let applied_creates = log
        .iter()
        .filter(|r| r.method == reqwest::Method::POST && matches!(r.status, 200 | 502))
        .count();
    assert_eq!(applied_creates, to_create, "seed {seed}: creates applied");
    assert_eq!(remote_by_name(&server).len(), 60);
}

#[tokio::test]
async fn one_sync_of_60_policies_converges_through_503s_and_lost_responses_without_duplicates() {
    // The runs mostly wait on backoff, so they share the test's time.
    futures::future::join_all([11, 23, 42].map(sync_under_faults)).await;
}
