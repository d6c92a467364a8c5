//! JSON:API documents of the Policies API, as the client reads and writes them.
//!
//! Reading is lenient where the service has moved on and strict where it matters: unknown
//! attributes, relationships and links are ignored (today's service adds `description`, `kind`,
//! `policy-set-count`, ...); the mode is read from `enforcement-level` when present, else from
//! `enforce[0].mode` (the 2017 shape, and today's `enforce` is empty until code is uploaded).
//! Decode errors carry the JSON path of the offending member (`serde_path_to_error`).
//!
//! Writing follows the seed exactly: `enforce` holds one object whose path is
//! `<name>.sentinel`, because the service silently falls back to hard-mandatory on any other
//! path. These types are the client's own; the emulator has separate ones, and both are tested
//! against the seed's samples so that neither can drift alone.

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::{Mode, PolicyId, PolicyName};

/// What went wrong decoding a document: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// JSON path, e.g. `data[3].attributes.name`; `.` for the document itself.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at {}: {}", self.path, self.message)
    }
}

/// Decodes `bytes` as a `T`, reporting the path of the first member that does not fit.
pub fn decode<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, DecodeError> {
    // Path tracking costs on every value; pay for it only to explain a failure.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| DecodeError {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// `{"data": {...}}`: one policy (create, show, update, upload responses).
#[derive(Debug, Deserialize)]
pub struct PolicyDocument {
    pub data: PolicyResource,
}

/// `{"data": [...], "meta": {"pagination": {...}}}`: one page of the list.
#[derive(Debug, Deserialize)]
pub struct PolicyListDocument {
    pub data: Vec<PolicyResource>,
    #[serde(default)]
    pub meta: Option<ListMeta>,
}

#[derive(Debug, Deserialize)]
pub struct ListMeta {
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// `meta.pagination`. Only `next-page` drives the client; the rest is kept for messages.
#[derive(Debug, Deserialize)]
pub struct Pagination {
    #[serde(rename = "current-page", default)]
    pub current_page: Option<u64>,
    #[serde(rename = "next-page", default)]
    pub next_page: Option<u64>,
    #[serde(rename = "total-pages", default)]
    pub total_pages: Option<u64>,
    #[serde(rename = "total-count", default)]
    pub total_count: Option<u64>,
}

/// One policy resource object.
#[derive(Debug, Deserialize)]
pub struct PolicyResource {
    pub id: PolicyId,
    #[serde(rename = "type")]
    pub kind: String,
    pub attributes: PolicyAttributes,
    #[serde(default)]
    pub links: Option<PolicyLinks>,
}

#[derive(Debug, Deserialize)]
pub struct PolicyAttributes {
    pub name: String,
    /// Today's service: the mode, set from creation.
    #[serde(rename = "enforcement-level", default)]
    pub enforcement_level: Option<String>,
    /// The 2017 shape (deprecated): one object; empty on today's service until code exists.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub enforce: Vec<EnforceEntry>,
    /// Time of the last code upload; null before the first.
    #[serde(rename = "updated-at", default)]
    pub updated_at: Option<String>,
    /// `sentinel` or `opa` on today's service; absent on the 2017 one.
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct EnforceEntry {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PolicyLinks {
    #[serde(default)]
    pub download: Option<String>,
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A policy as the client hands it to the reconciler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotePolicySummary {
    pub id: PolicyId,
    pub name: String,
    pub mode: Mode,
    /// Time of the last code upload; `None` before the first.
    pub updated_at: Option<String>,
    /// Whether the service may hold code: `links.download` is present (the service adds the
    /// link once code has been uploaded: the seed's create response has none, its update
    /// response has one), or `updated-at` is set (the time of the last upload). Only when both
    /// say "none" is the download skipped; a service that left the link out would otherwise
    /// have its code uploaded again on every run. A hint only: download is the truth, and a
    /// 404 there means no code.
    pub has_code: bool,
}

impl PolicyResource {
    /// `Ok(None)` for a policy this tool does not manage (today's service lists OPA policies
    /// in the same collection, with modes Sentinel does not have). `at` is the resource's JSON
    /// path, for messages.
    pub fn into_summary(self, at: &str) -> Result<Option<RemotePolicySummary>, DecodeError> {
        self.summarize(&|| at.to_owned())
    }

    /// [`into_summary`](Self::into_summary) for the `index`th element of a list's `data`; the
    /// path is only formatted on error (this runs once per listed policy).
    pub fn into_summary_at(self, index: usize) -> Result<Option<RemotePolicySummary>, DecodeError> {
        self.summarize(&|| format!("data[{index}]"))
    }

    fn summarize(
        self,
        at: &dyn Fn() -> String,
    ) -> Result<Option<RemotePolicySummary>, DecodeError> {
        if self.kind != "policies" {
            return Err(DecodeError {
                path: format!("{}.type", at()),
                message: format!("expected \"policies\", found {:?}", self.kind),
            });
        }
        if let Some(kind) = &self.attributes.kind
            && kind != "sentinel"
        {
            return Ok(None);
        }
        let (raw, member) = match (
            &self.attributes.enforcement_level,
            self.attributes.enforce.first(),
        ) {
            (Some(level), _) => (level.as_str(), "enforcement-level"),
            (None, Some(EnforceEntry { mode: Some(m), .. })) => (m.as_str(), "enforce[0].mode"),
            (None, _) => {
                return Err(DecodeError {
                    path: format!("{}.attributes", at()),
                    message: format!(
                        "policy {:?} has neither enforcement-level nor enforce[0].mode",
                        self.attributes.name
                    ),
                });
            }
        };
        let mode = raw.parse::<Mode>().map_err(|e| DecodeError {
            path: format!("{}.attributes.{member}", at()),
            message: e.to_string(),
        })?;
        Ok(Some(RemotePolicySummary {
            id: self.id,
            name: self.attributes.name,
            mode,
            has_code: self.attributes.updated_at.is_some()
                || self.links.is_some_and(|l| l.download.is_some()),
            updated_at: self.attributes.updated_at,
        }))
    }
}

/// The body of create (`name` set) and update (`name` omitted, as the seed's sample does).
#[derive(Debug, Serialize)]
pub struct PolicyWriteDocument<'a> {
    data: PolicyWriteData<'a>,
}

#[derive(Debug, Serialize)]
struct PolicyWriteData<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    attributes: PolicyWriteAttributes<'a>,
}

#[derive(Debug, Serialize)]
struct PolicyWriteAttributes<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    enforce: [EnforceWrite; 1],
}

#[derive(Debug, Serialize)]
struct EnforceWrite {
    path: String,
    mode: &'static str,
}

impl<'a> PolicyWriteDocument<'a> {
    pub fn create(name: &'a PolicyName, mode: Mode) -> Self {
        Self::new(name, Some(name.as_str()), mode)
    }

    pub fn update(name: &'a PolicyName, mode: Mode) -> Self {
        Self::new(name, None, mode)
    }

    fn new(name: &PolicyName, name_attr: Option<&'a str>, mode: Mode) -> Self {
        PolicyWriteDocument {
            data: PolicyWriteData {
                kind: "policies",
                attributes: PolicyWriteAttributes {
                    name: name_attr,
                    enforce: [EnforceWrite {
                        path: name.sentinel_path(),
                        mode: mode.as_str(),
                    }],
                },
            },
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Plain structs of strings cannot fail to serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `{"errors": [...]}`: a JSON:API error document.
#[derive(Debug, Deserialize)]
pub struct ErrorDocument {
    pub errors: Vec<ErrorObject>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorObject {
    /// Usually a string (`"422"`), a number in the documented 429 body.
    #[serde(default)]
    pub status: Option<serde_json::Value>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub source: Option<ErrorSource>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorSource {
    #[serde(default)]
    pub pointer: Option<String>,
}

impl ErrorObject {
    /// `detail`, else `title`, with the pointer when there is one:
    /// `Name has already been taken (at /data/attributes/name)`.
    pub fn message(&self) -> Option<String> {
        let text = self
            .detail
            .as_deref()
            .or(self.title.as_deref())
            .map(str::trim)
            .filter(|t| !t.is_empty())?;
        match self.source.as_ref().and_then(|s| s.pointer.as_deref()) {
            Some(p) if !p.is_empty() => Some(format!("{text} (at {p})")),
            _ => Some(text.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The seed's samples, verbatim (tests/fixtures/api/README.md).
    const SEED_CREATE_RESPONSE: &[u8] =
        include_bytes!("../../tests/fixtures/api/create-response.json");
    const SEED_UPDATE_RESPONSE: &[u8] =
        include_bytes!("../../tests/fixtures/api/update-response.json");
    const SEED_LIST_RESPONSE: &[u8] = include_bytes!("../../tests/fixtures/api/list-response.json");
    const SEED_CREATE_REQUEST: &[u8] =
        include_bytes!("../../tests/fixtures/api/create-request.json");
    const SEED_UPDATE_REQUEST: &[u8] =
        include_bytes!("../../tests/fixtures/api/update-request.json");
    const FACTS_422: &[u8] = include_bytes!("../../tests/fixtures/api/error-422-taken.json");
    const FACTS_429: &[u8] = include_bytes!("../../tests/fixtures/api/error-429.json");

    fn summary_of(bytes: &[u8]) -> RemotePolicySummary {
        decode::<PolicyDocument>(bytes)
            .unwrap()
            .data
            .into_summary("data")
            .unwrap()
            .unwrap()
    }

    #[test]
    fn seed_create_response_decodes() {
        assert_eq!(
            summary_of(SEED_CREATE_RESPONSE),
            RemotePolicySummary {
                id: PolicyId("pol-u3S5p2Uwk21keu1s".into()),
                name: "my-example-policy".into(),
                mode: Mode::Advisory,
                updated_at: None,
                has_code: false,
            }
        );
    }

    #[test]
    fn seed_update_response_decodes() {
        assert_eq!(
            summary_of(SEED_UPDATE_RESPONSE),
            RemotePolicySummary {
                id: PolicyId("pol-u3S5p2Uwk21keu1s".into()),
                name: "my-example-policy".into(),
                mode: Mode::SoftMandatory,
                updated_at: Some("2017-10-10T20:58:04.621Z".into()),
                has_code: true,
            }
        );
    }

    #[test]
    fn seed_list_response_decodes_without_pagination() {
        let doc: PolicyListDocument = decode(SEED_LIST_RESPONSE).unwrap();
        assert!(doc.meta.is_none(), "the 2017 sample has no meta: one page");
        let all: Vec<_> = doc
            .data
            .into_iter()
            .map(|r| r.into_summary("data[]").unwrap().unwrap())
            .collect();
        assert_eq!(
            all,
            [RemotePolicySummary {
                id: PolicyId("pol-u3S5p2Uwk21keu1s".into()),
                name: "my-example-policy".into(),
                mode: Mode::Advisory,
                updated_at: Some("2017-10-10T20:52:13.898Z".into()),
                has_code: true,
            }]
        );
    }

    #[test]
    fn request_bodies_equal_the_seed_samples() {
        let name = PolicyName::new("my-example-policy").unwrap();
        let ours: serde_json::Value = serde_json::from_slice(
            &PolicyWriteDocument::create(&name, Mode::HardMandatory).to_bytes(),
        )
        .unwrap();
        let seed: serde_json::Value = serde_json::from_slice(SEED_CREATE_REQUEST).unwrap();
        assert_eq!(ours, seed);
        let ours: serde_json::Value = serde_json::from_slice(
            &PolicyWriteDocument::update(&name, Mode::SoftMandatory).to_bytes(),
        )
        .unwrap();
        let seed: serde_json::Value = serde_json::from_slice(SEED_UPDATE_REQUEST).unwrap();
        assert_eq!(ours, seed);
    }

    #[test]
    fn documented_error_bodies_decode() {
        for (bytes, want) in [
            (
                FACTS_422,
                "Name has already been taken (at /data/attributes/name)",
            ),
            (FACTS_429, "You have exceeded the API's rate limit."),
        ] {
            let doc: ErrorDocument = decode(bytes).unwrap();
            assert_eq!(doc.errors[0].message().as_deref(), Some(want));
        }
    }

    #[test]
    fn create_body_is_exactly_the_seed_shape() {
        let name = PolicyName::new("my-example-policy").unwrap();
        let body = PolicyWriteDocument::create(&name, Mode::HardMandatory).to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"data": {"type": "policies", "attributes": {
                "name": "my-example-policy",
                "enforce": [{"path": "my-example-policy.sentinel", "mode": "hard-mandatory"}]
            }}})
        );
    }

    #[test]
    fn update_body_omits_the_immutable_name() {
        let name = PolicyName::new("p").unwrap();
        let body = PolicyWriteDocument::update(&name, Mode::Advisory).to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"data": {"type": "policies", "attributes": {
                "enforce": [{"path": "p.sentinel", "mode": "advisory"}]
            }}})
        );
    }

    /// Bug: code was skipped (planned as "no code yet", so uploaded again on every run) for a
    /// listed policy whose document has an `updated-at` but no `links.download`.
    #[test]
    fn an_updated_at_without_a_download_link_still_means_code_may_exist() {
        let doc: PolicyDocument = decode(
            br#"{"data": {"id": "pol-1", "type": "policies", "attributes": {
                "name": "p", "enforcement-level": "advisory",
                "updated-at": "2017-10-10T20:52:13.898Z"},
                "links": {"self": "/api/v2/policies/pol-1"}}}"#,
        )
        .unwrap();
        let s = doc.data.into_summary("data").unwrap().unwrap();
        assert!(s.has_code);
    }

    #[test]
    fn enforcement_level_wins_over_enforce() {
        let doc: PolicyDocument = decode(
            br#"{"data": {"id": "pol-1", "type": "policies", "attributes": {
                "name": "p", "enforcement-level": "advisory",
                "enforce": [{"path": "p.sentinel", "mode": "hard-mandatory"}]}}}"#,
        )
        .unwrap();
        let s = doc.data.into_summary("data").unwrap().unwrap();
        assert_eq!(s.mode, Mode::Advisory);
        assert!(!s.has_code);
    }

    #[test]
    fn todays_empty_enforce_before_upload_reads_enforcement_level() {
        let doc: PolicyDocument = decode(
            br#"{"data": {"id": "pol-1", "type": "policies", "attributes": {
                "name": "p", "enforcement-level": "soft-mandatory", "enforce": [],
                "updated-at": null, "description": null, "policy-set-count": 0},
                "relationships": {"organization": {"data": {"id": "o", "type": "organizations"}}},
                "links": {"self": "/api/v2/policies/pol-1"}}}"#,
        )
        .unwrap();
        let s = doc.data.into_summary("data").unwrap().unwrap();
        assert_eq!(s.mode, Mode::SoftMandatory);
        assert_eq!(s.updated_at, None);
    }

    #[test]
    fn unknown_modes_are_path_aware_errors() {
        let doc: PolicyListDocument = decode(
            br#"{"data": [{"id": "pol-1", "type": "policies", "attributes": {
                "name": "p", "enforce": [{"path": "p.sentinel", "mode": "Hard-Mandatory"}]}}]}"#,
        )
        .unwrap();
        let resource = doc.data.into_iter().next().unwrap();
        let err = resource.into_summary("data[0]").unwrap_err();
        assert_eq!(err.path, "data[0].attributes.enforce[0].mode");
        assert!(err.message.contains("Hard-Mandatory"), "{err}");
    }

    #[test]
    fn opa_policies_are_skipped_not_errors() {
        let doc: PolicyDocument = decode(
            br#"{"data": {"id": "pol-1", "type": "policies", "attributes": {
                "name": "opa-one", "kind": "opa", "enforcement-level": "mandatory"}}}"#,
        )
        .unwrap();
        assert_eq!(doc.data.into_summary("data").unwrap(), None);
    }

    #[test]
    fn decode_errors_name_the_member() {
        let err = decode::<PolicyListDocument>(
            br#"{"data": [{"id": "pol-1", "type": "policies", "attributes": {"name": 7}}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.path, "data[0].attributes.name");
    }

    #[test]
    fn error_objects_accept_numeric_status_and_build_a_message() {
        let doc: ErrorDocument = decode(
            br#"{"errors":[{"detail":"You have exceeded the API's rate limit.","status":429,"title":"Too many requests"}]}"#,
        )
        .unwrap();
        assert_eq!(
            doc.errors[0].message().as_deref(),
            Some("You have exceeded the API's rate limit.")
        );
        let doc: ErrorDocument = decode(
            br#"{"errors":[{"status":"422","title":"invalid attribute","detail":"Name has already been taken","source":{"pointer":"/data/attributes/name"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            doc.errors[0].message().as_deref(),
            Some("Name has already been taken (at /data/attributes/name)")
        );
    }
}
