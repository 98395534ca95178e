//! Text that came from outside, made safe to print.
//!
//! The value rules ([`crate::validate`]) keep control characters out of the
//! events admitted since they exist, but much of what hotfix prints never
//! passes them or predates them: names of people (`HOTFIX_USER`, a GitHub
//! login, a Slack user), git's and a remote API's error texts, an older log,
//! another server's answer. Printed raw, an ESC changes a terminal's colours
//! or hides text, a BEL rings, CR/LF forges a second log line, and a bidi
//! override (U+202E) makes a line read differently from what it is. So
//! every sink (terminal, server log, chat) prints outside text through
//! [`line`] (one log line stays one line) or [`block`] (multi-line text
//! keeps its newlines and tabs).
//!
//! Escapes read like Rust's: `\n`, `\r`, `\t`, `\u{1b}`: visible,
//! unambiguous, and copyable into a bug report.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::validate::is_bidi_control;

/// Whether `c` must not reach a terminal, log line or chat post as is.
///
/// Control characters (C0, DEL, C1), bidi controls, and the Unicode line
/// and paragraph separators (which some viewers break lines at).
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `s` on one line: every unsafe character escaped, newlines too.
pub fn line(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// `s` as a block of lines: newlines and tabs kept, every other unsafe
/// character escaped (a CR, which would overwrite the line, included).
pub fn block(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

fn escape(s: &str, keep_lines: bool) -> Cow<'_, str> {
    let kept = |c: char| keep_lines && matches!(c, '\n' | '\t');
    if !s.chars().any(|c| is_unsafe(c) && !kept(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_unsafe(c) || kept(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// Hides the password of a URL (`postgres://user:secret@host` → `postgres://user:***@host`).
pub fn redact_url(u: &str) -> String {
    let Some(scheme_end) = u.find("://") else {
        return u.to_string();
    };
    let rest = &u[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return u.to_string();
    };
    let creds = &rest[..at];
    match creds.find(':') {
        Some(c) => format!("{}{}:***{}", &u[..scheme_end + 3], &creds[..c], &rest[at..]),
        None => u.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_untouched_and_not_copied() {
        for s in ["PDF export crashes", "héllo — ok", "a\\nb", ""] {
            assert!(matches!(line(s), Cow::Borrowed(_)), "{s}");
            assert_eq!(line(s), s);
        }
        assert!(matches!(block("a\nb\tc"), Cow::Borrowed(_)));
    }

    #[test]
    fn controls_and_bidi_are_escaped_visibly() {
        assert_eq!(line("red\u{1b}[31m!\u{7}"), "red\\u{1b}[31m!\\u{7}");
        assert_eq!(line("a\r\nforged line"), "a\\r\\nforged line");
        assert_eq!(line("admin\u{202e}txt.exe"), "admin\\u{202e}txt.exe");
        assert_eq!(
            line("x\u{2028}y\u{85}z\u{7f}"),
            "x\\u{2028}y\\u{85}z\\u{7f}"
        );
        assert_eq!(line("tab\there"), "tab\\there");
        assert_eq!(
            block("one\ntwo\tthree\r\u{1b}"),
            "one\ntwo\tthree\\r\\u{1b}"
        );
    }

    #[test]
    fn nothing_unsafe_survives_any_input() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert!(!line(&all).chars().any(is_unsafe));
        assert!(
            !block(&all)
                .chars()
                .any(|c| is_unsafe(c) && !matches!(c, '\n' | '\t'))
        );
    }
}
