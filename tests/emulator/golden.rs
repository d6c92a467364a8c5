//! Golden tests: the emulator's documents hold the same values as the samples of the seed's API
//! document (`tests/fixtures/api/`, copied from it, and shared with the client's wire tests), once ids and times are normalised. Today's additions
//! (`enforcement-level`, `relationships`, pagination…) are allowed on top, and only those.

use serde_json::{Value, json};
use tfe_policy_sync::emulator::EmulatorConfig;

use crate::support::emulator::{Api, ORG, start, start_with};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/api/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn is_api_time(s: &str) -> bool {
    // 2017-10-10T20:58:04.621Z
    let b = s.as_bytes();
    b.len() == 24
        && s.chars().enumerate().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            19 => c == '.',
            23 => c == 'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Replaces the policy id everywhere with `pol-ID`, and times with `TIME` (after checking
/// their format).
fn normalise(v: &Value, id: &str) -> Value {
    match v {
        Value::String(s) if s.contains(id) => Value::String(s.replace(id, "pol-ID")),
        Value::String(s) if s.len() == 24 && s.ends_with('Z') => {
            assert!(is_api_time(s), "{s} is not an API time");
            Value::String("TIME".into())
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| normalise(x, id)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), normalise(x, id)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every member of `sample` is in `actual` with the same value; arrays have the same length.
/// Returns the paths of members `actual` has beyond the sample.
fn contains(sample: &Value, actual: &Value, path: &str, extras: &mut Vec<String>) {
    match (sample, actual) {
        (Value::Object(s), Value::Object(a)) => {
            for (k, sv) in s {
                let av = a.get(k).unwrap_or_else(|| panic!("{path}/{k} is missing"));
                contains(sv, av, &format!("{path}/{k}"), extras);
            }
            extras.extend(
                a.keys()
                    .filter(|k| !s.contains_key(*k))
                    .map(|k| format!("{path}/{k}")),
            );
        }
        (Value::Array(s), Value::Array(a)) => {
            assert_eq!(s.len(), a.len(), "{path}: {sample} vs {actual}");
            for (i, (sv, av)) in s.iter().zip(a).enumerate() {
                contains(sv, av, &format!("{path}/{i}"), extras);
            }
        }
        _ => assert_eq!(sample, actual, "{path}"),
    }
}

/// Attributes and members of today's service that the 2017 samples do not show.
const TODAYS_ADDITIONS: [&str; 6] = [
    "attributes/description",
    "attributes/enforcement-level",
    "attributes/kind",
    "attributes/policy-set-count",
    "attributes/query",
    "relationships",
];

fn assert_matches_sample(sample_file: &str, actual: &Value, id: &str, extra_top_level: &[&str]) {
    let sample = normalise(&fixture_json(sample_file), "pol-u3S5p2Uwk21keu1s");
    let actual = normalise(actual, id);
    let mut extras = Vec::new();
    contains(&sample, &actual, "", &mut extras);
    for extra in &extras {
        let allowed = TODAYS_ADDITIONS.iter().any(|a| extra.ends_with(a))
            || extra_top_level.contains(&extra.as_str());
        assert!(allowed, "{sample_file}: unexpected member {extra}");
    }
}

fn with_mode(mut payload: Value, mode: &str) -> Value {
    payload["data"]["attributes"]["enforce"][0]["mode"] = json!(mode);
    payload
}

#[tokio::test]
async fn the_create_response_matches_the_seed_sample() {
    // The 2017 service showed `enforce` at creation, as the sample does.
    let emu = start_with(EmulatorConfig {
        enforce_before_upload: true,
        ..EmulatorConfig::default()
    })
    .await;
    let api = Api::new(&emu);
    // The seed's sample request asks for hard-mandatory while its sample response shows
    // advisory; ask for what the response shows.
    let payload = with_mode(fixture_json("create-request.json"), "advisory");
    let reply = api
        .post(&format!("/organizations/{ORG}/policies"), &payload)
        .await;
    assert_eq!(reply.status, 200);
    let doc = reply.json();
    let id = doc["data"]["id"].as_str().unwrap().to_owned();
    assert_matches_sample("create-response.json", &doc, &id, &[]);
    emu.stop().await;
}

#[tokio::test]
async fn todays_create_response_differs_from_the_sample_only_in_enforce() {
    let emu = start().await;
    let api = Api::new(&emu);
    let payload = with_mode(fixture_json("create-request.json"), "advisory");
    let doc = api
        .post(&format!("/organizations/{ORG}/policies"), &payload)
        .await
        .json();
    let id = doc["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(doc["data"]["attributes"]["enforce"], json!([]));
    assert_eq!(doc["data"]["attributes"]["enforcement-level"], "advisory");
    let mut sample = fixture_json("create-response.json");
    sample["data"]["attributes"]["enforce"] = json!([]);
    let mut extras = Vec::new();
    contains(
        &normalise(&sample, "pol-u3S5p2Uwk21keu1s"),
        &normalise(&doc, &id),
        "",
        &mut extras,
    );
    // Besides `enforce`, only today's additions: no member the sample does not account for.
    for extra in &extras {
        assert!(
            TODAYS_ADDITIONS.iter().any(|a| extra.ends_with(a)),
            "unexpected member {extra}"
        );
    }
    emu.stop().await;
}

#[tokio::test]
async fn the_update_response_matches_the_seed_sample() {
    let emu = start().await;
    let api = Api::new(&emu);
    let id = api.create("my-example-policy", "advisory").await;
    assert_eq!(api.upload(&id, "main = rule { true }").await.status, 200);
    let reply = api
        .patch(
            &format!("/policies/{id}"),
            &fixture_json("update-request.json"),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_matches_sample("update-response.json", &reply.json(), &id, &[]);
    emu.stop().await;
}

#[tokio::test]
async fn the_list_response_matches_the_seed_sample() {
    let emu = start().await;
    let api = Api::new(&emu);
    let id = api.create("my-example-policy", "advisory").await;
    assert_eq!(api.upload(&id, "main = rule { true }").await.status, 200);
    let reply = api.get(&format!("/organizations/{ORG}/policies")).await;
    assert_eq!(reply.status, 200);
    assert_matches_sample(
        "list-response.json",
        &reply.json(),
        &id,
        &["/links", "/meta"],
    );
    emu.stop().await;
}

#[tokio::test]
async fn the_seed_payloads_as_written_are_not_json_and_get_422() {
    // The document's sample payloads carry trailing commas; the service rejects them.
    let emu = start().await;
    let api = Api::new(&emu);
    let reply = api
        .post_raw(
            &format!("/organizations/{ORG}/policies"),
            fixture("create-request-as-documented.json").into_bytes(),
        )
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.error()["source"]["pointer"], "");
    let id = api.create("my-example-policy", "advisory").await;
    let reply = api
        .send(
            api.request(reqwest::Method::PATCH, &format!("/policies/{id}"))
                .header("content-type", "application/vnd.api+json")
                .body(fixture("update-request-as-documented.json")),
        )
        .await;
    assert_eq!(reply.status, 422);
    emu.stop().await;
}

#[test]
fn the_fixtures_are_the_seed_samples() {
    // Guard against a fixture edited by hand: each must appear in the seed document verbatim.
    let seed_path = format!(
        "{}/../shared/seed/policies-api.md",
        env!("CARGO_MANIFEST_DIR")
    );
    let Ok(seed) = std::fs::read_to_string(&seed_path) else {
        // The seed lives beside the repository on development machines and in CI; a clone
        // elsewhere cannot check this, but CI must.
        assert!(
            std::env::var_os("CI").is_none(),
            "{seed_path} is missing in CI"
        );
        return;
    };
    for name in [
        "create-response.json",
        "update-response.json",
        "list-response.json",
        "create-request-as-documented.json",
        "update-request-as-documented.json",
    ] {
        assert!(
            seed.contains(&fixture(name)),
            "{name} is not verbatim from the seed"
        );
    }
}

/// `text` without the commas that stand right before a closing `}` or `]`.
fn without_trailing_commas(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
        if c == ',' && matches!(next, Some('}' | ']')) {
            continue;
        }
        out.push(c);
    }
    out
}

#[test]
fn the_json_request_samples_are_the_documented_ones_without_trailing_commas() {
    for (documented, fixed) in [
        ("create-request-as-documented.json", "create-request.json"),
        ("update-request-as-documented.json", "update-request.json"),
    ] {
        assert!(serde_json::from_str::<Value>(&fixture(documented)).is_err());
        let repaired: Value = serde_json::from_str(&without_trailing_commas(&fixture(documented)))
            .unwrap_or_else(|e| panic!("{documented}: {e}"));
        assert_eq!(repaired, fixture_json(fixed), "{fixed}");
    }
}
