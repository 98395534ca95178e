//! The embedded platform's control API (`hotfix-platform`, `server.rs`):
//! the input is the raw bytes a client writes on the control socket,
//! served by the platform's own connection code and handler (hyper's HTTP/1
//! parser, the bearer check, the route match, the JSON bodies of deploy,
//! rollback and previews, the preview key and revision checks). The
//! platform has no releases and its repository no commits, so nothing is
//! ever started but `git rev-parse`.
//!
//! Checks: no panic; no 500 (a 500 is a failed operation: a panic in a
//! deploy task is answered so); an input that does not carry the token
//! anywhere never gets a success, a 404, 409 or 422 (only 401, or hyper's
//! own refusal of a malformed request).
#![no_main]

use std::sync::OnceLock;

use hotfix_platform::fuzzing::Control;
use libfuzzer_sys::fuzz_target;

/// The control token of the fuzzed platform (real ones are 64 hex digits).
const TOKEN: &str = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0";

struct Harness {
    rt: tokio::runtime::Runtime,
    control: Control,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let base =
            std::env::temp_dir().join(format!("hotfix-fuzz-platform-{}", std::process::id()));
        let repo = base.join("repo");
        let state = base.join("state");
        for d in [&repo, &state] {
            std::fs::create_dir_all(d).unwrap();
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let control = {
            let _g = rt.enter();
            Control::new(&repo, &state, TOKEN).unwrap()
        };
        Harness { rt, control }
    })
}

/// The status codes of every response in `out`, read response by response
/// (status line, headers, `content-length` bytes of body), so text in a
/// body is never taken for a status.
fn statuses(out: &[u8]) -> Vec<u16> {
    let mut v = vec![];
    let mut rest = out;
    while let Some(line) = rest.strip_prefix(b"HTTP/1.1 ") {
        let Some(code) = line
            .get(..3)
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(|c| c.parse().ok())
        else {
            break;
        };
        v.push(code);
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        rest = rest.get(end + 4 + len..).unwrap_or(&[]);
    }
    v
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let out = h.rt.block_on(h.control.exchange(data));
    let has_token = data.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes());
    for s in statuses(&out) {
        assert!(
            s != 500,
            "500 from the control API:\n{}",
            String::from_utf8_lossy(&out)
        );
        if !has_token {
            assert!(
                !(200..300).contains(&s) && ![404, 409, 422].contains(&s),
                "answered {s} without the token:\n{}",
                String::from_utf8_lossy(&out)
            );
        }
    }
});
