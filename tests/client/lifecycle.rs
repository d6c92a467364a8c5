//! Every operation of the client against the emulator, as the reconciler uses them.

use std::collections::BTreeSet;
use std::sync::Arc;

use reqwest::Method;
use tfe_policy_sync::client::ApiError;
use tfe_policy_sync::emulator::EmulatorConfig;
use tfe_policy_sync::model::{Mode, PolicyId, PolicyName, RemoteCode};

use super::*;

fn name(s: &str) -> PolicyName {
    PolicyName::new(s).unwrap()
}

#[tokio::test]
async fn create_upload_download_set_mode_delete() {
    let running = start(config()).await;
    let client = client_of(&running, opts());
    let code = b"import \"tfplan/v2\" as tfplan\n\nmain = rule { true }\n";

    let created = client
        .create(&name("require-tags"), Mode::Advisory)
        .await
        .unwrap();
    assert_eq!(created.name, "require-tags");
    assert_eq!(created.mode, Mode::Advisory);
    assert_eq!(created.updated_at, None);
    assert!(!created.has_code);
    assert_eq!(
        client.download(&created.id).await.unwrap(),
        RemoteCode::Missing,
        "no code until uploaded"
    );

    client.upload(&created.id, code).await.unwrap();
    assert_eq!(
        client.download(&created.id).await.unwrap(),
        RemoteCode::Present(code.to_vec())
    );
    let shown = client.get_policy(&created.id).await.unwrap().unwrap();
    assert!(shown.has_code);
    assert!(shown.updated_at.is_some(), "upload sets updated-at");

    let updated = client
        .set_mode(&created.id, &name("require-tags"), Mode::HardMandatory)
        .await
        .unwrap();
    assert_eq!(updated.mode, Mode::HardMandatory);
    assert_eq!(
        running.emulator.policy(created.id.as_str()).unwrap().mode,
        Mode::HardMandatory
    );

    let listed = client.list_policies().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].mode, Mode::HardMandatory);

    client.delete(&created.id).await.unwrap();
    client.delete(&created.id).await.unwrap();
    assert!(client.get_policy(&created.id).await.unwrap().is_none());
    assert!(client.list_policies().await.unwrap().is_empty());

    // Every request carried the token to the API; nothing was refused for missing headers.
    let log = running.emulator.requests();
    assert!(log.iter().all(|r| r.had_authorization), "{log:?}");
    assert!(log.iter().all(|r| r.status != 415), "{log:?}");
}

#[tokio::test]
async fn an_empty_upload_is_code_too() {
    let running = start(config()).await;
    let client = client_of(&running, opts());
    let p = client
        .create(&name("empty"), Mode::SoftMandatory)
        .await
        .unwrap();
    client.upload(&p.id, b"").await.unwrap();
    assert_eq!(
        client.download(&p.id).await.unwrap(),
        RemoteCode::Present(Vec::new())
    );
}

#[tokio::test]
async fn listing_follows_every_page_at_the_maximum_page_size() {
    let running = start(EmulatorConfig {
        rate_limit: None,
        ..config()
    })
    .await;
    let mut want = BTreeSet::new();
    for i in 0..250 {
        let n = format!("policy-{i:03}");
        running
            .emulator
            .insert_policy(ORG, &n, Mode::ALL[i % 3], Some(b"main = rule { true }"));
        want.insert(n);
    }
    let client = client_of(&running, opts());
    let listed = client.list_policies().await.unwrap();
    let got: BTreeSet<String> = listed.iter().map(|p| p.name.clone()).collect();
    assert_eq!(listed.len(), 250, "no duplicates");
    assert_eq!(got, want);
    for p in &listed {
        let i: usize = p.name["policy-".len()..].parse().unwrap();
        assert_eq!(p.mode, Mode::ALL[i % 3], "{}", p.name);
        assert!(p.has_code);
    }

    let pages: Vec<String> = running
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::GET)
        .map(|r| r.query.unwrap_or_default())
        .collect();
    assert_eq!(pages.len(), 3, "⌈250/100⌉ pages: {pages:?}");
    for (i, q) in pages.iter().enumerate() {
        assert!(q.contains("page%5Bsize%5D=100"), "{q}");
        assert!(q.contains(&format!("page%5Bnumber%5D={}", i + 1)), "{q}");
    }
}

#[tokio::test]
async fn an_organization_without_policies_lists_nothing() {
    let running = start(config()).await;
    let client = client_of(&running, opts());
    assert!(client.list_policies().await.unwrap().is_empty());
    client.ping().await.unwrap();
    client.check_access().await.unwrap();
}

#[tokio::test]
async fn create_of_an_existing_name_returns_the_existing_policy_with_the_requested_mode() {
    // Another process created it first (or our earlier attempt did): not an error, and no
    // duplicate; the mode asked for is what the policy ends up with.
    let running = start(config()).await;
    let id = running
        .emulator
        .insert_policy(ORG, "race", Mode::Advisory, None);
    let client = client_of(&running, opts());
    let got = client
        .create(&name("race"), Mode::HardMandatory)
        .await
        .unwrap();
    assert_eq!(got.id, PolicyId(id.clone()));
    assert_eq!(got.mode, Mode::HardMandatory);
    assert_eq!(running.emulator.policies(ORG).len(), 1);
    assert_eq!(
        running.emulator.policy(&id).unwrap().mode,
        Mode::HardMandatory
    );
}

#[tokio::test]
async fn unknown_policies_are_not_found_but_deleting_them_is_done() {
    let running = start(config()).await;
    let client = client_of(&running, opts());
    let ghost = PolicyId("pol-doesnotexist0000".into());
    assert!(client.get_policy(&ghost).await.unwrap().is_none());
    client.delete(&ghost).await.unwrap();
    assert_eq!(client.download(&ghost).await.unwrap(), RemoteCode::Missing);
    let err = client.upload(&ghost, b"x").await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("pol-doesnotexist0000 was deleted"),
        "{err}"
    );
    let err = client
        .set_mode(&ghost, &name("ghost"), Mode::Advisory)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    assert_secret_free(&err);
}

#[tokio::test]
async fn the_observer_sees_every_response() {
    let running = start(config()).await;
    let recorder = Arc::new(Recorder::default());
    let client = client_of(&running, recorder.observed(opts()));
    let p = client.create(&name("seen"), Mode::Advisory).await.unwrap();
    client.upload(&p.id, b"main = rule { true }").await.unwrap();
    client.list_policies().await.unwrap();
    let seen = recorder.responses.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("POST".to_owned(), Some(200)),
            ("PUT".to_owned(), Some(200)),
            ("GET".to_owned(), Some(200)),
        ]
    );
}
