//! JSON:API wire documents of the emulator: parsing create/update requests into values (with a
//! `source.pointer` on every 422), rendering policy and list documents, and error objects.
//!
//! These are the emulator's own wire types, deliberately separate from the client's: both are
//! tested against the samples of the seed's API document, so neither can drift alone.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::store::StoredPolicy;
use crate::model::{Mode, PolicyName};

/// The JSON:API media type.
pub(crate) const JSON_API: &str = "application/vnd.api+json";

/// An error answered as a JSON:API error document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {title}")]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: Option<String>,
    pub pointer: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, title: &'static str) -> Self {
        ApiError {
            status,
            title,
            detail: None,
            pointer: None,
        }
    }

    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Unknown organization, unknown policy, no access, no right: the service does not say which.
    pub(crate) fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not found")
    }

    pub(crate) fn unauthorized() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized")
    }

    pub(crate) fn unsupported_media_type() -> Self {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported media type").detail(format!(
            "POST, PATCH and DELETE requests must have Content-Type: {JSON_API}"
        ))
    }

    pub(crate) fn too_large(limit: usize) -> Self {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload too large").detail(format!(
            "the request body exceeds the limit of {limit} bytes"
        ))
    }

    pub(crate) fn bad_body() -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad request")
            .detail("the request body could not be read")
    }

    /// A 422 about the member at `pointer`.
    pub(crate) fn invalid(pointer: &str, detail: impl Into<String>) -> Self {
        ApiError {
            pointer: Some(pointer.to_owned()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid attribute").detail(detail)
        }
    }

    fn malformed(detail: impl Into<String>) -> Self {
        ApiError {
            pointer: Some(String::new()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "malformed request body")
                .detail(detail)
        }
    }

    pub(crate) fn document(&self) -> Value {
        let mut error = Map::new();
        error.insert("status".into(), self.status.as_u16().to_string().into());
        error.insert("title".into(), self.title.into());
        if let Some(detail) = &self.detail {
            error.insert("detail".into(), detail.clone().into());
        }
        if let Some(pointer) = &self.pointer {
            error.insert("source".into(), json!({ "pointer": pointer }));
        }
        json!({ "errors": [error] })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_api(self.status, &self.document())
    }
}

/// A response with a JSON:API body.
pub(crate) fn json_api(status: StatusCode, body: &impl Serialize) -> Response {
    // Serializing our own plain structs cannot fail; fall back to an empty object regardless.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = (status, bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_API));
    response
}

/// The documented 429 body; its `status` is a number, unlike every other error object.
pub(crate) fn rate_limited() -> Response {
    json_api(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"errors": [{
            "detail": "You have exceeded the API's rate limit.",
            "status": 429,
            "title": "Too many requests"
        }]}),
    )
}

/// What a proxy in front of the service answers: an HTML page, not JSON.
pub(crate) fn proxy_error(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let page = format!(
        "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n</body>\r\n</html>\r\n",
        code = status.as_u16()
    );
    let mut response = (status, page).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

// ---- responses ----

#[derive(Debug, Serialize)]
pub(crate) struct PolicyDocument {
    pub data: PolicyResource,
}

#[derive(Debug, Serialize)]
pub(crate) struct PolicyResource {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub attributes: PolicyAttributes,
    pub relationships: PolicyRelationships,
    pub links: PolicyLinks,
}

/// Today's service carries more than the seed shows; clients must ignore what they do not use.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct PolicyAttributes {
    pub name: String,
    pub description: Option<String>,
    pub kind: &'static str,
    pub query: Option<String>,
    pub enforce: Vec<Enforce>,
    pub enforcement_level: Mode,
    pub policy_set_count: u32,
    pub updated_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Enforce {
    pub path: String,
    pub mode: Mode,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct PolicyRelationships {
    pub organization: Relationship,
    pub policy_sets: ToMany,
}

#[derive(Debug, Serialize)]
pub(crate) struct Relationship {
    pub data: ResourceId,
}

#[derive(Debug, Serialize)]
pub(crate) struct ToMany {
    pub data: Vec<ResourceId>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ResourceId {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Serialize)]
pub(crate) struct PolicyLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub upload: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<String>,
}

impl PolicyResource {
    /// The resource for `p`. `enforce_before_upload`: show `enforce` from creation (the 2017
    /// service) rather than only once code exists (today's).
    pub(crate) fn new(p: &StoredPolicy, enforce_before_upload: bool) -> Self {
        let self_ = format!("/api/v2/policies/{}", p.id);
        let enforce = if p.code.is_some() || enforce_before_upload {
            vec![Enforce {
                path: format!("{}.sentinel", p.name),
                mode: p.mode,
            }]
        } else {
            Vec::new()
        };
        PolicyResource {
            id: p.id.clone(),
            kind: "policies",
            attributes: PolicyAttributes {
                name: p.name.clone(),
                description: None,
                kind: "sentinel",
                query: None,
                enforce,
                enforcement_level: p.mode,
                policy_set_count: 0,
                updated_at: p.updated_at.clone(),
            },
            relationships: PolicyRelationships {
                organization: Relationship {
                    data: ResourceId {
                        id: p.organization.clone(),
                        kind: "organizations",
                    },
                },
                policy_sets: ToMany { data: Vec::new() },
            },
            links: PolicyLinks {
                upload: format!("{self_}/upload"),
                download: p.code.as_ref().map(|_| format!("{self_}/download")),
                self_,
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct ListDocument {
    pub data: Vec<PolicyResource>,
    pub links: PageLinks,
    pub meta: ListMeta,
}

#[derive(Debug, Serialize)]
pub(crate) struct PageLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub first: String,
    pub prev: Option<String>,
    pub next: Option<String>,
    pub last: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct ListMeta {
    pub pagination: Pagination,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Pagination {
    pub current_page: u64,
    pub page_size: u64,
    pub prev_page: Option<u64>,
    pub next_page: Option<u64>,
    pub total_pages: u64,
    pub total_count: u64,
}

/// The documented default page size.
pub(crate) const DEFAULT_PAGE_SIZE: u64 = 20;
/// The documented largest page size; larger requests are capped.
pub(crate) const MAX_PAGE_SIZE: u64 = 100;

impl Pagination {
    /// Page `number` (1-based) of `size` over `total` items. Out-of-range input is clamped,
    /// never rejected: a page past the end is simply empty.
    pub(crate) fn new(number: u64, size: u64, total: u64) -> Self {
        let size = size.clamp(1, MAX_PAGE_SIZE);
        let number = number.max(1);
        let total_pages = total.div_ceil(size).max(1);
        Pagination {
            current_page: number,
            page_size: size,
            prev_page: (number > 1).then(|| number - 1),
            next_page: (number < total_pages).then(|| number + 1),
            total_pages,
            total_count: total,
        }
    }

    /// The index range of this page's items.
    pub(crate) fn range(&self) -> std::ops::Range<usize> {
        let start = (self.current_page - 1).saturating_mul(self.page_size);
        let end = start.saturating_add(self.page_size).min(self.total_count);
        let start = start.min(self.total_count);
        (start as usize)..(end as usize)
    }
}

// ---- requests ----

/// A create request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CreateRequest {
    pub name: String,
    pub mode: Mode,
}

/// Parses a create body: `data.type` `policies`, a valid `data.attributes.name`, and the mode
/// from `enforcement-level` or `enforce` (default soft-mandatory).
pub(crate) fn parse_create(body: &[u8]) -> Result<CreateRequest, ApiError> {
    let attributes = parse_resource(body, true)?;
    let name = match attributes.get("name") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "/data/attributes/name",
                "Name can't be blank",
            ));
        }
        Some(Value::String(s)) if s.is_empty() => {
            return Err(ApiError::invalid(
                "/data/attributes/name",
                "Name can't be blank",
            ));
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                "/data/attributes/name",
                "Name must be a string",
            ));
        }
    };
    if PolicyName::new(name.as_str()).is_err() {
        return Err(ApiError::invalid(
            "/data/attributes/name",
            "Name is invalid: it can only include letters, numbers, -, and _",
        ));
    }
    let mode = parse_mode(&attributes, &name)?.unwrap_or(Mode::DEFAULT);
    Ok(CreateRequest { name, mode })
}

/// Parses an update body for the policy called `name`: the new mode, if the body names one.
/// `data.attributes.name` is ignored, as documented.
pub(crate) fn parse_update(body: &[u8], name: &str) -> Result<Option<Mode>, ApiError> {
    let attributes = parse_resource(body, false)?;
    parse_mode(&attributes, name)
}

/// Checks the document down to `data.attributes` and returns the attributes.
fn parse_resource(body: &[u8], attributes_required: bool) -> Result<Map<String, Value>, ApiError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::malformed(format!("the request body is not valid JSON: {e}")))?;
    let Value::Object(mut doc) = doc else {
        return Err(ApiError::malformed(
            "the request body must be a JSON object",
        ));
    };
    let Some(Value::Object(mut data)) = doc.remove("data") else {
        return Err(ApiError::invalid("/data", "data must be an object"));
    };
    match data.get("type") {
        Some(Value::String(t)) if t == "policies" => {}
        Some(Value::String(t)) => {
            return Err(ApiError::invalid(
                "/data/type",
                format!("type must be \"policies\", not {t:?}"),
            ));
        }
        _ => return Err(ApiError::invalid("/data/type", "type must be \"policies\"")),
    }
    match data.remove("attributes") {
        Some(Value::Object(attributes)) => Ok(attributes),
        None | Some(Value::Null) if !attributes_required => Ok(Map::new()),
        _ => Err(ApiError::invalid(
            "/data/attributes",
            "attributes must be an object",
        )),
    }
}

/// The mode a request asks for: `enforcement-level` (today's API) wins over `enforce` (the
/// seed's, still accepted). `Ok(None)`: the request names no mode.
fn parse_mode(attributes: &Map<String, Value>, name: &str) -> Result<Option<Mode>, ApiError> {
    let from_enforce = parse_enforce(attributes.get("enforce"), name)?;
    match attributes.get("enforcement-level") {
        None | Some(Value::Null) => Ok(from_enforce),
        Some(level) => mode_value(level, "/data/attributes/enforcement-level").map(Some),
    }
}

fn parse_enforce(enforce: Option<&Value>, name: &str) -> Result<Option<Mode>, ApiError> {
    const PTR: &str = "/data/attributes/enforce";
    let items = match enforce {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::invalid(PTR, "Enforce must be an array")),
    };
    let item = match items.as_slice() {
        [] => return Ok(None),
        [item] => item,
        _ => {
            return Err(ApiError::invalid(
                PTR,
                "Enforce can only include one object",
            ));
        }
    };
    let Value::Object(item) = item else {
        return Err(ApiError::invalid(
            "/data/attributes/enforce/0",
            "Enforce entries must be objects",
        ));
    };
    let mode = match item.get("mode") {
        None | Some(Value::Null) => Mode::DEFAULT,
        Some(v) => mode_value(v, "/data/attributes/enforce/0/mode")?,
    };
    let path = match item.get("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.as_str()),
        Some(_) => {
            return Err(ApiError::invalid(
                "/data/attributes/enforce/0/path",
                "Path must be a string",
            ));
        }
    };
    // The real service does not reject a path other than `<name>.sentinel`: it silently
    // enforces the policy as hard-mandatory instead. Reproduce that, so clients check.
    if path != Some(format!("{name}.sentinel").as_str()) {
        return Ok(Some(Mode::HardMandatory));
    }
    Ok(Some(mode))
}

fn mode_value(v: &Value, pointer: &str) -> Result<Mode, ApiError> {
    match v {
        Value::String(s) => s.parse().map_err(|_| {
            ApiError::invalid(
                pointer,
                format!(
                    "Mode {s:?} is not included in the list: hard-mandatory, soft-mandatory, advisory"
                ),
            )
        }),
        _ => Err(ApiError::invalid(pointer, "Mode must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(v: Value) -> Result<CreateRequest, ApiError> {
        parse_create(v.to_string().as_bytes())
    }

    fn pointer(r: Result<impl std::fmt::Debug, ApiError>) -> String {
        r.unwrap_err().pointer.unwrap()
    }

    #[test]
    fn the_seed_payload_creates_with_its_mode() {
        let req = create(json!({"data": {"type": "policies", "attributes": {
            "name": "p", "enforce": [{"path": "p.sentinel", "mode": "advisory"}]}}}))
        .unwrap();
        assert_eq!(
            req,
            CreateRequest {
                name: "p".into(),
                mode: Mode::Advisory
            }
        );
    }

    #[test]
    fn a_wrong_path_silently_falls_back_to_hard_mandatory() {
        let req = create(json!({"data": {"type": "policies", "attributes": {
            "name": "p", "enforce": [{"path": "q.sentinel", "mode": "advisory"}]}}}))
        .unwrap();
        assert_eq!(req.mode, Mode::HardMandatory);
    }

    #[test]
    fn enforcement_level_wins_and_absent_mode_defaults_to_soft() {
        let req = create(json!({"data": {"type": "policies", "attributes": {
            "name": "p", "enforcement-level": "advisory",
            "enforce": [{"path": "p.sentinel", "mode": "hard-mandatory"}]}}}))
        .unwrap();
        assert_eq!(req.mode, Mode::Advisory);
        let req =
            create(json!({"data": {"type": "policies", "attributes": {"name": "p"}}})).unwrap();
        assert_eq!(req.mode, Mode::SoftMandatory);
    }

    #[test]
    fn every_422_points_at_the_offending_member() {
        assert_eq!(pointer(parse_create(b"{not json")), "");
        assert_eq!(pointer(create(json!([]))), "");
        assert_eq!(pointer(create(json!({}))), "/data");
        assert_eq!(
            pointer(create(json!({"data": {"type": "workspaces"}}))),
            "/data/type"
        );
        assert_eq!(
            pointer(create(json!({"data": {"type": "policies"}}))),
            "/data/attributes"
        );
        let attrs = |a: Value| create(json!({"data": {"type": "policies", "attributes": a}}));
        assert_eq!(pointer(attrs(json!({}))), "/data/attributes/name");
        assert_eq!(pointer(attrs(json!({"name": 3}))), "/data/attributes/name");
        assert_eq!(
            pointer(attrs(json!({"name": "a b"}))),
            "/data/attributes/name"
        );
        assert_eq!(
            pointer(attrs(json!({"name": "p", "enforce": {}}))),
            "/data/attributes/enforce"
        );
        assert_eq!(
            pointer(attrs(json!({"name": "p", "enforce": [{}, {}]}))),
            "/data/attributes/enforce"
        );
        assert_eq!(
            pointer(attrs(
                json!({"name": "p", "enforce": [{"path": "p.sentinel", "mode": "strict"}]})
            )),
            "/data/attributes/enforce/0/mode"
        );
        assert_eq!(
            pointer(attrs(json!({"name": "p", "enforcement-level": "Advisory"}))),
            "/data/attributes/enforcement-level"
        );
    }

    #[test]
    fn update_ignores_name_and_may_name_no_mode() {
        let body = json!({"data": {"type": "policies", "attributes": {"name": "renamed"}}});
        assert_eq!(parse_update(body.to_string().as_bytes(), "p"), Ok(None));
        let body = json!({"data": {"type": "policies", "attributes": {
            "enforce": [{"path": "p.sentinel", "mode": "advisory"}]}}});
        assert_eq!(
            parse_update(body.to_string().as_bytes(), "p"),
            Ok(Some(Mode::Advisory))
        );
    }

    #[test]
    fn pagination_clamps_and_counts() {
        let p = Pagination::new(1, 20, 45);
        assert_eq!(
            (p.total_pages, p.prev_page, p.next_page),
            (3, None, Some(2))
        );
        assert_eq!(p.range(), 0..20);
        let p = Pagination::new(3, 20, 45);
        assert_eq!(
            (p.prev_page, p.next_page, p.range()),
            (Some(2), None, 40..45)
        );
        let p = Pagination::new(9, 500, 45);
        assert_eq!((p.page_size, p.range()), (100, 45..45));
        let p = Pagination::new(1, 20, 0);
        assert_eq!((p.total_pages, p.next_page), (1, None));
    }
}
