//! `hotfix triage`: a tech lead decides about a reported incident —
//! confirm it (it is real, at this severity), decline it (a false alarm,
//! not urgent, a duplicate) or merge it into another open incident.
//!
//! What each decision appends is decided here, once, for every door: the
//! CLI ([`Engine::triage`]) and the team server (`hotfix_server::ops::triage`,
//! behind the API, the dashboard and Slack) both take their events from
//! [`plan`] and [`absorb`], and the rulebook (`hotfix_core::admit`) decides
//! who may append them. Every decision is idempotent: run again after a
//! crash (or clicked twice), it finishes what is missing and appends
//! nothing twice.

use hotfix_core::event::{DeclineReason, EventKind};
use hotfix_core::guards::Refusal;
use hotfix_core::id::IncidentId;
use hotfix_core::severity::{Severity, SeverityError};
use hotfix_core::state::IncidentState;

use crate::{Engine, Result};

/// What a tech lead decided at triage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The incident is real. `severity`: the incident's when not given.
    /// `public_text`: what the public status page says about it.
    Confirm {
        severity: Option<Severity>,
        public_text: Option<String>,
    },
    /// Not a hotfix: closed without the post-hotfix checklist.
    Decline {
        reason: DeclineReason,
        duplicate_of: Option<IncidentId>,
        note: String,
    },
    /// The same thing as `into`, which takes its alerts from now on.
    Merge { into: IncidentId },
}

impl Decision {
    /// The word for it in commands and forms: `confirm`, `decline`, `merge`.
    pub fn action(&self) -> &'static str {
        match self {
            Decision::Confirm { .. } => "confirm",
            Decision::Decline { .. } => "decline",
            Decision::Merge { .. } => "merge",
        }
    }
}

/// What a triage did.
#[derive(Debug, Clone)]
pub struct Triaged {
    /// The incident decided about, as the decision left it.
    pub incident: IncidentState,
    /// The incident it was merged into, as the merge left it.
    pub target: Option<IncidentState>,
    /// Whether anything was appended (false: it was all done already).
    pub recorded: bool,
}

/// A severity typed at triage. Medium and low are refused as at
/// `hotfix start` ("use the normal release"), pointing at the decline that
/// says so in the log.
pub fn parse_severity(raw: &str, id: IncidentId) -> std::result::Result<Severity, Refusal> {
    raw.parse::<Severity>().map_err(|e| match e {
        SeverityError::UseNormalRelease(_) => Refusal {
            code: "use_normal_release",
            message: e.to_string(),
            hint: format!(
                "if it is real but not urgent, decline it: `hotfix triage {id} decline --reason not_urgent`"
            ),
        },
        SeverityError::Unknown(_) => Refusal {
            code: "bad_value",
            message: e.to_string(),
            hint: "confirm with `critical` or `high`".into(),
        },
    })
}

/// The events `d` appends to `s`; none when it is already done (a re-run,
/// a second click). A decision that contradicts one already made is
/// returned as it is, for the rulebook to refuse with its reason.
pub fn plan(s: &IncidentState, d: &Decision) -> Vec<EventKind> {
    match d {
        Decision::Confirm {
            severity,
            public_text,
        } => {
            let text = public_text
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from);
            let same = severity.is_none_or(|v| v == s.severity)
                && text
                    .as_ref()
                    .is_none_or(|t| s.public_text.as_ref() == Some(t));
            if s.confirmed.is_some() && s.declined.is_none() && same {
                return vec![];
            }
            vec![EventKind::Confirmed {
                severity: severity.unwrap_or(s.severity),
                public_text: text,
            }]
        }
        Decision::Decline {
            reason,
            duplicate_of,
            note,
        } => match &s.declined {
            // A crash between the two appends cannot happen (one append),
            // but a log from elsewhere may hold a decline without its close.
            Some(_) if !s.is_closed() => vec![EventKind::Closed],
            Some(x)
                if x.merged_into.is_none()
                    && x.reason == *reason
                    && x.duplicate_of == *duplicate_of =>
            {
                vec![]
            }
            _ => vec![
                EventKind::Declined {
                    reason: *reason,
                    duplicate_of: *duplicate_of,
                    note: note.trim().to_string(),
                },
                EventKind::Closed,
            ],
        },
        Decision::Merge { into } => match &s.declined {
            Some(x) if x.merged_into == Some(*into) && !s.is_closed() => vec![EventKind::Closed],
            Some(x) if x.merged_into == Some(*into) => vec![],
            _ => vec![EventKind::MergedInto { into: *into }, EventKind::Closed],
        },
    }
}

/// The `absorbed` the target of a merge still needs: `from` is merged into
/// `target` and `target` does not say so yet (the merge's second append,
/// finished by a re-run when a crash came between the two).
pub fn absorb(from: &IncidentState, target: &IncidentState) -> Vec<EventKind> {
    let merged = from.declined.as_ref().and_then(|d| d.merged_into) == Some(target.id);
    if merged && !target.absorbed.contains(&from.id) {
        vec![EventKind::Absorbed { from: from.id }]
    } else {
        vec![]
    }
}

/// One line about what a triage recorded, for the person who made it.
pub fn outcome(t: &Triaged, d: &Decision) -> String {
    let s = &t.incident;
    let id = s.id;
    let done = if t.recorded {
        ""
    } else {
        " (already recorded)"
    };
    match d {
        Decision::Confirm { .. } => {
            let by = s.confirmed.as_ref().map(|(w, _)| w.as_str()).unwrap_or("");
            format!("{id} confirmed as {} by {by}{done}", s.severity)
        }
        Decision::Decline { .. } => match &s.declined {
            Some(x) => format!(
                "{id} declined ({}{}): closed without the post-hotfix checklist{done}",
                x.reason.label(),
                x.duplicate_of
                    .map(|d| format!(" of {d}"))
                    .unwrap_or_default()
            ),
            None => format!("{id} declined{done}"),
        },
        Decision::Merge { into } => {
            format!("{id} merged into {into}: closed; {into} takes its alerts from now on{done}")
        }
    }
}

impl Engine {
    /// `hotfix triage HF-N confirm|decline|merge`: records the decision as
    /// the person running the command (the rulebook checks they are a tech
    /// lead). A merge appends to the incident first, then `absorbed` to the
    /// one it was merged into; run again, it finishes either.
    pub fn triage(&self, id: IncidentId, d: &Decision) -> Result<Triaged> {
        let mut recorded = false;
        let s = self.append_fresh(id, |s| {
            let kinds = plan(s, d);
            recorded = !kinds.is_empty();
            Ok(kinds)
        })?;
        let mut target = None;
        if let Decision::Merge { into } = d {
            self.failpoint("triage.merged");
            let mut absorbed = false;
            let t = self.append_fresh(*into, |t| {
                let kinds = absorb(&s, t);
                absorbed = !kinds.is_empty();
                Ok(kinds)
            })?;
            recorded |= absorbed;
            target = Some(t);
        }
        let t = Triaged {
            incident: s,
            target,
            recorded,
        };
        self.ui.info(&outcome(&t, d));
        Ok(t)
    }

    /// The open incidents waiting for triage, oldest first.
    pub fn in_triage(&self) -> Result<Vec<IncidentState>> {
        Ok(self.open()?.into_iter().filter(|s| s.in_triage()).collect())
    }
}
