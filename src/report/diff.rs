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
        // Same text after lossy decoding, different bytes (e.g. invalid UTF-8 sequences).
        return format!(
            "--- {header_old}\n+++ {header_new}\n(the code differs in bytes that are not valid UTF-8)\n"
        );
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

    #[test]
    fn new_code_diffs_against_nothing() {
        let d = unified(None, Some(b"x\n"));
        assert!(d.starts_with("--- /dev/null\n+++ local\n"), "{d}");
    }
}
