//! The ways the service fails, and what the client makes of them.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use tfe_policy_sync::client::{ApiError, ClientOptions};
use tfe_policy_sync::emulator::{
    EmulatorConfig, Fault, FaultTarget, Faults, RateLimit, TokenConfig,
};
use tfe_policy_sync::model::{Mode, PolicyName};

use super::*;

fn name(s: &str) -> PolicyName {
    PolicyName::new(s).unwrap()
}

#[tokio::test]
async fn a_rejected_token_says_where_it_came_from_and_is_fatal_at_startup() {
    let running = start(config()).await;
    let wrong = "sEcReT-wrong.atlasv1.not-known-to-the-service";
    let client = client_for(&running.base_url(), ORG, wrong, opts());
    let err = client.list_policies().await.unwrap_err();
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("TFE_TOKEN"), "{msg}");
    assert!(msg.contains("invalid or expired"), "{msg}");
    assert!(!msg.contains(wrong) && !format!("{err:?}").contains(wrong));
    assert!(err.is_fatal_at_startup());
    assert!(!err.is_transient());
    let err = client.check_access().await.unwrap_err();
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unknown_organization_names_both_causes() {
    let running = start(config()).await;
    let client = client_for(&running.base_url(), "no-such-org", SECRET, opts());
    let err = client.list_policies().await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("\"no-such-org\" does not exist"), "{msg}");
    assert!(msg.contains("may not manage its policies"), "{msg}");
    assert!(err.is_fatal_at_startup());
    assert_secret_free(&err);
}

#[tokio::test]
async fn a_token_without_the_right_gets_not_found_on_writes() {
    let mut cfg = config();
    let reader = "sEcReT-reader.atlasv1.read-only";
    cfg.tokens
        .push(TokenConfig::user(reader, "reader", [ORG]).without_manage_policies());
    let running = start(cfg).await;
    let client = client_for(&running.base_url(), ORG, reader, opts());
    let err = client
        .create(&name("nope"), Mode::Advisory)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("may not manage its policies"),
        "{err}"
    );
    assert!(running.emulator.policies(ORG).is_empty());
}

#[tokio::test]
async fn a_create_whose_response_was_lost_neither_fails_nor_duplicates() {
    let running = start(config()).await;
    running.emulator.set_faults(Faults {
        after: Fault::next(1).on(FaultTarget::Method(Method::POST)),
        ..Faults::default()
    });
    let client = client_of(&running, opts());
    let got = client
        .create(&name("lost"), Mode::SoftMandatory)
        .await
        .unwrap();
    assert_eq!(got.name, "lost");
    assert_eq!(got.mode, Mode::SoftMandatory);
    let stored = running.emulator.policies(ORG);
    assert_eq!(stored.len(), 1, "no duplicate");
    assert_eq!(stored[0].id, got.id.as_str());

    let posts: Vec<u16> = running
        .emulator
        .requests()
        .iter()
        .filter(|r| r.method == Method::POST)
        .map(|r| r.status)
        .collect();
    assert_eq!(posts, [502, 422], "applied-then-lost, then 'already taken'");
}

#[tokio::test]
async fn service_unavailable_is_retried() {
    let running = start(config()).await;
    running.emulator.set_faults(Faults {
        before: Fault::next(2),
        ..Faults::default()
    });
    let recorder = Arc::new(Recorder::default());
    let client = client_of(&running, recorder.observed(opts()));
    assert!(client.list_policies().await.unwrap().is_empty());
    assert_eq!(recorder.statuses(), [Some(503), Some(503), Some(200)]);
}

#[tokio::test]
async fn persistent_server_errors_end_in_a_transient_error_after_the_retries() {
    let running = start(config()).await;
    running.emulator.set_faults(Faults {
        before: Fault::rate(1.0),
        ..Faults::default()
    });
    let client = client_of(
        &running,
        ClientOptions {
            max_retries: 1,
            ..opts()
        },
    );
    let err = client.list_policies().await.unwrap_err();
    assert!(
        matches!(err, ApiError::Server { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.is_transient() && !err.is_fatal_at_startup());
    assert_eq!(
        running.emulator.requests().len(),
        2,
        "one try and one retry"
    );
}

#[tokio::test]
async fn a_429_is_retried_after_the_reset() {
    // Two requests leave before the client has seen any rate-limit header, against a bucket of
    // one: one of them gets 429, waits for the reset, and succeeds.
    let running = start(EmulatorConfig {
        rate_limit: Some(RateLimit {
            per_second: 20,
            burst: 1,
        }),
        ..config()
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let client = client_of(&running, recorder.observed(opts()));
    let (a, b) = tokio::join!(client.list_policies(), client.list_policies());
    a.unwrap();
    b.unwrap();
    assert_eq!(*recorder.rate_limited.lock().unwrap(), 1);
    let statuses: Vec<u16> = running
        .emulator
        .requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_paced_run_stays_under_the_limit_without_429s() {
    // 80 requests, 8 at a time, against 100 req/s with a bucket of 10: the pacer learns the
    // limit from the first answers and spreads the rest, so the service never refuses one.
    let running = start(EmulatorConfig {
        rate_limit: Some(RateLimit {
            per_second: 100,
            burst: 10,
        }),
        ..config()
    })
    .await;
    let id = running
        .emulator
        .insert_policy(ORG, "p", Mode::Advisory, Some(b"x"));
    let id = tfe_policy_sync::model::PolicyId(id);
    let client = client_of(&running, opts());
    // Teach the pacer first: the initial burst before any header is the caller's choice.
    client.download(&id).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..80 {
        let (client, id) = (client.clone(), id.clone());
        tasks.push(tokio::spawn(async move { client.download(&id).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let refused = running
        .emulator
        .requests()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert_eq!(refused, 0);
    assert_eq!(client.learned_rate_limit(), Some(100.0));
}

#[tokio::test]
async fn a_hung_service_times_out() {
    let running = start(config()).await;
    running.emulator.set_faults(Faults {
        hang: Fault::next(1),
        ..Faults::default()
    });
    let client = client_of(
        &running,
        ClientOptions {
            request_timeout: Duration::from_millis(300),
            max_retries: 0,
            ..opts()
        },
    );
    let err = client.list_policies().await.unwrap_err();
    assert!(matches!(err, ApiError::Timeout { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(
        err.to_string()
            .contains("no complete response within 300ms"),
        "{err}"
    );
    // With retries, the next attempt gets through.
    running.emulator.set_faults(Faults {
        hang: Fault::next(1),
        ..Faults::default()
    });
    let client = client_of(
        &running,
        ClientOptions {
            request_timeout: Duration::from_millis(300),
            max_retries: 2,
            ..opts()
        },
    );
    client.list_policies().await.unwrap();
}

#[tokio::test]
async fn a_cancelled_client_starts_no_request() {
    let running = start(config()).await;
    let options = opts();
    options.cancel.cancel();
    let client = client_of(&running, options);
    let err = client.list_policies().await.unwrap_err();
    assert!(matches!(err, ApiError::Cancelled), "{err:?}");
    assert!(running.emulator.requests().is_empty());
}

#[tokio::test]
async fn cancelling_cuts_a_backoff_short() {
    let running = start(config()).await;
    running.emulator.set_faults(Faults {
        before: Fault::rate(1.0),
        ..Faults::default()
    });
    let options = ClientOptions {
        max_retries: 50,
        ..opts()
    };
    let cancel = options.cancel.clone();
    let client = client_of(&running, options);
    let task = tokio::spawn(async move { client.list_policies().await });
    while running.emulator.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel.cancel();
    // Fifty retries with backoff would take minutes; the cancelled wait ends at once.
    let err = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("cancellation ends the backoff")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ApiError::Cancelled), "{err:?}");
    assert!(running.emulator.requests().len() < 5);
}
