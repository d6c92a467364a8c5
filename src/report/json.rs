//! The machine-readable report, exactly the object the contract shows: `organization`,
//! `changes` (with `status` and `error` after `sync`) and `summary`.

use std::io::{self, Write};

use serde::Serialize;

use super::{Report, Status};
use crate::model::Mode;
use crate::plan::{Action, Change};

#[derive(Serialize)]
struct Document<'a> {
    organization: &'a str,
    changes: Vec<JsonChange<'a>>,
    summary: Summary,
}

#[derive(Serialize)]
struct JsonChange<'a> {
    name: &'a str,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<ModeChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_changed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct ModeChange {
    from: Option<Mode>,
    to: Option<Mode>,
}

#[derive(Serialize)]
struct Summary {
    create: usize,
    update: usize,
    delete: usize,
    unchanged: usize,
}

fn change<'a>(c: &'a Change, status: Option<&'a Status>) -> JsonChange<'a> {
    // The contract lists deletes with their name and action only.
    let (mode, code_changed) = match c.action() {
        Action::Delete => (None, None),
        _ => {
            let (from, to) = c.modes();
            (Some(ModeChange { from, to }), Some(c.code_changed()))
        }
    };
    JsonChange {
        name: c.name(),
        action: c.action().as_str(),
        mode,
        code_changed,
        status: status.map(|s| match s {
            Status::Ok => "ok",
            Status::Failed(_) => "failed",
        }),
        error: match status {
            Some(Status::Failed(e)) => Some(e),
            _ => None,
        },
    }
}

pub fn render(report: &Report<'_>, out: &mut impl Write) -> io::Result<()> {
    let plan = report.plan;
    let doc = Document {
        organization: &plan.organization,
        changes: plan
            .changes
            .iter()
            .enumerate()
            .map(|(i, c)| change(c, report.status(i)))
            .collect(),
        summary: Summary {
            create: plan.count(Action::Create),
            update: plan.count(Action::Update),
            delete: plan.count(Action::Delete),
            unchanged: plan.unchanged.len(),
        },
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;
    use crate::report::Format;

    fn render_json(report: Report<'_>) -> serde_json::Value {
        let mut out = Vec::new();
        report.render(Format::Json, &mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn plan_matches_the_contract_shape() {
        let plan = fixtures::every_kind();
        let v = render_json(Report::plan(&plan));
        assert_eq!(v["organization"], "my-organization");
        assert_eq!(
            v["changes"][0],
            serde_json::json!({"name": "require-tags", "action": "create",
                "mode": {"from": null, "to": "hard-mandatory"}, "code_changed": true})
        );
        assert_eq!(
            v["changes"][1],
            serde_json::json!({"name": "restrict-regions", "action": "update",
                "mode": {"from": "soft-mandatory", "to": "advisory"}, "code_changed": false})
        );
        assert_eq!(
            v["changes"][4],
            serde_json::json!({"name": "old-policy", "action": "delete"})
        );
        assert_eq!(
            v["summary"],
            serde_json::json!({"create": 1, "update": 3, "delete": 1, "unchanged": 4})
        );
        insta::assert_json_snapshot!(v);
    }

    #[test]
    fn sync_adds_status_and_error() {
        let plan = fixtures::every_kind();
        let mut statuses = vec![Status::Ok; plan.changes.len()];
        statuses[0] = Status::Failed("boom".into());
        let v = render_json(Report::plan(&plan).with_statuses(&statuses));
        assert_eq!(v["changes"][0]["status"], "failed");
        assert_eq!(v["changes"][0]["error"], "boom");
        assert_eq!(v["changes"][1]["status"], "ok");
        assert!(v["changes"][1].get("error").is_none());
    }

    #[test]
    fn no_changes_is_an_empty_list() {
        let plan = fixtures::empty();
        let v = render_json(Report::plan(&plan));
        assert_eq!(v["changes"], serde_json::json!([]));
        assert_eq!(v["summary"]["unchanged"], 2);
    }
}
