//! The happy paths: create, show, upload, download, update, delete, ping, and the test knobs.

use serde_json::json;
use tfe_policy_sync::emulator::{EmulatorConfig, spawn};
use tfe_policy_sync::model::Mode;

use crate::support::emulator::{Api, ORG, create_body, start, update_body};

fn is_policy_id(s: &str) -> bool {
    s.len() == 20 && s.starts_with("pol-") && s[4..].chars().all(|c| c.is_ascii_alphanumeric())
}

#[tokio::test]
async fn ping_answers_204_without_a_token() {
    let emu = start().await;
    let api = Api::new(&emu).with_token(None);
    let reply = api.get("/ping").await;
    assert_eq!(reply.status, 204);
    assert!(reply.body.is_empty());
    emu.stop().await;
}

#[tokio::test]
async fn create_answers_the_document_with_enforcement_level_and_no_code_yet() {
    let emu = start().await;
    let api = Api::new(&emu);
    let reply = api
        .post(
            &format!("/organizations/{ORG}/policies"),
            &create_body("require-tags", "advisory"),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("application/vnd.api+json")
    );
    let data = &reply.json()["data"];
    let id = data["id"].as_str().unwrap();
    assert!(is_policy_id(id), "{id}");
    assert_eq!(data["type"], "policies");
    assert_eq!(data["attributes"]["name"], "require-tags");
    assert_eq!(data["attributes"]["enforcement-level"], "advisory");
    // Today's service: `enforce` stays empty until code is uploaded.
    assert_eq!(data["attributes"]["enforce"], json!([]));
    assert_eq!(data["attributes"]["updated-at"], json!(null));
    assert_eq!(data["links"]["self"], format!("/api/v2/policies/{id}"));
    assert_eq!(
        data["links"]["upload"],
        format!("/api/v2/policies/{id}/upload")
    );
    assert!(
        data["links"].get("download").is_none(),
        "no download link before code exists"
    );

    let stored = emu.emulator.policies(ORG);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].name.as_str(), stored[0].mode),
        ("require-tags", Mode::Advisory)
    );
    assert_eq!(stored[0].code, None);
    emu.stop().await;
}

#[tokio::test]
async fn enforce_is_shown_from_creation_when_emulating_the_2017_service() {
    let emu = spawn(EmulatorConfig {
        enforce_before_upload: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let api = Api::new(&emu);
    let reply = api
        .post(
            &format!("/organizations/{ORG}/policies"),
            &create_body("p", "advisory"),
        )
        .await;
    assert_eq!(
        reply.json()["data"]["attributes"]["enforce"],
        json!([{"path": "p.sentinel", "mode": "advisory"}])
    );
    emu.stop().await;
}

#[tokio::test]
async fn a_path_other_than_name_sentinel_silently_becomes_hard_mandatory() {
    let emu = start().await;
    let api = Api::new(&emu);
    let body = json!({"data": {"type": "policies", "attributes": {
        "name": "p", "enforce": [{"path": "policies/p.sentinel", "mode": "advisory"}]}}});
    let reply = api
        .post(&format!("/organizations/{ORG}/policies"), &body)
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json()["data"]["attributes"]["enforcement-level"],
        "hard-mandatory"
    );
    emu.stop().await;
}

#[tokio::test]
async fn create_without_a_mode_is_soft_mandatory_and_enforcement_level_is_accepted() {
    let emu = start().await;
    let api = Api::new(&emu);
    let path = format!("/organizations/{ORG}/policies");
    let bare = json!({"data": {"type": "policies", "attributes": {"name": "bare"}}});
    let reply = api.post(&path, &bare).await;
    assert_eq!(
        reply.json()["data"]["attributes"]["enforcement-level"],
        "soft-mandatory"
    );
    let today = json!({"data": {"type": "policies", "attributes": {
        "name": "today", "enforcement-level": "advisory"}}});
    let reply = api.post(&path, &today).await;
    assert_eq!(
        reply.json()["data"]["attributes"]["enforcement-level"],
        "advisory"
    );
    // The seed's `enforce` object with its path and no mode: the documented default.
    let no_mode = json!({"data": {"type": "policies", "attributes": {
        "name": "no-mode", "enforce": [{"path": "no-mode.sentinel"}]}}});
    let reply = api.post(&path, &no_mode).await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert_eq!(
        reply.json()["data"]["attributes"]["enforcement-level"],
        "soft-mandatory"
    );
    // An empty `enforce` names no mode either; an entry without a path is a path that does
    // not match, so it falls back to hard-mandatory like any other.
    for (name, enforce, expected) in [
        ("empty-enforce", json!([]), "soft-mandatory"),
        ("no-path", json!([{"mode": "advisory"}]), "hard-mandatory"),
    ] {
        let body = json!({"data": {"type": "policies", "attributes": {
            "name": name, "enforce": enforce}}});
        let reply = api.post(&path, &body).await;
        assert_eq!(reply.status, 200, "{name}: {:?}", reply.json());
        assert_eq!(
            reply.json()["data"]["attributes"]["enforcement-level"],
            expected,
            "{name}"
        );
    }
    emu.stop().await;
}

#[tokio::test]
async fn upload_stores_the_bytes_verbatim_and_download_returns_them() {
    let emu = start().await;
    let api = Api::new(&emu);
    let id = api.create("p", "hard-mandatory").await;
    // CRLF, a BOM, a NUL and bytes that are not UTF-8 all survive unchanged.
    let code: Vec<u8> = b"\xEF\xBB\xBFmain = rule { true }\r\n\x00\xFF\xFE\n".to_vec();
    let reply = api.upload(&id, code.clone()).await;
    assert_eq!(reply.status, 200);
    let data = &reply.json()["data"];
    let updated_at = data["attributes"]["updated-at"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        updated_at.len(),
        "2017-10-10T20:58:04.621Z".len(),
        "{updated_at}"
    );
    assert!(updated_at.ends_with('Z'));
    assert_eq!(
        data["attributes"]["enforce"],
        json!([{"path": "p.sentinel", "mode": "hard-mandatory"}])
    );
    assert_eq!(
        data["links"]["download"],
        format!("/api/v2/policies/{id}/download")
    );

    let download = api.download(&id).await;
    assert_eq!(download.status, 200);
    assert_eq!(download.body, code);

    let again = api.upload(&id, "main = rule { false }").await;
    let later = again.json()["data"]["attributes"]["updated-at"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        later > updated_at,
        "every upload moves updated-at: {updated_at} then {later}"
    );
    assert_eq!(api.download(&id).await.body, b"main = rule { false }");
    emu.stop().await;
}

#[tokio::test]
async fn an_empty_upload_is_accepted_and_downloads_as_empty() {
    let emu = start().await;
    let api = Api::new(&emu);
    let id = api.create("p", "advisory").await;
    assert_eq!(api.upload(&id, Vec::new()).await.status, 200);
    let download = api.download(&id).await;
    assert_eq!((download.status, download.body.len()), (200, 0));
    assert_eq!(emu.emulator.policies(ORG)[0].code, Some(Vec::new()));
    emu.stop().await;
}

#[tokio::test]
async fn download_before_the_first_upload_is_404() {
    let emu = start().await;
    let api = Api::new(&emu);
    let id = api.create("p", "advisory").await;
    let reply = api.download(&id).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error()["status"], "404");
    emu.stop().await;
}

#[tokio::test]
async fn show_returns_the_policy() {
    let emu = start().await;
    let api = Api::new(&emu);
    let id = api.create("p", "advisory").await;
    let reply = api.get(&format!("/policies/{id}")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["data"]["id"], id);
    assert_eq!(reply.json()["data"]["attributes"]["name"], "p");
    emu.stop().await;
}

#[tokio::test]
async fn patch_changes_the_mode_and_ignores_the_name() {
    let emu = start().await;
    let api = Api::new(&emu);
    let id = api.create("p", "advisory").await;
    let mut body = update_body("p", "soft-mandatory");
    body["data"]["attributes"]["name"] = json!("renamed");
    let reply = api.patch(&format!("/policies/{id}"), &body).await;
    assert_eq!(reply.status, 200);
    let attributes = &reply.json()["data"]["attributes"];
    assert_eq!(attributes["name"], "p");
    assert_eq!(attributes["enforcement-level"], "soft-mandatory");
    assert_eq!(emu.emulator.policies(ORG)[0].mode, Mode::SoftMandatory);
    assert_eq!(emu.emulator.policies(ORG)[0].name, "p");
    emu.stop().await;
}

#[tokio::test]
async fn patch_with_a_wrong_path_falls_back_to_hard_mandatory() {
    let emu = start().await;
    let api = Api::new(&emu);
    let id = api.create("p", "advisory").await;
    let reply = api
        .patch(&format!("/policies/{id}"), &update_body("q", "advisory"))
        .await;
    assert_eq!(
        reply.json()["data"]["attributes"]["enforcement-level"],
        "hard-mandatory"
    );
    emu.stop().await;
}

#[tokio::test]
async fn delete_answers_204_then_404() {
    let emu = start().await;
    let api = Api::new(&emu);
    let id = api.create("p", "advisory").await;
    let first = api.delete(&format!("/policies/{id}")).await;
    assert_eq!((first.status, first.body.len()), (204, 0));
    assert_eq!(api.delete(&format!("/policies/{id}")).await.status, 404);
    assert_eq!(api.get(&format!("/policies/{id}")).await.status, 404);
    assert!(emu.emulator.policies(ORG).is_empty());
    emu.stop().await;
}

#[tokio::test]
async fn knobs_change_the_store_as_the_ui_would_and_the_api_sees_it() {
    let emu = start().await;
    let api = Api::new(&emu);
    let knobs = &emu.emulator;
    let id = knobs.insert_policy(ORG, "seeded", Mode::Advisory, Some(b"main = rule { true }"));
    assert_eq!(api.download(&id).await.body, b"main = rule { true }");

    knobs.set_mode(&id, Mode::HardMandatory);
    knobs.set_code(&id, b"drifted");
    let doc = api.get(&format!("/policies/{id}")).await.json();
    assert_eq!(
        doc["data"]["attributes"]["enforcement-level"],
        "hard-mandatory"
    );
    assert_eq!(api.download(&id).await.body, b"drifted");

    let without_code = knobs.insert_policy(ORG, "half-created", Mode::Advisory, None);
    assert_eq!(api.download(&without_code).await.status, 404);

    knobs.remove_policy(&id);
    assert_eq!(api.get(&format!("/policies/{id}")).await.status, 404);
    emu.stop().await;
}

#[tokio::test]
async fn the_request_log_records_method_path_and_status_in_order() {
    let emu = start().await;
    let api = Api::new(&emu);
    let id = api.create("p", "advisory").await;
    api.upload(&id, "x").await;
    api.download(&id).await;
    api.get("/organizations/nope/policies").await;

    let log: Vec<(String, String, u16)> = emu
        .emulator
        .requests()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path, r.status))
        .collect();
    assert_eq!(
        log,
        [
            (
                "POST".into(),
                format!("/api/v2/organizations/{ORG}/policies"),
                200
            ),
            ("PUT".into(), format!("/api/v2/policies/{id}/upload"), 200),
            ("GET".into(), format!("/api/v2/policies/{id}/download"), 200),
            (
                "GET".into(),
                "/api/v2/organizations/nope/policies".into(),
                404
            ),
        ]
    );
    let mutating = emu
        .emulator
        .requests()
        .iter()
        .filter(|r| r.is_mutating())
        .count();
    assert_eq!(mutating, 2);
    emu.emulator.clear_requests();
    assert!(emu.emulator.requests().is_empty());
    emu.stop().await;
}

#[tokio::test]
async fn download_can_redirect_to_another_host_which_needs_no_token() {
    let emu = spawn(EmulatorConfig {
        download_redirect: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let api = Api::new(&emu);
    let id = api.create("p", "advisory").await;
    api.upload(&id, "code").await;
    let reply = api.download(&id).await;
    assert_eq!(reply.status, 307);
    let location = reply.header("location").unwrap().to_owned();
    let port = emu.addr.port();
    assert_eq!(
        location,
        format!("http://localhost:{port}/_archivist/v1/object/{id}")
    );

    // A client that follows redirects the way reqwest does drops the token on the host change.
    let follower = reqwest::Client::builder().no_proxy().build().unwrap();
    let followed = follower
        .get(api.url(&format!("/policies/{id}/download")))
        .bearer_auth(crate::support::emulator::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), 200);
    assert_eq!(followed.bytes().await.unwrap(), "code");
    let blob = emu.emulator.requests().into_iter().last().unwrap();
    assert_eq!(blob.path, format!("/_archivist/v1/object/{id}"));
    assert!(
        !blob.had_authorization,
        "the token was forwarded to another host"
    );
    emu.stop().await;
}

#[tokio::test]
async fn stop_returns_and_the_port_is_closed() {
    let emu = start().await;
    let api = Api::new(&emu);
    assert_eq!(api.get("/ping").await.status, 204);
    let addr = emu.addr;
    emu.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
