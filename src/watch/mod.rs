//! `watch`: the daemon that keeps an organization converged. It reconciles at start, on every
//! debounced change of the policy directory and every `--interval`, heals (or reports) drift,
//! and serves `/healthz`, `/readyz` and `/metrics`.
//!
//! | part | owns |
//! |---|---|
//! | [`schedule`] | when to reconcile: debounce, timer, backoff, coalescing, shutdown bound |
//! | [`fs`] | native file events for the directory, bridged into tokio |
//! | [`drift`] | which planned changes are drift (pure) |
//! | [`cycle`] | what one reconcile does: snapshot, fetch, plan, drift, apply, record |
//! | [`metrics`], [`health`] | the Prometheus metrics and the HTTP endpoints |
//! | `daemon` | [`run`]: listen, preflight, file watch, loop, two-stage shutdown |
//!
//! The reconcile itself is the one-shot path's [`crate::reconcile`]; nothing here duplicates it.

pub mod cycle;
mod daemon;
pub mod drift;
pub mod fs;
pub mod health;
pub mod metrics;
pub mod schedule;

use std::time::Duration;

pub use daemon::{DaemonConfig, DaemonError, run, run_daemon};

use crate::logging::LogFormat;

/// What `watch` does with drift (changes made on the service, not in the directory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DriftMode {
    /// Revert it: every reconcile converges, exactly like `sync`.
    #[default]
    Heal,
    /// Leave it and report it (log and metrics); only changes made in the directory are applied.
    Warn,
}

impl DriftMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftMode::Heal => "heal",
            DriftMode::Warn => "warn",
        }
    }
}

/// The flags `watch` adds to those of `plan` and `sync`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Reconcile at least this often, e.g. 30s, 5m, 1h (a little jitter is added).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_positive_duration)]
    pub interval: Duration,

    /// Reconcile once the directory has had no file event for this long.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub debounce: Duration,

    /// Serve /healthz, /readyz and /metrics on this address, e.g. 0.0.0.0:9090.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// What to do with changes made on the service rather than in the directory.
    #[arg(long, value_enum, default_value_t = DriftMode::Heal)]
    pub drift: DriftMode,

    /// Log as readable text or as one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Download and compare every policy's code at least this often; other reconciles
    /// download only policies whose upload time changed.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_positive_duration)]
    pub verify_interval: Duration,

    /// Plan and log what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 500ms, 30s, 5m, 1h)"))
}

/// A humantime duration that is not zero (`--interval`, `--request-timeout`, ...).
pub(crate) fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("must be positive (e.g. 30s, 5m, 1h)".to_owned()),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        watch: WatchArgs,
    }

    #[test]
    fn defaults_match_the_contract() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.watch.interval, Duration::from_secs(300));
        assert_eq!(cli.watch.debounce, Duration::from_millis(500));
        assert_eq!(cli.watch.drift, DriftMode::Heal);
        assert_eq!(cli.watch.log_format, LogFormat::Text);
        assert!(cli.watch.listen.is_none());
    }

    #[test]
    fn the_interval_must_be_a_positive_duration() {
        for bad in ["0s", "0", "five minutes", "-5m"] {
            let err = Cli::try_parse_from(["x", "--interval", bad]).err();
            assert!(err.is_some(), "{bad} was accepted");
        }
        let ok = Cli::try_parse_from(["x", "--interval", "90s", "--drift", "warn"]).unwrap();
        assert_eq!(ok.watch.interval, Duration::from_secs(90));
        assert_eq!(ok.watch.drift, DriftMode::Warn);
    }
}
