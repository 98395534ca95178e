//! `[deploy] canary` and `canary_pause`: known keys, steps checked at load.

use hotfix_core::config::Config;

#[test]
fn canary_steps_are_percentages_that_grow() {
    let cfg = Config::parse(
        "[deploy]\nprovider = \"local\"\nrun = \"app\"\ncanary = [\"10%\", \"50%\"]\ncanary_pause = \"30s\"\n",
    )
    .expect("valid");
    assert_eq!(cfg.deploy.canary_steps(), Ok(vec![10.0, 50.0]));
    assert!(cfg.deploy.canary_pause.is_some());
    assert_eq!(
        Config::parse("").expect("empty").deploy.canary_steps(),
        Ok(vec![])
    );
    for bad in ["[\"10\"]", "[\"50%\", \"10%\"]", "[\"100%\"]", "[\"0%\"]"] {
        let e = Config::parse(&format!("[deploy]\ncanary = {bad}\n")).expect_err(bad);
        assert!(e.to_string().contains("[deploy] canary"), "{bad}: {e}");
    }
}
