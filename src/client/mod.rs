//! The Policies API client: every request the reconciler makes goes through here.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Client`] and its operations, the request loop (limits, pacing, retries, timeouts) |
//! | `wire.rs` | JSON:API documents read and written, decode errors with JSON paths |
//! | `error.rs` | [`ApiError`], and the one function mapping error responses to it |
//! | `pace.rs` | the client-wide pacer fed by `X-RateLimit-*` (pure, on tokio's clock) |
//! | `retry.rs` | what is retried and the backoff between attempts |
//!
//! One request, in order: wait for a slot of the concurrency limit (so `--concurrency N` means
//! N requests in flight), wait for the pacer, send with the headers the service requires,
//! read the body with a size limit, all under the request timeout; feed the response's
//! rate-limit headers to the pacer; retry 429, 5xx and transport errors with backoff. A
//! cancelled [`CancellationToken`] starts no new attempt and cuts every wait short; a request
//! already sent is let finish (bounded by the timeout).
//!
//! The token becomes a sensitive `Authorization` header once, when the client is built; it is
//! never logged, never put in an error, and never sent to another origin (reqwest drops it on a
//! cross-origin redirect, which download may take to a blob store).

mod error;
mod pace;
mod retry;
pub mod wire;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use error::{ApiError, ClientError};
pub use pace::{Pacer, RateLimitHeaders};
pub use wire::RemotePolicySummary;

use crate::config::{Connection, Token};
use crate::model::{Mode, PolicyId, PolicyName, RemoteCode};
use wire::{PolicyDocument, PolicyListDocument, PolicyWriteDocument};

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("tfe-policy-sync/", env!("CARGO_PKG_VERSION"));
/// The list page size: the service's maximum.
pub const PAGE_SIZE: u32 = 100;
/// Largest download accepted: the service's 10 MiB upload limit, plus slack.
pub const MAX_DOWNLOAD_BYTES: usize = 10 * 1024 * 1024 + 64 * 1024;
/// Largest JSON document accepted (a page of 100 policies is about 60 KiB).
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;
/// Error bodies are read up to this and the rest dropped: only a snippet is shown anyway.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// A pagination that never ends is a broken service, not a big organization.
const MAX_PAGES: u64 = 100_000;

const JSON_API: &str = "application/vnd.api+json";
const OCTET_STREAM: &str = "application/octet-stream";

/// Told about every HTTP response (or transport failure) the client sees, retries included:
/// the daemon's `api_requests_total{method,status}` and 429 counters.
pub trait RequestObserver: Send + Sync {
    /// `status` is `None` for a transport error or a timeout.
    fn on_response(&self, method: &str, status: Option<u16>);
    /// A 429 arrived (also reported through `on_response`).
    fn on_rate_limited(&self) {}
}

/// Retries of one request by default. A service failing 28% of the attempts at a change (the
/// hardening issue's 20% 503s plus 10% lost responses) makes one give up with 6 attempts at
/// 5e-4 (5% for a sync of 100 changes); with 11 at 8e-7. The backoff is capped at 8 s, so giving
/// up on a service that stays down takes about a minute per request.
pub const DEFAULT_MAX_RETRIES: u32 = 10;

/// How the client behaves. `Default`: 8 in flight, 30 s per request, 10 s to connect, 10
/// retries, never cancelled, no observer.
#[derive(Clone)]
pub struct ClientOptions {
    /// Requests in flight at most (`--concurrency`). 0 is treated as 1.
    pub concurrency: usize,
    /// Whole-request deadline: connect, send, and read the full body.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries after a 5xx, a timeout or a transport error (429s get
    /// `RATE_LIMIT_ATTEMPTS_PER_RETRY` times as many, at least that many).
    pub max_retries: u32,
    /// Cancelled: no new request starts, waits end at once with [`ApiError::Cancelled`].
    pub cancel: CancellationToken,
    pub observer: Option<Arc<dyn RequestObserver>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            concurrency: 8,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_retries: DEFAULT_MAX_RETRIES,
            cancel: CancellationToken::new(),
            observer: None,
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("concurrency", &self.concurrency)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("cancelled", &self.cancel.is_cancelled())
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

/// The Policies API client of one organization. Cheap to clone; clones share the connection
/// pool, the concurrency limit and the pacer.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    origin: Url,
    /// `scheme://host[:port]`, no trailing slash: request URLs are this plus a path.
    origin_prefix: String,
    organization: String,
    /// `/api/v2/organizations/<org, percent-encoded>/policies`.
    policies_path: String,
    token: Token,
    token_source: String,
    slots: Semaphore,
    pacer: Mutex<Pacer>,
    opts: ClientOptions,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.inner.origin.as_str())
            .field("organization", &self.inner.organization)
            .field("token", &self.inner.token)
            .field("options", &self.inner.opts)
            .finish()
    }
}

/// One request as data: what to send and how to read the answer.
struct Call<'a> {
    method: Method,
    /// Path under the origin (`/api/v2/...`), without the query.
    path: String,
    query: Option<String>,
    body: Option<(Bytes, &'static str)>,
    /// Largest success body accepted.
    limit: usize,
    /// The policy the request is about, for 404 messages.
    policy: Option<&'a PolicyId>,
}

impl<'a> Call<'a> {
    fn get(path: String, limit: usize, policy: Option<&'a PolicyId>) -> Self {
        Call {
            method: Method::GET,
            path,
            query: None,
            body: None,
            limit,
            policy,
        }
    }

    fn write(method: Method, path: String, body: Option<(Bytes, &'static str)>) -> Self {
        Call {
            method,
            path,
            query: None,
            body,
            limit: MAX_DOCUMENT_BYTES,
            policy: None,
        }
    }

    fn about(mut self, policy: &'a PolicyId) -> Self {
        self.policy = Some(policy);
        self
    }

    /// `GET /api/v2/...`, for messages (no origin, no query).
    fn describe(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A response the request loop gave up retrying or did not need to.
struct Reply {
    status: StatusCode,
    body: Bytes,
    attempts: u32,
}

/// Why one attempt produced no usable response.
enum AttemptError {
    Cancelled,
    Timeout,
    Transport(String),
    TooLarge,
}

impl Client {
    /// Builds the client: TLS with the platform's roots plus the connection's extra CA
    /// certificates, the sensitive `Authorization` header, timeouts and the redirect policy.
    pub fn new(conn: &Connection, opts: ClientOptions) -> Result<Client, ClientError> {
        let mut auth = HeaderValue::try_from(format!("Bearer {}", conn.token.expose()))
            .map_err(|_| ClientError::TokenNotAHeader)?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);

        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .connect_timeout(opts.connect_timeout)
            .redirect(redirect_policy());
        let mut roots = Vec::new();
        for path in &conn.ca_certs {
            let pem = std::fs::read(path).map_err(|e| ClientError::CaCert {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ClientError::CaCert {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(ClientError::CaCert {
                    path: path.clone(),
                    reason: "no PEM certificate in it".into(),
                });
            }
            roots.extend(certs);
        }
        if !roots.is_empty() {
            builder = builder.tls_certs_merge(roots);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Http(error::transport_detail(&e, conn.token.expose())))?;

        let origin_prefix = conn.address.as_str().trim_end_matches('/').to_owned();
        let policies_path = format!(
            "/api/v2/organizations/{}/policies",
            encode_segment(&conn.organization)
        );
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                origin: conn.address.clone(),
                origin_prefix,
                organization: conn.organization.clone(),
                policies_path,
                token: conn.token.clone(),
                token_source: conn.token_source.to_string(),
                slots: Semaphore::new(opts.concurrency.max(1)),
                pacer: Mutex::new(Pacer::new(Instant::now())),
                opts,
            }),
        })
    }

    pub fn organization(&self) -> &str {
        &self.inner.organization
    }

    /// The API origin requests go to.
    pub fn address(&self) -> &Url {
        &self.inner.origin
    }

    /// The rate the pacer learned from the service, in requests per second, if any.
    pub fn learned_rate_limit(&self) -> Option<f64> {
        self.pacer().rate()
    }

    /// `GET /api/v2/ping`: the service answers. Says nothing about the token or organization;
    /// see [`check_access`](Self::check_access).
    pub async fn ping(&self) -> Result<(), ApiError> {
        let call = Call::get("/api/v2/ping".to_owned(), MAX_DOCUMENT_BYTES, None);
        let reply = self.execute(&call).await?;
        self.expect_success(&call, reply).map(drop)
    }

    /// The token is accepted and may list the organization's policies (one page of one):
    /// what `watch` checks at start to fail fast on a wrong token or organization.
    pub async fn check_access(&self) -> Result<(), ApiError> {
        let mut call = Call::get(self.inner.policies_path.clone(), MAX_DOCUMENT_BYTES, None);
        call.query = Some("page%5Bnumber%5D=1&page%5Bsize%5D=1".to_owned());
        let reply = self.execute(&call).await?;
        self.expect_success(&call, reply).map(drop)
    }

    /// Every Sentinel policy of the organization, all pages (`page[size]=100`, following
    /// `meta.pagination.next-page`). Order is the service's; key by name. Policies of another
    /// kind (OPA) are left out.
    pub async fn list_policies(&self) -> Result<Vec<RemotePolicySummary>, ApiError> {
        let mut out: Vec<RemotePolicySummary> = Vec::new();
        let mut page: u64 = 1;
        loop {
            let mut call = Call::get(self.inner.policies_path.clone(), MAX_DOCUMENT_BYTES, None);
            call.query = Some(format!(
                "page%5Bnumber%5D={page}&page%5Bsize%5D={PAGE_SIZE}"
            ));
            let reply = self.execute(&call).await?;
            let reply = self.expect_success(&call, reply)?;
            let doc: PolicyListDocument =
                wire::decode(&reply.body).map_err(|e| self.undecodable(&call, reply.status, e))?;
            out.reserve(doc.data.len());
            for (i, resource) in doc.data.into_iter().enumerate() {
                match resource.into_summary_at(i) {
                    Ok(Some(s)) => {
                        out.push(s);
                    }
                    Ok(None) => {}
                    Err(e) => return Err(self.undecodable(&call, reply.status, e)),
                }
            }
            let next = doc
                .meta
                .and_then(|m| m.pagination)
                .and_then(|p| p.next_page);
            match next {
                None => {
                    if page > 1 {
                        // Pages shift under concurrent changes: a policy seen twice counts once.
                        let mut seen = std::collections::HashSet::with_capacity(out.len());
                        out.retain(|p| seen.insert(p.id.clone()));
                    }
                    return Ok(out);
                }
                Some(n) if n > page && n <= MAX_PAGES => page = n,
                Some(n) => {
                    return Err(ApiError::UnexpectedResponse {
                        request: call.describe(),
                        status: reply.status.as_u16(),
                        detail: format!("pagination says the page after {page} is {n}"),
                    });
                }
            }
        }
    }

    /// One policy by id; `None` when the service does not know it (404) or it is not a
    /// Sentinel policy.
    pub async fn get_policy(&self, id: &PolicyId) -> Result<Option<RemotePolicySummary>, ApiError> {
        let call = Call::get(
            format!("/api/v2/policies/{}", encode_segment(id.as_str())),
            MAX_DOCUMENT_BYTES,
            Some(id),
        );
        let reply = self.execute(&call).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let reply = self.expect_success(&call, reply)?;
        self.decode_policy(&call, &reply)
    }

    /// The policy's code, byte for byte; [`RemoteCode::Missing`] when none was ever uploaded
    /// (the service answers 404 until then). Follows a redirect to another host without the
    /// `Authorization` header.
    pub async fn download(&self, id: &PolicyId) -> Result<RemoteCode, ApiError> {
        let call = Call::get(
            format!("/api/v2/policies/{}/download", encode_segment(id.as_str())),
            MAX_DOWNLOAD_BYTES,
            Some(id),
        );
        let reply = self.execute(&call).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(RemoteCode::Missing);
        }
        let reply = self.expect_success(&call, reply)?;
        // Copied, not converted: a small body is a slice of hyper's read buffer, and
        // `Vec::from(Bytes)` would keep that whole buffer (8-64 KiB) alive for each 300-byte
        // policy — 10,000 cached downloads held over 40 MiB that way.
        Ok(RemoteCode::Present(reply.body.to_vec()))
    }

    /// Creates the policy record (no code: [`upload`](Self::upload) follows) and returns it
    /// with the mode the service reports.
    ///
    /// Safe to repeat: when the name is already taken (a retry after a lost response, or
    /// another process that created it first) the existing policy is looked up and returned.
    /// Either way the result has the requested `mode`: if the service reports another, the
    /// mode is set again and checked ([`ApiError::ModeMismatch`] if it still differs).
    pub async fn create(
        &self,
        name: &PolicyName,
        mode: Mode,
    ) -> Result<RemotePolicySummary, ApiError> {
        let body = Bytes::from(PolicyWriteDocument::create(name, mode).to_bytes());
        let call = Call::write(
            Method::POST,
            self.inner.policies_path.clone(),
            Some((body, JSON_API)),
        );
        let reply = self.execute(&call).await?;
        let mut already_there = false;
        let existing = if reply.status.is_success() {
            let created =
                self.decode_policy(&call, &reply)?
                    .ok_or_else(|| ApiError::UnexpectedResponse {
                        request: call.describe(),
                        status: reply.status.as_u16(),
                        detail: "the created policy is not a Sentinel policy".into(),
                    })?;
            if created.name != name.as_str() {
                return Err(ApiError::UnexpectedResponse {
                    request: call.describe(),
                    status: reply.status.as_u16(),
                    detail: format!(
                        "asked to create {:?}, the service returned {:?}",
                        name.as_str(),
                        created.name
                    ),
                });
            }
            created
        } else if reply.status == StatusCode::UNPROCESSABLE_ENTITY && name_taken(&reply.body) {
            let err = self.error_from(&call, &reply);
            tracing::debug!(policy = %name, "create: the name is taken; looking the policy up");
            match self
                .list_policies()
                .await?
                .into_iter()
                .find(|p| p.name == name.as_str())
            {
                Some(found) => {
                    already_there = true;
                    found
                }
                None => return Err(err),
            }
        } else {
            return Err(self.error_from(&call, &reply));
        };
        if existing.mode == mode {
            return Ok(existing);
        }
        if already_there {
            tracing::info!(
                policy = %name,
                found = %existing.mode,
                requested = %mode,
                "the policy already existed with another mode; setting the requested one"
            );
        } else {
            tracing::warn!(
                policy = %name,
                reported = %existing.mode,
                requested = %mode,
                "the service created the policy with another mode than requested; setting it again"
            );
        }
        self.set_mode(&existing.id, name, mode).await
    }

    /// Uploads the policy's code (raw bytes, verbatim).
    pub async fn upload(&self, id: &PolicyId, code: &[u8]) -> Result<(), ApiError> {
        let call = Call::write(
            Method::PUT,
            format!("/api/v2/policies/{}/upload", encode_segment(id.as_str())),
            Some((Bytes::copy_from_slice(code), OCTET_STREAM)),
        )
        .about(id);
        let reply = self.execute(&call).await?;
        self.expect_success(&call, reply).map(drop)
    }

    /// Sets the enforcement mode (with the exact path `<name>.sentinel`, since the service
    /// silently applies hard-mandatory on any other) and checks that the service applied it.
    pub async fn set_mode(
        &self,
        id: &PolicyId,
        name: &PolicyName,
        mode: Mode,
    ) -> Result<RemotePolicySummary, ApiError> {
        let body = Bytes::from(PolicyWriteDocument::update(name, mode).to_bytes());
        let call = Call::write(
            Method::PATCH,
            format!("/api/v2/policies/{}", encode_segment(id.as_str())),
            Some((body, JSON_API)),
        )
        .about(id);
        let reply = self.execute(&call).await?;
        let reply = self.expect_success(&call, reply)?;
        let updated =
            self.decode_policy(&call, &reply)?
                .ok_or_else(|| ApiError::UnexpectedResponse {
                    request: call.describe(),
                    status: reply.status.as_u16(),
                    detail: "the updated policy is not a Sentinel policy".into(),
                })?;
        if updated.mode != mode {
            return Err(ApiError::ModeMismatch {
                request: call.describe(),
                name: name.to_string(),
                requested: mode,
                applied: updated.mode,
            });
        }
        Ok(updated)
    }

    /// Deletes the policy. Already gone (404) is success.
    pub async fn delete(&self, id: &PolicyId) -> Result<(), ApiError> {
        let call = Call::write(
            Method::DELETE,
            format!("/api/v2/policies/{}", encode_segment(id.as_str())),
            None,
        )
        .about(id);
        let reply = self.execute(&call).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        self.expect_success(&call, reply).map(drop)
    }

    // ---- plumbing ------------------------------------------------------------------------

    fn pacer(&self) -> MutexGuard<'_, Pacer> {
        // No code panics while holding it; recover rather than wedge every later request.
        self.inner.pacer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expect_success(&self, call: &Call<'_>, reply: Reply) -> Result<Reply, ApiError> {
        if reply.status.is_success() {
            Ok(reply)
        } else {
            Err(self.error_from(call, &reply))
        }
    }

    /// The one place error responses become [`ApiError`]s.
    fn error_from(&self, call: &Call<'_>, reply: &Reply) -> ApiError {
        let request = call.describe();
        let ctx = error::ErrorContext {
            request: &request,
            organization: &self.inner.organization,
            policy: call.policy,
            token_source: &self.inner.token_source,
            secret: self.inner.token.expose(),
        };
        match error::from_response(reply.status, &reply.body, &ctx) {
            ApiError::RateLimited { request, .. } => ApiError::RateLimited {
                request,
                attempts: reply.attempts,
            },
            e => e,
        }
    }

    fn undecodable(&self, call: &Call<'_>, status: StatusCode, e: wire::DecodeError) -> ApiError {
        ApiError::UnexpectedResponse {
            request: call.describe(),
            status: status.as_u16(),
            detail: error::clean(&e.to_string(), self.inner.token.expose(), 300),
        }
    }

    fn decode_policy(
        &self,
        call: &Call<'_>,
        reply: &Reply,
    ) -> Result<Option<RemotePolicySummary>, ApiError> {
        let doc: PolicyDocument =
            wire::decode(&reply.body).map_err(|e| self.undecodable(call, reply.status, e))?;
        doc.data
            .into_summary("data")
            .map_err(|e| self.undecodable(call, reply.status, e))
    }

    /// Runs one request to a final response: retries 429 (after the pacer's wait), 5xx and
    /// transport errors with backoff. Returns any final response, success or not; errors only
    /// when there was none to return.
    async fn execute(&self, call: &Call<'_>) -> Result<Reply, ApiError> {
        let opts = &self.inner.opts;
        let max_rate_limited = opts
            .max_retries
            .saturating_mul(retry::RATE_LIMIT_ATTEMPTS_PER_RETRY)
            .max(retry::RATE_LIMIT_ATTEMPTS_PER_RETRY);
        let mut backoff: Option<retry::Backoff> = None;
        let mut retries = 0u32;
        let mut rate_limited = 0u32;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let outcome = self.attempt(call).await;
            let floor = match outcome {
                Ok((reply, _)) if reply.status == StatusCode::TOO_MANY_REQUESTS => {
                    rate_limited += 1;
                    if rate_limited > max_rate_limited || opts.max_retries == 0 {
                        return Ok(Reply { attempts, ..reply });
                    }
                    // The pacer now holds every request until the reset; no backoff of our own.
                    tracing::debug!(request = %call.describe(), "429: waiting for the rate limit to reset");
                    continue;
                }
                Ok((reply, retry_after)) if retry::is_retryable_status(reply.status) => {
                    if retries >= opts.max_retries {
                        return Ok(Reply { attempts, ..reply });
                    }
                    tracing::debug!(
                        request = %call.describe(),
                        status = reply.status.as_u16(),
                        retry = retries + 1,
                        "transient failure; retrying"
                    );
                    retry_after
                }
                Ok((reply, _)) => return Ok(Reply { attempts, ..reply }),
                Err(AttemptError::Cancelled) => return Err(ApiError::Cancelled),
                Err(AttemptError::TooLarge) => {
                    return Err(ApiError::TooLarge {
                        request: call.describe(),
                        limit: call.limit,
                    });
                }
                Err(e @ (AttemptError::Timeout | AttemptError::Transport(_))) => {
                    if retries >= opts.max_retries {
                        return Err(match e {
                            AttemptError::Timeout => ApiError::Timeout {
                                request: call.describe(),
                                timeout: opts.request_timeout,
                            },
                            AttemptError::Transport(detail) => ApiError::Transport {
                                request: call.describe(),
                                detail,
                            },
                            _ => unreachable!("matched above"),
                        });
                    }
                    tracing::debug!(request = %call.describe(), retry = retries + 1, "no response; retrying");
                    None
                }
            };
            retries += 1;
            let delay = backoff
                .get_or_insert_with(|| retry::Backoff::new(None))
                .next_delay(floor);
            self.sleep_unless_cancelled(delay).await?;
        }
    }

    async fn sleep_unless_cancelled(&self, delay: Duration) -> Result<(), ApiError> {
        if delay.is_zero() {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = self.inner.opts.cancel.cancelled() => Err(ApiError::Cancelled),
        }
    }

    /// One HTTP exchange: slot, pacer, send, read. Returns the reply and any `Retry-After`.
    async fn attempt(&self, call: &Call<'_>) -> Result<(Reply, Option<Duration>), AttemptError> {
        let inner = &*self.inner;
        let cancel = &inner.opts.cancel;
        if cancel.is_cancelled() {
            return Err(AttemptError::Cancelled);
        }
        let _slot = tokio::select! {
            slot = inner.slots.acquire() => slot.map_err(|_| AttemptError::Cancelled)?,
            _ = cancel.cancelled() => return Err(AttemptError::Cancelled),
        };
        let mut wait = self.pacer().reserve(Instant::now());
        while !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => {
                    self.pacer().cancel(Instant::now());
                    return Err(AttemptError::Cancelled);
                }
            }
            // A 429 may have arrived while we slept: it holds everyone until its reset.
            wait = self.pacer().blocked_for(Instant::now());
        }
        if cancel.is_cancelled() {
            self.pacer().cancel(Instant::now());
            return Err(AttemptError::Cancelled);
        }

        let url = match &call.query {
            Some(q) => format!("{}{}?{}", inner.origin_prefix, call.path, q),
            None => format!("{}{}", inner.origin_prefix, call.path),
        };
        let mut request = inner.http.request(call.method.clone(), url);
        if call.method == Method::GET {
            request = request.header(ACCEPT, JSON_API);
        } else {
            // The service answers 415 to POST, PATCH and DELETE without it, body or not.
            let content_type = call.body.as_ref().map_or(JSON_API, |(_, ct)| ct);
            request = request.header(CONTENT_TYPE, content_type);
        }
        if let Some((body, _)) = &call.body {
            request = request.body(body.clone());
        }

        let started = Instant::now();
        let exchange = async {
            let mut response = request.send().await.map_err(Exchange::Send)?;
            let status = response.status();
            let same_origin = self.is_origin(response.url());
            let rate = if same_origin {
                RateLimitHeaders::from_headers(response.headers())
            } else {
                None
            };
            let retry_after = retry::retry_after(response.headers());
            let body = if status.is_success() {
                read_body(&mut response, call.limit, false).await
            } else {
                read_body(&mut response, MAX_ERROR_BODY_BYTES, true).await
            };
            Ok::<_, Exchange>((status, rate, retry_after, body))
        };
        let result = tokio::time::timeout(inner.opts.request_timeout, exchange).await;
        let now = Instant::now();
        let observer = inner.opts.observer.as_deref();
        let method = call.method.as_str();
        match result {
            Err(_elapsed) => {
                self.pacer().complete(now, None, false);
                if let Some(o) = observer {
                    o.on_response(method, None);
                }
                tracing::debug!(request = %call.describe(), "timed out");
                Err(AttemptError::Timeout)
            }
            Ok(Err(Exchange::Send(e))) => {
                self.pacer().complete(now, None, false);
                if let Some(o) = observer {
                    o.on_response(method, None);
                }
                let mut detail = error::transport_detail(&e, inner.token.expose());
                if detail.contains("certificate") {
                    detail.push_str(
                        "; if the service uses a private certificate authority, trust it with \
                         --ca-cert PATH or SSL_CERT_FILE",
                    );
                }
                tracing::debug!(request = %call.describe(), error = %detail, "transport error");
                Err(AttemptError::Transport(detail))
            }
            Ok(Ok((status, rate, retry_after, body))) => {
                let limited = status == StatusCode::TOO_MANY_REQUESTS;
                self.pacer().complete(now, rate, limited);
                if let Some(o) = observer {
                    o.on_response(method, Some(status.as_u16()));
                    if limited {
                        o.on_rate_limited();
                    }
                }
                tracing::debug!(
                    request = %call.describe(),
                    status = status.as_u16(),
                    elapsed_ms = now.duration_since(started).as_millis() as u64,
                    "response"
                );
                match body {
                    Ok(body) => Ok((
                        Reply {
                            status,
                            body,
                            attempts: 1,
                        },
                        retry_after,
                    )),
                    Err(BodyError::TooLarge) => Err(AttemptError::TooLarge),
                    Err(BodyError::Read(e)) => Err(AttemptError::Transport(
                        error::transport_detail(&e, inner.token.expose()),
                    )),
                }
            }
        }
    }

    /// Whether `url` is on the configured origin (rate-limit headers from a blob store that
    /// download redirected to say nothing about the API's limit).
    fn is_origin(&self, url: &Url) -> bool {
        let o = &self.inner.origin;
        url.scheme() == o.scheme()
            && url.host_str() == o.host_str()
            && url.port_or_known_default() == o.port_or_known_default()
    }
}

enum Exchange {
    Send(reqwest::Error),
}

enum BodyError {
    TooLarge,
    Read(reqwest::Error),
}

/// Reads a body of at most `limit` bytes. With `truncate`, the rest is dropped instead of
/// failing (error bodies, of which only a snippet is shown). A body that arrives in one chunk
/// is not copied.
async fn read_body(
    response: &mut reqwest::Response,
    limit: usize,
    truncate: bool,
) -> Result<Bytes, BodyError> {
    if let Some(len) = response.content_length()
        && len > limit as u64
        && !truncate
    {
        return Err(BodyError::TooLarge);
    }
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        let have = rest
            .as_ref()
            .map_or_else(|| first.as_ref().map_or(0, Bytes::len), BytesMut::len);
        if have + chunk.len() > limit {
            if !truncate {
                return Err(BodyError::TooLarge);
            }
            let take = limit - have;
            append(&mut first, &mut rest, chunk.slice(..take));
            break;
        }
        append(&mut first, &mut rest, chunk);
    }
    Ok(match rest {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    })
}

fn append(first: &mut Option<Bytes>, rest: &mut Option<BytesMut>, chunk: Bytes) {
    match (first.take(), rest.as_mut()) {
        (_, Some(buf)) => buf.extend_from_slice(&chunk),
        (None, None) => *first = Some(chunk),
        (Some(f), None) => {
            let mut buf = BytesMut::with_capacity((f.len() + chunk.len()) * 2);
            buf.extend_from_slice(&f);
            buf.extend_from_slice(&chunk);
            *rest = Some(buf);
        }
    }
}

/// Whether a 422 says the name is taken (the lost-response and race case of create).
fn name_taken(body: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"already been taken";
    body.windows(NEEDLE.len())
        .any(|w| w.eq_ignore_ascii_case(NEEDLE))
}

/// Percent-encodes one path segment. Names and ids are plain ASCII in practice; anything else
/// (a `/`, `..`, a space) must not change which resource the request addresses.
fn encode_segment(s: &str) -> std::borrow::Cow<'_, str> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
    if s.bytes().all(plain) && s != "." && s != ".." {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if plain(b) && b != b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Follows at most 5 redirects, never from https to plain http on a non-loopback host.
/// (Whatever the policy, reqwest removes `Authorization` when a redirect changes origin.)
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 5 {
            return attempt.error("more than 5 redirects");
        }
        let downgrade = attempt.url().scheme() == "http"
            && attempt.previous().iter().any(|u| u.scheme() == "https")
            && !attempt
                .url()
                .host_str()
                .is_some_and(crate::config::is_loopback);
        if downgrade {
            return attempt.error("refusing a redirect from https to plain http");
        }
        attempt.follow()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cannot_escape_their_place_in_the_path() {
        assert_eq!(encode_segment("my-org_1.x"), "my-org_1.x");
        assert_eq!(encode_segment("a/b"), "a%2Fb");
        assert_eq!(encode_segment(".."), "%2E%2E");
        assert_eq!(encode_segment("a b?c#"), "a%20b%3Fc%23");
    }

    #[test]
    fn name_taken_matches_the_services_wording() {
        assert!(name_taken(
            br#"{"errors":[{"detail":"Name has already been taken"}]}"#
        ));
        assert!(name_taken(b"NAME HAS ALREADY BEEN TAKEN"));
        assert!(!name_taken(br#"{"errors":[{"detail":"Name is invalid"}]}"#));
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let secret = "abc.atlasv1.very-secret-token";
        let conn = Connection::new(
            "https://tfe.example.com".parse().unwrap(),
            "acme",
            Token::new(secret),
        );
        let client = Client::new(&conn, ClientOptions::default()).unwrap();
        let shown = format!(
            "{client:?} {client:#?} {:?} {conn:?}",
            ClientOptions::default()
        );
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("tfe.example.com"), "{shown}");
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_refused_without_quoting_it() {
        let conn = Connection::new(
            "https://tfe.example.com".parse().unwrap(),
            "acme",
            Token::new("bad\ntoken-text"),
        );
        let err = Client::new(&conn, ClientOptions::default()).unwrap_err();
        let msg = format!("{err} {err:?}");
        assert!(!msg.contains("token-text"), "{msg}");
    }

    #[test]
    fn an_unreadable_or_empty_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for path in [dir.path().join("missing.pem"), empty] {
            let mut conn = Connection::new(
                "https://tfe.example.com".parse().unwrap(),
                "acme",
                Token::new("t"),
            );
            conn.ca_certs = vec![path.clone()];
            let msg = Client::new(&conn, ClientOptions::default())
                .unwrap_err()
                .to_string();
            assert!(msg.contains(&path.display().to_string()), "{msg}");
        }
    }
}
