//! Drift: a difference between the service and the directory that the directory did not cause.
//!
//! After the first successful reconcile, `--drift warn` applies a planned change only when the
//! local definition of that policy changed since the last successful reconcile; every other
//! planned change is drift (a mode or code edited in the UI, a policy added or deleted there) and
//! is left alone. `--drift heal` applies everything but reports the same set. The functions here
//! are pure: they look only at the two desired states and the names of the planned changes.

use std::collections::{BTreeMap, BTreeSet};

use globset::Glob;

use crate::model::{ActualState, DesiredState, Mode};
use crate::plan::{Change, Plan};

/// What the directory says about one remote name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LocalDefinition<'a> {
    /// Listed in the manifest with this mode and code.
    Listed { mode: Mode, code: &'a [u8] },
    /// Matched by an `ignore:` glob: never touched.
    Ignored,
    /// Not listed, and `prune` is on: deleted if present.
    Pruned,
    /// Not listed, and `prune` is off: left alone.
    Kept,
}

fn local_definition<'a>(desired: &'a DesiredState, name: &str) -> LocalDefinition<'a> {
    // `ignore:` wins over everything: the contract says ignored names are never created,
    // changed or deleted.
    let ignored = desired.ignore.iter().any(|pattern| {
        Glob::new(pattern)
            .map(|g| g.compile_matcher().is_match(name))
            .unwrap_or(false)
    });
    if ignored {
        return LocalDefinition::Ignored;
    }
    match desired.policies.get(name) {
        Some(p) => LocalDefinition::Listed {
            mode: p.mode,
            code: &p.code,
        },
        None if desired.prune => LocalDefinition::Pruned,
        None => LocalDefinition::Kept,
    }
}

/// Whether the directory's definition of `name` differs between two snapshots: its entry (mode,
/// code), or whether it is ignored or pruned. The file a policy's code lives in does not matter;
/// its bytes do.
pub fn local_changed(name: &str, previous: &DesiredState, current: &DesiredState) -> bool {
    local_definition(previous, name) != local_definition(current, name)
}

/// Planned changes split into those the directory caused and the drifted rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split<T> {
    /// Changes to policies whose local definition changed: always applied.
    pub local: Vec<T>,
    /// Changes to policies whose local definition did not change: drift.
    pub drifted: Vec<T>,
}

/// Splits `changes` (each named by `name_of`) by whether the local definition changed between
/// `previous` (the snapshot of the last successful reconcile) and `current`.
pub fn split<T>(
    changes: Vec<T>,
    name_of: impl Fn(&T) -> &str,
    previous: &DesiredState,
    current: &DesiredState,
) -> Split<T> {
    let (local, drifted) = changes
        .into_iter()
        .partition(|c| local_changed(name_of(c), previous, current));
    Split { local, drifted }
}

/// `--drift warn`: keeps in `plan` only the changes the directory caused since `previous` and
/// returns the drifted rest, which must be left alone and reported.
pub fn filter_plan(
    mut plan: Plan,
    previous: &DesiredState,
    current: &DesiredState,
) -> (Plan, Vec<Change>) {
    let Split { local, drifted } = split(plan.changes, Change::name, previous, current);
    plan.changes = local;
    (plan, drifted)
}

/// A short identity of what the service holds under `name`: a new value means a new drift
/// (edited again in the UI), the same value means the drift already reported.
pub fn remote_fingerprint(actual: &ActualState, name: &str) -> String {
    match actual.policies.get(name) {
        Some(p) => format!(
            "{} {} {}",
            p.id,
            p.mode,
            p.updated_at.as_deref().unwrap_or("-")
        ),
        None => "absent".to_owned(),
    }
}

/// Remembers which drift has been reported, so each is logged once per change rather than on
/// every reconcile.
#[derive(Debug, Default, Clone)]
pub struct DriftLog {
    reported: BTreeMap<String, String>,
}

impl DriftLog {
    /// Records the drifted policies found by a reconcile (name → remote fingerprint) and returns
    /// the names to report: those new or changed since the previous call. Names no longer
    /// drifted are forgotten, so a policy that drifts again later is reported again.
    pub fn observe(&mut self, drifted: &BTreeMap<String, String>) -> BTreeSet<String> {
        let fresh = drifted
            .iter()
            .filter(|(name, fp)| self.reported.get(*name) != Some(*fp))
            .map(|(name, _)| name.clone())
            .collect();
        self.reported = drifted.clone();
        fresh
    }

    /// How many policies are drifted as of the last observation.
    pub fn len(&self) -> usize {
        self.reported.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reported.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DesiredPolicy, PolicyId, PolicyName, RemoteCode, RemotePolicy};

    fn desired(policies: &[(&str, Mode, &str)]) -> DesiredState {
        DesiredState {
            organization: None,
            prune: true,
            ignore: vec![],
            policies: policies
                .iter()
                .map(|(name, mode, code)| {
                    let name = PolicyName::new(*name).unwrap();
                    let file = name.sentinel_path();
                    (
                        name.clone(),
                        DesiredPolicy {
                            name,
                            mode: *mode,
                            file,
                            code: code.as_bytes().to_vec(),
                        },
                    )
                })
                .collect(),
        }
    }

    fn names(changes: &[&'static str]) -> Vec<&'static str> {
        changes.to_vec()
    }

    fn split_names(
        changes: &[&'static str],
        prev: &DesiredState,
        cur: &DesiredState,
    ) -> Split<&'static str> {
        split(names(changes), |n| n, prev, cur)
    }

    #[test]
    fn nothing_local_changed_means_every_planned_change_is_drift() {
        let state = desired(&[("a", Mode::Advisory, "x"), ("b", Mode::HardMandatory, "y")]);
        // a: mode edited in the UI; b: deleted in the UI; extra: added in the UI.
        let s = split_names(&["a", "b", "extra"], &state, &state);
        assert!(s.local.is_empty());
        assert_eq!(s.drifted, ["a", "b", "extra"]);
    }

    #[test]
    fn a_local_code_or_mode_edit_is_applied() {
        let prev = desired(&[("a", Mode::Advisory, "x"), ("b", Mode::Advisory, "y")]);
        let cur = desired(&[("a", Mode::Advisory, "x2"), ("b", Mode::HardMandatory, "y")]);
        let s = split_names(&["a", "b"], &prev, &cur);
        assert_eq!(s.local, ["a", "b"]);
        assert!(s.drifted.is_empty());
    }

    #[test]
    fn local_additions_and_removals_are_applied() {
        let prev = desired(&[("old", Mode::Advisory, "x")]);
        let cur = desired(&[("new", Mode::Advisory, "y")]);
        let s = split_names(&["new", "old"], &prev, &cur);
        assert_eq!(s.local, ["new", "old"]);
    }

    #[test]
    fn moving_code_to_another_file_with_the_same_bytes_is_not_a_local_change() {
        let prev = desired(&[("a", Mode::Advisory, "x")]);
        let mut cur = prev.clone();
        cur.policies
            .values_mut()
            .for_each(|p| p.file = "nested/a.sentinel".into());
        assert!(!local_changed("a", &prev, &cur));
    }

    #[test]
    fn turning_prune_on_or_unignoring_a_name_is_a_local_change() {
        let mut prev = desired(&[]);
        prev.prune = false;
        prev.ignore = vec!["legacy-*".into()];
        let mut cur = prev.clone();
        cur.prune = true;
        // "extra" was kept and is now pruned; "legacy-x" is still ignored.
        assert!(local_changed("extra", &prev, &cur));
        assert!(!local_changed("legacy-x", &prev, &cur));
        cur.ignore.clear();
        assert!(local_changed("legacy-x", &prev, &cur));
    }

    #[test]
    fn a_policy_edited_locally_and_remotely_is_applied_whole() {
        // The UI changed the mode and git changed the code: the directory changed, so the
        // policy converges to the directory.
        let prev = desired(&[("a", Mode::Advisory, "x")]);
        let cur = desired(&[("a", Mode::Advisory, "x2")]);
        assert_eq!(split_names(&["a"], &prev, &cur).local, ["a"]);
    }

    #[test]
    fn a_warn_mode_plan_keeps_only_what_the_directory_changed() {
        use crate::plan::{PlanOptions, plan};
        let prev = desired(&[("a", Mode::Advisory, "x"), ("b", Mode::Advisory, "y")]);
        let cur = desired(&[("a", Mode::Advisory, "x2"), ("b", Mode::Advisory, "y")]);
        // On the service: a as before git changed it, b's mode edited in the UI, c added there.
        let actual = ActualState::from_policies([
            RemotePolicy {
                code: RemoteCode::Present(b"x".to_vec()),
                ..remote("a", Mode::Advisory, Some("t1"))
            },
            RemotePolicy {
                code: RemoteCode::Present(b"y".to_vec()),
                ..remote("b", Mode::HardMandatory, Some("t1"))
            },
            RemotePolicy {
                code: RemoteCode::Present(b"z".to_vec()),
                ..remote("c", Mode::Advisory, Some("t1"))
            },
        ]);
        let options = PlanOptions::new(&cur, false, false).unwrap();
        let full = plan("org", &cur, &actual, &options).unwrap();
        assert_eq!(full.changes.len(), 3);
        let (kept, drifted) = filter_plan(full, &prev, &cur);
        let kept: Vec<&str> = kept.changes.iter().map(Change::name).collect();
        let drifted: Vec<&str> = drifted.iter().map(Change::name).collect();
        assert_eq!(kept, ["a"]);
        assert_eq!(drifted, ["b", "c"]);
    }

    fn remote(name: &str, mode: Mode, updated: Option<&str>) -> RemotePolicy {
        RemotePolicy {
            id: PolicyId(format!("pol-{name}")),
            name: name.into(),
            mode,
            updated_at: updated.map(str::to_owned),
            code: RemoteCode::Missing,
        }
    }

    #[test]
    fn fingerprints_change_with_the_mode_the_upload_time_or_existence() {
        let a = ActualState::from_policies([remote("a", Mode::Advisory, Some("t1"))]);
        let b = ActualState::from_policies([remote("a", Mode::HardMandatory, Some("t1"))]);
        let c = ActualState::from_policies([remote("a", Mode::Advisory, Some("t2"))]);
        let fps: BTreeSet<String> = [&a, &b, &c, &ActualState::default()]
            .iter()
            .map(|s| remote_fingerprint(s, "a"))
            .collect();
        assert_eq!(fps.len(), 4);
    }

    #[test]
    fn each_drift_is_reported_once_per_change() {
        let mut log = DriftLog::default();
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let first = log.observe(&m(&[("a", "v1"), ("b", "v1")]));
        assert_eq!(first, ["a".to_string(), "b".to_string()].into());
        assert!(log.observe(&m(&[("a", "v1"), ("b", "v1")])).is_empty());
        // a edited again in the UI: reported again; b unchanged: not.
        assert_eq!(
            log.observe(&m(&[("a", "v2"), ("b", "v1")])),
            ["a".to_string()].into()
        );
        assert_eq!(log.len(), 2);
        // b healed or fixed, then drifts again later with the same fingerprint: reported again.
        log.observe(&m(&[("a", "v2")]));
        assert_eq!(
            log.observe(&m(&[("a", "v2"), ("b", "v1")])),
            ["b".to_string()].into()
        );
    }
}
