//! The planner: a pure function from the desired state (the policy directory) and the actual
//! state (the organization) to the list of changes that make them equal.
//!
//! No I/O happens here, so every rule — prune, `ignore:` globs, the empty-manifest guard, the
//! order of changes — is unit-tested with plain values, and a property test checks that applying
//! a plan and planning again yields nothing.

use std::collections::BTreeSet;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::model::{ActualState, DesiredState, Mode, PolicyId, PolicyName, RemoteCode};

/// Knobs that shape a plan beyond the two states.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Delete remote policies that the manifest does not list.
    pub prune: bool,
    /// Remote names that are never created, changed or deleted.
    pub ignore: GlobSet,
    /// Permit a plan that deletes every remote policy (not ignored): one whose manifest lists
    /// none, or lists none that exists on the service.
    pub allow_empty: bool,
}

impl PlanOptions {
    /// Options from the manifest (`prune:`, `ignore:`) and the command line.
    pub fn new(
        desired: &DesiredState,
        no_prune: bool,
        allow_empty: bool,
    ) -> Result<Self, PlanError> {
        let mut globs = GlobSetBuilder::new();
        for pattern in &desired.ignore {
            let glob = Glob::new(pattern).map_err(|source| PlanError::BadIgnoreGlob {
                pattern: pattern.clone(),
                reason: source.kind().to_string(),
            })?;
            globs.add(glob);
        }
        let ignore = globs.build().map_err(|source| PlanError::BadIgnoreGlob {
            pattern: desired.ignore.join(", "),
            reason: source.kind().to_string(),
        })?;
        Ok(PlanOptions {
            prune: desired.prune && !no_prune,
            ignore,
            allow_empty,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "refusing to delete {count} remote {policies} because the manifest lists no policies \
         (an empty or half-written policies.yaml must never wipe an organization)\n  \
         help: if you really mean to delete every policy, pass --allow-empty",
        policies = if *count == 1 { "policy" } else { "policies" }
    )]
    EmptyManifestWouldDelete { count: usize },
    #[error(
        "refusing to delete {count} remote {policies}, every policy the organization holds \
         (ignored ones aside): none of the {listed} {listed_policies} in policies.yaml matches a \
         policy on the service, so this plan would replace the organization's policies wholesale \
         (a wrong --dir or a typo in policies.yaml must never wipe an organization)\n  \
         help: check --dir and the names in policies.yaml; pass --no-prune to create and update \
         without deleting, or --allow-empty if you really mean to delete every remote policy",
        policies = if *count == 1 { "policy" } else { "policies" },
        listed_policies = if *listed == 1 { "policy" } else { "policies" }
    )]
    WouldDeleteEveryPolicy { count: usize, listed: usize },
    #[error("invalid ignore glob {pattern:?}: {reason}")]
    BadIgnoreGlob { pattern: String, reason: String },
}

/// What a change does to one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Create the policy, then upload its code.
    Create,
    /// Change the mode and/or upload new code.
    Update,
    /// Delete the remote policy.
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// One planned change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Create {
        name: PolicyName,
        mode: Mode,
        code: Vec<u8>,
    },
    Update {
        name: PolicyName,
        id: PolicyId,
        mode_from: Mode,
        mode_to: Mode,
        /// `Some` when the code must be uploaded: `from` is the remote code (`Missing` when none
        /// was ever uploaded) and `to` the local code.
        code: Option<CodeChange>,
    },
    Delete {
        name: String,
        id: PolicyId,
        mode: Mode,
        code: RemoteCode,
    },
}

/// New code for a policy that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChange {
    pub from: RemoteCode,
    pub to: Vec<u8>,
}

impl Change {
    pub fn name(&self) -> &str {
        match self {
            Change::Create { name, .. } | Change::Update { name, .. } => name.as_str(),
            Change::Delete { name, .. } => name,
        }
    }

    pub fn action(&self) -> Action {
        match self {
            Change::Create { .. } => Action::Create,
            Change::Update { .. } => Action::Update,
            Change::Delete { .. } => Action::Delete,
        }
    }

    /// The mode before and after (`None` where the policy does not exist).
    pub fn modes(&self) -> (Option<Mode>, Option<Mode>) {
        match self {
            Change::Create { mode, .. } => (None, Some(*mode)),
            Change::Update {
                mode_from, mode_to, ..
            } => (Some(*mode_from), Some(*mode_to)),
            Change::Delete { mode, .. } => (Some(*mode), None),
        }
    }

    /// The code before and after, as bytes (`None` where there is none).
    pub fn code(&self) -> (Option<&[u8]>, Option<&[u8]>) {
        match self {
            Change::Create { code, .. } => (None, Some(code)),
            Change::Update { code: Some(c), .. } => (c.from.bytes(), Some(&c.to)),
            Change::Update { code: None, .. } => (None, None),
            Change::Delete { code, .. } => (code.bytes(), None),
        }
    }

    /// Whether code is uploaded (create, or an update with new code).
    pub fn code_changed(&self) -> bool {
        match self {
            Change::Create { .. } => true,
            Change::Update { code, .. } => code.is_some(),
            Change::Delete { .. } => false,
        }
    }
}

/// The changes that make the organization equal to the policy directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub organization: String,
    /// Creates, then updates, then deletes; by name within each.
    pub changes: Vec<Change>,
    /// Policies in both places and already equal.
    pub unchanged: Vec<String>,
    /// Remote policies left alone because an `ignore:` glob matches them (or would match a local
    /// one of the same name).
    pub ignored: Vec<String>,
    /// Remote policies not in the manifest that stay because pruning is off.
    pub kept: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action() == action).count()
    }
}

/// Plans the changes that make `actual` equal to `desired`.
pub fn plan(
    organization: &str,
    desired: &DesiredState,
    actual: &ActualState,
    options: &PlanOptions,
) -> Result<Plan, PlanError> {
    let mut changes = Vec::new();
    let mut unchanged = Vec::new();
    let mut ignored = BTreeSet::new();
    let mut kept = Vec::new();

    for (name, want) in &desired.policies {
        if options.ignore.is_match(name.as_str()) {
            ignored.insert(name.to_string());
            continue;
        }
        match actual.policies.get(name.as_str()) {
            None => changes.push(Change::Create {
                name: name.clone(),
                mode: want.mode,
                code: want.code.clone(),
            }),
            Some(have) => {
                let code = match &have.code {
                    RemoteCode::Present(bytes) if *bytes == want.code => None,
                    other => Some(CodeChange {
                        from: other.clone(),
                        to: want.code.clone(),
                    }),
                };
                if code.is_none() && have.mode == want.mode {
                    unchanged.push(name.to_string());
                } else {
                    changes.push(Change::Update {
                        name: name.clone(),
                        id: have.id.clone(),
                        mode_from: have.mode,
                        mode_to: want.mode,
                        code,
                    });
                }
            }
        }
    }

    for (name, have) in &actual.policies {
        if desired.policies.contains_key(name.as_str()) {
            continue;
        }
        if options.ignore.is_match(name) {
            ignored.insert(name.clone());
        } else if options.prune {
            changes.push(Change::Delete {
                name: name.clone(),
                id: have.id.clone(),
                mode: have.mode,
                code: have.code.clone(),
            });
        } else {
            kept.push(name.clone());
        }
    }

    let deletes = changes
        .iter()
        .filter(|c| c.action() == Action::Delete)
        .count();
    if deletes > 0 && !options.allow_empty {
        // Listed and managed: an entry that an `ignore:` glob matches manages nothing.
        let listed = desired
            .policies
            .keys()
            .filter(|n| !options.ignore.is_match(n.as_str()))
            .count();
        if listed == 0 {
            return Err(PlanError::EmptyManifestWouldDelete { count: deletes });
        }
        // Remote policies the manifest lists (ignored ones aside) are either unchanged or
        // updated; when there are none, every remote policy not ignored is about to go: the
        // manifest lists only names the service does not know (a wrong --dir, a typo, a
        // wholesale rename). That is the empty manifest's danger, guarded the same way.
        let survivors = unchanged.len()
            + changes
                .iter()
                .filter(|c| c.action() == Action::Update)
                .count();
        if survivors == 0 {
            return Err(PlanError::WouldDeleteEveryPolicy {
                count: deletes,
                listed,
            });
        }
    }

    // Both maps iterate by name, so a stable sort by action keeps names in order within each.
    changes.sort_by_key(Change::action);
    Ok(Plan {
        organization: organization.to_owned(),
        changes,
        unchanged,
        ignored: ignored.into_iter().collect(),
        kept,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::model::{DesiredPolicy, RemotePolicy};

    fn desired(policies: &[(&str, Mode, &str)]) -> DesiredState {
        DesiredState {
            organization: None,
            prune: true,
            ignore: vec![],
            policies: policies
                .iter()
                .map(|(n, m, c)| {
                    let name = PolicyName::new(*n).unwrap();
                    (
                        name.clone(),
                        DesiredPolicy {
                            name,
                            mode: *m,
                            file: format!("{n}.sentinel"),
                            code: c.as_bytes().to_vec(),
                        },
                    )
                })
                .collect(),
        }
    }

    fn remote(name: &str, mode: Mode, code: Option<&str>) -> RemotePolicy {
        RemotePolicy {
            id: PolicyId(format!("pol-{name}")),
            name: name.to_owned(),
            mode,
            updated_at: code.map(|_| "2026-01-01T00:00:00.000Z".to_owned()),
            code: match code {
                Some(c) => RemoteCode::Present(c.as_bytes().to_vec()),
                None => RemoteCode::Missing,
            },
        }
    }

    fn options(d: &DesiredState) -> PlanOptions {
        PlanOptions::new(d, false, false).unwrap()
    }

    fn summary(plan: &Plan) -> Vec<(Action, &str)> {
        plan.changes
            .iter()
            .map(|c| (c.action(), c.name()))
            .collect()
    }

    use Mode::*;

    #[test]
    fn fresh_organization_creates_everything() {
        let d = desired(&[
            ("b", Advisory, "main = rule { true }"),
            ("a", HardMandatory, ""),
        ]);
        let p = plan("org", &d, &ActualState::default(), &options(&d)).unwrap();
        assert_eq!(summary(&p), [(Action::Create, "a"), (Action::Create, "b")]);
        assert_eq!(p.changes[1].modes(), (None, Some(Advisory)));
        assert!(p.changes.iter().all(Change::code_changed));
    }

    #[test]
    fn equal_states_plan_nothing() {
        let d = desired(&[("a", Advisory, "x")]);
        let a = ActualState::from_policies([remote("a", Advisory, Some("x"))]);
        let p = plan("org", &d, &a, &options(&d)).unwrap();
        assert!(p.is_empty());
        assert_eq!(p.unchanged, ["a"]);
    }

    #[test]
    fn wrong_mode_is_an_update_without_code() {
        let d = desired(&[("a", HardMandatory, "x")]);
        let a = ActualState::from_policies([remote("a", Advisory, Some("x"))]);
        let p = plan("org", &d, &a, &options(&d)).unwrap();
        assert_eq!(summary(&p), [(Action::Update, "a")]);
        assert_eq!(p.changes[0].modes(), (Some(Advisory), Some(HardMandatory)));
        assert!(!p.changes[0].code_changed());
    }

    #[test]
    fn code_is_compared_byte_for_byte() {
        // A CRLF or a trailing newline is a real difference: the service stores bytes verbatim.
        let d = desired(&[("a", Advisory, "x\r\n")]);
        let a = ActualState::from_policies([remote("a", Advisory, Some("x\n"))]);
        let p = plan("org", &d, &a, &options(&d)).unwrap();
        assert_eq!(summary(&p), [(Action::Update, "a")]);
        assert_eq!(
            p.changes[0].code(),
            (Some(&b"x\n"[..]), Some(&b"x\r\n"[..]))
        );
    }

    #[test]
    fn policy_created_without_code_is_uploaded_not_created_again() {
        // The crash between create and upload: the next run must upload, even empty code.
        let d = desired(&[("a", Advisory, "")]);
        let a = ActualState::from_policies([remote("a", Advisory, None)]);
        let p = plan("org", &d, &a, &options(&d)).unwrap();
        assert_eq!(summary(&p), [(Action::Update, "a")]);
        assert!(p.changes[0].code_changed());
    }

    #[test]
    fn extra_remote_policies_are_deleted_last() {
        let d = desired(&[("z", Advisory, "x"), ("m", Advisory, "new")]);
        let a = ActualState::from_policies([
            remote("a-old", Advisory, Some("x")),
            remote("m", Advisory, Some("old")),
        ]);
        let p = plan("org", &d, &a, &options(&d)).unwrap();
        assert_eq!(
            summary(&p),
            [
                (Action::Create, "z"),
                (Action::Update, "m"),
                (Action::Delete, "a-old")
            ]
        );
    }

    #[test]
    fn no_prune_keeps_extra_policies() {
        let d = desired(&[("a", Advisory, "x")]);
        let a = ActualState::from_policies([remote("extra", Advisory, Some("x"))]);
        let p = plan("org", &d, &a, &PlanOptions::new(&d, true, false).unwrap()).unwrap();
        assert_eq!(summary(&p), [(Action::Create, "a")]);
        assert_eq!(p.kept, ["extra"]);

        let mut no_prune_in_manifest = d.clone();
        no_prune_in_manifest.prune = false;
        let p = plan("org", &d, &a, &options(&no_prune_in_manifest)).unwrap();
        assert_eq!(p.kept, ["extra"]);
    }

    #[test]
    fn ignored_names_are_never_created_changed_or_deleted() {
        let mut d = desired(&[("legacy-new", Advisory, "x"), ("legacy-a", Advisory, "new")]);
        d.ignore = vec!["legacy-*".into()];
        let a = ActualState::from_policies([
            remote("legacy-a", HardMandatory, Some("old")),
            remote("legacy-b", Advisory, Some("x")),
        ]);
        let p = plan("org", &d, &a, &options(&d)).unwrap();
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(p.ignored, ["legacy-a", "legacy-b", "legacy-new"]);
    }

    #[test]
    fn empty_manifest_never_deletes_without_allow_empty() {
        let d = desired(&[]);
        let a = ActualState::from_policies([remote("a", Advisory, Some("x"))]);
        assert_eq!(
            plan("org", &d, &a, &options(&d)),
            Err(PlanError::EmptyManifestWouldDelete { count: 1 })
        );
        let p = plan("org", &d, &a, &PlanOptions::new(&d, false, true).unwrap()).unwrap();
        assert_eq!(summary(&p), [(Action::Delete, "a")]);
        // With nothing to delete, an empty manifest is simply a plan with no changes.
        assert!(
            plan("org", &d, &ActualState::default(), &options(&d))
                .unwrap()
                .is_empty()
        );
        // And with pruning off it deletes nothing, so nothing is refused.
        assert!(
            plan("org", &d, &a, &PlanOptions::new(&d, true, false).unwrap())
                .unwrap()
                .is_empty()
        );
    }

    /// Bug (audit, HIGH): the guard only looked at an empty manifest. A manifest that lists
    /// policies, none of which exists remotely (a wrong --dir, a typo, every name changed),
    /// planned the deletion of every remote policy without a word.
    #[test]
    fn manifest_matching_no_remote_policy_never_deletes_them_all_without_allow_empty() {
        let d = desired(&[("typo-a", Advisory, "x"), ("typo-b", Advisory, "y")]);
        let a = ActualState::from_policies([
            remote("a", Advisory, Some("x")),
            remote("b", Advisory, Some("y")),
            remote("c", HardMandatory, Some("z")),
        ]);
        assert_eq!(
            plan("org", &d, &a, &options(&d)),
            Err(PlanError::WouldDeleteEveryPolicy {
                count: 3,
                listed: 2
            })
        );
        // --allow-empty permits it, --no-prune makes it a plan without deletions.
        let p = plan("org", &d, &a, &PlanOptions::new(&d, false, true).unwrap()).unwrap();
        assert_eq!(p.count(Action::Delete), 3);
        let p = plan("org", &d, &a, &PlanOptions::new(&d, true, false).unwrap()).unwrap();
        assert_eq!(
            summary(&p),
            [(Action::Create, "typo-a"), (Action::Create, "typo-b")]
        );

        // One remote policy the manifest still lists (unchanged or updated) is enough: the
        // others are ordinary prunes.
        for keep in [
            remote("a", Advisory, Some("x")),
            remote("a", Advisory, Some("old")),
        ] {
            let d = desired(&[("a", Advisory, "x"), ("new", Advisory, "y")]);
            let a = ActualState::from_policies([keep, remote("b", Advisory, Some("y"))]);
            let p = plan("org", &d, &a, &options(&d)).unwrap();
            assert_eq!(p.count(Action::Delete), 1, "{p:?}");
        }

        // Ignored remote policies are not "every policy": they stay whatever the plan.
        let mut d = desired(&[("new", Advisory, "x")]);
        d.ignore = vec!["legacy-*".into()];
        let a = ActualState::from_policies([
            remote("legacy-a", Advisory, Some("x")),
            remote("old", Advisory, Some("x")),
        ]);
        assert_eq!(
            plan("org", &d, &a, &options(&d)),
            Err(PlanError::WouldDeleteEveryPolicy {
                count: 1,
                listed: 1
            })
        );
        // With only ignored policies remotely nothing is deleted, so nothing is refused.
        let a = ActualState::from_policies([remote("legacy-a", Advisory, Some("x"))]);
        assert!(plan("org", &d, &a, &options(&d)).is_ok());

        // A manifest whose every entry is ignored manages nothing: the empty-manifest guard.
        let mut d = desired(&[("legacy-x", Advisory, "x")]);
        d.ignore = vec!["legacy-*".into()];
        let a = ActualState::from_policies([remote("old", Advisory, Some("x"))]);
        assert_eq!(
            plan("org", &d, &a, &options(&d)),
            Err(PlanError::EmptyManifestWouldDelete { count: 1 })
        );
    }

    #[test]
    fn would_delete_every_policy_error_says_what_why_and_the_fix() {
        let msg = PlanError::WouldDeleteEveryPolicy {
            count: 3,
            listed: 1,
        }
        .to_string();
        for want in [
            "refusing to delete 3 remote policies",
            "none of the 1 policy in policies.yaml",
            "--dir",
            "--no-prune",
            "--allow-empty",
        ] {
            assert!(msg.contains(want), "missing {want:?} in {msg}");
        }
    }

    #[test]
    fn empty_manifest_error_names_the_fix() {
        let msg = PlanError::EmptyManifestWouldDelete { count: 3 }.to_string();
        assert!(
            msg.contains("3 remote policies") && msg.contains("--allow-empty"),
            "{msg}"
        );
    }

    #[test]
    fn bad_glob_is_an_error() {
        let mut d = desired(&[]);
        d.ignore = vec!["a[".into()];
        assert!(matches!(
            PlanOptions::new(&d, false, false),
            Err(PlanError::BadIgnoreGlob { .. })
        ));
    }

    /// What the service ends up holding after every change of `plan` succeeded: the model the
    /// property test checks the planner against.
    fn applied(actual: &ActualState, plan: &Plan) -> ActualState {
        let mut policies: BTreeMap<String, RemotePolicy> = actual.policies.clone();
        for change in &plan.changes {
            match change {
                Change::Create { name, mode, code } => {
                    policies.insert(name.to_string(), {
                        let mut p = remote(name.as_str(), *mode, None);
                        p.code = RemoteCode::Present(code.clone());
                        p
                    });
                }
                Change::Update {
                    name,
                    mode_to,
                    code,
                    ..
                } => {
                    let p = policies.get_mut(name.as_str()).unwrap();
                    p.mode = *mode_to;
                    if let Some(c) = code {
                        p.code = RemoteCode::Present(c.to.clone());
                    }
                }
                Change::Delete { name, .. } => {
                    policies.remove(name);
                }
            }
        }
        ActualState { policies }
    }

    fn mode() -> impl Strategy<Value = Mode> {
        prop_oneof![Just(HardMandatory), Just(SoftMandatory), Just(Advisory)]
    }

    fn code() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(prop_oneof![
            Just(String::new()),
            Just("a".to_owned()),
            Just("a\r\n".to_owned()),
            Just("b".to_owned()),
        ])
    }

    // Names from a small alphabet so the two sides overlap often.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("c"),
            Just("legacy-1"),
            Just("legacy-2"),
            Just("d_e")
        ]
        .prop_map(str::to_owned)
    }

    proptest! {
        #[test]
        fn applying_a_plan_then_planning_again_yields_no_change(
            local in proptest::collection::btree_map(name(), (mode(), code()), 0..6),
            remote_side in proptest::collection::btree_map(name(), (mode(), code()), 0..6),
            prune in any::<bool>(),
            no_prune in any::<bool>(),
            ignore_legacy in any::<bool>(),
        ) {
            let mut d = desired(&[]);
            d.prune = prune;
            if ignore_legacy {
                d.ignore = vec!["legacy-*".into()];
            }
            for (n, (m, c)) in &local {
                let pn = PolicyName::new(n.clone()).unwrap();
                d.policies.insert(pn.clone(), DesiredPolicy {
                    name: pn, mode: *m, file: String::new(),
                    code: c.clone().unwrap_or_default().into_bytes(),
                });
            }
            let a = ActualState::from_policies(
                remote_side.iter().map(|(n, (m, c))| remote(n, *m, c.as_deref())),
            );
            let opts = PlanOptions::new(&d, no_prune, true).unwrap();
            let first = plan("org", &d, &a, &opts).unwrap();
            let second = plan("org", &d, &applied(&a, &first), &opts).unwrap();
            prop_assert!(second.is_empty(), "second plan: {:?}", second.changes);
            // And planning is deterministic.
            prop_assert_eq!(&first, &plan("org", &d, &a, &opts).unwrap());
            // Ignored and kept policies are never touched.
            for c in &first.changes {
                prop_assert!(!first.ignored.iter().any(|n| n == c.name()));
                prop_assert!(!first.kept.iter().any(|n| n == c.name()));
            }
        }
    }
}
