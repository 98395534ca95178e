//! Keeps secrets out of anything printed or logged.

/// Replaces credentials embedded in URLs (`https://user:token@host`) and
/// well-known token shapes with `***`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&redact_word(word));
    }
    out
}

fn redact_word(w: &str) -> String {
    if let Some(scheme) = w.find("://") {
        let rest = &w[scheme + 3..];
        if let Some(at) = rest.find('@')
            && !rest[..at].contains('/')
        {
            return format!("{}***{}", &w[..scheme + 3], &rest[at..]);
        }
    }
    for prefix in [
        "ghp_",
        "gho_",
        "ghs_",
        "github_pat_",
        "xoxb-",
        "xoxp-",
        "xapp-",
    ] {
        if let Some(p) = w.find(prefix) {
            return format!("{}{prefix}***", &w[..p]);
        }
    }
    w.to_string()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn hides_credentials() {
        assert_eq!(
            redact("fatal: https://x:ghp_abc@github.com/o/r"),
            "fatal: https://***@github.com/o/r"
        );
        assert_eq!(redact("token ghp_123456"), "token ghp_***");
        assert_eq!(
            redact("http://127.0.0.1:8080/health ok"),
            "http://127.0.0.1:8080/health ok"
        );
    }
}
