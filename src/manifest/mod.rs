//! Reading and validating a policy directory (`policies.yaml` plus one Sentinel file per policy)
//! into a [`DesiredState`](crate::model::DesiredState).
//!
//! Split as ripgrep splits `parse(path)` from `parse_reader(rdr)`:
//!
//! - [`parse_manifest`] (in `parse.rs`) is pure: text in, a checked [`Manifest`] or every
//!   [`Diagnostic`] out. Keys, types, names, modes, duplicates, `file:` paths and `ignore:` globs
//!   are checked there, on a YAML tree that keeps a position for every node (`yaml.rs`).
//! - [`load`] (in `fs.rs`) does the I/O: it reads `policies.yaml` and each policy file with the
//!   filesystem rules (regular file, inside the directory after resolving symlinks, UTF-8, at most
//!   [`MAX_POLICY_BYTES`], never blocking on a FIFO), and looks for unreferenced `.sentinel` files.
//!
//! Every problem of a directory is reported at once, each naming its file, its line where there
//! is one, and the fix, the way rustc and cargo do:
//!
//! ```text
//! policies/policies.yaml:7:11: unknown mode "Advisory"
//!   help: modes are spelled in lower case, as the API spells them: `advisory` (hard-mandatory, soft-mandatory or advisory)
//! ```

use std::fmt;
use std::path::PathBuf;

mod fs;
mod parse;
mod suggest;
mod yaml;

pub use fs::load;
pub use parse::{Manifest, ManifestPolicy, parse_manifest};

/// The manifest's file name inside the policy directory.
pub const MANIFEST_FILE: &str = "policies.yaml";

/// The largest policy file the service accepts for upload (its 413 limit).
pub const MAX_POLICY_BYTES: u64 = 10 * 1024 * 1024;

/// The largest `policies.yaml` read. A manifest of ten thousand policies is well under 1 MiB;
/// the cap keeps a runaway or hostile file from being parsed at all.
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// A validated policy directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub desired: crate::model::DesiredState,
    /// Problems that do not stop a sync: unreferenced `.sentinel` files, a listed policy that an
    /// `ignore:` glob hides. Callers print them (as `warning: {diagnostic}`).
    pub warnings: Vec<Diagnostic>,
}

/// One problem, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user would type it: the policy directory joined with the relative path
    /// (`policies/policies.yaml`, `policies/network/restrict-regions.sentinel`).
    pub file: PathBuf,
    /// 1-based.
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    /// What is wrong. Values from the user's files appear quoted and escaped (`"a b"`).
    pub message: String,
    /// How to fix it, without the `help: ` prefix that [`Display`](fmt::Display) adds.
    pub fix: Option<String>,
}

impl fmt::Display for Diagnostic {
    /// `file:line:column: message`, then `  help: fix` on its own line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  help: {fix}")?;
        }
        Ok(())
    }
}

/// A policy directory that failed validation, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.diagnostics))]
pub struct ManifestError {
    /// Never empty; manifest problems first (in line order), then policy-file problems.
    pub diagnostics: Vec<Diagnostic>,
}

/// One block per diagnostic, in order, each as [`Diagnostic`]'s `Display` prints it.
fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ManifestError {
    fn one(diagnostic: Diagnostic) -> Self {
        ManifestError {
            diagnostics: vec![diagnostic],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(line: Option<usize>, column: Option<usize>, fix: Option<&str>) -> Diagnostic {
        Diagnostic {
            file: PathBuf::from("policies/policies.yaml"),
            line,
            column,
            message: "unknown mode \"Advisory\"".into(),
            fix: fix.map(Into::into),
        }
    }

    #[test]
    fn diagnostics_print_like_rustc() {
        assert_eq!(
            d(Some(7), Some(11), Some("write `advisory`")).to_string(),
            "policies/policies.yaml:7:11: unknown mode \"Advisory\"\n  help: write `advisory`"
        );
        assert_eq!(
            d(Some(7), None, None).to_string(),
            "policies/policies.yaml:7: unknown mode \"Advisory\""
        );
        assert_eq!(
            d(None, None, None).to_string(),
            "policies/policies.yaml: unknown mode \"Advisory\""
        );
    }

    #[test]
    fn the_error_lists_every_diagnostic() {
        let e = ManifestError {
            diagnostics: vec![d(Some(1), Some(1), Some("a")), d(Some(2), Some(3), None)],
        };
        assert_eq!(
            e.to_string(),
            "policies/policies.yaml:1:1: unknown mode \"Advisory\"\n  help: a\n\
             policies/policies.yaml:2:3: unknown mode \"Advisory\""
        );
    }
}
