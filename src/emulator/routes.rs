//! The HTTP side: the router, the gate every API request passes (latency, rate limit, faults,
//! authentication, request log, rate-limit headers), the handlers, and bounded body reading.

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, OriginalUri, Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use tokio::time::Instant;

use super::auth::Caller;
use super::documents::{
    self, ApiError, DEFAULT_PAGE_SIZE, JSON_API, ListDocument, ListMeta, PageLinks, Pagination,
    PolicyDocument, PolicyResource,
};
use super::ratelimit::Verdict;
use super::store::{Duplicate, StoredPolicy};
use super::{Emulator, RequestRecord, lock};

const PING: &str = "/api/v2/ping";
/// The rate-limit bucket of requests without a valid token.
const ANONYMOUS: &str = "\0anonymous";
/// How much of an oversized body is read and discarded before answering 413. Answering while
/// the client is still sending makes the server close a socket with unread data, which resets
/// the connection, and the client sees a reset instead of the 413.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
/// How long draining may take at most.
const DRAIN_TIME: Duration = Duration::from_secs(10);

static RATE_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static RATE_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static RATE_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

pub(crate) fn router(emulator: Emulator) -> Router {
    let api = Router::new()
        .route("/ping", get(ping))
        .route("/organizations/{org}/policies", get(list).post(create))
        .route("/policies/{id}", get(show).patch(update).delete(destroy))
        .route("/policies/{id}/upload", put(upload))
        .route("/policies/{id}/download", get(download))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(middleware::from_fn_with_state(emulator.clone(), gate));
    Router::new()
        .nest("/api/v2", api)
        .route("/_archivist/v1/object/{id}", get(blob))
        .route("/.well-known/terraform.json", get(discovery))
        .fallback(not_found)
        // Handlers read bodies themselves with the configured limit and their own 413, so
        // axum's default 2 MB limit must not answer first.
        .layer(DefaultBodyLimit::disable())
        .with_state(emulator)
}

/// Terraform's service discovery document, which some clients (terrasnek, Terraform itself)
/// read before anything else. Public, as on the real service.
async fn discovery() -> Response {
    let doc = serde_json::json!({
        "modules.v1": "/api/registry/v1/modules/",
        "motd.v1": "/api/terraform/motd",
        "state.v2": "/api/v2/",
        "tfe.v2": "/api/v2/",
        "tfe.v2.1": "/api/v2/",
        "tfe.v2.2": "/api/v2/",
        "versions.v1": "https://checkpoint-api.hashicorp.com/v1/versions/"
    });
    let mut response = (StatusCode::OK, doc.to_string()).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

/// Every API request passes here: latency, the rate limit, hang and before-faults,
/// authentication, the handler, after-faults; then rate-limit headers and the request log.
async fn gate(State(emu): State<Emulator>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    // Inside the nested `/api/v2` router the URI lacks the prefix; log and match the full path.
    let uri = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().clone(), |o| o.0.clone());
    let path = uri.path().to_owned();
    let query = uri.query().map(str::to_owned);
    let had_authorization = req.headers().contains_key(AUTHORIZATION);
    let record = |status: u16| RequestRecord {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        status,
        had_authorization,
    };

    let latency = *lock(&emu.shared.latency);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let auth = lock(&emu.shared.tokens).authenticate(req.headers());
    let user = match &auth {
        Ok(Some(token)) => token.user.clone(),
        _ => ANONYMOUS.to_owned(),
    };
    let verdict = lock(&emu.shared.limiter).check(&user, Instant::now());

    let mut response = if !verdict.allowed {
        documents::rate_limited()
    } else if lock(&emu.shared.faults).hang(&method) {
        emu.record(record(0));
        let release = lock(&emu.shared.release).clone();
        release.cancelled().await;
        // Already logged as unanswered.
        let mut response = documents::proxy_error(StatusCode::SERVICE_UNAVAILABLE);
        add_rate_limit_headers(&mut response, &verdict);
        return response;
    } else if let Some(status) = lock(&emu.shared.faults).before(&method) {
        documents::proxy_error(status)
    } else if path == PING {
        next.run(req).await
    } else {
        match auth {
            Ok(Some(token)) => {
                req.extensions_mut().insert(Caller { token });
                let response = next.run(req).await;
                let lost = response
                    .status()
                    .is_success()
                    .then(|| lock(&emu.shared.faults).after(&method))
                    .flatten();
                match lost {
                    Some(status) => documents::proxy_error(status),
                    None => response,
                }
            }
            Ok(None) | Err(_) => ApiError::unauthorized().into_response(),
        }
    };

    add_rate_limit_headers(&mut response, &verdict);
    let status = response.status().as_u16();
    tracing::debug!(%method, %path, status, "emulator request");
    emu.record(record(status));
    response
}

/// `X-RateLimit-Limit`, `-Remaining` and `-Reset`, which every API response carries.
fn add_rate_limit_headers(response: &mut Response, verdict: &Verdict) {
    let headers = response.headers_mut();
    headers.insert(RATE_LIMIT.clone(), HeaderValue::from(verdict.limit));
    headers.insert(RATE_REMAINING.clone(), HeaderValue::from(verdict.remaining));
    if let Ok(reset) = HeaderValue::from_str(&verdict.reset_header()) {
        headers.insert(RATE_RESET.clone(), reset);
    }
}

async fn ping() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Path parameters that cannot be decoded name nothing that exists.
fn param(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(s)| s).map_err(|_| ApiError::not_found())
}

/// POST, PATCH and DELETE must say they send JSON:API, even without a body.
fn require_json_api(headers: &HeaderMap) -> Result<(), ApiError> {
    let essence = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match essence {
        Some(t) if t.eq_ignore_ascii_case(JSON_API) => Ok(()),
        _ => Err(ApiError::unsupported_media_type()),
    }
}

impl Emulator {
    fn manage_allowed(&self) -> bool {
        self.shared
            .organization_tokens_may_manage
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The policy `id` if the caller may read it (manage it, with `manage`); 404 otherwise.
    fn authorized_policy(
        &self,
        caller: &Caller,
        id: &str,
        manage: bool,
    ) -> Result<StoredPolicy, ApiError> {
        let policy = lock(&self.shared.store)
            .get(id)
            .cloned()
            .ok_or_else(ApiError::not_found)?;
        let allowed = if manage {
            caller.may_manage(&policy.organization, self.manage_allowed())
        } else {
            caller.may_read(&policy.organization)
        };
        if allowed {
            Ok(policy)
        } else {
            Err(ApiError::not_found())
        }
    }

    fn document(&self, policy: &StoredPolicy) -> Response {
        let doc = PolicyDocument {
            data: PolicyResource::new(policy, self.shared.enforce_before_upload),
        };
        documents::json_api(StatusCode::OK, &doc)
    }
}

/// `http://HOST` of the request, for the absolute links of list documents.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn list(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    org: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let org = param(org)?;
    let params = query.map(|Query(q)| q).unwrap_or_default();
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    // Like the real service, unusable page numbers and sizes fall back rather than fail.
    let number = get("page[number]")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let size = get("page[size]")
        .and_then(|v| v.parse().ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_PAGE_SIZE);
    let search = get("search[name]").filter(|s| !s.is_empty());

    let (data, pagination) = {
        let store = lock(&emu.shared.store);
        if !store.has_organization(&org) || !caller.may_read(&org) {
            return Err(ApiError::not_found());
        }
        let all: Vec<&StoredPolicy> = store
            .list(&org)
            .into_iter()
            .filter(|p| search.is_none_or(|s| p.name.contains(s)))
            .collect();
        let pagination = Pagination::new(number, size, all.len() as u64);
        let data = all[pagination.range()]
            .iter()
            .map(|p| PolicyResource::new(p, emu.shared.enforce_before_upload))
            .collect::<Vec<_>>();
        (data, pagination)
    };

    let base = format!(
        "{}/api/v2/organizations/{}/policies",
        origin(&headers),
        encode(&org)
    );
    let extra = search
        .map(|s| format!("&search%5Bname%5D={}", encode(s)))
        .unwrap_or_default();
    let link = |n: u64| {
        format!(
            "{base}?page%5Bnumber%5D={n}&page%5Bsize%5D={}{extra}",
            pagination.page_size
        )
    };
    let doc = ListDocument {
        data,
        links: PageLinks {
            self_: link(pagination.current_page),
            first: link(1),
            prev: pagination.prev_page.map(link),
            next: pagination.next_page.map(link),
            last: link(pagination.total_pages),
        },
        meta: ListMeta { pagination },
    };
    Ok(documents::json_api(StatusCode::OK, &doc))
}

async fn create(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    org: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(&headers, body, emu.shared.max_upload).await;
    require_json_api(&headers)?;
    let org = param(org)?;
    let exists = lock(&emu.shared.store).has_organization(&org);
    if !exists || !caller.may_manage(&org, emu.manage_allowed()) {
        return Err(ApiError::not_found());
    }
    let body = body.map_err(|e| e.into_api(emu.shared.max_upload))?;
    let request = documents::parse_create(&body)?;
    let created = lock(&emu.shared.store)
        .create(&org, &request.name, request.mode)
        .cloned();
    match created {
        Ok(policy) => Ok(emu.document(&policy)),
        Err(Duplicate) => Err(ApiError::invalid(
            "/data/attributes/name",
            "Name has already been taken",
        )),
    }
}

async fn show(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let policy = emu.authorized_policy(&caller, &param(id)?, false)?;
    Ok(emu.document(&policy))
}

async fn update(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(&headers, body, emu.shared.max_upload).await;
    require_json_api(&headers)?;
    let policy = emu.authorized_policy(&caller, &param(id)?, true)?;
    let body = body.map_err(|e| e.into_api(emu.shared.max_upload))?;
    let mode = documents::parse_update(&body, &policy.name)?;
    let updated = match mode {
        Some(mode) => lock(&emu.shared.store).set_mode(&policy.id, mode).cloned(),
        None => lock(&emu.shared.store).get(&policy.id).cloned(),
    };
    // Deleted by a concurrent request between the check and the change.
    let updated = updated.ok_or_else(ApiError::not_found)?;
    Ok(emu.document(&updated))
}

async fn destroy(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // The body means nothing here, but is read so the connection stays usable.
    let _ = read_body(&headers, body, emu.shared.max_upload).await;
    require_json_api(&headers)?;
    let policy = emu.authorized_policy(&caller, &param(id)?, true)?;
    if lock(&emu.shared.store).delete(&policy.id) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found())
    }
}

async fn upload(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(&headers, body, emu.shared.max_upload).await;
    let policy = emu.authorized_policy(&caller, &param(id)?, true)?;
    // Too large: answer 413 and keep the old code.
    let code = body.map_err(|e| e.into_api(emu.shared.max_upload))?;
    let uploaded = lock(&emu.shared.store).upload(&policy.id, &code).cloned();
    let uploaded = uploaded.ok_or_else(ApiError::not_found)?;
    Ok(emu.document(&uploaded))
}

async fn download(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let policy = emu.authorized_policy(&caller, &param(id)?, false)?;
    let code = policy.code.ok_or_else(ApiError::not_found)?;
    if emu.shared.download_redirect {
        let location = format!(
            "http://{}/_archivist/v1/object/{}",
            other_host(&headers),
            policy.id
        );
        let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
        if let Ok(location) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(LOCATION, location);
        }
        return Ok(response);
    }
    Ok(raw(code))
}

/// The request's host with `127.0.0.1` and `localhost` swapped: another host name for the
/// same server, so a redirect there is a cross-host redirect for the client.
fn other_host(headers: &HeaderMap) -> String {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let other = match name {
        "127.0.0.1" => "localhost",
        "localhost" => "127.0.0.1",
        other => other,
    };
    match port {
        Some(p) => format!("{other}:{p}"),
        None => other.to_owned(),
    }
}

/// The blob store the download redirect points to: no token needed (real blob URLs are
/// signed), and the request log says whether one was sent anyway.
async fn blob(
    State(emu): State<Emulator>,
    id: Result<Path<String>, PathRejection>,
    req_headers: HeaderMap,
) -> Response {
    let id = param(id).unwrap_or_default();
    let code = lock(&emu.shared.store)
        .get(&id)
        .and_then(|p| p.code.clone());
    let response = match code {
        Some(code) => raw(code),
        None => ApiError::not_found().into_response(),
    };
    emu.record(RequestRecord {
        method: Method::GET,
        path: format!("/_archivist/v1/object/{id}"),
        query: None,
        status: response.status().as_u16(),
        had_authorization: req_headers.contains_key(AUTHORIZATION),
    });
    response
}

fn raw(code: Vec<u8>) -> Response {
    let mut response = (StatusCode::OK, code).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// Why a body could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum BodyError {
    #[error("the request body is too large")]
    TooLarge,
    #[error("the request body could not be read")]
    Unreadable,
}

impl BodyError {
    fn into_api(self, limit: usize) -> ApiError {
        match self {
            BodyError::TooLarge => ApiError::too_large(limit),
            BodyError::Unreadable => ApiError::bad_body(),
        }
    }
}

/// Reads a body of at most `limit` bytes, never buffering more. An oversized body is read on
/// (and discarded, up to [`DRAIN_LIMIT`]) so that the client receives the 413.
async fn read_body(headers: &HeaderMap, mut body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|d| d > limit as u64) {
        drain(body, 0).await;
        return Err(BodyError::TooLarge);
    }
    let capacity = declared.map_or(0, |d| d as usize).min(1024 * 1024);
    let mut buf = Vec::with_capacity(capacity);
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| BodyError::Unreadable)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                drain(body, buf.len() + data.len()).await;
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Reads and discards the rest of a body, bounded in bytes and time.
async fn drain(mut body: Body, mut seen: usize) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while seen <= DRAIN_LIMIT {
            match poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                Some(Ok(frame)) => {
                    seen += frame.data_ref().map_or(0, |d| d.len());
                }
                _ => break,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_host_swaps_loopback_names() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(other_host(&h), "localhost:8080");
        h.insert(HOST, HeaderValue::from_static("localhost:1"));
        assert_eq!(other_host(&h), "127.0.0.1:1");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("a b[c]"), "a%20b%5Bc%5D");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused_without_buffering() {
        let h = HeaderMap::new();
        assert_eq!(
            read_body(&h, Body::from(vec![0u8; 10]), 10)
                .await
                .unwrap()
                .len(),
            10
        );
        assert_eq!(
            read_body(&h, Body::from(vec![0u8; 11]), 10).await,
            Err(BodyError::TooLarge)
        );
        let mut declared = HeaderMap::new();
        declared.insert(CONTENT_LENGTH, HeaderValue::from_static("11"));
        assert_eq!(
            read_body(&declared, Body::from(vec![0u8; 11]), 10).await,
            Err(BodyError::TooLarge)
        );
    }
}
