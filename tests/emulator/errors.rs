//! How the emulator says no: 401, 404 (no org, no policy, no access, no right), 415 and every
//! 422, each as a JSON:API error document.

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use tfe_policy_sync::emulator::{EmulatorConfig, TokenConfig, spawn};
use tfe_policy_sync::model::Mode;

use crate::support::emulator::{Api, ORG, Reply, create_body, start, update_body};

/// Every mutating call on policy `id` (or in the org), as a list of replies.
async fn every_mutation(api: &Api, id: &str) -> Vec<(&'static str, u16)> {
    vec![
        (
            "create",
            api.post(
                &format!("/organizations/{ORG}/policies"),
                &create_body("new", "advisory"),
            )
            .await
            .status,
        ),
        ("upload", api.upload(id, "x").await.status),
        (
            "update",
            api.patch(&format!("/policies/{id}"), &update_body("p", "advisory"))
                .await
                .status,
        ),
        (
            "delete",
            api.delete(&format!("/policies/{id}")).await.status,
        ),
    ]
}

/// Every read on policy `id` (or in the org).
async fn every_read(api: &Api, id: &str) -> Vec<(&'static str, u16)> {
    vec![
        (
            "list",
            api.get(&format!("/organizations/{ORG}/policies"))
                .await
                .status,
        ),
        ("show", api.get(&format!("/policies/{id}")).await.status),
        ("download", api.download(id).await.status),
    ]
}

fn all(status: u16, names: &[&'static str]) -> Vec<(&'static str, u16)> {
    names.iter().map(|n| (*n, status)).collect()
}

const MUTATIONS: [&str; 4] = ["create", "upload", "update", "delete"];
const READS: [&str; 3] = ["list", "show", "download"];

#[tokio::test]
async fn a_missing_or_unknown_token_is_401_on_every_endpoint() {
    let emu = start().await;
    let id = emu
        .emulator
        .insert_policy(ORG, "p", Mode::Advisory, Some(b"x"));
    for token in [None, Some("not-a-token")] {
        let api = Api::new(&emu).with_token(token);
        assert_eq!(every_read(&api, &id).await, all(401, &READS), "{token:?}");
        assert_eq!(
            every_mutation(&api, &id).await,
            all(401, &MUTATIONS),
            "{token:?}"
        );
        let reply = api.get(&format!("/organizations/{ORG}/policies")).await;
        assert_eq!(
            reply.json(),
            json!({"errors": [{"status": "401", "title": "unauthorized"}]})
        );
    }
    assert_eq!(emu.emulator.policies(ORG).len(), 1, "nothing changed");
    emu.stop().await;
}

#[tokio::test]
async fn an_unknown_organization_or_policy_is_404() {
    let emu = start().await;
    let api = Api::new(&emu);
    let reply = api.get("/organizations/no-such-org/policies").await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"errors": [{"status": "404", "title": "not found"}]})
    );
    let create = api
        .post(
            "/organizations/no-such-org/policies",
            &create_body("p", "advisory"),
        )
        .await;
    assert_eq!(create.status, 404);
    assert_eq!(
        every_read(&api, "pol-doesnotexist0000").await[1..],
        all(404, &READS)[1..]
    );
    assert_eq!(
        every_mutation(&api, "pol-doesnotexist0000").await[1..],
        all(404, &MUTATIONS)[1..]
    );
    emu.stop().await;
}

#[tokio::test]
async fn a_token_without_access_to_the_organization_gets_404() {
    let mut config = EmulatorConfig::default();
    config.organizations.push("other-org".into());
    config
        .tokens
        .push(TokenConfig::user("outsider", "outsider", ["other-org"]));
    let emu = spawn(config).await.unwrap();
    let id = emu
        .emulator
        .insert_policy(ORG, "p", Mode::Advisory, Some(b"x"));
    let api = Api::new(&emu).with_token(Some("outsider"));
    assert_eq!(every_read(&api, &id).await, all(404, &READS));
    assert_eq!(every_mutation(&api, &id).await, all(404, &MUTATIONS));
    assert_eq!(
        api.get("/organizations/other-org/policies").await.status,
        200
    );
    emu.stop().await;
}

#[tokio::test]
async fn a_token_without_the_manage_policies_right_reads_but_gets_404_on_changes() {
    let mut config = EmulatorConfig::default();
    config
        .tokens
        .push(TokenConfig::team("reader", "readers", [ORG]).without_manage_policies());
    let emu = spawn(config).await.unwrap();
    let id = emu
        .emulator
        .insert_policy(ORG, "p", Mode::Advisory, Some(b"x"));
    let api = Api::new(&emu).with_token(Some("reader"));
    assert_eq!(every_read(&api, &id).await, all(200, &READS));
    assert_eq!(every_mutation(&api, &id).await, all(404, &MUTATIONS));
    assert_eq!(emu.emulator.policy(&id).unwrap().code, Some(b"x".to_vec()));
    emu.stop().await;
}

#[tokio::test]
async fn organization_tokens_may_not_manage_per_the_seed_unless_the_knob_allows_it() {
    let mut config = EmulatorConfig::default();
    config
        .tokens
        .push(TokenConfig::organization("org-token", ORG));
    let emu = spawn(config).await.unwrap();
    let id = emu
        .emulator
        .insert_policy(ORG, "p", Mode::Advisory, Some(b"x"));
    let api = Api::new(&emu).with_token(Some("org-token"));
    assert_eq!(every_read(&api, &id).await, all(200, &READS));
    assert_eq!(every_mutation(&api, &id).await, all(404, &MUTATIONS));

    // Today's service lets organization tokens manage policies.
    emu.emulator.set_organization_tokens_may_manage(true);
    assert_eq!(every_mutation(&api, &id).await, all_ok_mutations());
    emu.stop().await;
}

fn all_ok_mutations() -> Vec<(&'static str, u16)> {
    vec![
        ("create", 200),
        ("upload", 200),
        ("update", 200),
        ("delete", 204),
    ]
}

#[tokio::test]
async fn team_tokens_with_the_right_manage_policies() {
    let mut config = EmulatorConfig::default();
    config
        .tokens
        .push(TokenConfig::team("team-token", "owners", [ORG]));
    let emu = spawn(config).await.unwrap();
    let id = emu
        .emulator
        .insert_policy(ORG, "p", Mode::Advisory, Some(b"x"));
    let api = Api::new(&emu).with_token(Some("team-token"));
    assert_eq!(every_mutation(&api, &id).await, all_ok_mutations());
    emu.stop().await;
}

#[tokio::test]
async fn post_patch_and_delete_without_the_json_api_content_type_are_415() {
    let emu = start().await;
    let api = Api::new(&emu);
    let id = emu
        .emulator
        .insert_policy(ORG, "p", Mode::Advisory, Some(b"x"));
    let create = create_body("q", "advisory").to_string();
    let update = update_body("p", "hard-mandatory").to_string();
    let requests = [
        (
            Method::POST,
            format!("/organizations/{ORG}/policies"),
            create,
        ),
        (Method::PATCH, format!("/policies/{id}"), update),
        (Method::DELETE, format!("/policies/{id}"), String::new()),
    ];
    for (method, path, body) in requests {
        for content_type in [None, Some("application/json"), Some("text/plain")] {
            let mut rb = api.request(method.clone(), &path).body(body.clone());
            if let Some(ct) = content_type {
                rb = rb.header(CONTENT_TYPE, ct);
            }
            let reply = api.send(rb).await;
            assert_eq!(reply.status, 415, "{method} {path} with {content_type:?}");
            assert_eq!(reply.error()["status"], "415");
        }
    }
    let untouched = emu.emulator.policies(ORG);
    assert_eq!(untouched.len(), 1);
    assert_eq!(untouched[0].mode, Mode::Advisory);

    // Parameters on the media type are tolerated; upload takes any content type.
    let with_charset = api
        .send(
            api.request(Method::POST, &format!("/organizations/{ORG}/policies"))
                .header(CONTENT_TYPE, "application/vnd.api+json; charset=utf-8")
                .body(create_body("r", "advisory").to_string()),
        )
        .await;
    assert_eq!(with_charset.status, 200);
    let upload = api
        .send(
            api.request(Method::PUT, &format!("/policies/{id}/upload"))
                .body("y"),
        )
        .await;
    assert_eq!(upload.status, 200);
    emu.stop().await;
}

fn assert_422(reply: &Reply, pointer: &str, detail_contains: &str) {
    assert_eq!(
        reply.status,
        422,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let error = reply.error();
    assert_eq!(error["status"], "422");
    assert_eq!(error["source"]["pointer"], pointer, "{error}");
    let detail = error["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(detail_contains),
        "{detail:?} lacks {detail_contains:?}"
    );
}

#[tokio::test]
async fn create_answers_422_with_a_pointer_for_every_malformed_body() {
    let emu = start().await;
    let api = Api::new(&emu);
    let path = format!("/organizations/{ORG}/policies");
    let attrs = |a: Value| json!({"data": {"type": "policies", "attributes": a}});
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (b"{\"data\": ".to_vec(), "", "not valid JSON"),
        (b"".to_vec(), "", "not valid JSON"),
        (b"[1, 2]".to_vec(), "", "JSON object"),
        (json!({}).to_string().into(), "/data", "data"),
        (
            json!({"data": {"type": "workspaces", "attributes": {"name": "p"}}})
                .to_string()
                .into(),
            "/data/type",
            "policies",
        ),
        (
            json!({"data": {"attributes": {"name": "p"}}})
                .to_string()
                .into(),
            "/data/type",
            "policies",
        ),
        (
            attrs(json!({})).to_string().into(),
            "/data/attributes/name",
            "can't be blank",
        ),
        (
            attrs(json!({"name": ""})).to_string().into(),
            "/data/attributes/name",
            "can't be blank",
        ),
        (
            attrs(json!({"name": 7})).to_string().into(),
            "/data/attributes/name",
            "string",
        ),
        (
            attrs(json!({"name": "has space"})).to_string().into(),
            "/data/attributes/name",
            "invalid",
        ),
        (
            attrs(json!({"name": "a/b"})).to_string().into(),
            "/data/attributes/name",
            "invalid",
        ),
        (
            attrs(json!({"name": "p", "enforce": "advisory"}))
                .to_string()
                .into(),
            "/data/attributes/enforce",
            "array",
        ),
        (
            attrs(
                json!({"name": "p", "enforce": [{"path": "p.sentinel"}, {"path": "p.sentinel"}]}),
            )
            .to_string()
            .into(),
            "/data/attributes/enforce",
            "one object",
        ),
        (
            attrs(json!({"name": "p", "enforce": ["advisory"]}))
                .to_string()
                .into(),
            "/data/attributes/enforce/0",
            "object",
        ),
        (
            attrs(json!({"name": "p", "enforce": [{"path": "p.sentinel", "mode": "mandatory"}]}))
                .to_string()
                .into(),
            "/data/attributes/enforce/0/mode",
            "mandatory",
        ),
        (
            attrs(json!({"name": "p", "enforce": [{"path": "p.sentinel", "mode": "Advisory"}]}))
                .to_string()
                .into(),
            "/data/attributes/enforce/0/mode",
            "not included in the list",
        ),
        (
            attrs(json!({"name": "p", "enforcement-level": "strict"}))
                .to_string()
                .into(),
            "/data/attributes/enforcement-level",
            "strict",
        ),
    ];
    for (body, pointer, detail) in cases {
        let reply = api.post_raw(&path, body.clone()).await;
        assert_422(&reply, pointer, detail);
    }
    assert!(
        emu.emulator.policies(ORG).is_empty(),
        "no invalid create made a policy"
    );
    emu.stop().await;
}

#[tokio::test]
async fn a_duplicate_name_is_422_name_has_already_been_taken() {
    let emu = start().await;
    let api = Api::new(&emu);
    api.create("p", "advisory").await;
    let reply = api
        .post(
            &format!("/organizations/{ORG}/policies"),
            &create_body("p", "hard-mandatory"),
        )
        .await;
    assert_eq!(
        reply.json(),
        json!({"errors": [{
            "status": "422",
            "title": "invalid attribute",
            "detail": "Name has already been taken",
            "source": {"pointer": "/data/attributes/name"}
        }]})
    );
    assert_eq!(emu.emulator.policies(ORG).len(), 1);
    emu.stop().await;
}

#[tokio::test]
async fn patch_answers_422_for_bad_type_bad_enforce_and_unknown_mode() {
    let emu = start().await;
    let api = Api::new(&emu);
    let id = api.create("p", "advisory").await;
    let path = format!("/policies/{id}");
    let bad_type = json!({"data": {"type": "policy", "attributes": {}}});
    assert_422(&api.patch(&path, &bad_type).await, "/data/type", "policies");
    let bad_enforce = json!({"data": {"type": "policies", "attributes": {"enforce": 1}}});
    assert_422(
        &api.patch(&path, &bad_enforce).await,
        "/data/attributes/enforce",
        "array",
    );
    let bad_mode = update_body("p", "hard");
    assert_422(
        &api.patch(&path, &bad_mode).await,
        "/data/attributes/enforce/0/mode",
        "hard",
    );
    assert_eq!(emu.emulator.policies(ORG)[0].mode, Mode::Advisory);
    emu.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_404_documents() {
    let emu = start().await;
    let api = Api::new(&emu);
    assert_eq!(api.get("/workspaces").await.status, 404);
    assert_eq!(api.get("/workspaces").await.error()["status"], "404");
    let put_list = api
        .send(api.request(Method::PUT, &format!("/organizations/{ORG}/policies")))
        .await;
    assert_eq!(put_list.status, 404);
    emu.stop().await;
}
