//! The pure half of the manifest: `policies.yaml` text in, a checked manifest (with positions)
//! or every problem found out. No filesystem access happens here, so every rule that does not
//! need the disk is unit-tested on strings.
//!
//! Checking never stops at the first problem: each key, value and entry is checked on its own
//! and everything wrong is collected, so a user fixes a whole manifest in one round. Only broken
//! YAML stops early, because after a syntax error there is no structure left to check.

use std::collections::HashMap;
use std::collections::HashSet;
use std::path::{Component, Path};

use globset::{Glob, GlobSetBuilder};

use super::Diagnostic;
use super::suggest::closest;
use super::yaml::{self, Key, Node, Pos, Value};
use crate::model::{InvalidName, Mode, PolicyName};

const TOP_KEYS: [&str; 4] = ["organization", "prune", "ignore", "policies"];
const POLICY_KEYS: [&str; 3] = ["name", "mode", "file"];

/// Words people reach for instead of our keys (from the API, Terraform, other tools).
const KEY_ALIASES: [(&str, &str); 20] = [
    ("enforcement-level", "mode"),
    ("enforcement_level", "mode"),
    ("enforcement", "mode"),
    ("enforce", "mode"),
    ("level", "mode"),
    ("path", "file"),
    ("source", "file"),
    ("filename", "file"),
    ("code", "file"),
    ("policy", "name"),
    ("id", "name"),
    ("org", "organization"),
    ("organisation", "organization"),
    ("organization_name", "organization"),
    ("exclude", "ignore"),
    ("excludes", "ignore"),
    ("skip", "ignore"),
    ("delete", "prune"),
    ("purge", "prune"),
    ("policy", "policies"),
];

/// A manifest checked without the disk: names, modes and file paths are valid, each policy
/// remembers where it was written. [`super::load`] turns this into a `DesiredState` by reading
/// the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub organization: Option<String>,
    /// `prune:`, default true.
    pub prune: bool,
    /// `ignore:` globs, each one valid for `globset::Glob::new`.
    pub ignore: Vec<String>,
    /// In manifest order.
    pub policies: Vec<ManifestPolicy>,
    /// Things that are legal but probably not meant (a listed policy that `ignore:` hides).
    pub warnings: Vec<Diagnostic>,
}

/// One entry of `policies:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPolicy {
    pub name: PolicyName,
    pub mode: Mode,
    /// The code's path relative to the policy directory: `file:` as written, or `<name>.sentinel`.
    pub file: String,
    /// The line of the entry in `policies.yaml` (1-based).
    pub line: usize,
}

/// Parses and checks `policies.yaml`. `path` is only used to name the file in diagnostics (pass
/// it as the user would type it, e.g. `policies/policies.yaml`). A leading UTF-8 byte order mark
/// is accepted.
pub fn parse_manifest(text: &str, path: &Path) -> Result<Manifest, Vec<Diagnostic>> {
    let checked = check(text, path);
    if !checked.errors.is_empty() {
        return Err(checked.errors);
    }
    let policies = checked
        .entries
        .into_iter()
        .map(|e| match (e.name, e.file) {
            (Some(name), Some(file)) => Ok(ManifestPolicy {
                name,
                mode: e.mode,
                file: file.path,
                line: e.pos.line,
            }),
            // check() records an error for every entry without a name or a file.
            _ => Err(vec![diagnostic(
                path,
                e.pos,
                "internal error: policy entry without a name or file".into(),
                None,
            )]),
        })
        .collect::<Result<_, _>>()?;
    Ok(Manifest {
        organization: checked.organization,
        prune: checked.prune,
        ignore: checked.ignore,
        policies,
        warnings: checked.warnings,
    })
}

/// Everything [`check`] learned, valid or not; the loader reads the files of every entry that
/// has one, so file problems are reported together with the manifest's own.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    pub organization: Option<String>,
    pub prune: bool,
    pub ignore: Vec<String>,
    pub entries: Vec<Entry>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug)]
pub(crate) struct Entry {
    /// `None` when the name is missing, invalid or a duplicate (an error says so).
    pub name: Option<PolicyName>,
    pub mode: Mode,
    /// `None` when the path is unusable (an error says so) or cannot be defaulted.
    pub file: Option<FileRef>,
    pub pos: Pos,
}

/// Where a policy's code lives, and where to point when it is wrong.
#[derive(Debug, Clone)]
pub(crate) struct FileRef {
    /// Relative to the policy directory, as written (or `<name>.sentinel`).
    pub path: String,
    /// The `file:` value, or the `name:` value when the path is the default.
    pub pos: Pos,
    pub explicit: bool,
    /// The policy's name as written, for messages.
    pub owner: String,
}

pub(crate) fn check(text: &str, path: &Path) -> Checked {
    let mut c = Checker {
        path,
        out: Checked {
            prune: true,
            ..Checked::default()
        },
    };
    // Editors on Windows like to start files with a byte order mark; YAML allows one.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match yaml::parse(text) {
        Err(errors) => {
            for e in errors {
                c.error(e.pos, e.message, e.fix);
            }
        }
        Ok(None) => c.out.errors.push(Diagnostic {
            file: path.to_path_buf(),
            line: None,
            column: None,
            message: "policies.yaml is empty".into(),
            fix: Some(
                "list the policies under `policies:` (one `- name: …` entry each); to manage no \
                 policy on purpose, write `policies: []`"
                    .into(),
            ),
        }),
        Ok(Some(root)) => c.top(&root),
    }
    c.out
        .errors
        .sort_by_key(|d| (d.line.unwrap_or(0), d.column.unwrap_or(0)));
    c.out
}

/// The known keys of one mapping, and the keys suggested for misspelt ones (a missing
/// `policies:` is not worth a second error when `polices:` was already flagged).
struct Keys<'n> {
    values: HashMap<&'static str, &'n Node>,
    suggested: HashSet<&'static str>,
}

impl<'n> Keys<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.values.get(key).copied()
    }
}

struct Checker<'p> {
    path: &'p Path,
    out: Checked,
}

fn diagnostic(path: &Path, pos: Pos, message: String, fix: Option<String>) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        line: Some(pos.line),
        column: Some(pos.column),
        message,
        fix,
    }
}

impl Checker<'_> {
    fn error(&mut self, pos: Pos, message: impl Into<String>, fix: impl Into<Option<String>>) {
        let d = diagnostic(self.path, pos, message.into(), fix.into());
        self.out.errors.push(d);
    }

    fn top(&mut self, root: &Node) {
        let Value::Map(entries) = &root.value else {
            let fix = match &root.value {
                Value::Seq(_) => "start the file with `policies:` and indent the list under it",
                _ => {
                    "write the manifest as keys: `organization:`, `prune:`, `ignore:`, `policies:`"
                }
            };
            self.error(
                root.pos,
                format!(
                    "the top level of policies.yaml must be a mapping of keys, found {}",
                    root.kind()
                ),
                Some(fix.to_owned()),
            );
            return;
        };
        let keys = self.keys(entries, &TOP_KEYS, "top-level key", &POLICY_KEYS);

        if let Some(v) = keys.get("organization") {
            self.out.organization = self.organization(v);
        }
        if let Some(v) = keys.get("prune") {
            self.out.prune = self.prune(v);
        }
        if let Some(v) = keys.get("ignore") {
            self.out.ignore = self.ignore(v);
        }
        match keys.get("policies") {
            Some(v) => self.policies(v),
            None if keys.suggested.contains("policies") => {}
            None => self.out.errors.push(Diagnostic {
                file: self.path.to_path_buf(),
                line: None,
                column: None,
                message: "policies.yaml has no `policies:` list".into(),
                fix: Some(
                    "add `policies:` with one `- name: …` entry per policy; to manage no policy on \
                     purpose, write `policies: []`"
                        .into(),
                ),
            }),
        }
        self.ignored_policies();
    }

    /// Checks the keys of one mapping: unknown and duplicate keys are errors. Returns the first
    /// value of each known key.
    fn keys<'n>(
        &mut self,
        entries: &'n [(Key, Node)],
        allowed: &[&'static str],
        what: &str,
        belongs_elsewhere: &[&'static str],
    ) -> Keys<'n> {
        let mut first: HashMap<&'static str, (&'n Node, Pos)> = HashMap::new();
        let mut suggested = HashSet::new();
        for (key, value) in entries {
            match allowed.iter().find(|k| **k == key.text) {
                Some(&known) => {
                    if let Some((_, at)) = first.get(known) {
                        let message = format!(
                            "duplicate key `{known}` (first written on line {})",
                            at.line
                        );
                        self.error(
                            key.pos,
                            message,
                            Some(
                                "keep only one: YAML would silently use the last one and ignore \
                                 the other"
                                    .to_owned(),
                            ),
                        );
                    } else {
                        first.insert(known, (value, key.pos));
                    }
                }
                None => {
                    let (fix, suggestion) = unknown_key_fix(&key.text, allowed, belongs_elsewhere);
                    suggested.extend(suggestion);
                    self.error(key.pos, format!("unknown {what} {:?}", key.text), Some(fix));
                }
            }
        }
        Keys {
            values: first.into_iter().map(|(k, (v, _))| (k, v)).collect(),
            suggested,
        }
    }

    /// A scalar's text, or an error saying what was expected. Null reads as its text (`~`, ``):
    /// callers that treat null specially check [`Node::is_null`] first.
    fn scalar<'n>(&mut self, node: &'n Node, key: &str, expected: &str) -> Result<&'n str, ()> {
        match &node.value {
            Value::Scalar { text, .. } => Ok(text),
            _ => {
                self.error(
                    node.pos,
                    format!("`{key}` must be {expected}, found {}", node.kind()),
                    Some(format!("write `{key}: <{expected}>` on one line")),
                );
                Err(())
            }
        }
    }

    fn organization(&mut self, v: &Node) -> Option<String> {
        if v.is_null() {
            self.error(
                v.pos,
                "`organization` has no value",
                Some(
                    "write the organization's name, or remove the line to take it from \
                     --organization or TFE_ORGANIZATION"
                        .to_owned(),
                ),
            );
            return None;
        }
        let text = self
            .scalar(v, "organization", "an organization name")
            .ok()?;
        if text.trim().is_empty() {
            self.error(
                v.pos,
                "`organization` is empty",
                Some(
                    "write the organization's name, or remove the line to take it from \
                     --organization or TFE_ORGANIZATION"
                        .to_owned(),
                ),
            );
            return None;
        }
        // The name goes into URL paths (`/organizations/:name/policies`).
        if let Some(bad) = text
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || "/?#%\\".contains(*c))
        {
            self.error(
                v.pos,
                format!("organization name {text:?} contains {bad:?}"),
                Some(
                    "write the organization's name exactly as the service shows it (letters, \
                     digits, '-' and '_')"
                        .to_owned(),
                ),
            );
            return None;
        }
        Some(text.to_owned())
    }

    fn prune(&mut self, v: &Node) -> bool {
        const FIX: &str = "write `prune: true` (delete remote policies not listed here) or \
                           `prune: false`; without the line, prune is true";
        match &v.value {
            Value::Scalar { text, plain: true } => match text.as_str() {
                "true" | "True" | "TRUE" => return true,
                "false" | "False" | "FALSE" => return false,
                "" | "~" | "null" | "Null" | "NULL" => {
                    self.error(v.pos, "`prune` has no value", Some(FIX.to_owned()))
                }
                "yes" | "Yes" | "YES" | "no" | "No" | "NO" | "on" | "On" | "ON" | "off" | "Off"
                | "OFF" | "y" | "n" => self.error(
                    v.pos,
                    format!("`prune` must be true or false, found {text:?}"),
                    Some(format!(
                        "{FIX} (YAML 1.2 reads yes/no/on/off as strings, not booleans)"
                    )),
                ),
                _ => self.error(
                    v.pos,
                    format!("`prune` must be true or false, found {text:?}"),
                    Some(FIX.to_owned()),
                ),
            },
            Value::Scalar { text, plain: false } => self.error(
                v.pos,
                format!("`prune` must be true or false, found the quoted string {text:?}"),
                Some(format!("remove the quotes: {FIX}")),
            ),
            _ => self.error(
                v.pos,
                format!("`prune` must be true or false, found {}", v.kind()),
                Some(FIX.to_owned()),
            ),
        }
        true
    }

    fn ignore(&mut self, v: &Node) -> Vec<String> {
        if v.is_null() {
            return Vec::new(); // `ignore:` with nothing after it ignores nothing, like `[]`.
        }
        let Value::Seq(items) = &v.value else {
            let fix = match &v.value {
                Value::Scalar { text, .. } => {
                    format!("write it as a list: `ignore: [{text:?}]`")
                }
                _ => "write a list of name globs: `ignore: [\"legacy-*\"]`".to_owned(),
            };
            self.error(
                v.pos,
                format!("`ignore` must be a list of name globs, found {}", v.kind()),
                Some(fix),
            );
            return Vec::new();
        };
        let mut globs = Vec::new();
        for item in items {
            let Ok(text) = self.scalar(item, "ignore", "a list of name globs") else {
                continue;
            };
            if item.is_null() || text.is_empty() {
                self.error(
                    item.pos,
                    "empty glob in `ignore`",
                    Some("remove the empty entry, or write a glob such as `legacy-*`".to_owned()),
                );
                continue;
            }
            match Glob::new(text) {
                Ok(_) => globs.push(text.to_owned()),
                Err(e) => self.error(
                    item.pos,
                    format!("invalid glob {text:?} in `ignore`: {}", e.kind()),
                    Some(
                        "globs use `*` (any characters), `?` (one character), `[abc]` and \
                         `{a,b}`; quote the glob in YAML"
                            .to_owned(),
                    ),
                ),
            }
        }
        globs
    }

    fn policies(&mut self, v: &Node) {
        let items = match &v.value {
            Value::Seq(items) => items,
            _ => {
                let (message, fix) = if v.is_null() {
                    (
                        "`policies` has no entries".to_owned(),
                        "list one `- name: …` entry per policy under it; to manage no policy on \
                         purpose, write `policies: []`",
                    )
                } else {
                    (
                        format!("`policies` must be a list, found {}", v.kind()),
                        "write one entry per policy, each starting with `- name: …`",
                    )
                };
                self.error(v.pos, message, Some(fix.to_owned()));
                return;
            }
        };
        let mut seen: HashMap<PolicyName, usize> = HashMap::new();
        for item in items {
            if let Some(entry) = self.policy(item, &mut seen) {
                self.out.entries.push(entry);
            }
        }
    }

    fn policy(&mut self, item: &Node, seen: &mut HashMap<PolicyName, usize>) -> Option<Entry> {
        let Value::Map(entries) = &item.value else {
            let fix = match &item.value {
                Value::Scalar { text, .. } if !item.is_null() => {
                    format!("write `- name: {text}` (add `mode:` and `file:` as needed)")
                }
                _ => "write each entry as `- name: <policy-name>`, optionally with `mode:` and \
                      `file:`"
                    .to_owned(),
            };
            self.error(
                item.pos,
                format!("a policy entry must be a mapping, found {}", item.kind()),
                Some(fix),
            );
            return None;
        };
        // Point at the entry's first key: that is the `- name:` line people look for.
        let pos = entries.first().map_or(item.pos, |(k, _)| k.pos);
        let keys = self.keys(entries, &POLICY_KEYS, "key in policy entry", &TOP_KEYS);

        let (name, owner) = match keys.get("name") {
            None if keys.suggested.contains("name") => (None, String::new()),
            None => {
                self.error(
                    pos,
                    "policy entry has no `name`",
                    Some("add `name: <policy-name>` to this entry".to_owned()),
                );
                (None, String::new())
            }
            Some(v) => self.name(v, seen),
        };
        let mode = match keys.get("mode") {
            None => Mode::DEFAULT,
            Some(v) => self.mode(v),
        };
        let file = match keys.get("file") {
            Some(v) => self.file(v, &owner),
            None => match (&name, keys.get("name")) {
                (Some(n), Some(v)) => Some(FileRef {
                    path: n.sentinel_path(),
                    pos: v.pos,
                    explicit: false,
                    owner: owner.clone(),
                }),
                _ => None,
            },
        };
        Some(Entry {
            name,
            mode,
            file,
            pos,
        })
    }

    /// The policy name (when valid and not a duplicate) and its text as written (for messages).
    fn name(
        &mut self,
        v: &Node,
        seen: &mut HashMap<PolicyName, usize>,
    ) -> (Option<PolicyName>, String) {
        const RULE: &str = "names may use only ASCII letters, digits, '-' and '_'";
        if v.is_null() {
            self.error(
                v.pos,
                "policy name is empty",
                Some(format!("give the policy a name: {RULE}")),
            );
            return (None, String::new());
        }
        let Ok(text) = self.scalar(v, "name", "a policy name") else {
            return (None, String::new());
        };
        match PolicyName::new(text) {
            Ok(name) => {
                if let Some(first) = seen.get(&name) {
                    self.error(
                        v.pos,
                        format!("policy {text:?} is listed twice (first on line {first})"),
                        Some(
                            "list each policy once: remove this entry or give it another name"
                                .to_owned(),
                        ),
                    );
                    return (None, text.to_owned());
                }
                seen.insert(name.clone(), v.pos.line);
                (Some(name), text.to_owned())
            }
            Err(InvalidName::Empty) => {
                self.error(
                    v.pos,
                    "policy name is empty",
                    Some(format!("give the policy a name: {RULE}")),
                );
                (None, String::new())
            }
            Err(InvalidName::BadCharacter { bad, .. }) => {
                let fix = match sanitize(text) {
                    Some(s) => format!("rename it, e.g. to `{s}`: {RULE}"),
                    None => format!("rename it: {RULE}"),
                };
                self.error(
                    v.pos,
                    format!("invalid policy name {text:?}: {bad:?} is not allowed in a name"),
                    Some(fix),
                );
                (None, text.to_owned())
            }
        }
    }

    fn mode(&mut self, v: &Node) -> Mode {
        const ALL: &str = "hard-mandatory, soft-mandatory or advisory";
        if v.is_null() {
            self.error(
                v.pos,
                "`mode` has no value",
                Some(format!(
                    "write one of {ALL}, or remove the line for the default (soft-mandatory)"
                )),
            );
            return Mode::DEFAULT;
        }
        let Ok(text) = self.scalar(v, "mode", "an enforcement mode") else {
            return Mode::DEFAULT;
        };
        if let Ok(mode) = text.parse::<Mode>() {
            return mode;
        }
        let fix = match mode_suggestion(text) {
            Some(m) if m.as_str().eq_ignore_ascii_case(text) => {
                format!("modes are spelled in lower case, as the API spells them: `{m}` ({ALL})")
            }
            Some(m) => format!("did you mean `{m}`? modes are {ALL}"),
            None => format!("modes are {ALL} (lower case, as the API spells them)"),
        };
        self.error(v.pos, format!("unknown mode {text:?}"), Some(fix));
        Mode::DEFAULT
    }

    fn file(&mut self, v: &Node, owner: &str) -> Option<FileRef> {
        const WHERE: &str = "write it relative to policies.yaml, inside the policy directory";
        if v.is_null() {
            self.error(
                v.pos,
                "`file` has no value",
                Some(format!(
                    "{WHERE}, or remove the line to use `<name>.sentinel` next to policies.yaml"
                )),
            );
            return None;
        }
        let text = self.scalar(v, "file", "a path").ok()?;
        let path = Path::new(text);
        let problem = if text.is_empty() {
            Some(("`file` is empty".to_owned(), WHERE.to_owned()))
        } else if text.contains('\0') {
            Some((
                format!("file path {text:?} contains a NUL character"),
                WHERE.to_owned(),
            ))
        } else if path.has_root() || path.is_absolute() {
            let suggestion = path
                .file_name()
                .map(|f| format!(", e.g. `{}`", f.to_string_lossy()))
                .unwrap_or_default();
            Some((
                format!("file path {text:?} is absolute"),
                format!("{WHERE}{suggestion}; the directory can then be checked out anywhere"),
            ))
        } else if path.components().any(|c| c == Component::ParentDir) {
            Some((
                format!("file path {text:?} uses `..`"),
                "policy files must live inside the policy directory: move the file in and \
                 write its path relative to policies.yaml"
                    .to_owned(),
            ))
        } else {
            None
        };
        if let Some((message, fix)) = problem {
            self.error(v.pos, message, Some(fix));
            return None;
        }
        Some(FileRef {
            path: text.to_owned(),
            pos: v.pos,
            explicit: true,
            owner: owner.to_owned(),
        })
    }

    /// A listed policy that an `ignore:` glob also matches would never be created or updated.
    fn ignored_policies(&mut self) {
        let mut builder = GlobSetBuilder::new();
        for g in &self.out.ignore {
            if let Ok(glob) = Glob::new(g) {
                builder.add(glob);
            }
        }
        let Ok(set) = builder.build() else { return };
        for entry in &self.out.entries {
            let Some(name) = &entry.name else { continue };
            if let Some(&i) = set.matches(name.as_str()).first() {
                self.out.warnings.push(diagnostic(
                    self.path,
                    entry.pos,
                    format!(
                        "policy {:?} matches the ignore glob {:?}: it will never be created, \
                         changed or deleted",
                        name.as_str(),
                        self.out.ignore[i]
                    ),
                    Some("remove the glob from `ignore:` or the policy from `policies:`".into()),
                ));
            }
        }
    }
}

/// The fix for an unknown key, and the key it suggests, if any.
fn unknown_key_fix(
    key: &str,
    allowed: &[&'static str],
    belongs_elsewhere: &[&str],
) -> (String, Option<&'static str>) {
    let list = match allowed {
        [init @ .., last] => format!(
            "{} and `{last}`",
            init.iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        [] => String::new(),
    };
    let is_top = allowed.contains(&"policies");
    let valid = if is_top {
        format!("the top-level keys are {list}")
    } else {
        format!("a policy entry takes {list}")
    };
    if belongs_elsewhere.contains(&key) {
        let fix = if is_top {
            format!(
                "`{key}` belongs in a policy entry: indent it under its `- name:` line in \
                 `policies:`"
            )
        } else {
            format!("`{key}` is a top-level key: move it out of the policy entry ({valid})")
        };
        return (fix, None);
    }
    let lowered = key.to_lowercase();
    let alias = KEY_ALIASES
        .iter()
        .find(|(alias, target)| *alias == lowered && allowed.contains(target))
        .map(|(_, target)| *target);
    match alias.or_else(|| closest(key, allowed.iter().copied())) {
        Some(k) => (format!("did you mean `{k}`? {valid}"), Some(k)),
        None => (valid, None),
    }
}

/// The mode the user probably meant: same letters in another case or with `_`/space instead of
/// `-`, or a near miss.
fn mode_suggestion(text: &str) -> Option<Mode> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let squashed = squash(text);
    Mode::ALL
        .into_iter()
        .find(|m| squash(m.as_str()) == squashed)
        .or_else(|| {
            let names = Mode::ALL.map(Mode::as_str);
            closest(text, names).and_then(|n| n.parse().ok())
        })
}

/// `a b/c` → `a-b-c`: a valid name close to an invalid one, for the fix. `None` when nothing
/// usable is left (`..`) or the name is not ASCII (no good guess for `política`).
fn sanitize(text: &str) -> Option<String> {
    if !text.is_ascii() {
        return None;
    }
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_owned();
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "policies/policies.yaml";

    fn ok(text: &str) -> Manifest {
        parse_manifest(text, Path::new(PATH))
            .unwrap_or_else(|e| panic!("expected a valid manifest, got {e:#?}"))
    }

    /// The errors, rendered as the user sees them.
    fn errors(text: &str) -> Vec<String> {
        match parse_manifest(text, Path::new(PATH)) {
            Ok(m) => panic!("expected errors, got {m:#?}"),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    fn one_error(text: &str) -> String {
        let e = errors(text);
        assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
        e.into_iter().next().unwrap()
    }

    #[test]
    fn a_full_manifest_loads_with_defaults_filled_in() {
        let m = ok(
            "# comment\norganization: acme\nprune: false\nignore: [\"legacy-*\"]\n\
                    policies:\n  - name: require-tags\n    mode: hard-mandatory\n\
                    \x20 - name: restrict-regions\n    file: network/restrict-regions.sentinel\n",
        );
        assert_eq!(m.organization.as_deref(), Some("acme"));
        assert!(!m.prune);
        assert_eq!(m.ignore, ["legacy-*"]);
        assert_eq!(m.policies.len(), 2);
        assert_eq!(m.policies[0].name.as_str(), "require-tags");
        assert_eq!(m.policies[0].mode, Mode::HardMandatory);
        assert_eq!(m.policies[0].file, "require-tags.sentinel");
        assert_eq!(m.policies[0].line, 6);
        assert_eq!(m.policies[1].mode, Mode::SoftMandatory);
        assert_eq!(m.policies[1].file, "network/restrict-regions.sentinel");
        assert!(m.warnings.is_empty());
    }

    #[test]
    fn minimal_manifest_defaults() {
        let m = ok("policies:\n  - name: a\n");
        assert_eq!(m.organization, None);
        assert!(m.prune);
        assert!(m.ignore.is_empty());
    }

    #[test]
    fn an_explicitly_empty_policy_list_is_valid() {
        assert!(ok("policies: []\n").policies.is_empty());
    }

    #[test]
    fn valid_oddities_crlf_bom_comments_empty_ignore() {
        let crlf = ok("policies:\r\n  - name: a\r\n    mode: advisory\r\n");
        assert_eq!(crlf.policies[0].mode, Mode::Advisory);
        let bom = ok("\u{feff}policies:\n  - name: a\n");
        assert_eq!(bom.policies[0].name.as_str(), "a");
        assert!(ok("ignore: []\npolicies: []\n").ignore.is_empty());
        assert!(ok("ignore:\npolicies: []\n").ignore.is_empty());
        ok("# top\npolicies: # the list\n  # first\n  - name: a # inline\n");
    }

    #[test]
    fn a_diagnostic_reads_like_rustc() {
        let e = one_error("policies:\n  - name: a\n    mode: Advisory\n");
        assert_eq!(
            e,
            "policies/policies.yaml:3:11: unknown mode \"Advisory\"\n  help: modes are spelled \
             in lower case, as the API spells them: `advisory` (hard-mandatory, soft-mandatory \
             or advisory)"
        );
    }

    #[test]
    fn bom_does_not_shift_columns() {
        let e = one_error("\u{feff}prune: maybe\npolicies: []\n");
        assert!(e.starts_with("policies/policies.yaml:1:8: "), "{e}");
    }

    #[test]
    fn empty_and_comment_only_manifests_are_errors() {
        for text in ["", "  \n", "# only a comment\n"] {
            let e = one_error(text);
            assert!(e.contains("policies.yaml is empty"), "{e}");
            assert!(e.contains("policies: []"), "{e}");
        }
    }

    #[test]
    fn a_missing_or_null_policies_list_is_an_error_never_no_policies() {
        assert!(one_error("organization: acme\n").contains("no `policies:` list"));
        let e = one_error("policies:\n");
        assert!(e.starts_with("policies/policies.yaml:1:"), "{e}");
        assert!(e.contains("no entries"), "{e}");
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        let e = one_error("- name: a\n");
        assert!(e.contains("found a list"), "{e}");
        assert!(e.contains("help: start the file with `policies:`"), "{e}");
        assert!(one_error("just words\n").contains("found a single value"));
    }

    #[test]
    fn policies_must_be_a_list_of_mappings() {
        assert!(one_error("policies: require-tags\n").contains("must be a list"));
        let e = one_error("policies:\n  - require-tags\n");
        assert!(e.starts_with("policies/policies.yaml:2:5:"), "{e}");
        assert!(e.contains("help: write `- name: require-tags`"), "{e}");
    }

    #[test]
    fn unknown_keys_at_each_level_suggest_the_nearest_key() {
        let e = one_error("polices: []\n");
        assert!(e.starts_with("policies/policies.yaml:1:1: unknown top-level key \"polices\""));
        assert!(e.contains("did you mean `policies`?"), "{e}");
        // Without a near miss, the missing list is reported too.
        assert_eq!(errors("zzz: []\n").len(), 2);

        let e = one_error("policies:\n  - nmae: a\n");
        assert!(e.starts_with("policies/policies.yaml:2:5: unknown key in policy entry \"nmae\""));
        assert!(e.contains("did you mean `name`?"), "{e}");

        let e = one_error("policies:\n  - name: a\n    enforcement_level: advisory\n");
        assert!(e.contains("did you mean `mode`?"), "{e}");

        let e = one_error("mode: advisory\npolicies: []\n");
        assert!(e.contains("belongs in a policy entry"), "{e}");

        let e = one_error("policies:\n  - name: a\n    prune: false\n");
        assert!(e.contains("is a top-level key"), "{e}");

        let e = one_error("zzz: 1\npolicies: []\n");
        assert!(
            e.contains("the top-level keys are `organization`, `prune`, `ignore` and `policies`")
        );
    }

    #[test]
    fn duplicate_keys_are_errors_at_each_level() {
        let e = one_error("policies: []\npolicies: []\n");
        assert!(
            e.starts_with(
                "policies/policies.yaml:2:1: duplicate key `policies` (first written on line 1)"
            ),
            "{e}"
        );
        let e = one_error("policies:\n  - name: a\n    mode: advisory\n    mode: hard-mandatory\n");
        assert!(
            e.starts_with("policies/policies.yaml:4:5: duplicate key `mode`"),
            "{e}"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_in_line_order() {
        let text = "organization: acme\nprunee: true\npolicies:\n  - name: a b\n    mode: strict\n\
                    \x20 - name: ok\n    file: /etc/passwd\n  - name: ok\n  - name: c\n    file: ../x.sentinel\n";
        let e = errors(text);
        let lines: Vec<&str> = e.iter().map(|d| d.split(": ").next().unwrap()).collect();
        assert_eq!(
            lines,
            [
                "policies/policies.yaml:2:1",
                "policies/policies.yaml:4:11",
                "policies/policies.yaml:5:11",
                "policies/policies.yaml:7:11",
                "policies/policies.yaml:8:11",
                "policies/policies.yaml:10:11",
            ],
            "{e:#?}"
        );
    }

    #[test]
    fn names_follow_the_service_rules() {
        for (name, fix) in [
            ("\"a b\"", "e.g. to `a-b`"),
            ("a/b", "e.g. to `a-b`"),
            ("..", "rename it: names may use only"),
            ("café", "rename it: names may use only ASCII"),
            ("a.sentinel", "e.g. to `a-sentinel`"),
        ] {
            let e = one_error(&format!("policies:\n  - name: {name}\n"));
            assert!(
                e.starts_with("policies/policies.yaml:2:11: invalid policy name"),
                "{e}"
            );
            assert!(e.contains(fix), "{name}: {e}");
        }
        for empty in ["", "''", "\"\"", "~"] {
            let e = one_error(&format!("policies:\n  - name: {empty}\n"));
            assert!(e.contains("policy name is empty"), "{empty}: {e}");
        }
        let e = one_error("policies:\n  - mode: advisory\n");
        assert!(e.contains("policy entry has no `name`"), "{e}");
        let e = one_error("policies:\n  - name: [a]\n");
        assert!(e.contains("must be a policy name, found a list"), "{e}");
    }

    #[test]
    fn numbers_and_booleans_are_names_as_written() {
        let m = ok("policies:\n  - name: 123\n  - name: true\n  - name: 0x10\n");
        let names: Vec<&str> = m.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["123", "true", "0x10"]);
    }

    #[test]
    fn duplicate_names_point_at_both_lines() {
        let e = one_error("policies:\n  - name: a\n  - name: b\n  - name: a\n");
        assert_eq!(
            e,
            "policies/policies.yaml:4:11: policy \"a\" is listed twice (first on line 2)\n  help: \
             list each policy once: remove this entry or give it another name"
        );
    }

    #[test]
    fn modes_are_exact_with_spelling_help() {
        let cases = [
            (
                "Hard-Mandatory",
                "lower case, as the API spells them: `hard-mandatory`",
            ),
            ("SOFT-MANDATORY", "`soft-mandatory`"),
            ("hard_mandatory", "did you mean `hard-mandatory`?"),
            ("soft mandatory", "did you mean `soft-mandatory`?"),
            ("advisry", "did you mean `advisory`?"),
            (
                "strict",
                "modes are hard-mandatory, soft-mandatory or advisory",
            ),
        ];
        for (mode, fix) in cases {
            let e = one_error(&format!("policies:\n  - name: a\n    mode: {mode}\n"));
            assert!(e.contains(&format!("unknown mode {mode:?}")), "{e}");
            assert!(e.contains(fix), "{mode}: {e}");
        }
        assert!(one_error("policies:\n  - name: a\n    mode:\n").contains("`mode` has no value"));
        let m = ok("policies:\n  - name: a\n    mode: \"advisory\"\n");
        assert_eq!(m.policies[0].mode, Mode::Advisory);
    }

    #[test]
    fn file_paths_stay_inside_the_directory() {
        for (file, msg) in [
            ("/etc/passwd", "is absolute"),
            ("../outside.sentinel", "uses `..`"),
            ("network/../../x.sentinel", "uses `..`"),
            ("''", "`file` is empty"),
            ("", "`file` has no value"),
        ] {
            let e = one_error(&format!("policies:\n  - name: a\n    file: {file}\n"));
            assert!(e.contains(msg), "{file}: {e}");
            assert!(e.contains("help: "), "{e}");
        }
        let m = ok("policies:\n  - name: a\n    file: ./sub/a.sentinel\n");
        assert_eq!(m.policies[0].file, "./sub/a.sentinel");
    }

    #[test]
    fn top_level_values_are_typed() {
        assert!(one_error("prune: yes\npolicies: []\n").contains("YAML 1.2"));
        assert!(one_error("prune: \"true\"\npolicies: []\n").contains("remove the quotes"));
        assert!(one_error("prune:\npolicies: []\n").contains("`prune` has no value"));
        assert!(!ok("prune: False\npolicies: []\n").prune);
        assert!(one_error("organization:\npolicies: []\n").contains("has no value"));
        assert!(one_error("organization: ''\npolicies: []\n").contains("is empty"));
        assert!(one_error("organization: my org\npolicies: []\n").contains("contains ' '"));
        assert!(one_error("organization: [a]\npolicies: []\n").contains("found a list"));
        let e = one_error("ignore: legacy-*\npolicies: []\n");
        assert!(
            e.contains("write it as a list: `ignore: [\"legacy-*\"]`"),
            "{e}"
        );
        let e = one_error("ignore: [\"legacy-[\", ok-*]\npolicies: []\n");
        assert!(
            e.starts_with("policies/policies.yaml:1:10: invalid glob \"legacy-[\""),
            "{e}"
        );
        assert!(one_error("ignore: ['']\npolicies: []\n").contains("empty glob"));
    }

    #[test]
    fn yaml_syntax_errors_have_a_line_and_a_fix() {
        let e = one_error("policies:\n\t- name: a\n");
        assert!(e.starts_with("policies/policies.yaml:2:"), "{e}");
        assert!(e.contains("help: YAML does not allow tabs"), "{e}");
        let e = one_error("policies: [\n");
        assert!(e.contains("invalid YAML"), "{e}");
        assert!(e.contains("help: "), "{e}");
    }

    #[test]
    fn alias_bombs_fail_fast_without_expanding() {
        let mut bomb = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        for (prev, next) in "abcdefghi".chars().zip("bcdefghij".chars()) {
            let refs = vec![format!("*{prev}"); 9].join(",");
            bomb.push_str(&format!("{next}: &{next} [{refs}]\n"));
        }
        bomb.push_str("policies: *j\n");
        let e = errors(&bomb);
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(e[0].starts_with("policies/policies.yaml:1:"), "{e:#?}");
        assert!(
            e[0].contains("YAML anchors (`&name`) are not supported"),
            "{e:#?}"
        );
        assert!(
            e[1].contains("YAML aliases (`*name`) are not supported"),
            "{e:#?}"
        );
    }

    #[test]
    fn a_policy_hidden_by_ignore_is_a_warning() {
        let m = ok("ignore: [\"legacy-*\"]\npolicies:\n  - name: legacy-x\n  - name: y\n");
        assert_eq!(m.warnings.len(), 1);
        assert!(m.warnings[0].to_string().starts_with(
            "policies/policies.yaml:3:5: policy \"legacy-x\" matches the ignore glob"
        ));
    }

    proptest::proptest! {
        /// Hostile input never panics the checker, and every problem comes with a fix.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            for d in check(&text, Path::new(PATH)).errors {
                proptest::prop_assert!(d.fix.is_some(), "{}", d);
            }
        }

        /// The same for text made of YAML's own building blocks, which reaches much deeper into
        /// the parser and the rules than random characters do.
        #[test]
        fn yaml_shaped_text_never_panics(parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "policies:", "organization:", "prune:", "ignore:", "\n", "\r\n", "  ", "- ",
                "name: ", "mode: ", "file: ", "a", "advisory", "../x", "/x", "&x ", "*x", "[",
                "]", "{", "}", ", ", ": ", "\t", "---\n", "'", "\"", "# c", "? ", "!!str ", "~",
                "|\n", "\u{feff}", "é",
            ]),
            0..80,
        )) {
            let text = parts.concat();
            for d in check(&text, Path::new(PATH)).errors {
                proptest::prop_assert!(d.fix.is_some(), "{}", d);
            }
        }
    }

    #[test]
    fn hostile_strings_are_escaped_in_messages() {
        let e = one_error("policies:\n  - name: \"a\\e[31mred\"\n");
        assert!(!e.contains('\u{1b}'), "{e:?}");
    }
}
