//! The domain vocabulary shared by the manifest loader, the planner, the API client and the
//! reports: enforcement modes, policy names and ids, and the desired and actual states.
//!
//! Nothing here does I/O. Values are validated when they are built, so code downstream never
//! re-checks a name or a mode.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The enforcement level of a policy, spelled exactly as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    HardMandatory,
    SoftMandatory,
    Advisory,
}

impl Mode {
    /// Every mode, in the order the API documents them.
    pub const ALL: [Mode; 3] = [Mode::HardMandatory, Mode::SoftMandatory, Mode::Advisory];

    /// The mode the service applies when a request names none.
    pub const DEFAULT: Mode = Mode::SoftMandatory;

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::HardMandatory => "hard-mandatory",
            Mode::SoftMandatory => "soft-mandatory",
            Mode::Advisory => "advisory",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the three modes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown enforcement mode {0:?}: expected hard-mandatory, soft-mandatory or advisory")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    /// Exact, case-sensitive: the API spells modes in lower case and so must the manifest.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

/// A policy name: one or more ASCII letters, digits, `-` and `_`, as the service requires.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PolicyName(String);

/// Why a string is not a valid policy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("policy name is empty")]
    Empty,
    #[error(
        "policy name {name:?} contains {bad:?}: names may use only letters, digits, '-' and '_'"
    )]
    BadCharacter { name: String, bad: char },
}

impl PolicyName {
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidName::Empty);
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(InvalidName::BadCharacter { name, bad });
        }
        Ok(PolicyName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file name the service expects in `enforce[].path`: `<name>.sentinel`.
    pub fn sentinel_path(&self) -> String {
        format!("{}.sentinel", self.0)
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PolicyName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for PolicyName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for PolicyName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PolicyName::new(s).map_err(serde::de::Error::custom)
    }
}

/// The service's id of a policy (`pol-…`). Opaque to us.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PolicyId(pub String);

impl PolicyId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One policy as the policy directory defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPolicy {
    pub name: PolicyName,
    pub mode: Mode,
    /// Where the code came from, relative to the policy directory (for messages and reports).
    pub file: String,
    /// The code, byte for byte as on disk.
    pub code: Vec<u8>,
}

/// The whole policy directory, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredState {
    /// `organization:` from the manifest; flags and the environment win over it.
    pub organization: Option<String>,
    /// Whether remote policies missing from the manifest are deleted (`prune:`, default true).
    pub prune: bool,
    /// Globs of remote names that are never created, changed or deleted.
    pub ignore: Vec<String>,
    /// Policies keyed by name.
    pub policies: BTreeMap<PolicyName, DesiredPolicy>,
}

/// The code a policy holds on the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteCode {
    /// Nothing was ever uploaded (download answers 404): a create whose upload never happened.
    Missing,
    /// The bytes download returned.
    Present(Vec<u8>),
}

impl RemoteCode {
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            RemoteCode::Missing => None,
            RemoteCode::Present(b) => Some(b),
        }
    }
}

/// One policy as the service holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePolicy {
    pub id: PolicyId,
    /// Remote names are kept as strings: the service may hold names we would not accept.
    pub name: String,
    pub mode: Mode,
    /// Time of the last code upload, as the service reports it (`None` before the first upload).
    pub updated_at: Option<String>,
    pub code: RemoteCode,
}

/// Everything the organization holds, keyed by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActualState {
    pub policies: BTreeMap<String, RemotePolicy>,
}

impl ActualState {
    pub fn from_policies(policies: impl IntoIterator<Item = RemotePolicy>) -> Self {
        ActualState {
            policies: policies.into_iter().map(|p| (p.name.clone(), p)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_exactly_as_the_api_spells_them() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
        }
        assert!("Hard-Mandatory".parse::<Mode>().is_err());
        assert!("hard_mandatory".parse::<Mode>().is_err());
        assert!("".parse::<Mode>().is_err());
    }

    #[test]
    fn mode_serializes_in_kebab_case() {
        assert_eq!(
            serde_json::to_string(&Mode::SoftMandatory).unwrap(),
            "\"soft-mandatory\""
        );
    }

    #[test]
    fn names_accept_letters_digits_dash_underscore_only() {
        assert!(PolicyName::new("require-tags_v2").is_ok());
        assert_eq!(PolicyName::new(""), Err(InvalidName::Empty));
        for bad in ["a b", "a/b", "..", "é", "a.sentinel"] {
            assert!(PolicyName::new(bad).is_err(), "{bad} should be rejected");
        }
    }
}
