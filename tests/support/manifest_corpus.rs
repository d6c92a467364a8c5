//! The hostile-input corpus: broken or malicious policy directories that must all be rejected,
//! and the valid oddities that must all be accepted.
//!
//! Static cases live in `tests/fixtures/manifest/invalid/<case>/` and `valid/<case>/` (one
//! directory per case, named after it). Cases the repository cannot hold — a FIFO, symlinks, a
//! file over 10 MiB, non-UTF-8 bytes, a missing directory — are built here at test time.
//!
//! Every case is materialised into a fresh temporary directory as `<tmp>/policies`, so the
//! tests can put things *beside* the policy directory (a symlink target outside it) and so a
//! test may modify its copy freely. Use it like this:
//!
//! ```ignore
//! for case in support::manifest_corpus::hostile_cases() {
//!     // e.g. `tfe-policy-sync validate --dir {case.dir}`: exit 1, no request, and
//!     let err = tfe_policy_sync::manifest::load(&case.dir).unwrap_err().to_string();
//!     assert!(err.contains(case.location), "{}: {err}", case.name);
//!     assert!(err.contains(case.message), "{}: {err}", case.name);
//! }
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// One materialised policy directory and what the error about it must say.
pub struct Case {
    /// The case's name (the fixture directory's name for static cases).
    pub name: &'static str,
    /// The policy directory, to pass to `load` or `--dir`.
    pub dir: PathBuf,
    /// Where the error must point: the file's name relative to the policy directory, with
    /// `:line:column:` where the problem has a line (e.g. `policies.yaml:3:11:`). The full
    /// message prints the file as `<dir>/<relative path>`, so this is a substring of it.
    pub location: &'static str,
    /// A substring of the message that says what is wrong.
    pub message: &'static str,
    /// Holds the temporary directory; it is deleted when the case is dropped.
    pub tmp: TempDir,
}

/// A valid but unusual directory (`crlf-line-endings`, `utf8-bom`, …) that must load.
pub struct ValidCase {
    pub name: String,
    pub dir: PathBuf,
    pub tmp: TempDir,
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/manifest")
}

/// Expectations for every static fixture in `invalid/`: (case, location, message).
#[rustfmt::skip]
pub const STATIC_CASES: &[(&str, &str, &str)] = &[
    ("no-manifest", "policies.yaml:", "no policies.yaml in the policy directory"),
    ("manifest-named-yml", "policies.yaml:", "rename policies.yml to policies.yaml"),
    ("empty-manifest", "policies.yaml:", "policies.yaml is empty"),
    ("comments-only-manifest", "policies.yaml:", "policies.yaml is empty"),
    ("invalid-yaml", "policies.yaml:4:", "invalid YAML"),
    ("invalid-yaml-unclosed-quote", "policies.yaml:1:15:", "invalid YAML"),
    ("tab-indentation", "policies.yaml:2:", "YAML does not allow tabs"),
    ("tab-before-key", "policies.yaml:2:11:", "YAML does not allow tabs"),
    ("top-level-list", "policies.yaml:1:1:", "must be a mapping of keys, found a list"),
    ("top-level-scalar", "policies.yaml:1:1:", "must be a mapping of keys, found a single value"),
    ("unknown-top-level-key", "policies.yaml:2:1:", "unknown top-level key \"polices\""),
    ("unknown-policy-key", "policies.yaml:3:5:", "unknown key in policy entry \"enforcement_level\""),
    ("policy-key-at-top-level", "policies.yaml:1:1:", "`mode` belongs in a policy entry"),
    ("duplicate-top-level-key", "policies.yaml:4:1:", "duplicate key `prune` (first written on line 1)"),
    ("duplicate-policy-key", "policies.yaml:4:5:", "duplicate key `mode` (first written on line 3)"),
    ("duplicate-policy-name", "policies.yaml:4:11:", "policy \"require-tags\" is listed twice (first on line 2)"),
    ("name-with-space", "policies.yaml:2:11:", "invalid policy name \"require tags\""),
    ("name-with-slash", "policies.yaml:2:11:", "invalid policy name \"team/require-tags\""),
    ("name-dotdot", "policies.yaml:2:11:", "invalid policy name \"..\""),
    ("name-non-ascii", "policies.yaml:2:11:", "invalid policy name \"política-de-etiquetas\""),
    ("name-empty", "policies.yaml:2:11:", "policy name is empty"),
    ("name-missing", "policies.yaml:2:5:", "policy entry has no `name`"),
    ("mode-unknown", "policies.yaml:3:11:", "unknown mode \"strict\""),
    ("mode-wrong-case", "policies.yaml:3:11:", "spelled in lower case, as the API spells them: `hard-mandatory`"),
    ("mode-underscore", "policies.yaml:3:11:", "did you mean `soft-mandatory`?"),
    ("file-missing", "policies.yaml:3:11:", "no file for policy \"limit-cost\""),
    ("file-absolute", "policies.yaml:3:11:", "file path \"/etc/hostname\" is absolute"),
    ("file-dotdot", "policies.yaml:3:11:", "file path \"../require-tags.sentinel\" uses `..`"),
    ("file-dotdot-nested", "policies.yaml:3:11:", "uses `..`"),
    ("yaml-alias-bomb", "policies.yaml:1:4:", "YAML anchors (`&name`) are not supported"),
    ("yaml-anchor-and-alias", "policies.yaml:2:5:", "YAML anchors (`&name`) are not supported"),
    ("yaml-tag", "policies.yaml:3:", "YAML tags (`!tag`, `!!str`) are not supported"),
    ("multiple-documents", "policies.yaml:3:", "a second YAML document starts here"),
    ("policies-missing", "policies.yaml:", "policies.yaml has no `policies:` list"),
    ("policies-null", "policies.yaml:2:1:", "`policies` has no entries"),
    ("policies-not-a-list", "policies.yaml:1:11:", "`policies` must be a list, found a single value"),
    ("policy-entry-not-a-mapping", "policies.yaml:2:5:", "a policy entry must be a mapping"),
    ("prune-not-a-bool", "policies.yaml:1:8:", "`prune` must be true or false, found \"yes\""),
    ("ignore-bad-glob", "policies.yaml:1:10:", "invalid glob \"legacy-[abc\""),
    ("ignore-not-a-list", "policies.yaml:1:9:", "`ignore` must be a list of name globs"),
    ("organization-empty", "policies.yaml:1:15:", "`organization` is empty"),
];

/// Every hostile case, static and built: at least one per rule of the contract's "policy
/// directory" section and per item of the hardening issue's "Hostile input" list.
pub fn hostile_cases() -> Vec<Case> {
    let mut cases: Vec<Case> = STATIC_CASES
        .iter()
        .map(|&(name, location, message)| {
            let (tmp, dir) = copy_fixture(&fixtures().join("invalid").join(name));
            Case {
                name,
                dir,
                location,
                message,
                tmp,
            }
        })
        .collect();
    cases.extend(built_cases());
    cases
}

/// Every valid oddity in `tests/fixtures/manifest/valid/`.
pub fn valid_oddities() -> Vec<ValidCase> {
    let mut names: Vec<String> = fs::read_dir(fixtures().join("valid"))
        .expect("the valid fixtures exist")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let (tmp, dir) = copy_fixture(&fixtures().join("valid").join(&name));
            ValidCase { name, dir, tmp }
        })
        .collect()
}

/// A fresh `<tmp>/policies` holding a copy of `fixture` (or nothing, if it does not exist).
pub fn copy_fixture(fixture: &Path) -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("create a temporary directory");
    let dir = tmp.path().join("policies");
    fs::create_dir(&dir).unwrap();
    if fixture.exists() {
        copy_tree(fixture, &dir);
    }
    (tmp, dir)
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            fs::create_dir(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

const ONE_POLICY: &str = "policies:\n  - name: require-tags\n";
const CODE: &[u8] = b"main = rule { true }\n";

/// A policy directory with `policies.yaml` = `manifest`, built by `build`.
fn built(
    name: &'static str,
    location: &'static str,
    message: &'static str,
    manifest: Option<&str>,
    build: impl FnOnce(&Path),
) -> Case {
    let tmp = tempfile::tempdir().expect("create a temporary directory");
    let dir = tmp.path().join("policies");
    fs::create_dir(&dir).unwrap();
    if let Some(m) = manifest {
        fs::write(dir.join("policies.yaml"), m).unwrap();
    }
    build(&dir);
    Case {
        name,
        dir,
        location,
        message,
        tmp,
    }
}

/// Makes a FIFO at `path` with mkfifo(3).
pub fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(
        rc,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// The cases git cannot hold or that need paths outside the policy directory.
fn built_cases() -> Vec<Case> {
    let with_file = |file: &str| format!("policies:\n  - name: require-tags\n    file: {file}\n");
    vec![
        built(
            "directory-missing",
            "policies:",
            "the policy directory does not exist",
            None,
            |dir| fs::remove_dir(dir).unwrap(),
        ),
        built(
            "directory-is-a-file",
            "policies:",
            "the policy directory is not a directory",
            None,
            |dir| {
                fs::remove_dir(dir).unwrap();
                fs::write(dir, "not a directory").unwrap();
            },
        ),
        built(
            "manifest-is-a-directory",
            "policies.yaml:",
            "policies.yaml is a directory, not a regular file",
            None,
            |dir| fs::create_dir(dir.join("policies.yaml")).unwrap(),
        ),
        built(
            "manifest-is-a-fifo",
            "policies.yaml:",
            "policies.yaml is a FIFO (named pipe), not a regular file",
            None,
            |dir| mkfifo(&dir.join("policies.yaml")),
        ),
        built(
            "manifest-not-utf8",
            "policies.yaml:2:14:",
            "not valid UTF-8 (byte 0xe9)",
            None,
            |dir| {
                // Latin-1 "é", as an editor set to ISO-8859-1 would save it.
                fs::write(dir.join("policies.yaml"), b"policies:\n  - name: caf\xe9\n").unwrap();
            },
        ),
        built(
            "manifest-too-large",
            "policies.yaml:",
            "more than the 1048576 bytes a manifest may have",
            None,
            |dir| {
                let f = fs::File::create(dir.join("policies.yaml")).unwrap();
                f.set_len(1024 * 1024 + 1).unwrap(); // sparse: costs no disk
            },
        ),
        built(
            "file-is-a-directory",
            "policies.yaml:2:11:",
            "require-tags.sentinel is a directory, not a regular file",
            Some(ONE_POLICY),
            |dir| fs::create_dir(dir.join("require-tags.sentinel")).unwrap(),
        ),
        built(
            "file-is-a-fifo",
            "policies.yaml:2:11:",
            "require-tags.sentinel is a FIFO (named pipe), not a regular file",
            Some(ONE_POLICY),
            |dir| mkfifo(&dir.join("require-tags.sentinel")),
        ),
        built(
            "file-symlink-to-a-fifo",
            "policies.yaml:2:11:",
            "is a FIFO (named pipe), not a regular file",
            Some(ONE_POLICY),
            |dir| {
                mkfifo(&dir.join("pipe"));
                symlink(Path::new("pipe"), &dir.join("require-tags.sentinel"));
            },
        ),
        built(
            "file-symlink-outside",
            "policies.yaml:2:11:",
            "outside the policy directory",
            Some(ONE_POLICY),
            |dir| {
                let outside = dir.parent().unwrap().join("outside.sentinel");
                fs::write(&outside, CODE).unwrap();
                symlink(&outside, &dir.join("require-tags.sentinel"));
            },
        ),
        built(
            "file-relative-symlink-outside",
            "policies.yaml:2:11:",
            "outside the policy directory",
            Some(ONE_POLICY),
            |dir| {
                fs::write(dir.parent().unwrap().join("outside.sentinel"), CODE).unwrap();
                symlink(
                    Path::new("../outside.sentinel"),
                    &dir.join("require-tags.sentinel"),
                );
            },
        ),
        built(
            "file-under-symlinked-directory-outside",
            "policies.yaml:3:11:",
            "outside the policy directory",
            Some(&with_file("shared/require-tags.sentinel")),
            |dir| {
                let shared = dir.parent().unwrap().join("shared");
                fs::create_dir(&shared).unwrap();
                fs::write(shared.join("require-tags.sentinel"), CODE).unwrap();
                symlink(&shared, &dir.join("shared"));
            },
        ),
        built(
            "file-symlink-to-etc",
            "policies.yaml:3:11:",
            "outside the policy directory",
            Some(&with_file("passwd.sentinel")),
            |dir| symlink(Path::new("/etc/passwd"), &dir.join("passwd.sentinel")),
        ),
        built(
            "file-dangling-symlink",
            "policies.yaml:2:11:",
            "is a symbolic link to a file that does not exist",
            Some(ONE_POLICY),
            |dir| {
                symlink(
                    Path::new("gone.sentinel"),
                    &dir.join("require-tags.sentinel"),
                )
            },
        ),
        built(
            "file-over-10-mib",
            "require-tags.sentinel:",
            "the policy is 10485761 bytes, more than the 10 MiB",
            Some(ONE_POLICY),
            |dir| {
                let f = fs::File::create(dir.join("require-tags.sentinel")).unwrap();
                f.set_len(10 * 1024 * 1024 + 1).unwrap(); // sparse: costs no disk
            },
        ),
        built(
            "file-not-utf8",
            "require-tags.sentinel:3:22:",
            "not valid UTF-8 (byte 0xff)",
            Some(ONE_POLICY),
            |dir| {
                fs::write(
                    dir.join("require-tags.sentinel"),
                    b"# tags\nimport \"strings\"\nmain = rule { \"a\" is \xff\xfe }\n",
                )
                .unwrap();
            },
        ),
    ]
}
