//! Values that come from outside (a client, a webhook, an alert) checked
//! before they are stored: one rule per kind of value, shared by every door.
//!
//! The limits are generous for real use and small enough that a log cannot
//! be filled with megabytes through one field.

/// The longest incident title.
pub const MAX_TITLE: usize = 200;
/// The longest free-form reason or detail.
pub const MAX_TEXT: usize = 10_000;
/// The longest note in the incident log.
pub const MAX_NOTE: usize = 4_000;
/// The longest short field (a reason, a source, a login, a key, a path).
pub const MAX_SHORT: usize = 2_000;
/// The longest URL.
pub const MAX_URL: usize = 2_048;
/// The most entries in one list (commits, files, checks, components).
pub const MAX_LIST: usize = 10_000;

/// A git object id as git prints it: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
pub fn is_object_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Why a text field is not acceptable, if it is not.
///
/// `single_line`: titles, names and reasons stay on one line (a newline in
/// a title would split log lines and chat posts); notes may have newlines.
pub fn text_problem(field: &str, value: &str, max: usize, single_line: bool) -> Option<String> {
    let n = value.chars().count();
    if n > max {
        return Some(format!("{field} is {n} characters long; at most {max}"));
    }
    let bad = value.chars().find(|&c| {
        let allowed = !single_line && matches!(c, '\n' | '\t');
        (c.is_control() && !allowed) || is_bidi_control(c)
    });
    bad.map(|c| format!("{field} contains the control character U+{:04X}", c as u32))
}

/// Unicode bidirectional controls, which make text read differently from
/// what it is (Trojan Source).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// A relative path inside the repository (no `..`, not absolute).
pub fn is_relative_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && p.split('/').all(|part| !part.is_empty() && part != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_are_lowercase_hex_of_git_lengths() {
        assert!(is_object_id(&"a".repeat(40)));
        assert!(is_object_id(&"0".repeat(64)));
        for bad in [
            "",
            "abc",
            "$(touch /tmp/pwn)",
            &"A".repeat(40),
            &"g".repeat(40),
            &"a".repeat(41),
        ] {
            assert!(!is_object_id(bad), "{bad}");
        }
    }

    #[test]
    fn text_is_bounded_and_free_of_controls() {
        assert_eq!(text_problem("title", "PDF crash", 200, true), None);
        assert!(text_problem("title", &"x".repeat(201), 200, true).is_some());
        assert!(text_problem("title", "a\nb", 200, true).is_some());
        assert!(text_problem("note", "a\nb", 200, false).is_none());
        assert!(text_problem("note", "a\u{1b}[31mb", 200, false).is_some());
        assert!(text_problem("title", "abc\u{202E}def", 200, true).is_some());
    }

    #[test]
    fn paths_stay_inside_the_repository() {
        assert!(is_relative_path("postmortems/HF-1.md"));
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "a//b", "a\\b"] {
            assert!(!is_relative_path(bad), "{bad}");
        }
    }
}
