//! The filesystem half of the manifest: reading `policies.yaml` and the policy files with the
//! rules that need the disk, and finding `.sentinel` files no policy references.
//!
//! Every file is checked with a symlink-following `stat` before it is opened, and opened
//! non-blocking, so a FIFO (or a file swapped for one in between) is rejected instead of hanging
//! the process; reads stop one byte past the size limit, so a huge file is never read whole.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::ManifestError;
use super::parse::{self, FileRef};
use super::suggest::closest;
use super::{Diagnostic, Loaded, MANIFEST_FILE, MAX_MANIFEST_BYTES, MAX_POLICY_BYTES};
use crate::model::{DesiredPolicy, DesiredState, PolicyName};

/// How deep the search for unreferenced `.sentinel` files descends, and how many directory
/// entries it looks at, at most: enough for any policy repository, and bounded when `--dir`
/// points somewhere huge by mistake.
const SCAN_MAX_DEPTH: usize = 32;
const SCAN_MAX_ENTRIES: usize = 100_000;

/// Directories the unreferenced-file search skips besides hidden ones: where the Sentinel CLI
/// keeps test cases and mock data (`mock-tfplan-v2.sentinel`), which are not policies.
const SCAN_SKIP_DIRS: [&str; 2] = ["test", "testdata"];

/// Reads and validates the policy directory `dir`: `policies.yaml` and every policy file it
/// references. Fails with every problem found; succeeds with the desired state and warnings
/// (unreferenced `.sentinel` files, a listed policy that `ignore:` hides).
///
/// Paths in diagnostics are `dir` joined with the relative path, so they read the way the user
/// typed `--dir`.
pub fn load(dir: &Path) -> Result<Loaded, ManifestError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let root = directory(dir)?;
    let text = read_manifest(dir, &manifest_path)?;
    let checked = parse::check(&text, &manifest_path);
    let sentinels = find_sentinel_files(dir);

    let mut errors = checked.errors;
    let mut policies = BTreeMap::new();
    let mut referenced = HashSet::new();
    for entry in checked.entries {
        let Some(file) = &entry.file else { continue };
        match read_policy(dir, &root, &manifest_path, file, &sentinels) {
            Ok((code, canonical)) => {
                referenced.insert(canonical);
                if let Some(name) = entry.name {
                    let policy = DesiredPolicy {
                        name: name.clone(),
                        mode: entry.mode,
                        file: file.path.clone(),
                        code,
                    };
                    policies.insert(name, policy);
                }
            }
            Err(d) => errors.push(d),
        }
    }
    if !errors.is_empty() {
        return Err(ManifestError {
            diagnostics: errors,
        });
    }

    let mut warnings = checked.warnings;
    warnings.extend(
        sentinels
            .iter()
            .filter(|f| {
                f.canonical
                    .as_ref()
                    .is_some_and(|c| !referenced.contains(c))
            })
            .map(|f| unreferenced(dir, &f.rel)),
    );
    Ok(Loaded {
        desired: DesiredState {
            organization: checked.organization,
            prune: checked.prune,
            ignore: checked.ignore,
            policies,
        },
        warnings,
    })
}

fn whole_file(file: &Path, message: String, fix: &str) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        line: None,
        column: None,
        message,
        fix: Some(fix.to_owned()),
    }
}

/// The policy directory, resolved (symlinks included) for the "inside the directory" check.
fn directory(dir: &Path) -> Result<PathBuf, ManifestError> {
    const FIX: &str = "pass the directory that holds policies.yaml with --dir or TFE_POLICY_DIR";
    let fail = |message: String| ManifestError::one(whole_file(dir, message, FIX));
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(fail("the policy directory is not a directory".into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(fail("the policy directory does not exist".into()));
        }
        Err(e) => return Err(fail(format!("cannot read the policy directory: {e}"))),
    }
    fs::canonicalize(dir).map_err(|e| fail(format!("cannot resolve the policy directory: {e}")))
}

fn read_manifest(dir: &Path, path: &Path) -> Result<String, ManifestError> {
    let fail = |message: String, fix: &str| ManifestError::one(whole_file(path, message, fix));
    let bytes = match read_regular_file(path, MAX_MANIFEST_BYTES) {
        Ok(bytes) => bytes,
        Err(ReadError::NotFound) => {
            return Err(fail(
                "no policies.yaml in the policy directory".into(),
                &missing_manifest_fix(dir),
            ));
        }
        Err(ReadError::NotRegular(kind)) => {
            return Err(fail(
                format!("policies.yaml is {kind}, not a regular file"),
                "policies.yaml must be a file listing the policies",
            ));
        }
        Err(ReadError::TooLarge(size)) => {
            return Err(fail(
                format!(
                    "policies.yaml is {size} bytes, more than the {MAX_MANIFEST_BYTES} bytes a \
                     manifest may have"
                ),
                "policies.yaml lists names and modes only; keep policy code in .sentinel files",
            ));
        }
        Err(ReadError::Io(e)) => {
            return Err(fail(
                format!("cannot read policies.yaml: {e}"),
                "check that the file is readable by this user",
            ));
        }
    };
    String::from_utf8(bytes).map_err(|e| {
        ManifestError::one(not_utf8(
            path,
            e.as_bytes(),
            e.utf8_error(),
            "save policies.yaml as UTF-8",
        ))
    })
}

/// The help for a missing manifest: a near miss in the directory, or how to create one.
fn missing_manifest_fix(dir: &Path) -> String {
    let near_miss = fs::read_dir(dir).ok().and_then(|entries| {
        entries.flatten().find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let lower = name.to_lowercase();
            (lower == "policies.yaml" || lower == "policies.yml").then_some(name)
        })
    });
    match near_miss {
        Some(name) => format!("rename {name} to {MANIFEST_FILE}"),
        None => "create policies.yaml listing the policies (see the README, \"The policy \
                 directory\"), or point --dir at the directory that holds it"
            .into(),
    }
}

fn read_policy(
    dir: &Path,
    root: &Path,
    manifest: &Path,
    file: &FileRef,
    sentinels: &[Found],
) -> Result<(Vec<u8>, PathBuf), Diagnostic> {
    let full = dir.join(&file.path);
    let shown = full.display();
    let at_manifest = |message: String, fix: String| Diagnostic {
        file: manifest.to_path_buf(),
        line: Some(file.pos.line),
        column: Some(file.pos.column),
        message,
        fix: Some(fix),
    };
    let missing = || {
        let message = if file.explicit {
            format!("file {:?} does not exist ({shown})", file.path)
        } else {
            format!(
                "no file for policy {:?}: {shown} does not exist",
                file.owner
            )
        };
        let base = if file.explicit {
            "fix the path in `file:` (it is relative to policies.yaml)".to_owned()
        } else {
            format!(
                "create {shown}, or add `file:` with the path of the policy's code relative to \
                 policies.yaml"
            )
        };
        let fix = match nearest_sentinel(&file.path, sentinels) {
            Some(near) => format!("did you mean `{near}`? {base}"),
            None => base,
        };
        at_manifest(message, fix)
    };

    match fs::symlink_metadata(&full) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(missing());
        }
        Err(e) => return Err(at_manifest(format!("cannot read {shown}: {e}"), perm_fix())),
    }
    let canonical = match fs::canonicalize(&full) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(at_manifest(
                format!("{shown} is a symbolic link to a file that does not exist"),
                "point the link at a file inside the policy directory, or replace it with the \
                 file itself"
                    .into(),
            ));
        }
        Err(e) => {
            return Err(at_manifest(
                format!("cannot resolve {shown}: {e}"),
                perm_fix(),
            ));
        }
    };
    if !canonical.starts_with(root) {
        return Err(at_manifest(
            format!(
                "{shown} resolves to {}, outside the policy directory",
                canonical.display()
            ),
            format!(
                "policy files must live inside the policy directory ({}): copy the file in \
                 instead of linking to it",
                dir.display()
            ),
        ));
    }
    let code = match read_regular_file(&canonical, MAX_POLICY_BYTES) {
        Ok(code) => code,
        Err(ReadError::NotFound) => return Err(missing()),
        Err(ReadError::NotRegular(kind)) => {
            let fix = if kind == DIRECTORY {
                "point `file:` at the policy's .sentinel file, not at a directory"
            } else {
                "policy code must be a regular file"
            };
            return Err(at_manifest(
                format!("{shown} is {kind}, not a regular file"),
                fix.into(),
            ));
        }
        Err(ReadError::TooLarge(size)) => {
            return Err(whole_file(
                &full,
                format!(
                    "the policy is {size} bytes, more than the 10 MiB ({MAX_POLICY_BYTES} bytes) \
                     the service accepts"
                ),
                "make the policy smaller (move shared code into a Sentinel module, data into \
                 parameters); the service rejects uploads over 10 MiB",
            ));
        }
        Err(ReadError::Io(e)) => {
            return Err(whole_file(
                &full,
                format!("cannot read the policy: {e}"),
                &perm_fix(),
            ));
        }
    };
    if let Err(e) = std::str::from_utf8(&code) {
        return Err(not_utf8(
            &full,
            &code,
            e,
            "Sentinel policies are UTF-8 text: save the file as UTF-8",
        ));
    }
    Ok((code, canonical))
}

fn perm_fix() -> String {
    "check that the file and its directories are readable by this user".into()
}

/// The error for bytes that are not UTF-8, pointing at the first bad byte.
fn not_utf8(file: &Path, bytes: &[u8], e: std::str::Utf8Error, fix: &str) -> Diagnostic {
    let valid = &bytes[..e.valid_up_to()];
    let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    // The prefix is valid UTF-8 by definition, so columns count characters as editors do.
    let column = String::from_utf8_lossy(&valid[line_start..])
        .chars()
        .count()
        + 1;
    let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
    let bad = bytes.get(e.valid_up_to()).copied().unwrap_or_default();
    Diagnostic {
        file: file.to_path_buf(),
        line: Some(line),
        column: Some(column),
        message: format!("not valid UTF-8 (byte 0x{bad:02x})"),
        fix: Some(fix.into()),
    }
}

const DIRECTORY: &str = "a directory";

#[derive(Debug)]
enum ReadError {
    NotFound,
    /// What it is instead: "a directory", "a FIFO (named pipe)", …
    NotRegular(&'static str),
    /// The size seen (at least `max + 1`).
    TooLarge(u64),
    Io(io::Error),
}

fn kind_of(t: fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() { DIRECTORY } else { "not a file" }
}

/// Reads a regular file of at most `max` bytes without ever blocking: `stat` (following
/// symlinks) first, then a non-blocking open, then `fstat` on the handle in case the path was
/// swapped in between, then a read capped at `max + 1` bytes.
fn read_regular_file(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let io_err = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => ReadError::NotFound,
        _ => ReadError::Io(e),
    };
    let meta = fs::metadata(path).map_err(io_err)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind_of(meta.file_type())));
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge(meta.len()));
    }
    let file = open_nonblocking(path).map_err(io_err)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind_of(meta.file_type())));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(max) as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge(meta.len().max(bytes.len() as u64)));
    }
    Ok(bytes)
}

fn open_nonblocking(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

/// A `.sentinel` file found in the directory.
#[derive(Debug)]
struct Found {
    /// Relative to the policy directory.
    rel: PathBuf,
    /// `None` for a dangling symlink.
    canonical: Option<PathBuf>,
}

/// Every `.sentinel` file under `dir`, recursively, sorted. Symlinked directories are not
/// followed (no loops), hidden entries are skipped (`.git`, and the `..data` directory of a
/// Kubernetes ConfigMap volume whose files are linked from the top level), and so are the
/// Sentinel CLI's `test`/`testdata` directories.
fn find_sentinel_files(dir: &Path) -> Vec<Found> {
    let mut found = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), PathBuf::new(), 0usize)];
    let mut seen_entries = 0usize;
    while let Some((abs, rel, depth)) = pending.pop() {
        let Ok(entries) = fs::read_dir(&abs) else {
            continue;
        };
        for entry in entries.flatten() {
            seen_entries += 1;
            if seen_entries > SCAN_MAX_ENTRIES {
                found.sort_by(|a: &Found, b| a.rel.cmp(&b.rel));
                return found;
            }
            let name = entry.file_name();
            let name_str = name.to_string_lossy();
            if name_str.starts_with('.') {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let entry_rel = rel.join(&name);
            if kind.is_dir() {
                if depth < SCAN_MAX_DEPTH && !SCAN_SKIP_DIRS.contains(&name_str.as_ref()) {
                    pending.push((entry.path(), entry_rel, depth + 1));
                }
            } else if name_str.ends_with(".sentinel") {
                let path = entry.path();
                if kind.is_symlink() && fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                    continue;
                }
                found.push(Found {
                    rel: entry_rel,
                    canonical: fs::canonicalize(&path).ok(),
                });
            }
        }
    }
    found.sort_by(|a, b| a.rel.cmp(&b.rel));
    found
}

/// A `.sentinel` file with the same name elsewhere, or a near-miss spelling.
fn nearest_sentinel(wanted: &str, sentinels: &[Found]) -> Option<String> {
    let rels: Vec<String> = sentinels
        .iter()
        .map(|f| f.rel.to_string_lossy().into_owned())
        .collect();
    let wanted_name = Path::new(wanted).file_name();
    sentinels
        .iter()
        .zip(&rels)
        .find(|(f, _)| f.rel.file_name() == wanted_name)
        .map(|(_, r)| r.clone())
        .or_else(|| closest(wanted, rels.iter().map(String::as_str)).map(str::to_owned))
}

fn unreferenced(dir: &Path, rel: &Path) -> Diagnostic {
    let rel_str = rel.to_string_lossy();
    let stem = rel
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let at_top = rel.parent().is_none_or(|p| p.as_os_str().is_empty());
    let fix = match PolicyName::new(stem.as_str()) {
        Ok(name) if at_top => format!(
            "list it in policies.yaml (`- name: {name}`), or delete the file if it is no longer \
             used"
        ),
        Ok(name) => format!(
            "list it in policies.yaml (`- name: {name}` with `file: {rel_str}`), or delete the \
             file if it is no longer used"
        ),
        Err(_) => format!(
            "list it in policies.yaml with `file: {rel_str}` and a name of letters, digits, '-' \
             and '_', or delete the file if it is no longer used"
        ),
    };
    Diagnostic {
        file: dir.join(rel),
        line: None,
        column: None,
        message: "not referenced by any policy in policies.yaml".into(),
        fix: Some(fix),
    }
}
