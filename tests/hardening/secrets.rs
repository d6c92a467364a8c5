//! The token never shows — not on stdout or stderr, at any log level including trace, in any
//! report format, on success or on any failure, not even when the service echoes it back — and
//! a token file other users can read is warned about. Plain http is refused off loopback.

use std::os::unix::fs::PermissionsExt;

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::json;
use tfe_policy_sync::emulator::{EmulatorConfig, Fault, Faults, Running, TokenConfig};
use tfe_policy_sync::model::Mode;

use crate::support::cli::{Cmd, PolicyDir, Run, code_for};
use crate::support::emulator::{ORG, start_with, unlimited};
use crate::support::hardening::{Proc, poll_until};

/// Distinctive enough that finding it, or its middle, anywhere is certainly a leak.
const SECRET: &str = "hardening-SeCrEt-4f1d9c.atlasv1.q8w7e6r5t4y3u2i1o0p";
/// A manage-less token of another user, just as secret.
const READER_SECRET: &str = "reader-SeCrEt-77aa21.atlasv1.m1n2b3v4c5x6z7l8k9j";
/// A token the service does not know: it must not be shown either.
const WRONG_SECRET: &str = "wrong-SeCrEt-0b0b0b.atlasv1.a9s8d7f6g5h4j3k2l1";
const OUTPUTS: [&str; 3] = ["human", "json", "markdown"];

fn config() -> EmulatorConfig {
    let mut c = unlimited();
    c.tokens.push(TokenConfig::user(SECRET, "owner", [ORG]));
    c.tokens
        .push(TokenConfig::user(READER_SECRET, "reader", [ORG]).without_manage_policies());
    c
}

/// `command` against `server` with `token`, at the most verbose level there is.
fn verbose(server: &Running, command: &str, dir: &PolicyDir, token: &str) -> Cmd {
    Cmd::against(server, command, dir.path())
        .env("TFE_TOKEN", token)
        .env("RUST_LOG", "trace")
        .arg("-vvvv")
}

/// Neither stream holds any of the tokens, whole or by its distinctive middle.
#[track_caller]
fn assert_no_token(what: &str, stdout: &str, stderr: &str) {
    for token in [SECRET, READER_SECRET, WRONG_SECRET] {
        for (stream, text) in [("stdout", stdout), ("stderr", stderr)] {
            assert!(
                !text.contains(token),
                "{what}: the token is on {stream}:\n{text}"
            );
        }
    }
    for (stream, text) in [("stdout", stdout), ("stderr", stderr)] {
        assert!(
            !text.contains("atlasv1"),
            "{what}: part of a token is on {stream}:\n{text}"
        );
    }
}

#[track_caller]
fn assert_clean(what: &str, run: &Run, code: i32) {
    assert_eq!(run.code, Some(code), "{what}: {run:#?}");
    assert_no_token(what, &run.stdout, &run.stderr);
}

/// A directory wanting one of each change against what [`seed`] puts in the organization.
fn drifted() -> PolicyDir {
    PolicyDir::new(
        "policies:\n  - name: changed\n    mode: hard-mandatory\n  - name: added\n    mode: advisory\n\
         \x20 - name: large\n    mode: advisory\n",
        &[
            ("changed.sentinel", "main = rule { 1 < 2 }\n"),
            ("added.sentinel", &code_for("added")),
            ("large.sentinel", &"# padding\n".repeat(200)),
        ],
    )
}

/// Empties the organization, then puts in a policy to change and one to delete.
fn seed(server: &Running) {
    let e = &server.emulator;
    for p in e.policies(ORG) {
        e.remove_policy(&p.id);
    }
    e.insert_policy(
        ORG,
        "changed",
        Mode::Advisory,
        Some(b"main = rule { false }\n"),
    );
    e.insert_policy(
        ORG,
        "removed",
        Mode::Advisory,
        Some(b"main = rule { true }\n"),
    );
}

#[tokio::test]
async fn trace_logs_and_every_report_of_plan_and_sync_never_hold_the_token() {
    // Uploads over 1 KiB are refused (413) while JSON bodies still fit: `large` always fails.
    let mut c = config();
    c.max_upload = 1024;
    let server = start_with(c).await;
    seed(&server);
    let dir = drifted();

    for output in OUTPUTS {
        let run = verbose(&server, "plan", &dir, SECRET)
            .args(["--output", output])
            .run()
            .await;
        assert_clean(&format!("plan --output {output}"), &run, 0);
        assert!(
            run.stderr.contains("TRACE"),
            "trace logging is on: {}",
            run.stderr
        );
    }

    // Failures of every kind: rejected token, unknown organization, no right to manage.
    for command in ["plan", "sync"] {
        let run = verbose(&server, command, &dir, WRONG_SECRET).run().await;
        assert_clean(&format!("{command} with a wrong token"), &run, 1);
        let run = verbose(&server, command, &dir, SECRET)
            .args(["--organization", "no-such-organization"])
            .run()
            .await;
        assert_clean(&format!("{command} of an unknown organization"), &run, 1);
    }
    let run = verbose(&server, "sync", &dir, READER_SECRET)
        .args(["--output", "json"])
        .run()
        .await;
    assert_clean("sync without the right to manage policies", &run, 1);

    // A 503 before acting and 502s after applying, retried (and logged) until the changes go
    // through; the oversized upload fails with 413 and fails the run.
    for output in OUTPUTS {
        seed(&server);
        server.emulator.clear_requests();
        server.emulator.set_faults(Faults {
            before: Fault::next(1),
            after: Fault::next(2).mutating(),
            ..Faults::default()
        });
        let run = verbose(&server, "sync", &dir, SECRET)
            .args(["--output", output])
            .run()
            .await;
        assert_clean(&format!("sync --output {output} under faults"), &run, 1);
        assert!(run.stdout.contains("large"), "{}", run.stdout);
        let statuses: Vec<u16> = server
            .emulator
            .requests()
            .iter()
            .map(|r| r.status)
            .collect();
        for status in [503, 502, 413] {
            assert!(statuses.contains(&status), "no {status} in {statuses:?}");
        }
    }
}

/// A service (or a proxy in front of it) that puts the request's `Authorization` header in its
/// error bodies: a JSON:API 422, an HTML 403 page, and an HTML 400 page for the list of the
/// organization `echo-list`.
async fn echoing_service() -> String {
    async fn handle(req: Request) -> Response {
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let html = |status: StatusCode| {
            let page = format!(
                "<html><body><h1>{status}</h1><pre>Authorization: {auth}\n{auth}</pre></body></html>"
            );
            (status, [(header::CONTENT_TYPE, "text/html")], page).into_response()
        };
        let json_api = |status: StatusCode, body: serde_json::Value| {
            let ct = [(header::CONTENT_TYPE, "application/vnd.api+json")];
            (status, ct, body.to_string()).into_response()
        };
        let path = req.uri().path().to_owned();
        match req.method().as_str() {
            "GET" if path.contains("/organizations/echo-list/") => html(StatusCode::BAD_REQUEST),
            "GET" if path.ends_with("/policies") => json_api(
                StatusCode::OK,
                json!({"data": [{"id": "pol-kept", "type": "policies",
                    "attributes": {"name": "kept", "enforcement-level": "advisory",
                                   "updated-at": "2024-01-01T00:00:00.000Z"},
                    "links": {"self": "/api/v2/policies/pol-kept",
                              "download": "/api/v2/policies/pol-kept/download"}}],
                       "meta": {"pagination": {"current-page": 1, "next-page": null}}}),
            ),
            "GET" if path.ends_with("/download") => "main = rule { true }\n".into_response(),
            "POST" => json_api(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"errors": [{"status": "422", "title": "invalid attribute",
                    "detail": format!("rejected request with Authorization: {auth}")}]}),
            ),
            _ => html(StatusCode::FORBIDDEN),
        }
    }
    crate::client::stub(axum::Router::new().fallback(any(handle))).await
}

#[tokio::test]
async fn a_service_that_echoes_the_token_back_does_not_make_the_tool_print_it() {
    let base = echoing_service().await;
    let dir = PolicyDir::new(
        "policies:\n  - name: kept\n    mode: hard-mandatory\n  - name: new-one\n    mode: advisory\n",
        &[
            ("kept.sentinel", "main = rule { true }\n"),
            ("new-one.sentinel", "main = rule { true }\n"),
        ],
    );
    let cmd = |command: &str, org: &str| {
        Cmd::new(&[
            command,
            "--dir",
            dir.path().to_str().unwrap(),
            "--address",
            &base,
        ])
        .env("TFE_TOKEN", SECRET)
        .env("TFE_ORGANIZATION", org)
        .env("RUST_LOG", "trace")
        .arg("-vvvv")
    };
    for output in OUTPUTS {
        // The mode change meets the HTML 403, the create the JSON 422: both echo the token.
        let run = cmd("sync", "acme").args(["--output", output]).run().await;
        assert_clean(&format!("sync --output {output}"), &run, 1);
        let reported = format!("{}{}", run.stdout, run.stderr);
        assert!(reported.contains("403"), "{reported}");
        assert!(
            reported.contains("rejected request"),
            "the 422's detail is shown: {reported}"
        );
    }
    for command in ["plan", "sync"] {
        let run = cmd(command, "echo-list").run().await;
        assert_clean(&format!("{command} whose list fails"), &run, 1);
        assert!(run.stderr.contains("400"), "{}", run.stderr);
    }
}

#[tokio::test]
async fn the_emulator_command_never_prints_its_tokens() {
    let emulator = Proc::spawn(
        Cmd::new(&[
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--token",
            SECRET,
            "-vvvv",
        ])
        .env("RUST_LOG", "trace"),
    );
    poll_until("the listening line", || {
        emulator.stdout_so_far().contains('\n')
    })
    .await;
    let first = emulator.stdout_so_far();
    let base = first
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("listening on "))
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    let dir = PolicyDir::generated(2);
    for (token, code) in [(SECRET, 0), (WRONG_SECRET, 1)] {
        let run = Cmd::new(&[
            "sync",
            "--dir",
            dir.path().to_str().unwrap(),
            "--address",
            &base,
        ])
        .env("TFE_TOKEN", token)
        .env("TFE_ORGANIZATION", ORG)
        .run()
        .await;
        assert_clean("sync against the emulator command", &run, code);
    }
    emulator.signal("INT");
    let exit = emulator.wait().await;
    assert_eq!(exit.run.code, Some(0), "{:#?}", exit.run);
    assert!(
        exit.run.stderr.contains("emulator request"),
        "{}",
        exit.run.stderr
    );
    assert_no_token(
        "the emulator's own output",
        &exit.run.stdout,
        &exit.run.stderr,
    );
}

#[tokio::test]
async fn every_token_source_and_a_malformed_token_keep_it_out_of_every_output() {
    let server = start_with(config()).await;
    let dir = PolicyDir::generated(1);
    let plan = || {
        Cmd::against(&server, "plan", dir.path())
            .env_remove("TFE_TOKEN")
            .env("RUST_LOG", "trace")
            .arg("-vvvv")
    };
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_clean(
        "--token-file",
        &plan().arg("--token-file").arg(&file).run().await,
        0,
    );
    assert_clean(
        "TF_TOKEN_<host>",
        &plan().env("TF_TOKEN_127_0_0_1", SECRET).run().await,
        0,
    );
    let cmd = plan();
    let credentials = cmd.home().join(".terraform.d");
    std::fs::create_dir_all(&credentials).unwrap();
    let credentials = credentials.join("credentials.tfrc.json");
    let key = format!("127.0.0.1:{}", server.addr.port());
    std::fs::write(
        &credentials,
        json!({"credentials": {&key: {"token": SECRET}}}).to_string(),
    )
    .unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_clean("the credentials file", &cmd.run().await, 0);

    // Pasted twice, quoted, or cut in the middle by a newline: refused, and never quoted back.
    for malformed in [
        format!("{SECRET} {SECRET}"),
        format!("\"{SECRET}\"\n{WRONG_SECRET}"),
        format!("{SECRET}\u{7}"),
    ] {
        std::fs::write(&file, &malformed).unwrap();
        let run = plan().arg("--token-file").arg(&file).run().await;
        assert_clean("a malformed token file", &run, 1);
        let run = plan().env("TFE_TOKEN", &malformed).run().await;
        assert_clean("a malformed TFE_TOKEN", &run, 1);
    }
    // A credentials file whose entry has the wrong shape.
    let cmd = plan();
    let dotdir = cmd.home().join(".terraform.d");
    std::fs::create_dir_all(&dotdir).unwrap();
    std::fs::write(
        dotdir.join("credentials.tfrc.json"),
        json!({"credentials": {&key: SECRET}}).to_string(),
    )
    .unwrap();
    assert_clean(
        "a credentials entry that is not an object",
        &cmd.run().await,
        1,
    );
}

#[tokio::test]
async fn a_token_file_other_users_can_read_is_warned_about_and_a_private_one_is_not() {
    let server = start_with(config()).await;
    let dir = PolicyDir::generated(1);
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let plan = || {
        Cmd::against(&server, "plan", dir.path())
            .env_remove("TFE_TOKEN")
            .arg("--token-file")
            .arg(&file)
            .args(["--output", "json"])
    };
    // Group-readable counts when the group is another one than the process's: as root, give
    // the file to `nogroup` for that case.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        std::os::unix::fs::chown(&file, None, Some(65534)).unwrap();
    }
    let modes: &[u32] = if root {
        &[0o644, 0o640, 0o604]
    } else {
        &[0o644, 0o604]
    };
    for &mode in modes {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let run = plan().run().await;
        assert_clean(&format!("token file {mode:o}"), &run, 0);
        assert!(
            run.stderr.contains("accessible to other users") && run.stderr.contains("chmod 600"),
            "{mode:o}: no warning:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(file.to_str().unwrap()),
            "{}",
            run.stderr
        );
        // The warning goes to stderr: stdout stays one JSON document.
        let _ = run.json();
    }
    // Private, or readable only by the process's own group (a Kubernetes Secret mounted
    // `0440` with the pod's fsGroup).
    let own_gid = unsafe { libc::getegid() };
    std::os::unix::fs::chown(&file, None, Some(own_gid)).unwrap();
    for mode in [0o600, 0o400, 0o440, 0o640] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let run = plan().run().await;
        assert_clean(&format!("token file {mode:o}"), &run, 0);
        assert!(
            !run.stderr.contains("chmod"),
            "{mode:o}: warned:\n{}",
            run.stderr
        );
    }
}

#[tokio::test]
async fn plain_http_is_refused_for_any_host_but_loopback() {
    let dir = PolicyDir::generated(1);
    // `.invalid` never resolves: a bug here cannot reach the network.
    for address in ["http://tfe.invalid", "http://localhost.tfe.invalid:8080"] {
        let run = Cmd::new(&[
            "plan",
            "--dir",
            dir.path().to_str().unwrap(),
            "--address",
            address,
        ])
        .env("TFE_TOKEN", SECRET)
        .env("TFE_ORGANIZATION", ORG)
        .run()
        .await;
        assert_clean(address, &run, 1);
        assert!(
            run.stderr.contains("refusing plain http"),
            "{address}: {}",
            run.stderr
        );
    }
}
