//! One reconcile, shared by `plan`, `sync` and `watch`: read what the organization holds, plan
//! against the desired state, and apply.
//!
//! Reading the organization costs the list pages plus one download per policy whose code may
//! have changed. A [`Reconciler`] that lives across cycles (the `watch` daemon) remembers the code
//! it saw keyed by `(id, updated-at)` — the service changes `updated-at` on every upload — and
//! downloads again only what changed, unless asked to verify everything.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::apply::{self, ApplyOutcome};
use crate::client::{ApiError, Client, RemotePolicySummary};
use crate::model::{ActualState, DesiredState, PolicyId, RemoteCode, RemotePolicy};
use crate::plan::{self, Action, Plan, PlanError, PlanOptions};

/// What shapes every reconcile besides the two states.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--no-prune`: never delete, whatever the manifest says.
    pub no_prune: bool,
    /// `--allow-empty`: permit a plan that deletes every remote policy (an empty manifest, or
    /// one that lists no policy the service has).
    pub allow_empty: bool,
    /// Changes (and downloads) in flight at most.
    pub concurrency: usize,
    /// Remember downloaded code across cycles (for a long-lived reconciler).
    pub cache_code: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            no_prune: false,
            allow_empty: false,
            concurrency: 8,
            cache_code: false,
        }
    }
}

/// Code seen on the service: valid as long as the policy's `updated-at` is the same.
#[derive(Debug, Clone)]
struct CachedCode {
    updated_at: Option<String>,
    code: RemoteCode,
}

/// Reads, plans and applies against one organization.
pub struct Reconciler {
    client: Client,
    settings: Settings,
    cache: HashMap<PolicyId, CachedCode>,
    cancel: CancellationToken,
}

/// What one fetch cost, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    pub policies: usize,
    pub downloads: usize,
    pub cache_hits: usize,
}

impl Reconciler {
    pub fn new(client: Client, settings: Settings, cancel: CancellationToken) -> Self {
        Reconciler {
            client,
            settings,
            cache: HashMap::new(),
            cancel,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Everything the organization holds, with the code of every policy.
    ///
    /// With `verify_all` false, code is taken from the cache when the policy's id and
    /// `updated-at` are unchanged since it was downloaded.
    pub async fn fetch_actual(
        &mut self,
        verify_all: bool,
    ) -> Result<(ActualState, FetchStats), ApiError> {
        let summaries = self.client.list_policies().await?;
        let mut stats = FetchStats {
            policies: summaries.len(),
            ..FetchStats::default()
        };
        let mut known = Vec::with_capacity(summaries.len());
        let mut to_download = Vec::new();
        for summary in summaries {
            let cached = self
                .cache
                .get(&summary.id)
                .filter(|c| !verify_all && c.updated_at == summary.updated_at);
            match (cached, summary.has_code) {
                // Nothing was ever uploaded: download would answer 404.
                (_, false) => known.push(remote(summary, RemoteCode::Missing)),
                (Some(c), true) => {
                    stats.cache_hits += 1;
                    let code = c.code.clone();
                    known.push(remote(summary, code));
                }
                (None, true) => to_download.push(summary),
            }
        }
        stats.downloads = to_download.len();
        let first_download = known.len();

        let client = &self.client;
        let mut downloads = futures::stream::iter(to_download)
            .map(|summary| async move {
                let code = client.download(&summary.id).await?;
                Ok::<_, ApiError>(remote(summary, code))
            })
            .buffer_unordered(self.settings.concurrency.max(1));
        while let Some(policy) = downloads.next().await {
            known.push(policy?);
        }
        drop(downloads);

        if self.settings.cache_code {
            // Entries that were hits are still valid: keep them, drop those of policies no
            // longer listed, and add what was downloaded. (Rebuilding the whole cache copied
            // every policy's code on every cycle.)
            let listed: HashSet<&PolicyId> = known.iter().map(|p| &p.id).collect();
            self.cache.retain(|id, _| listed.contains(id));
            for p in &known[first_download..] {
                let cached = CachedCode {
                    updated_at: p.updated_at.clone(),
                    code: p.code.clone(),
                };
                self.cache.insert(p.id.clone(), cached);
            }
        }
        Ok((ActualState::from_policies(known), stats))
    }

    /// The plan that makes `actual` equal to `desired`.
    pub fn plan(&self, desired: &DesiredState, actual: &ActualState) -> Result<Plan, PlanError> {
        let options = PlanOptions::new(desired, self.settings.no_prune, self.settings.allow_empty)?;
        plan::plan(self.client.organization(), desired, actual, &options)
    }

    /// Applies `plan`, then forgets the cached code of every policy it touched.
    pub async fn apply(&mut self, plan: &Plan) -> ApplyOutcome {
        let outcome =
            apply::apply(&self.client, plan, self.settings.concurrency, &self.cancel).await;
        for change in &plan.changes {
            if let crate::plan::Change::Update { id, .. } | crate::plan::Change::Delete { id, .. } =
                change
            {
                self.cache.remove(id);
            }
        }
        outcome
    }

    /// Fetch and plan: what `plan` shows and `sync` starts from.
    pub async fn plan_once(&mut self, desired: &DesiredState) -> Result<Plan, ReconcileError> {
        let (actual, stats) = self.fetch_actual(false).await?;
        tracing::debug!(
            policies = stats.policies,
            downloads = stats.downloads,
            cache_hits = stats.cache_hits,
            "read the organization"
        );
        let plan = self.plan(desired, &actual)?;
        tracing::info!(
            create = plan.count(Action::Create),
            update = plan.count(Action::Update),
            delete = plan.count(Action::Delete),
            unchanged = plan.unchanged.len(),
            "planned"
        );
        Ok(plan)
    }
}

fn remote(summary: RemotePolicySummary, code: RemoteCode) -> RemotePolicy {
    RemotePolicy {
        id: summary.id,
        name: summary.name,
        mode: summary.mode,
        updated_at: summary.updated_at,
        code,
    }
}

/// Why a reconcile could not produce a plan.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("could not read the organization's policies")]
    Api(#[from] ApiError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}
