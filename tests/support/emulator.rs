//! Helpers for tests that talk to the emulator over HTTP: start one on port 0, and a small raw
//! client (`Api`) that sends exactly what a test says, with the JSON:API headers the service
//! expects unless told otherwise.

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};
use tfe_policy_sync::emulator::{
    self, DEFAULT_ORGANIZATION, DEFAULT_TOKEN, EmulatorConfig, Running,
};

pub const ORG: &str = DEFAULT_ORGANIZATION;
pub const TOKEN: &str = DEFAULT_TOKEN;
pub const JSON_API: &str = "application/vnd.api+json";

/// An emulator with the default configuration (one org, one owner token, 30 req/s).
pub async fn start() -> Running {
    start_with(EmulatorConfig::default()).await
}

/// An emulator with `config`, on a fresh loopback port.
pub async fn start_with(config: EmulatorConfig) -> Running {
    emulator::spawn(config)
        .await
        .expect("the emulator binds 127.0.0.1:0")
}

/// A default configuration without a rate limit, for tests that send many requests.
pub fn unlimited() -> EmulatorConfig {
    EmulatorConfig {
        rate_limit: None,
        ..EmulatorConfig::default()
    }
}

/// The create body of the seed, for `name` and `mode`.
pub fn create_body(name: &str, mode: &str) -> Value {
    json!({"data": {"type": "policies", "attributes": {
        "name": name,
        "enforce": [{"path": format!("{name}.sentinel"), "mode": mode}]
    }}})
}

/// The update body of the seed, for `name` and `mode`.
pub fn update_body(name: &str, mode: &str) -> Value {
    json!({"data": {"type": "policies", "attributes": {
        "enforce": [{"path": format!("{name}.sentinel"), "mode": mode}]
    }}})
}

/// One answer, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON; panics with the body's text when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first error object of an error document.
    pub fn error(&self) -> Value {
        self.json()["errors"][0].clone()
    }
}

/// A raw client for the emulator's API.
#[derive(Debug, Clone)]
pub struct Api {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub token: Option<String>,
    pub http: reqwest::Client,
}

impl Api {
    /// A client of `running` with the default token.
    pub fn new(running: &Running) -> Self {
        Api {
            base: running.base_url(),
            token: Some(TOKEN.to_owned()),
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a reqwest client builds"),
        }
    }

    /// The same client with another token (`None`: no Authorization header).
    pub fn with_token(&self, token: Option<&str>) -> Self {
        Api {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    /// `base/api/v2{path}`
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v2{path}", self.base)
    }

    /// A request to `path` under `/api/v2`, with the token; nothing else set.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Reply {
        let response = rb.send().await.expect("the emulator answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .expect("the body is readable")
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    /// POST with `Content-Type: application/vnd.api+json`.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.post_raw(path, body.to_string().into_bytes()).await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> Reply {
        self.send(
            self.request(reqwest::Method::POST, path)
                .header(CONTENT_TYPE, JSON_API)
                .body(body),
        )
        .await
    }

    /// PATCH with `Content-Type: application/vnd.api+json`.
    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(
            self.request(reqwest::Method::PATCH, path)
                .header(CONTENT_TYPE, JSON_API)
                .body(body.to_string()),
        )
        .await
    }

    /// DELETE with `Content-Type: application/vnd.api+json`.
    pub async fn delete(&self, path: &str) -> Reply {
        self.send(
            self.request(reqwest::Method::DELETE, path)
                .header(CONTENT_TYPE, JSON_API),
        )
        .await
    }

    /// PUT the code with `Content-Type: application/octet-stream`.
    pub async fn upload(&self, id: &str, code: impl Into<reqwest::Body>) -> Reply {
        self.send(
            self.request(reqwest::Method::PUT, &format!("/policies/{id}/upload"))
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(code),
        )
        .await
    }

    pub async fn download(&self, id: &str) -> Reply {
        self.get(&format!("/policies/{id}/download")).await
    }

    /// Creates a policy in the default organization and returns its id; panics unless 200.
    pub async fn create(&self, name: &str, mode: &str) -> String {
        let reply = self
            .post(
                &format!("/organizations/{ORG}/policies"),
                &create_body(name, mode),
            )
            .await;
        assert_eq!(reply.status, 200, "create {name}: {:?}", reply.json());
        reply.json()["data"]["id"]
            .as_str()
            .expect("the document has an id")
            .to_owned()
    }
}
