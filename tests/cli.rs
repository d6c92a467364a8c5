//! `validate`, `plan` and `sync` end to end: the real binary against the emulator.

use std::collections::BTreeMap;

use serde_json::json;
use tfe_policy_sync::emulator::{
    EmulatorConfig, Fault, Faults, RateLimit, Running, StoredPolicy, TokenConfig,
};
use tfe_policy_sync::model::Mode;

use crate::support::cli::{Cmd, PolicyDir, code_for};
use crate::support::emulator::{ORG, TOKEN, start_with, unlimited};

/// The organization's policies by name: (mode, code).
fn remote(server: &Running) -> BTreeMap<String, (Mode, Option<Vec<u8>>)> {
    let policies: Vec<StoredPolicy> = server.emulator.policies(ORG);
    let by_name: BTreeMap<_, _> = policies
        .iter()
        .map(|p| (p.name.clone(), (p.mode, p.code.clone())))
        .collect();
    assert_eq!(by_name.len(), policies.len(), "duplicate policy names");
    by_name
}

fn mutating_requests(server: &Running) -> Vec<String> {
    server
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.method != reqwest::Method::GET)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[track_caller]
fn assert_converged(server: &Running, dir: &PolicyDir, n: usize) {
    let remote = remote(server);
    assert_eq!(remote.len(), n);
    let modes = [Mode::HardMandatory, Mode::SoftMandatory, Mode::Advisory];
    for i in 0..n {
        let name = format!("policy-{i:03}");
        let (mode, code) = &remote[&name];
        assert_eq!(*mode, modes[i % 3], "{name}");
        assert_eq!(code.as_deref(), Some(code_for(&name).as_bytes()), "{name}");
    }
    let _ = dir;
}

#[tokio::test]
async fn sync_fills_a_fresh_organization_with_more_than_a_page_then_plan_shows_no_changes() {
    let server = start_with(unlimited()).await;
    let dir = PolicyDir::generated(120);

    Cmd::against(&server, "sync", dir.path())
        .run()
        .await
        .assert_code(0);
    assert_converged(&server, &dir, 120);

    server.emulator.clear_requests();
    let run = Cmd::against(&server, "plan", dir.path())
        .arg("--detailed-exitcode")
        .run()
        .await;
    run.assert_code(0);
    assert!(run.stdout.starts_with("No changes."), "{}", run.stdout);
    assert!(mutating_requests(&server).is_empty());
}

#[tokio::test]
async fn plan_makes_only_get_requests_and_exits_2_when_there_are_changes() {
    let server = start_with(unlimited()).await;
    server
        .emulator
        .insert_policy(ORG, "extra", Mode::Advisory, Some(b"x"));
    // One listed policy already there: a plan that deletes every remote policy is refused.
    server.emulator.insert_policy(
        ORG,
        "policy-000",
        Mode::HardMandatory,
        Some(code_for("policy-000").as_bytes()),
    );
    let dir = PolicyDir::generated(3);
    let before = remote(&server);

    let run = Cmd::against(&server, "plan", dir.path())
        .arg("--detailed-exitcode")
        .run()
        .await;
    run.assert_code(2);
    assert!(
        run.stdout
            .contains("Plan: 2 to create, 0 to update, 1 to delete"),
        "{}",
        run.stdout
    );
    assert_eq!(mutating_requests(&server), Vec::<String>::new());
    assert_eq!(remote(&server), before);

    // Without --detailed-exitcode a plan with changes is still a success.
    Cmd::against(&server, "plan", dir.path())
        .run()
        .await
        .assert_code(0);
    // And `sync --dry-run` is `plan`.
    Cmd::against(&server, "sync", dir.path())
        .arg("--dry-run")
        .run()
        .await
        .assert_code(0);
    assert_eq!(mutating_requests(&server), Vec::<String>::new());
}

/// One policy of each kind of drift, and the manifest that wants them back.
fn drifted() -> (PolicyDir, impl Fn(&Running)) {
    let dir = PolicyDir::new(
        "organization: my-organization\nignore: [\"legacy-*\"]\npolicies:\n\
         - name: wrong-mode\n  mode: hard-mandatory\n\
         - name: wrong-code\n  mode: advisory\n\
         - name: no-code\n  mode: soft-mandatory\n\
         - name: in-sync\n  mode: advisory\n\
         - name: missing\n  mode: advisory\n",
        &[
            ("wrong-mode.sentinel", "main = rule { true }\n"),
            ("wrong-code.sentinel", "main = rule { 1 < 2 }\n"),
            ("no-code.sentinel", ""),
            ("in-sync.sentinel", "main = rule { true }\n"),
            ("missing.sentinel", "main = rule { true }\n"),
        ],
    );
    let seed = |server: &Running| {
        let e = &server.emulator;
        e.insert_policy(
            ORG,
            "wrong-mode",
            Mode::Advisory,
            Some(b"main = rule { true }\n"),
        );
        e.insert_policy(
            ORG,
            "wrong-code",
            Mode::Advisory,
            Some(b"main = rule { false }\n"),
        );
        e.insert_policy(ORG, "no-code", Mode::SoftMandatory, None);
        e.insert_policy(
            ORG,
            "in-sync",
            Mode::Advisory,
            Some(b"main = rule { true }\n"),
        );
        e.insert_policy(
            ORG,
            "extra",
            Mode::HardMandatory,
            Some(b"main = rule { true }\n"),
        );
        e.insert_policy(ORG, "legacy-kept", Mode::Advisory, Some(b"old"));
    };
    (dir, seed)
}

#[tokio::test]
async fn plan_json_lists_every_kind_of_drift() {
    let server = start_with(unlimited()).await;
    let (dir, seed) = drifted();
    seed(&server);

    let run = Cmd::against(&server, "plan", dir.path())
        .args(["--output", "json"])
        .run()
        .await;
    run.assert_code(0);
    let by_name: BTreeMap<String, serde_json::Value> = run.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), c.clone()))
        .collect();
    assert_eq!(
        by_name.keys().collect::<Vec<_>>(),
        ["extra", "missing", "no-code", "wrong-code", "wrong-mode"]
    );
    assert_eq!(
        by_name["wrong-mode"],
        json!({"name": "wrong-mode", "action": "update",
               "mode": {"from": "advisory", "to": "hard-mandatory"}, "code_changed": false})
    );
    assert_eq!(by_name["wrong-code"]["code_changed"], true);
    assert_eq!(by_name["no-code"]["code_changed"], true);
    assert_eq!(by_name["missing"]["action"], "create");
    assert_eq!(
        by_name["extra"],
        json!({"name": "extra", "action": "delete"})
    );
    assert_eq!(
        run.json()["summary"],
        json!({"create": 1, "update": 3, "delete": 1, "unchanged": 1})
    );
}

#[tokio::test]
async fn sync_heals_every_kind_of_drift_and_leaves_ignored_policies_alone() {
    let server = start_with(unlimited()).await;
    let (dir, seed) = drifted();
    seed(&server);

    let run = Cmd::against(&server, "sync", dir.path())
        .args(["--output", "json"])
        .run()
        .await;
    run.assert_code(0);
    assert!(
        run.json()["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "ok"),
        "{}",
        run.stdout
    );

    // Deletions come last: after every create, upload and mode change was answered.
    let log = server.emulator.requests();
    let first_delete = log
        .iter()
        .position(|r| r.method == reqwest::Method::DELETE)
        .expect("the extra policy was deleted");
    let last_change = log
        .iter()
        .rposition(|r| r.is_mutating() && r.method != reqwest::Method::DELETE)
        .expect("changes were made");
    assert!(last_change < first_delete, "{log:#?}");

    let after = remote(&server);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        [
            "in-sync",
            "legacy-kept",
            "missing",
            "no-code",
            "wrong-code",
            "wrong-mode"
        ]
    );
    assert_eq!(after["wrong-mode"].0, Mode::HardMandatory);
    assert_eq!(
        after["wrong-code"].1.as_deref(),
        Some(&b"main = rule { 1 < 2 }\n"[..])
    );
    assert_eq!(after["no-code"].1.as_deref(), Some(&b""[..]));
    assert_eq!(
        after["legacy-kept"],
        (Mode::Advisory, Some(b"old".to_vec()))
    );

    let again = Cmd::against(&server, "plan", dir.path())
        .arg("--detailed-exitcode")
        .run()
        .await;
    again.assert_code(0);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
}

#[tokio::test]
async fn no_prune_flag_and_prune_false_keep_extra_policies() {
    let server = start_with(unlimited()).await;
    server
        .emulator
        .insert_policy(ORG, "extra", Mode::Advisory, Some(b"x"));
    let dir = PolicyDir::generated(1);

    let run = Cmd::against(&server, "sync", dir.path())
        .arg("--no-prune")
        .run()
        .await;
    run.assert_code(0);
    assert!(remote(&server).contains_key("extra"));
    assert!(
        run.stdout.contains("kept because pruning is off: extra"),
        "{}",
        run.stdout
    );

    let no_prune = PolicyDir::new(
        "prune: false\npolicies:\n  - name: policy-000\n    mode: hard-mandatory\n",
        &[("policy-000.sentinel", &code_for("policy-000"))],
    );
    Cmd::against(&server, "sync", no_prune.path())
        .run()
        .await
        .assert_code(0);
    assert!(remote(&server).contains_key("extra"));

    // Pruning on (the default): the extra policy goes.
    Cmd::against(&server, "sync", dir.path())
        .run()
        .await
        .assert_code(0);
    assert!(!remote(&server).contains_key("extra"));
}

#[tokio::test]
async fn an_empty_manifest_deletes_nothing_without_allow_empty() {
    let server = start_with(unlimited()).await;
    server
        .emulator
        .insert_policy(ORG, "a", Mode::Advisory, Some(b"x"));
    server
        .emulator
        .insert_policy(ORG, "b", Mode::Advisory, Some(b"x"));
    let dir = PolicyDir::new("policies: []\n", &[]);

    // `plan` refuses the same plan, so a pull request shows the refusal before `sync` meets it.
    let run = Cmd::against(&server, "plan", dir.path())
        .arg("--detailed-exitcode")
        .run()
        .await;
    run.assert_code(1);
    assert!(run.stderr.contains("--allow-empty"), "{}", run.stderr);

    let run = Cmd::against(&server, "sync", dir.path()).run().await;
    run.assert_code(1);
    assert!(run.stderr.contains("--allow-empty"), "{}", run.stderr);
    assert_eq!(mutating_requests(&server), Vec::<String>::new());
    assert_eq!(remote(&server).len(), 2);

    Cmd::against(&server, "sync", dir.path())
        .arg("--allow-empty")
        .run()
        .await
        .assert_code(0);
    assert!(remote(&server).is_empty());
}

/// Bug (audit, HIGH): only an empty manifest was guarded. A manifest whose every name is
/// unknown to the service (a wrong --dir, a typo, a wholesale rename) deleted the whole
/// organization. Refused like the empty manifest: exit 1, no request that changes anything.
#[tokio::test]
async fn a_manifest_matching_no_remote_policy_deletes_nothing_without_allow_empty() {
    let server = start_with(unlimited()).await;
    for name in ["a", "b"] {
        server
            .emulator
            .insert_policy(ORG, name, Mode::Advisory, Some(b"x"));
    }
    let dir = PolicyDir::new(
        "policies:\n  - name: typo-a\n    mode: advisory\n",
        &[("typo-a.sentinel", "main = rule { true }\n")],
    );

    for command in ["sync", "plan"] {
        let run = Cmd::against(&server, command, dir.path()).run().await;
        run.assert_code(1);
        for want in [
            "refusing to delete 2 remote policies",
            "--allow-empty",
            "--no-prune",
        ] {
            assert!(run.stderr.contains(want), "{command}: {}", run.stderr);
        }
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    assert_eq!(mutating_requests(&server), Vec::<String>::new());
    assert_eq!(
        remote(&server).keys().collect::<Vec<_>>(),
        ["a", "b"],
        "the emulator lost policies"
    );

    // --allow-empty says "yes, replace them all".
    Cmd::against(&server, "sync", dir.path())
        .arg("--allow-empty")
        .run()
        .await
        .assert_code(0);
    assert_eq!(remote(&server).keys().collect::<Vec<_>>(), ["typo-a"]);
}

#[tokio::test]
async fn a_wrong_token_fails_clearly_without_printing_it() {
    let server = start_with(unlimited()).await;
    let dir = PolicyDir::generated(1);
    let wrong = "wrong-secret-token-value";
    let run = Cmd::against(&server, "plan", dir.path())
        .env("TFE_TOKEN", wrong)
        .run()
        .await;
    run.assert_code(1);
    // Says what happened and where the rejected token came from.
    assert!(
        run.stderr.contains("401") && run.stderr.contains("rejected the API token from TFE_TOKEN"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(wrong) && !run.stdout.contains(wrong));
}

#[tokio::test]
async fn an_unknown_organization_names_every_possible_cause() {
    let server = start_with(unlimited()).await;
    let dir = PolicyDir::generated(1);
    let run = Cmd::against(&server, "sync", dir.path())
        .args(["--organization", "no-such-org"])
        .run()
        .await;
    run.assert_code(1);
    assert!(run.stderr.contains("no-such-org"), "{}", run.stderr);
    assert!(
        run.stderr.contains("not exist") || run.stderr.contains("does not"),
        "{}",
        run.stderr
    );
    assert_eq!(mutating_requests(&server), Vec::<String>::new());
}

#[tokio::test]
async fn a_token_without_the_right_to_manage_policies_fails_every_change() {
    let mut config = unlimited();
    config
        .tokens
        .push(TokenConfig::user("reader", "reader", [ORG]).without_manage_policies());
    let server = start_with(config).await;
    let dir = PolicyDir::generated(2);

    let run = Cmd::against(&server, "sync", dir.path())
        .env("TFE_TOKEN", "reader")
        .args(["--output", "json"])
        .run()
        .await;
    run.assert_code(1);
    let changes = run.json()["changes"].as_array().unwrap().clone();
    assert_eq!(changes.len(), 2);
    assert!(
        changes
            .iter()
            .all(|c| c["status"] == "failed" && c["error"].is_string())
    );
    assert!(remote(&server).is_empty());
}

#[tokio::test]
async fn every_token_source_works_in_the_contract_order() {
    let server = start_with(unlimited()).await;
    let dir = PolicyDir::generated(1);
    let port = server.addr.port();
    let plan = || Cmd::against(&server, "plan", dir.path()).env_remove("TFE_TOKEN");

    // --token-file wins over a wrong TFE_TOKEN.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut cmd = plan()
        .arg("--token-file")
        .arg(&token_file)
        .env("TFE_TOKEN", "wrong");
    let _ = cmd.command();
    cmd.run().await.assert_code(0);

    // TFE_TOKEN wins over TF_TOKEN_<host>.
    plan()
        .env("TFE_TOKEN", TOKEN)
        .env("TF_TOKEN_127_0_0_1", "wrong")
        .run()
        .await
        .assert_code(0);

    // TF_TOKEN_<host>, the host name with dots as underscores.
    plan()
        .env("TF_TOKEN_127_0_0_1", TOKEN)
        .run()
        .await
        .assert_code(0);

    // The Terraform CLI credentials file; the key carries the non-default port.
    let cmd = plan();
    let creds = cmd.home().join(".terraform.d");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(
        creds.join("credentials.tfrc.json"),
        json!({"credentials": {format!("127.0.0.1:{port}"): {"token": TOKEN}}}).to_string(),
    )
    .unwrap();
    cmd.run().await.assert_code(0);

    // And with none of them, a clear error that names the sources.
    let run = plan().run().await;
    run.assert_code(1);
    assert!(run.stderr.contains("TFE_TOKEN"), "{}", run.stderr);
}

#[tokio::test]
async fn sync_converges_in_one_run_despite_failures_before_and_after_applying() {
    let mut config = unlimited();
    config.faults = Faults {
        before: Fault::rate(0.2),
        after: Fault::rate(0.1).mutating(),
        seed: 7,
        ..Faults::default()
    };
    let server = start_with(config).await;
    let dir = PolicyDir::generated(40);

    Cmd::against(&server, "sync", dir.path())
        .run()
        .await
        .assert_code(0);
    server.emulator.set_faults(Faults::default());
    assert_converged(&server, &dir, 40);
}

#[tokio::test]
async fn sync_converges_under_a_tight_rate_limit() {
    let config = EmulatorConfig {
        rate_limit: Some(RateLimit {
            per_second: 20,
            burst: 5,
        }),
        ..EmulatorConfig::default()
    };
    let server = start_with(config).await;
    let dir = PolicyDir::generated(20);
    Cmd::against(&server, "sync", dir.path())
        .run()
        .await
        .assert_code(0);
    assert_converged(&server, &dir, 20);
    // 41 requests against a burst of 5 at 20 a second: the client had to pace itself, and
    // did so from the headers, meeting at most a few 429s (each waited out, not fatal).
    let log = server.emulator.requests();
    let limited = log.iter().filter(|r| r.status == 429).count();
    assert!(log.len() - limited >= 41, "{} requests", log.len());
    assert!(limited <= 3, "{limited} responses were 429");
}

#[tokio::test]
async fn sync_reports_a_failed_change_and_still_attempts_the_others() {
    let mut config = unlimited();
    // Every upload fails for good (more 500s than the client retries).
    config.faults = Faults {
        before: Fault::rate(1.0)
            .on(tfe_policy_sync::emulator::FaultTarget::Method(
                reqwest::Method::PUT,
            ))
            .with_status(500),
        ..Faults::default()
    };
    let server = start_with(config).await;
    server.emulator.insert_policy(
        ORG,
        "policy-000",
        Mode::Advisory,
        Some(code_for("policy-000").as_bytes()),
    );
    server
        .emulator
        .insert_policy(ORG, "extra", Mode::Advisory, Some(b"x"));
    let dir = PolicyDir::generated(2);

    // Two retries, not the default ten: the failure is certain, only its backoff would grow.
    let run = Cmd::against(&server, "sync", dir.path())
        .args(["--output", "json", "--max-retries", "2"])
        .run()
        .await;
    run.assert_code(1);
    let puts = server
        .emulator
        .requests()
        .iter()
        .filter(|r| r.method == reqwest::Method::PUT)
        .count();
    assert_eq!(puts, 3, "one upload, tried and retried twice");
    let changes = run.json()["changes"].as_array().unwrap().clone();
    let status = |name: &str| {
        changes
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap().to_owned())
    };
    // The mode change needs no upload and succeeds; the create fails at its upload.
    assert_eq!(status("policy-000").as_deref(), Some("ok"));
    assert_eq!(status("policy-001").as_deref(), Some("failed"));
    // Deletions wait for every create and update: the extra policy is still there.
    assert_eq!(status("extra").as_deref(), Some("failed"));
    assert!(remote(&server).contains_key("extra"));
    assert_eq!(remote(&server)["policy-000"].0, Mode::HardMandatory);
}

#[tokio::test]
async fn validate_accepts_the_example_directory_without_network() {
    // Every connection setting points at a live service: validate must not use it.
    let server = start_with(unlimited()).await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    let run = Cmd::new(&["validate", "--dir", dir])
        .env("TFE_ADDRESS", server.base_url())
        .env("TFE_TOKEN", TOKEN)
        .env("TFE_ORGANIZATION", ORG)
        .run()
        .await;
    run.assert_code(0);
    assert!(run.stdout.contains("valid, 5 policies"), "{}", run.stdout);
    assert!(server.emulator.requests().is_empty());
}

#[tokio::test]
async fn markdown_output_is_a_pull_request_comment() {
    let server = start_with(unlimited()).await;
    let dir = PolicyDir::generated(2);
    let run = Cmd::against(&server, "plan", dir.path())
        .args(["--output", "markdown"])
        .run()
        .await;
    run.assert_code(0);
    assert!(
        run.stdout
            .contains("| ➕ | `policy-000` | create | hard-mandatory | new |"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("```diff"), "{}", run.stdout);
}

#[tokio::test]
async fn every_invalid_directory_fails_validate_and_sync_without_a_single_request() {
    let server = start_with(unlimited()).await;
    let cases = crate::support::manifest_corpus::hostile_cases();
    assert!(cases.len() >= 25, "the corpus has {} cases", cases.len());
    for case in &cases {
        // A guard, not a timing: a FIFO or a huge file must never hang the tool.
        let guard = std::time::Duration::from_secs(30);
        let validate =
            tokio::time::timeout(guard, Cmd::new(&["validate", "--dir"]).arg(&case.dir).run())
                .await
                .unwrap_or_else(|_| panic!("{}: validate hung", case.name));
        assert_eq!(validate.code, Some(1), "{}: {validate:?}", case.name);
        for expected in [case.location, case.message] {
            assert!(
                validate.stderr.contains(expected),
                "{}: stderr lacks {expected:?}:\n{}",
                case.name,
                validate.stderr
            );
        }

        let sync = tokio::time::timeout(guard, Cmd::against(&server, "sync", &case.dir).run())
            .await
            .unwrap_or_else(|_| panic!("{}: sync hung", case.name));
        assert_eq!(sync.code, Some(1), "{}: {sync:?}", case.name);
        assert!(
            sync.stderr.contains(case.location),
            "{}: {}",
            case.name,
            sync.stderr
        );
        assert_eq!(
            server.emulator.requests().len(),
            0,
            "{}: sync of an invalid directory reached the API",
            case.name
        );
    }
}

#[tokio::test]
async fn valid_oddities_sync_byte_for_byte() {
    let server = start_with(unlimited()).await;
    for case in crate::support::manifest_corpus::valid_oddities() {
        Cmd::against(&server, "sync", &case.dir)
            .arg("--allow-empty")
            .run()
            .await
            .assert_code(0);
        let loaded = tfe_policy_sync::manifest::load(&case.dir).unwrap();
        let remote = remote(&server);
        for (name, policy) in &loaded.desired.policies {
            assert_eq!(
                remote[name.as_str()].1.as_deref(),
                Some(policy.code.as_slice()),
                "{}: {name}",
                case.name
            );
        }
    }
}

/// Bug: clap exits 2 on a usage error, which `plan --detailed-exitcode` reserves for "changes":
/// a typo in a CI script must not read as "there is a diff".
#[tokio::test]
async fn a_usage_error_exits_1_not_the_changes_status_2() {
    for args in [
        &["plan", "--detailed-exitcode", "--no-such-flag"][..],
        &["watch", "--interval", "0s"],
        &["sync", "--output", "yaml"],
        &["no-such-command"],
    ] {
        let run = Cmd::new(args).run().await;
        assert_eq!(run.code, Some(1), "{args:?}: {run:?}");
        assert!(run.stderr.contains("error"), "{args:?}: {}", run.stderr);
    }
    for args in [&["--help"][..], &["--version"], &["plan", "--help"]] {
        let run = Cmd::new(args).run().await;
        run.assert_code(0);
        assert!(!run.stdout.is_empty());
    }
}

/// Audit: `sync --dry-run` is `plan` (CONTRACT.md), but `sync` rejected `--detailed-exitcode`,
/// so a CI step could not ask `sync --dry-run` whether anything would change.
#[tokio::test]
async fn sync_dry_run_with_detailed_exitcode_exits_like_plan() {
    let server = start_with(unlimited()).await;
    let dir = PolicyDir::generated(2);
    let dry =
        || Cmd::against(&server, "sync", dir.path()).args(["--dry-run", "--detailed-exitcode"]);
    dry().run().await.assert_code(2);
    assert_eq!(mutating_requests(&server), Vec::<String>::new());

    Cmd::against(&server, "sync", dir.path())
        .run()
        .await
        .assert_code(0);
    dry().run().await.assert_code(0);

    // Without --dry-run it means nothing: a usage error (exit 1, never 2), before any request.
    server.emulator.clear_requests();
    let run = Cmd::against(&server, "sync", dir.path())
        .arg("--detailed-exitcode")
        .run()
        .await;
    run.assert_code(1);
    assert!(run.stderr.contains("--dry-run"), "{}", run.stderr);
    assert!(server.emulator.requests().is_empty());
}

/// Audit: the `-v` help said "warnings by default", but `watch` shows its reconcile lines
/// (info) without any `-v`.
#[tokio::test]
async fn the_verbose_help_says_watch_logs_its_reconciles_at_info() {
    for args in [&["--help"][..], &["watch", "--help"]] {
        let run = Cmd::new(args).run().await;
        run.assert_code(0);
        let line = run
            .stdout
            .lines()
            .skip_while(|l| !l.contains("--verbose"))
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            line.contains("watch") && line.contains("info"),
            "{args:?}: {line}"
        );
    }
}

/// Audit: an environment variable set to the empty string (a CI secret that is not defined,
/// `export TFE_ORGANIZATION=`) is unset, as most tools treat it, rather than an empty value:
/// TFE_ORGANIZATION="" failed with "the organization name is empty" instead of using the
/// manifest's, TFE_TOKEN="" hid TF_TOKEN_<host>, TFE_POLICY_DIR="" was a usage error, and
/// RUST_LOG="" silenced the log.
#[tokio::test]
async fn empty_environment_variables_count_as_unset() {
    let server = start_with(unlimited()).await;
    let dir = PolicyDir::new(
        "organization: my-organization\npolicies:\n  - name: a\n    mode: advisory\n",
        &[("a.sentinel", "main = rule { true }\n")],
    );
    let run = Cmd::against(&server, "plan", dir.path())
        .env("TFE_ORGANIZATION", "")
        .env("TFE_TOKEN", "")
        .env("TF_TOKEN_127_0_0_1", TOKEN)
        .env("RUST_LOG", "")
        .arg("-v")
        .run()
        .await;
    run.assert_code(0);
    assert!(run.stdout.contains("1 to create"), "{}", run.stdout);
    // -v applies: an empty RUST_LOG does not override it.
    assert!(run.stderr.contains("planned"), "{}", run.stderr);

    // TFE_POLICY_DIR="" is the default directory, `policies`.
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("policies")).unwrap();
    std::fs::write(work.path().join("policies/policies.yaml"), "policies: []\n").unwrap();
    let mut cmd = Cmd::new(&["validate"]).env("TFE_POLICY_DIR", "");
    cmd.command().current_dir(work.path());
    let run = cmd.run().await;
    run.assert_code(0);
    assert!(run.stdout.contains("policies: valid"), "{}", run.stdout);

    // With no other source, the missing-token error says TFE_TOKEN was empty.
    let run = Cmd::against(&server, "plan", dir.path())
        .env("TFE_TOKEN", "")
        .run()
        .await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("no API token found")
            && run.stderr.contains("TFE_TOKEN is set but empty"),
        "{}",
        run.stderr
    );
}

/// Bug: a malformed RUST_LOG (`tfe_policy_sync=loud`) was dropped without a word, so someone
/// debugging got the default warnings and no hint why their filter did nothing.
#[tokio::test]
async fn a_malformed_rust_log_is_named_and_the_default_level_used() {
    let server = start_with(unlimited()).await;
    let dir = PolicyDir::generated(1);
    let run = Cmd::against(&server, "plan", dir.path())
        .env("RUST_LOG", "tfe_policy_sync=loud")
        .run()
        .await;
    run.assert_code(0);
    assert!(
        run.stderr
            .contains("ignoring RUST_LOG=\"tfe_policy_sync=loud\""),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("planned"),
        "the default level shows no info lines: {}",
        run.stderr
    );
}
