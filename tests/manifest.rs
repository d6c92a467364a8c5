//! The policy directory on a real filesystem: the hostile corpus (every case rejected with the
//! file, the line and a fix), the valid oddities, the filesystem rules (symlinks, FIFOs, size,
//! encoding), unreferenced-file warnings, and the example directory shipped in `policies/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use tfe_policy_sync::manifest::{self, Diagnostic, Loaded, MANIFEST_FILE, MAX_POLICY_BYTES};
use tfe_policy_sync::model::Mode;

use crate::support::manifest_corpus::{
    STATIC_CASES, copy_fixture, fixtures, hostile_cases, mkfifo, valid_oddities,
};

fn load_ok(dir: &Path) -> Loaded {
    manifest::load(dir).unwrap_or_else(|e| panic!("{} should load, got:\n{e}", dir.display()))
}

fn load_err(dir: &Path) -> Vec<Diagnostic> {
    match manifest::load(dir) {
        Ok(l) => panic!("{} should be rejected, loaded {l:#?}", dir.display()),
        Err(e) => e.diagnostics,
    }
}

/// A fresh `<tmp>/policies` with the given files (path relative to it, content).
fn policy_dir(files: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = copy_fixture(Path::new("/nonexistent"));
    for (path, content) in files {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    (tmp, dir)
}

const CODE: &[u8] = b"main = rule { true }\n";

#[test]
fn the_example_policy_directory_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let loaded = load_ok(&dir);
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    let d = &loaded.desired;
    assert_eq!(d.organization.as_deref(), Some("my-organization"));
    assert!(d.prune);
    let modes: Vec<(&str, Mode, &str)> = d
        .policies
        .values()
        .map(|p| (p.name.as_str(), p.mode, p.file.as_str()))
        .collect();
    assert_eq!(
        modes,
        [
            (
                "deny-public-s3-buckets",
                Mode::HardMandatory,
                "deny-public-s3-buckets.sentinel"
            ),
            ("limit-cost", Mode::Advisory, "limit-cost.sentinel"),
            ("require-tags", Mode::HardMandatory, "require-tags.sentinel"),
            (
                "restrict-instance-types",
                Mode::SoftMandatory,
                "restrict-instance-types.sentinel"
            ),
            (
                "restrict-regions",
                Mode::SoftMandatory,
                "network/restrict-regions.sentinel"
            ),
        ]
    );
    for p in d.policies.values() {
        assert_eq!(p.code, fs::read(dir.join(&p.file)).unwrap(), "{}", p.name);
        let code = String::from_utf8(p.code.clone()).unwrap();
        assert!(code.contains("main = rule"), "{} has no main rule", p.name);
    }
}

#[test]
fn every_hostile_case_is_rejected_naming_the_file_the_line_and_the_fix() {
    let cases = hostile_cases();
    assert!(
        cases.len() >= 25,
        "the corpus has only {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let err = match manifest::load(&case.dir) {
            Ok(_) => {
                failures.push(format!("{}: loaded", case.name));
                continue;
            }
            Err(e) => e,
        };
        let text = err.to_string();
        if !text.contains(case.location) || !text.contains(case.message) {
            failures.push(format!(
                "{}: expected {:?} and {:?} in:\n{text}",
                case.name, case.location, case.message
            ));
        }
        for d in &err.diagnostics {
            if d.fix.is_none() {
                failures.push(format!("{}: no fix in {d}", case.name));
            }
            // Paths read as `<dir>/<relative path>`, the way the user typed `--dir`.
            if !d.file.starts_with(&case.dir) {
                failures.push(format!(
                    "{}: {} is not under --dir",
                    case.name,
                    d.file.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_static_fixture_has_an_expectation() {
    let mut on_disk: Vec<String> = fs::read_dir(fixtures().join("invalid"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = STATIC_CASES.iter().map(|c| c.0.to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn the_valid_oddities_load() {
    let cases = valid_oddities();
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    for expected in [
        "crlf-line-endings",
        "utf8-bom",
        "comments-everywhere",
        "empty-ignore",
    ] {
        assert!(names.contains(&expected), "missing valid case {expected}");
    }
    for case in &cases {
        let loaded = load_ok(&case.dir);
        assert!(
            loaded.warnings.is_empty(),
            "{}: {:#?}",
            case.name,
            loaded.warnings
        );
        let policies = &loaded.desired.policies;
        match case.name.as_str() {
            "crlf-line-endings" => {
                assert_eq!(policies["require-tags"].mode, Mode::HardMandatory);
                assert_eq!(
                    policies["require-tags"].code,
                    b"# CRLF kept byte for byte\r\nmain = rule { true }\r\n"
                );
            }
            "utf8-bom" => {
                assert_eq!(policies["require-tags"].mode, Mode::Advisory);
                assert!(policies["require-tags"].code.starts_with(b"\xef\xbb\xbf"));
            }
            "comments-everywhere" => {
                assert_eq!(policies["require-tags"].mode, Mode::Advisory);
            }
            "empty-ignore" | "null-ignore" => assert!(loaded.desired.ignore.is_empty()),
            "empty-policy-list" => assert!(policies.is_empty()),
            _ => {}
        }
    }
}

/// The hang guard: `load` runs on its own thread, and the test fails (instead of hanging CI)
/// if it has not returned after a minute. Not a timing test: any answer at all passes.
fn load_with_hang_guard(dir: PathBuf) -> Result<Loaded, manifest::ManifestError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(manifest::load(&dir)));
    rx.recv_timeout(Duration::from_secs(60))
        .expect("load blocked: it must never open a FIFO for reading")
}

#[test]
fn a_fifo_is_rejected_without_blocking() {
    let (_tmp, dir) = policy_dir(&[(MANIFEST_FILE, b"policies:\n  - name: piped\n")]);
    mkfifo(&dir.join("piped.sentinel"));
    let err = load_with_hang_guard(dir.clone()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2:11: {} is a FIFO (named pipe), not a regular file\n  help: policy code must \
             be a regular file",
            dir.join(MANIFEST_FILE).display(),
            dir.join("piped.sentinel").display()
        )
    );

    // The same for the manifest itself.
    let (_tmp, dir) = policy_dir(&[]);
    mkfifo(&dir.join(MANIFEST_FILE));
    assert!(load_with_hang_guard(dir).is_err());
}

#[test]
fn exactly_10_mib_is_accepted_and_one_byte_more_is_not() {
    let (_tmp, dir) = policy_dir(&[(MANIFEST_FILE, b"policies:\n  - name: big\n")]);
    let file = fs::File::create(dir.join("big.sentinel")).unwrap();
    file.set_len(MAX_POLICY_BYTES).unwrap();
    let loaded = load_ok(&dir);
    assert_eq!(
        loaded.desired.policies["big"].code.len() as u64,
        MAX_POLICY_BYTES
    );

    file.set_len(MAX_POLICY_BYTES + 1).unwrap();
    let err = load_err(&dir);
    assert_eq!(
        err[0].to_string(),
        format!(
            "{}: the policy is 10485761 bytes, more than the 10 MiB (10485760 bytes) the service \
             accepts\n  help: make the policy smaller (move shared code into a Sentinel module, \
             data into parameters); the service rejects uploads over 10 MiB",
            dir.join("big.sentinel").display()
        )
    );
}

#[test]
fn every_error_of_a_directory_is_reported_at_once() {
    let (_tmp, dir) = policy_dir(&[
        (
            MANIFEST_FILE,
            b"organization: my-organization\n\
              policies:\n\
              \x20 - name: require-tags\n\
              \x20   mode: Hard-Mandatory\n\
              \x20 - name: restrict regions\n\
              \x20 - name: limit-cost\n\
              \x20 - name: deny-public-s3\n\
              \x20   fiel: deny.sentinel\n\
              \x20 - name: latin1\n",
        ),
        ("require-tags.sentinel", CODE),
        ("latin1.sentinel", b"# caf\xe9\nmain = rule { true }\n"),
        ("deny-public-s3.sentinel", CODE),
    ]);
    let errors: Vec<String> = load_err(&dir).iter().map(ToString::to_string).collect();
    let m = dir.join(MANIFEST_FILE).display().to_string();
    let expected = [
        format!("{m}:4:11: unknown mode \"Hard-Mandatory\""),
        format!("{m}:5:11: invalid policy name \"restrict regions\""),
        format!("{m}:8:5: unknown key in policy entry \"fiel\""),
        format!("{m}:6:11: no file for policy \"limit-cost\""),
        format!(
            "{}:1:6: not valid UTF-8 (byte 0xe9)",
            dir.join("latin1.sentinel").display()
        ),
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    for (got, want) in errors.iter().zip(&expected) {
        assert!(
            got.starts_with(want.as_str()),
            "expected {want:?}, got {got:?}"
        );
    }
    assert!(errors[2].contains("did you mean `file`?"), "{}", errors[2]);
}

#[test]
fn unreferenced_sentinel_files_are_warnings() {
    let (_tmp, dir) = policy_dir(&[
        (MANIFEST_FILE, b"policies:\n  - name: used\n"),
        ("used.sentinel", CODE),
        ("forgotten.sentinel", CODE),
        ("network/old-regions.sentinel", CODE),
        ("deep/er/still/lost.sentinel", CODE),
        ("README.md", b"not a policy"),
        // Not policies: hidden directories and the Sentinel CLI's test data.
        (".git/hooks/x.sentinel", CODE),
        ("..data/used.sentinel", CODE),
        ("test/used/mock-tfplan-v2.sentinel", CODE),
        ("testdata/mock-tfrun.sentinel", CODE),
    ]);
    // A symlink loop must not hang the search.
    std::os::unix::fs::symlink(&dir, dir.join("network/loop")).unwrap();

    let loaded = load_ok(&dir);
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            format!(
                "{}: not referenced by any policy in policies.yaml\n  help: list it in \
                 policies.yaml (`- name: lost` with `file: deep/er/still/lost.sentinel`), or \
                 delete the file if it is no longer used",
                dir.join("deep/er/still/lost.sentinel").display()
            ),
            format!(
                "{}: not referenced by any policy in policies.yaml\n  help: list it in \
                 policies.yaml (`- name: forgotten`), or delete the file if it is no longer used",
                dir.join("forgotten.sentinel").display()
            ),
            format!(
                "{}: not referenced by any policy in policies.yaml\n  help: list it in \
                 policies.yaml (`- name: old-regions` with `file: network/old-regions.sentinel`), \
                 or delete the file if it is no longer used",
                dir.join("network/old-regions.sentinel").display()
            ),
        ]
    );
}

#[test]
fn a_file_referenced_through_another_spelling_is_not_unreferenced() {
    let (_tmp, dir) = policy_dir(&[
        (
            MANIFEST_FILE,
            b"policies:\n  - name: a\n    file: ./network/./a.sentinel\n",
        ),
        ("network/a.sentinel", CODE),
    ]);
    let loaded = load_ok(&dir);
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    assert_eq!(loaded.desired.policies["a"].file, "./network/./a.sentinel");
}

#[test]
fn symlinks_that_stay_inside_the_directory_are_followed() {
    // The layout of a Kubernetes ConfigMap volume: every file is a symlink into `..data`,
    // itself a symlink to a timestamped directory.
    let (_tmp, dir) = policy_dir(&[
        (
            "..2024_01_01/policies.yaml",
            b"policies:\n  - name: require-tags\n    mode: advisory\n",
        ),
        ("..2024_01_01/require-tags.sentinel", CODE),
    ]);
    let link = |target: &str, name: &str| {
        std::os::unix::fs::symlink(target, dir.join(name)).unwrap();
    };
    link("..2024_01_01", "..data");
    link("..data/policies.yaml", "policies.yaml");
    link("..data/require-tags.sentinel", "require-tags.sentinel");

    let loaded = load_ok(&dir);
    assert!(loaded.warnings.is_empty(), "{:#?}", loaded.warnings);
    assert_eq!(loaded.desired.policies["require-tags"].code, CODE);
}

#[test]
fn a_policy_directory_reached_through_a_symlink_loads() {
    let (tmp, dir) = policy_dir(&[
        (MANIFEST_FILE, b"policies:\n  - name: a\n"),
        ("a.sentinel", CODE),
    ]);
    let link = tmp.path().join("current");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    assert_eq!(load_ok(&link).desired.policies.len(), 1);
}

#[test]
fn a_missing_file_suggests_the_one_that_exists() {
    let (_tmp, dir) = policy_dir(&[
        (
            MANIFEST_FILE,
            b"policies:\n  - name: restrict-regions\n  - name: require-tag\n",
        ),
        ("network/restrict-regions.sentinel", CODE),
        ("require-tags.sentinel", CODE),
    ]);
    let errors: Vec<String> = load_err(&dir).iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].contains("help: did you mean `network/restrict-regions.sentinel`?"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("help: did you mean `require-tags.sentinel`?"),
        "{}",
        errors[1]
    );
}

#[test]
fn an_unreadable_policy_file_names_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, dir) = policy_dir(&[
        (MANIFEST_FILE, b"policies:\n  - name: secret\n"),
        ("secret.sentinel", CODE),
    ]);
    let file = dir.join("secret.sentinel");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o000)).unwrap();
    // root reads anything; the rule can only be seen as another user.
    if fs::read(&file).is_ok() {
        return;
    }
    let errors = load_err(&dir);
    assert_eq!(errors[0].file, file);
    assert!(errors[0].message.contains("cannot read"), "{}", errors[0]);
}
