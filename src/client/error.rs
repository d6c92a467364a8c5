//! The client's errors, and the one function that turns an error response into one.
//!
//! Every non-success response passes through [`from_response`], so every status gets the
//! same, actionable message wherever it happens: 401 names where the token came from; 404
//! names the three causes the service does not tell apart (no such organization, a token that
//! may not manage its policies, a deleted policy); 422 quotes the service's `detail`; a body
//! that is not a JSON:API error document (an HTML page from a proxy) becomes its status and a
//! short, cleaned snippet, never a decode error. Text taken from the service is stripped of
//! control characters, shortened, and has the token redacted (a debugging proxy may echo
//! request headers back).

use std::time::Duration;

use reqwest::StatusCode;

use super::wire::{self, ErrorDocument};
use crate::model::{Mode, PolicyId};

/// Why an API call failed. None of these carries the token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 401: the token is missing, invalid or expired.
    #[error(
        "{request}: the service rejected the API token from {token_source} (401 Unauthorized): \
         it is missing, invalid or expired; create a new token (for example with `terraform \
         login`) and try again"
    )]
    Unauthorized {
        request: String,
        token_source: String,
    },

    /// 404: the service does not say which of its three causes applies.
    #[error("{request}: 404 Not Found: {}", not_found_causes(organization, policy.as_ref()))]
    NotFound {
        request: String,
        organization: String,
        /// The policy the request was about, if any.
        policy: Option<PolicyId>,
    },

    /// 403: the token is known but may not do this.
    #[error("{request}: 403 Forbidden: the token may not do this ({detail})")]
    Forbidden { request: String, detail: String },

    /// 400, 409, 413, 415, 422: the service refused the request as made.
    #[error("{request}: the service refused the request ({status}): {detail}")]
    Invalid {
        request: String,
        status: u16,
        detail: String,
    },

    /// 429 on every attempt.
    #[error(
        "{request}: the service's rate limit (429 Too Many Requests) was still exceeded after \
         {attempts} attempts; another client of the same user may be using up the limit"
    )]
    RateLimited { request: String, attempts: u32 },

    /// 5xx on every attempt.
    #[error("{request}: the service failed with {status}{detail}")]
    Server {
        request: String,
        status: u16,
        /// Starts with `: ` when there is something to say.
        detail: String,
    },

    /// Connection refused, reset, DNS, TLS: no usable response.
    #[error("{request}: could not talk to the service: {detail}")]
    Transport { request: String, detail: String },

    /// No complete response within the request timeout.
    #[error("{request}: no complete response within {}", humantime::format_duration(*timeout))]
    Timeout { request: String, timeout: Duration },

    /// Shutdown was requested before the request could start.
    #[error("cancelled: shutting down, no new request is started")]
    Cancelled,

    /// A body larger than this client accepts.
    #[error("{request}: the response is larger than {limit} bytes; refusing to read it")]
    TooLarge { request: String, limit: usize },

    /// The service applied a different mode from the one requested (it falls back to
    /// hard-mandatory silently on some requests).
    #[error(
        "{request}: asked for mode {requested} on policy {name:?} but the service reports \
         {applied}"
    )]
    ModeMismatch {
        request: String,
        name: String,
        requested: Mode,
        applied: Mode,
    },

    /// A response this client does not understand (wrong shape, unexpected status).
    #[error("{request}: unexpected response ({status}): {detail}")]
    UnexpectedResponse {
        request: String,
        status: u16,
        detail: String,
    },
}

fn not_found_causes(organization: &str, policy: Option<&PolicyId>) -> String {
    let mut s = format!(
        "the organization {organization:?} does not exist, or the token may not manage its \
         policies (it needs the \"Manage Policies\" permission)"
    );
    if let Some(id) = policy {
        s.push_str(&format!(", or the policy {id} was deleted"));
    }
    s
}

impl ApiError {
    /// Worth trying again later: the service was unavailable, slow or busy. A daemon retries
    /// these with backoff; everything else needs a person.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::RateLimited { .. }
                | ApiError::Server { .. }
                | ApiError::Transport { .. }
                | ApiError::Timeout { .. }
        )
    }

    /// At the start of `watch`, these mean the configuration is wrong (a rejected token, an
    /// unknown organization, a token without the right), so the daemon exits rather than
    /// retrying forever.
    pub fn is_fatal_at_startup(&self) -> bool {
        matches!(
            self,
            ApiError::Unauthorized { .. } | ApiError::NotFound { .. } | ApiError::Forbidden { .. }
        )
    }

    /// The HTTP status the service answered, when the error came from a response.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Unauthorized { .. } => Some(401),
            ApiError::NotFound { .. } => Some(404),
            ApiError::Forbidden { .. } => Some(403),
            ApiError::RateLimited { .. } => Some(429),
            ApiError::Invalid { status, .. }
            | ApiError::Server { status, .. }
            | ApiError::UnexpectedResponse { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Why a [`Client`](super::Client) could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the CA certificate file {path}: {reason}")]
    CaCert {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error(
        "the API token cannot be sent in an HTTP header (it contains characters a header may not hold)"
    )]
    TokenNotAHeader,
    #[error("cannot set up the HTTP client: {0}")]
    Http(String),
}

/// What the failing request was about, for the message.
pub(crate) struct ErrorContext<'a> {
    /// `GET /api/v2/organizations/acme/policies`, without the origin or query.
    pub request: &'a str,
    pub organization: &'a str,
    pub policy: Option<&'a PolicyId>,
    pub token_source: &'a str,
    /// Redacted from any text quoted from the service.
    pub secret: &'a str,
}

/// The choke point: an error response (status and body as read) to an [`ApiError`].
pub(crate) fn from_response(status: StatusCode, body: &[u8], ctx: &ErrorContext<'_>) -> ApiError {
    let request = ctx.request.to_owned();
    let detail = || describe_body(status, body, ctx.secret);
    match status.as_u16() {
        401 => ApiError::Unauthorized {
            request,
            token_source: ctx.token_source.to_owned(),
        },
        403 => ApiError::Forbidden {
            request,
            detail: detail(),
        },
        404 => ApiError::NotFound {
            request,
            organization: ctx.organization.to_owned(),
            policy: ctx.policy.cloned(),
        },
        429 => ApiError::RateLimited {
            request,
            attempts: 1,
        },
        413 => ApiError::Invalid {
            request,
            status: 413,
            detail: format!(
                "{} (the service accepts policy code up to 10 MiB)",
                detail()
            ),
        },
        400 | 409 | 415 | 422 => ApiError::Invalid {
            request,
            status: status.as_u16(),
            detail: detail(),
        },
        s if status.is_server_error() => ApiError::Server {
            request,
            status: s,
            detail: format!(": {}", detail()),
        },
        s => ApiError::UnexpectedResponse {
            request,
            status: s,
            detail: detail(),
        },
    }
}

/// The service's own words when the body is a JSON:API error document; else the status's
/// reason and a cleaned snippet of whatever came back.
pub(crate) fn describe_body(status: StatusCode, body: &[u8], secret: &str) -> String {
    if let Ok(doc) = wire::decode::<ErrorDocument>(body) {
        let messages: Vec<String> = doc.errors.iter().filter_map(|e| e.message()).collect();
        if !messages.is_empty() {
            return clean(&messages.join("; "), secret, 500);
        }
    }
    let reason = status.canonical_reason().unwrap_or("");
    let text = strip_tags(&String::from_utf8_lossy(&body[..body.len().min(4096)]));
    let snippet = clean(&text, secret, 160);
    match (reason, snippet.is_empty()) {
        (r, true) if !r.is_empty() => format!("{r} (empty body)"),
        (_, true) => "(empty body)".to_owned(),
        (r, false) => format!(
            "{r}{}not a JSON:API error document, often a proxy or load balancer in front \
             of the service; it reads: \"{snippet}\"",
            if r.is_empty() { "" } else { ", " }
        ),
    }
}

/// HTML pages from proxies: keep the words, drop the markup.
fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Collapses whitespace, drops control characters (no terminal escapes from a hostile body),
/// redacts the token, and shortens to `max` characters.
pub(crate) fn clean(text: &str, secret: &str, max: usize) -> String {
    let redacted;
    let text = if !secret.is_empty() && text.contains(secret) {
        redacted = text.replace(secret, "***");
        &redacted
    } else {
        text
    };
    let mut out = String::with_capacity(text.len().min(max + 3));
    let mut count = 0;
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if c.is_control() {
            continue;
        }
        if space {
            out.push(' ');
            count += 1;
            space = false;
        }
        if count >= max {
            out.push('…');
            break;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// A transport error's message: its causes, outermost first, without repetition.
pub(crate) fn transport_detail(err: &(dyn std::error::Error + 'static), secret: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        current = e.source();
    }
    clean(&parts.join(": "), secret, 400)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "tok.atlasv1.SECRETSECRET";

    fn ctx(policy: Option<&PolicyId>) -> ErrorContext<'_> {
        ErrorContext {
            request: "GET /api/v2/organizations/acme/policies",
            organization: "acme",
            policy,
            token_source: "TFE_TOKEN",
            secret: SECRET,
        }
    }

    fn map(status: u16, body: &str) -> ApiError {
        from_response(
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
            &ctx(None),
        )
    }

    #[test]
    fn unauthorized_names_the_token_source_and_the_fix() {
        let e = map(
            401,
            r#"{"errors":[{"status":"401","title":"unauthorized"}]}"#,
        );
        let msg = e.to_string();
        assert!(msg.contains("TFE_TOKEN"), "{msg}");
        assert!(msg.contains("invalid or expired"), "{msg}");
        assert!(e.is_fatal_at_startup());
        assert!(!e.is_transient());
    }

    #[test]
    fn not_found_names_all_three_causes() {
        let id = PolicyId("pol-abc".into());
        let e = from_response(StatusCode::NOT_FOUND, b"", &ctx(Some(&id)));
        let msg = e.to_string();
        assert!(
            msg.contains("organization \"acme\" does not exist"),
            "{msg}"
        );
        assert!(msg.contains("may not manage its policies"), "{msg}");
        assert!(msg.contains("pol-abc was deleted"), "{msg}");
        let msg = map(404, "").to_string();
        assert!(!msg.contains("deleted"), "no policy involved: {msg}");
    }

    #[test]
    fn unprocessable_quotes_the_service() {
        let e = map(
            422,
            r#"{"errors":[{"status":"422","title":"invalid attribute","detail":"Name has already been taken","source":{"pointer":"/data/attributes/name"}}]}"#,
        );
        assert!(matches!(e, ApiError::Invalid { status: 422, .. }));
        assert!(
            e.to_string()
                .ends_with("(422): Name has already been taken (at /data/attributes/name)"),
            "{e}"
        );
    }

    #[test]
    fn rate_limited_and_server_errors_are_transient() {
        let e = map(
            429,
            r#"{"errors":[{"detail":"You have exceeded the API's rate limit.","status":429,"title":"Too many requests"}]}"#,
        );
        assert!(matches!(e, ApiError::RateLimited { .. }) && e.is_transient());
        let e = map(
            503,
            r#"{"errors":[{"status":"503","title":"service unavailable"}]}"#,
        );
        assert!(e.is_transient());
        assert!(
            e.to_string()
                .contains("failed with 503: service unavailable"),
            "{e}"
        );
    }

    #[test]
    fn an_html_error_page_becomes_status_and_snippet_not_a_decode_error() {
        let page = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                    <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
                    </body>\r\n</html>\r\n";
        let msg = map(502, page).to_string();
        assert_eq!(
            msg,
            "GET /api/v2/organizations/acme/policies: the service failed with 502: Bad \
             Gateway, not a JSON:API error document, often a proxy or load balancer in front \
             of the service; it reads: \"502 Bad Gateway 502 Bad Gateway nginx\""
        );
        assert!(!msg.contains("expected"), "no serde message: {msg}");
    }

    #[test]
    fn snippets_are_short_clean_and_never_hold_the_token() {
        let body = format!(
            "debug proxy echo: Authorization: Bearer {SECRET}\x1b[31m{}",
            "x".repeat(5000)
        );
        let msg = map(500, &body).to_string();
        assert!(!msg.contains(SECRET), "{msg}");
        assert!(msg.contains("Bearer ***"), "{msg}");
        assert!(!msg.contains('\x1b'), "control characters are dropped");
        assert!(msg.len() < 600, "{} bytes", msg.len());
        let msg = map(400, &format!(r#"{{"errors":[{{"detail":"{SECRET}"}}]}}"#)).to_string();
        assert!(!msg.contains(SECRET), "{msg}");
    }

    #[test]
    fn empty_bodies_still_say_something() {
        assert_eq!(
            map(503, "").to_string(),
            "GET /api/v2/organizations/acme/policies: the service failed with 503: Service \
             Unavailable (empty body)"
        );
    }

    #[test]
    fn too_large_uploads_mention_the_limit() {
        let msg = map(413, "").to_string();
        assert!(msg.contains("10 MiB"), "{msg}");
    }

    #[test]
    fn startup_fatality_and_transience_are_disjoint() {
        let all = [
            map(401, ""),
            map(403, ""),
            map(404, ""),
            map(422, ""),
            map(429, ""),
            map(500, ""),
            ApiError::Cancelled,
            ApiError::Timeout {
                request: "GET /".into(),
                timeout: Duration::from_secs(1),
            },
        ];
        for e in &all {
            assert!(!(e.is_transient() && e.is_fatal_at_startup()), "{e:?}");
        }
    }
}
