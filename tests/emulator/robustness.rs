//! Bad requests never crash or wedge the server: bodies of any size or shape get an error
//! status, oversized uploads keep the old code, and the server keeps answering.

use tfe_policy_sync::emulator::{EmulatorConfig, Fault, Faults, RateLimit};
use tfe_policy_sync::model::Mode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::emulator::{Api, ORG, create_body, start, start_with, unlimited};

const TEN_MIB: usize = 10 * 1024 * 1024;

#[tokio::test]
async fn an_upload_over_10_mib_is_413_and_the_old_code_is_kept() {
    let emu = start().await;
    let api = Api::new(&emu);
    let id = api.create("p", "advisory").await;
    assert_eq!(api.upload(&id, "old").await.status, 200);
    let before = emu.emulator.policy(&id).unwrap().updated_at;

    let reply = api.upload(&id, vec![b'x'; TEN_MIB + 1]).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error()["status"], "413");
    assert_eq!(api.download(&id).await.body, b"old");
    assert_eq!(emu.emulator.policy(&id).unwrap().updated_at, before);
    assert_eq!(
        api.get("/ping").await.status,
        204,
        "the server still answers"
    );
    emu.stop().await;
}

#[tokio::test]
async fn an_upload_of_exactly_the_limit_is_accepted() {
    let emu = start_with(EmulatorConfig {
        max_upload: 1000,
        ..EmulatorConfig::default()
    })
    .await;
    let api = Api::new(&emu);
    let id = api.create("p", "advisory").await;
    assert_eq!(api.upload(&id, vec![b'a'; 1000]).await.status, 200);
    assert_eq!(api.upload(&id, vec![b'b'; 1001]).await.status, 413);
    assert_eq!(api.download(&id).await.body, vec![b'a'; 1000]);
    emu.stop().await;
}

#[tokio::test]
async fn a_chunked_upload_without_length_is_limited_too() {
    let emu = start_with(EmulatorConfig {
        max_upload: 1000,
        ..EmulatorConfig::default()
    })
    .await;
    let api = Api::new(&emu);
    let id = api.create("p", "advisory").await;
    let mut stream = tokio::net::TcpStream::connect(emu.addr).await.unwrap();
    let mut request = format!(
        "PUT /api/v2/policies/{id}/upload HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        emu.addr,
        crate::support::emulator::TOKEN
    )
    .into_bytes();
    for _ in 0..20 {
        request.extend(b"64\r\n");
        request.extend([b'z'; 100]);
        request.extend(b"\r\n");
    }
    request.extend(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert_eq!(api.download(&id).await.status, 404, "nothing was stored");
    emu.stop().await;
}

#[tokio::test]
async fn a_json_body_over_the_limit_is_413() {
    let emu = start().await;
    let api = Api::new(&emu);
    let mut body = br#"{"data": {"type": "policies", "attributes": {"name": "p", "x": ""#.to_vec();
    body.extend(vec![b'a'; TEN_MIB]);
    body.extend(br#""}}}"#);
    let reply = api
        .post_raw(&format!("/organizations/{ORG}/policies"), body)
        .await;
    assert_eq!(reply.status, 413);
    assert!(emu.emulator.policies(ORG).is_empty());
    emu.stop().await;
}

#[tokio::test]
async fn bodies_of_any_shape_get_an_error_status_and_the_server_lives_on() {
    let emu = start_with(unlimited()).await;
    let api = Api::new(&emu);
    let id = emu
        .emulator
        .insert_policy(ORG, "p", Mode::Advisory, Some(b"x"));
    let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    let bodies: Vec<Vec<u8>> = vec![
        vec![0xFF, 0xFE, 0x00, 0x80],
        b"null".to_vec(),
        b"42".to_vec(),
        b"\"data\"".to_vec(),
        br#"{"data": null}"#.to_vec(),
        br#"{"data": []}"#.to_vec(),
        br#"{"data": {"type": 1}}"#.to_vec(),
        br#"{"data": {"type": "policies", "attributes": []}}"#.to_vec(),
        br#"{"data": {"type": "policies", "attributes": {"name": "p", "enforce": [null]}}}"#.to_vec(),
        br#"{"data": {"type": "policies", "attributes": {"name": "p", "enforce": [{"path": 5}]}}}"#.to_vec(),
        br#"{"data": {"type": "policies", "attributes": {"name": "p", "enforce": [{"mode": {}}]}}}"#.to_vec(),
        deep_array.into_bytes(),
        deep_object.into_bytes(),
        vec![b'{'; 100_000],
        "{\"data\": \"\u{0}\u{FFFF}\"}".as_bytes().to_vec(),
    ];
    for body in bodies {
        let create = api
            .post_raw(&format!("/organizations/{ORG}/policies"), body.clone())
            .await;
        assert_eq!(
            create.status,
            422,
            "create with {:?}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        let update = api
            .send(
                api.request(reqwest::Method::PATCH, &format!("/policies/{id}"))
                    .header("content-type", "application/vnd.api+json")
                    .body(body.clone()),
            )
            .await;
        assert_eq!(update.status, 422);
    }
    // A name of the wrong type fails a create; an update ignores the name altogether.
    let bad_name = br#"{"data": {"type": "policies", "attributes": {"name": ["p"]}}}"#.to_vec();
    let create = api
        .post_raw(&format!("/organizations/{ORG}/policies"), bad_name.clone())
        .await;
    assert_eq!(create.status, 422);
    let update = api
        .send(
            api.request(reqwest::Method::PATCH, &format!("/policies/{id}"))
                .header("content-type", "application/vnd.api+json")
                .body(bad_name),
        )
        .await;
    assert_eq!(update.status, 200);
    assert_eq!(api.get("/ping").await.status, 204);
    assert_eq!(emu.emulator.policies(ORG).len(), 1);
    emu.stop().await;
}

#[tokio::test]
async fn odd_paths_and_queries_are_answered_not_crashed_on() {
    let emu = start().await;
    let api = Api::new(&emu);
    for path in [
        "/policies/%FF%FE",
        "/policies/..%2F..%2Fetc%2Fpasswd",
        "/policies/",
        "/organizations/%00/policies",
        "/organizations//policies",
        "/policies/pol-x/upload/extra",
    ] {
        let reply = api.get(path).await;
        assert_eq!(reply.status, 404, "{path}");
    }
    let reply = api
        .get(&format!(
            "/organizations/{ORG}/policies?page[number]=%FF&page[size]=%%&&=&x"
        ))
        .await;
    assert_eq!(reply.status, 200);
    emu.stop().await;
}

#[tokio::test]
async fn garbage_on_the_socket_does_not_stop_the_server() {
    let emu = start().await;
    for garbage in [&b"\x00\x01\x02 not http\r\n\r\n"[..], b"GET / HTTP/9.9\r\n\r\n", b"POST /api/v2/organizations/my-organization/policies HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"] {
        let mut stream = tokio::net::TcpStream::connect(emu.addr).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    }
    // A client that connects and goes away mid-body.
    {
        let mut stream = tokio::net::TcpStream::connect(emu.addr).await.unwrap();
        let head = format!(
            "PUT /api/v2/policies/pol-x/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1000\r\n\r\npartial",
            crate::support::emulator::TOKEN
        );
        stream.write_all(head.as_bytes()).await.unwrap();
    }
    assert_eq!(Api::new(&emu).get("/ping").await.status, 204);
    emu.stop().await;
}

#[tokio::test]
async fn concurrent_creates_of_one_name_make_exactly_one_policy() {
    let emu = start_with(unlimited()).await;
    let api = Api::new(&emu);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            api.post(
                &format!("/organizations/{ORG}/policies"),
                &create_body("same", "advisory"),
            )
            .await
            .status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 422).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(emu.emulator.policies(ORG).len(), 1);
    emu.stop().await;
}

/// Answers given before any handler reads the body (401, an injected 503, 429) must reach a
/// client that is still sending a large upload as statuses it can act on, not as a reset
/// connection, and store nothing.
#[tokio::test]
async fn early_answers_to_a_large_upload_reach_the_client_as_statuses_not_resets() {
    const BODY: usize = 12 * 1024 * 1024;
    let emu = start_with(unlimited()).await;
    let api = Api::new(&emu);
    let id = api.create("p", "advisory").await;

    let anonymous = api.with_token(None).upload(&id, vec![b'a'; BODY]).await;
    assert_eq!(anonymous.status, 401);

    emu.emulator.set_faults(Faults {
        before: Fault::next(1),
        ..Faults::default()
    });
    assert_eq!(api.upload(&id, vec![b'b'; BODY]).await.status, 503);

    emu.emulator.set_rate_limit(Some(RateLimit {
        per_second: 1,
        burst: 1,
    }));
    assert_eq!(api.get("/ping").await.status, 204, "spends the one token");
    let limited = api.upload(&id, vec![b'c'; BODY]).await;
    assert_eq!(limited.status, 429);
    assert!(limited.header("x-ratelimit-reset").is_some());

    emu.emulator.set_rate_limit(None);
    assert_eq!(api.download(&id).await.status, 404, "nothing was stored");
    emu.stop().await;
}
