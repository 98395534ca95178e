//! The decision matrix and step targets of the process, overridable in
//! `hotfix.toml` under `[policy]`.

use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;
use crate::severity::Severity;

/// What one severity requires before a hotfix may ship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityPolicy {
    /// How fast someone must respond ("immediate", "1h"): shown, not enforced.
    pub response: String,
    /// Approvals from tech leads.
    pub tech_leads: u32,
    /// Further approvals from reviewers (a tech lead may fill a reviewer slot).
    pub reviewers: u32,
    /// A preview deploy of the exact head must exist.
    pub preview: bool,
    /// The `[[smoke]]` checks must pass against that preview.
    pub smoke: bool,
    /// The `[[area_checks]]` (the affected areas) must pass too.
    pub area_checks: bool,
}

/// "Keep hotfixes focused": ship refuses a diff wider than this unless
/// `--allow-wide --reason` records the anti-pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffPolicy {
    pub max_files: usize,
    pub max_lines: u64,
}

/// Total elapsed time since the incident was declared by which each step
/// should be done (the process's timeline table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    pub triage: HumanDuration,
    pub fix: HumanDuration,
    pub preview: HumanDuration,
    pub approval: HumanDuration,
    pub deploy: HumanDuration,
    pub backport: HumanDuration,
    /// "Issue resolved in under 30 minutes" (production healthy).
    pub resolved: HumanDuration,
    /// "Schedule post-mortem for next day": due this long after resolution.
    pub postmortem_within: HumanDuration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub critical: SeverityPolicy,
    pub high: SeverityPolicy,
    pub diff: DiffPolicy,
    pub targets: Targets,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            critical: SeverityPolicy {
                response: "immediate".into(),
                tech_leads: 1,
                reviewers: 0,
                preview: true,
                smoke: true,
                area_checks: false,
            },
            high: SeverityPolicy {
                response: "within 1h".into(),
                tech_leads: 1,
                reviewers: 1,
                preview: true,
                smoke: true,
                area_checks: true,
            },
            diff: DiffPolicy {
                max_files: 10,
                max_lines: 300,
            },
            targets: Targets {
                triage: HumanDuration::mins(5),
                fix: HumanDuration::mins(20),
                preview: HumanDuration::mins(25),
                approval: HumanDuration::mins(27),
                deploy: HumanDuration::mins(32),
                backport: HumanDuration::mins(37),
                resolved: HumanDuration::mins(30),
                postmortem_within: HumanDuration::mins(24 * 60),
            },
        }
    }
}

impl Policy {
    pub fn for_severity(&self, s: Severity) -> &SeverityPolicy {
        match s {
            Severity::Critical => &self.critical,
            Severity::High => &self.high,
        }
    }
}
