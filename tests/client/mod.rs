//! The API client against the emulator and against small stub servers: every operation, the
//! failures the real service produces (401, 404, lost responses, 5xx, 429), and the transport
//! promises (headers, concurrency, redirects, timeouts, non-JSON bodies, token secrecy).

mod failures;
mod lifecycle;
mod secrecy;
mod tls;
mod transport;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tfe_policy_sync::client::{ApiError, Client, ClientOptions, RequestObserver};
use tfe_policy_sync::config::{Connection, Token, TokenSource};
use tfe_policy_sync::emulator::{self, EmulatorConfig, Running, TokenConfig};

pub const ORG: &str = emulator::DEFAULT_ORGANIZATION;

/// A token distinctive enough that finding it in any output is certainly a leak.
pub const SECRET: &str = "sEcReT-0123456789.atlasv1.zyxwvutsrqponmlkjihg";

/// The emulator's default configuration plus [`SECRET`] as an owner token of its own user.
pub fn config() -> EmulatorConfig {
    let mut c = EmulatorConfig::default();
    c.tokens
        .push(TokenConfig::user(SECRET, "secret-owner", [ORG]));
    c
}

pub async fn start(config: EmulatorConfig) -> Running {
    emulator::spawn(config)
        .await
        .expect("the emulator binds 127.0.0.1:0")
}

/// Options for tests: short timeouts and quick, few retries.
pub fn opts() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        max_retries: 3,
        ..ClientOptions::default()
    }
}

pub fn connection(base_url: &str, organization: &str, token: &str) -> Connection {
    Connection {
        address: base_url.parse().expect("a base URL"),
        organization: organization.to_owned(),
        token: Token::new(token),
        token_source: TokenSource::TfeTokenEnv,
        ca_certs: Vec::new(),
    }
}

pub fn client_of(running: &Running, opts: ClientOptions) -> Client {
    client_for(&running.base_url(), ORG, SECRET, opts)
}

pub fn client_for(base_url: &str, organization: &str, token: &str, opts: ClientOptions) -> Client {
    Client::new(&connection(base_url, organization, token), opts).expect("the client builds")
}

/// Neither the message nor the Debug form of `err` holds the token.
#[track_caller]
pub fn assert_secret_free(err: &ApiError) {
    let shown = format!("{err} | {err:?} | {err:#?}");
    assert!(!shown.contains(SECRET), "the token leaked: {shown}");
    assert!(
        !shown.contains("atlasv1"),
        "part of the token leaked: {shown}"
    );
}

/// Records what the client reports to its observer.
#[derive(Default)]
pub struct Recorder {
    pub responses: Mutex<Vec<(String, Option<u16>)>>,
    pub rate_limited: Mutex<u32>,
}

impl RequestObserver for Recorder {
    fn on_response(&self, method: &str, status: Option<u16>) {
        self.responses
            .lock()
            .unwrap()
            .push((method.to_owned(), status));
    }

    fn on_rate_limited(&self) {
        *self.rate_limited.lock().unwrap() += 1;
    }
}

impl Recorder {
    pub fn observed(self: &Arc<Self>, opts: ClientOptions) -> ClientOptions {
        ClientOptions {
            observer: Some(self.clone()),
            ..opts
        }
    }

    pub fn statuses(&self) -> Vec<Option<u16>> {
        self.responses.lock().unwrap().iter().map(|r| r.1).collect()
    }
}

/// A stub HTTP server on a loopback port serving `router`; dropped with the runtime.
pub async fn stub(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}
