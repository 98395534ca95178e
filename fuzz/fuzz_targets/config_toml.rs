//! `hotfix.toml`: `hotfix_core::config::Config::parse` (TOML, then the
//! checks of every section), then what the CLI and the server build from a
//! config that passed: the GitHub forge's `[forge]` table, the local
//! deployer's `[deploy]` (the embedded platform's `from_deploy_table`, which
//! re-reads the durations), Railway's `[deploy.railway]` and the notifiers'
//! `[notify.*]` tables. Checks: no panic; every string of the file that
//! either duration parser (`HumanDuration`, the platform's
//! `parse_duration`) accepts can be added to "now", as every deadline made
//! from a configured timeout is.
#![no_main]

use std::path::Path;

use hotfix_core::config::Config;
use hotfix_core::duration::HumanDuration;
use hotfix_providers::deploy::local::LocalDeployer;
use hotfix_providers::deploy::railway::RailwayConfig;
use hotfix_providers::forge::github::GithubConfig;
use libfuzzer_sys::fuzz_target;

/// Every string in `v`, at any depth.
fn strings<'a>(v: &'a toml::Value, out: &mut Vec<&'a str>) {
    match v {
        toml::Value::String(s) => out.push(s),
        toml::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        toml::Value::Table(t) => t.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(doc) = text.parse::<toml::Table>() {
        let mut all = vec![];
        let doc = toml::Value::Table(doc);
        strings(&doc, &mut all);
        let now = std::time::Instant::now();
        for s in all {
            if let Ok(d) = s.parse::<HumanDuration>() {
                assert!(now.checked_add(d.0).is_some(), "{s:?} cannot be a deadline");
            }
            if let Some(d) = hotfix_platform::parse_duration(s) {
                assert!(now.checked_add(d).is_some(), "{s:?} cannot be a deadline");
            }
        }
    }
    let Ok(cfg) = Config::parse(text) else {
        return;
    };
    if cfg.forge.provider == "github" {
        let _ = GithubConfig::from_table(&cfg.forge.settings);
    }
    match cfg.deploy.provider.as_str() {
        "local" => {
            let _ = LocalDeployer::from_config(Path::new("/repo"), "/state".into(), &cfg.deploy);
        }
        "railway" => {
            if let Some(t) = &cfg.deploy.railway {
                let _ = RailwayConfig::from_table(t);
            }
        }
        _ => {}
    }
    // No secrets: each notifier's table is read and checked, none is built.
    let _ = hotfix_providers::notify::each_from_config(&cfg, &|_| None);
});
