//! An in-memory emulator of the Terraform Enterprise Policies API, for trials and tests.
//!
//! It serves every endpoint of the seed's Policies API document plus what today's service adds
//! (`GET /policies/:id`, download, `/api/v2/ping`, `enforcement-level`, pagination, rate-limit
//! headers), and it fails the way the real service fails: 401/404/415/422/413/429 with the
//! service's error documents, plus injected faults (a 5xx before acting, a 5xx after the change
//! was applied, a hung request).
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | configuration, the [`Emulator`] handle and its test knobs, [`serve`], [`spawn`], the CLI |
//! | `store.rs` | the in-memory policies and ids |
//! | `documents.rs` | JSON:API wire documents: request parsing, responses, error objects |
//! | `routes.rs` | the axum router, the request gate (latency, rate limit, auth, faults) and handlers |
//! | `auth.rs` | tokens and what they may do |
//! | `ratelimit.rs` | the per-user token bucket, on tokio's clock |
//! | `faults.rs` | fault injection with a seedable RNG |
//!
//! It never imports the reconciler; the only crate module it uses is [`crate::model`].

mod auth;
mod documents;
mod faults;
mod ratelimit;
mod routes;
mod store;

use std::collections::VecDeque;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::Method;
use tokio_util::sync::CancellationToken;

pub use auth::{TokenConfig, TokenKind};
pub use faults::{Fault, FaultTarget, Faults};
pub use ratelimit::RateLimit;
pub use store::StoredPolicy;

use crate::model::Mode;

/// The organization of the default configuration.
pub const DEFAULT_ORGANIZATION: &str = "my-organization";
/// The user token of the default configuration (a well-known test value, not a secret).
pub const DEFAULT_TOKEN: &str = "emulator-token";
/// The service's upload limit for policy code: 10 MiB.
pub const MAX_UPLOAD: usize = 10 * 1024 * 1024;
/// How many requests the request log keeps (the oldest are dropped first), so a long-running
/// emulator does not grow without bound.
pub const REQUEST_LOG_LIMIT: usize = 100_000;

/// Everything the emulator can be told at start. Most of it can also be changed at runtime
/// through the [`Emulator`] handle.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Organizations that exist. Any other organization name answers 404.
    pub organizations: Vec<String>,
    /// Tokens the service knows. Any other token answers 401.
    pub tokens: Vec<TokenConfig>,
    /// The per-user token bucket; `None` is unlimited. Default: the documented 30 req/s.
    pub rate_limit: Option<RateLimit>,
    /// Added to every API request before it is handled.
    pub latency: Duration,
    /// Injected failures.
    pub faults: Faults,
    /// Largest accepted upload (and request body), in bytes. Default [`MAX_UPLOAD`].
    pub max_upload: usize,
    /// The seed's rule is that organization tokens may not create, upload, update or delete
    /// (they get 404); today's service allows it. Default `false`, per the seed.
    pub organization_tokens_may_manage: bool,
    /// The 2017 service showed `enforce` from creation; today's shows an empty `enforce` array
    /// until code is uploaded (while `enforcement-level` is set from creation). Default `false`,
    /// like today's service.
    pub enforce_before_upload: bool,
    /// Answer download with a 307 to another host name of this server (`127.0.0.1` ↔
    /// `localhost`), as the real service redirects to its blob store. Default `false`.
    pub download_redirect: bool,
    /// Seeds policy ids (fault decisions have their own [`Faults::seed`]). `None`: random.
    pub seed: Option<u64>,
}

impl Default for EmulatorConfig {
    /// One organization `my-organization`, one user token ([`DEFAULT_TOKEN`]) owning it,
    /// the documented 30 requests per second.
    fn default() -> Self {
        EmulatorConfig {
            organizations: vec![DEFAULT_ORGANIZATION.to_owned()],
            tokens: vec![TokenConfig::user(
                DEFAULT_TOKEN,
                "admin",
                [DEFAULT_ORGANIZATION],
            )],
            rate_limit: Some(RateLimit::DOCUMENTED),
            latency: Duration::ZERO,
            faults: Faults::default(),
            max_upload: MAX_UPLOAD,
            organization_tokens_may_manage: false,
            enforce_before_upload: false,
            download_redirect: false,
            seed: None,
        }
    }
}

/// One request the emulator answered, in arrival order of the answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: Method,
    /// The path without the query, e.g. `/api/v2/policies/pol-…/upload`.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The status answered; `0` for a request that was hung and never answered.
    pub status: u16,
    /// Whether the request carried an `Authorization` header (its value is never kept).
    pub had_authorization: bool,
}

impl RequestRecord {
    /// POST, PUT, PATCH or DELETE: a request that may change something.
    pub fn is_mutating(&self) -> bool {
        faults::is_mutating(&self.method)
    }
}

/// A cheap, cloneable handle on one emulator: serve it, and read or change its state directly.
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens stay out of Debug output.
        f.debug_struct("Emulator").finish_non_exhaustive()
    }
}

struct Shared {
    store: Mutex<store::Store>,
    tokens: Mutex<auth::Tokens>,
    limiter: Mutex<ratelimit::Limiter>,
    faults: Mutex<faults::FaultState>,
    latency: Mutex<Duration>,
    requests: Mutex<VecDeque<RequestRecord>>,
    max_upload: usize,
    organization_tokens_may_manage: AtomicBool,
    enforce_before_upload: bool,
    download_redirect: bool,
    /// Cancelled when a server of this emulator shuts down, so hung requests end and graceful
    /// shutdown is not wedged by them.
    release: Mutex<CancellationToken>,
}

/// Locks a mutex, recovering from poisoning: a panicking test must not wedge the others'
/// view of the emulator, and every critical section leaves the data consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Emulator {
    pub fn new(config: EmulatorConfig) -> Self {
        let seed = config.seed.unwrap_or_else(rand::random);
        let shared = Shared {
            store: Mutex::new(store::Store::new(config.organizations, seed)),
            tokens: Mutex::new(auth::Tokens::new(config.tokens)),
            limiter: Mutex::new(ratelimit::Limiter::new(config.rate_limit)),
            faults: Mutex::new(faults::FaultState::new(config.faults)),
            latency: Mutex::new(config.latency),
            requests: Mutex::new(VecDeque::new()),
            max_upload: config.max_upload,
            organization_tokens_may_manage: AtomicBool::new(config.organization_tokens_may_manage),
            enforce_before_upload: config.enforce_before_upload,
            download_redirect: config.download_redirect,
            release: Mutex::new(CancellationToken::new()),
        };
        Emulator {
            shared: Arc::new(shared),
        }
    }

    /// The whole service as an axum router (API under `/api/v2`).
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
    }

    /// The policies of an organization, in the order the list endpoint returns them.
    pub fn policies(&self, org: &str) -> Vec<StoredPolicy> {
        lock(&self.shared.store)
            .list(org)
            .into_iter()
            .cloned()
            .collect()
    }

    /// One policy by id.
    pub fn policy(&self, id: &str) -> Option<StoredPolicy> {
        lock(&self.shared.store).get(id).cloned()
    }

    /// Creates a policy directly (seeding, or drift made in the UI); `code: Some` also uploads.
    /// Bypasses validation and rights, but the organization is created if it does not exist.
    /// Returns the new id.
    pub fn insert_policy(&self, org: &str, name: &str, mode: Mode, code: Option<&[u8]>) -> String {
        lock(&self.shared.store).insert(org, name, mode, code)
    }

    /// Changes a policy's mode, as an edit in the UI would. Unknown ids are ignored.
    pub fn set_mode(&self, id: &str, mode: Mode) {
        lock(&self.shared.store).set_mode(id, mode);
    }

    /// Replaces a policy's code (and its `updated-at`), as an upload would. Unknown ids are ignored.
    pub fn set_code(&self, id: &str, code: &[u8]) {
        lock(&self.shared.store).upload(id, code);
    }

    /// Deletes a policy. Unknown ids are ignored.
    pub fn remove_policy(&self, id: &str) {
        lock(&self.shared.store).delete(id);
    }

    /// Adds an organization (no token gains access to it by this).
    pub fn add_organization(&self, org: &str) {
        lock(&self.shared.store).add_organization(org);
    }

    /// Adds (or replaces, by token value) a token.
    pub fn add_token(&self, token: TokenConfig) {
        lock(&self.shared.tokens).add(token);
    }

    /// Every request answered since the start or the last [`Emulator::clear_requests`], oldest
    /// first (at most [`REQUEST_LOG_LIMIT`]).
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.requests).iter().cloned().collect()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Replaces the fault configuration; counters and the RNG restart from `faults`.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults::FaultState::new(faults);
    }

    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.shared.latency) = latency;
    }

    /// Replaces the rate limit (`None`: unlimited); every bucket starts full again.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        *lock(&self.shared.limiter) = ratelimit::Limiter::new(limit);
    }

    pub fn set_organization_tokens_may_manage(&self, allowed: bool) {
        self.shared
            .organization_tokens_may_manage
            .store(allowed, Ordering::Relaxed);
    }

    /// Ends every request currently hung by a [`Faults::hang`] fault (they answer 503).
    pub fn release_hung(&self) {
        let mut release = lock(&self.shared.release);
        release.cancel();
        *release = CancellationToken::new();
    }

    fn record(&self, record: RequestRecord) {
        let mut log = lock(&self.shared.requests);
        if log.len() >= REQUEST_LOG_LIMIT {
            log.pop_front();
        }
        log.push_back(record);
    }
}

/// Serves `emulator` on an already bound listener until `shutdown` completes, then finishes
/// in-flight requests (hung ones are released) and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    emulator: Emulator,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = emulator.router();
    let on_shutdown = emulator.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            on_shutdown.release_hung();
        })
        .await
}

/// An emulator serving on a loopback port in a tokio task.
pub struct Running {
    pub addr: SocketAddr,
    pub emulator: Emulator,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// `http://127.0.0.1:PORT`, the origin to give a client (requests go to `…/api/v2/…`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, finishes in-flight requests, and waits for the server task.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "emulator server failed"),
            Err(e) => tracing::warn!(error = %e, "emulator server task failed"),
        }
    }
}

/// Binds `127.0.0.1:0` and serves an emulator built from `config` in a tokio task.
pub async fn spawn(config: EmulatorConfig) -> std::io::Result<Running> {
    spawn_on(
        tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?,
        config,
    )
}

/// Serves an emulator built from `config` on `listener` in a tokio task (a service that comes
/// up on an address a client already uses, say).
pub fn spawn_on(
    listener: tokio::net::TcpListener,
    config: EmulatorConfig,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let emulator = Emulator::new(config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, emulator.clone(), async move {
        // A dropped sender (the `Running` was dropped) also shuts the server down.
        let _ = rx.await;
    }));
    Ok(Running {
        addr,
        emulator,
        shutdown: tx,
        task,
    })
}

/// Serve an in-memory Policies API for trials and tests (`tfe-policy-sync emulator`).
#[derive(clap::Args, Debug, Clone)]
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// An organization that exists (repeatable).
    #[arg(long = "organization", value_name = "ORG", default_values_t = [DEFAULT_ORGANIZATION.to_owned()])]
    pub organizations: Vec<String>,

    /// A user token that owns every organization (repeatable; each is its own user for the rate limit).
    #[arg(long = "token", value_name = "TOKEN", default_values_t = [DEFAULT_TOKEN.to_owned()])]
    pub tokens: Vec<String>,

    /// A user token that may read every organization's policies but not manage them (repeatable).
    #[arg(long = "read-only-token", value_name = "TOKEN")]
    pub read_only_tokens: Vec<String>,

    /// A team token with the "Manage Policies" right on every organization (repeatable; each
    /// team is its own user for the rate limit).
    #[arg(long = "team-token", value_name = "TOKEN")]
    pub team_tokens: Vec<String>,

    /// An organization token of ORG, as `ORG=TOKEN` (repeatable). Per the seed it may read
    /// but not create, upload, update or delete, unless --organization-tokens-may-manage.
    ///
    /// (Checked by `run_cli` rather than by a clap value parser, whose error would echo the
    /// value and with it the token.)
    #[arg(long = "organization-token", value_name = "ORG=TOKEN")]
    pub organization_tokens: Vec<String>,

    /// Let organization tokens manage policies, as today's service does.
    #[arg(long)]
    pub organization_tokens_may_manage: bool,

    /// Requests per second per user; 0 disables the limit.
    #[arg(long, value_name = "N", default_value_t = RateLimit::DOCUMENTED.per_second)]
    pub rate_limit: u32,

    /// Bucket size (requests allowed at once); default: the rate limit.
    #[arg(long, value_name = "N")]
    pub burst: Option<u32>,

    /// Added to every API request, e.g. `20ms`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    pub latency: Duration,

    /// Probability (0..=1) of answering 503 before acting.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub fail_rate: f64,

    /// Probability (0..=1) of applying a mutating request, then answering 502 (a lost response).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub fail_after_rate: f64,

    /// Probability (0..=1) of never answering a request (until shutdown).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    pub hang_rate: f64,

    /// Restrict `--fail-rate` to mutating requests (POST, PUT, PATCH, DELETE).
    #[arg(long)]
    pub fail_mutating_only: bool,

    /// Seed for ids and fault decisions, for reproducible runs.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Answer download with a redirect to another host name of this server, like the real
    /// service's blob store.
    #[arg(long)]
    pub download_redirect: bool,

    /// Show `enforce` from creation, as the 2017 service did (today's shows it after upload).
    #[arg(long)]
    pub enforce_before_upload: bool,
}

/// `ORG=TOKEN` split in two; `None` unless both halves are there.
fn split_organization_token(s: &str) -> Option<(&str, &str)> {
    s.split_once('=')
        .filter(|(org, token)| !org.is_empty() && !token.is_empty())
}

fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a probability between 0 and 1"))
    }
}

impl EmulatorArgs {
    /// What clap cannot check without printing a token.
    pub fn check(&self) -> anyhow::Result<()> {
        if self
            .organization_tokens
            .iter()
            .any(|v| split_organization_token(v).is_none())
        {
            anyhow::bail!(
                "--organization-token takes ORG=TOKEN, e.g. --organization-token \
                 my-organization=org-token"
            );
        }
        Ok(())
    }

    /// The configuration these flags describe.
    pub fn config(&self) -> EmulatorConfig {
        let orgs = self.organizations.clone();
        let mut tokens: Vec<TokenConfig> = self
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| TokenConfig::user(t.clone(), format!("user-{}", i + 1), orgs.clone()))
            .collect();
        tokens.extend(self.read_only_tokens.iter().enumerate().map(|(i, t)| {
            TokenConfig::user(t.clone(), format!("reader-{}", i + 1), orgs.clone())
                .without_manage_policies()
        }));
        tokens.extend(
            self.team_tokens.iter().enumerate().map(|(i, t)| {
                TokenConfig::team(t.clone(), format!("team-{}", i + 1), orgs.clone())
            }),
        );
        // Malformed values were refused by `check`.
        tokens.extend(
            self.organization_tokens
                .iter()
                .filter_map(|v| split_organization_token(v))
                .map(|(org, t)| TokenConfig::organization(t, org)),
        );
        let rate_limit = (self.rate_limit > 0).then(|| RateLimit {
            per_second: self.rate_limit,
            burst: self.burst.unwrap_or(self.rate_limit).max(1),
        });
        let before_target = if self.fail_mutating_only {
            FaultTarget::Mutating
        } else {
            FaultTarget::All
        };
        let faults = Faults {
            before: Fault::rate(self.fail_rate).on(before_target),
            after: Fault::rate(self.fail_after_rate).on(FaultTarget::Mutating),
            hang: Fault::rate(self.hang_rate),
            seed: self.seed.unwrap_or_else(rand::random),
        };
        EmulatorConfig {
            organizations: orgs,
            tokens,
            rate_limit,
            latency: self.latency,
            faults,
            seed: self.seed,
            download_redirect: self.download_redirect,
            enforce_before_upload: self.enforce_before_upload,
            organization_tokens_may_manage: self.organization_tokens_may_manage,
            ..EmulatorConfig::default()
        }
    }
}

/// `tfe-policy-sync emulator`: binds `--listen`, prints `listening on http://HOST:PORT` as the
/// first line on stdout, and serves until SIGINT or SIGTERM.
pub async fn run_cli(args: EmulatorArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    args.check()?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let emulator = Emulator::new(args.config());
    let shutdown = shutdown_signal().context("cannot install the SIGINT/SIGTERM handlers")?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}").context("cannot write to stdout")?;
        out.flush().context("cannot write to stdout")?;
    }
    tracing::info!(%addr, organizations = ?args.organizations, "emulator serving");
    serve(listener, emulator, shutdown)
        .await
        .context("emulator server failed")?;
    tracing::info!("emulator stopped");
    Ok(())
}

/// Registers SIGINT and SIGTERM handlers now (before the "listening" line, so that a caller
/// who signals as soon as it reads that line never meets the default action), and returns a
/// future that completes on the first of them.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: EmulatorArgs,
    }

    fn config(args: &[&str]) -> EmulatorConfig {
        let argv = std::iter::once("emulator").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().args.config()
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = config(&[]);
        assert_eq!(c.organizations, [DEFAULT_ORGANIZATION]);
        assert_eq!(c.tokens.len(), 1);
        assert_eq!(c.tokens[0].token, DEFAULT_TOKEN);
        assert!(c.tokens[0].may_manage_policies);
        assert_eq!(c.rate_limit, Some(RateLimit::DOCUMENTED));
        assert_eq!(c.latency, Duration::ZERO);
        assert_eq!(c.max_upload, MAX_UPLOAD);
    }

    #[test]
    fn flags_map_to_the_configuration() {
        let c = config(&[
            "--organization",
            "a",
            "--organization",
            "b",
            "--token",
            "t1",
            "--token",
            "t2",
            "--read-only-token",
            "r",
            "--team-token",
            "tt",
            "--organization-token",
            "b=ot",
            "--rate-limit",
            "5",
            "--burst",
            "2",
            "--latency",
            "20ms",
            "--fail-rate",
            "0.5",
            "--fail-mutating-only",
            "--fail-after-rate",
            "0.25",
            "--seed",
            "9",
            "--hang-rate",
            "0.125",
            "--download-redirect",
            "--enforce-before-upload",
            "--organization-tokens-may-manage",
        ]);
        assert_eq!(c.organizations, ["a", "b"]);
        let users: Vec<_> = c
            .tokens
            .iter()
            .map(|t| {
                (
                    t.token.as_str(),
                    t.kind,
                    t.user.as_str(),
                    t.may_manage_policies,
                )
            })
            .collect();
        assert_eq!(
            users,
            [
                ("t1", TokenKind::User, "user-1", true),
                ("t2", TokenKind::User, "user-2", true),
                ("r", TokenKind::User, "reader-1", false),
                ("tt", TokenKind::Team, "team-1", true),
                ("ot", TokenKind::Organization, "org:b", true),
            ]
        );
        assert!(c.tokens[..4].iter().all(|t| t.organizations == ["a", "b"]));
        assert_eq!(c.tokens[4].organizations, ["b"]);
        assert_eq!(c.faults.hang, Fault::rate(0.125));
        assert!(c.download_redirect && c.enforce_before_upload);
        assert!(c.organization_tokens_may_manage);
        assert!(!config(&[]).organization_tokens_may_manage);
        assert_eq!(
            c.rate_limit,
            Some(RateLimit {
                per_second: 5,
                burst: 2
            })
        );
        assert_eq!(c.latency, Duration::from_millis(20));
        assert_eq!(c.faults.before, Fault::rate(0.5).mutating());
        assert_eq!(c.faults.after, Fault::rate(0.25).mutating());
        assert_eq!((c.faults.seed, c.seed), (9, Some(9)));
        assert_eq!(config(&["--rate-limit", "0"]).rate_limit, None);
    }
}
