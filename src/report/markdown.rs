//! The pull-request comment: a summary table first, then each code diff in a `diff` fenced block
//! folded in `<details>`, kept under [`MAX_MARKDOWN_CHARS`] (GitHub refuses comments over 65,535).

use std::fmt::Write as _;

use super::{Report, Status, diff, summary_line};
use crate::plan::{Action, Change};

/// The most characters a Markdown report may have.
pub const MAX_MARKDOWN_CHARS: usize = 60_000;

/// Room kept for the truncation note.
const NOTE_RESERVE: usize = 400;

fn icon(action: Action) -> &'static str {
    match action {
        Action::Create => "➕",
        Action::Update => "🔄",
        Action::Delete => "🗑️",
    }
}

fn mode_cell(change: &Change) -> String {
    match change.modes() {
        (Some(from), Some(to)) if from != to => format!("{from} → **{to}**"),
        (_, Some(m)) | (Some(m), None) => m.to_string(),
        (None, None) => String::new(),
    }
}

fn code_cell(change: &Change) -> &'static str {
    match change.action() {
        Action::Create => "new",
        Action::Delete => "removed",
        Action::Update if change.code_changed() => "changed",
        Action::Update => "unchanged",
    }
}

fn status_cell(status: Option<&Status>) -> String {
    match status {
        None => String::new(),
        Some(Status::Ok) => " ✅ |".into(),
        Some(Status::Failed(e)) => format!(" ❌ {} |", e.replace('|', "\\|").replace('\n', " ")),
    }
}

/// A fence longer than any run of backticks inside the text, so code cannot close it early.
fn fence_for(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

pub fn render(report: &Report<'_>) -> String {
    let plan = report.plan;
    let mut out = String::new();
    let title = if report.statuses.is_some() {
        "sync"
    } else {
        "plan"
    };
    let _ = writeln!(
        out,
        "### tfe-policy-sync {title} for `{}`\n",
        plan.organization
    );
    if plan.is_empty() {
        let _ = writeln!(
            out,
            "**No changes.** The organization matches the policy directory ({} unchanged).",
            plan.unchanged.len()
        );
        return out;
    }

    let _ = writeln!(out, "**Plan:** {}.\n", summary_line(plan));
    let with_status = report.statuses.is_some();
    let _ = writeln!(
        out,
        "| | Policy | Action | Mode | Code |{}",
        if with_status { " Result |" } else { "" }
    );
    let _ = writeln!(
        out,
        "|---|---|---|---|---|{}",
        if with_status { "---|" } else { "" }
    );

    let mut omitted_rows = 0;
    for (i, change) in plan.changes.iter().enumerate() {
        let row = format!(
            "| {} | `{}` | {} | {} | {} |{}\n",
            icon(change.action()),
            change.name(),
            change.action().as_str(),
            mode_cell(change),
            code_cell(change),
            status_cell(report.status(i)),
        );
        if out.len() + row.len() + NOTE_RESERVE > MAX_MARKDOWN_CHARS {
            omitted_rows = plan.changes.len() - i;
            break;
        }
        out.push_str(&row);
    }
    out.push('\n');

    let mut omitted_diffs = 0;
    let with_code: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.code_changed() || c.action() == Action::Delete)
        .collect();
    for change in &with_code {
        if omitted_rows > 0 {
            omitted_diffs = with_code.len();
            break;
        }
        let (from, to) = change.code();
        let diff = diff::unified(from, to);
        let fence = fence_for(&diff);
        let block = format!(
            "<details><summary><code>{}</code>: {}</summary>\n\n{fence}diff\n{}{}{fence}\n\n</details>\n\n",
            change.name(),
            change.action().as_str(),
            diff,
            if diff.ends_with('\n') { "" } else { "\n" },
        );
        if out.len() + block.len() + NOTE_RESERVE > MAX_MARKDOWN_CHARS {
            omitted_diffs += 1;
            continue;
        }
        out.push_str(&block);
    }

    if omitted_rows > 0 || omitted_diffs > 0 {
        let _ = writeln!(
            out,
            "> [!NOTE]\n> This report was truncated to stay under {MAX_MARKDOWN_CHARS} characters: \
             {omitted_rows} table rows and {omitted_diffs} diffs are not shown. \
             Run `tfe-policy-sync plan` to see the whole plan."
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;
    use crate::model::{Mode, RemoteCode};
    use crate::plan::{CodeChange, Plan};

    #[test]
    fn summary_table_then_folded_diffs() {
        let plan = fixtures::every_kind();
        let md = render(&Report::plan(&plan));
        let table = md.find("| | Policy |").unwrap();
        let first_diff = md.find("<details>").unwrap();
        assert!(table < first_diff);
        assert!(md.contains("```diff\n--- /dev/null\n+++ local\n"), "{md}");
        insta::assert_snapshot!(md);
    }

    #[test]
    fn no_changes_says_so() {
        let md = render(&Report::plan(&fixtures::empty()));
        assert!(md.contains("**No changes.**"), "{md}");
    }

    #[test]
    fn code_with_backticks_cannot_close_the_fence() {
        let fence = fence_for("a ```` b");
        assert_eq!(fence, "`````");
    }

    #[test]
    fn huge_plans_stay_under_the_limit_and_say_they_were_truncated() {
        // Every line differs, so each diff is far larger than its context.
        let big = "x = 1\n".repeat(2_000);
        let changes = (0..200)
            .map(|i| Change::Update {
                name: fixtures::name(&format!("policy-{i:03}")),
                id: crate::model::PolicyId(format!("pol-{i}")),
                mode_from: Mode::Advisory,
                mode_to: Mode::Advisory,
                code: Some(CodeChange {
                    from: RemoteCode::Present(big.clone().into_bytes()),
                    to: big.replace('1', &i.to_string()).into_bytes(),
                }),
            })
            .collect();
        let plan = Plan {
            organization: "o".into(),
            changes,
            unchanged: vec![],
            ignored: vec![],
            kept: vec![],
        };
        let md = render(&Report::plan(&plan));
        assert!(md.chars().count() <= MAX_MARKDOWN_CHARS, "{}", md.len());
        assert!(md.contains("truncated"), "{md}");
        // The table is complete even when diffs are cut.
        assert!(md.contains("`policy-199`"));
    }

    #[test]
    fn thousands_of_rows_are_cut_too() {
        let changes = (0..5_000)
            .map(|i| Change::Create {
                name: fixtures::name(&format!("a-rather-long-policy-name-{i:05}")),
                mode: Mode::Advisory,
                code: vec![],
            })
            .collect();
        let plan = Plan {
            organization: "o".into(),
            changes,
            unchanged: vec![],
            ignored: vec![],
            kept: vec![],
        };
        let md = render(&Report::plan(&plan));
        assert!(md.len() <= MAX_MARKDOWN_CHARS, "{}", md.len());
        assert!(md.contains("table rows"), "{md}");
    }
}
