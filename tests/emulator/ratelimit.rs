//! Rate-limit headers on every response, and the 429 with the documented body.
//! (Refill timing is tested on a paused clock in the limiter's unit tests.)

use serde_json::json;
use tfe_policy_sync::emulator::{EmulatorConfig, RateLimit, TokenConfig};
use tfe_policy_sync::model::Mode;

use crate::support::emulator::{Api, ORG, Reply, create_body, start, start_with};

fn is_decimal_seconds(s: &str) -> bool {
    let Some((whole, frac)) = s.split_once('.') else {
        return false;
    };
    !whole.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && frac.len() == 3
        && frac.chars().all(|c| c.is_ascii_digit())
}

fn assert_rate_headers(reply: &Reply, what: &str) {
    assert_eq!(reply.header("x-ratelimit-limit"), Some("30"), "{what}");
    let remaining = reply.header("x-ratelimit-remaining").unwrap_or_default();
    assert!(
        remaining.parse::<u32>().is_ok(),
        "{what}: remaining {remaining:?}"
    );
    let reset = reply.header("x-ratelimit-reset").unwrap_or_default();
    assert!(is_decimal_seconds(reset), "{what}: reset {reset:?}");
}

#[tokio::test]
async fn every_api_response_carries_the_rate_limit_headers() {
    let emu = start().await;
    let api = Api::new(&emu);
    let id = api.create("p", "advisory").await;
    let path = format!("/organizations/{ORG}/policies");
    let replies = [
        ("ping", api.get("/ping").await),
        ("list", api.get(&path).await),
        ("upload", api.upload(&id, "x").await),
        ("download", api.download(&id).await),
        ("401", api.with_token(None).get(&path).await),
        ("404", api.get("/organizations/none/policies").await),
        (
            "415",
            api.send(api.request(reqwest::Method::DELETE, &format!("/policies/{id}")))
                .await,
        ),
        ("422", api.post(&path, &create_body("p", "advisory")).await),
        ("delete", api.delete(&format!("/policies/{id}")).await),
    ];
    for (what, reply) in &replies {
        assert_rate_headers(reply, what);
    }
    assert_eq!(
        replies.iter().map(|(_, r)| r.status).collect::<Vec<_>>(),
        [204, 200, 200, 200, 401, 404, 415, 422, 204]
    );
    emu.stop().await;
}

#[tokio::test]
async fn remaining_counts_down_with_each_request() {
    let emu = start().await;
    let api = Api::new(&emu);
    let path = format!("/organizations/{ORG}/policies");
    let first: u32 = api
        .get(&path)
        .await
        .header("x-ratelimit-remaining")
        .unwrap()
        .parse()
        .unwrap();
    let second: u32 = api
        .get(&path)
        .await
        .header("x-ratelimit-remaining")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(first, 29);
    // Refill between the two requests is at most one token on any machine fast enough to run this.
    assert!(second == 28 || second == 29, "{second}");
    emu.stop().await;
}

#[tokio::test]
async fn over_the_limit_answers_429_with_the_documented_body() {
    let emu = start_with(EmulatorConfig {
        rate_limit: Some(RateLimit {
            per_second: 1,
            burst: 2,
        }),
        ..EmulatorConfig::default()
    })
    .await;
    let api = Api::new(&emu);
    let mut replies = Vec::new();
    for _ in 0..6 {
        replies.push(api.get(&format!("/organizations/{ORG}/policies")).await);
    }
    // 6 requests cannot all fit a bucket of 2 refilled at 1/s in the time they take.
    let refused = replies.iter().find(|r| r.status == 429).expect("a 429");
    assert_eq!(
        refused.json(),
        json!({"errors": [{"detail": "You have exceeded the API's rate limit.",
                           "status": 429, "title": "Too many requests"}]})
    );
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    let reset: f64 = refused
        .header("x-ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset > 0.0 && reset <= 2.0, "{reset}");
    assert!(emu.emulator.requests().iter().any(|r| r.status == 429));
    emu.stop().await;
}

#[tokio::test]
async fn a_refused_request_changes_nothing() {
    let emu = start_with(EmulatorConfig {
        rate_limit: Some(RateLimit {
            per_second: 1,
            burst: 1,
        }),
        ..EmulatorConfig::default()
    })
    .await;
    let api = Api::new(&emu);
    let path = format!("/organizations/{ORG}/policies");
    let mut created = 0;
    for i in 0..4 {
        let reply = api
            .post(&path, &create_body(&format!("p{i}"), "advisory"))
            .await;
        if reply.status == 200 {
            created += 1;
        } else {
            assert_eq!(reply.status, 429);
        }
    }
    assert!(created < 4);
    assert_eq!(emu.emulator.policies(ORG).len(), created);
    emu.stop().await;
}

#[tokio::test]
async fn the_bucket_is_per_user_shared_by_that_users_tokens() {
    let mut config = EmulatorConfig {
        rate_limit: Some(RateLimit {
            per_second: 1,
            burst: 2,
        }),
        ..EmulatorConfig::default()
    };
    config
        .tokens
        .push(TokenConfig::user("admin-second-token", "admin", [ORG]));
    config
        .tokens
        .push(TokenConfig::user("someone-else", "someone", [ORG]));
    let emu = start_with(config).await;
    let api = Api::new(&emu);
    let path = format!("/organizations/{ORG}/policies");
    let first = api.get(&path).await;
    let second = api.with_token(Some("admin-second-token")).get(&path).await;
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(
        second.header("x-ratelimit-remaining"),
        Some("0"),
        "the same user's bucket"
    );
    let other = api.with_token(Some("someone-else")).get(&path).await;
    assert_eq!(other.status, 200);
    assert_eq!(
        other.header("x-ratelimit-remaining"),
        Some("1"),
        "another user's bucket"
    );
    emu.stop().await;
}

#[tokio::test]
async fn the_limit_can_be_lifted_at_runtime() {
    let emu = start_with(EmulatorConfig {
        rate_limit: Some(RateLimit {
            per_second: 1,
            burst: 1,
        }),
        ..EmulatorConfig::default()
    })
    .await;
    emu.emulator.set_rate_limit(None);
    let api = Api::new(&emu);
    emu.emulator.insert_policy(ORG, "p", Mode::Advisory, None);
    for _ in 0..50 {
        assert_eq!(
            api.get(&format!("/organizations/{ORG}/policies"))
                .await
                .status,
            200
        );
    }
    emu.stop().await;
}

#[tokio::test(start_paused = true)]
async fn over_http_the_bucket_refills_on_tokios_paused_clock() {
    let emu = start_with(EmulatorConfig {
        rate_limit: Some(RateLimit {
            per_second: 2,
            burst: 1,
        }),
        ..EmulatorConfig::default()
    })
    .await;
    // No idle pool: its timer would let the paused clock jump ahead while requests wait on I/O.
    let api = Api {
        http: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
        ..Api::new(&emu)
    };
    let path = format!("/organizations/{ORG}/policies");
    assert_eq!(api.get(&path).await.status, 200);
    let refused = api.get(&path).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("x-ratelimit-reset"), Some("0.500"));
    tokio::time::advance(std::time::Duration::from_millis(499)).await;
    assert_eq!(api.get(&path).await.status, 429);
    tokio::time::advance(std::time::Duration::from_millis(1)).await;
    let allowed = api.get(&path).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("x-ratelimit-remaining"), Some("0"));
    emu.stop().await;
}
