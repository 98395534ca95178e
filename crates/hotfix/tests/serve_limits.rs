//! `hotfix serve` and `hotfix serve token` with the real binary: the
//! connection limits of `[server]` are checked when the config is read,
//! and the CLI on the server's machine may revoke the last admin token
//! (it is the way back in: it can always create one) but says so.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::bin;

fn hotfix(args: &[&str], dir: &Path) -> Output {
    let mut c = Command::new(bin());
    c.args(args).current_dir(dir).stdin(Stdio::null());
    for k in [
        "HOTFIX_SERVER",
        "HOTFIX_TOKEN",
        "HOTFIX_CONFIG",
        "HOTFIX_DATABASE_URL",
        "HOTFIX_DATA_DIR",
    ] {
        c.env_remove(k);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn serve_refuses_connection_limits_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    for line in [
        "max_connections = 0",
        "header_read_timeout_s = 0",
        "idle_timeout_s = 100000",
    ] {
        std::fs::write(
            tmp.path().join("hotfix.toml"),
            format!("[server]\n{line}\n"),
        )
        .unwrap();
        let o = hotfix(
            &[
                "serve",
                "--config",
                "hotfix.toml",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                "data",
            ],
            tmp.path(),
        );
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{line}: {err}");
        assert!(
            err.contains(&format!("[server] {line} is out of range")),
            "{line}: {err}"
        );
    }
}

#[test]
fn the_cli_may_revoke_the_last_admin_token_and_says_how_to_get_one_back() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let create = |user: &str| {
        let o = hotfix(
            &[
                "serve",
                "token",
                "create",
                "--user",
                user,
                "--role",
                "admin",
                "--data-dir",
                "data",
            ],
            d,
        );
        assert!(o.status.success(), "{:?}", text(&o));
    };
    create("a@example.com");
    create("b@example.com");
    let revoke = |id: &str| hotfix(&["serve", "token", "revoke", id, "--data-dir", "data"], d);

    let o = revoke("1");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("revoked token 1"), "{out}");
    assert!(!err.contains("no live admin token"), "b is left: {err}");

    let o = revoke("2");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("revoked token 2"), "{out}");
    assert!(
        err.contains("no live admin token is left")
            && err.contains("hotfix serve token create --user YOU --role admin"),
        "{err}"
    );
    let (out, _) = text(&hotfix(
        &["serve", "token", "list", "--json", "--data-dir", "data"],
        d,
    ));
    assert!(out.matches("\"revoked\": true").count() == 2, "{out}");
}
