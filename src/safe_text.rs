//! Text taken from another process (its command line, the names and versions it reports) made
//! safe to print (`spec/cli.md`, OPS-9): control characters and bytes that are not UTF-8 are
//! escaped the way `ps` and Rust do (`\n`, `\t`, `\x1b`, `\u{202e}`), a backslash is doubled so
//! that an escape cannot be forged, and long text is cut with a marker.
//!
//! A hostile process can otherwise paint the operator's terminal (escape sequences) or print
//! fake lines (newlines) into `gateway run`'s refusal and `gateway status`.

use std::fmt::Write;

/// The most characters of a command line that are shown (after escaping).
pub(crate) const MAX_COMMAND_CHARS: usize = 512;
/// The most characters of a short name (profile, version) that are shown (after escaping).
pub(crate) const MAX_NAME_CHARS: usize = 64;

/// Characters that reorder or hide text on a terminal (bidirectional controls, zero-width
/// marks): escaped like control characters.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Appends `c`, escaped if it is a control or invisible formatting character or a backslash.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x80 && c.is_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if c.is_control() || is_invisible_format(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `bytes` with every control character, invisible formatting character and backslash escaped,
/// and every byte that is not part of valid UTF-8 written as `\xHH`.
pub(crate) fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        chunk.valid().chars().for_each(|c| push_escaped(&mut out, c));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// `text` escaped as [`escape_bytes`] does.
pub(crate) fn escape(text: &str) -> String {
    escape_bytes(text.as_bytes())
}

/// `text` cut to `max` characters, followed by ` [... N more characters]` when it was longer.
pub(crate) fn cut(text: &str, max: usize) -> String {
    let total = text.chars().count();
    if total <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max).collect();
    format!("{head} [... {} more characters]", total - max)
}

/// A command line (arguments as read from `/proc/<pid>/cmdline`, NUL-separated) for display:
/// arguments joined by spaces, escaped, cut at [`MAX_COMMAND_CHARS`]. `None` if it holds no argument.
pub(crate) fn command_line(raw: &[u8]) -> Option<String> {
    let args: Vec<String> = raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(escape_bytes).collect();
    (!args.is_empty()).then(|| cut(&args.join(" "), MAX_COMMAND_CHARS))
}

/// A short name another process reported (profile, version) for display: escaped, cut at
/// [`MAX_NAME_CHARS`].
pub(crate) fn name(text: &str) -> String {
    cut(&escape(text), MAX_NAME_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// OPS-9: what `ps` would show, and never a raw control character.
    #[test]
    fn ops9_control_characters_are_escaped() {
        assert_eq!(escape("a\nb\tc\r"), "a\\nb\\tc\\r");
        assert_eq!(escape("\u{1b}[2J\u{7}"), "\\x1b[2J\\x07");
        assert_eq!(escape("back\\slash"), "back\\\\slash");
        assert_eq!(escape("\u{9b}31m \u{202e}txt"), "\\u{9b}31m \\u{202e}txt");
        assert_eq!(escape("gateway run --port 1 ünïcode"), "gateway run --port 1 ünïcode");
        assert_eq!(escape_bytes(b"bad\xff\xfeutf8"), "bad\\xff\\xfeutf8");
        assert_eq!(command_line(b"sh\0-c\0echo hi\nholder is a live gateway\0"), Some("sh -c echo hi\\nholder is a live gateway".into()));
        assert_eq!(command_line(b"\0\0"), None);
    }

    /// OPS-9: long text is cut with a marker that says how much is missing.
    #[test]
    fn ops9_long_text_is_cut_with_a_marker() {
        let long = "x".repeat(MAX_COMMAND_CHARS + 10);
        assert_eq!(command_line(long.as_bytes()).unwrap(), format!("{} [... 10 more characters]", "x".repeat(MAX_COMMAND_CHARS)));
        assert_eq!(name(&"é".repeat(MAX_NAME_CHARS)), "é".repeat(MAX_NAME_CHARS));
        assert_eq!(name(&"v".repeat(MAX_NAME_CHARS + 1)), format!("{} [... 1 more characters]", "v".repeat(MAX_NAME_CHARS)));
    }

    proptest! {
        /// OPS-9: for any bytes the shown text holds no control character, stays within its
        /// bound, and is unchanged for printable text without a backslash.
        #[test]
        fn ops9_any_bytes_print_safely(raw in proptest::collection::vec(any::<u8>(), 0..1200)) {
            if let Some(shown) = command_line(&raw) {
                prop_assert!(!shown.chars().any(|c| c.is_control() || is_invisible_format(c)), "{:?}", shown);
                prop_assert!(shown.chars().count() <= MAX_COMMAND_CHARS + " [... 99999 more characters]".len());
            }
            let text = String::from_utf8_lossy(&raw);
            let plain = text.chars().all(|c| !c.is_control() && !is_invisible_format(c) && c != '\\');
            prop_assert_eq!(escape(&text) == text, plain);
        }
    }
}
