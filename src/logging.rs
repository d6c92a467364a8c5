//! Logging setup shared by every command: tracing to stderr, `-v` for more detail, `RUST_LOG`
//! overriding both, and JSON lines for machines (`--log-format json`).

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The default filter for a number of `-v` flags: warnings, then info, debug, trace.
///
/// A daemon's reconcile and change lines are its report (what `sync` prints on stdout), so
/// `watch` shows them without `-v`; everything else stays at warnings.
pub fn default_directive(verbosity: u8, daemon: bool) -> &'static str {
    match verbosity {
        0 if daemon => "warn,tfe_policy_sync::watch=info",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `-v`.
pub fn init(verbosity: u8, format: LogFormat, daemon: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_directive(verbosity, daemon)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(use_color_on_stderr())
        // On a failed write the subscriber would report it with `eprintln!`, which panics when
        // stderr itself is what failed (a closed log pipe): lose the line, keep the process.
        .log_internal_errors(false);
    // A second init (tests that run commands in-process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

fn use_color_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}
