//! TEMPORARY (watch helper): `watch` wired like the lead will, until src/cli.rs has it. Deleted
//! before the report.
use clap::Parser;
use tfe_policy_sync::cli::CommonArgs;
use tfe_policy_sync::watch::WatchArgs;

#[derive(Parser)]
struct Cli {
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}
#[derive(clap::Subcommand)]
enum Cmd {
    Watch {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        watch: WatchArgs,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let Cmd::Watch { common, watch } = cli.cmd;
    tfe_policy_sync::logging::init(cli.verbose, watch.log_format);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    match rt.block_on(tfe_policy_sync::watch::run(common, watch)) {
        Ok(c) => c,
        Err(e) => { eprintln!("error: {e:#}"); std::process::ExitCode::FAILURE }
    }
}
