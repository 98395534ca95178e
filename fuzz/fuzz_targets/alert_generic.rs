//! The generic alert body: `hotfix_server::alerts::parse(Source::Generic, ..)`,
//! the parser the door (`POST /api/v1/alerts/generic`) and the inbox worker
//! both run, and the rules' functions the worker runs on it.
//! Checks: no panic; the door and the worker agree; the key, summary and
//! URL are within their limits; the hotfix name the worker would declare
//! under is valid for every rule. (The whole door and worker, on a real
//! store: `alert_intake`.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hotfix_fuzz::alert(hotfix_server::alerts::Source::Generic, data);
});
