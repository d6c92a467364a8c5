//! Fault injection: errors before acting, errors after acting (the lost response), hung
//! requests, latency, and reproducibility from the seed.

use std::time::Duration;

use tfe_policy_sync::emulator::{EmulatorConfig, Fault, FaultTarget, Faults};
use tfe_policy_sync::model::Mode;

use crate::support::emulator::{Api, ORG, create_body, start, start_with, unlimited};

#[tokio::test]
async fn a_fault_before_acting_answers_503_and_changes_nothing() {
    let emu = start().await;
    emu.emulator.set_faults(Faults {
        before: Fault::next(1).mutating(),
        ..Faults::default()
    });
    let api = Api::new(&emu);
    let path = format!("/organizations/{ORG}/policies");
    assert_eq!(api.get(&path).await.status, 200, "GETs are not targeted");
    let failed = api.post(&path, &create_body("p", "advisory")).await;
    assert_eq!(failed.status, 503);
    assert!(
        failed
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(emu.emulator.policies(ORG).is_empty());
    assert_eq!(
        api.post(&path, &create_body("p", "advisory")).await.status,
        200
    );
    emu.stop().await;
}

#[tokio::test]
async fn a_fault_after_acting_answers_502_but_the_create_happened() {
    let emu = start().await;
    emu.emulator.set_faults(Faults {
        after: Fault::next(1).mutating(),
        ..Faults::default()
    });
    let api = Api::new(&emu);
    let path = format!("/organizations/{ORG}/policies");
    let lost = api.post(&path, &create_body("p", "advisory")).await;
    assert_eq!(lost.status, 502);
    assert_eq!(
        emu.emulator.policies(ORG).len(),
        1,
        "the change was applied"
    );
    // A client that blindly retries meets the duplicate.
    let retry = api.post(&path, &create_body("p", "advisory")).await;
    assert_eq!(retry.status, 422);
    assert_eq!(retry.error()["detail"], "Name has already been taken");
    emu.stop().await;
}

#[tokio::test]
async fn a_lost_upload_response_still_stored_the_code() {
    let emu = start().await;
    let id = emu.emulator.insert_policy(ORG, "p", Mode::Advisory, None);
    emu.emulator.set_faults(Faults {
        after: Fault::next(1).on(FaultTarget::Method(reqwest::Method::PUT)),
        ..Faults::default()
    });
    let api = Api::new(&emu);
    assert_eq!(api.upload(&id, "new code").await.status, 502);
    assert_eq!(api.download(&id).await.body, b"new code");
    emu.stop().await;
}

#[tokio::test]
async fn after_faults_only_turn_successes_into_errors() {
    let emu = start().await;
    emu.emulator.set_faults(Faults {
        after: Fault::next(1),
        ..Faults::default()
    });
    let api = Api::new(&emu);
    // A 404 stays a 404 and does not use up the fault.
    assert_eq!(api.get("/policies/pol-0000000000000000").await.status, 404);
    assert_eq!(
        api.get(&format!("/organizations/{ORG}/policies"))
            .await
            .status,
        502
    );
    assert_eq!(
        api.get(&format!("/organizations/{ORG}/policies"))
            .await
            .status,
        200
    );
    emu.stop().await;
}

#[tokio::test]
async fn fault_statuses_can_be_chosen() {
    let emu = start().await;
    emu.emulator.set_faults(Faults {
        before: Fault::next(1).with_status(500),
        ..Faults::default()
    });
    let api = Api::new(&emu);
    assert_eq!(api.get("/ping").await.status, 500);
    emu.stop().await;
}

#[tokio::test]
async fn probabilistic_faults_repeat_exactly_for_the_same_seed() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let emu = start_with(EmulatorConfig {
            faults: Faults {
                before: Fault::rate(0.3),
                after: Fault::rate(0.2).mutating(),
                seed,
                ..Faults::default()
            },
            seed: Some(seed),
            ..unlimited()
        })
        .await;
        let api = Api::new(&emu);
        let mut out = Vec::new();
        for i in 0..30 {
            let reply = api
                .post(
                    &format!("/organizations/{ORG}/policies"),
                    &create_body(&format!("p{i}"), "advisory"),
                )
                .await;
            out.push(reply.status);
        }
        emu.stop().await;
        out
    }
    let a = statuses(42).await;
    assert_eq!(a, statuses(42).await);
    assert!(
        a.contains(&503) && a.contains(&502) && a.contains(&200),
        "{a:?}"
    );
}

#[tokio::test]
async fn a_hung_request_waits_until_released_and_never_wedges_shutdown() {
    let emu = start().await;
    emu.emulator.set_faults(Faults {
        hang: Fault::next(2),
        ..Faults::default()
    });
    let api = Api::new(&emu);
    let hung = tokio::spawn({
        let api = api.clone();
        async move {
            let reply = api.get(&format!("/organizations/{ORG}/policies")).await;
            // Released, it is answered like every other API response.
            assert!(reply.header("x-ratelimit-limit").is_some(), "{reply:?}");
            reply.status
        }
    });
    // Wait until the emulator has the request (the log shows it as unanswered, status 0).
    for _ in 0..500 {
        if emu.emulator.requests().iter().any(|r| r.status == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(emu.emulator.requests().iter().any(|r| r.status == 0));
    assert!(!hung.is_finished());
    emu.emulator.release_hung();
    assert_eq!(hung.await.unwrap(), 503);

    // A second hung request must not keep `stop` from returning.
    let client = api.clone();
    let second = tokio::spawn(async move {
        client
            .http
            .get(client.url("/ping"))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    for _ in 0..500 {
        if emu
            .emulator
            .requests()
            .iter()
            .filter(|r| r.status == 0)
            .count()
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    emu.stop().await;
    let _ = second.await;
}

#[tokio::test]
async fn latency_is_added_to_each_request() {
    let emu = start().await;
    emu.emulator.set_latency(Duration::from_millis(30));
    let api = Api::new(&emu);
    let started = std::time::Instant::now();
    assert_eq!(api.get("/ping").await.status, 204);
    // A lower bound only: the request cannot be faster than the latency added.
    assert!(started.elapsed() >= Duration::from_millis(30));
    emu.stop().await;
}
