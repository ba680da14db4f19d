//! Text that came from a module, a registry or a guest, made safe to show.
//!
//! Names in a module, keys in a registry and lines a guest logs are
//! anyone's choice: an export named `a\x1b[2J` would clear the terminal of
//! whoever runs `wafer inspect`, one named `a\nb` would forge a line of
//! output. Everything wafer prints of such text goes through
//! [`escape_controls`]. (A WASI program's own stdout is its output and
//! stays byte-exact.)

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character (C0, DEL, C1) and every Unicode
/// bidirectional override written as a Rust escape (`\n`, `\u{1b}`), so
/// that it prints as one inert line.
///
/// ```
/// use wafer::printable::escape_controls;
/// assert_eq!(escape_controls("evil\x1b[2J\rFAKE"), "evil\\u{1b}[2J\\rFAKE");
/// assert_eq!(escape_controls("plain, ünïcode"), "plain, ünïcode");
/// ```
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            write!(escaped, "{}", c.escape_default()).expect("writing to a String never fails");
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_and_bidi_overrides_are_escaped() {
        assert_eq!(escape_controls("a\nb"), "a\\nb");
        assert_eq!(escape_controls("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(escape_controls("\u{9b}31m"), "\\u{9b}31m");
        assert!(matches!(escape_controls("fine"), Cow::Borrowed(_)));
    }
}
