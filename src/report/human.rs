//! The report for people, shaped like `terraform plan`: one block per changed policy, mode
//! changes as `advisory -> hard-mandatory`, a unified diff of the code, and a summary line.

use std::io::{self, Write};

use super::{Report, Status, diff, plural, summary_line};
use crate::plan::{Action, Change};

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const CYAN: &str = "\x1b[36m";

struct Paint {
    on: bool,
}

impl Paint {
    fn paint(&self, style: &str, text: &str) -> String {
        if self.on {
            format!("{style}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }
}

fn symbol(action: Action) -> (&'static str, &'static str, &'static str) {
    match action {
        Action::Create => ("+", GREEN, "will be created"),
        Action::Update => ("~", YELLOW, "will be updated in-place"),
        Action::Delete => ("-", RED, "will be deleted"),
    }
}

pub fn render(report: &Report<'_>, out: &mut impl Write) -> io::Result<()> {
    let plan = report.plan;
    let p = Paint { on: report.color };
    if plan.is_empty() {
        writeln!(
            out,
            "{} Organization {:?} matches the policy directory ({} {}).",
            p.paint(&format!("{BOLD}{GREEN}"), "No changes."),
            plan.organization,
            plan.unchanged.len(),
            plural(plan.unchanged.len(), "policy", "policies"),
        )?;
        return notes(report, out);
    }

    writeln!(
        out,
        "tfe-policy-sync will perform the following actions on organization {:?}:",
        plan.organization
    )?;
    // The legend, as Terraform's: only the symbols this plan uses.
    for (action, symbol, colour, meaning) in [
        (Action::Create, "+", GREEN, "create"),
        (Action::Update, "~", YELLOW, "update in-place"),
        (Action::Delete, "-", RED, "delete"),
    ] {
        if plan.count(action) > 0 {
            writeln!(out, "  {} {meaning}", p.paint(colour, symbol))?;
        }
    }

    for (i, change) in plan.changes.iter().enumerate() {
        writeln!(out)?;
        block(&p, change, report.status(i), out)?;
    }
    writeln!(out)?;
    let summary = format!("Plan: {}.", summary_line(plan));
    writeln!(out, "{}", p.paint(BOLD, &summary))?;

    if let Some(statuses) = report.statuses {
        let failed = report.failures();
        let line = if failed == 0 {
            p.paint(
                &format!("{BOLD}{GREEN}"),
                &format!(
                    "Sync complete: {} {} applied.",
                    statuses.len(),
                    plural(statuses.len(), "change", "changes")
                ),
            )
        } else {
            p.paint(
                &format!("{BOLD}{RED}"),
                &format!(
                    "Sync failed: {failed} of {} {} failed.",
                    statuses.len(),
                    plural(statuses.len(), "change", "changes")
                ),
            )
        };
        writeln!(out, "{line}")?;
    }
    notes(report, out)
}

fn block(
    p: &Paint,
    change: &Change,
    status: Option<&Status>,
    out: &mut impl Write,
) -> io::Result<()> {
    let (sym, color, verb) = symbol(change.action());
    writeln!(
        out,
        "  {} policy {} {verb}",
        p.paint(color, sym),
        p.paint(BOLD, &format!("{:?}", change.name()))
    )?;
    match change.modes() {
        (Some(from), Some(to)) if from != to => writeln!(
            out,
            "      mode: {} -> {}",
            from,
            p.paint(color, to.as_str())
        )?,
        (Some(m), Some(_)) => writeln!(out, "      mode: {m}")?,
        (None, Some(to)) => writeln!(out, "      mode: {}", p.paint(color, to.as_str()))?,
        (Some(from), None) => writeln!(out, "      mode: {}", p.paint(color, from.as_str()))?,
        (None, None) => {}
    }
    let (from, to) = change.code();
    if change.code_changed() || change.action() == Action::Delete {
        for line in diff::unified(from, to).lines() {
            let styled = match line.as_bytes().first() {
                Some(b'+') if !line.starts_with("+++") => p.paint(GREEN, line),
                Some(b'-') if !line.starts_with("---") => p.paint(RED, line),
                Some(b'@') => p.paint(CYAN, line),
                _ => line.to_owned(),
            };
            writeln!(out, "      {styled}")?;
        }
    } else {
        writeln!(out, "      code: unchanged")?;
    }
    match status {
        Some(Status::Ok) => writeln!(out, "      {}", p.paint(GREEN, "done"))?,
        Some(Status::Failed(e)) => writeln!(out, "      {} {e}", p.paint(RED, "failed:"))?,
        None => {}
    }
    Ok(())
}

/// Policies the plan leaves alone on purpose, so that nobody wonders why.
fn notes(report: &Report<'_>, out: &mut impl Write) -> io::Result<()> {
    let plan = report.plan;
    if !plan.ignored.is_empty() {
        writeln!(
            out,
            "Ignored (matched by ignore:): {}",
            plan.ignored.join(", ")
        )?;
    }
    if !plan.kept.is_empty() {
        writeln!(
            out,
            "Not in the manifest, kept because pruning is off: {}",
            plan.kept.join(", ")
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures;
    use super::*;
    use crate::report::Format;

    fn render_to_string(report: Report<'_>) -> String {
        let mut out = Vec::new();
        report.render(Format::Human, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plan_with_every_kind_of_change() {
        let plan = fixtures::every_kind();
        insta::assert_snapshot!(render_to_string(Report::plan(&plan)));
    }

    #[test]
    fn no_changes_says_so_plainly() {
        let plan = fixtures::empty();
        let text = render_to_string(Report::plan(&plan));
        assert!(text.starts_with("No changes."), "{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn sync_outcome_shows_each_status_and_the_failure_count() {
        let plan = fixtures::every_kind();
        let mut statuses = vec![Status::Ok; plan.changes.len()];
        statuses[4] = Status::Failed("the service answered 500".into());
        let text = render_to_string(Report::plan(&plan).with_statuses(&statuses));
        assert!(text.contains("failed: the service answered 500"), "{text}");
        assert!(
            text.contains("Sync failed: 1 of 5 changes failed."),
            "{text}"
        );
    }

    /// The legend lists only the symbols the plan uses (it used to list all three for a plan
    /// of updates alone), and a single change is "1 change".
    #[test]
    fn the_legend_shows_only_the_actions_planned() {
        let mut plan = fixtures::every_kind();
        plan.changes.retain(|c| c.action() == Action::Update);
        plan.changes.truncate(1);
        let text = render_to_string(Report::plan(&plan).with_statuses(&[Status::Ok]));
        assert!(text.contains("  ~ update in-place\n"), "{text}");
        assert!(!text.contains("  + create\n"), "{text}");
        assert!(!text.contains("  - delete\n"), "{text}");
        assert!(text.contains("Sync complete: 1 change applied."), "{text}");
    }

    #[test]
    fn colour_only_when_asked() {
        let plan = fixtures::every_kind();
        assert!(!render_to_string(Report::plan(&plan)).contains('\x1b'));
        assert!(render_to_string(Report::plan(&plan).with_color(true)).contains("\x1b[32m+"));
    }
}
