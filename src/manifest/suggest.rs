//! "Did you mean …?": the nearest valid spelling for a mistyped key, mode or file name.
//!
//! Typos in a manifest are mostly a swapped, missing or extra letter (`nmae`, `polices`), so the
//! distance counts an adjacent transposition as one edit (optimal string alignment).

/// The edit distance between `a` and `b`, counting insertions, deletions, substitutions and
/// swaps of two neighbouring characters as one edit each.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows suffice: the current one, the previous one and the one before (for swaps).
    let mut before = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(before[j - 2] + 1);
            }
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate nearest to `input`, if it is near enough to be a plausible typo: at most a
/// third of the longer word, and never more than three edits. Ties go to the first candidate.
pub(crate) fn closest<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lowered = input.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (distance(&lowered, &c.to_lowercase()), c))
        .filter(|(d, c)| {
            let longest = input.chars().count().max(c.chars().count());
            *d <= (longest / 3).clamp(1, 3)
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_count_as_one_edit() {
        assert_eq!(distance("nmae", "name"), 1);
        assert_eq!(distance("polices", "policies"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }

    #[test]
    fn closest_finds_typos_and_ignores_unrelated_words() {
        let keys = ["name", "mode", "file"];
        assert_eq!(closest("nmae", keys), Some("name"));
        assert_eq!(closest("Mode", keys), Some("mode"));
        assert_eq!(closest("files", keys), Some("file"));
        assert_eq!(closest("enforcement", keys), None);
        assert_eq!(
            closest("organisation", ["organization", "prune"]),
            Some("organization")
        );
    }
}
