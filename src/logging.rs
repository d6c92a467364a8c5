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

/// Installs the global subscriber. `RUST_LOG`, when set (and not empty), wins over `-v`.
pub fn init(verbosity: u8, format: LogFormat, daemon: bool) {
    // An empty RUST_LOG is unset, not a filter that shows nothing but errors. A malformed one
    // falls back to the default and says so once the subscriber is up.
    let default = default_directive(verbosity, daemon);
    let mut rejected = None;
    let filter = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| {
            EnvFilter::try_new(&v)
                .map_err(|e| rejected = Some((v, e)))
                .ok()
        })
        .unwrap_or_else(|| EnvFilter::new(default));
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
    if let Some((value, error)) = rejected {
        tracing::warn!(
            "ignoring RUST_LOG={value:?}: {error}; logging at the default level ({default}) \
             instead (RUST_LOG takes directives such as `info` or `tfe_policy_sync=debug`)"
        );
    }
}

fn use_color_on_stderr() -> bool {
    use std::io::IsTerminal;
    !no_color() && std::io::stderr().is_terminal()
}

/// Whether `NO_COLOR` asks for no color: set and not empty, as <https://no-color.org> says.
pub fn no_color() -> bool {
    no_color_in(std::env::var_os("NO_COLOR"))
}

fn no_color_in(value: Option<std::ffi::OsString>) -> bool {
    value.is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Audit: an empty NO_COLOR turned color off; no-color.org says only a non-empty one does.
    #[test]
    fn an_empty_no_color_is_unset() {
        assert!(!no_color_in(None));
        assert!(!no_color_in(Some("".into())));
        assert!(no_color_in(Some("1".into())));
    }
}
