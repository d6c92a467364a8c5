//! Executes a plan against the service.
//!
//! Creates and updates run first, concurrently (the client bounds requests in flight); each
//! create is followed by its upload. Deletions run only after every create and update succeeded,
//! because a deleted policy cannot be restored. Every independent action is attempted even when
//! others fail, and each change gets its own status. Once the cancellation token fires no new
//! change starts; the next run repairs whatever was half done (a policy created without code is
//! planned as an upload, never created again).

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::client::{ApiError, Client};
use crate::plan::{Action, Change, Plan};
use crate::report::{Status, plural};

/// The status of every change of a plan, in the plan's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub statuses: Vec<Status>,
}

impl ApplyOutcome {
    /// Whether every change succeeded.
    pub fn ok(&self) -> bool {
        self.statuses.iter().all(|s| *s == Status::Ok)
    }

    pub fn failures(&self) -> usize {
        self.statuses.iter().filter(|s| **s != Status::Ok).count()
    }
}

const INTERRUPTED: &str = "not started: interrupted";

/// Applies `plan`, running at most `concurrency` changes at once.
pub async fn apply(
    client: &Client,
    plan: &Plan,
    concurrency: usize,
    cancel: &CancellationToken,
) -> ApplyOutcome {
    let mut statuses = vec![Status::Failed(INTERRUPTED.into()); plan.changes.len()];
    let (deletes, first): (Vec<usize>, Vec<usize>) =
        (0..plan.changes.len()).partition(|&i| plan.changes[i].action() == Action::Delete);

    run_phase(
        client,
        plan,
        first.clone(),
        concurrency,
        cancel,
        &mut statuses,
    )
    .await;

    let failed = first.iter().filter(|&&i| statuses[i] != Status::Ok).count();
    if failed > 0 {
        let why = if cancel.is_cancelled() {
            INTERRUPTED.to_owned()
        } else {
            format!(
                "not attempted: {failed} {} failed, and deletions run only after every create \
                 and update succeeded",
                plural(failed, "change", "changes")
            )
        };
        for i in deletes {
            statuses[i] = Status::Failed(why.clone());
        }
    } else {
        run_phase(client, plan, deletes, concurrency, cancel, &mut statuses).await;
    }
    ApplyOutcome { statuses }
}

/// Runs the changes at `indices` of `plan`. (Indices rather than `&Change` items keep the
/// stream's closure free of higher-ranked lifetimes, so the future stays `Send`.)
async fn run_phase(
    client: &Client,
    plan: &Plan,
    indices: Vec<usize>,
    concurrency: usize,
    cancel: &CancellationToken,
    statuses: &mut [Status],
) {
    let mut results = futures::stream::iter(indices)
        .map(|i| async move {
            let change = &plan.changes[i];
            if cancel.is_cancelled() {
                return (i, Status::Failed(INTERRUPTED.into()));
            }
            let status = match apply_change(client, change).await {
                Ok(()) => {
                    tracing::debug!(policy = change.name(), action = change.action().as_str(), "applied");
                    Status::Ok
                }
                Err(e) => {
                    tracing::debug!(policy = change.name(), action = change.action().as_str(), error = %e, "failed");
                    Status::Failed(e.to_string())
                }
            };
            (i, status)
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((i, status)) = results.next().await {
        statuses[i] = status;
    }
}

async fn apply_change(client: &Client, change: &Change) -> Result<(), ApiError> {
    match change {
        Change::Create { name, mode, code } => {
            // Safe to repeat: a create whose response was lost, or a race with another sync,
            // comes back as the policy that already exists, with our mode set.
            let created = client.create(name, *mode).await?;
            client.upload(&created.id, code).await
        }
        Change::Update {
            name,
            id,
            mode_from,
            mode_to,
            code,
        } => {
            if mode_from != mode_to {
                client.set_mode(id, name, *mode_to).await?;
            }
            if let Some(code) = code {
                client.upload(id, &code.to).await?;
            }
            Ok(())
        }
        Change::Delete { id, .. } => client.delete(id).await,
    }
}
