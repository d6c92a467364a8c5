//! The daemon's Prometheus metrics, exposed at `/metrics` in the OpenMetrics text format (which
//! Prometheus scrapes natively). Names follow Prometheus conventions: a `tfe_policy_sync_`
//! prefix, base units, `_total` on counters (the encoder appends it).

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::plan::Action;

/// The `result` label of `tfe_policy_sync_actions_total`.
const ACTION_SUCCESS: &str = "success";
const ACTION_ERROR: &str = "error";

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    status: String,
}

/// How a reconcile ended, as the `result` label spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileResult {
    /// The plan was applied (or, with `--dry-run`, computed) without error.
    Success,
    /// Reading the service or applying a change failed.
    Error,
    /// The policy directory was missing or invalid; nothing was sent.
    Invalid,
}

impl ReconcileResult {
    pub const ALL: [ReconcileResult; 3] = [
        ReconcileResult::Success,
        ReconcileResult::Error,
        ReconcileResult::Invalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReconcileResult::Success => "success",
            ReconcileResult::Error => "error",
            ReconcileResult::Invalid => "invalid",
        }
    }
}

/// Every metric the daemon exports. Cheap to update from any thread.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    duration: Histogram,
    actions: Family<ActionLabels, Counter>,
    drifted: Gauge,
    requests: Family<RequestLabels, Counter>,
    rate_limited: Counter,
    last_success: Gauge<f64, AtomicU64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "tfe_policy_sync_reconcile",
            "Reconciles by result (success, error, invalid)",
            reconciles.clone(),
        );
        // 10 ms … ~80 s: a no-op on loopback to a slow cold sync of hundreds of policies.
        let duration = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.01, 2.0, 14,
        ));
        registry.register(
            "tfe_policy_sync_reconcile_duration_seconds",
            "Time one reconcile took, from reading the directory to the last applied change",
            duration.clone(),
        );
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "tfe_policy_sync_actions",
            "Changes applied to the service by action (create, update, delete) and result",
            actions.clone(),
        );
        let drifted = Gauge::default();
        registry.register(
            "tfe_policy_sync_drifted_policies",
            "Policies the latest reconcile found changed on the service while unchanged in the \
             directory (left alone with --drift warn, reverted with --drift heal)",
            drifted.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "tfe_policy_sync_api_requests",
            "Responses from the Policies API by method and status (status=\"error\" when no \
             response arrived)",
            requests.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "tfe_policy_sync_rate_limited",
            "Responses 429 (rate limit exceeded) from the Policies API",
            rate_limited.clone(),
        );
        let last_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "tfe_policy_sync_last_success_timestamp_seconds",
            "Unix time of the end of the latest successful reconcile",
            last_success.clone(),
        );
        registry.register(
            "tfe_policy_sync_build",
            "Build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        // Every series a dashboard or an alert reads exists from the start, at 0: a rate over
        // a series that does not exist yet is "no data", not 0.
        for result in ReconcileResult::ALL {
            drop(reconciles.get_or_create(&ResultLabels {
                result: result.as_str(),
            }));
        }
        for action in [Action::Create, Action::Update, Action::Delete] {
            for result in [ACTION_SUCCESS, ACTION_ERROR] {
                drop(actions.get_or_create(&ActionLabels {
                    action: action.as_str(),
                    result,
                }));
            }
        }
        Metrics {
            registry,
            reconciles,
            duration,
            actions,
            drifted,
            requests,
            rate_limited,
            last_success,
        }
    }

    /// Counts one reconcile and its duration; a success also stamps the last-success time.
    pub fn reconcile_finished(&self, result: ReconcileResult, took: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .inc();
        if result != ReconcileResult::Invalid {
            self.duration.observe(took.as_secs_f64());
        }
        if result == ReconcileResult::Success {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
    }

    /// Counts one applied change. `action` is `create`, `update` or `delete`.
    pub fn action(&self, action: &'static str, ok: bool) {
        let result = if ok { ACTION_SUCCESS } else { ACTION_ERROR };
        self.actions
            .get_or_create(&ActionLabels { action, result })
            .inc();
    }

    pub fn set_drifted(&self, n: usize) {
        self.drifted.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts one API response (`None`: the request got no response at all).
    pub fn api_response(&self, method: &str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                status,
            })
            .inc();
    }

    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// The whole registry in OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The client reports every response here: `api_requests_total` and `rate_limited_total`.
impl crate::client::RequestObserver for Metrics {
    fn on_response(&self, method: &str, status: Option<u16>) {
        self.api_response(method, status);
    }

    fn on_rate_limited(&self) {
        self.rate_limited();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bug (audit, MED): a label series appeared only with its first event, so an alert on
    /// `rate(tfe_policy_sync_reconcile_total{result="error"}[5m])` or on failed deletes saw no
    /// series at all (not 0) until the first failure.
    #[test]
    fn every_result_and_action_series_exists_at_zero_before_any_event() {
        let text = Metrics::new().encode();
        for result in ["success", "error", "invalid"] {
            let line = format!("tfe_policy_sync_reconcile_total{{result=\"{result}\"}} 0");
            assert!(text.contains(&line), "missing {line:?} in:\n{text}");
        }
        for action in ["create", "update", "delete"] {
            for result in ["success", "error"] {
                let line = format!(
                    "tfe_policy_sync_actions_total{{action=\"{action}\",result=\"{result}\"}} 0"
                );
                assert!(text.contains(&line), "missing {line:?} in:\n{text}");
            }
        }
    }

    #[test]
    fn the_exposition_carries_every_documented_name() {
        let m = Metrics::new();
        m.reconcile_finished(ReconcileResult::Success, Duration::from_millis(120));
        m.reconcile_finished(ReconcileResult::Error, Duration::from_millis(5));
        m.action("create", true);
        m.set_drifted(2);
        m.api_response("GET", Some(200));
        m.api_response("PATCH", None);
        m.rate_limited();
        let text = m.encode();
        for line in [
            "tfe_policy_sync_reconcile_total{result=\"success\"} 1",
            "tfe_policy_sync_reconcile_total{result=\"error\"} 1",
            "tfe_policy_sync_reconcile_duration_seconds_count 2",
            "tfe_policy_sync_actions_total{action=\"create\",result=\"success\"} 1",
            "tfe_policy_sync_drifted_policies 2",
            "tfe_policy_sync_api_requests_total{method=\"GET\",status=\"200\"} 1",
            "tfe_policy_sync_api_requests_total{method=\"PATCH\",status=\"error\"} 1",
            "tfe_policy_sync_rate_limited_total 1",
            "tfe_policy_sync_build_info{version=\"",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        let stamp = text
            .lines()
            .find_map(|l| l.strip_prefix("tfe_policy_sync_last_success_timestamp_seconds "))
            .expect("last success gauge");
        assert!(stamp.parse::<f64>().unwrap() > 1.6e9, "{stamp}");
    }
}
