//! Human durations: in config (`"30s"`, `"5m"`, `"1h30m"`, `"250ms"`), and
//! the one way every message says how long something took ([`span`]).

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

/// How long, for people: `0s`, `59s`, `1m`, `1m05s`, `20m`, `1h`,
/// `1h05m`, `1d`, `2d3h`. The one formatter behind every elapsed time,
/// target, age and time to restore that hotfix prints (CLI, dashboard,
/// Slack, post-mortem), so that `20s` and `20m` can never be mistaken for
/// each other the way `00:20` and `20:00` were.
///
/// Rules: under a minute, seconds; under an hour, minutes and seconds
/// (seconds as two digits, left out when zero); under a day, hours and
/// minutes (seconds dropped); from a day on, days and hours (minutes
/// dropped). Parts are truncated, never rounded up, so a step shown at
/// its target's value has not passed it by a whole unit. Negative values
/// (a clock that went backwards) read `0s`. Every form but days parses
/// back as a [`HumanDuration`].
pub fn span(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m, sec) {
        (0, 0, 0, sec) => format!("{sec}s"),
        (0, 0, m, 0) => format!("{m}m"),
        (0, 0, m, sec) => format!("{m}m{sec:02}s"),
        (0, h, 0, _) => format!("{h}h"),
        (0, h, m, _) => format!("{h}h{m:02}m"),
        (d, 0, _, _) => format!("{d}d"),
        (d, h, _, _) => format!("{d}d{h}h"),
    }
}

/// [`span`] of a [`Duration`] (whole seconds).
pub fn span_of(d: Duration) -> String {
    span(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_unambiguously() {
        let cases = [
            (0, "0s"),
            (-5, "0s"),
            (4, "4s"),
            (20, "20s"),
            (59, "59s"),
            (60, "1m"),
            (65, "1m05s"),
            (20 * 60, "20m"),
            (59 * 60 + 59, "59m59s"),
            (3600, "1h"),
            (3600 + 5 * 60, "1h05m"),
            (3600 + 5 * 60 + 59, "1h05m"),
            (23 * 3600 + 59 * 60 + 59, "23h59m"),
            (86_400, "1d"),
            (86_400 + 59 * 60, "1d"),
            (2 * 86_400 + 3 * 3600 + 7, "2d3h"),
            (i64::MAX, "106751991167300d15h"),
        ];
        for (secs, want) in cases {
            assert_eq!(span(secs), want, "{secs}s");
        }
        assert_eq!(span_of(Duration::from_millis(1999)), "1s");
    }

    #[test]
    fn spans_under_a_day_parse_back() {
        for secs in [0, 4, 59, 60, 65, 1200, 3599, 3600, 3900, 86_399 - 59] {
            let shown = span(secs);
            let back: HumanDuration = shown.parse().unwrap_or_else(|e| panic!("{e}"));
            // Seconds are dropped from an hour on.
            let want = if secs >= 3600 { secs / 60 * 60 } else { secs };
            assert_eq!(back.0.as_secs() as i64, want, "{shown}");
        }
    }

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
