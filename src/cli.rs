//! Command-line flags (CONTRACT.md) and the commands behind them: `validate`, `plan`, `sync`,
//! `watch` and `emulator`. Each command returns an exit status; `main` only prints the error
//! chain once and exits.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::client::{Client, ClientOptions, DEFAULT_MAX_RETRIES};
use crate::config::{self, ConnectionArgs};
use crate::logging::{self, LogFormat};
use crate::manifest::{self, Loaded};
use crate::reconcile::{Reconciler, Settings};
use crate::report::{Format, Report};
use crate::{emulator, watch};

/// `eprintln!` that cannot panic: when stderr is gone (a closed log pipe), the message is lost
/// but the command still ends with its own exit status, not a panic's 101.
macro_rules! to_stderr {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

#[derive(Debug, Parser)]
#[command(
    name = "tfe-policy-sync",
    version,
    about = "Keep the Sentinel policies of a Terraform Enterprise / HCP Terraform organization \
             equal to a policy directory in git."
)]
pub struct Cli {
    /// More log detail per -v: info, debug, trace. By default only warnings, except that
    /// `watch` logs its reconcile and change lines at info. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the policy directory; no network.
    Validate(ValidateArgs),
    /// Show what `sync` would change; never mutates.
    Plan(PlanArgs),
    /// Apply the plan once, then exit.
    Sync(SyncArgs),
    /// Reconcile at start, on file change and every --interval, until SIGINT/SIGTERM.
    Watch(WatchCommand),
    /// Serve an in-memory Policies API for trials and tests.
    Emulator(emulator::EmulatorArgs),
}

#[derive(Debug, Args)]
pub struct DirArgs {
    /// The policy directory holding policies.yaml.
    #[arg(short, long, env = "TFE_POLICY_DIR", default_value = "policies")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub dir: DirArgs,
}

/// Options shared by `plan`, `sync` and `watch`.
#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// The policy directory holding policies.yaml.
    #[arg(short, long, env = "TFE_POLICY_DIR", default_value = "policies")]
    pub dir: PathBuf,

    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub output: Format,

    /// Never delete remote policies.
    #[arg(long)]
    pub no_prune: bool,

    /// Permit a plan that would delete every remote policy.
    #[arg(long)]
    pub allow_empty: bool,

    /// Requests in flight at most (1 to 64; the service's rate limit, not this, sets the pace
    /// of a long run).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// Whole-request deadline (connect, send, read the answer) per attempt. Hidden: the default
    /// suits every service; tests shorten it to prove a hung service cannot hang the tool.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = watch::parse_positive_duration, hide = true)]
    pub request_timeout: Duration,

    /// Retries of one request after a 5xx, a timeout or a transport error (`plan` and `sync`;
    /// a `watch` cycle retries twice and leaves longer outages to its own backoff). Hidden
    /// for the same reason as --request-timeout.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_RETRIES, hide = true)]
    pub max_retries: u32,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Exit 0 when there are no changes, 2 when there are, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Plan and report, change nothing (the same as `plan`).
    #[arg(long)]
    pub dry_run: bool,

    /// With --dry-run, as `plan --detailed-exitcode`: exit 0 when there are no changes, 2 when
    /// there are, 1 on error.
    #[arg(long, requires = "dry_run")]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Args)]
pub struct WatchCommand {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub watch: watch::WatchArgs,
}

/// Parses the command line, runs the command and turns its outcome into an exit status.
pub fn main() -> ExitCode {
    let parsed = without_empty_env(Cli::command())
        .try_get_matches()
        .and_then(|matches| Ok((Cli::from_arg_matches(&matches)?, matches)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            // clap exits 2 on a usage error, but 2 is what `plan --detailed-exitcode` says for
            // "changes": a typo in a CI script must read as an error.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS // --help, --version
            };
        }
    };
    let (log_format, daemon) = match &cli.command {
        Command::Watch(w) => (w.watch.log_format, true),
        _ => (LogFormat::Text, false),
    };
    logging::init(cli.verbose, log_format, daemon);
    if let Some(("watch", watch)) = matches.subcommand()
        && watch.value_source("output") == Some(ValueSource::CommandLine)
    {
        // Accepted, as CONTRACT.md lists it for every command (one set of flags serves plan,
        // sync and watch), but the daemon has no report to format: say so rather than ignore.
        tracing::warn!(
            "--output has no effect on watch, which reports through its log; use \
             --log-format json for machine-readable lines"
        );
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            to_stderr!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cmd` without the environment fallback of every argument whose variable is set to the
/// empty string: an empty variable (a CI secret that is not defined, `export TFE_POLICY_DIR=`)
/// is unset, not an empty value that fails (`--dir`) or wins over a better source
/// (TFE_ORGANIZATION over the manifest's `organization:`).
fn without_empty_env(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| {
        let empty = arg
            .get_env()
            .is_some_and(|name| std::env::var_os(name).is_some_and(|v| v.is_empty()));
        if empty { arg.env(None) } else { arg }
    })
    .mut_subcommands(without_empty_env)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate(&args.dir.dir),
        Command::Plan(args) => runtime()?.block_on(plan(args.common, args.detailed_exitcode)),
        Command::Sync(args) if args.dry_run => {
            runtime()?.block_on(plan(args.common, args.detailed_exitcode))
        }
        Command::Sync(args) => runtime()?.block_on(sync(args.common)),
        Command::Watch(args) => {
            tokio::runtime::Runtime::new()?.block_on(watch::run(args.common, args.watch))
        }
        Command::Emulator(args) => tokio::runtime::Runtime::new()?
            .block_on(emulator::run_cli(args))
            .map(|()| ExitCode::SUCCESS),
    }
}

/// One-shot commands are I/O bound: one thread is plenty and keeps CPU and memory low.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")
}

/// Loads the directory, printing warnings; on failure prints every diagnostic.
pub fn load_dir(dir: &Path) -> Option<Loaded> {
    match manifest::load(dir) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                to_stderr!("warning: {warning}");
            }
            Some(loaded)
        }
        Err(e) => {
            to_stderr!(
                "error: the policy directory {} is invalid\n\n{e}",
                dir.display()
            );
            None
        }
    }
}

fn validate(dir: &Path) -> anyhow::Result<ExitCode> {
    match load_dir(dir) {
        Some(loaded) => {
            // Not `println!`, which panics when the reader has gone (`validate | head -0`).
            writeln!(
                std::io::stdout().lock(),
                "{}: valid, {} {}",
                dir.display(),
                loaded.desired.policies.len(),
                if loaded.desired.policies.len() == 1 {
                    "policy"
                } else {
                    "policies"
                },
            )
            .context("cannot write to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::FAILURE),
    }
}

/// Everything `plan` and `sync` share: a valid directory, a connection and a reconciler.
struct Session {
    loaded: Loaded,
    reconciler: Reconciler,
    cancel: CancellationToken,
}

fn session(common: &CommonArgs) -> anyhow::Result<Option<Session>> {
    let Some(loaded) = load_dir(&common.dir) else {
        return Ok(None);
    };
    let connection =
        config::resolve_from_process(&common.connection, loaded.desired.organization.as_deref())?;
    let cancel = CancellationToken::new();
    let client = Client::new(
        &connection,
        ClientOptions {
            concurrency: usize::from(common.concurrency),
            request_timeout: common.request_timeout,
            max_retries: common.max_retries,
            cancel: cancel.clone(),
            ..ClientOptions::default()
        },
    )?;
    let settings = Settings {
        no_prune: common.no_prune,
        allow_empty: common.allow_empty,
        concurrency: usize::from(common.concurrency),
        cache_code: false,
    };
    let reconciler = Reconciler::new(client, settings, cancel.clone());
    Ok(Some(Session {
        loaded,
        reconciler,
        cancel,
    }))
}

fn stdout_color(format: Format) -> bool {
    format == Format::Human && !logging::no_color() && std::io::stdout().is_terminal()
}

async fn plan(common: CommonArgs, detailed_exitcode: bool) -> anyhow::Result<ExitCode> {
    let Some(mut s) = session(&common)? else {
        return Ok(ExitCode::FAILURE);
    };
    let _signals = cancel_on_signal(s.cancel.clone());
    let Some(plan) = within_grace(&s.cancel, s.reconciler.plan_once(&s.loaded.desired)).await
    else {
        return Ok(abandoned(""));
    };
    let plan = plan?;
    let mut out = std::io::stdout().lock();
    Report::plan(&plan)
        .with_color(stdout_color(common.output))
        .render(common.output, &mut out)?;
    out.flush()?;
    Ok(if detailed_exitcode && !plan.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

async fn sync(common: CommonArgs) -> anyhow::Result<ExitCode> {
    let Some(mut s) = session(&common)? else {
        return Ok(ExitCode::FAILURE);
    };
    let _signals = cancel_on_signal(s.cancel.clone());
    let Some(plan) = within_grace(&s.cancel, s.reconciler.plan_once(&s.loaded.desired)).await
    else {
        return Ok(abandoned(SYNC_AGAIN));
    };
    let plan = plan?;
    let Some(outcome) = within_grace(&s.cancel, s.reconciler.apply(&plan)).await else {
        return Ok(abandoned(SYNC_AGAIN));
    };
    let mut out = std::io::stdout().lock();
    Report::plan(&plan)
        .with_statuses(&outcome.statuses)
        .with_color(stdout_color(common.output))
        .render(common.output, &mut out)?;
    out.flush()?;
    if s.cancel.is_cancelled() {
        to_stderr!("error: interrupted{SYNC_AGAIN}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(if outcome.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// How long an interrupted command lets the requests already in flight finish. A hung request
/// would otherwise hold it until the request timeout; abandoning one is safe, since the next
/// run repairs whatever it left half done, as after a lost response.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// What an interrupted sync tells the user to do.
const SYNC_AGAIN: &str = "; run sync again to finish what was not done";

/// Runs `work` to its end, unless `cancel` fires and `work` then takes longer than
/// [`INTERRUPT_GRACE`] to wind down: `None`.
async fn within_grace<T>(
    cancel: &CancellationToken,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => return Some(done),
        () = cancel.cancelled() => {}
    }
    tokio::time::timeout(INTERRUPT_GRACE, work).await.ok()
}

/// The exit of a command whose requests outlived [`INTERRUPT_GRACE`] after an interruption.
fn abandoned(advice: &str) -> ExitCode {
    to_stderr!(
        "error: interrupted; requests still in flight after {} were abandoned{advice}",
        humantime::format_duration(INTERRUPT_GRACE)
    );
    ExitCode::FAILURE
}

/// The first SIGINT or SIGTERM cancels: no new request starts and the command winds down. A
/// second one exits at once.
pub fn cancel_on_signal(cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        wait_for_signal().await;
        to_stderr!("interrupted: starting no new requests (press Ctrl-C again to exit at once)");
        cancel.cancel();
        wait_for_signal().await;
        std::process::exit(130);
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let terminate = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
