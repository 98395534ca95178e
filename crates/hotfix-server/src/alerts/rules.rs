//! Which alerts declare an incident (`[[alerts.rules]]`) and what the
//! incident is called.

use std::collections::BTreeMap;

use hotfix_core::config::AlertRule;
use sha2::{Digest, Sha256};

use super::parse::Alert;

/// Longest generated hotfix name (the branch is `hotfix/NAME`).
pub const MAX_NAME: usize = 48;

/// The first rule whose `source` (when set) is the alert's and whose
/// `match` labels are all equal in the alert's labels or in one alert of an
/// Alertmanager group. Order matters: the first match wins, even if it
/// proposes `medium` (that is how a team says "not a hotfix").
pub fn first_match<'a>(rules: &'a [AlertRule], a: &Alert) -> Option<&'a AlertRule> {
    rules.iter().find(|r| {
        r.source.as_deref().is_none_or(|s| s == a.source.as_str())
            && std::iter::once(&a.labels)
                .chain(a.members.iter())
                .any(|set| matches(&r.labels, set))
    })
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
    use super::*;
    use crate::alerts::parse::{Source, Status};

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
            severity_hint: None,
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
            first_match(&rules, &a).map(|r| r.severity.as_str()),
            Some("critical")
        );
        let b = alert(&[("alertname", "Other")]);
        assert_eq!(
            first_match(&rules, &b).map(|r| r.severity.as_str()),
            Some("medium")
        );
        assert!(first_match(&rules[..2], &b).is_none());
    }

    #[test]
    fn a_group_matches_when_one_of_its_alerts_does() {
        let rules = vec![rule(None, &[("alertname", "HighErrorRate")], "critical")];
        let mut a = alert(&[("service", "api")]);
        assert!(first_match(&rules, &a).is_none());
        a.members.push(
            [("alertname", "HighErrorRate"), ("service", "api")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        assert!(first_match(&rules, &a).is_some());
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
