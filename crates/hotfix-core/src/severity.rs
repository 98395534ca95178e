//! Severity: the process's decision matrix only admits Critical and High to the
//! hotfix path; everything else must use the normal release.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The severities the hotfix path accepts.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Service down, data loss, security breach: respond immediately.
    Critical,
    /// Major feature broken, affecting 50%+ of users: respond within the hour.
    High,
}

impl Severity {
    /// Higher is more severe (an escalation only goes up).
    pub fn rank(self) -> u8 {
        match self {
            Severity::Critical => 2,
            Severity::High => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a severity is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeverityError {
    /// The process says so: "Use hotfix for non-urgent issues" is an anti-pattern.
    #[error(
        "severity `{0}` is not for the hotfix path: use the normal release (standard process, full QA cycle). Hotfixes are for critical (service down, data loss, security breach) and high (major feature broken for 50%+ of users) incidents"
    )]
    UseNormalRelease(String),
    #[error("unknown severity `{0}`: expected `critical` or `high`")]
    Unknown(String),
}

impl FromStr for Severity {
    type Err = SeverityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" | "crit" | "sev1" | "p1" => Ok(Severity::Critical),
            "high" | "sev2" | "p2" => Ok(Severity::High),
            "medium" | "low" | "minor" | "sev3" | "sev4" | "p3" | "p4" => {
                Err(SeverityError::UseNormalRelease(s.trim().to_string()))
            }
            _ => Err(SeverityError::Unknown(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_critical_and_high_only() {
        assert_eq!("critical".parse(), Ok(Severity::Critical));
        assert_eq!("HIGH".parse(), Ok(Severity::High));
        assert!(matches!(
            "medium".parse::<Severity>(),
            Err(SeverityError::UseNormalRelease(_))
        ));
        assert!(matches!(
            "low".parse::<Severity>(),
            Err(SeverityError::UseNormalRelease(_))
        ));
        assert!(matches!(
            "urgent".parse::<Severity>(),
            Err(SeverityError::Unknown(_))
        ));
        let msg = "medium".parse::<Severity>().unwrap_err().to_string();
        assert!(msg.contains("use the normal release"), "{msg}");
    }
}
