//! What both stores encode and decode the same way, whatever their SQL:
//! an event's kind and an outbox message are JSON text, an event's time is
//! RFC 3339 text, a token's role is its name. A value this build cannot read
//! back is [`StoreError::Corrupt`], named by the row it came from.
//!
//! The SQL itself stays in each backend (placeholders, locking, `RETURNING`
//! and upserts differ), as do the migrations (column types differ).

use std::sync::{Mutex, MutexGuard};

use hotfix_core::event::{Event, EventKind, NewEvent};
use hotfix_core::id::IncidentId;
use hotfix_core::notify::Message;
use hotfix_core::provider::{OutboxItem, StoreError};
use hotfix_core::team::{ApiRole, TokenRecord};

/// The connection, or an error if a thread panicked while holding it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, StoreError> {
    m.lock()
        .map_err(|_| StoreError::Backend("store lock poisoned".into()))
}

/// The migrations still to run on a schema at `version`, numbered from 1;
/// an error if a newer build wrote it (`what`: how the backend names that).
pub(crate) fn pending_migrations<'a>(
    migrations: &'a [&'a str],
    version: i64,
    what: &str,
) -> Result<impl Iterator<Item = (i64, &'a str)>, StoreError> {
    let known = migrations.len() as i64;
    if version > known {
        return Err(StoreError::Backend(format!(
            "{what} by a newer hotfix (schema {version}, this build knows {known}); upgrade hotfix"
        )));
    }
    Ok((1..)
        .zip(migrations.iter().copied())
        .skip(usize::try_from(version).unwrap_or(0)))
}

/// The compare-and-set of an append: the incident must be at `expected`.
pub(crate) fn check_version(
    incident: IncidentId,
    expected: u64,
    actual: i64,
) -> Result<(), StoreError> {
    if actual as u64 != expected {
        return Err(StoreError::Conflict {
            incident,
            expected,
            actual: actual as u64,
        });
    }
    Ok(())
}

/// What a write does to the hotfix name its incident holds. At most one
/// open incident holds a name: its `declared` name, then the name of its
/// latest `attempt_started`, until it is `closed`. Both backends keep this
/// in an `open_names` table written in the transaction of every declare
/// and append ([`NameBook`]); its primary key is what makes two holders of
/// one name impossible, whoever races.
///
/// The migration that adds the table backfills it with each open
/// incident's latest `declared` or `attempt_started` name from the log. A
/// database written before the rule may have several open incidents with
/// one name: the oldest (the smallest id) becomes the holder and the others
/// hold no name, so the migration never fails on them. They stay open and
/// usable; only a new `attempt_started` of such an incident has to take a
/// free name, and once the holder closes, the name is free for anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Naming<'a> {
    /// Nothing about names: the incident keeps what it holds.
    Unchanged,
    /// The incident holds this name from now on (and gives up any other).
    Take(&'a str),
    /// The incident is closed: its name is free for another.
    Release,
}

/// The name a declaration takes (an event that is not `declared` takes none).
pub(crate) fn declared_name(event: &NewEvent) -> Naming<'_> {
    match &event.kind {
        EventKind::Declared { name, .. } => Naming::Take(name),
        _ => Naming::Unchanged,
    }
}

/// What appending `events` (one transaction) does to the incident's name:
/// only the end state counts, and `closed` is final (an `attempt_started`
/// after it in the same batch takes nothing).
pub(crate) fn appended_naming(events: &[NewEvent]) -> Naming<'_> {
    let mut out = Naming::Unchanged;
    for e in events {
        match &e.kind {
            EventKind::Closed => return Naming::Release,
            EventKind::AttemptStarted { name, .. } => out = Naming::Take(name),
            _ => {}
        }
    }
    out
}

/// The refusal of a name that `holder` holds (as the `open_names` row says).
fn name_in_use(name: &str, holder: i64) -> StoreError {
    StoreError::NameInUse {
        name: name.to_string(),
        incident: IncidentId(holder as u64),
    }
}

/// The `open_names` statements of one backend, run in the transaction of
/// a write. Which ones a write runs, and what it concludes, is the same
/// for both backends: [`free_declared_name`] and [`apply_appended_naming`].
pub(crate) trait NameBook {
    /// Queues this transaction behind any other that is giving out `name`,
    /// until it ends; nothing where the transaction's write lock already
    /// serialises all writers.
    fn lock_name(&mut self, _name: &str) -> Result<(), StoreError> {
        Ok(())
    }
    /// The open incident that holds `name`, if any.
    fn name_holder(&mut self, name: &str) -> Result<Option<i64>, StoreError>;
    /// Records that `incident`, which holds no name, holds the free `name`.
    fn insert_name(&mut self, name: &str, incident: i64) -> Result<(), StoreError>;
    /// Frees the name `incident` holds, if any.
    fn release_name(&mut self, incident: i64) -> Result<(), StoreError>;
    /// Whether `incident` has a `closed` event.
    fn is_closed(&mut self, incident: i64) -> Result<bool, StoreError>;
}

/// The name a declaration takes, once its incident has an id
/// ([`NameBook::insert_name`]); refused if an open incident holds it.
/// Called before the id is allocated, so a refusal uses up no number.
pub(crate) fn free_declared_name<'e>(
    book: &mut impl NameBook,
    event: &'e NewEvent,
) -> Result<Option<&'e str>, StoreError> {
    let Naming::Take(name) = declared_name(event) else {
        return Ok(None);
    };
    book.lock_name(name)?;
    match book.name_holder(name)? {
        Some(h) => Err(name_in_use(name, h)),
        None => Ok(Some(name)),
    }
}

/// Applies what appending `events` does to the name `incident` holds. The
/// caller holds the incident's write lock (no other append to it runs
/// meanwhile). Only a batch with `attempt_started` or `closed` runs any
/// statement.
pub(crate) fn apply_appended_naming(
    book: &mut impl NameBook,
    incident: IncidentId,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    let id = incident.0 as i64;
    match appended_naming(events) {
        Naming::Unchanged => Ok(()),
        Naming::Release => book.release_name(id),
        Naming::Take(name) => {
            // A closed incident holds no name, and a new attempt does not
            // reopen it.
            if book.is_closed(id)? {
                return Ok(());
            }
            book.lock_name(name)?;
            match book.name_holder(name)? {
                Some(h) if h == id => Ok(()),
                Some(h) => Err(name_in_use(name, h)),
                None => {
                    book.release_name(id)?;
                    book.insert_name(name, id)
                }
            }
        }
    }
}

/// Both SQL dialects take `LIMIT` as a signed integer; a `usize` beyond it means "all".
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The `body` column of `events`.
pub(crate) fn event_body(kind: &EventKind) -> Result<String, StoreError> {
    serde_json::to_string(kind).map_err(|e| StoreError::Backend(e.to_string()))
}

/// The `message` column of `outbox`.
pub(crate) fn message_body(m: &Message) -> Result<String, StoreError> {
    serde_json::to_string(m).map_err(|e| StoreError::Backend(e.to_string()))
}

/// One row of `events` (`seq, at, actor, body`).
pub(crate) fn event(
    incident: IncidentId,
    seq: i64,
    at: &str,
    actor: String,
    body: &str,
) -> Result<Event, StoreError> {
    Ok(Event {
        incident,
        seq: seq as u64,
        at: at
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("{incident} event {seq}: bad time: {e}")))?,
        actor,
        kind: serde_json::from_str(body)
            .map_err(|e| StoreError::Corrupt(format!("{incident} event {seq}: {e}")))?,
    })
}

/// One row of `outbox` (`id, notifier, message, attempts, last_error`).
pub(crate) fn outbox_item(
    id: i64,
    notifier: String,
    message: &str,
    attempts: i64,
    last_error: Option<String>,
) -> Result<OutboxItem, StoreError> {
    Ok(OutboxItem {
        id,
        notifier,
        message: serde_json::from_str(message)
            .map_err(|e| StoreError::Corrupt(format!("outbox {id}: {e}")))?,
        attempts: attempts as u32,
        last_error,
    })
}

/// One row of `api_tokens` (`id, user_name, role, created_at, revoked`).
///
/// A stored role that this build cannot read is corruption, not "no role":
/// guessing one would grant or deny rights nobody chose.
pub(crate) fn token_record(
    id: i64,
    user: String,
    role: &str,
    created_at: i64,
    revoked: bool,
) -> Result<TokenRecord, StoreError> {
    let role = ApiRole::parse(role)
        .ok_or_else(|| StoreError::Corrupt(format!("API token {id}: unknown role `{role}`")))?;
    Ok(TokenRecord {
        id,
        user,
        role,
        created_at,
        revoked,
    })
}

/// Test support: every file of `dir` (`NNNN_name.sql`) is the migration
/// of the same index, in order: a step written but not listed would
/// never run, one listed twice would run twice.
#[cfg(test)]
pub(crate) fn assert_migration_files(dir: &std::path::Path, migrations: &[&str]) {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("the migrations directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), migrations.len(), "{files:?}");
    for (i, f) in files.iter().enumerate() {
        assert!(
            f.starts_with(&format!("{:04}_", i + 1)) && f.ends_with(".sql"),
            "{f}"
        );
        let text = std::fs::read_to_string(dir.join(f)).expect("a migration");
        assert_eq!(text, migrations[i], "{f} is not migration {i}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_this_build_cannot_read_are_corrupt_and_named() {
        let id = IncidentId(3);
        let note = event_body(&EventKind::Note { text: "n".into() }).expect("encodes");
        let e = event(id, 2, "2024-01-01T00:00:00Z", "dev".into(), &note).expect("decodes");
        assert_eq!(e.kind, EventKind::Note { text: "n".into() });
        assert_eq!((e.incident, e.seq, e.actor.as_str()), (id, 2, "dev"));
        match event(id, 2, "yesterday", "dev".into(), &note) {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("event 2: bad time"), "{m}"),
            other => panic!("{other:?}"),
        }
        match event(
            id,
            4,
            "2024-01-01T00:00:00Z",
            "dev".into(),
            "{\"type\":\"nope\"}",
        ) {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("event 4"), "{m}"),
            other => panic!("{other:?}"),
        }
        match outbox_item(7, "file".into(), "not json", 0, None) {
            Err(StoreError::Corrupt(m)) => assert!(m.starts_with("outbox 7:"), "{m}"),
            other => panic!("{other:?}"),
        }
        match token_record(5, "a@example.com".into(), "superuser", 0, false) {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("unknown role `superuser`"), "{m}"),
            other => panic!("{other:?}"),
        }
        let t = token_record(5, "a@example.com".into(), "tech_lead", 9, true).expect("decodes");
        assert_eq!(
            (t.role, t.created_at, t.revoked),
            (ApiRole::TechLead, 9, true)
        );
    }

    #[test]
    fn a_batch_takes_its_last_attempt_name_and_closing_frees_it_for_good() {
        let ev = |kind: EventKind| NewEvent {
            at: jiff::Timestamp::UNIX_EPOCH,
            actor: "dev".into(),
            kind,
        };
        let attempt = |name: &str| {
            ev(EventKind::AttemptStarted {
                attempt: 2,
                name: name.into(),
                branch: format!("hotfix/{name}"),
                base_sha: "abc".into(),
                severity: hotfix_core::severity::Severity::Critical,
            })
        };
        let note = ev(EventKind::Note { text: "n".into() });
        assert_eq!(appended_naming(&[]), Naming::Unchanged);
        assert_eq!(
            appended_naming(std::slice::from_ref(&note)),
            Naming::Unchanged
        );
        assert_eq!(
            appended_naming(&[attempt("a"), note.clone(), attempt("b")]),
            Naming::Take("b")
        );
        assert_eq!(
            appended_naming(&[attempt("a"), ev(EventKind::Closed)]),
            Naming::Release
        );
        assert_eq!(
            appended_naming(&[ev(EventKind::Closed), attempt("a")]),
            Naming::Release,
            "closed is final"
        );
        assert_eq!(declared_name(&note), Naming::Unchanged);
        assert_eq!(declared_name(&attempt("a")), Naming::Unchanged);
        match name_in_use("pdf-crash", 3) {
            e @ StoreError::NameInUse { .. } => assert_eq!(
                e.to_string(),
                "an open incident already uses the name `pdf-crash`: HF-3"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn migrations_run_from_the_stored_version_and_refuse_a_newer_schema() {
        let m = ["a", "b", "c"];
        let all: Vec<_> = pending_migrations(&m, 0, "x").expect("fresh").collect();
        assert_eq!(all, vec![(1, "a"), (2, "b"), (3, "c")]);
        let rest: Vec<_> = pending_migrations(&m, 2, "x").expect("older").collect();
        assert_eq!(rest, vec![(3, "c")]);
        assert_eq!(pending_migrations(&m, 3, "x").expect("current").count(), 0);
        match pending_migrations(&m, 4, "the database was migrated") {
            Err(StoreError::Backend(msg)) => assert_eq!(
                msg,
                "the database was migrated by a newer hotfix (schema 4, this build knows 3); upgrade hotfix"
            ),
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("a newer schema was accepted"),
        }
        assert_eq!(sql_limit(usize::MAX), i64::MAX);
        assert_eq!(sql_limit(3), 3);
    }
}
