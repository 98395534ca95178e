//! What people read, through the real binary on a real repository with a
//! bare origin and real HTTP servers on 127.0.0.1: durations that cannot be
//! mistaken for each other (`20s`, `20m`, never `00:20`), what production
//! runs after a rollback (and that it is healthy) instead of the failure it
//! left behind, no nanosecond timestamps in messages, and a post-mortem
//! invite with its organizer and attendees.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;

/// The first `n` characters of a sha, as `status` shows it.
fn short(sha: &str, n: usize) -> &str {
    &sha[..n]
}

/// A timestamp written the machine way (`2026-03-01T10:00:20Z`, with or
/// without nanoseconds) somewhere in `text`: digits, `T`, digits.
fn machine_timestamp(text: &str) -> Option<String> {
    let b = text.as_bytes();
    (1..b.len().saturating_sub(1))
        .find(|&i| b[i] == b'T' && b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit())
        .map(|i| text[i.saturating_sub(12)..(i + 20).min(text.len())].to_string())
}

/// The messages hotfix sent, in order (the local notifications file).
fn notifications(w: &World) -> Vec<serde_json::Value> {
    std::fs::read_to_string(w.repo.work.join(".git/hotfix/notifications.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A fix that passes its preview and fails in production, shipped: the
/// health watch rolls it back by itself.
fn rolled_back_by_production(w: &World) {
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.write("app/health_prod", "db pool exhausted\n");
    w.repo.commit_as(DEV, "fix that breaks production");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf(&["ship"]).fails(1, "rolled back automatically");
}

#[test]
fn status_after_a_rollback_says_production_runs_the_previous_release_healthily() {
    let w = World::new();
    let good_main = w.origin_sha("main");
    rolled_back_by_production(&w);
    // Production really is back on the previous release and healthy.
    assert_eq!(w.prod_sha(), good_main);

    let text = w.hf(&["status"]).ok().stdout;
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
            .to_string()
    };
    assert_eq!(
        line("production:").trim(),
        format!(
            "production: the previous release {}, healthy (1 probe)",
            short(&good_main, 10)
        ),
        "{text}"
    );
    assert!(
        !text.contains("FAILING"),
        "production is not failing:\n{text}"
    );
    // What failed stays said, once: it is why production was rolled back.
    assert!(
        line("rolled back (automatic):").contains("db pool exhausted"),
        "{text}"
    );
    assert_eq!(text.matches("db pool exhausted").count(), 1, "{text}");
    assert!(line("merged:").contains("rolled back"), "{text}");
    // The deploy that was rolled back is marked so, neither ticked nor pending.
    let deploy = line("Production deploy");
    assert!(
        deploy.trim_start().starts_with('↩') && deploy.ends_with("rolled back"),
        "{deploy}"
    );
    let rolled = line("Rolled back ");
    assert!(
        !rolled.contains('✓') && rolled.ends_with("rolled back"),
        "{rolled}"
    );

    let s = w.status("HF-1");
    assert_eq!(s["rolled_back_to"]["sha"], good_main.as_str());
    assert_eq!(s["rolled_back_to"]["healthy"], true);
    assert_eq!(s["rolled_back_to"]["probes"], 1);
    let step = |name: &str| {
        s["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["step"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(step("deploy")["state"], "rolled_back");
    assert_eq!(step("deploy")["done"], false);
    assert_eq!(step("rolled_back")["state"], "rolled_back");
    // JSON keeps its numbers.
    assert!(step("deploy")["elapsed_s"].is_i64());

    // The rollback's message says what production runs now.
    let sent = notifications(&w);
    let rewind = sent.iter().find(|m| m["step"] == "rolled_back").unwrap();
    let t = rewind["text"].as_str().unwrap();
    assert!(
        t.contains(&format!(
            "Production runs the previous release ({}), healthy.",
            short(&good_main, 10)
        )),
        "{t}"
    );
    // And the log says it too.
    let log = w.hf(&["log"]).ok().stdout;
    assert!(
        log.contains(&format!(
            "rollback: production back on the previous release {}, healthy (1 probe)",
            short(&good_main, 10)
        )),
        "{log}"
    );
}

#[test]
fn durations_read_as_seconds_minutes_and_hours() {
    let mut w = World::new();
    w.now = Some("2026-03-01T10:00:00Z".into());
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "fix");
    w.now = Some("2026-03-01T10:00:20Z".into());
    w.hf(&["push"]).ok();

    let text = w.hf(&["status"]).ok().stdout;
    let row = |label: &str| {
        text.lines()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no {label} in\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        row("Create branch & fix"),
        "✓ Create branch & fix 20s / 20m",
        "{text}"
    );
    assert_eq!(
        row("Emergency approval"),
        "· Emergency approval 20s / 27m so far",
        "{text}"
    );
    assert!(text.contains("target: resolved within 30m"), "{text}");
    assert!(!text.contains("00:20") && !text.contains("20:00"), "{text}");

    // An hour and five minutes on, still unapproved.
    w.now = Some("2026-03-01T11:05:09Z".into());
    let text = w.hf(&["status"]).ok().stdout;
    let approval = text
        .lines()
        .find(|l| l.contains("Emergency approval"))
        .unwrap();
    assert!(
        approval.contains("1h05m / 27m") && approval.ends_with("so far, OVER TARGET"),
        "{approval}"
    );
}

#[test]
fn the_post_mortem_invites_the_leads_and_the_people_on_it_and_says_where_to_commit_it() {
    let w = World::new();
    w.shipped();
    w.hf(&["backport"]).ok();
    let r = w.hf(&["postmortem"]).ok();
    assert!(
        r.stdout
            .contains("commit postmortems/HF-1.md to develop with the incident's docs"),
        "{}",
        r.all()
    );
    // Written in the main work tree.
    let ics = w.repo.read("postmortems/HF-1.ics");
    assert!(
        ics.split_inclusive('\n').all(|l| l.ends_with("\r\n")),
        "CRLF line ends:\n{ics}"
    );
    assert!(ics.contains("METHOD:REQUEST\r\n"), "{ics}");
    // Unfolded, who runs it organizes; the tech leads are invited.
    let unfolded = ics.replace("\r\n ", "");
    assert!(
        unfolded.contains("ORGANIZER;CN=\"dev@example.com\":mailto:dev@example.com\r\n"),
        "{unfolded}"
    );
    for lead in [LEAD, LEAD2] {
        assert!(
            unfolded.contains(&format!(
                "ATTENDEE;CN=\"{lead}\";ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{lead}\r\n"
            )),
            "{unfolded}"
        );
    }
    assert!(
        ics.lines().all(|l| l.len() <= 75),
        "folded at 75 octets:\n{ics}"
    );

    // The draft says how long in words that cannot be misread.
    let md = w.repo.read("postmortems/HF-1.md");
    let ttr = md
        .lines()
        .find(|l| l.starts_with("- **Time to restore:**"))
        .unwrap();
    let value = ttr
        .trim_start_matches("- **Time to restore:** ")
        .split(' ')
        .next()
        .unwrap();
    assert!(
        value.ends_with('s')
            && value[..value.len() - 1]
                .chars()
                .all(|c| c.is_ascii_digit() || c == 'm'),
        "{ttr}"
    );
    assert!(ttr.ends_with("(target: 30m)"), "{ttr}");

    // No message carries a machine timestamp (nanoseconds and all).
    for m in notifications(&w) {
        let t = m["text"].as_str().unwrap();
        assert_eq!(machine_timestamp(t), None, "{t}");
    }
    let scheduled = notifications(&w)
        .into_iter()
        .find(|m| m["step"] == "postmortem_scheduled")
        .unwrap();
    assert!(
        scheduled["text"].as_str().unwrap().ends_with(" UTC."),
        "{scheduled}"
    );
}
