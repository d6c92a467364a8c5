//! What goes over the wire: the headers the service requires, the concurrency limit, redirects
//! that must not carry the token, bodies that are not what they should be, and servers that
//! never answer. Stub servers stand in for the service where the emulator cannot misbehave in
//! the needed way.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::json;
use tfe_policy_sync::client::{
    ApiError, ClientOptions, MAX_DOCUMENT_BYTES, MAX_DOWNLOAD_BYTES, USER_AGENT,
};
use tfe_policy_sync::emulator::EmulatorConfig;
use tfe_policy_sync::model::{Mode, PolicyId, PolicyName, RemoteCode};

use super::*;

/// What a stub saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    accept: Option<String>,
    content_type: Option<String>,
    user_agent: Option<String>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

fn header_of(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn record(log: &Log, req: &Request) {
    let h = req.headers();
    log.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        authorization: header_of(h, header::AUTHORIZATION),
        accept: header_of(h, header::ACCEPT),
        content_type: header_of(h, header::CONTENT_TYPE),
        user_agent: header_of(h, header::USER_AGENT),
    });
}

fn policy_doc(mode: &str, with_download: bool) -> serde_json::Value {
    let mut links = json!({"self": "/api/v2/policies/pol-stub"});
    if with_download {
        links["download"] = json!("/api/v2/policies/pol-stub/download");
    }
    json!({"data": {"id": "pol-stub", "type": "policies",
        "attributes": {"name": "p", "enforcement-level": mode, "enforce": [], "updated-at": null},
        "links": links}})
}

fn json_api(status: StatusCode, v: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/vnd.api+json")],
        v.to_string(),
    )
        .into_response()
}

/// A service that answers every operation plausibly and records the headers it got.
async fn recording_service(log: Log) -> String {
    async fn handle(State(log): State<Log>, req: Request) -> Response {
        record(&log, &req);
        let path = req.uri().path().to_owned();
        match (req.method().as_str(), path.as_str()) {
            ("GET", p) if p.ends_with("/download") => "main = rule { true }".into_response(),
            ("GET", p) if p.ends_with("/policies") => json_api(
                StatusCode::OK,
                json!({"data": [policy_doc("advisory", true)["data"]]}),
            ),
            ("DELETE", _) => StatusCode::NO_CONTENT.into_response(),
            ("PATCH", _) => json_api(StatusCode::OK, policy_doc("advisory", true)),
            _ => json_api(StatusCode::OK, policy_doc("advisory", false)),
        }
    }
    stub(Router::new().fallback(any(handle)).with_state(log)).await
}

#[tokio::test]
async fn every_request_carries_the_headers_the_service_requires() {
    let log: Log = Arc::default();
    let base = recording_service(log.clone()).await;
    let client = client_for(&base, "acme", SECRET, opts());
    let id = PolicyId("pol-stub".into());
    let name = PolicyName::new("p").unwrap();
    client.list_policies().await.unwrap();
    client.create(&name, Mode::Advisory).await.unwrap();
    client.upload(&id, b"main = rule { true }").await.unwrap();
    client.download(&id).await.unwrap();
    client.set_mode(&id, &name, Mode::Advisory).await.unwrap();
    client.delete(&id).await.unwrap();

    let seen = log.lock().unwrap().clone();
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(methods, ["GET", "POST", "PUT", "GET", "PATCH", "DELETE"]);
    for s in &seen {
        assert_eq!(
            s.authorization.as_deref(),
            Some(format!("Bearer {SECRET}").as_str()),
            "{s:?}"
        );
        assert_eq!(s.user_agent.as_deref(), Some(USER_AGENT), "{s:?}");
        let want_type = match s.method.as_str() {
            "GET" => None,
            "PUT" => Some("application/octet-stream"),
            _ => Some("application/vnd.api+json"),
        };
        assert_eq!(s.content_type.as_deref(), want_type, "{s:?}");
        if s.method == "GET" {
            assert_eq!(
                s.accept.as_deref(),
                Some("application/vnd.api+json"),
                "{s:?}"
            );
        }
    }
    assert!(USER_AGENT.starts_with("tfe-policy-sync/"));
    assert_eq!(seen[0].path, "/api/v2/organizations/acme/policies");
}

#[tokio::test]
async fn concurrency_n_means_n_requests_in_flight() {
    #[derive(Default)]
    struct Gauge {
        now: AtomicUsize,
        max: AtomicUsize,
    }
    async fn slow(State(g): State<Arc<Gauge>>) -> &'static str {
        let n = g.now.fetch_add(1, Ordering::SeqCst) + 1;
        g.max.fetch_max(n, Ordering::SeqCst);
        // Long enough that a busy machine still gets three requests in at once.
        tokio::time::sleep(Duration::from_millis(200)).await;
        g.now.fetch_sub(1, Ordering::SeqCst);
        "code"
    }
    let gauge = Arc::new(Gauge::default());
    let base = stub(
        Router::new()
            .route("/api/v2/policies/{id}/download", get(slow))
            .with_state(gauge.clone()),
    )
    .await;
    let client = client_for(
        &base,
        "acme",
        SECRET,
        ClientOptions {
            concurrency: 3,
            ..opts()
        },
    );
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.download(&PolicyId(format!("pol-{i}"))).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(
            t.await.unwrap().unwrap(),
            RemoteCode::Present(b"code".to_vec())
        );
    }
    assert_eq!(gauge.max.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_download_redirected_to_another_origin_does_not_carry_the_token() {
    let blob_log: Log = Arc::default();
    let blob = {
        let log = blob_log.clone();
        stub(Router::new().fallback(any(move |req: Request| {
            let log = log.clone();
            async move {
                record(&log, &req);
                "the code"
            }
        })))
        .await
    };
    let api_log: Log = Arc::default();
    let api = {
        let (log, blob) = (api_log.clone(), blob.clone());
        stub(Router::new().fallback(any(move |req: Request| {
            let (log, blob) = (log.clone(), blob.clone());
            async move {
                record(&log, &req);
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, format!("{blob}/blobs/abc?sig=xyz"))],
                )
            }
        })))
        .await
    };
    let client = client_for(&api, "acme", SECRET, opts());
    let code = client.download(&PolicyId("pol-1".into())).await.unwrap();
    assert_eq!(code, RemoteCode::Present(b"the code".to_vec()));
    let api_seen = api_log.lock().unwrap().clone();
    let blob_seen = blob_log.lock().unwrap().clone();
    assert_eq!(api_seen.len(), 1);
    assert!(
        api_seen[0].authorization.is_some(),
        "the API gets the token"
    );
    assert_eq!(blob_seen.len(), 1);
    assert_eq!(blob_seen[0].path, "/blobs/abc");
    assert_eq!(
        blob_seen[0].authorization, None,
        "another origin never sees the token"
    );
}

#[tokio::test]
async fn the_emulators_redirecting_download_gets_the_code_without_the_token() {
    let running = start(EmulatorConfig {
        download_redirect: true,
        ..config()
    })
    .await;
    let id = running
        .emulator
        .insert_policy(ORG, "p", Mode::Advisory, Some(b"redirected code"));
    let client = client_of(&running, opts());
    assert_eq!(
        client.download(&PolicyId(id)).await.unwrap(),
        RemoteCode::Present(b"redirected code".to_vec())
    );
    // The API hop carried the token; the hop to the other host name did not.
    let log = running.emulator.requests();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log[0].path.ends_with("/download") && log[0].status == 307,
        "{log:?}"
    );
    assert!(log[0].had_authorization, "{log:?}");
    assert!(!log[1].path.starts_with("/api/v2"), "{log:?}");
    assert!(
        !log[1].had_authorization,
        "the token crossed to another host: {log:?}"
    );
}

#[tokio::test]
async fn an_html_error_page_from_a_proxy_reads_as_a_clear_message() {
    let base = stub(Router::new().fallback(any(|| async {
        (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>\
             <p>The upstream server is unreachable.</p></body></html>",
        )
    })))
    .await;
    let client = client_for(
        &base,
        "acme",
        SECRET,
        ClientOptions {
            max_retries: 0,
            ..opts()
        },
    );
    let err = client.list_policies().await.unwrap_err();
    assert!(
        matches!(err, ApiError::Server { status: 502, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("failed with 502"), "{msg}");
    assert!(msg.contains("The upstream server is unreachable."), "{msg}");
    assert!(msg.contains("not a JSON:API error document"), "{msg}");
    assert!(!msg.contains('<'), "markup is stripped: {msg}");
    assert_secret_free(&err);
}

#[tokio::test]
async fn a_success_body_that_is_not_json_is_an_unexpected_response_with_a_path() {
    let base = stub(Router::new().fallback(any(|| async {
        json_api(
            StatusCode::OK,
            json!({"data": [{"id": "pol-1", "type": "policies", "attributes": {"name": 42}}]}),
        )
    })))
    .await;
    let client = client_for(&base, "acme", SECRET, opts());
    let err = client.list_policies().await.unwrap_err();
    assert!(
        matches!(err, ApiError::UnexpectedResponse { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("data[0].attributes.name"), "{err}");
}

#[tokio::test]
async fn a_mode_the_service_did_not_apply_is_an_error() {
    // The real service falls back to hard-mandatory silently; never report such a write as done.
    let base = stub(Router::new().fallback(any(|| async {
        json_api(StatusCode::OK, policy_doc("hard-mandatory", true))
    })))
    .await;
    let client = client_for(&base, "acme", SECRET, opts());
    let err = client
        .set_mode(
            &PolicyId("pol-stub".into()),
            &PolicyName::new("p").unwrap(),
            Mode::Advisory,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::ModeMismatch {
                requested: Mode::Advisory,
                applied: Mode::HardMandatory,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_oversized_download_is_refused_not_buffered() {
    let base = stub(Router::new().fallback(any(|| async {
        Bytes::from(vec![b'x'; MAX_DOWNLOAD_BYTES + 1])
    })))
    .await;
    let client = client_for(&base, "acme", SECRET, opts());
    let err = client
        .download(&PolicyId("pol-big".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::TooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn an_oversized_list_document_is_refused_not_buffered() {
    // A list page that never ends: a JSON array streamed past the document limit.
    let base = stub(Router::new().fallback(any(|| async {
        let mut body = br#"{"data": ["#.to_vec();
        body.resize(MAX_DOCUMENT_BYTES + 1, b' ');
        ([(header::CONTENT_TYPE, "application/vnd.api+json")], body)
    })))
    .await;
    let client = client_for(&base, "acme", SECRET, opts());
    let err = client.list_policies().await.unwrap_err();
    assert!(matches!(err, ApiError::TooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn a_connection_that_is_never_established_is_cut_by_the_connect_timeout() {
    // A listener that never accepts, with the smallest backlog, filled up: the kernel drops
    // further SYNs, so a new connection hangs in the handshake.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    loop {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => fillers.push(stream),
            Ok(Err(e)) => panic!("connect: {e}"),
            // The queue is full: this is the state the client will meet.
            Err(_) => break,
        }
        assert!(fillers.len() < 64, "the backlog never filled up");
    }
    let client = client_for(
        &format!("http://{addr}"),
        "acme",
        SECRET,
        ClientOptions {
            connect_timeout: Duration::from_millis(300),
            // Far longer than the connect timeout: only the connect timeout can end the call
            // within the bound below.
            request_timeout: Duration::from_secs(60),
            max_retries: 0,
            ..opts()
        },
    );
    let err = tokio::time::timeout(Duration::from_secs(30), client.list_policies())
        .await
        .expect("the connect timeout ends the call, not the 60 s request timeout")
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    drop((listener, fillers));
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            open.push(socket);
        }
    });
    let client = client_for(
        &format!("http://{addr}"),
        "acme",
        SECRET,
        ClientOptions {
            request_timeout: Duration::from_millis(200),
            max_retries: 1,
            ..opts()
        },
    );
    let err = client.list_policies().await.unwrap_err();
    assert!(matches!(err, ApiError::Timeout { .. }), "{err:?}");
    assert!(err.is_transient());
    held.abort();
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error_without_the_token() {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = client_for(
        &format!("http://{addr}"),
        "acme",
        SECRET,
        ClientOptions {
            max_retries: 0,
            ..opts()
        },
    );
    let err = client.list_policies().await.unwrap_err();
    assert!(matches!(err, ApiError::Transport { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(
        err.to_string().contains(&addr.to_string()) || err.to_string().contains("connect"),
        "{err}"
    );
    assert_secret_free(&err);
}

/// A list service whose pages are given as (policy names, next page).
async fn paged_service(pages: Vec<(Vec<&'static str>, Option<u64>)>) -> String {
    let pages = Arc::new(pages);
    stub(Router::new().fallback(any(move |req: Request| {
        let pages = pages.clone();
        async move {
            let query = req.uri().query().unwrap_or_default().to_owned();
            let number: usize = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("page%5Bnumber%5D="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let (names, next) = pages[number - 1].clone();
            let data: Vec<_> = names
                .iter()
                .map(|n| {
                    json!({"id": format!("pol-{n}"), "type": "policies",
                           "attributes": {"name": n, "enforcement-level": "advisory"}})
                })
                .collect();
            json_api(
                StatusCode::OK,
                json!({"data": data, "meta": {"pagination": {"current-page": number, "next-page": next}}}),
            )
        }
    })))
    .await
}

#[tokio::test]
async fn a_policy_that_shifts_to_the_next_page_is_listed_once() {
    let base = paged_service(vec![(vec!["a", "b"], Some(2)), (vec!["b", "c"], None)]).await;
    let client = client_for(&base, "acme", SECRET, opts());
    let names: Vec<String> = client
        .list_policies()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[tokio::test]
async fn a_pagination_that_does_not_advance_is_an_error_not_a_loop() {
    let base = paged_service(vec![(vec!["a"], Some(1))]).await;
    let client = client_for(&base, "acme", SECRET, opts());
    let err = client.list_policies().await.unwrap_err();
    assert!(
        matches!(err, ApiError::UnexpectedResponse { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("pagination"), "{err}");
}
