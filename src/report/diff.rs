//! Unified diffs of policy code from the remote version (`-`) to the local one (`+`).

use similar::TextDiff;

/// A unified diff from `from` (the service's code) to `to` (the directory's), with three lines
/// of context. Code that is not UTF-8 is shown lossily; the comparison itself is byte for byte
/// and happens in the planner.
pub fn unified(from: Option<&[u8]>, to: Option<&[u8]>) -> String {
    let old = String::from_utf8_lossy(from.unwrap_or_default());
    let new = String::from_utf8_lossy(to.unwrap_or_default());
    let header_old = if from.is_some() {
        "remote"
    } else {
        "/dev/null"
    };
    let header_new = if to.is_some() { "local" } else { "/dev/null" };
    let diff = TextDiff::from_lines(old.as_ref(), new.as_ref());
    let text = diff
        .unified_diff()
        .context_radius(3)
        .missing_newline_hint(true)
        .header(header_old, header_new)
        .to_string();
    if text.is_empty() && from != to {
        // No line differs, yet the two sides do: one of them is empty, or the bytes differ
        // only where they are not valid UTF-8 (lossy decoding made them equal).
        let note = match (from, to) {
            (None, Some(_)) => "the local code is an empty file",
            (Some(_), None) => "the remote code is empty",
            _ => "the code differs in bytes that are not valid UTF-8",
        };
        return format!("--- {header_old}\n+++ {header_new}\n({note})\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_goes_from_remote_to_local() {
        let d = unified(Some(b"a\nb\n"), Some(b"a\nc\n"));
        assert!(d.contains("--- remote\n+++ local\n"), "{d}");
        assert!(d.contains("-b\n") && d.contains("+c\n"), "{d}");
    }

    #[test]
    fn a_missing_final_newline_is_visible() {
        let d = unified(Some(b"a\n"), Some(b"a"));
        assert!(d.contains("No newline at end of file"), "{d}");
    }

    /// Bug: a policy without code on the service and an empty local file (and a deleted policy
    /// whose code was empty) were reported as differing "in bytes that are not valid UTF-8".
    #[test]
    fn an_empty_side_is_named_not_called_invalid_utf8() {
        let d = unified(None, Some(b""));
        assert!(d.contains("(the local code is an empty file)"), "{d}");
        let d = unified(Some(b""), None);
        assert!(d.contains("(the remote code is empty)"), "{d}");
        let d = unified(Some(b"\xff\n"), Some(b"\xfe\n"));
        assert!(d.contains("not valid UTF-8"), "{d}");
        assert_eq!(unified(Some(b"same\n"), Some(b"same\n")), "");
    }

    #[test]
    fn new_code_diffs_against_nothing() {
        let d = unified(None, Some(b"x\n"));
        assert!(d.starts_with("--- /dev/null\n+++ local\n"), "{d}");
    }
}
