//! Renderings of a plan, and of the outcome of applying it: `human` (like `terraform plan`),
//! `json` (the contract's machine-readable object) and `markdown` (a pull-request comment).
//!
//! Reports write into any `impl Write` and do no other I/O, so they are snapshot-tested.

mod diff;
mod human;
mod json;
mod markdown;

use std::io::{self, Write};

use crate::plan::{Action, Plan};

pub use markdown::MAX_MARKDOWN_CHARS;

/// The report formats of `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
    Markdown,
}

/// What happened to one change when the plan was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    Failed(String),
}

/// A plan, and — after `sync` — the status of each of its changes, in the same order.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a> {
    pub plan: &'a Plan,
    pub statuses: Option<&'a [Status]>,
    /// Colour the human report (only on a terminal, and never with `NO_COLOR`).
    pub color: bool,
}

impl<'a> Report<'a> {
    pub fn plan(plan: &'a Plan) -> Self {
        Report {
            plan,
            statuses: None,
            color: false,
        }
    }

    pub fn with_statuses(mut self, statuses: &'a [Status]) -> Self {
        self.statuses = Some(statuses);
        self
    }

    pub fn with_color(mut self, color: bool) -> Self {
        self.color = color;
        self
    }

    pub fn render(&self, format: Format, out: &mut impl Write) -> io::Result<()> {
        match format {
            Format::Human => human::render(self, out),
            Format::Json => json::render(self, out),
            Format::Markdown => out.write_all(markdown::render(self).as_bytes()),
        }
    }

    fn status(&self, index: usize) -> Option<&'a Status> {
        self.statuses.and_then(|s| s.get(index))
    }

    fn failures(&self) -> usize {
        self.statuses.map_or(0, |s| {
            s.iter().filter(|s| matches!(s, Status::Failed(_))).count()
        })
    }
}

/// "1 to create, 1 to update, 1 to delete, 4 unchanged"
fn summary_line(plan: &Plan) -> String {
    format!(
        "{} to create, {} to update, {} to delete, {} unchanged",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Delete),
        plan.unchanged.len()
    )
}

/// `one` for a single thing, `many` otherwise: "1 change", "2 changes".
pub fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! A plan with one change of every kind, shared by the snapshot tests of each format.
    use crate::model::{Mode, PolicyId, PolicyName, RemoteCode};
    use crate::plan::{Change, CodeChange, Plan};

    pub fn name(n: &str) -> PolicyName {
        PolicyName::new(n).unwrap()
    }

    pub fn every_kind() -> Plan {
        Plan {
            organization: "my-organization".into(),
            changes: vec![
                Change::Create {
                    name: name("require-tags"),
                    mode: Mode::HardMandatory,
                    code: b"import \"tfplan/v2\" as tfplan\n\nmain = rule { true }\n".to_vec(),
                },
                Change::Update {
                    name: name("restrict-regions"),
                    id: PolicyId("pol-aaaaaaaaaaaaaaaa".into()),
                    mode_from: Mode::SoftMandatory,
                    mode_to: Mode::Advisory,
                    code: None,
                },
                Change::Update {
                    name: name("limit-cost"),
                    id: PolicyId("pol-bbbbbbbbbbbbbbbb".into()),
                    mode_from: Mode::SoftMandatory,
                    mode_to: Mode::SoftMandatory,
                    code: Some(CodeChange {
                        from: RemoteCode::Present(
                            b"limit = 100\nmain = rule { cost < limit }\n".to_vec(),
                        ),
                        to: b"limit = 500\nmain = rule { cost < limit }\n".to_vec(),
                    }),
                },
                Change::Update {
                    name: name("no-code-yet"),
                    id: PolicyId("pol-cccccccccccccccc".into()),
                    mode_from: Mode::Advisory,
                    mode_to: Mode::Advisory,
                    code: Some(CodeChange {
                        from: RemoteCode::Missing,
                        to: b"main = rule { true }".to_vec(),
                    }),
                },
                Change::Delete {
                    name: "old-policy".into(),
                    id: PolicyId("pol-dddddddddddddddd".into()),
                    mode: Mode::Advisory,
                    code: RemoteCode::Present(b"main = rule { false }\n".to_vec()),
                },
            ],
            unchanged: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            ignored: vec!["legacy-x".into()],
            kept: vec![],
        }
    }

    pub fn empty() -> Plan {
        Plan {
            organization: "my-organization".into(),
            changes: vec![],
            unchanged: vec!["a".into(), "b".into()],
            ignored: vec![],
            kept: vec![],
        }
    }
}
