//! The main job, end to end, in one command: `cargo run --example quickstart`.
//!
//! Starts the Policies API emulator in-process, plans and syncs the example policy directory
//! (`policies/`) into an empty organization, then edits one policy locally and one in the
//! "UI" (straight in the emulator), and shows the second plan that heals both.
//!
//! The policy directory is copied to a temporary directory first, so the repository is never
//! modified.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use tfe_policy_sync::client::{Client, ClientOptions};
use tfe_policy_sync::config::{self, ConnectionArgs};
use tfe_policy_sync::emulator::{self, EmulatorConfig};
use tfe_policy_sync::manifest;
use tfe_policy_sync::model::Mode;
use tfe_policy_sync::reconcile::{Reconciler, Settings};
use tfe_policy_sync::report::{Format, Report};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let work = tempfile::tempdir()?;
    let dir = work.path().join("policies");
    copy_dir(&source, &dir).context("copying policies/")?;

    let server = emulator::spawn(EmulatorConfig::default()).await?;
    banner(&format!(
        "Emulator listening on {} (organization {:?})",
        server.base_url(),
        emulator::DEFAULT_ORGANIZATION
    ));

    let args = ConnectionArgs {
        address: Some(server.base_url()),
        organization: None,
        token_file: None,
        ca_cert: None,
    };
    let token = |key: &str| (key == "TFE_TOKEN").then(|| emulator::DEFAULT_TOKEN.to_owned());

    banner("1. plan: policies/ against an empty organization");
    let loaded = manifest::load(&dir)?;
    let connection = config::resolve(&args, loaded.desired.organization.as_deref(), &token, None)?;
    let client = Client::new(&connection, ClientOptions::default())?;
    let mut reconciler = Reconciler::new(client, Settings::default(), CancellationToken::new());
    let plan = reconciler.plan_once(&loaded.desired).await?;
    print_report(Report::plan(&plan))?;

    banner("2. sync");
    let outcome = reconciler.apply(&plan).await;
    print_report(Report::plan(&plan).with_statuses(&outcome.statuses))?;
    anyhow::ensure!(outcome.ok(), "the sync failed");

    banner("3. plan again: converged");
    let again = reconciler.plan_once(&loaded.desired).await?;
    print_report(Report::plan(&again))?;

    banner("4. edit one policy in git, and one in the UI");
    let edited = "network/restrict-regions.sentinel";
    let path = dir.join(edited);
    let code =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let code = code.replacen("\"us-east-1\"]", "\"us-east-1\", \"eu-north-1\"]", 1);
    std::fs::write(&path, code)?;
    println!("edited {edited}: allow eu-north-1 as well");
    let ui_edit = server
        .emulator
        .policies(emulator::DEFAULT_ORGANIZATION)
        .into_iter()
        .find(|p| p.name == "require-tags")
        .context("require-tags is not on the service")?;
    server.emulator.set_mode(&ui_edit.id, Mode::Advisory);
    println!("someone set {:?} to advisory in the UI", ui_edit.name);

    banner("5. plan: the drift, shown as a diff");
    let loaded = manifest::load(&dir)?;
    let drift = reconciler.plan_once(&loaded.desired).await?;
    print_report(Report::plan(&drift))?;

    banner("6. the same plan as JSON (plan --output json)");
    print_format(Report::plan(&drift), Format::Json)?;

    let outcome = reconciler.apply(&drift).await;
    anyhow::ensure!(outcome.ok(), "the second sync failed");
    let last = reconciler.plan_once(&loaded.desired).await?;
    banner("7. sync healed it");
    print_report(Report::plan(&last))?;

    let requests = server.emulator.requests();
    let mutations = requests.iter().filter(|r| r.is_mutating()).count();
    println!(
        "\nThe emulator answered {} requests, {} of them changes.",
        requests.len(),
        mutations
    );
    server.stop().await;
    Ok(())
}

/// A section title, in bold on a terminal (and plain when piped or with `NO_COLOR`).
fn banner(title: &str) {
    let bold = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    if bold {
        println!("\n\x1b[1m== {title}\x1b[0m\n");
    } else {
        println!("\n== {title}\n");
    }
}

fn print_report(report: Report<'_>) -> anyhow::Result<()> {
    print_format(report, Format::Human)
}

fn print_format(report: Report<'_>, format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    report.render(format, &mut out)?;
    out.flush()?;
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
