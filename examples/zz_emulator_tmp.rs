//! TEMPORARY (emulator helper): runs `run_cli` until the lead wires `tfe-policy-sync emulator`.
use clap::Parser;
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: tfe_policy_sync::emulator::EmulatorArgs,
}
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tfe_policy_sync::emulator::run_cli(Cli::parse().args).await
}
