//! A small YAML loader that keeps a position on every node and every mapping entry, duplicates
//! included, so the manifest rules can point at the exact line of each mistake and report all of
//! them at once.
//!
//! Why not a ready-made loader: `serde_yaml` reports no position for a value that deserialized
//! fine but is wrong (a bad mode, a duplicate name) and stops at the first error; `marked-yaml`
//! has positions but stops at the first duplicate key and silently drops every document after the
//! first. Both sit on a YAML event parser; this module uses the same one (`yaml-rust2`, which
//! `marked-yaml` is built on) and builds the tree itself.
//!
//! Deliberately unsupported, each reported with its position: anchors and aliases (a manifest
//! needs none, and refusing them makes an alias bomb — "billion laughs" — impossible: nothing is
//! ever expanded), tags (`!!str`), keys that are not plain strings, and more than one document.
//! Nesting is capped at [`MAX_DEPTH`], far beyond any real manifest, so hostile input cannot
//! build a tree deep enough to overflow the stack when it is dropped.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// How deep mappings and sequences may nest. A manifest needs four levels.
pub(crate) const MAX_DEPTH: usize = 64;

const ANCHOR: usize = 0;
const ALIAS: usize = 1;
const TAG: usize = 2;

/// A 1-based line and column (columns count characters, as editors do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn from_marker(m: &Marker) -> Self {
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// A scalar as written. `plain` is false for quoted and block scalars, which YAML never reads
    /// as null, a boolean or a number.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in document order; a key written twice appears twice.
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub text: String,
    pub pos: Pos,
}

impl Node {
    /// YAML's null: an empty plain value, `~` or `null`.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// What kind of value this is, for messages ("expected a list, found a mapping").
    pub fn kind(&self) -> &'static str {
        match &self.value {
            _ if self.is_null() => "nothing",
            Value::Scalar { .. } => "a single value",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A problem with the YAML itself: its position, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub pos: Pos,
    pub message: String,
    pub fix: Option<String>,
}

enum Frame {
    Seq {
        pos: Pos,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        entries: Vec<(Key, Node)>,
        /// The key read and waiting for its value; `Err` when the key was not a plain string (its
        /// error is already recorded and the entry is dropped).
        pending: Option<Result<Key, ()>>,
    },
}

/// Parses one YAML document. `Ok(None)` for a stream with no document at all (empty, or only
/// comments). A scanner error (bad syntax, tabs) stops at once; the unsupported features above
/// are all collected before giving up.
pub(crate) fn parse(source: &str) -> Result<Option<Node>, Vec<YamlError>> {
    let mut parser = Parser::new_from_str(source);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    let mut errors: Vec<YamlError> = Vec::new();
    // Each unsupported feature is reported once, where it first appears: an alias bomb has
    // hundreds of aliases and one line says all there is to say.
    let mut reported = [false; 3];
    let mut once = |errors: &mut Vec<YamlError>, which: usize, e: YamlError| {
        if !std::mem::replace(&mut reported[which], true) {
            errors.push(e);
        }
    };

    loop {
        let (event, marker) = match parser.next_token() {
            Ok(ev) => ev,
            Err(e) => {
                errors.push(scan_error(e.marker(), e.info()));
                return Err(errors);
            }
        };
        let pos = Pos::from_marker(&marker);
        let node = match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => continue,
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    errors.push(YamlError {
                        pos,
                        message: "a second YAML document starts here".into(),
                        fix: Some(
                            "policies.yaml holds one document: remove this `---` line and what \
                             follows, or merge it into the first document"
                                .into(),
                        ),
                    });
                    break;
                }
                continue;
            }
            Event::Alias(_) => {
                once(&mut errors, ALIAS, alias_error(pos));
                // Stand in a null so the surrounding structure stays balanced; the tree is
                // discarded anyway because an error was recorded.
                Node {
                    pos,
                    value: Value::Scalar {
                        text: String::new(),
                        plain: true,
                    },
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                if anchor != 0 {
                    once(&mut errors, ANCHOR, anchor_error(source, &marker));
                }
                if tag.is_some() {
                    once(&mut errors, TAG, tag_error(pos));
                }
                Node {
                    pos,
                    value: Value::Scalar {
                        text,
                        plain: matches!(style, TScalarStyle::Plain),
                    },
                }
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                if anchor != 0 {
                    once(&mut errors, ANCHOR, anchor_error(source, &marker));
                }
                if tag.is_some() {
                    once(&mut errors, TAG, tag_error(pos));
                }
                if stack.len() >= MAX_DEPTH {
                    errors.push(YamlError {
                        pos,
                        message: format!("nested more than {MAX_DEPTH} levels deep"),
                        fix: Some(
                            "a manifest needs four levels (policies → entry → key); remove the \
                             extra nesting"
                                .into(),
                        ),
                    });
                    return Err(errors);
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        pos,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        pos,
                        entries: Vec::new(),
                        pending: None,
                    }
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq { pos, items }) => Node {
                    pos,
                    value: Value::Seq(items),
                },
                Some(Frame::Map { pos, entries, .. }) => Node {
                    pos,
                    value: Value::Map(entries),
                },
                // The parser balances its events; should it ever not, say so instead of panicking.
                None => {
                    errors.push(scan_error(&marker, "unbalanced YAML structure"));
                    return Err(errors);
                }
            },
        };
        // A node is complete: hand it to its parent, or make it the document.
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries, pending, ..
            }) => match pending.take() {
                None => {
                    *pending = Some(match node.value {
                        Value::Scalar { text, .. } => Ok(Key {
                            text,
                            pos: node.pos,
                        }),
                        _ => {
                            errors.push(YamlError {
                                pos: node.pos,
                                message: format!(
                                    "a mapping key must be a plain name, found {}",
                                    node.kind()
                                ),
                                fix: Some("write keys as `name: value`".into()),
                            });
                            Err(())
                        }
                    })
                }
                Some(Ok(key)) => {
                    let mut node = node;
                    // An empty value is "found" where the next token starts, often the next
                    // line; the key is where a reader looks.
                    if node.is_null() && node.pos.line > key.pos.line {
                        node.pos = key.pos;
                    }
                    entries.push((key, node))
                }
                Some(Err(())) => {}
            },
        }
    }

    if errors.is_empty() {
        Ok(root)
    } else {
        Err(errors)
    }
}

fn scan_error(marker: &Marker, info: &str) -> YamlError {
    let fix = if info.contains("tab") {
        "YAML does not allow tabs for indentation: indent with spaces"
    } else if info.contains("unknown anchor") {
        return alias_error(Pos::from_marker(marker));
    } else if info.contains("recursion limit") {
        "remove the extra nesting of `[` and `{`"
    } else {
        "fix the YAML syntax here (check indentation, quotes, and brackets)"
    };
    YamlError {
        pos: Pos::from_marker(marker),
        message: format!("invalid YAML: {info}"),
        fix: Some(fix.into()),
    }
}

/// The parser marks a node after its anchor (`&a [x]` is marked at `[`); point at the `&`
/// itself, the last one before the node.
fn anchor_error(text: &str, node: &Marker) -> YamlError {
    let before: Vec<char> = text.chars().take(node.index() + 1).collect();
    let pos = match before.iter().rposition(|c| *c == '&') {
        Some(at) => {
            let line_start = before[..at]
                .iter()
                .rposition(|c| *c == '\n')
                .map_or(0, |i| i + 1);
            Pos {
                line: before[..at].iter().filter(|c| **c == '\n').count() + 1,
                column: at - line_start + 1,
            }
        }
        None => Pos::from_marker(node),
    };
    YamlError {
        pos,
        message: "YAML anchors (`&name`) are not supported in policies.yaml".into(),
        fix: Some("remove the anchor and write each value out in full".into()),
    }
}

fn alias_error(pos: Pos) -> YamlError {
    YamlError {
        pos,
        message: "YAML aliases (`*name`) are not supported in policies.yaml".into(),
        fix: Some("write the value out in full instead of referring to an anchor".into()),
    }
}

fn tag_error(pos: Pos) -> YamlError {
    YamlError {
        pos,
        message: "YAML tags (`!tag`, `!!str`) are not supported in policies.yaml".into(),
        fix: Some("remove the tag; quote the value if it must stay a string".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> &[(Key, Node)] {
        match &node.value {
            Value::Map(e) => e,
            other => panic!("expected a mapping, got {other:?}"),
        }
    }

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let root = parse("a: 1\npolicies:\n  - name: x\n    mode: advisory\n")
            .unwrap()
            .unwrap();
        let entries = map(&root);
        assert_eq!(entries[0].0.pos, Pos { line: 1, column: 1 });
        assert_eq!(entries[0].1.pos, Pos { line: 1, column: 4 });
        let Value::Seq(items) = &entries[1].1.value else {
            panic!()
        };
        let policy = map(&items[0]);
        assert_eq!(policy[0].0.text, "name");
        assert_eq!(policy[0].0.pos, Pos { line: 3, column: 5 });
        assert_eq!(
            policy[1].1.pos,
            Pos {
                line: 4,
                column: 11
            }
        );
    }

    #[test]
    fn duplicate_keys_are_kept_for_the_validator() {
        let root = parse("a: 1\na: 2\n").unwrap().unwrap();
        let keys: Vec<_> = map(&root).iter().map(|(k, _)| k.pos.line).collect();
        assert_eq!(keys, [1, 2]);
    }

    #[test]
    fn empty_and_comment_only_streams_have_no_document() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# nothing\n\n").unwrap(), None);
    }

    #[test]
    fn scalars_remember_whether_they_were_quoted() {
        let root = parse("a:\nb: ~\nc: ''\n").unwrap().unwrap();
        let nulls: Vec<bool> = map(&root).iter().map(|(_, v)| v.is_null()).collect();
        assert_eq!(nulls, [true, true, false]);
    }

    #[test]
    fn every_anchor_and_alias_is_reported_and_nothing_is_expanded() {
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n";
        let errors = parse(bomb).unwrap_err();
        assert_eq!(errors.len(), 2, "one error per feature: {errors:?}");
        assert_eq!(errors[0].pos, Pos { line: 1, column: 4 });
        assert!(errors[0].message.contains("anchors"));
        assert_eq!(errors[1].pos.line, 2);
        assert!(errors[1].message.contains("aliases"), "{errors:?}");
    }

    #[test]
    fn an_undefined_alias_is_an_alias_error() {
        let errors = parse("a: *nowhere\n").unwrap_err();
        assert!(errors[0].message.contains("aliases"), "{errors:?}");
    }

    #[test]
    fn tabs_are_a_syntax_error_with_a_fix() {
        let errors = parse("policies:\n\t- name: a\n").unwrap_err();
        assert_eq!(errors[0].pos.line, 2);
        assert!(errors[0].fix.as_deref().unwrap().contains("spaces"));
    }

    #[test]
    fn a_second_document_is_an_error_not_ignored() {
        let errors = parse("---\npolicies: []\n---\nprune: false\n").unwrap_err();
        assert_eq!(errors[0].pos.line, 3, "{errors:?}");
    }

    #[test]
    fn tags_and_complex_keys_are_errors() {
        assert!(
            parse("a: !!str 1\n").unwrap_err()[0]
                .message
                .contains("tags")
        );
        assert!(
            parse("? [a]\n: 1\n").unwrap_err()[0]
                .message
                .contains("mapping key")
        );
    }

    #[test]
    fn deep_nesting_fails_fast() {
        let deep = "- ".repeat(10_000) + "x\n";
        let errors = parse(&deep).unwrap_err();
        assert!(errors[0].message.contains("nested"), "{errors:?}");
        let flow = "[".repeat(100_000);
        assert!(parse(&flow).is_err());
    }
}
