//! Which alerts declare an incident (`[[alerts.rules]]`) and what the
//! incident is called.

use std::collections::BTreeMap;

use hotfix_core::config::AlertRule;
use hotfix_core::severity::{Severity, SeverityError};
use sha2::{Digest, Sha256};

use super::parse::Alert;

/// Longest generated hotfix name (the branch is `hotfix/NAME`).
pub const MAX_NAME: usize = 48;

/// The rule an alert matched, and on which alert of an Alertmanager group.
#[derive(Debug, Clone, Copy)]
pub struct Match<'a> {
    pub rule: &'a AlertRule,
    /// The index in [`Alert::members`] of the alert that matched; `None`
    /// for a source without groups (the alert's own labels matched). The
    /// incident is named and titled after that alert ([`Alert::focus`]).
    pub member: Option<usize>,
}

/// What an alert matches: for each alert, the first rule whose `source`
/// (when set) is the alert's and whose `match` labels all equal the
/// alert's. Order matters: an alert's first match wins, even if it
/// proposes `medium` (that is how a team says "not a hotfix").
///
/// An Alertmanager group is judged by its firing alerts (all of them when
/// none fires: a resolve), each by that rule; the group takes the most
/// severe of their matches, the earliest alert on a tie. A `DiskSpaceLow`
/// that Alertmanager happens to list first does not name, title or rate a
/// group that also holds a critical `HighErrorRate`, and a critical alert
/// joining the group later raises what the group matches (an escalation).
pub fn first_match<'a>(rules: &'a [AlertRule], a: &Alert) -> Option<Match<'a>> {
    let rule_for = |labels: &BTreeMap<String, String>| {
        rules.iter().find(|r| {
            r.source.as_deref().is_none_or(|s| s == a.source.as_str()) && matches(&r.labels, labels)
        })
    };
    if a.members.is_empty() {
        return rule_for(&a.labels).map(|rule| Match { rule, member: None });
    }
    let any_firing = a.members.iter().any(|m| m.firing);
    let mut best: Option<(u8, Match<'a>)> = None;
    for (i, m) in a.members.iter().enumerate() {
        if any_firing && !m.firing {
            continue;
        }
        let Some(rule) = rule_for(&m.labels) else {
            continue;
        };
        let w = weight(rule);
        if best.as_ref().is_none_or(|(b, _)| w > *b) {
            best = Some((
                w,
                Match {
                    rule,
                    member: Some(i),
                },
            ));
        }
    }
    best.map(|(_, m)| m)
}

/// How severe a rule's proposal is: critical above high above a
/// normal-release word (`medium`) above a word nobody knows.
fn weight(rule: &AlertRule) -> u8 {
    match rule.severity.parse::<Severity>() {
        Ok(s) => 2 + s.rank(),
        Err(SeverityError::UseNormalRelease(_)) => 1,
        Err(_) => 0,
    }
}

fn matches(want: &BTreeMap<String, String>, have: &BTreeMap<String, String>) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// Lower-case letters, digits and single dashes, at most `max` characters.
pub fn slug(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut prev = ' ';
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            // `HighErrorRate` reads better as `high-error-rate` (but `PDF` stays `pdf`).
            if c.is_ascii_uppercase() && (prev.is_ascii_lowercase() || prev.is_ascii_digit()) {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        prev = c;
        if out.len() >= max {
            break;
        }
    }
    out.truncate(max);
    out.trim_matches('-').to_string()
}

/// Eight hex digits of the alert's identity (source and link key). They
/// make two alerts' hotfix names differ, and they let a run that died
/// between declaring and linking find its incident again by name.
pub fn key_suffix(source: &str, link_key: &str) -> String {
    let h = Sha256::digest(format!("{source}\n{link_key}").as_bytes());
    hex::encode(&h[..4])
}

/// The hotfix name: the rule's `name`, else the alert's name, as a slug,
/// plus [`key_suffix`]. A security alert without a rule name is called
/// `security-…` so that its branch tells nothing.
pub fn incident_name(rule: &AlertRule, a: &Alert, link_key: &str) -> String {
    let suffix = key_suffix(a.source.as_str(), link_key);
    let room = MAX_NAME - suffix.len() - 1;
    let base = match rule.name.as_deref() {
        Some(n) if !slug(n, room).is_empty() => slug(n, room),
        _ if rule.security => "security".to_string(),
        _ => slug(&a.name, room),
    };
    let base = if base.is_empty() {
        "alert".to_string()
    } else {
        base
    };
    format!("{base}-{suffix}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::alerts::parse::{Member, Source, Status};

    fn alert(labels: &[(&str, &str)]) -> Alert {
        Alert {
            source: Source::Alertmanager,
            status: Status::Firing,
            key: "k".into(),
            name: "HighErrorRate".into(),
            summary: "s".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            members: vec![],
            truncated: 0,
            severity_hint: None,
            url: None,
        }
    }

    fn member(labels: &[(&str, &str)], firing: bool) -> Member {
        Member {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            firing,
            fingerprint: None,
            summary: None,
            url: None,
        }
    }

    fn rule(source: Option<&str>, m: &[(&str, &str)], sev: &str) -> AlertRule {
        AlertRule {
            source: source.map(String::from),
            labels: m
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            severity: sev.into(),
            customer_facing: false,
            security: false,
            name: None,
            components: vec![],
        }
    }

    #[test]
    fn first_matching_rule_wins_and_source_filters() {
        let rules = vec![
            rule(Some("pagerduty"), &[], "high"),
            rule(None, &[("alertname", "HighErrorRate")], "critical"),
            rule(None, &[], "medium"),
        ];
        let a = alert(&[("alertname", "HighErrorRate")]);
        assert_eq!(
            first_match(&rules, &a).map(|m| m.rule.severity.as_str()),
            Some("critical")
        );
        let b = alert(&[("alertname", "Other")]);
        assert_eq!(
            first_match(&rules, &b).map(|m| m.rule.severity.as_str()),
            Some("medium")
        );
        assert!(first_match(&rules[..2], &b).is_none());
    }

    #[test]
    fn a_group_matches_when_one_of_its_alerts_does() {
        let rules = vec![rule(None, &[("alertname", "HighErrorRate")], "critical")];
        let mut a = alert(&[("service", "api")]);
        assert!(first_match(&rules, &a).is_none());
        a.members.push(member(&[("service", "api")], true));
        assert!(first_match(&rules, &a).is_none());
        a.members.push(member(
            &[("alertname", "HighErrorRate"), ("service", "api")],
            true,
        ));
        assert_eq!(first_match(&rules, &a).and_then(|m| m.member), Some(1));
        // A resolved alert of a firing group matches nothing; a group that
        // is all resolved is judged by its resolved alerts.
        a.members[1].firing = false;
        assert!(first_match(&rules, &a).is_none());
        a.members[0].firing = false;
        assert_eq!(first_match(&rules, &a).and_then(|m| m.member), Some(1));
    }

    #[test]
    fn a_group_takes_its_most_severe_alert_not_its_first() {
        let rules = vec![
            rule(None, &[("alertname", "DiskSpaceLow")], "medium"),
            rule(None, &[("alertname", "HighLatency")], "high"),
            rule(None, &[("alertname", "HighErrorRate")], "critical"),
        ];
        let mut a = alert(&[("service", "api")]);
        a.members = vec![
            member(&[("alertname", "DiskSpaceLow")], true),
            member(&[("alertname", "HighLatency")], true),
            member(&[("alertname", "HighLatency")], true),
        ];
        let m = first_match(&rules, &a).unwrap();
        assert_eq!((m.rule.severity.as_str(), m.member), ("high", Some(1)));
        a.members
            .push(member(&[("alertname", "HighErrorRate")], true));
        let m = first_match(&rules, &a).unwrap();
        assert_eq!((m.rule.severity.as_str(), m.member), ("critical", Some(3)));
        // Per alert, the first rule still wins: a catch-all before the
        // critical rule decides for every alert.
        let mut first_wins = vec![rule(None, &[], "medium")];
        first_wins.extend(rules);
        let m = first_match(&first_wins, &a).unwrap();
        assert_eq!((m.rule.severity.as_str(), m.member), ("medium", Some(0)));
    }

    #[test]
    fn names_are_branch_safe_short_and_distinct_per_key() {
        assert_eq!(slug("HighErrorRate", 40), "high-error-rate");
        assert_eq!(slug("  PDF export: crashes!! ", 40), "pdf-export-crashes");
        assert_eq!(slug("ünïcode only ✓", 40), "n-code-only");
        let r = rule(None, &[], "critical");
        let a = alert(&[]);
        let n1 = incident_name(&r, &a, "k");
        let n2 = incident_name(&r, &a, "k#reopen-2");
        assert!(n1.starts_with("high-error-rate-"), "{n1}");
        assert_ne!(n1, n2);
        let mut long = a.clone();
        long.name = "x".repeat(200);
        let n = incident_name(&r, &long, "k");
        assert!(n.len() <= MAX_NAME, "{n}");
        assert!(
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        let mut sec = r.clone();
        sec.security = true;
        assert!(incident_name(&sec, &a, "k").starts_with("security-"));
        long.name = "!!!".into();
        assert!(incident_name(&r, &long, "k").starts_with("alert-"));
    }
}
