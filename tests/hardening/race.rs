//! Two `sync` processes started at the same moment on the same organization: both exit 0 and
//! leave it converged. A create that lost the race to the other process is not an error, nor is
//! a deletion the other process made first.

use std::time::Duration;

use crate::support::cli::{Cmd, PolicyDir, code_for};
use crate::support::emulator::{start_with, unlimited};
use crate::support::hardening::{Proc, assert_converged};

/// Round `r` of the race: a window of 30 names that slides by 10 each round (creates and
/// deletions), modes that rotate (mode changes) and code that changes every other round.
fn round(r: usize) -> PolicyDir {
    let modes = ["hard-mandatory", "soft-mandatory", "advisory"];
    let mut manifest = String::from("policies:\n");
    let mut files = Vec::new();
    for i in (r * 10)..(r * 10 + 30) {
        let name = format!("policy-{i:03}");
        manifest.push_str(&format!(
            "  - name: {name}\n    mode: {}\n",
            modes[(i + r) % 3]
        ));
        files.push((
            format!("{name}.sentinel"),
            format!("{}# round {}\n", code_for(&name), r / 2),
        ));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    PolicyDir::new(&manifest, &files)
}

#[tokio::test]
async fn two_syncs_started_together_both_succeed_and_converge() {
    let mut config = unlimited();
    // Latency keeps both processes inside each other's list-then-act window (round 0's 30
    // creates take about 150 ms at 20 ms each, 8 at a time), even when a busy machine starts
    // the second process some tens of milliseconds after the first.
    config.latency = Duration::from_millis(20);
    let server = start_with(config).await;

    for r in 0..4 {
        let dir = round(r);
        let sync = || Proc::spawn(Cmd::against(&server, "sync", dir.path()));
        let (a, b) = (sync(), sync());
        let (a, b) = futures::join!(a.wait(), b.wait());
        assert_eq!(a.run.code, Some(0), "round {r}, first: {:#?}", a.run);
        assert_eq!(b.run.code, Some(0), "round {r}, second: {:#?}", b.run);
        assert_converged(&server, dir.path());
    }
    // The test raced for real: some create found its name already taken by the other process.
    let lost_races = server
        .emulator
        .requests()
        .iter()
        .filter(|r| r.method == reqwest::Method::POST && r.status == 422)
        .count();
    assert!(lost_races > 0, "the two syncs never raced for a create");
}
