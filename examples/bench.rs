//! The performance benchmark of issue 6: `cargo run --release --example bench`.
//!
//! Starts the Policies API emulator in-process (with the latency and rate limit each scenario
//! needs), runs every scenario of the issue and prints one Markdown table: requests, wall time,
//! CPU time (user + sys) and CPU per request, peak RSS, the floor the service allows and the
//! ratio to it. It measures and asserts nothing: timings belong in a benchmark, not in a test
//! that flakes on a busy machine.
//!
//! How it measures:
//!
//! * In-process scenarios run the client on this thread's current-thread runtime (as the CLI
//!   does) and the emulator on a separate runtime, so the client's CPU time is this thread's
//!   (`getrusage(RUSAGE_THREAD)`) and excludes the emulator. Their peak RSS is the whole bench
//!   process, emulator included (the peak is reset before each scenario).
//! * The memory scenarios run the real release binary (`target/release/tfe-policy-sync`, built
//!   first if needed) against the in-process emulator, through a small launcher process that
//!   reads the binary's own peak RSS and CPU time from `wait4` (see [`Launched`] for why not
//!   directly). The idle `watch` is sampled from `/proc/<pid>/status` once converged.
//! * The file-save-to-service latency runs the release binary's `watch` as a child and polls
//!   the emulator's store every millisecond; `cargo run --release --example save_to_service`
//!   breaks it down further (debounce values, in-place and atomic saves).
//!
//! Every scenario's organization starts fresh; nothing leaves the machine (loopback only).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tfe_policy_sync::client::{Client, ClientOptions};
use tfe_policy_sync::config::{Connection, Token};
use tfe_policy_sync::emulator::{
    self, DEFAULT_ORGANIZATION, DEFAULT_TOKEN, EmulatorConfig, RateLimit, Running,
};
use tfe_policy_sync::model::{DesiredPolicy, DesiredState, Mode, PolicyName};
use tfe_policy_sync::reconcile::{Reconciler, Settings};
use tokio_util::sync::CancellationToken;

/// Set in the environment of the bench's launcher mode (see [`Launched`]).
const LAUNCHER_ENV: &str = "TFE_POLICY_SYNC_BENCH_LAUNCHER";

/// What one scenario is compared with.
enum Floor {
    /// A time the service's limits allow at best.
    Time(Duration),
    /// A number of requests the scenario needs at least.
    Requests(usize),
    /// No floor; the target is a budget (memory) stated in the notes.
    None,
}

/// Peak resident memory, and whose.
enum Rss {
    /// The bench process (client and emulator together).
    Bench(u64),
    /// A child process running the real binary: only the tool.
    Child(u64),
}

struct Row {
    scenario: String,
    policies: usize,
    requests: usize,
    wall: Duration,
    cpu: Duration,
    rss: Rss,
    floor: Floor,
    target: &'static str,
    notes: String,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        match self.floor {
            Floor::Time(t) if !t.is_zero() => Some(self.wall.as_secs_f64() / t.as_secs_f64()),
            Floor::Requests(n) if n > 0 => Some(self.requests as f64 / n as f64),
            _ => None,
        }
    }
}

fn main() -> anyhow::Result<()> {
    if std::env::var_os(LAUNCHER_ENV).is_some() {
        return launcher();
    }
    // The emulator gets its own runtime and threads; the client runs on this thread.
    let emu_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("emulator")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bench = Bench {
        emu_rt: &emu_rt,
        client_rt: &client_rt,
    };

    // `cargo run --release --example bench -- 5 6` runs only scenarios 5 and 6.
    let only: Vec<String> = std::env::args().skip(1).collect();
    let run = |n: &str| only.is_empty() || only.iter().any(|o| o == n);
    let started = *START.get_or_init(Instant::now);
    let mut rows = Vec::new();
    if run("1") {
        progress("1 rate limit: cold sync of 150 policies at 30 requests/s ...");
        rows.push(bench.rate_limited_cold_sync(150)?);
    }
    if run("2") || run("3") {
        progress("2 latency: cold and no-op syncs of 300 policies, 20 ms added latency ...");
        rows.extend(bench.latency_bound(300, Duration::from_millis(20), 8)?);
    }
    if run("4") {
        progress("4 steady-state watch cycles on 1,000 converged policies ...");
        rows.extend(bench.steady_state(1000, 5, Duration::from_millis(20), 8)?);
    }
    let mut floor = None;
    if run("5") || run("6") {
        let binary = release_binary()?;
        // What the launcher itself contributes to a child's peak RSS: `true`'s.
        floor = Some(Launched::start(Path::new("true"), &[])?.finish()?.1.max_rss);
        if run("5") {
            progress("5 memory: the release binary, 10,000 policies (sync), 1,000 (watch) ...");
            rows.extend(bench.sync_memory(&binary, 10_000)?);
            rows.push(bench.watch_idle(&binary, 1000)?);
        }
        if run("6") {
            progress("6 file save to service: the release binary's `watch`, 250 policies ...");
            rows.push(bench.save_to_service(&binary, 250, Duration::from_millis(500), 10)?);
        }
    }

    print_table(&rows);
    println!();
    println!(
        "CPU: in-process rows count only the client's thread; binary rows the whole process. \
         † peak RSS of the bench process, emulator included; binary rows are the binary's own{}. \
         Machine: {} cores. Total {:.0} s.",
        floor.map_or(String::new(), |f| format!(
            " (measurement floor: `true` through the launcher peaks at {})",
            mib(f)
        )),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// A progress line on stderr, with the time since the start.
fn progress(what: &str) {
    let start = *START.get_or_init(Instant::now);
    eprintln!("[{:6.1} s] {what}", start.elapsed().as_secs_f64());
}

struct Bench<'a> {
    emu_rt: &'a tokio::runtime::Runtime,
    client_rt: &'a tokio::runtime::Runtime,
}

/// A client-side measurement of one in-process run.
struct Measured<T> {
    value: T,
    wall: Duration,
    cpu: Duration,
    peak_rss: u64,
}

impl Bench<'_> {
    fn emulator(
        &self,
        rate_limit: Option<RateLimit>,
        latency: Duration,
    ) -> anyhow::Result<Running> {
        let config = EmulatorConfig {
            rate_limit,
            latency,
            seed: Some(6),
            ..EmulatorConfig::default()
        };
        Ok(self.emu_rt.block_on(emulator::spawn(config))?)
    }

    fn stop(&self, server: Running) {
        self.emu_rt.block_on(server.stop());
    }

    /// Runs `f` on the client runtime, measuring wall time, this thread's CPU time and the
    /// process's peak RSS.
    fn measure<T>(&self, f: impl std::future::Future<Output = T>) -> Measured<T> {
        reset_peak_rss();
        let cpu0 = thread_cpu();
        let t0 = Instant::now();
        let value = self.client_rt.block_on(f);
        let wall = t0.elapsed();
        let cpu = thread_cpu().saturating_sub(cpu0);
        Measured {
            value,
            wall,
            cpu,
            peak_rss: status_kib("self", "VmHWM").unwrap_or(0) * 1024,
        }
    }

    /// Target 1: a cold sync at the documented 30 requests/second (burst 30).
    fn rate_limited_cold_sync(&self, n: usize) -> anyhow::Result<Row> {
        let limit = RateLimit::DOCUMENTED;
        let server = self.emulator(Some(limit), Duration::ZERO)?;
        let desired = desired_state(n);
        let m = self.measure(sync(&server.base_url(), 8, &desired));
        m.value?;
        let log = server.emulator.requests();
        self.stop(server);
        let limited = log.iter().filter(|r| r.status == 429).count();
        let answered = log.len() - limited;
        let floor = Duration::from_secs_f64(
            answered.saturating_sub(limit.burst as usize) as f64 / f64::from(limit.per_second),
        );
        Ok(Row {
            scenario: "1 cold sync at 30 req/s (burst 30)".into(),
            policies: n,
            requests: log.len(),
            wall: m.wall,
            cpu: m.cpu,
            rss: Rss::Bench(m.peak_rss),
            floor: Floor::Time(floor),
            target: "≤ 1.1× floor, ≤ 3 × 429",
            notes: format!(
                "{limited} × 429; floor = ({answered} − {}) / {} s",
                limit.burst, limit.per_second
            ),
        })
    }

    /// Target 2: latency-bound work runs `concurrency` wide; compared with one request at a
    /// time.
    fn latency_bound(
        &self,
        n: usize,
        latency: Duration,
        concurrency: usize,
    ) -> anyhow::Result<Vec<Row>> {
        let desired = desired_state(n);
        let mut rows = Vec::new();
        // Cold then no-op, `concurrency` wide and sequential; each cold sync gets an empty
        // organization of its own.
        let mut results = BTreeMap::new();
        for width in [concurrency, 1] {
            let server = self.emulator(None, latency)?;
            let base = server.base_url();
            let rtt = self.client_rt.block_on(round_trip(&base))?;
            for kind in ["cold", "no-op"] {
                server.emulator.clear_requests();
                let Measured {
                    value,
                    wall,
                    cpu,
                    peak_rss,
                } = self.measure(sync(&base, width, &desired));
                let (changes, unchanged) = value?;
                let expected = if kind == "cold" { (n, 0) } else { (0, n) };
                ensure!(
                    (changes, unchanged) == expected,
                    "{kind} sync of {n}: {changes} changes, {unchanged} unchanged"
                );
                let m = Measured {
                    value: (),
                    wall,
                    cpu,
                    peak_rss,
                };
                let log = server.emulator.requests();
                let pages = log
                    .iter()
                    .filter(|r| r.method == "GET" && is_list(&r.path))
                    .count();
                let others = log.len() - pages;
                let floor = rtt.mul_f64(pages as f64 + others as f64 / width as f64);
                results.insert((kind, width), (m, log.len(), pages, rtt, floor));
            }
            self.stop(server);
        }
        for kind in ["cold", "no-op"] {
            let seq_wall = results[&(kind, 1)].0.wall;
            for width in [concurrency, 1] {
                let (m, requests, pages, rtt, floor) = &results[&(kind, width)];
                let (label, target, notes) = if width == 1 {
                    (
                        format!("2 {kind} sync, sequential (+20 ms)"),
                        "baseline",
                        format!(
                            "round trip {:.1} ms; {pages} list pages",
                            rtt.as_secs_f64() * 1e3
                        ),
                    )
                } else {
                    (
                        format!("2 {kind} sync, concurrency {width} (+20 ms)"),
                        "≥ 5× faster than sequential, ≤ 1.5× floor",
                        format!(
                            "{:.1}× faster than sequential; floor = ({pages} + {} / {width}) × {:.1} ms",
                            seq_wall.as_secs_f64() / m.wall.as_secs_f64(),
                            requests - pages,
                            rtt.as_secs_f64() * 1e3
                        ),
                    )
                };
                rows.push(Row {
                    scenario: label,
                    policies: n,
                    requests: *requests,
                    wall: m.wall,
                    cpu: m.cpu,
                    rss: Rss::Bench(m.peak_rss),
                    floor: Floor::Time(*floor),
                    target,
                    notes,
                });
            }
        }
        Ok(rows)
    }

    /// Target 4: a `watch` timer cycle on a converged organization costs the list pages plus
    /// the downloads of policies whose `updated-at` changed; a full verification downloads
    /// everything.
    fn steady_state(
        &self,
        n: usize,
        changed: usize,
        latency: Duration,
        concurrency: usize,
    ) -> anyhow::Result<Vec<Row>> {
        let server = self.emulator(None, latency)?;
        let base = server.base_url();
        let desired = desired_state(n);
        let ids: Vec<String> = desired
            .policies
            .values()
            .map(|p| {
                server.emulator.insert_policy(
                    DEFAULT_ORGANIZATION,
                    p.name.as_str(),
                    p.mode,
                    Some(&p.code),
                )
            })
            .collect();
        let rtt = self.client_rt.block_on(round_trip(&base))?;
        let mut reconciler = Reconciler::new(
            client(&base, concurrency)?,
            Settings {
                concurrency,
                cache_code: true,
                ..Settings::default()
            },
            CancellationToken::new(),
        );
        // Warm the cache, as the daemon's first cycle does.
        self.client_rt.block_on(reconciler.fetch_actual(true))?;
        let pages = n.div_ceil(100);
        let mut rows = Vec::new();

        let mut cycle = |label: String,
                         verify_all: bool,
                         floor: Floor,
                         target: &'static str,
                         note: &str|
         -> anyhow::Result<Row> {
            server.emulator.clear_requests();
            let m = self.measure(reconciler.fetch_actual(verify_all));
            let (actual, stats) = m.value?;
            ensure!(
                actual.policies.len() == n,
                "{} policies listed",
                actual.policies.len()
            );
            let requests = server.emulator.requests().len();
            Ok(Row {
                scenario: label,
                policies: n,
                requests,
                wall: m.wall,
                cpu: m.cpu,
                rss: Rss::Bench(m.peak_rss),
                floor,
                target,
                notes: format!(
                    "{note}{} downloads, {} cache hits",
                    stats.downloads, stats.cache_hits
                ),
            })
        };

        rows.push(cycle(
            "4 watch cycle, cache warm, nothing changed".into(),
            false,
            Floor::Requests(pages),
            "⌈N/100⌉ requests",
            "",
        )?);
        for id in ids.iter().step_by(n / changed.max(1)).take(changed) {
            server
                .emulator
                .set_code(id, b"# edited in the UI\nmain = rule { true }\n");
        }
        rows.push(cycle(
            format!("4 watch cycle, cache warm, {changed} changed in the UI"),
            false,
            Floor::Requests(pages + changed),
            "⌈N/100⌉ + changed",
            &format!("{changed} set_code; "),
        )?);
        let verify_floor = rtt.mul_f64(pages as f64 + n as f64 / concurrency as f64);
        rows.push(cycle(
            format!("4 full verification, concurrency {concurrency} (+20 ms)"),
            true,
            Floor::Time(verify_floor),
            "its own schedule (--verify-interval)",
            &format!(
                "floor = ({pages} + {n} / {concurrency}) × {:.1} ms; ",
                rtt.as_secs_f64() * 1e3
            ),
        )?);
        self.stop(server);
        Ok(rows)
    }

    /// Target 5 (and 3 for a whole process): `tfe-policy-sync sync` of `n` small policies,
    /// cold and then no-op, in a child process; peak RSS and CPU from `wait4`.
    fn sync_memory(&self, binary: &Path, n: usize) -> anyhow::Result<Vec<Row>> {
        let server = self.emulator(None, Duration::ZERO)?;
        let work = tempfile::tempdir()?;
        let dir = work.path().join("policies");
        write_policy_dir(&dir, &desired_state(n))?;
        let token_file = token_file(work.path())?;
        let mut rows = Vec::new();
        for kind in ["cold", "no-op"] {
            progress(&format!("    `sync` {kind}, {n} policies"));
            server.emulator.clear_requests();
            let mut args = vec!["sync".into(), "--dir".into(), dir.clone().into_os_string()];
            args.extend(connection_args(&server, &token_file));
            let t0 = Instant::now();
            let (status, usage) = Launched::start(binary, &args)?.finish()?;
            let wall = t0.elapsed();
            ensure!(
                status == 0,
                "tfe-policy-sync sync ({kind}) exited with {status}"
            );
            let requests = server.emulator.requests().len();
            rows.push(Row {
                scenario: format!("5 `sync` binary, {kind}"),
                policies: n,
                requests,
                wall,
                cpu: usage.cpu,
                rss: Rss::Child(usage.max_rss),
                floor: Floor::None,
                target: "< 32 MiB peak RSS",
                notes: "human report to /dev/null; whole process".into(),
            });
        }
        self.stop(server);
        Ok(rows)
    }

    /// Target 5: the resident memory of an idle `watch` daemon holding `n` policies.
    fn watch_idle(&self, binary: &Path, n: usize) -> anyhow::Result<Row> {
        let server = self.emulator(None, Duration::ZERO)?;
        let desired = desired_state(n);
        for p in desired.policies.values() {
            server.emulator.insert_policy(
                DEFAULT_ORGANIZATION,
                p.name.as_str(),
                p.mode,
                Some(&p.code),
            );
        }
        let work = tempfile::tempdir()?;
        let dir = work.path().join("policies");
        write_policy_dir(&dir, &desired)?;
        let token_file = token_file(work.path())?;
        let mut args = vec!["watch".into(), "--dir".into(), dir.clone().into_os_string()];
        args.extend(connection_args(&server, &token_file));
        progress(&format!("    `watch`, {n} policies"));
        let t0 = Instant::now();
        let child = Launched::start(binary, &args)?;
        let pid = child.pid;
        // Converged and idle: the first reconcile's requests are in and nothing came for 1 s.
        let mut last = (0, Instant::now());
        let converged = loop {
            std::thread::sleep(Duration::from_millis(50));
            let count = server.emulator.requests().len();
            if count != last.0 {
                last = (count, Instant::now());
            } else if count > n && last.1.elapsed() >= Duration::from_secs(1) {
                break last.1.duration_since(t0);
            }
            if t0.elapsed() > Duration::from_secs(60) {
                kill(pid);
                let _ = child.finish();
                bail!("the watch daemon did not settle within 60 s ({count} requests)");
            }
        };
        let requests = server.emulator.requests().len();
        let cpu0 = proc_cpu(pid)?;
        let idle = Duration::from_secs(3);
        std::thread::sleep(idle);
        let idle_cpu = proc_cpu(pid)?.saturating_sub(cpu0);
        let rss = status_kib(&pid.to_string(), "VmRSS").context("reading VmRSS")? * 1024;
        kill(pid);
        let (_, usage) = child.finish()?;
        self.stop(server);
        Ok(Row {
            scenario: "5 `watch` binary, idle after converging".into(),
            policies: n,
            requests,
            wall: converged,
            cpu: usage.cpu,
            rss: Rss::Child(usage.max_rss),
            floor: Floor::None,
            target: "report idle RSS",
            notes: format!(
                "idle RSS {}; {:.0} ms CPU in {} s idle; wall = start to converged",
                mib(rss),
                idle_cpu.as_secs_f64() * 1e3,
                idle.as_secs()
            ),
        })
    }

    /// Target 6: in `watch`, how long from saving a policy file (written to a temp file and
    /// renamed over the original, as editors do) until the service holds the new code. The
    /// real binary runs as a child with `--debounce`, against the emulator at its documented
    /// 30 requests/second; the bench polls the emulator's store every millisecond.
    fn save_to_service(
        &self,
        binary: &Path,
        n: usize,
        debounce: Duration,
        saves: usize,
    ) -> anyhow::Result<Row> {
        let server = self.emulator(Some(RateLimit::DOCUMENTED), Duration::ZERO)?;
        let desired = desired_state(n);
        let mut target = None;
        for p in desired.policies.values() {
            let id = server.emulator.insert_policy(
                DEFAULT_ORGANIZATION,
                p.name.as_str(),
                p.mode,
                Some(&p.code),
            );
            target.get_or_insert((id, p.file.clone()));
        }
        let (id, file) = target.context("no policies")?;
        let work = tempfile::tempdir()?;
        let dir = work.path().join("policies");
        write_policy_dir(&dir, &desired)?;
        let file = dir.join(file);
        let token_file = token_file(work.path())?;
        let debounce_flag = format!("{}ms", debounce.as_millis());
        progress(&format!(
            "    `watch --debounce {debounce_flag}`, {n} policies, {saves} saves"
        ));
        let mut args: Vec<OsString> = ["watch", "--interval", "1h", "--debounce", &debounce_flag]
            .map(OsString::from)
            .into();
        args.extend(["--dir".into(), dir.clone().into_os_string()]);
        args.extend(connection_args(&server, &token_file));
        let child = Launched::start(binary, &args)?;
        let pid = child.pid;
        let measured = (|| {
            // Round 0 warms up (the first reconcile reads every policy's code) and is not
            // counted.
            let mut latencies = Vec::with_capacity(saves);
            let mut requests = 0;
            for round in 0..=saves {
                let new = format!("# revision {round}\nmain = rule {{ {round} >= 0 }}\n");
                let tmp = file.with_extension("sentinel.tmp-save");
                std::fs::write(&tmp, &new)?;
                let before = server.emulator.requests().len();
                let t0 = Instant::now();
                std::fs::rename(&tmp, &file)?;
                loop {
                    let held = server.emulator.policy(&id).and_then(|p| p.code);
                    if held.as_deref() == Some(new.as_bytes()) {
                        break;
                    }
                    ensure!(
                        t0.elapsed() < Duration::from_secs(60),
                        "save {round} did not reach the service within 60 s"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                let latency = t0.elapsed();
                // Let the reconcile that delivered it finish before the next save.
                std::thread::sleep(debounce + Duration::from_millis(300));
                if round > 0 {
                    latencies.push(latency);
                    requests += server.emulator.requests().len() - before;
                }
            }
            anyhow::Ok((latencies, requests))
        })();
        kill(pid);
        let (_, usage) = child.finish()?;
        self.stop(server);
        let (mut latencies, requests) = measured?;
        latencies.sort();
        let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        let median = pick(0.5);
        Ok(Row {
            scenario: format!("6 `watch` binary, file save → service ({saves} saves)"),
            policies: n,
            requests,
            wall: median,
            cpu: usage.cpu,
            rss: Rss::Child(usage.max_rss),
            floor: Floor::Time(debounce),
            target: "≤ debounce + 300 ms",
            notes: format!(
                "wall = median; min {}, p90 {}, max {}; median − debounce {}; CPU = whole run",
                secs(latencies[0]),
                secs(pick(0.9)),
                secs(latencies[latencies.len() - 1]),
                secs(median.saturating_sub(debounce))
            ),
        })
    }
}

/// What `sync` does: a fresh reconciler (no cache), plan, apply. Returns (changes, unchanged).
async fn sync(
    base: &str,
    concurrency: usize,
    desired: &DesiredState,
) -> anyhow::Result<(usize, usize)> {
    let mut reconciler = Reconciler::new(
        client(base, concurrency)?,
        Settings {
            concurrency,
            ..Settings::default()
        },
        CancellationToken::new(),
    );
    let plan = reconciler.plan_once(desired).await?;
    let outcome = reconciler.apply(&plan).await;
    ensure!(outcome.ok(), "{} changes failed", outcome.failures());
    Ok((plan.changes.len(), plan.unchanged.len()))
}

fn client(base: &str, concurrency: usize) -> anyhow::Result<Client> {
    let connection = Connection::new(
        base.parse()?,
        DEFAULT_ORGANIZATION,
        Token::new(DEFAULT_TOKEN),
    );
    Ok(Client::new(
        &connection,
        ClientOptions {
            concurrency,
            ..ClientOptions::default()
        },
    )?)
}

/// The round trip of one request through the client (emulator latency included): the mean
/// of 20 sequential pings on a warm connection.
async fn round_trip(base: &str) -> anyhow::Result<Duration> {
    let client = client(base, 1)?;
    client.ping().await?;
    let t0 = Instant::now();
    for _ in 0..20 {
        client.ping().await?;
    }
    Ok(t0.elapsed() / 20)
}

fn is_list(path: &str) -> bool {
    path.starts_with("/api/v2/organizations/") && path.ends_with("/policies")
}

/// `n` small policies, modes spread over the three.
fn desired_state(n: usize) -> DesiredState {
    let policies = (0..n)
        .map(|i| {
            let name = PolicyName::new(format!("policy-{i:05}")).expect("a valid name");
            let policy = DesiredPolicy {
                file: name.sentinel_path(),
                mode: Mode::ALL[i % Mode::ALL.len()],
                code: code(name.as_str()).into_bytes(),
                name: name.clone(),
            };
            (name, policy)
        })
        .collect();
    DesiredState {
        organization: None,
        prune: true,
        ignore: Vec::new(),
        policies,
    }
}

/// A small, realistic policy (about 300 bytes).
fn code(name: &str) -> String {
    format!(
        "# {name}: every managed resource carries an owner tag.\n\
         import \"tfplan/v2\" as tfplan\n\n\
         managed = filter tfplan.resource_changes as _, rc {{ rc.mode is \"managed\" }}\n\n\
         main = rule {{\n  all managed as _, rc {{ \"owner\" in keys(rc.change.after.tags else {{}}) }}\n}}\n"
    )
}

fn write_policy_dir(dir: &Path, desired: &DesiredState) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut manifest = String::from("policies:\n");
    for p in desired.policies.values() {
        manifest.push_str(&format!("  - name: {}\n    mode: {}\n", p.name, p.mode));
        std::fs::write(dir.join(&p.file), &p.code)?;
    }
    std::fs::write(dir.join("policies.yaml"), manifest)?;
    Ok(())
}

fn token_file(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("token");
    std::fs::write(&path, DEFAULT_TOKEN)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(path)
}

/// The release binary next to this example (`target/<profile>/examples/bench` →
/// `target/<profile>/tfe-policy-sync`), built first through cargo when run by cargo.
fn release_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot locate the target directory")?;
    let binary = profile_dir.join("tfe-policy-sync");
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "--bin", "tfe-policy-sync"]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .context("running cargo build for the binary")?;
        ensure!(status.success(), "cargo build of tfe-policy-sync failed");
    }
    ensure!(
        binary.exists(),
        "{} is missing: run `cargo build --release` first",
        binary.display()
    );
    Ok(binary)
}

/// `--address URL --organization ORG --token-file PATH` for the emulator `server`.
fn connection_args(server: &Running, token_file: &Path) -> Vec<OsString> {
    vec![
        "--address".into(),
        server.base_url().into(),
        "--organization".into(),
        DEFAULT_ORGANIZATION.into(),
        "--token-file".into(),
        token_file.as_os_str().to_owned(),
    ]
}

/// The release binary running as a grandchild, through a copy of this bench in launcher
/// mode that reports the binary's own resource usage.
///
/// Why not spawn it directly: Linux carries the parent's peak RSS into a child across
/// `exec` (`signal->maxrss`), and `std::process::Command` spawns with `vfork`, so a child of
/// this bench would report the bench's own peak (tens of MiB, the in-process emulator
/// included) as its `ru_maxrss`. The launcher is a fresh, small process (about 2 MiB), so
/// the peak its child reports is the binary's.
struct Launched {
    launcher: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    /// The binary's pid (not the launcher's): for `/proc` and signals.
    pid: u32,
}

impl Launched {
    fn start(binary: &Path, args: &[OsString]) -> anyhow::Result<Launched> {
        use std::io::BufRead;
        let mut launcher = Command::new(std::env::current_exe()?)
            .env(LAUNCHER_ENV, "1")
            .env_remove("RUST_LOG")
            .arg(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the bench launcher")?;
        let stdout = launcher.stdout.take().context("the launcher's stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let line = lines.next().context("the launcher exited early")??;
        let pid = line
            .strip_prefix("pid ")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("unexpected launcher line {line:?}"))?;
        Ok(Launched {
            launcher,
            lines,
            pid,
        })
    }

    /// Waits for the binary to exit: its exit code and resource usage.
    fn finish(mut self) -> anyhow::Result<(i32, ChildUsage)> {
        let line = self.lines.next().context("the launcher exited early")??;
        self.launcher.wait()?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("unexpected launcher line {line:?}"))?;
        let [code, cpu_us, max_rss] = fields[..] else {
            bail!("unexpected launcher line {line:?}");
        };
        Ok((
            code as i32,
            ChildUsage {
                cpu: Duration::from_micros(cpu_us),
                max_rss,
            },
        ))
    }
}

/// Launcher mode: runs `argv[1..]` with no output, prints `pid <pid>`, waits for it and
/// prints `<exit code> <CPU µs> <peak RSS bytes>`.
fn launcher() -> anyhow::Result<()> {
    use std::io::Write;
    let mut args = std::env::args_os().skip(1);
    let program = args.next().context("launcher: no program")?;
    let child = Command::new(program)
        .args(args)
        .env_remove(LAUNCHER_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "pid {}", child.id())?;
    out.flush()?;
    let (code, usage) = wait4(child)?;
    // Death by a signal (wait4 gave -1) is reported as 255.
    let code = u8::try_from(code).unwrap_or(u8::MAX);
    writeln!(out, "{code} {} {}", usage.cpu.as_micros(), usage.max_rss)?;
    Ok(())
}

// ---- process measurements (Linux) ----

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
}

/// User + system CPU time of the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

struct ChildUsage {
    cpu: Duration,
    max_rss: u64,
}

/// Waits for `child` with `wait4`, which also returns that child's own resource usage (peak
/// RSS, CPU) — unlike `RUSAGE_CHILDREN`, which sums every child waited for.
fn wait4(child: std::process::Child) -> anyhow::Result<(i32, ChildUsage)> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 only writes into the status and rusage we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            bail!("wait4({pid}): {err}");
        }
    }
    // Reaped: dropping `child` neither waits nor kills.
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok((
        code,
        ChildUsage {
            cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
            max_rss: usage.ru_maxrss as u64 * 1024,
        },
    ))
}

fn kill(pid: u32) {
    // SAFETY: a plain signal to a child we started and have not reaped yet.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// A `kB` field of `/proc/<pid>/status`, e.g. `VmHWM` or `VmRSS`.
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resets this process's peak RSS (`VmHWM`) to the current RSS, so each scenario reports its
/// own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// User + system CPU time of a running process, from `/proc/<pid>/stat`.
fn proc_cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3; utime and stime
    // are fields 14 and 15, in clock ticks.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

// ---- the table ----

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "| scenario | policies | requests | wall | CPU (user+sys) | CPU / request | peak RSS | floor | ratio to floor | target | notes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for r in rows {
        let per_request = if r.requests > 0 {
            format!("{:.0} µs", r.cpu.as_secs_f64() * 1e6 / r.requests as f64)
        } else {
            "–".into()
        };
        let rss = match r.rss {
            Rss::Bench(b) => format!("{} †", mib(b)),
            Rss::Child(b) => mib(b),
        };
        let floor = match r.floor {
            Floor::Time(t) => secs(t),
            Floor::Requests(n) => format!("{n} req"),
            Floor::None => "–".into(),
        };
        let ratio = r.ratio().map_or("–".into(), |x| format!("{x:.2}×"));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.policies,
            r.requests,
            secs(r.wall),
            secs(r.cpu),
            per_request,
            rss,
            floor,
            ratio,
            r.target,
            r.notes
        );
    }
}
