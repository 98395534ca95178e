//! Human durations in config (`"30s"`, `"5m"`, `"1h30m"`, `"250ms"`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration written the way people write them in a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HumanDuration(pub Duration);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{0}` is not a duration: write e.g. 250ms, 30s, 5m, 1h or 1h30m (at most 876000h, 100 years)"
)]
pub struct BadDuration(pub String);

/// The longest duration accepted, 100 years: far beyond any real timeout,
/// and short enough that every deadline made from one
/// (`Instant::now() + timeout`) stays in the clock's range instead of
/// panicking.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl FromStr for HumanDuration {
    type Err = BadDuration;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadDuration(s.to_string());
        let t = s.trim();
        if t.is_empty() {
            return Err(bad());
        }
        if t == "0" {
            return Ok(HumanDuration(Duration::ZERO));
        }
        let mut total = Duration::ZERO;
        let mut rest = t;
        while !rest.is_empty() {
            let n_end = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            if n_end == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..n_end].parse().map_err(|_| bad())?;
            rest = &rest[n_end..];
            let u_end = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = rest[..u_end].trim();
            rest = rest[u_end..].trim_start();
            // Checked: a number too large for its unit is a bad value, not
            // an overflow (its regression test: tests/fuzz_regressions.rs).
            let secs = |k: u64| n.checked_mul(k).map(Duration::from_secs).ok_or_else(bad);
            let d = match unit {
                "ms" => Duration::from_millis(n),
                "s" | "sec" | "secs" => secs(1)?,
                "m" | "min" | "mins" => secs(60)?,
                "h" | "hr" | "hrs" => secs(3600)?,
                _ => return Err(bad()),
            };
            total = total
                .checked_add(d)
                .filter(|t| *t <= MAX_DURATION)
                .ok_or_else(bad)?;
        }
        Ok(HumanDuration(total))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            f.write_str("0s")
        } else if ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl TryFrom<String> for HumanDuration {
    type Error = BadDuration;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<HumanDuration> for String {
    fn from(d: HumanDuration) -> String {
        d.to_string()
    }
}

impl HumanDuration {
    pub const fn secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }
    pub const fn mins(m: u64) -> Self {
        HumanDuration(Duration::from_secs(m * 60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let p = |s: &str| s.parse::<HumanDuration>().map(|d| d.0);
        assert_eq!(p("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(p("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(p("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(p("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(p("0"), Ok(Duration::ZERO));
        assert!(p("").is_err());
        assert!(p("5").is_err());
        assert!(p("m5").is_err());
        assert!(p("5 parsecs").is_err());
        assert_eq!(HumanDuration::mins(5).to_string(), "5m");
    }
}
