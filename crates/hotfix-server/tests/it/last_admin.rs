//! `DELETE /api/v1/tokens/{id}` never revokes the last live admin token:
//! nobody could manage tokens over the API afterwards. The 409 says how to
//! do it properly (another admin token first, from the API or from
//! `hotfix serve token create` on the server's machine).

#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use hotfix_core::team::ApiRole;
use serde_json::json;

fn admin_token(t: &TestServer, user: &str) -> (String, i64) {
    hotfix_server::auth::create_token(t.st.store.as_ref(), user, ApiRole::Admin, 0).unwrap()
}

fn revoke(t: &TestServer, token: &str, id: i64) -> Resp {
    delete(&t.url(&format!("/api/v1/tokens/{id}")), Some(token))
}

#[test]
fn the_last_admin_cannot_revoke_their_own_token() {
    let t = TestServer::with(Options {
        workers: false,
        ..Options::default()
    });
    let (only, only_id) = admin_token(&t, "ops@example.com");
    let dev = t.token(DEV, ApiRole::Developer);

    let r = revoke(&t, &only, only_id);
    assert_eq!(r.status, 409, "{}", r.text);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "last_admin", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("last live admin token"),
        "{e}"
    );
    let hint = e["hint"].as_str().unwrap();
    assert!(
        hint.contains("hotfix serve token create --user YOU --role admin"),
        "the way back is said: {hint}"
    );
    let me = get(&t.url("/api/v1/me"), Some(&only), &[]);
    assert_eq!(me.status, 200, "still signed in: {}", me.text);

    // Other tokens are revoked as before.
    let list = get(&t.url("/api/v1/tokens"), Some(&only), &[]).json();
    let dev_id = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "developer")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    assert_eq!(revoke(&t, &only, dev_id).status, 200);
    assert_eq!(get(&t.url("/api/v1/me"), Some(&dev), &[]).status, 401);

    // The proper way: another admin first, then the old one goes.
    let r = post_json(
        &t.url("/api/v1/tokens"),
        Some(&only),
        &json!({"user": "ops2@example.com", "role": "admin"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let next = r.json()["token"].as_str().unwrap().to_string();
    let next_id = r.json()["id"].as_i64().unwrap();
    let r = revoke(&t, &next, only_id);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(get(&t.url("/api/v1/me"), Some(&only), &[]).status, 401);
    // And now the new one is the last.
    let r = revoke(&t, &next, next_id);
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "last_admin");
    // An unknown or revoked token is still a 404.
    assert_eq!(revoke(&t, &next, only_id).status, 404);
    assert_eq!(revoke(&t, &next, 9999).status, 404);
}

#[test]
fn two_admins_revoking_each_other_at_once_leave_one() {
    let t = TestServer::with(Options {
        workers: false,
        ..Options::default()
    });
    for round in 0..5 {
        let (a, a_id) = admin_token(&t, &format!("a{round}@example.com"));
        let (b, b_id) = admin_token(&t, &format!("b{round}@example.com"));
        // Only these two are live: revoke the others' leftovers first.
        let live: Vec<i64> =
            t.st.store
                .token_list()
                .unwrap()
                .into_iter()
                .filter(|x| !x.revoked && x.id != a_id && x.id != b_id)
                .map(|x| x.id)
                .collect();
        for id in live {
            assert_eq!(revoke(&t, &a, id).status, 200);
        }
        let barrier = std::sync::Barrier::new(2);
        let (ra, rb) = std::thread::scope(|s| {
            let x = s.spawn(|| {
                barrier.wait();
                revoke(&t, &a, b_id).status
            });
            let y = s.spawn(|| {
                barrier.wait();
                revoke(&t, &b, a_id).status
            });
            (x.join().unwrap(), y.join().unwrap())
        });
        let mut got = [ra, rb];
        got.sort();
        // One wins; the loser is refused as the last admin, or (its own
        // token revoked under it) as unauthorized.
        assert!(
            got == [200, 401] || got == [200, 409],
            "round {round}: {got:?}"
        );
        let admins =
            t.st.store
                .token_list()
                .unwrap()
                .into_iter()
                .filter(|x| x.role == ApiRole::Admin && !x.revoked)
                .count();
        assert_eq!(admins, 1, "round {round}");
    }
}
