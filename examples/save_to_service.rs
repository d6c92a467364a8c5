//! Benchmark: how long from saving a policy file to the service holding the new code, with the
//! `watch` daemon running. `cargo run --release --example save_to_service`
//!
//! Starts the emulator in-process (loopback, its default 30 requests/second limit), writes a
//! policy directory to a temp dir, runs the daemon in-process (`watch::run_daemon`, the same code
//! as `tfe-policy-sync watch`), waits for the first reconcile to converge, then saves one
//! policy file at a time and measures until the emulator holds the new bytes. Each scenario
//! prints one row: the latencies, and the median minus `--debounce` (the daemon's own cost:
//! the file event, reading the directory, the list pages, the upload).
//!
//! It measures and asserts nothing: timings belong in a benchmark, not in a test that flakes
//! on a busy machine.

use std::path::Path;
use std::time::{Duration, Instant};

use tfe_policy_sync::config::ConnectionArgs;
use tfe_policy_sync::emulator::{self, DEFAULT_ORGANIZATION, DEFAULT_TOKEN, EmulatorConfig};
use tfe_policy_sync::watch::{self, DaemonConfig, DriftMode};
use tokio_util::sync::CancellationToken;

/// How a file is saved.
#[derive(Clone, Copy)]
enum Save {
    /// Truncate and write in place.
    InPlace,
    /// Write a temp file and rename it over the original, as most editors do.
    Atomic,
}

struct Scenario {
    policies: usize,
    debounce: Duration,
    save: Save,
    saves: usize,
}

struct Row {
    name: String,
    policies: usize,
    debounce: Duration,
    latencies: Vec<Duration>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Quiet unless RUST_LOG asks (e.g. RUST_LOG=tfe_policy_sync::watch=info).
    tfe_policy_sync::logging::init(0, tfe_policy_sync::logging::LogFormat::Text, false);
    let scenarios = [
        Scenario {
            policies: 10,
            debounce: Duration::ZERO,
            save: Save::InPlace,
            saves: 10,
        },
        Scenario {
            policies: 10,
            debounce: Duration::from_millis(100),
            save: Save::Atomic,
            saves: 10,
        },
        Scenario {
            policies: 10,
            debounce: Duration::from_millis(500),
            save: Save::Atomic,
            saves: 10,
        },
        Scenario {
            policies: 250,
            debounce: Duration::from_millis(500),
            save: Save::Atomic,
            saves: 10,
        },
    ];
    let mut rows = Vec::new();
    for scenario in &scenarios {
        rows.push(run(scenario).await?);
    }
    print_table(&rows);
    Ok(())
}

async fn run(scenario: &Scenario) -> anyhow::Result<Row> {
    let server = emulator::spawn(EmulatorConfig::default()).await?;
    let work = tempfile::tempdir()?;
    let dir = work.path().join("policies");
    std::fs::create_dir(&dir)?;
    let names: Vec<String> = (0..scenario.policies)
        .map(|i| format!("policy-{i:04}"))
        .collect();
    let mut manifest = String::from("policies:\n");
    for name in &names {
        manifest.push_str(&format!("  - name: {name}\n    mode: advisory\n"));
        std::fs::write(dir.join(format!("{name}.sentinel")), code(name, 0))?;
    }
    std::fs::write(dir.join("policies.yaml"), manifest)?;
    let token_file = work.path().join("token");
    std::fs::write(&token_file, DEFAULT_TOKEN)?;
    restrict(&token_file)?;

    let config = DaemonConfig {
        dir: dir.clone(),
        connection: ConnectionArgs {
            address: Some(server.base_url()),
            organization: Some(DEFAULT_ORGANIZATION.to_owned()),
            token_file: Some(token_file),
            ca_cert: None,
        },
        no_prune: false,
        allow_empty: false,
        concurrency: 8,
        dry_run: false,
        drift: DriftMode::Heal,
        // The timer must not interfere: only file events trigger reconciles here.
        interval: Duration::from_secs(3600),
        debounce: scenario.debounce,
        verify_interval: Duration::from_secs(3600),
        request_timeout: tfe_policy_sync::client::ClientOptions::default().request_timeout,
    };
    let shutdown = CancellationToken::new();
    let emu = server.emulator.clone();
    let target = names[0].clone();

    let measure = async {
        let result = async {
            wait_for(|| {
                let held = emu.policies(DEFAULT_ORGANIZATION);
                held.len() == scenario.policies && held.iter().all(|p| p.code.is_some())
            })
            .await?;
            let mut latencies = Vec::new();
            // Round 0 is a warm-up, not measured: the first reconcile after a cold start reads
            // the code of every policy it created (its cache starts empty), which under the
            // 30 requests/second limit takes seconds for hundreds of policies.
            for round in 0..=scenario.saves {
                let new = code(&target, round + 1);
                let file = dir.join(format!("{target}.sentinel"));
                let started = Instant::now();
                save(&file, &new, scenario.save)?;
                wait_for(|| {
                    emu.policies(DEFAULT_ORGANIZATION)
                        .iter()
                        .any(|p| p.name == target && p.code.as_deref() == Some(new.as_bytes()))
                })
                .await?;
                if round > 0 {
                    latencies.push(started.elapsed());
                }
                // Let the reconcile that delivered it finish before the next save.
                tokio::time::sleep(scenario.debounce + Duration::from_millis(200)).await;
            }
            anyhow::Ok(latencies)
        }
        .await;
        shutdown.cancel();
        result
    };
    let (daemon, latencies) =
        tokio::join!(watch::run_daemon(config, None, shutdown.clone()), measure);
    daemon?;
    server.stop().await;
    let name = format!(
        "{} save, {} policies",
        match scenario.save {
            Save::InPlace => "in-place",
            Save::Atomic => "atomic",
        },
        scenario.policies
    );
    Ok(Row {
        name,
        policies: scenario.policies,
        debounce: scenario.debounce,
        latencies: latencies?,
    })
}

fn code(name: &str, round: usize) -> String {
    format!("# {name}, revision {round}\nmain = rule {{ {round} >= 0 }}\n")
}

fn save(file: &Path, content: &str, how: Save) -> std::io::Result<()> {
    match how {
        Save::InPlace => std::fs::write(file, content),
        Save::Atomic => {
            let tmp = file.with_extension("sentinel.tmp-save");
            std::fs::write(&tmp, content)?;
            std::fs::rename(tmp, file)
        }
    }
}

#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Polls every millisecond (the resolution of the measurement) for up to 30 s.
async fn wait_for(mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !done() {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "the service did not reach the expected state within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn print_table(rows: &[Row]) {
    println!(
        "| scenario | policies | --debounce | saves | min | median | p90 | max | median - debounce |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let mut sorted = row.latencies.clone();
        sorted.sort();
        let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        let median = pick(0.5);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            row.policies,
            ms(row.debounce),
            sorted.len(),
            ms(sorted[0]),
            ms(median),
            ms(pick(0.9)),
            ms(sorted[sorted.len() - 1]),
            ms(median.saturating_sub(row.debounce)),
        );
    }
}
