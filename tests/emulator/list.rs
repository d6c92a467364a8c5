//! Listing: pagination exactly as the real service does it, and no order to rely on.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tfe_policy_sync::model::Mode;

use crate::support::emulator::{Api, ORG, start, start_with, unlimited};

fn names(doc: &Value) -> Vec<String> {
    doc["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["attributes"]["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn page(api: &Api, query: &[(&str, &str)]) -> Value {
    let reply = api
        .send(
            api.request(
                reqwest::Method::GET,
                &format!("/organizations/{ORG}/policies"),
            )
            .query(query),
        )
        .await;
    assert_eq!(reply.status, 200);
    reply.json()
}

#[tokio::test]
async fn the_default_page_is_20_with_every_pagination_field_and_absolute_links() {
    let emu = start().await;
    for i in 0..45 {
        emu.emulator
            .insert_policy(ORG, &format!("policy-{i:02}"), Mode::Advisory, None);
    }
    let api = Api::new(&emu);
    let base = format!("{}/api/v2/organizations/{ORG}/policies", emu.base_url());
    let link = |n: u64| format!("{base}?page%5Bnumber%5D={n}&page%5Bsize%5D=20");

    let first = page(&api, &[]).await;
    assert_eq!(names(&first).len(), 20);
    assert_eq!(
        first["meta"]["pagination"],
        json!({"current-page": 1, "page-size": 20, "prev-page": null, "next-page": 2,
               "total-pages": 3, "total-count": 45})
    );
    assert_eq!(
        first["links"],
        json!({"self": link(1), "first": link(1), "prev": null, "next": link(2), "last": link(3)})
    );

    let last = page(&api, &[("page[number]", "3")]).await;
    assert_eq!(names(&last).len(), 5);
    assert_eq!(last["meta"]["pagination"]["prev-page"], 2);
    assert_eq!(last["meta"]["pagination"]["next-page"], json!(null));
    assert_eq!(last["links"]["next"], json!(null));
    assert_eq!(last["links"]["prev"], link(2));
    emu.stop().await;
}

#[tokio::test]
async fn following_next_links_visits_every_policy_once_in_no_name_order() {
    let emu = start_with(unlimited()).await;
    let mut expected = BTreeSet::new();
    for i in 0..45 {
        let name = format!("policy-{i:02}");
        emu.emulator.insert_policy(ORG, &name, Mode::Advisory, None);
        expected.insert(name);
    }
    let api = Api::new(&emu);
    let mut seen = Vec::new();
    let mut next = Some(format!(
        "{}?page%5Bsize%5D=7",
        api.url(&format!("/organizations/{ORG}/policies"))
    ));
    while let Some(url) = next {
        let reply = api
            .send(api.http.get(url).bearer_auth(api.token.clone().unwrap()))
            .await;
        let doc = reply.json();
        seen.extend(names(&doc));
        next = doc["links"]["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 45, "no policy twice");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_ne!(seen, sorted, "clients must not rely on name order");
    emu.stop().await;
}

#[tokio::test]
async fn page_size_is_capped_at_100_and_unusable_values_fall_back() {
    let emu = start().await;
    for i in 0..150 {
        emu.emulator
            .insert_policy(ORG, &format!("p{i}"), Mode::Advisory, None);
    }
    let api = Api::new(&emu);
    let big = page(&api, &[("page[size]", "500")]).await;
    assert_eq!(names(&big).len(), 100);
    assert_eq!(big["meta"]["pagination"]["page-size"], 100);
    assert_eq!(big["meta"]["pagination"]["total-pages"], 2);

    for junk in ["0", "-3", "many"] {
        let doc = page(&api, &[("page[size]", junk), ("page[number]", junk)]).await;
        assert_eq!(doc["meta"]["pagination"]["page-size"], 20, "{junk}");
        assert_eq!(doc["meta"]["pagination"]["current-page"], 1, "{junk}");
    }
    emu.stop().await;
}

#[tokio::test]
async fn unencoded_brackets_are_understood_too() {
    let emu = start().await;
    for i in 0..3 {
        emu.emulator
            .insert_policy(ORG, &format!("p{i}"), Mode::Advisory, None);
    }
    let api = Api::new(&emu);
    let reply = api
        .get(&format!(
            "/organizations/{ORG}/policies?page[size]=2&page[number]=2"
        ))
        .await;
    let doc = reply.json();
    assert_eq!(names(&doc).len(), 1);
    assert_eq!(doc["meta"]["pagination"]["current-page"], 2);
    emu.stop().await;
}

#[tokio::test]
async fn a_page_past_the_end_is_200_and_empty() {
    let emu = start().await;
    emu.emulator.insert_policy(ORG, "p", Mode::Advisory, None);
    let api = Api::new(&emu);
    let doc = page(&api, &[("page[number]", "9")]).await;
    assert_eq!(doc["data"], json!([]));
    assert_eq!(doc["meta"]["pagination"]["current-page"], 9);
    assert_eq!(doc["meta"]["pagination"]["total-count"], 1);
    assert_eq!(doc["meta"]["pagination"]["next-page"], json!(null));
    emu.stop().await;
}

#[tokio::test]
async fn an_empty_organization_lists_one_empty_page() {
    let emu = start().await;
    let doc = page(&Api::new(&emu), &[]).await;
    assert_eq!(doc["data"], json!([]));
    assert_eq!(doc["meta"]["pagination"]["total-count"], 0);
    assert_eq!(doc["meta"]["pagination"]["total-pages"], 1);
    emu.stop().await;
}

#[tokio::test]
async fn policies_of_other_organizations_are_not_listed() {
    let emu = start().await;
    emu.emulator
        .insert_policy("elsewhere", "theirs", Mode::Advisory, None);
    emu.emulator
        .insert_policy(ORG, "ours", Mode::Advisory, None);
    let doc = page(&Api::new(&emu), &[]).await;
    assert_eq!(names(&doc), ["ours"]);
    emu.stop().await;
}

#[tokio::test]
async fn search_by_name_filters_and_stays_in_the_links() {
    let emu = start().await;
    for name in ["require-tags", "require-owner", "restrict-regions"] {
        emu.emulator.insert_policy(ORG, name, Mode::Advisory, None);
    }
    let doc = page(&Api::new(&emu), &[("search[name]", "require")]).await;
    let mut found = names(&doc);
    found.sort();
    assert_eq!(found, ["require-owner", "require-tags"]);
    assert!(
        doc["links"]["self"]
            .as_str()
            .unwrap()
            .ends_with("&search%5Bname%5D=require")
    );
    emu.stop().await;
}
