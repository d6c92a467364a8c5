//! Hardening: the real binary against an in-process emulator (or a stub service) when things
//! go wrong — injected 5xx before and after applying, SIGKILL at chosen moments, two syncs
//! racing, SIGINT/SIGTERM mid-run, hung requests — and the secrecy of the token in every output.
//! Each test is bounded by generous deadlines that only a hang reaches; none measures time.
//!
//! The README's "Guarantees" section points at these tests by name.

mod crash;
mod faults;
mod interrupt;
mod output;
mod race;
mod secrets;
mod timeouts;

use tfe_policy_sync::emulator::Running;
use tfe_policy_sync::model::Mode;

use crate::support::emulator::ORG;

/// What [`seed_drift`] put in the organization before a sync.
pub struct Seeded {
    /// Policies the manifest lists, by name: their ids must survive every run.
    pub listed: Vec<(String, String)>,
    /// Policies the manifest does not list: the only ones a sync may delete.
    pub extras: Vec<String>,
}

/// Seeds the organization for a `PolicyDir::generated(n)` manifest (n ≥ 4) with every kind of
/// drift: `policy-000` in the wrong mode, `policy-001` with other code, `policy-002` created but
/// never uploaded, `policy-003` in sync, and three policies the manifest does not list.
pub fn seed_drift(server: &Running) -> Seeded {
    let e = &server.emulator;
    let code = |name: &str| crate::support::cli::code_for(name).into_bytes();
    let listed = vec![
        (
            "policy-000",
            e.insert_policy(ORG, "policy-000", Mode::Advisory, Some(&code("policy-000"))),
        ),
        (
            "policy-001",
            e.insert_policy(
                ORG,
                "policy-001",
                Mode::SoftMandatory,
                Some(b"main = rule { false }\n"),
            ),
        ),
        (
            "policy-002",
            e.insert_policy(ORG, "policy-002", Mode::Advisory, None),
        ),
        (
            "policy-003",
            e.insert_policy(
                ORG,
                "policy-003",
                Mode::HardMandatory,
                Some(&code("policy-003")),
            ),
        ),
    ];
    let extras = ["extra-a", "extra-b", "extra-c"]
        .iter()
        .map(|name| e.insert_policy(ORG, name, Mode::Advisory, Some(b"main = rule { true }\n")))
        .collect();
    Seeded {
        listed: listed
            .into_iter()
            .map(|(n, id)| (n.to_owned(), id))
            .collect(),
        extras,
    }
}

impl Seeded {
    /// No listed policy was deleted (by any request in the log) and each still has its id;
    /// every deletion targeted a policy the manifest does not list.
    #[track_caller]
    pub fn assert_listed_policies_survived(&self, server: &Running) {
        let deleted = crate::support::hardening::deleted_ids(server);
        for id in &deleted {
            assert!(
                self.extras.contains(id),
                "DELETE of {id}, which is not one of the unlisted policies {:?}; listed: {:?}",
                self.extras,
                self.listed
            );
        }
        let remote = crate::support::hardening::remote_by_name(server);
        for (name, id) in &self.listed {
            let now = remote.get(name).map(|p| p.id.as_str());
            assert_eq!(now, Some(id.as_str()), "{name} was deleted or replaced");
        }
    }
}
