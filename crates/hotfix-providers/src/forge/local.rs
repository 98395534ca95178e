//! The local forge: pull requests are records in `.git/hotfix/forge.db`,
//! merges are real `--no-ff` merge commits pushed atomically to the remote.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use hotfix_core::provider::{Forge, ForgeError, NewPr, PrState, PullRequest};
use hotfix_git::Git;
use rusqlite::{Connection, OptionalExtension, params};

use super::merge::{merge_into, revert_on};

pub struct LocalForge {
    git: Git,
    remote: String,
    db: Mutex<Connection>,
}

fn db_err(e: rusqlite::Error) -> ForgeError {
    ForgeError::Other(format!("local forge database: {e}"))
}

impl LocalForge {
    pub fn open(git: Git, remote: &str, db_path: &Path) -> Result<LocalForge, ForgeError> {
        if let Some(d) = db_path.parent() {
            hotfix_fs::create_private_dir(d).map_err(|e| ForgeError::Other(e.to_string()))?;
        }
        // 0600 before SQLite makes it; a failure is SQLite's to report.
        let _ = hotfix_fs::private_sqlite_file(db_path);
        let conn = Connection::open(db_path).map_err(db_err)?;
        conn.busy_timeout(Duration::from_secs(15)).map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS prs (
                number     INTEGER PRIMARY KEY,
                title      TEXT NOT NULL,
                body       TEXT NOT NULL,
                head       TEXT NOT NULL,
                base       TEXT NOT NULL,
                state      TEXT NOT NULL,
                merge_sha  TEXT
            );",
        )
        .map_err(db_err)?;
        Ok(LocalForge {
            git,
            remote: remote.to_string(),
            db: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, ForgeError> {
        self.db
            .lock()
            .map_err(|_| ForgeError::Other("local forge lock poisoned".into()))
    }

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PullRequest> {
        let number: i64 = r.get(0)?;
        let state: String = r.get(5)?;
        Ok(PullRequest {
            number: number as u64,
            url: format!("local://pr/{number}"),
            title: r.get(1)?,
            body: r.get(2)?,
            head: r.get(3)?,
            base: r.get(4)?,
            state: match state.as_str() {
                "merged" => PrState::Merged,
                "closed" => PrState::Closed,
                _ => PrState::Open,
            },
            merge_sha: r.get(6)?,
        })
    }
}

const COLS: &str = "number, title, body, head, base, state, merge_sha";

impl Forge for LocalForge {
    fn find_open_pr(&self, head: &str) -> Result<Option<PullRequest>, ForgeError> {
        let conn = self.conn()?;
        conn.query_row(
            &format!("SELECT {COLS} FROM prs WHERE head = ?1 AND state != 'closed' ORDER BY number DESC LIMIT 1"),
            [head],
            Self::row,
        )
        .optional()
        .map_err(db_err)
    }

    fn open_pr(&self, pr: &NewPr) -> Result<PullRequest, ForgeError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_err)?;
        // Like GitHub: one open PR per head branch.
        let existing = tx
            .query_row(
                &format!("SELECT {COLS} FROM prs WHERE head = ?1 AND state = 'open'"),
                [&pr.head],
                Self::row,
            )
            .optional()
            .map_err(db_err)?;
        if let Some(p) = existing {
            return Ok(p);
        }
        tx.execute(
            "INSERT INTO prs (title, body, head, base, state) VALUES (?1, ?2, ?3, ?4, 'open')",
            params![pr.title, pr.body, pr.head, pr.base],
        )
        .map_err(db_err)?;
        let n = tx.last_insert_rowid();
        let p = tx
            .query_row(
                &format!("SELECT {COLS} FROM prs WHERE number = ?1"),
                [n],
                Self::row,
            )
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(p)
    }

    fn update_pr(&self, number: u64, title: &str, body: &str) -> Result<(), ForgeError> {
        let conn = self.conn()?;
        let n = conn
            .execute(
                "UPDATE prs SET title = ?2, body = ?3 WHERE number = ?1",
                params![number as i64, title, body],
            )
            .map_err(db_err)?;
        if n == 0 {
            return Err(ForgeError::NotFound(number));
        }
        Ok(())
    }

    fn get_pr(&self, number: u64) -> Result<PullRequest, ForgeError> {
        let conn = self.conn()?;
        conn.query_row(
            &format!("SELECT {COLS} FROM prs WHERE number = ?1"),
            [number as i64],
            Self::row,
        )
        .optional()
        .map_err(db_err)?
        .ok_or(ForgeError::NotFound(number))
    }

    fn merge_pr(
        &self,
        number: u64,
        expected_head: &str,
        message: &str,
    ) -> Result<String, ForgeError> {
        let pr = self.get_pr(number)?;
        if let (PrState::Merged, Some(sha)) = (&pr.state, &pr.merge_sha) {
            return Ok(sha.clone());
        }
        if pr.state == PrState::Closed {
            return Err(ForgeError::NotMergeable(format!("PR #{number} is closed")));
        }
        // The sha guard: the remote head must still be what was tested.
        self.git
            .fetch(&self.remote)
            .map_err(|e| ForgeError::Unreachable(crate::redact::redact(&e.to_string())))?;
        let actual = self
            .git
            .rev_parse(&format!("refs/remotes/{}/{}", self.remote, pr.head))
            .map_err(|e| ForgeError::Other(e.to_string()))?;
        match actual {
            Some(a) if a == expected_head => {}
            Some(a) => {
                // Already merged and the branch deleted or moved? Check main first.
                return Err(ForgeError::HeadMoved {
                    branch: pr.head.clone(),
                    expected: expected_head.to_string(),
                    actual: a,
                });
            }
            None => {
                return Err(ForgeError::NotMergeable(format!(
                    "branch {} is not on {}",
                    pr.head, self.remote
                )));
            }
        }
        let merged = merge_into(
            &self.git,
            &self.remote,
            &pr.base,
            expected_head,
            message,
            true,
        )?;
        let sha = merged.sha().to_string();
        let conn = self.conn()?;
        conn.execute(
            "UPDATE prs SET state = 'merged', merge_sha = ?2 WHERE number = ?1",
            params![number as i64, sha],
        )
        .map_err(db_err)?;
        Ok(sha)
    }

    fn revert_merge(
        &self,
        base: &str,
        merge_sha: &str,
        message: &str,
    ) -> Result<String, ForgeError> {
        revert_on(&self.git, &self.remote, base, merge_sha, message)
    }

    fn record_merge(&self, number: u64, merge_sha: &str) -> Result<(), ForgeError> {
        let conn = self.conn()?;
        conn.execute(
            "UPDATE prs SET state = 'merged', merge_sha = ?2 WHERE number = ?1",
            params![number as i64, merge_sha],
        )
        .map_err(db_err)?;
        Ok(())
    }

    fn close_pr(&self, number: u64) -> Result<(), ForgeError> {
        let conn = self.conn()?;
        conn.execute(
            "UPDATE prs SET state = 'closed' WHERE number = ?1 AND state = 'open'",
            [number as i64],
        )
        .map_err(db_err)?;
        Ok(())
    }
}
