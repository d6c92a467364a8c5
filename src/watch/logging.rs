//! Log setup for every command: tracing to stderr, text for people or JSON for machines.
//!
//! The level comes from `RUST_LOG` when it is set, else from the count of `-v`. By default only
//! warnings are shown, except the daemon's own report lines (`tfe_policy_sync::watch` at info: one
//! line per reconcile and per applied change), which are to `watch` what the printed report is to
//! `sync`. The token is never a field of any event, so no level can print it.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line, fields at the top level.
    Json,
}

/// The filter for `verbosity` (`-v` count) when `RUST_LOG` is not set.
pub fn default_directives(verbosity: u8) -> &'static str {
    match verbosity {
        0 => "warn,tfe_policy_sync::watch=info",
        1 => "info",
        2 => "info,tfe_policy_sync=debug",
        _ => "debug,tfe_policy_sync=trace",
    }
}

/// Installs the global subscriber. Calling it twice is harmless (the first one stays), which
/// keeps tests and examples that run several commands in one process simple.
pub fn init_logging(format: LogFormat, verbosity: u8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(default_directives(verbosity)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
