//! What one daemon cycle does: read a whole validated snapshot of the directory, read the
//! organization (from the cache where `updated-at` proves the code unchanged), plan, sort out
//! drift, apply, and record the result in the log, the metrics and `/readyz`.
//!
//! Loading, fetching, planning and applying are the one-shot path's [`Reconciler`]; this file
//! only decides what to ask of it and what to make of the answers. Which failures are fatal is
//! decided here too: before the organization has once been listed, a rejected token, an unknown
//! organization or a bad configuration ends the daemon; afterwards every failure is a failed
//! cycle, retried.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::DriftMode;
use super::drift::{self, DriftLog};
use super::fs::DirWatcher;
use super::health::Status;
use super::metrics::ReconcileResult;
use super::schedule::{Cycle, CycleOutcome, CycleReport, Trigger};
use crate::client::{Client, ClientOptions};
use crate::config::{self, ConfigError, Connection, ConnectionArgs};
use crate::manifest::{self, Loaded};
use crate::model::{ActualState, DesiredState, RemoteCode};
use crate::plan::{Action, Change, Plan};
use crate::reconcile::{Reconciler, Settings};
use crate::report::{Status as ChangeStatus, plural};

/// Retries of one request within a cycle (the one-shot commands use the client's default).
const CLIENT_RETRIES: u32 = 2;

/// What a cycle needs besides its state.
#[derive(Debug, Clone)]
pub struct CycleSettings {
    pub dir: PathBuf,
    pub connection: ConnectionArgs,
    pub no_prune: bool,
    pub allow_empty: bool,
    pub concurrency: usize,
    pub dry_run: bool,
    pub drift: DriftMode,
    /// A reconcile downloads every policy's code when the last full download is this old.
    pub verify_interval: Duration,
    /// The whole-request deadline per attempt (`--request-timeout`).
    pub request_timeout: Duration,
}

/// The reconciler of one organization and what the daemon learned about it.
struct OrgSession {
    organization: String,
    /// `organization:` of the manifest the session was resolved with.
    manifest_org: Option<String>,
    reconciler: Reconciler,
    /// The snapshot of the last successful reconcile: what "changed locally" is measured
    /// against (`--drift warn`) and what a file event is compared with.
    last_good: Option<DesiredState>,
    /// When the code of every policy was last downloaded rather than taken from the cache.
    last_verify: Option<Instant>,
    drift_log: DriftLog,
}

/// The daemon's [`Cycle`].
pub struct WatchCycle {
    settings: CycleSettings,
    status: Arc<Status>,
    cancel: CancellationToken,
    watcher: Option<DirWatcher>,
    session: Option<OrgSession>,
    /// Whether the organization has been listed once: until then, configuration problems
    /// the service reports (401, 404) are fatal.
    listed_once: bool,
    /// Whether the previous cycle succeeded.
    last_ok: bool,
    /// The directory's warnings as last logged, so they are repeated only when they change.
    last_warnings: Vec<String>,
    /// The connection the daemon's preflight resolved, with the manifest organization it was
    /// resolved with: the first session uses it instead of resolving (and reading the token
    /// file, and warning about it) a second time.
    preflight: Option<(Option<String>, Connection)>,
}

impl WatchCycle {
    /// `cancel` is shutdown: the client starts no request once it fires.
    pub fn new(
        settings: CycleSettings,
        status: Arc<Status>,
        cancel: CancellationToken,
        watcher: Option<DirWatcher>,
    ) -> Self {
        WatchCycle {
            settings,
            status,
            cancel,
            watcher,
            session: None,
            listed_once: false,
            last_ok: false,
            last_warnings: Vec::new(),
            preflight: None,
        }
    }

    /// Hands over a connection already resolved for a manifest naming `manifest_org`.
    pub fn with_connection(mut self, manifest_org: Option<String>, connection: Connection) -> Self {
        self.preflight = Some((manifest_org, connection));
        self
    }

    async fn load(&mut self) -> Result<Loaded, String> {
        let dir = self.settings.dir.clone();
        // The loader reads files with blocking I/O; keep it off the runtime's threads.
        let loaded = tokio::task::spawn_blocking(move || manifest::load(&dir))
            .await
            .map_err(|e| format!("reading the policy directory failed: {e}"))?;
        match loaded {
            Ok(loaded) => {
                let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
                if warnings != self.last_warnings {
                    for w in &warnings {
                        tracing::warn!("{w}");
                    }
                    self.last_warnings = warnings;
                }
                Ok(loaded)
            }
            Err(e) => {
                tracing::warn!(
                    dir = %self.settings.dir.display(),
                    "the policy directory is invalid; this reconcile is skipped and nothing is \
                     changed until it is fixed:\n{e}"
                );
                // Forget the warnings so they show again with the next good snapshot.
                self.last_warnings.clear();
                Err(format!(
                    "the policy directory {} is invalid ({} {})",
                    self.settings.dir.display(),
                    e.diagnostics.len(),
                    if e.diagnostics.len() == 1 {
                        "problem"
                    } else {
                        "problems"
                    }
                ))
            }
        }
    }

    /// Makes sure the session is for the organization `desired` resolves to: built when
    /// missing or when the organization changed. The connection is resolved only then (not
    /// every cycle), so the token file is read, and any warning about it logged, once.
    fn ensure_session(&mut self, desired: &DesiredState) -> Result<(), SessionError> {
        if self
            .session
            .as_ref()
            .is_some_and(|s| s.manifest_org == desired.organization)
        {
            return Ok(());
        }
        let connection = match self.preflight.take() {
            Some((org, connection)) if org == desired.organization => connection,
            _ => config::resolve_from_process(
                &self.settings.connection,
                desired.organization.as_deref(),
            )?,
        };
        if let Some(session) = self.session.as_mut() {
            if session.organization == connection.organization {
                // `--organization` or TFE_ORGANIZATION wins over the manifest's new value.
                session.manifest_org = desired.organization.clone();
                return Ok(());
            }
            tracing::info!(
                "the organization changed from {} to {}; starting afresh",
                session.organization,
                connection.organization
            );
        }
        let mut session = self.new_session(&connection)?;
        session.manifest_org = desired.organization.clone();
        self.session = Some(session);
        Ok(())
    }

    fn new_session(&self, connection: &Connection) -> Result<OrgSession, SessionError> {
        let client = Client::new(
            connection,
            ClientOptions {
                concurrency: self.settings.concurrency,
                cancel: self.cancel.clone(),
                observer: Some(self.status.metrics.clone()),
                // A blip (a lost response, one 503) is retried within the cycle; a longer
                // outage fails the cycle quickly and the loop's backoff takes over, so
                // `/readyz` and the log show it within seconds.
                max_retries: CLIENT_RETRIES,
                request_timeout: self.settings.request_timeout,
                ..ClientOptions::default()
            },
        )
        .map_err(|e| SessionError::Client(e.to_string()))?;
        let settings = Settings {
            no_prune: self.settings.no_prune,
            allow_empty: self.settings.allow_empty,
            concurrency: self.settings.concurrency,
            cache_code: true,
        };
        Ok(OrgSession {
            organization: connection.organization.clone(),
            manifest_org: None,
            reconciler: Reconciler::new(client, settings, self.cancel.clone()),
            last_good: None,
            last_verify: None,
            drift_log: DriftLog::default(),
        })
    }

    async fn reconcile(&mut self, trigger: Trigger) -> CycleReport {
        if let Some(w) = self.watcher.as_mut() {
            w.ensure();
        }
        let started = Instant::now();
        let (report, result) = self.attempt(trigger).await;
        if let Some(result) = result {
            self.status
                .metrics
                .reconcile_finished(result, started.elapsed());
            self.last_ok = result == ReconcileResult::Success;
            if self.last_ok {
                self.status.readiness.succeeded();
            } else {
                self.status.readiness.failed();
            }
        }
        report
    }

    /// One reconcile, and what to record of it (`None`: nothing, as for an interrupted cycle
    /// or a file event that changed nothing).
    async fn attempt(&mut self, trigger: Trigger) -> (CycleReport, Option<ReconcileResult>) {
        use ReconcileResult::{Error, Invalid, Success};

        // 1. A whole, validated snapshot, or nothing.
        let desired = match self.load().await {
            Ok(loaded) => loaded.desired,
            Err(summary) => {
                // Without file events (the directory does not exist yet, or cannot be watched)
                // nothing would announce the fix: retry with backoff instead of waiting for
                // the timer.
                let watched = self.watcher.as_ref().is_some_and(DirWatcher::is_active);
                let outcome = if watched {
                    CycleOutcome::Skipped
                } else {
                    CycleOutcome::Failed
                };
                return (CycleReport::new(outcome, summary), Some(Invalid));
            }
        };

        // A file event that changed nothing that matters (a touched file, an unrelated file):
        // the service was already checked against exactly this snapshot.
        if trigger == Trigger::FileChange
            && self.last_ok
            && self
                .session
                .as_ref()
                .is_some_and(|s| s.last_good.as_ref() == Some(&desired))
        {
            let report = CycleReport::new(CycleOutcome::Unchanged, "the directory reads as before");
            return (report, None);
        }

        // 2. The organization's reconciler.
        let listed_once = self.listed_once;
        match self.ensure_session(&desired) {
            Ok(()) => {}
            Err(e) if !listed_once => {
                return (
                    CycleReport::new(CycleOutcome::Fatal(e.to_string()), ""),
                    None,
                );
            }
            Err(e) => {
                return (
                    CycleReport::new(CycleOutcome::Failed, e.to_string()),
                    Some(Error),
                );
            }
        }
        let Some(session) = self.session.as_mut() else {
            unreachable!("ensure_session sets the session");
        };

        // 3. What the organization holds. Code comes from the cache unless a full
        //    verification is due.
        let verify_all = session
            .last_verify
            .is_none_or(|t| t.elapsed() >= self.settings.verify_interval);
        let fetched = session.reconciler.fetch_actual(verify_all).await;
        let (actual, stats) = match fetched {
            Ok(v) => v,
            Err(_) if self.cancel.is_cancelled() => {
                return (CycleReport::new(CycleOutcome::Failed, "interrupted"), None);
            }
            Err(e) if !listed_once && e.is_fatal_at_startup() => {
                return (
                    CycleReport::new(CycleOutcome::Fatal(e.to_string()), ""),
                    None,
                );
            }
            Err(e) => {
                if e.status() == Some(401) {
                    // Re-read the token next time: it may have been rotated (a Secret update).
                    self.session = None;
                }
                let summary = format!("could not read the organization's policies: {e}");
                return (CycleReport::new(CycleOutcome::Failed, summary), Some(Error));
            }
        };
        self.listed_once = true;
        if verify_all {
            session.last_verify = Some(Instant::now());
        }
        let read = format!(
            "{} {} read, {} code {}{}",
            stats.policies,
            plural(stats.policies, "policy", "policies"),
            stats.downloads,
            plural(stats.downloads, "download", "downloads"),
            if verify_all {
                " (full verification)"
            } else {
                ""
            }
        );

        // 4. The plan.
        let plan = match session.reconciler.plan(&desired, &actual) {
            Ok(plan) => plan,
            Err(e) => {
                tracing::warn!("{e}");
                let report =
                    CycleReport::new(CycleOutcome::Skipped, format!("plan refused; {read}"));
                return (report, Some(Error));
            }
        };

        // 5. Drift: planned changes to policies the directory did not change.
        let (plan, drifted) = sort_out_drift(session, plan, &desired, &actual, self.settings.drift);
        self.status.metrics.set_drifted(drifted);

        // 6. Apply.
        let unchanged = plan.unchanged.len();
        let left_alone = if self.settings.drift == DriftMode::Warn && drifted > 0 {
            format!(
                ", {drifted} drifted {} left alone",
                plural(drifted, "policy", "policies")
            )
        } else {
            String::new()
        };
        if plan.is_empty() || self.settings.dry_run {
            for change in &plan.changes {
                tracing::info!(
                    policy = change.name(),
                    action = change.action().as_str(),
                    "dry run: would {}",
                    describe(change)
                );
            }
            let done = if plan.is_empty() {
                "no changes".to_owned()
            } else {
                format!("dry run, {} not applied", count_changes(&plan))
            };
            session.last_good = Some(desired);
            let summary = format!("{done}, {unchanged} unchanged{left_alone}; {read}");
            return (
                CycleReport::new(CycleOutcome::Succeeded, summary),
                Some(Success),
            );
        }

        let outcome = session.reconciler.apply(&plan).await;
        for (change, status) in plan.changes.iter().zip(&outcome.statuses) {
            let action = change.action().as_str();
            match status {
                ChangeStatus::Ok => {
                    self.status.metrics.action(action, true);
                    tracing::info!(policy = change.name(), action, "{}", past(change));
                }
                ChangeStatus::Failed(error) => {
                    self.status.metrics.action(action, false);
                    tracing::warn!(
                        policy = change.name(),
                        action,
                        "could not {}: {error}",
                        describe(change)
                    );
                }
            }
        }
        if self.cancel.is_cancelled() {
            return (CycleReport::new(CycleOutcome::Failed, "interrupted"), None);
        }
        if !outcome.ok() {
            let summary = format!(
                "{} of {} {} failed; {read}",
                outcome.failures(),
                plan.changes.len(),
                plural(plan.changes.len(), "change", "changes")
            );
            return (CycleReport::new(CycleOutcome::Failed, summary), Some(Error));
        }
        session.last_good = Some(desired);
        let summary = format!(
            "applied {}, {unchanged} unchanged{left_alone}; {read}",
            count_changes(&plan)
        );
        (
            CycleReport::new(CycleOutcome::Succeeded, summary),
            Some(Success),
        )
    }
}

impl Cycle for WatchCycle {
    fn run(&mut self, trigger: Trigger) -> impl Future<Output = CycleReport> {
        self.reconcile(trigger)
    }
}

/// Why the organization's reconciler could not be set up.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Client(String),
}

/// Finds the drifted changes of `plan`, logs each new drift once, and (with `--drift warn`)
/// removes them from the plan. Returns the plan to apply and the number of drifted policies.
/// The first reconcile of a session has nothing to compare with: it converges and reports none.
fn sort_out_drift(
    session: &mut OrgSession,
    plan: Plan,
    desired: &DesiredState,
    actual: &ActualState,
    mode: DriftMode,
) -> (Plan, usize) {
    let Some(previous) = &session.last_good else {
        return (plan, 0);
    };
    let (plan, drifted): (Plan, Vec<Change>) = match mode {
        DriftMode::Warn => drift::filter_plan(plan, previous, desired),
        DriftMode::Heal => {
            let drifted = plan
                .changes
                .iter()
                .filter(|c| !drift::local_changed(c.name(), previous, desired))
                .cloned()
                .collect();
            (plan, drifted)
        }
    };
    let fingerprints: BTreeMap<String, String> = drifted
        .iter()
        .map(|c| {
            (
                c.name().to_owned(),
                drift::remote_fingerprint(actual, c.name()),
            )
        })
        .collect();
    let fresh = session.drift_log.observe(&fingerprints);
    for change in drifted.iter().filter(|c| fresh.contains(c.name())) {
        let what = match mode {
            DriftMode::Heal => "reverting it to the directory (--drift heal)",
            DriftMode::Warn => "left alone (--drift warn); edit the directory to converge it",
        };
        tracing::warn!(
            policy = change.name(),
            drift = drift_kind(change),
            "drift: policy {} {}; {what}",
            change.name(),
            drift_description(change)
        );
    }
    (plan, fingerprints.len())
}

/// A label for the kind of drift, as a log field.
fn drift_kind(change: &Change) -> &'static str {
    match change {
        Change::Create { .. } => "deleted",
        Change::Delete { .. } => "added",
        Change::Update { .. } => "changed",
    }
}

/// What happened on the service, read backwards from the change that would undo it.
fn drift_description(change: &Change) -> String {
    match change {
        Change::Create { .. } => "was deleted on the service".to_owned(),
        Change::Delete { .. } => "was added on the service".to_owned(),
        Change::Update {
            mode_from,
            mode_to,
            code,
            ..
        } => {
            let mut parts = Vec::new();
            if mode_from != mode_to {
                parts.push(format!("mode {mode_from} (the directory says {mode_to})"));
            }
            match code {
                Some(c) if c.from == RemoteCode::Missing => parts.push("no code".to_owned()),
                Some(_) => parts.push("code that differs from the directory".to_owned()),
                None => {}
            }
            format!("was changed on the service: {}", parts.join(", "))
        }
    }
}

/// "create policy x (hard-mandatory)", "update policy x: mode a -> b, upload code".
fn describe(change: &Change) -> String {
    match change {
        Change::Create { name, mode, .. } => format!("create policy {name} ({mode})"),
        Change::Delete { name, .. } => format!("delete policy {name}"),
        Change::Update { name, .. } => format!("update policy {name}: {}", update_detail(change)),
    }
}

/// "created policy x (hard-mandatory)", "updated policy x: mode a -> b, code uploaded".
fn past(change: &Change) -> String {
    match change {
        Change::Create { name, mode, .. } => format!("created policy {name} ({mode})"),
        Change::Delete { name, .. } => format!("deleted policy {name}"),
        Change::Update { name, .. } => format!("updated policy {name}: {}", update_detail(change)),
    }
}

fn update_detail(change: &Change) -> String {
    let Change::Update {
        mode_from,
        mode_to,
        code,
        ..
    } = change
    else {
        return String::new();
    };
    let mut parts = Vec::new();
    if mode_from != mode_to {
        parts.push(format!("mode {mode_from} -> {mode_to}"));
    }
    if code.is_some() {
        parts.push("new code".to_owned());
    }
    parts.join(", ")
}

/// "3 changes (1 create, 2 updates)".
fn count_changes(plan: &Plan) -> String {
    let n = plan.changes.len();
    let parts: Vec<String> = [
        (Action::Create, "create", "creates"),
        (Action::Update, "update", "updates"),
        (Action::Delete, "delete", "deletes"),
    ]
    .into_iter()
    .filter_map(|(action, one, many)| {
        let k = plan.count(action);
        (k > 0).then(|| format!("{k} {}", plural(k, one, many)))
    })
    .collect();
    format!(
        "{n} {} ({})",
        plural(n, "change", "changes"),
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mode, PolicyId, PolicyName};
    use crate::plan::CodeChange;

    fn update(mode_from: Mode, mode_to: Mode, code: Option<RemoteCode>) -> Change {
        Change::Update {
            name: PolicyName::new("p").unwrap(),
            id: PolicyId("pol-1".into()),
            mode_from,
            mode_to,
            code: code.map(|from| CodeChange {
                from,
                to: b"new".to_vec(),
            }),
        }
    }

    #[test]
    fn drift_reads_as_what_happened_on_the_service() {
        use Mode::*;
        assert_eq!(
            drift_description(&update(Advisory, HardMandatory, None)),
            "was changed on the service: mode advisory (the directory says hard-mandatory)"
        );
        assert_eq!(
            drift_description(&update(Advisory, Advisory, Some(RemoteCode::Missing))),
            "was changed on the service: no code"
        );
        assert_eq!(
            drift_description(&update(
                Advisory,
                SoftMandatory,
                Some(RemoteCode::Present(b"x".to_vec()))
            )),
            "was changed on the service: mode advisory (the directory says soft-mandatory), \
             code that differs from the directory"
        );
    }

    #[test]
    fn actions_read_as_a_sentence() {
        use Mode::*;
        let change = update(Advisory, HardMandatory, Some(RemoteCode::Missing));
        assert_eq!(
            past(&change),
            "updated policy p: mode advisory -> hard-mandatory, new code"
        );
        assert_eq!(
            describe(&change),
            "update policy p: mode advisory -> hard-mandatory, new code"
        );
    }
}
