//! Golden files: what a test stores as the expected output, compared on
//! every run and rewritten when `FABRIC_BLESS=1` is set, so a change in
//! output shows in review as a diff of the stored files.

/// Whether this run rewrites golden files instead of comparing them.
pub fn blessing() -> bool {
    std::env::var("FABRIC_BLESS").is_ok_and(|v| v == "1")
}

/// The first line where `want` and `got` differ, both sides shown.
pub fn first_difference(want: &str, got: &str) -> String {
    let (mut want_lines, mut got_lines) = (want.lines(), got.lines());
    for number in 1.. {
        match (want_lines.next(), got_lines.next()) {
            (None, None) => break,
            (w, g) if w == g => continue,
            (w, g) => return format!("line {number}:\n  - {}\n  + {}", w.unwrap_or("<end>"), g.unwrap_or("<end>")),
        }
    }
    "same lines, different line endings".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_is_shown_with_its_line() {
        assert_eq!(first_difference("a\nb\n", "a\nc\n"), "line 2:\n  - b\n  + c");
        assert_eq!(first_difference("a\n", "a\nb\n"), "line 2:\n  - <end>\n  + b");
    }
}
