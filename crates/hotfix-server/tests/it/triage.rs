//! Triage through every door of the server, over real HTTP on a real
//! store: the API route (confirm, decline, merge), the role checks, the
//! merge's two appends finished by a re-run, the dashboard's forms and its
//! "Needs triage" list, and the Slack command (signed as Slack signs).

#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use hotfix_core::event::EventKind;
use hotfix_core::id::IncidentId;
use hotfix_core::team::ApiRole;
use hotfix_providers::signature::sign_hmac_sha256_hex;
use serde_json::{Value, json};

/// A reported incident (no branch: in triage), declared through the API.
fn reported(t: &TestServer, dev: &str, name: &str) -> String {
    let id = declare(t, dev, json!({"name": name, "severity": "critical"}));
    assert_eq!(incident(t, dev, &id)["incident"]["phase"], "triage");
    id
}

fn incident(t: &TestServer, token: &str, id: &str) -> Value {
    let r = get(&t.url(&format!("/api/v1/incidents/{id}")), Some(token), &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

fn triage(t: &TestServer, token: &str, id: &str, body: Value) -> Resp {
    post_json(
        &t.url(&format!("/api/v1/incidents/{id}/triage")),
        Some(token),
        &body,
    )
}

fn types(t: &TestServer, token: &str, id: &str) -> Vec<String> {
    events_of(t, token, id)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

fn in_triage(t: &TestServer, token: &str) -> Vec<String> {
    let r = get(&t.url("/api/v1/incidents?state=triage"), Some(token), &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_api_confirms_declines_and_merges_for_tech_leads_only() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let hf1 = reported(&t, &dev, "error-rate");
    let hf2 = reported(&t, &dev, "error-rate-eu");
    let hf3 = reported(&t, &dev, "api-5xx");
    // Declared with its branch: a person triaged it by declaring it.
    declare(
        &t,
        &dev,
        json!({"name": "pdf-crash", "severity": "high", "base_sha": sha('a')}),
    );
    assert_eq!(in_triage(&t, &dev), [hf3.as_str(), &hf2, &hf1]);

    // Who may: a tech lead in [team] with a tech_lead token.
    let confirm =
        json!({"action": "confirm", "severity": "high", "public_text": "Some API requests fail"});
    let r = triage(&t, &dev, &hf1, confirm.clone());
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "not_an_approver");
    let lead_as_dev = t.token(LEAD, ApiRole::Developer);
    let r = triage(&t, &lead_as_dev, &hf1, confirm.clone());
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "role");
    let outsider = t.token("boss@example.com", ApiRole::TechLead);
    let r = triage(&t, &outsider, &hf1, confirm.clone());
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tech leads in hotfix.toml [team]"),
        "{}",
        r.text
    );
    // What does not parse says why.
    let r = triage(
        &t,
        &lead,
        &hf1,
        json!({"action": "confirm", "severity": "medium"}),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "use_normal_release");
    assert!(
        r.json()["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("decline --reason not_urgent"),
        "{}",
        r.text
    );
    for bad in [
        json!({"action": "approve"}),
        json!({"action": "decline"}),
        json!({"action": "decline", "reason": "flaky"}),
        json!({"action": "merge"}),
        json!({"action": "merge", "into": "HF-x"}),
    ] {
        let r = triage(&t, &lead, &hf1, bad.clone());
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
    let r = triage(
        &t,
        &lead,
        &hf1,
        json!({"action": "confirm", "sevrity": "high"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(types(&t, &lead, &hf1), ["declared"]);

    // Confirm, at another severity: answered with the incident in full.
    let r = triage(&t, &lead, &hf1, confirm.clone());
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["recorded"], true);
    assert_eq!(v["incident"]["phase"], "reported");
    assert_eq!(v["incident"]["severity"], "high");
    assert!(
        v["incident"]["next"]
            .as_str()
            .unwrap()
            .contains("hotfix start error-rate --incident HF-1 --severity high"),
        "{v}"
    );
    // The channel is told to take it, at the confirmed severity.
    t.wait_for("the confirmation's notification", || {
        t.delivered().iter().any(|m| m["step"] == "confirmed")
    });
    let m = t
        .delivered()
        .into_iter()
        .find(|m| m["step"] == "confirmed")
        .unwrap();
    assert!(
        m["text"]
            .as_str()
            .unwrap()
            .contains("`hotfix start error-rate --incident HF-1 --severity high`"),
        "{m}"
    );
    assert_eq!(m["severity"], "high", "{m}");
    assert_eq!(m["triage"], false, "{m}");
    // Again: nothing to do.
    let r = triage(&t, &lead, &hf1, confirm);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["recorded"], false);
    assert_eq!(types(&t, &lead, &hf1), ["declared", "confirmed"]);
    assert_eq!(in_triage(&t, &dev), [hf3.as_str(), &hf2]);

    // Decline as a duplicate: names what it duplicates, and closes it.
    let r = triage(
        &t,
        &lead,
        &hf2,
        json!({"action": "decline", "reason": "duplicate"}),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "bad_value");
    let r = triage(
        &t,
        &lead,
        &hf2,
        json!({"action": "decline", "reason": "duplicate", "duplicate_of": hf1, "note": "same alert, EU"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["incident"]["phase"], "declined");
    assert_eq!(v["incident"]["closed"], true);
    assert_eq!(types(&t, &lead, &hf2), ["declared", "declined", "closed"]);
    let declined = &events_of(&t, &lead, &hf2)[1];
    assert_eq!(
        (
            &declined["reason"],
            &declined["duplicate_of"],
            &declined["actor"]
        ),
        (&json!("duplicate"), &json!("HF-1"), &json!(LEAD))
    );

    // Merge into the open incident: closed here, `absorbed` there.
    let merge = json!({"action": "merge", "into": hf1});
    let r = triage(&t, &lead, &hf3, json!({"action": "merge", "into": hf2}));
    assert_eq!(r.status, 422, "into a closed incident: {}", r.text);
    assert_eq!(r.json()["error"]["code"], "closed");
    let r = triage(&t, &lead, &hf3, merge.clone());
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["recorded"], true);
    assert_eq!(r.json()["incident"]["phase"], "declined");
    assert_eq!(
        types(&t, &lead, &hf3),
        ["declared", "merged_into", "closed"]
    );
    let absorbed: Vec<Value> = events_of(&t, &lead, &hf1)
        .into_iter()
        .filter(|e| e["type"] == "absorbed")
        .collect();
    assert_eq!(absorbed.len(), 1);
    assert_eq!(absorbed[0]["from"], hf3);
    let r = triage(&t, &lead, &hf3, merge);
    assert_eq!(r.json()["recorded"], false, "{}", r.text);
    assert_eq!(
        types(&t, &lead, &hf1),
        ["declared", "confirmed", "absorbed"]
    );
    assert!(in_triage(&t, &dev).is_empty());

    // Once a branch is cut, triage is over.
    let r = append(
        &t,
        &dev,
        &hf1,
        json!([{"type": "attempt_started", "attempt": 1, "name": "error-rate", "branch": "hotfix/error-rate", "base_sha": sha('a'), "severity": "high"}]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = triage(
        &t,
        &lead,
        &hf1,
        json!({"action": "decline", "reason": "false_alarm"}),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "not_in_triage");
}

/// A merge is two appends (the incident, then the one it goes into): one
/// that stopped after the first is finished by the same request again.
#[test]
fn a_merge_interrupted_after_its_first_append_is_finished_by_a_rerun() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let into = reported(&t, &dev, "error-rate");
    let from = reported(&t, &dev, "error-rate-2");
    // The first append as it was written, and nothing after it.
    seed(
        &t.st,
        IncidentId(2),
        vec![
            EventKind::MergedInto {
                into: IncidentId(1),
            },
            EventKind::Closed,
        ],
    );
    assert_eq!(types(&t, &lead, &into), ["declared"]);
    let r = triage(&t, &lead, &from, json!({"action": "merge", "into": into}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["recorded"], true);
    assert_eq!(types(&t, &lead, &into), ["declared", "absorbed"]);
    assert_eq!(
        types(&t, &lead, &from),
        ["declared", "merged_into", "closed"]
    );
    let r = triage(&t, &lead, &from, json!({"action": "merge", "into": into}));
    assert_eq!(r.json()["recorded"], false);
    assert_eq!(types(&t, &lead, &into), ["declared", "absorbed"]);
}

// ------------------------------------------------------------ dashboard

fn page(t: &TestServer, path: &str, token: &str) -> Resp {
    get(
        &t.url(path),
        None,
        &[("Cookie", &format!("hotfix_session={token}"))],
    )
}

/// A form POST the way a browser on the dashboard sends it.
fn form(t: &TestServer, path: &str, token: &str, body: &str) -> Resp {
    post(
        &t.url(path),
        None,
        &[
            ("Cookie", &format!("hotfix_session={token}")),
            ("Origin", &t.base),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
}

/// Where a button's redirect leads, with the flash it set: the page text.
fn follow(t: &TestServer, r: &Resp, token: &str) -> String {
    assert_eq!(r.status, 303, "{}", r.text);
    let flash = r
        .set_cookie
        .iter()
        .find(|c| c.starts_with("hotfix_flash="))
        .map(|c| c.split(';').next().unwrap().to_string())
        .unwrap();
    let shown = get(
        &t.url(r.location.as_deref().unwrap()),
        None,
        &[("Cookie", &format!("hotfix_session={token}; {flash}"))],
    );
    unescape(&shown.text)
}

fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[test]
fn the_dashboard_lists_what_needs_triage_and_its_buttons_decide() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let hf1 = reported(&t, &dev, "error-rate");
    let hf2 = reported(&t, &dev, "flappy-check");
    let hf3 = reported(&t, &dev, "error-rate-eu");

    // The home page: what waits for triage, with its age and a link.
    let home = unescape(&page(&t, "/", &dev).text);
    let section = home
        .split("id=\"triage\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no triage list: {home}"));
    let section = section.split("</section>").next().unwrap();
    for id in [&hf1, &hf2, &hf3] {
        assert!(
            section.contains(&format!("<a href=\"/incidents/{id}\">{id}</a>")),
            "{section}"
        );
    }
    assert!(section.contains("Needs triage"), "{section}");
    // Its age, in seconds (a few have passed): `4s`, never `00:04`.
    let ages: Vec<&str> = section
        .split("</td>")
        .filter_map(|cell| cell.rsplit('>').next())
        .filter(|v| {
            v.len() > 1 && v.ends_with('s') && v[..v.len() - 1].bytes().all(|b| b.is_ascii_digit())
        })
        .collect();
    assert_eq!(ages.len(), 3, "its age: {section}");

    // A tech lead gets the forms; a developer is told who decides.
    let lead_page = unescape(&page(&t, &format!("/incidents/{hf1}"), &lead).text);
    for f in ["confirm-form", "decline-form", "merge-form"] {
        assert!(lead_page.contains(f), "{f}: {lead_page}");
    }
    let dev_page = unescape(&page(&t, &format!("/incidents/{hf1}"), &dev).text);
    assert!(!dev_page.contains("confirm-form"), "{dev_page}");
    assert!(dev_page.contains("triage-note"), "{dev_page}");
    // The server refuses a developer's click anyway.
    let r = form(
        &t,
        &format!("/incidents/{hf2}/actions/decline"),
        &dev,
        "reason=false_alarm",
    );
    let shown = follow(&t, &r, &dev);
    assert!(shown.contains("flash-error"), "{shown}");
    assert!(shown.contains("tech leads"), "{shown}");
    assert_eq!(types(&t, &lead, &hf2), ["declared"]);

    // Confirm, at another severity and with the public text.
    let r = form(
        &t,
        &format!("/incidents/{hf1}/actions/confirm"),
        &lead,
        "severity=high&public_text=Some+requests+fail",
    );
    let shown = follow(&t, &r, &lead);
    assert!(shown.contains("flash-ok"), "{shown}");
    assert!(
        shown.contains("HF-1 confirmed as high by lead@example.com."),
        "{shown}"
    );
    assert!(
        shown.contains("Confirmed at triage by lead@example.com"),
        "{shown}"
    );
    assert!(
        !shown.contains("confirm-form"),
        "confirmed: no confirm button"
    );
    let d = incident(&t, &lead, &hf1);
    assert_eq!(d["incident"]["phase"], "reported");
    assert_eq!(d["incident"]["severity"], "high");

    // Decline a false alarm (the form's empty fields are fields not given).
    let r = form(
        &t,
        &format!("/incidents/{hf2}/actions/decline"),
        &lead,
        "reason=false_alarm&duplicate_of=&note=threshold+too+low",
    );
    let shown = follow(&t, &r, &lead);
    assert!(
        shown.contains("HF-2 declined (false alarm): closed without the post-hotfix checklist"),
        "{shown}"
    );
    assert!(shown.contains("Declined at triage: false alarm"), "{shown}");
    assert!(!shown.contains("decline-form"), "{shown}");
    assert_eq!(types(&t, &lead, &hf2), ["declared", "declined", "closed"]);

    // Merge into the confirmed one.
    let r = form(
        &t,
        &format!("/incidents/{hf3}/actions/merge"),
        &lead,
        &format!("into={hf1}"),
    );
    let shown = follow(&t, &r, &lead);
    assert!(shown.contains("HF-3 merged into HF-1"), "{shown}");
    assert_eq!(
        types(&t, &lead, &hf3),
        ["declared", "merged_into", "closed"]
    );
    let target = unescape(&page(&t, &format!("/incidents/{hf1}"), &lead).text);
    assert!(
        target.contains("Merged into this one: <a href=\"/incidents/HF-3\">HF-3</a>"),
        "{target}"
    );

    // Nothing waits any more.
    let home = page(&t, "/", &dev).text;
    assert!(!home.contains("id=\"triage\""), "{home}");
}

// ------------------------------------------------------------ Slack

fn slack_form(user: &str, text: &str) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    [
        ("team_id", "T0001"),
        ("channel_id", "C2147483705"),
        ("channel_name", "dev-alerts"),
        ("user_id", user),
        ("user_name", "someone"),
        ("command", "/hotfix"),
        ("text", text),
        ("response_url", "https://hooks.slack.com/commands/1234/5678"),
    ]
    .iter()
    .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
    .collect::<Vec<_>>()
    .join("&")
}

/// `/hotfix TEXT` by Slack user `user`, signed as Slack signs it.
fn slash(t: &TestServer, user: &str, text: &str) -> Value {
    let body = slack_form(user, text);
    let ts = jiff::Timestamp::now().as_second();
    let sig = format!(
        "v0={}",
        sign_hmac_sha256_hex(
            SLACK_SECRET.as_bytes(),
            format!("v0:{ts}:{body}").as_bytes()
        )
    );
    let r = post(
        &t.url("/api/v1/slack/commands"),
        None,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Slack-Request-Timestamp", &ts.to_string()),
            ("X-Slack-Signature", &sig),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

#[test]
fn slack_confirms_declines_and_merges_as_the_mapped_tech_lead() {
    let t = TestServer::start();
    let dev = t.token(DEV, ApiRole::Developer);
    let lead = t.token(LEAD, ApiRole::TechLead);
    let hf1 = reported(&t, &dev, "error-rate");
    let hf2 = reported(&t, &dev, "flappy-check");
    let hf3 = reported(&t, &dev, "error-rate-eu");

    // The usage lists the triage commands.
    let v = slash(&t, "U0DEV", "help");
    let usage = v["text"].as_str().unwrap();
    for c in [
        "/hotfix confirm HF-N",
        "/hotfix decline HF-N",
        "/hotfix merge HF-N HF-M",
    ] {
        assert!(usage.contains(c), "{usage}");
    }
    // The developer mapped in [server.slack_users] is not a tech lead.
    let v = slash(&t, "U0DEV", "confirm HF-1 high");
    assert_eq!(v["response_type"], "ephemeral", "{v}");
    assert!(v["text"].as_str().unwrap().contains("tech leads"), "{v}");
    let v = slash(&t, "U0LEAD", "confirm HF-1 medium");
    assert!(
        v["text"].as_str().unwrap().contains("normal release"),
        "{v}"
    );
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("/hotfix decline HF-1 not_urgent"),
        "{v}"
    );
    assert_eq!(types(&t, &lead, &hf1), ["declared"]);

    // The tech lead confirms: the channel sees it, and the take command.
    let v = slash(&t, "U0LEAD", "confirm hf-1 high");
    assert_eq!(v["response_type"], "in_channel", "{v}");
    let text = v["text"].as_str().unwrap();
    assert!(
        text.contains("HF-1 confirmed as high by lead@example.com"),
        "{text}"
    );
    assert!(
        text.contains("hotfix start error-rate --incident HF-1 --severity high"),
        "{text}"
    );
    let d = incident(&t, &lead, &hf1);
    assert_eq!(d["incident"]["severity"], "high");
    assert_eq!(d["events"][1]["actor"], LEAD);
    let v = slash(&t, "U0LEAD", "confirm HF-1");
    assert_eq!(v["response_type"], "ephemeral", "{v}");
    assert!(v["text"].as_str().unwrap().contains("Nothing to do"), "{v}");

    // Decline a false alarm, with a note.
    let v = slash(&t, "U0LEAD", "decline HF-2 false_alarm flapping check");
    assert_eq!(v["response_type"], "in_channel", "{v}");
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("HF-2 declined (false alarm)"),
        "{v}"
    );
    let declined = &events_of(&t, &lead, &hf2)[1];
    assert_eq!(declined["reason"], "false_alarm");
    assert_eq!(declined["note"], "flapping check");
    assert_eq!(incident(&t, &lead, &hf2)["incident"]["phase"], "declined");

    // Merge the duplicate into the confirmed one.
    let v = slash(&t, "U0LEAD", "merge HF-3 HF-1");
    assert_eq!(v["response_type"], "in_channel", "{v}");
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("HF-3 merged into HF-1"),
        "{v}"
    );
    assert_eq!(
        types(&t, &lead, &hf3),
        ["declared", "merged_into", "closed"]
    );
    assert_eq!(
        types(&t, &lead, &hf1),
        ["declared", "confirmed", "absorbed"]
    );
}
