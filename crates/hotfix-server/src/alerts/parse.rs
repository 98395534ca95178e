//! What each monitoring tool sends, turned into one [`Alert`].
//!
//! The same parser runs twice: at the door, to refuse (400) what is not an
//! alert of the claimed source before anything is stored, and in the inbox
//! worker, to act on it. Running the one parser in both places means that
//! whatever was acknowledged can be processed.
//!
//! Only the fields hotfix needs are read; everything else is ignored, so a
//! sender adding fields (Alertmanager added `notification_reason` and
//! `routeLabels` in minor versions) never breaks intake.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Longest dedup key accepted (PagerDuty allows 255; Alertmanager group
/// keys grow with the route and its `group_by` labels).
pub const MAX_KEY: usize = 1024;
/// Summaries longer than this are cut (they become incident titles).
pub const MAX_SUMMARY: usize = 300;

/// Where an alert came from: the `{source}` of `POST /api/v1/alerts/{source}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Alertmanager,
    Sentry,
    Pagerduty,
    Generic,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::Alertmanager,
        Source::Sentry,
        Source::Pagerduty,
        Source::Generic,
    ];

    pub fn parse(s: &str) -> Option<Source> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Sentry => "sentry",
            Source::Pagerduty => "pagerduty",
            Source::Generic => "generic",
        }
    }
}

/// What the sender says about the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Firing,
    Resolved,
    /// PagerDuty `acknowledge`: someone took the page elsewhere.
    Acknowledged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
            Status::Acknowledged => "acknowledged",
        }
    }
}

/// One alert, whatever sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub source: Source,
    pub status: Status,
    /// The sender's deduplication key: Alertmanager `groupKey`, PagerDuty
    /// `dedup_key`, Sentry `metric_alert:ID` / `issue:ID`, generic `key`.
    pub key: String,
    /// A short name (`alertname`, the Sentry rule, ...): the hotfix name is made from it.
    pub name: String,
    /// One line for people: becomes the incident's title.
    pub summary: String,
    /// What rules match on.
    pub labels: BTreeMap<String, String>,
    /// Alertmanager only: each alert of the group as sent (Alertmanager
    /// sends the whole group every time, firing and resolved alerts alike).
    /// A rule that matches any firing one matches the group, because the
    /// group is what Alertmanager deduplicates on and `commonLabels` lacks
    /// whatever differs between its alerts; the incident is named after the
    /// one that matched ([`Alert::focus`]).
    pub members: Vec<Member>,
    /// Alertmanager's `truncatedAlerts`: alerts of the group that the
    /// receiver's `max_alerts` left out of `alerts[]`. Counted in the
    /// summary's "(N alerts)".
    pub truncated: u64,
    /// The sender's own severity word (`critical`, `error`, `warning`...),
    /// shown in the page; the rule decides the proposed severity.
    pub severity_hint: Option<String>,
    pub url: Option<String>,
}

/// One alert of an Alertmanager group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its labels with the group's common ones.
    pub labels: BTreeMap<String, String>,
    /// `status` of this alert (a firing group also lists its resolved ones).
    pub firing: bool,
    /// Alertmanager's `fingerprint` (a hash of the labels): the same alert
    /// under another group key when a route changes.
    pub fingerprint: Option<String>,
    /// Its `summary`, `description` or `title` annotation (each its own,
    /// else the group's common one), clipped.
    pub summary: Option<String>,
    pub url: Option<String>,
}

impl Alert {
    /// How many alerts this notification stands for: Alertmanager's group,
    /// with the ones `max_alerts` cut; one for every other source.
    pub fn count(&self) -> u64 {
        (self.members.len() as u64)
            .saturating_add(self.truncated)
            .max(1)
    }

    /// The alert as told by its member `i` (the one a rule matched): its
    /// name, labels, severity word, link, and summary (with the group's
    /// count). `None`, or a member out of range, leaves it as parsed.
    pub fn focus(mut self, i: Option<usize>) -> Alert {
        let Some(m) = i.and_then(|i| self.members.get(i)) else {
            return self;
        };
        if let Some(n) = m.labels.get("alertname").filter(|n| !n.trim().is_empty()) {
            self.name = n.clone();
        }
        self.labels = m.labels.clone();
        self.severity_hint = m.labels.get("severity").cloned();
        if m.url.is_some() {
            self.url = m.url.clone();
        }
        let summary = m.summary.clone().unwrap_or_else(|| self.name.clone());
        self.summary = with_count(&summary, self.count());
        self
    }
}

/// `summary (N alerts)` for a group of more than one, clipped.
fn with_count(summary: &str, n: u64) -> String {
    if n > 1 {
        clip(&format!("{} ({n} alerts)", summary.trim()), MAX_SUMMARY)
    } else {
        clip(summary, MAX_SUMMARY)
    }
}

/// Longest fingerprint kept (Alertmanager's are 16 hex digits).
const MAX_FINGERPRINT: usize = 64;

/// A payload of the right shape that is, or is not, an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Alert(Box<Alert>),
    /// Well-formed but nothing to act on (a Sentry `installation` hook, an
    /// issue being assigned): accepted and recorded with this reason.
    Ignored(String),
}

/// Why a body was refused at the door.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("{0}")]
    Shape(String),
}

impl ParseError {
    /// The reason label in `hotfix_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::NotJson(_) => "bad_json",
            ParseError::Shape(_) => "bad_shape",
        }
    }
}

fn shape(msg: impl Into<String>) -> ParseError {
    ParseError::Shape(msg.into())
}

/// Parses `body` as an alert of `source`. `fallback_key` keys a PagerDuty
/// trigger that has no `dedup_key` (PagerDuty opens a new alert for each
/// such trigger, so its key must never match another's).
pub fn parse(source: Source, body: &[u8], fallback_key: &str) -> Result<Parsed, ParseError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let Value::Object(o) = v else {
        return Err(shape(format!(
            "a {} alert is a JSON object",
            source.as_str()
        )));
    };
    match source {
        Source::Alertmanager => alertmanager(&o),
        Source::Sentry => sentry(&o),
        Source::Pagerduty => pagerduty(&o, fallback_key),
        Source::Generic => generic(&o),
    }
}

/// A non-empty string field.
fn text<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    o.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn object<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a Map<String, Value>> {
    o.get(k).and_then(Value::as_object)
}

/// An id that senders write as a string or a number.
fn id_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A map of labels; scalar values are kept as strings, nested ones skipped.
fn labels_of(v: Option<&Value>, what: &str) -> Result<BTreeMap<String, String>, ParseError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => Ok(m
            .iter()
            .filter_map(|(k, v)| scalar(v).map(|v| (k.clone(), v)))
            .collect()),
        Some(_) => Err(shape(format!("`{what}` must be an object of labels"))),
    }
}

/// Cuts `s` to `max` characters (on a character boundary), with control
/// and bidi characters other than newlines and tabs made visible: a
/// monitoring tool's text is kept (never refused, which would lose the
/// alert), but cannot carry an ESC or a CR into logs, terminals and chat.
pub fn clip(s: &str, max: usize) -> String {
    let s = hotfix_core::display::block(s.trim());
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn check_key(key: &str, what: &str) -> Result<String, ParseError> {
    let key = key.trim();
    if key.is_empty() {
        return Err(shape(format!("`{what}` is empty")));
    }
    if key.len() > MAX_KEY || key.chars().any(char::is_control) {
        return Err(shape(format!(
            "`{what}` must be at most {MAX_KEY} bytes without control characters"
        )));
    }
    Ok(key.to_string())
}

fn http_url(s: Option<&str>) -> Option<String> {
    s.filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(|u| clip(u, 500))
}

/// Prometheus Alertmanager webhook, payload version 4: one alert per group.
fn alertmanager(o: &Map<String, Value>) -> Result<Parsed, ParseError> {
    match o.get("version") {
        None => {}
        Some(Value::String(v)) if v == "4" => {}
        Some(v) => {
            return Err(shape(format!(
                "Alertmanager webhook version {v} is not supported (expected \"4\")"
            )));
        }
    }
    let key = text(o, "groupKey").ok_or_else(|| {
        shape("missing `groupKey`: not an Alertmanager webhook (payload version 4)")
    })?;
    let key = check_key(key, "groupKey")?;
    let status = match text(o, "status") {
        Some("firing") => Status::Firing,
        Some("resolved") => Status::Resolved,
        _ => return Err(shape("`status` must be \"firing\" or \"resolved\"")),
    };
    let Some(alerts) = o.get("alerts").and_then(Value::as_array) else {
        return Err(shape("missing `alerts` (an array)"));
    };
    let mut common = labels_of(o.get("groupLabels"), "groupLabels")?;
    common.extend(labels_of(o.get("commonLabels"), "commonLabels")?);
    let annotations = labels_of(o.get("commonAnnotations"), "commonAnnotations")?;
    // A count only adds to the summary: an odd value is read as none
    // rather than losing the alert.
    let truncated = o
        .get("truncatedAlerts")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    // The summary of a member: its own annotation, else the group's common
    // one, for each of these in turn (a `summary` says more than a
    // `description`, wherever it is).
    let pick = |own: &BTreeMap<String, String>| {
        ["summary", "description", "title"].iter().find_map(|k| {
            own.get(*k)
                .or_else(|| annotations.get(*k))
                .filter(|v| !v.trim().is_empty())
                .map(|v| clip(v, MAX_SUMMARY))
        })
    };
    let mut members = Vec::with_capacity(alerts.len());
    let mut first: Option<usize> = None;
    for (i, a) in alerts.iter().enumerate() {
        let Value::Object(a) = a else {
            return Err(shape(format!("alerts[{i}] is not an object")));
        };
        let mut labels = labels_of(a.get("labels"), &format!("alerts[{i}].labels"))?;
        let own_ann = labels_of(a.get("annotations"), &format!("alerts[{i}].annotations"))?;
        let firing = text(a, "status") != Some("resolved");
        if first.is_none() && (firing || status == Status::Resolved) {
            first = Some(i);
        }
        labels.extend(common.clone());
        let fingerprint = text(a, "fingerprint")
            .filter(|f| f.len() <= MAX_FINGERPRINT && f.chars().all(|c| c.is_ascii_alphanumeric()))
            .map(String::from);
        members.push(Member {
            labels,
            firing,
            fingerprint,
            summary: pick(&own_ann),
            url: http_url(text(a, "generatorURL")),
        });
    }
    let first = first.or(if members.is_empty() { None } else { Some(0) });
    let labels = match first {
        Some(i) => members[i].labels.clone(),
        None => common,
    };
    let name = labels
        .get("alertname")
        .cloned()
        .unwrap_or_else(|| "alertmanager-group".into());
    let summary = ["summary", "description", "title"]
        .iter()
        .find_map(|k| annotations.get(*k).filter(|v| !v.trim().is_empty()))
        .map(|v| clip(v, MAX_SUMMARY))
        .or_else(|| first.and_then(|i| members[i].summary.clone()))
        .unwrap_or_else(|| name.clone());
    let url = first
        .and_then(|i| members[i].url.clone())
        .or_else(|| http_url(text(o, "externalURL")));
    let mut a = Alert {
        source: Source::Alertmanager,
        status,
        key,
        severity_hint: labels.get("severity").cloned(),
        name,
        summary: String::new(),
        labels,
        members,
        truncated,
        url,
    };
    a.summary = with_count(&summary, a.count());
    Ok(Parsed::Alert(Box::new(a)))
}

/// Sentry integration-platform webhooks: `metric_alert`, `issue`, `event_alert`.
/// The resource is told by what `data` holds (the `Sentry-Hook-Resource`
/// header is not kept with the stored body).
fn sentry(o: &Map<String, Value>) -> Result<Parsed, ParseError> {
    let action = text(o, "action")
        .ok_or_else(|| shape("missing `action`: not a Sentry webhook"))?
        .to_string();
    let data = object(o, "data").ok_or_else(|| shape("missing `data`: not a Sentry webhook"))?;
    let mut labels = BTreeMap::new();
    if let Some(ma) = object(data, "metric_alert") {
        let id = id_of(ma.get("id")).ok_or_else(|| shape("`data.metric_alert.id` is missing"))?;
        let status = match action.as_str() {
            "critical" | "warning" => Status::Firing,
            "resolved" => Status::Resolved,
            other => {
                return Ok(Parsed::Ignored(format!(
                    "sentry metric alert action `{other}` is not critical, warning or resolved"
                )));
            }
        };
        let rule = object(ma, "alert_rule");
        let name = rule
            .and_then(|r| text(r, "name"))
            .or_else(|| text(ma, "title"))
            .unwrap_or("sentry-metric-alert")
            .to_string();
        labels.insert("resource".into(), "metric_alert".into());
        labels.insert("alertname".into(), name.clone());
        if status == Status::Firing {
            labels.insert("severity".into(), action.clone());
        }
        if let Some(p) = ma.get("projects").and_then(Value::as_array) {
            let p: Vec<_> = p.iter().filter_map(Value::as_str).collect();
            if !p.is_empty() {
                labels.insert("project".into(), p.join(","));
            }
        }
        if let Some(env) = rule.and_then(|r| text(r, "environment")) {
            labels.insert("environment".into(), env.into());
        }
        let summary = text(data, "description_title")
            .or_else(|| text(ma, "title"))
            .unwrap_or(&name)
            .to_string();
        return Ok(Parsed::Alert(Box::new(Alert {
            source: Source::Sentry,
            status,
            key: check_key(&format!("metric_alert:{id}"), "data.metric_alert.id")?,
            name,
            summary: clip(&summary, MAX_SUMMARY),
            severity_hint: (status == Status::Firing).then(|| action.clone()),
            labels,
            members: vec![],
            truncated: 0,
            url: http_url(text(data, "web_url")),
        })));
    }
    if let Some(issue) = object(data, "issue") {
        let id = id_of(issue.get("id")).ok_or_else(|| shape("`data.issue.id` is missing"))?;
        let status = match action.as_str() {
            "created" | "unresolved" => Status::Firing,
            "resolved" => Status::Resolved,
            other => {
                return Ok(Parsed::Ignored(format!(
                    "sentry issue action `{other}` is not an alert state (created, unresolved and resolved are)"
                )));
            }
        };
        let title = text(issue, "title").unwrap_or("Sentry issue").to_string();
        labels.insert("resource".into(), "issue".into());
        labels.insert("alertname".into(), title.clone());
        for k in ["level", "status", "substatus", "platform", "culprit"] {
            if let Some(v) = text(issue, k) {
                labels.insert(k.into(), v.into());
            }
        }
        if let Some(slug) = object(issue, "project").and_then(|p| text(p, "slug")) {
            labels.insert("project".into(), slug.into());
        }
        let summary = match text(issue, "culprit") {
            Some(c) => format!("{title} ({c})"),
            None => title.clone(),
        };
        return Ok(Parsed::Alert(Box::new(Alert {
            source: Source::Sentry,
            status,
            key: check_key(&format!("issue:{id}"), "data.issue.id")?,
            name: title,
            summary: clip(&summary, MAX_SUMMARY),
            severity_hint: text(issue, "level").map(String::from),
            labels,
            members: vec![],
            truncated: 0,
            url: http_url(text(issue, "permalink")).or_else(|| http_url(text(issue, "web_url"))),
        })));
    }
    if let Some(event) = object(data, "event") {
        if action != "triggered" {
            return Ok(Parsed::Ignored(format!(
                "sentry event alert action `{action}` is not `triggered`"
            )));
        }
        let issue_id = id_of(event.get("issue_id"))
            .ok_or_else(|| shape("`data.event.issue_id` is missing"))?;
        let title = text(event, "title").unwrap_or("Sentry event").to_string();
        let rule = text(data, "triggered_rule").unwrap_or(&title).to_string();
        labels.insert("resource".into(), "event_alert".into());
        labels.insert("alertname".into(), rule.clone());
        for k in ["level", "environment", "release", "platform", "culprit"] {
            if let Some(v) = text(event, k) {
                labels.insert(k.into(), v.into());
            }
        }
        if let Some(p) = id_of(event.get("project")) {
            labels.insert("project".into(), p);
        }
        // Tags come as `[[key, value], ...]`; they never override the fields above.
        if let Some(tags) = event.get("tags").and_then(Value::as_array) {
            for t in tags {
                if let Some([Value::String(k), Value::String(v)]) = t.as_array().map(Vec::as_slice)
                {
                    labels.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        // Issue alerts and issue webhooks share the key: a later
        // `issue resolved` resolves what the rule fired for.
        return Ok(Parsed::Alert(Box::new(Alert {
            source: Source::Sentry,
            status: Status::Firing,
            key: check_key(&format!("issue:{issue_id}"), "data.event.issue_id")?,
            name: rule,
            summary: clip(&title, MAX_SUMMARY),
            severity_hint: text(event, "level").map(String::from),
            labels,
            members: vec![],
            truncated: 0,
            url: http_url(text(event, "web_url")).or_else(|| http_url(text(event, "issue_url"))),
        })));
    }
    Ok(Parsed::Ignored(format!(
        "sentry webhook `{}` carries no alert (metric_alert, issue or event_alert)",
        clip(&action, 40)
    )))
}

/// PagerDuty Events API v2 (`/v2/enqueue` body).
fn pagerduty(o: &Map<String, Value>, fallback_key: &str) -> Result<Parsed, ParseError> {
    let status = match text(o, "event_action") {
        Some("trigger") => Status::Firing,
        Some("resolve") => Status::Resolved,
        Some("acknowledge") => Status::Acknowledged,
        _ => {
            return Err(shape(
                "`event_action` must be trigger, acknowledge or resolve (PagerDuty Events API v2)",
            ));
        }
    };
    if o.get("routing_key").is_some_and(|v| !v.is_string()) {
        return Err(shape("`routing_key` must be a string"));
    }
    let dedup = match o.get("dedup_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= 255 => Some(check_key(s, "dedup_key")?),
        Some(_) => {
            return Err(shape(
                "`dedup_key` must be a string of at most 255 characters",
            ));
        }
    };
    let payload = object(o, "payload");
    let key = match (&dedup, status) {
        (Some(k), _) => k.clone(),
        (None, Status::Firing) => fallback_key.to_string(),
        (None, _) => {
            return Err(shape(
                "`dedup_key` is required to acknowledge or resolve an alert",
            ));
        }
    };
    let mut labels = BTreeMap::new();
    let mut summary = None;
    if status == Status::Firing {
        let Some(p) = payload else {
            return Err(shape(
                "a trigger needs `payload` (summary, source, severity)",
            ));
        };
        let s = text(p, "summary").ok_or_else(|| shape("`payload.summary` is required"))?;
        if s.chars().count() > 1024 {
            return Err(shape("`payload.summary` is longer than 1024 characters"));
        }
        summary = Some(s.to_string());
        text(p, "source").ok_or_else(|| shape("`payload.source` is required"))?;
        match text(p, "severity") {
            Some("critical" | "error" | "warning" | "info") => {}
            _ => {
                return Err(shape(
                    "`payload.severity` must be critical, error, warning or info",
                ));
            }
        }
    }
    if let Some(p) = payload {
        for k in ["severity", "source", "component", "group", "class"] {
            if let Some(v) = text(p, k) {
                labels.insert(k.to_string(), v.to_string());
            }
        }
        if let Some(Value::Object(d)) = p.get("custom_details") {
            for (k, v) in d {
                if let Some(v) = scalar(v) {
                    labels.entry(k.clone()).or_insert(v);
                }
            }
        }
        if summary.is_none() {
            summary = text(p, "summary").map(String::from);
        }
    }
    let summary = summary.unwrap_or_else(|| format!("{} {key}", status.as_str()));
    let url = http_url(text(o, "client_url")).or_else(|| {
        o.get("links")
            .and_then(Value::as_array)
            .and_then(|l| l.first())
            .and_then(Value::as_object)
            .and_then(|l| http_url(text(l, "href")))
    });
    Ok(Parsed::Alert(Box::new(Alert {
        source: Source::Pagerduty,
        status,
        name: labels
            .get("class")
            .or(labels.get("component"))
            .cloned()
            .unwrap_or_else(|| summary.clone()),
        severity_hint: labels.get("severity").cloned(),
        summary: clip(&summary, MAX_SUMMARY),
        key,
        labels,
        members: vec![],
        truncated: 0,
        url,
    })))
}

/// The generic shape, for anything else that can send JSON:
/// `{"key", "status": "firing"|"resolved", "title", "name"?, "severity"?, "labels"?, "url"?}`.
fn generic(o: &Map<String, Value>) -> Result<Parsed, ParseError> {
    let key = text(o, "key").ok_or_else(|| {
        shape("missing `key`: the generic shape is {\"key\", \"status\", \"title\", \"severity\", \"labels\", \"url\"}")
    })?;
    let key = check_key(key, "key")?;
    let status = match text(o, "status") {
        Some("firing") => Status::Firing,
        Some("resolved") => Status::Resolved,
        _ => return Err(shape("`status` must be \"firing\" or \"resolved\"")),
    };
    let title = text(o, "title");
    if status == Status::Firing && title.is_none() {
        return Err(shape("a firing alert needs a `title`"));
    }
    let mut labels = labels_of(o.get("labels"), "labels")?;
    let severity = match o.get("severity") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(_) => return Err(shape("`severity` must be a string")),
    };
    if let Some(s) = &severity {
        labels.entry("severity".into()).or_insert_with(|| s.clone());
    }
    let name = text(o, "name")
        .map(String::from)
        .or_else(|| labels.get("alertname").cloned())
        .or_else(|| title.map(String::from))
        .unwrap_or_else(|| key.clone());
    labels
        .entry("alertname".into())
        .or_insert_with(|| name.clone());
    Ok(Parsed::Alert(Box::new(Alert {
        source: Source::Generic,
        status,
        summary: clip(title.unwrap_or(&name), MAX_SUMMARY),
        name,
        key,
        labels,
        members: vec![],
        truncated: 0,
        severity_hint: severity,
        url: http_url(text(o, "url")),
    })))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn alert(source: Source, body: &str) -> Alert {
        match parse(source, body.as_bytes(), "inbox-1").unwrap() {
            Parsed::Alert(a) => *a,
            Parsed::Ignored(why) => panic!("ignored: {why}"),
        }
    }

    #[test]
    fn shape_errors_name_the_field() {
        let e = parse(Source::Alertmanager, br#"{"status":"firing"}"#, "x").unwrap_err();
        assert!(e.to_string().contains("groupKey"), "{e}");
        let e = parse(Source::Pagerduty, br#"{"event_action":"resolve"}"#, "x").unwrap_err();
        assert!(e.to_string().contains("dedup_key"), "{e}");
        let e = parse(Source::Generic, b"[1]", "x").unwrap_err();
        assert_eq!(e.reason(), "bad_shape");
        let e = parse(Source::Generic, b"{", "x").unwrap_err();
        assert_eq!(e.reason(), "bad_json");
        let e = parse(
            Source::Alertmanager,
            br#"{"version":"3","groupKey":"g","status":"firing","alerts":[]}"#,
            "x",
        )
        .unwrap_err();
        assert!(e.to_string().contains("version"), "{e}");
    }

    #[test]
    fn pagerduty_trigger_without_dedup_key_uses_the_fallback() {
        let a = alert(
            Source::Pagerduty,
            r#"{"routing_key":"r","event_action":"trigger","payload":{"summary":"s","source":"h","severity":"error","custom_details":{"n":3,"nested":{"x":1}}}}"#,
        );
        assert_eq!(a.key, "inbox-1");
        assert_eq!(a.labels.get("n").map(String::as_str), Some("3"));
        assert!(!a.labels.contains_key("nested"));
    }

    #[test]
    fn clip_respects_character_boundaries() {
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("  ok ", 5), "ok");
    }

    #[test]
    fn generic_labels_get_severity_and_alertname() {
        let a = alert(
            Source::Generic,
            r#"{"key":"k1","status":"firing","title":"Checkout down","severity":"critical","labels":{"service":"api"}}"#,
        );
        assert_eq!(a.labels["severity"], "critical");
        assert_eq!(a.labels["alertname"], "Checkout down");
        assert_eq!(a.labels["service"], "api");
    }
}
