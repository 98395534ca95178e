//! `[deploy]` tables that panicked the platform's own duration parser,
//! which the `config_toml` fuzz target exercises (`fuzz/`, run with
//! `fuzz/run.sh`; found while writing it and replayed through it), and
//! what they must do instead: be a configuration error naming the key.

use std::path::Path;
use std::time::{Duration, Instant};

use hotfix_platform::{PlatformConfig, parse_duration};

/// Adding the parts overflowed `Duration` (a panic in any build).
#[test]
fn durations_too_long_for_a_duration_are_refused_not_a_panic() {
    for d in [
        "18446744073709551615s18446744073709551615s",
        "18446744073709551615s1ms",
        "18446744073709551615h",
    ] {
        assert_eq!(parse_duration(d), None, "{d}");
        let t: toml::Table = format!("run = \"x\"\nwarm = \"{d}\"")
            .parse()
            .expect("toml");
        let e = PlatformConfig::from_deploy_table(Path::new("/r"), Some("/s".into()), &t);
        assert!(e.is_err_and(|e| e.to_string().contains("warm")), "{d}");
    }
}

/// A duration that parsed must be addable to "now": the platform's
/// deadlines are `Instant::now() + ready_timeout` and the like. At most
/// 100 years, as in `hotfix.toml`'s own parser.
#[test]
fn every_accepted_duration_can_be_added_to_now() {
    assert_eq!(parse_duration("18446744073709551615s"), None);
    assert_eq!(parse_duration("876001h"), None);
    let max = parse_duration("876000h").expect("100 years");
    assert_eq!(max, Duration::from_secs(100 * 365 * 24 * 3600));
    assert!(Instant::now().checked_add(max).is_some());
}

/// The issue's example, `99999999999999999h` (its hours overflow a
/// `Duration`'s seconds): a configuration error naming the key, with the
/// words and the limit of `hotfix.toml`'s own parser, which is this one.
#[test]
fn a_huge_duration_is_the_same_clear_error_as_in_hotfix_toml() {
    let d = "99999999999999999h";
    assert_eq!(parse_duration(d), None);
    let core = d
        .parse::<hotfix_core::duration::HumanDuration>()
        .expect_err("too long")
        .to_string();
    for key in [
        "warm",
        "ready_timeout",
        "drain",
        "build_timeout",
        "stop_timeout",
        "canary_pause",
    ] {
        let t: toml::Table = format!("run = \"x\"\n{key} = \"{d}\"")
            .parse()
            .expect("toml");
        let e = PlatformConfig::from_deploy_table(Path::new("/r"), Some("/s".into()), &t)
            .expect_err(key)
            .to_string();
        assert!(
            e.contains(&format!("[deploy] {key}")) && e.ends_with(&core),
            "{e}"
        );
    }
    // Both accept the same syntax: every form of the README's table.
    for ok in [
        "0",
        "250ms",
        "30s",
        "5m",
        "1h30m",
        "2 h 5 min",
        "10secs",
        "876000h",
    ] {
        assert_eq!(
            parse_duration(ok),
            ok.parse::<hotfix_core::duration::HumanDuration>()
                .ok()
                .map(|d| d.0),
            "{ok}"
        );
    }
}
