//! Hotfix names (`hotfix/NAME`): one rule for every way an incident can be
//! declared (CLI, API, Slack, alerts), so a name accepted anywhere can always
//! be started with `hotfix start NAME --incident HF-N`.

/// Names are kept to what is safe everywhere a branch name goes (URLs, file
/// names, the shells of people who copy it) and to what git accepts.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with(['-', '.'])
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.ends_with(".lock")
}

/// The default title of a name: `pdf-crash` → `Pdf crash`.
pub fn title_from(name: &str) -> String {
    let t = name.replace(['-', '_'], " ");
    let mut c = t.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_git_or_a_shell_would_trip_on_are_refused() {
        for ok in ["pdf-crash", "a", "v1.2_fix", "x-lock"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-x",
            ".x",
            "x.",
            "a..b",
            "x.lock",
            "a b",
            "a/b",
            "ü",
            &"x".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(title_from("pdf-crash_now"), "Pdf crash now");
    }
}
