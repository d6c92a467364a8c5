//! The daemon's process side: bind `--listen`, check the configuration, start the file watch,
//! the health server and the loop, and shut down in two stages on SIGTERM/SIGINT.
//!
//! [`run`] is the `watch` command; [`run_daemon`] is the same daemon without signal handling,
//! for in-process use (the save-to-service benchmark, tests).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::cycle::{CycleSettings, WatchCycle};
use super::fs::{self, DirWatcher};
use super::health::{self, Status};
use super::metrics::Metrics;
use super::schedule::{LoopConfig, LoopExit, run_loop};
use super::{DriftMode, WatchArgs};
use crate::cli::CommonArgs;
use crate::config::{self, ConfigError, Connection, ConnectionArgs};
use crate::manifest;

/// Everything the daemon needs, flattened from the command line.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub dir: PathBuf,
    pub connection: ConnectionArgs,
    pub no_prune: bool,
    pub allow_empty: bool,
    pub concurrency: usize,
    pub dry_run: bool,
    pub drift: DriftMode,
    pub interval: Duration,
    pub debounce: Duration,
    pub verify_interval: Duration,
    /// `--request-timeout`: the whole-request deadline per attempt.
    pub request_timeout: Duration,
}

impl DaemonConfig {
    pub fn new(common: &CommonArgs, args: &WatchArgs) -> Self {
        DaemonConfig {
            dir: common.dir.clone(),
            connection: common.connection.clone(),
            no_prune: common.no_prune,
            allow_empty: common.allow_empty,
            concurrency: usize::from(common.concurrency),
            dry_run: args.dry_run,
            drift: args.drift,
            interval: args.interval,
            debounce: args.debounce,
            verify_interval: args.verify_interval,
            request_timeout: common.request_timeout,
        }
    }
}

/// Why the daemon could not start or had to stop. Each is an exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot serve /healthz, /readyz and /metrics on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A problem the service reported before the organization could be read once (a rejected
    /// token, an unknown organization), or a client that cannot be built.
    #[error("{0}")]
    Startup(String),
}

/// `tfe-policy-sync watch`: runs until SIGTERM or SIGINT, then exits 0. Call it inside a tokio
/// runtime, after logging is set up.
pub async fn run(common: CommonArgs, args: WatchArgs) -> anyhow::Result<ExitCode> {
    let config = DaemonConfig::new(&common, &args);
    let listener = match &args.listen {
        Some(addr) => match TcpListener::bind(addr.as_str()).await {
            Ok(l) => Some(l),
            Err(source) => {
                let e = DaemonError::Listen {
                    addr: addr.clone(),
                    source,
                };
                tracing::error!("{e}");
                return Ok(ExitCode::FAILURE);
            }
        },
        None => None,
    };
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(shutdown_on_signal(shutdown.clone()));
    let result = run_daemon(config, listener, shutdown).await;
    signals.abort();
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The first SIGTERM or SIGINT cancels `shutdown`; a second one exits at once.
async fn shutdown_on_signal(shutdown: CancellationToken) {
    crate::cli::wait_for_signal().await;
    tracing::info!(
        "shutting down: no new request starts, requests in flight may finish (signal again to \
         exit at once)"
    );
    shutdown.cancel();
    crate::cli::wait_for_signal().await;
    tracing::warn!("second signal: exiting at once");
    std::process::exit(130);
}

/// Runs the daemon until `shutdown` is cancelled. `listener`, when given, serves `/healthz`,
/// `/readyz` and `/metrics` for as long as the daemon runs.
pub async fn run_daemon(
    config: DaemonConfig,
    listener: Option<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    let resolved = preflight(&config).await?;

    let status = Arc::new(Status {
        readiness: Default::default(),
        metrics: Arc::new(Metrics::new()),
    });
    let server_stop = CancellationToken::new();
    let server = match listener {
        Some(listener) => {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("serving /healthz, /readyz and /metrics on http://{addr}");
            }
            let stop = server_stop.clone().cancelled_owned();
            Some(tokio::spawn(health::serve(listener, status.clone(), stop)))
        }
        None => None,
    };

    let (events_tx, events) = mpsc::channel(fs::CHANNEL_CAPACITY);
    let watcher = DirWatcher::new(&config.dir, events_tx);
    let loop_config = LoopConfig::new(config.interval, config.debounce);
    tracing::info!(
        dir = %config.dir.display(),
        interval = %humantime::format_duration(config.interval),
        drift = config.drift.as_str(),
        dry_run = config.dry_run,
        "watching {} (reconcile on change and every {})",
        config.dir.display(),
        humantime::format_duration(config.interval)
    );
    let mut cycle = WatchCycle::new(
        CycleSettings {
            dir: config.dir.clone(),
            connection: config.connection.clone(),
            no_prune: config.no_prune,
            allow_empty: config.allow_empty,
            concurrency: config.concurrency,
            dry_run: config.dry_run,
            drift: config.drift,
            verify_interval: config.verify_interval,
            request_timeout: config.request_timeout,
        },
        status,
        shutdown.clone(),
        Some(watcher),
    );
    if let Some((manifest_org, connection)) = resolved {
        cycle = cycle.with_connection(manifest_org, connection);
    }
    let exit = run_loop(&mut cycle, events, &loop_config, &shutdown).await;
    // Stop the watch and any client before the health server, which goes last.
    drop(cycle);
    server_stop.cancel();
    if let Some(server) = server {
        // Scrapers keep connections open; do not let them hold the exit up.
        let _ = tokio::time::timeout(Duration::from_secs(1), server).await;
    }
    match exit {
        LoopExit::Shutdown => {
            tracing::info!("stopped");
            Ok(())
        }
        LoopExit::Fatal(message) => Err(DaemonError::Startup(message)),
    }
}

/// Configuration problems that need no request fail at once: a missing token, an insecure or
/// malformed address. A missing organization is only fatal when the directory could be read
/// and names none either; an unreadable directory is the first cycle's business. Returns the
/// connection when it could be resolved, with the manifest organization it was resolved for.
async fn preflight(
    config: &DaemonConfig,
) -> Result<Option<(Option<String>, Connection)>, DaemonError> {
    let dir = config.dir.clone();
    let loaded = tokio::task::spawn_blocking(move || manifest::load(&dir).ok())
        .await
        .ok()
        .flatten();
    let manifest_org = loaded.as_ref().and_then(|l| l.desired.organization.clone());
    match config::resolve_from_process(&config.connection, manifest_org.as_deref()) {
        Ok(connection) => Ok(Some((manifest_org, connection))),
        Err(ConfigError::NoOrganization) if loaded.is_none() => Ok(None),
        Err(e) => Err(e.into()),
    }
}
