//! `tfe-policy-sync emulator`, the real binary: first stdout line, flags, exit 0 on signals.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use crate::support::emulator::{Api, create_body};

struct Server {
    child: Child,
    url: String,
}

fn start(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tfe-policy-sync"))
        .arg("emulator")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    Server { child, url }
}

fn signal(child: &Child, sig: &str) {
    crate::support::send_signal(child.id(), sig);
}

fn api(url: &str, token: &str) -> Api {
    Api {
        base: url.to_owned(),
        token: Some(token.to_owned()),
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

#[tokio::test]
async fn serves_the_flags_organizations_and_tokens_and_exits_0_on_sigterm() {
    let mut server = start(&[
        "--organization",
        "org-a",
        "--organization",
        "org-b",
        "--token",
        "first-secret-token",
        "--token",
        "second-secret-token",
        "--read-only-token",
        "reader-secret-token",
    ]);
    let owner = api(&server.url, "second-secret-token");
    let created = owner
        .post(
            "/organizations/org-b/policies",
            &create_body("p", "advisory"),
        )
        .await;
    assert_eq!(created.status, 200);
    assert_eq!(
        api(&server.url, "first-secret-token")
            .get("/organizations/org-a/policies")
            .await
            .status,
        200
    );
    assert_eq!(
        owner
            .get("/organizations/my-organization/policies")
            .await
            .status,
        404,
        "--organization replaces the default"
    );
    assert_eq!(
        api(&server.url, "emulator-token").get("/ping").await.status,
        204
    );
    assert_eq!(
        api(&server.url, "emulator-token")
            .get("/organizations/org-a/policies")
            .await
            .status,
        401,
        "--token replaces the default token"
    );
    let reader = api(&server.url, "reader-secret-token");
    assert_eq!(
        reader.get("/organizations/org-a/policies").await.status,
        200
    );
    let refused = reader
        .post(
            "/organizations/org-a/policies",
            &create_body("q", "advisory"),
        )
        .await;
    assert_eq!(refused.status, 404);

    signal(&server.child, "TERM");
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("secret"), "a token was printed: {stderr}");
}

#[tokio::test]
async fn exits_0_on_sigint_and_on_sigterm_sent_right_after_the_first_line() {
    for sig in ["INT", "TERM"] {
        let mut server = start(&[]);
        signal(&server.child, sig);
        assert_eq!(server.child.wait().unwrap().code(), Some(0), "{sig}");
        let _ = server.url;
    }
}

#[tokio::test]
async fn the_rate_limit_and_faults_flags_apply() {
    let mut server = start(&["--rate-limit", "7", "--fail-rate", "1", "--seed", "3"]);
    let reply = api(&server.url, "emulator-token").get("/ping").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("x-ratelimit-limit"), Some("7"));
    signal(&server.child, "TERM");
    assert_eq!(server.child.wait().unwrap().code(), Some(0));
}

#[test]
fn a_listen_address_in_use_is_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_tfe-policy-sync"))
        .args(["emulator", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&addr), "{stderr}");
}

#[test]
fn a_probability_outside_0_to_1_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_tfe-policy-sync"))
        .args(["emulator", "--fail-rate", "1.5"])
        .output()
        .unwrap();
    // A usage error exits 1 in every command (2 is plan's "changes" status).
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("probability"));
}

#[tokio::test]
async fn team_and_organization_tokens_follow_the_seed_unless_told_otherwise() {
    for may_manage in [false, true] {
        let mut args = vec![
            "--organization",
            "org-a",
            "--team-token",
            "team-secret-token",
            "--organization-token",
            "org-a=org-secret-token",
        ];
        if may_manage {
            args.push("--organization-tokens-may-manage");
        }
        let mut server = start(&args);
        let team = api(&server.url, "team-secret-token");
        let created = team
            .post(
                "/organizations/org-a/policies",
                &create_body("t", "advisory"),
            )
            .await;
        assert_eq!(created.status, 200, "a team token with the right manages");
        let org = api(&server.url, "org-secret-token");
        assert_eq!(org.get("/organizations/org-a/policies").await.status, 200);
        let by_org = org
            .post(
                "/organizations/org-a/policies",
                &create_body("o", "advisory"),
            )
            .await;
        // The seed: organization tokens cannot create; today's service lets them.
        let expected = if may_manage { 200 } else { 404 };
        assert_eq!(
            by_org.status, expected,
            "--organization-tokens-may-manage: {may_manage}"
        );
        signal(&server.child, "TERM");
        assert_eq!(server.child.wait().unwrap().code(), Some(0));
    }
}

#[test]
fn a_malformed_organization_token_is_a_usage_error_that_does_not_echo_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_tfe-policy-sync"))
        .args(["emulator", "--organization-token", "no-equals-secret"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ORG=TOKEN"), "{stderr}");
    assert!(!stderr.contains("no-equals-secret"), "{stderr}");
}
