//! When to reconcile: the daemon's loop. It owns the start trigger, the debounce of file events,
//! the interval timer (with jitter, restarted after every reconcile), the exponential backoff after
//! a failure, coalescing, and the bound on shutdown. It knows nothing about policies: the work of
//! one cycle is behind the [`Cycle`] trait, so the loop is tested with a fake on a paused clock.
//!
//! Everything waits on tokio timers or channels; there is no polling, so an idle daemon sleeps.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

/// Why a reconcile started. Several triggers that arrive during one reconcile become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The first reconcile after the daemon started.
    Start,
    /// The policy directory changed and then stayed quiet for `--debounce`.
    FileChange,
    /// `--interval` elapsed since the previous reconcile.
    Timer,
    /// The backoff after a failed reconcile elapsed.
    Retry,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::FileChange => "file-change",
            Trigger::Timer => "timer",
            Trigger::Retry => "retry",
        }
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one cycle ended, as far as scheduling is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CycleOutcome {
    /// The cycle did its job: the next one comes with the timer or a file change.
    Succeeded,
    /// A transient failure (the service, the network): retried with backoff.
    Failed,
    /// The directory was not a valid snapshot; nothing was sent. Retrying cannot help until a
    /// file changes, so there is no backoff retry, only the file watch and the timer.
    Skipped,
    /// A file event arrived but the directory reads exactly as at the last success, so nothing
    /// was asked of the service. The timer is left alone: editor swap files and the like must
    /// not postpone the periodic reconcile forever.
    Unchanged,
    /// The daemon cannot go on (a token the service rejects at start). The loop returns it.
    Fatal(String),
}

/// One cycle's outcome plus a one-line summary for the log ("2 changes applied, 5 unchanged").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleReport {
    pub outcome: CycleOutcome,
    pub summary: String,
}

impl CycleReport {
    pub fn new(outcome: CycleOutcome, summary: impl Into<String>) -> Self {
        CycleReport {
            outcome,
            summary: summary.into(),
        }
    }
}

/// The work of one reconcile. The loop never runs two at once (it holds `&mut self`).
///
/// The future need not be `Send`: the daemon awaits the loop on its own task (the real cycle
/// holds the one-shot path's apply stream, whose borrows are not `Send`-provable).
pub trait Cycle {
    fn run(&mut self, trigger: Trigger) -> impl Future<Output = CycleReport>;
}

/// Timing settings of the loop.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// `--interval`: the longest time between two reconciles, and the backoff cap.
    pub interval: Duration,
    /// `--debounce`: how long the directory must stay quiet after an event.
    pub debounce: Duration,
    /// Up to this fraction of `interval` is added at random to each timer, so that many daemons
    /// started together do not hit the service in step.
    pub jitter: f64,
    /// The first backoff delay after a failure; it doubles per consecutive failure.
    pub backoff_start: Duration,
    /// How long a reconcile that is under way may keep running after shutdown was asked for
    /// (its in-flight requests finish; no new one starts).
    pub shutdown_grace: Duration,
}

impl LoopConfig {
    pub fn new(interval: Duration, debounce: Duration) -> Self {
        LoopConfig {
            interval,
            debounce,
            jitter: 0.05,
            backoff_start: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(5),
        }
    }

    /// The delay before retry number `failures` (1 = after the first failure): 1 s, 2 s, 4 s, …
    /// capped at the interval.
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(20);
        self.backoff_start
            .checked_mul(factor)
            .unwrap_or(self.interval)
            .min(self.interval)
    }

    fn next_timer(&self, now: Instant) -> Instant {
        let jitter = if self.jitter > 0.0 {
            self.interval.mul_f64(self.jitter * rand::random::<f64>())
        } else {
            Duration::ZERO
        };
        now + self.interval + jitter
    }
}

/// Why the loop stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoopExit {
    /// Shutdown was requested (and any reconcile under way finished or ran out of grace).
    Shutdown,
    /// A cycle reported a fatal problem.
    Fatal(String),
}

/// A future that completes at `at`, or never when there is no deadline.
async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs `cycle` at start, after each debounced burst of `events`, on the timer and on retries,
/// until `shutdown` is cancelled or a cycle is fatal.
///
/// `events` is the injection point: the file watcher sends one `()` per relevant file event, and
/// tests send them directly. When every sender is gone the loop carries on with the timer alone.
pub async fn run_loop<C: Cycle>(
    cycle: &mut C,
    mut events: mpsc::Receiver<()>,
    config: &LoopConfig,
    shutdown: &CancellationToken,
) -> LoopExit {
    let mut pending = Some(Trigger::Start);
    let mut debounce_at: Option<Instant> = None;
    let mut timer_at: Option<Instant> = None;
    let mut retry_at: Option<Instant> = None;
    let mut failures: u32 = 0;
    let mut events_open = true;

    loop {
        if shutdown.is_cancelled() {
            return LoopExit::Shutdown;
        }

        if let Some(trigger) = pending.take() {
            let started = Instant::now();
            let report = {
                let work = cycle.run(trigger);
                tokio::pin!(work);
                // While the cycle runs, file events keep arriving; they are debounced as usual
                // and at most one follow-up is remembered. The timer and the retry are not
                // watched here: both are re-armed when the cycle ends.
                let mut grace_at: Option<Instant> = None;
                loop {
                    tokio::select! {
                        biased;
                        report = &mut work => break Some(report),
                        _ = shutdown.cancelled(), if grace_at.is_none() => {
                            grace_at = Some(Instant::now() + config.shutdown_grace);
                        }
                        _ = sleep_opt(grace_at) => break None,
                        event = events.recv(), if events_open => match event {
                            Some(()) => debounce_at = Some(Instant::now() + config.debounce),
                            None => events_open = false,
                        },
                        _ = sleep_opt(debounce_at) => {
                            debounce_at = None;
                            pending = Some(Trigger::FileChange);
                        }
                    }
                }
            };
            let Some(report) = report else {
                tracing::warn!(
                    "shutdown: the reconcile under way did not finish within {}; stopping anyway",
                    fmt_duration(config.shutdown_grace)
                );
                return LoopExit::Shutdown;
            };
            let now = Instant::now();
            let took = now - started;
            if shutdown.is_cancelled() && !matches!(report.outcome, CycleOutcome::Fatal(_)) {
                tracing::info!(
                    trigger = trigger.as_str(),
                    "reconcile ended by shutdown after {}: {}",
                    fmt_duration(took),
                    report.summary
                );
                return LoopExit::Shutdown;
            }
            match report.outcome {
                CycleOutcome::Succeeded => {
                    failures = 0;
                    retry_at = None;
                    let next = config.next_timer(now);
                    timer_at = Some(next);
                    tracing::info!(
                        trigger = trigger.as_str(),
                        result = "success",
                        duration_seconds = took.as_secs_f64(),
                        next_run_seconds = (next - now).as_secs(),
                        "reconcile succeeded in {}: {}; next run in {}",
                        fmt_duration(took),
                        report.summary,
                        fmt_duration(next - now)
                    );
                }
                CycleOutcome::Failed => {
                    failures = failures.saturating_add(1);
                    let delay = config.backoff(failures);
                    retry_at = Some(now + delay);
                    timer_at = Some(config.next_timer(now));
                    tracing::warn!(
                        trigger = trigger.as_str(),
                        result = "error",
                        duration_seconds = took.as_secs_f64(),
                        consecutive_failures = failures,
                        next_run_seconds = delay.as_secs(),
                        "reconcile failed after {}: {}; retrying in {}",
                        fmt_duration(took),
                        report.summary,
                        fmt_duration(delay)
                    );
                }
                CycleOutcome::Skipped => {
                    retry_at = None;
                    let next = config.next_timer(now);
                    timer_at = Some(next);
                    tracing::warn!(
                        trigger = trigger.as_str(),
                        result = "invalid",
                        next_run_seconds = (next - now).as_secs(),
                        "reconcile skipped: {}; nothing was changed; next run on a file change \
                         or in {}",
                        report.summary,
                        fmt_duration(next - now)
                    );
                }
                CycleOutcome::Unchanged => {
                    if timer_at.is_none_or(|at| at <= now) {
                        timer_at = Some(config.next_timer(now));
                    }
                    tracing::debug!(
                        trigger = trigger.as_str(),
                        "file event without a change to the policy directory: {}",
                        report.summary
                    );
                }
                CycleOutcome::Fatal(message) => return LoopExit::Fatal(message),
            }
            continue;
        }

        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return LoopExit::Shutdown,
            event = events.recv(), if events_open => match event {
                Some(()) => debounce_at = Some(Instant::now() + config.debounce),
                None => {
                    events_open = false;
                    tracing::debug!("file events ended; reconciling on the timer only");
                }
            },
            _ = sleep_opt(debounce_at) => {
                debounce_at = None;
                pending = Some(Trigger::FileChange);
            }
            _ = sleep_opt(retry_at) => {
                retry_at = None;
                pending = Some(Trigger::Retry);
            }
            _ = sleep_opt(timer_at) => {
                timer_at = None;
                pending = Some(Trigger::Timer);
            }
        }
    }
}

/// `1.234s`, `250ms`, `5m 3s`: short enough for a log line.
pub fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A cycle that takes `busy` on the (paused) clock, records when it started and why, and
    /// answers with the scripted outcomes (then `Succeeded`).
    #[derive(Clone)]
    struct Fake {
        calls: Arc<Mutex<Vec<(Trigger, Duration)>>>,
        script: Arc<Mutex<VecDeque<CycleOutcome>>>,
        busy: Duration,
        t0: Instant,
    }

    impl Fake {
        fn new(busy: Duration, script: Vec<CycleOutcome>) -> Self {
            Fake {
                calls: Arc::default(),
                script: Arc::new(Mutex::new(script.into())),
                busy,
                t0: Instant::now(),
            }
        }

        fn calls(&self) -> Vec<(Trigger, Duration)> {
            self.calls.lock().unwrap().clone()
        }

        fn triggers(&self) -> Vec<Trigger> {
            self.calls().into_iter().map(|(t, _)| t).collect()
        }

        fn times(&self) -> Vec<f64> {
            self.calls()
                .into_iter()
                .map(|(_, at)| at.as_secs_f64())
                .collect()
        }
    }

    impl Cycle for Fake {
        fn run(&mut self, trigger: Trigger) -> impl Future<Output = CycleReport> {
            self.calls
                .lock()
                .unwrap()
                .push((trigger, Instant::now() - self.t0));
            let outcome = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(CycleOutcome::Succeeded);
            let busy = self.busy;
            async move {
                tokio::time::sleep(busy).await;
                CycleReport::new(outcome, "fake")
            }
        }
    }

    struct Harness {
        fake: Fake,
        events: mpsc::Sender<()>,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<LoopExit>,
    }

    fn start(config: LoopConfig, fake: Fake) -> Harness {
        let (tx, rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let mut cycle = fake.clone();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { run_loop(&mut cycle, rx, &config, &token).await });
        Harness {
            fake,
            events: tx,
            shutdown,
            task,
        }
    }

    fn config(interval_secs: u64, debounce_ms: u64) -> LoopConfig {
        LoopConfig {
            jitter: 0.0,
            ..LoopConfig::new(
                Duration::from_secs(interval_secs),
                Duration::from_millis(debounce_ms),
            )
        }
    }

    /// Advances the paused clock to `secs` after the fake's t0.
    async fn at(h: &Harness, secs: f64) {
        tokio::time::sleep_until(h.fake.t0 + Duration::from_secs_f64(secs)).await;
    }

    fn approx(actual: &[f64], expected: &[f64]) {
        assert_eq!(
            actual.len(),
            expected.len(),
            "reconciles at {actual:?}, expected {expected:?}"
        );
        for (a, e) in actual.iter().zip(expected) {
            assert!(
                (a - e).abs() < 0.002,
                "reconciles at {actual:?}, expected {expected:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reconciles_at_start_then_every_interval_counted_from_the_end_of_the_last() {
        let h = start(config(60, 500), Fake::new(Duration::from_secs(2), vec![]));
        at(&h, 200.0).await;
        // 0 → busy until 2 → timer at 62 → busy until 64 → 124 → 186.
        approx(&h.fake.times(), &[0.0, 62.0, 124.0, 186.0]);
        assert_eq!(
            h.fake.triggers(),
            [
                Trigger::Start,
                Trigger::Timer,
                Trigger::Timer,
                Trigger::Timer
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_file_events_becomes_one_reconcile_after_the_debounce() {
        let h = start(config(600, 500), Fake::new(Duration::ZERO, vec![]));
        for t in [1.0, 1.3, 1.6] {
            at(&h, t).await;
            h.events.send(()).await.unwrap();
        }
        at(&h, 10.0).await;
        approx(&h.fake.times(), &[0.0, 2.1]);
        assert_eq!(h.fake.triggers(), [Trigger::Start, Trigger::FileChange]);
    }

    #[tokio::test(start_paused = true)]
    async fn events_during_a_reconcile_coalesce_into_one_follow_up() {
        let h = start(config(600, 500), Fake::new(Duration::from_secs(10), vec![]));
        for t in [1.0, 3.0, 5.0, 7.0, 9.0] {
            at(&h, t).await;
            h.events.send(()).await.unwrap();
        }
        at(&h, 100.0).await;
        // The debounce expired at 9.5, during the first reconcile: one follow-up at its end.
        approx(&h.fake.times(), &[0.0, 10.0]);
        assert_eq!(h.fake.triggers(), [Trigger::Start, Trigger::FileChange]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_at_the_end_of_a_reconcile_waits_for_its_debounce() {
        let h = start(config(600, 500), Fake::new(Duration::from_secs(10), vec![]));
        at(&h, 9.8).await;
        h.events.send(()).await.unwrap();
        at(&h, 100.0).await;
        approx(&h.fake.times(), &[0.0, 10.3]);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_capped_at_the_interval() {
        let failed = vec![CycleOutcome::Failed; 6];
        let h = start(config(10, 500), Fake::new(Duration::ZERO, failed));
        at(&h, 60.0).await;
        // Retries after 1, 2, 4, 8, then the 10 s cap twice; the 7th attempt succeeds at 35 and
        // the timer takes over.
        approx(
            &h.fake.times(),
            &[0.0, 1.0, 3.0, 7.0, 15.0, 25.0, 35.0, 45.0, 55.0],
        );
        let triggers = h.fake.triggers();
        assert_eq!(triggers[1..7], [Trigger::Retry; 6]);
        assert_eq!(triggers[7..], [Trigger::Timer; 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_file_change_retries_at_once_instead_of_waiting_for_the_backoff() {
        let failed = vec![CycleOutcome::Failed; 4];
        let h = start(config(300, 500), Fake::new(Duration::ZERO, failed));
        at(&h, 10.0).await; // failures at 0, 1, 3, 7: next retry would be at 15
        h.events.send(()).await.unwrap();
        at(&h, 12.0).await;
        approx(&h.fake.times(), &[0.0, 1.0, 3.0, 7.0, 10.5]);
        assert_eq!(h.fake.triggers()[4], Trigger::FileChange);
    }

    #[tokio::test(start_paused = true)]
    async fn an_invalid_directory_is_not_retried_until_a_file_changes_or_the_timer_fires() {
        let h = start(
            config(60, 500),
            Fake::new(Duration::ZERO, vec![CycleOutcome::Skipped]),
        );
        at(&h, 30.0).await;
        approx(&h.fake.times(), &[0.0]);
        h.events.send(()).await.unwrap();
        at(&h, 100.0).await;
        approx(&h.fake.times(), &[0.0, 30.5, 90.5]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unchanged_directory_does_not_postpone_the_timer() {
        let unchanged = vec![
            CycleOutcome::Succeeded,
            CycleOutcome::Unchanged,
            CycleOutcome::Unchanged,
        ];
        let h = start(config(60, 500), Fake::new(Duration::ZERO, unchanged));
        for t in [20.0, 40.0] {
            at(&h, t).await;
            h.events.send(()).await.unwrap();
        }
        at(&h, 61.0).await;
        approx(&h.fake.times(), &[0.0, 20.5, 40.5, 60.0]);
        assert_eq!(h.fake.triggers()[3], Trigger::Timer);
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_adds_at_most_the_configured_jitter() {
        let mut cfg = config(100, 500);
        cfg.jitter = 0.1;
        let h = start(cfg, Fake::new(Duration::ZERO, vec![]));
        at(&h, 99.9).await;
        assert_eq!(
            h.fake.calls().len(),
            1,
            "the timer fired before the interval"
        );
        at(&h, 110.001).await;
        assert_eq!(
            h.fake.calls().len(),
            2,
            "the timer fired after interval + 10%"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_file_events_the_timer_still_runs() {
        let h = start(config(60, 500), Fake::new(Duration::ZERO, vec![]));
        let Harness { fake, events, .. } = h;
        drop(events);
        tokio::time::sleep_until(fake.t0 + Duration::from_secs(125)).await;
        approx(&fake.times(), &[0.0, 60.0, 120.0]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_cycle_stops_the_loop_with_its_message() {
        let fatal = vec![CycleOutcome::Fatal("401: the token was rejected".into())];
        let h = start(config(60, 500), Fake::new(Duration::ZERO, fatal));
        assert_eq!(
            h.task.await.unwrap(),
            LoopExit::Fatal("401: the token was rejected".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_while_idle_returns_at_once() {
        let h = start(config(60, 500), Fake::new(Duration::ZERO, vec![]));
        at(&h, 5.0).await;
        h.shutdown.cancel();
        assert_eq!(h.task.await.unwrap(), LoopExit::Shutdown);
        assert_eq!(h.fake.calls().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_lets_a_short_reconcile_finish() {
        let h = start(config(60, 500), Fake::new(Duration::from_secs(2), vec![]));
        at(&h, 1.0).await;
        h.shutdown.cancel();
        let t0 = h.fake.t0;
        assert_eq!(h.task.await.unwrap(), LoopExit::Shutdown);
        let waited = Instant::now() - t0;
        assert_eq!(
            waited.as_secs(),
            2,
            "the loop waited for the reconcile to end"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_abandons_a_reconcile_that_overruns_the_grace() {
        let h = start(
            config(60, 500),
            Fake::new(Duration::from_secs(3600), vec![]),
        );
        at(&h, 1.0).await;
        h.shutdown.cancel();
        let t0 = h.fake.t0;
        assert_eq!(h.task.await.unwrap(), LoopExit::Shutdown);
        assert_eq!((Instant::now() - t0).as_secs(), 6, "1 s + 5 s grace");
    }

    #[test]
    fn backoff_doubles_from_one_second_and_never_exceeds_the_interval() {
        let cfg = config(300, 500);
        let delays: Vec<u64> = (1..=12).map(|n| cfg.backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(cfg.backoff(u32::MAX).as_secs(), 300);
    }

    #[test]
    fn durations_read_well_in_a_log_line() {
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::from_millis(1234)), "1.23s");
        assert_eq!(fmt_duration(Duration::from_secs(303)), "5m 3s");
    }
}
