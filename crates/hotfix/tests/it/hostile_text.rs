//! Text from outside never reaches a terminal raw: control and bidi
//! characters in an incident log (written by an older hotfix, or by hand)
//! come out escaped in every command's output and in the console
//! notifier's lines, and new names with them are refused at the door.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use hotfix_core::display::is_unsafe;
use hotfix_core::event::{EventKind, NewEvent};
use hotfix_core::notify::Message;
use hotfix_core::provider::Store;
use hotfix_core::{IncidentId, Severity};

/// ESC (an OSC title change and a colour), BEL, CR/LF (a forged line), a
/// bidi override, C1 and the Unicode line separator.
const EVIL: &str =
    "\u{1b}]0;pwned\u{7}\u{1b}[31mred\r\nforged: HF-9 closed \u{202e}gpj.exe\u{85}\u{2028}end";

/// Every unsafe character of `s` (newlines and tabs are how output is laid
/// out; the point is that none of EVIL's newlines survive inside a field).
fn raw_controls(s: &str) -> Vec<char> {
    s.chars()
        .filter(|&c| is_unsafe(c) && !matches!(c, '\n' | '\t'))
        .collect()
}

fn store_of(w: &World) -> hotfix_store::SqliteStore {
    let db = w.repo.work.join(".git").join("hotfix").join("hotfix.db");
    hotfix_store::SqliteStore::open(&db).unwrap()
}

#[test]
fn an_old_log_with_control_characters_prints_escaped() {
    let w = World::new();
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    // What an older version (or a hand edit) left in the log: raw controls
    // in a note, an actor's name and a declared title, plus a console
    // notification carrying them.
    let store = store_of(&w);
    let id = IncidentId(1);
    let at = jiff::Timestamp::now();
    let v = store.events(id).unwrap().len() as u64;
    let msg = Message {
        incident: id,
        step: "note".into(),
        severity: "critical".into(),
        channel: format!("#incidents{EVIL}"),
        text: format!("note by {EVIL}"),
        mentions: vec![EVIL.to_string()],
        customer_facing: false,
        security: false,
        at,
        title: EVIL.to_string(),
        pr_url: None,
        triage: false,
        public_text: None,
    };
    store
        .append(
            id,
            v,
            &[NewEvent {
                at,
                actor: format!("old{EVIL}"),
                kind: EventKind::Note {
                    text: EVIL.to_string(),
                },
            }],
            &[("console".to_string(), msg)],
        )
        .unwrap();
    store
        .declare(
            &NewEvent {
                at,
                actor: format!("old{EVIL}"),
                kind: EventKind::Declared {
                    name: "old-one".into(),
                    title: EVIL.to_string(),
                    severity: Severity::High,
                    customer_facing: false,
                    security: false,
                    branch: "hotfix/old-one".into(),
                    base_sha: String::new(),
                },
            },
            &|_| vec![],
        )
        .unwrap();
    drop(store);

    for args in [
        &["log"][..],
        &["status"],
        &["status", "HF-1"],
        &["status", "HF-2"],
        &["checklist", "HF-1"],
    ] {
        let r = w.hf(args);
        let shows_it = args == ["log"] || args == ["status", "HF-2"];
        assert!(
            r.all().contains("\\u{1b}") || !shows_it,
            "{args:?}: the escape is visible: {}",
            r.all()
        );
        assert_eq!(
            raw_controls(&r.all()),
            Vec::<char>::new(),
            "{args:?} printed raw controls:\n{:?}",
            r.all()
        );
        assert!(
            !r.all().lines().any(|l| l.starts_with("forged")),
            "{args:?} let a CR/LF start a line: {}",
            r.all()
        );
    }
    // JSON keeps the exact bytes (it escapes them itself): nothing is lost.
    let log = w.log();
    let text = serde_json::to_string(&log).unwrap();
    assert!(text.contains("\\u001b]0;pwned"), "{text}");
}

#[test]
fn the_console_notifier_escapes_each_message_onto_one_line() {
    let w = World::new();
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    let store = store_of(&w);
    let id = IncidentId(1);
    let at = jiff::Timestamp::now();
    let v = store.events(id).unwrap().len() as u64;
    let msg = Message {
        incident: id,
        step: "note".into(),
        severity: "critical".into(),
        channel: "#incidents".into(),
        text: format!("HF-1 note: {EVIL}"),
        mentions: vec![],
        customer_facing: false,
        security: false,
        at,
        title: String::new(),
        pr_url: None,
        triage: false,
        public_text: None,
    };
    store
        .append(
            id,
            v,
            &[NewEvent {
                at,
                actor: DEV.into(),
                kind: EventKind::Note {
                    text: "plain".into(),
                },
            }],
            &[("console".to_string(), msg)],
        )
        .unwrap();
    drop(store);
    // The next command that writes delivers what is due.
    let r = w.hf(&["checklist", "HF-1", "--done", "incident_log"]).ok();
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("HF-1 note:"))
        .unwrap_or_else(|| panic!("the console line is printed: {}", r.stderr));
    assert!(
        line.contains("\\r\\nforged: HF-9 closed \\u{202e}"),
        "{line}"
    );
    assert_eq!(
        raw_controls(&r.stderr),
        Vec::<char>::new(),
        "{:?}",
        r.stderr
    );
    assert!(!r.stderr.lines().any(|l| l.starts_with("forged")));
}

#[test]
fn a_name_with_control_characters_is_refused_and_nothing_is_written() {
    let w = World::new();
    for who in [
        "dev\u{1b}[31m@example.com",
        "dev\r\nHF-1 approved",
        "\u{202e}moc.elpmaxe@ved",
    ] {
        let r = w.hf_as(
            who,
            &[
                "start",
                "pdf-crash",
                "--severity",
                "critical",
                "--title",
                "PDF export crashes",
            ],
        );
        assert_ne!(r.code, 0, "{who:?}: {}", r.all());
        assert!(
            r.all()
                .contains("the actor's name contains the control character"),
            "{who:?}: {}",
            r.all()
        );
        assert_eq!(raw_controls(&r.all()), Vec::<char>::new(), "{:?}", r.all());
    }
    assert_eq!(w.log().as_array().unwrap().len(), 0);
    // A plain name works, and a later step by a bad name is refused too.
    w.started_and_pushed("pdf-crash", "critical");
    let before = w.log();
    let r = w.hf_as(
        "dev\u{7}@example.com",
        &["checklist", "HF-1", "--done", "incident_log"],
    );
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(r.all().contains("U+0007"), "{}", r.all());
    assert_eq!(raw_controls(&r.all()), Vec::<char>::new(), "{:?}", r.all());
    assert_eq!(w.log(), before);
}

#[test]
fn a_commit_subject_with_an_escape_is_recorded_visible_and_does_not_block_the_push() {
    let w = World::new();
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(
        DEV,
        "Fix PDF \u{1b}[8mhidden\u{1b}[0m export \u{202e}crash\u{7}\u{1f}tail",
    );
    let r = w.hf(&["push"]).ok();
    assert_eq!(raw_controls(&r.all()), Vec::<char>::new(), "{:?}", r.all());
    let log = w.log();
    let pushed = log[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "pushed")
        .unwrap()
        .clone();
    assert_eq!(
        pushed["commits"][0]["subject"],
        "Fix PDF \\u{1b}[8mhidden\\u{1b}[0m export \\u{202e}crash\\u{7}\\u{1f}tail"
    );
}
