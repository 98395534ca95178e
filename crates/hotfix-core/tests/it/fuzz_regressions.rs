//! `hotfix.toml` inputs that panicked the duration parser the `config_toml`
//! fuzz target exercises (`fuzz/`, run with `fuzz/run.sh`; found while
//! writing it and replayed through it), and what they must do instead: be a
//! configuration error that names the key, like any other bad value.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use hotfix_core::config::Config;
use hotfix_core::duration::HumanDuration;

/// `n * 3600` overflowed (a panic with overflow checks, a wrapped, wrong
/// duration without), and adding the parts overflowed `Duration`.
#[test]
fn durations_too_long_for_a_duration_are_refused_not_a_panic() {
    for d in [
        "18446744073709551615h",
        "5124095576030432h",
        "307445734561825861m",
        "18446744073709551615s18446744073709551615s",
        "18446744073709551615s1ms",
    ] {
        assert!(d.parse::<HumanDuration>().is_err(), "{d}");
        let e = Config::parse(&format!("[deploy]\ntimeout = \"{d}\"\n")).unwrap_err();
        assert!(e.to_string().contains(d), "{e}");
    }
}

/// A duration that parsed could still not be added to "now", which every
/// deadline in hotfix does (`Instant::now() + timeout` panics past the
/// clock's range): durations are at most 100 years.
#[test]
fn every_accepted_duration_can_be_added_to_now() {
    for d in ["18446744073709551615s", "18446744073709551615ms", "876001h"] {
        assert!(d.parse::<HumanDuration>().is_err(), "{d}");
    }
    let max = "876000h".parse::<HumanDuration>().unwrap();
    assert_eq!(max.0, Duration::from_secs(100 * 365 * 24 * 3600));
    assert!(Instant::now().checked_add(max.0).is_some());
    assert!(Config::parse("[deploy]\nready_timeout = \"876000h\"\n").is_ok());
}

/// A number of hours too large for a `Duration` in `[deploy] watch` (the
/// issue's example) is a configuration error that names the key and the
/// value, at the one duration parser every entry point uses.
#[test]
fn a_huge_watch_window_is_a_clear_error() {
    let d = "99999999999999999h";
    assert!(d.parse::<HumanDuration>().is_err());
    let e = Config::parse(&format!("[deploy]\nwatch = \"{d}\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("watch") && e.contains(d), "{e}");
    assert!(e.contains("at most 876000h"), "{e}");
    // The same value of the local platform's own keys (read by hotfix.toml
    // first, then again by the platform: see hotfix-platform's tests).
    let e = Config::parse(&format!(
        "[deploy]\nprovider = \"local\"\nrun = \"true\"\nwarm = \"{d}\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("warm") && e.contains(d), "{e}");
}
