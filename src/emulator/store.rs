//! The in-memory state: organizations and their policies, ids, and upload times.
//!
//! Policies are kept by id, and listed in id order. Ids are random, so the list order is stable
//! but unrelated to names or creation order, as on the real service, whose order clients must not
//! rely on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use rand::distr::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::model::Mode;

/// One policy as the emulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// `pol-` and 16 letters and digits.
    pub id: String,
    pub organization: String,
    pub name: String,
    pub mode: Mode,
    /// `None` until the first upload (download answers 404 until then).
    pub code: Option<Vec<u8>>,
    /// Time of the last upload, as the API spells it (`2017-10-10T20:58:04.621Z`).
    pub updated_at: Option<String>,
}

/// A policy of that name already exists in the organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Duplicate;

#[derive(Debug)]
pub(crate) struct Store {
    organizations: BTreeSet<String>,
    policies: BTreeMap<String, StoredPolicy>,
    ids: StdRng,
    last_upload: SystemTime,
}

impl Store {
    pub(crate) fn new(organizations: Vec<String>, seed: u64) -> Self {
        Store {
            organizations: organizations.into_iter().collect(),
            policies: BTreeMap::new(),
            ids: StdRng::seed_from_u64(seed),
            last_upload: SystemTime::UNIX_EPOCH,
        }
    }

    pub(crate) fn has_organization(&self, org: &str) -> bool {
        self.organizations.contains(org)
    }

    pub(crate) fn add_organization(&mut self, org: &str) {
        self.organizations.insert(org.to_owned());
    }

    pub(crate) fn get(&self, id: &str) -> Option<&StoredPolicy> {
        self.policies.get(id)
    }

    /// The organization's policies, in list order.
    pub(crate) fn list(&self, org: &str) -> Vec<&StoredPolicy> {
        self.policies
            .values()
            .filter(|p| p.organization == org)
            .collect()
    }

    /// Creates a policy with no code. The organization must exist (the caller checked).
    pub(crate) fn create(
        &mut self,
        org: &str,
        name: &str,
        mode: Mode,
    ) -> Result<&StoredPolicy, Duplicate> {
        if self
            .policies
            .values()
            .any(|p| p.organization == org && p.name == name)
        {
            return Err(Duplicate);
        }
        let id = self.new_id();
        let policy = StoredPolicy {
            id: id.clone(),
            organization: org.to_owned(),
            name: name.to_owned(),
            mode,
            code: None,
            updated_at: None,
        };
        Ok(self.policies.entry(id).or_insert(policy))
    }

    /// Creates a policy without any check (a test knob); creates the organization if needed.
    pub(crate) fn insert(
        &mut self,
        org: &str,
        name: &str,
        mode: Mode,
        code: Option<&[u8]>,
    ) -> String {
        self.add_organization(org);
        let id = self.new_id();
        self.policies.insert(
            id.clone(),
            StoredPolicy {
                id: id.clone(),
                organization: org.to_owned(),
                name: name.to_owned(),
                mode,
                code: None,
                updated_at: None,
            },
        );
        if let Some(code) = code {
            self.upload(&id, code);
        }
        id
    }

    /// Stores `code` verbatim and stamps `updated-at`.
    pub(crate) fn upload(&mut self, id: &str, code: &[u8]) -> Option<&StoredPolicy> {
        let stamp = self.next_upload_time();
        let policy = self.policies.get_mut(id)?;
        policy.code = Some(code.to_vec());
        policy.updated_at = Some(stamp);
        Some(policy)
    }

    pub(crate) fn set_mode(&mut self, id: &str, mode: Mode) -> Option<&StoredPolicy> {
        let policy = self.policies.get_mut(id)?;
        policy.mode = mode;
        Some(policy)
    }

    /// Removes a policy; `false` if there was none.
    pub(crate) fn delete(&mut self, id: &str) -> bool {
        self.policies.remove(id).is_some()
    }

    fn new_id(&mut self) -> String {
        loop {
            let suffix: String = (&mut self.ids)
                .sample_iter(Alphanumeric)
                .take(16)
                .map(char::from)
                .collect();
            let id = format!("pol-{suffix}");
            if !self.policies.contains_key(&id) {
                return id;
            }
        }
    }

    /// The current time in milliseconds, but strictly later than the previous upload's: on
    /// loopback two uploads can land in one millisecond, and clients that cache code by
    /// `(id, updated-at)` rely on every upload changing `updated-at`.
    fn next_upload_time(&mut self) -> String {
        let now = SystemTime::now();
        let floor = self.last_upload + Duration::from_millis(1);
        let stamp = truncate_to_millis(if now > floor { now } else { floor });
        self.last_upload = stamp;
        humantime::format_rfc3339_millis(stamp).to_string()
    }
}

fn truncate_to_millis(t: SystemTime) -> SystemTime {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(vec!["org".into()], 1)
    }

    #[test]
    fn ids_are_pol_and_16_alphanumerics() {
        let mut s = store();
        let p = s.create("org", "a", Mode::Advisory).unwrap();
        assert_eq!(p.id.len(), 20);
        assert!(p.id.starts_with("pol-"));
        assert!(p.id[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn names_are_unique_per_organization() {
        let mut s = store();
        s.add_organization("other");
        s.create("org", "a", Mode::Advisory).unwrap();
        assert_eq!(s.create("org", "a", Mode::Advisory), Err(Duplicate));
        assert!(s.create("other", "a", Mode::Advisory).is_ok());
    }

    #[test]
    fn every_upload_moves_updated_at_forward() {
        let mut s = store();
        let id = s.create("org", "a", Mode::Advisory).unwrap().id.clone();
        let stamps: Vec<String> = (0..5)
            .map(|_| s.upload(&id, b"x").unwrap().updated_at.clone().unwrap())
            .collect();
        for pair in stamps.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
        }
        assert_eq!(stamps[0].len(), "2017-10-10T20:58:04.621Z".len());
    }

    #[test]
    fn list_order_is_not_creation_or_name_order_but_is_stable() {
        let mut s = store();
        let names: Vec<String> = (0..20).map(|i| format!("p{i:02}")).collect();
        for n in &names {
            s.create("org", n, Mode::Advisory).unwrap();
        }
        let listed: Vec<&str> = s.list("org").iter().map(|p| p.name.as_str()).collect();
        assert_ne!(listed, names.iter().map(String::as_str).collect::<Vec<_>>());
        let again: Vec<&str> = s.list("org").iter().map(|p| p.name.as_str()).collect();
        assert_eq!(listed, again);
    }
}
