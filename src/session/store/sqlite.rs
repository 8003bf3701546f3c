//! The embedded session store: conversation histories in a local SQLite file, so a client that
//! reconnects with its session id within the TTL continues where it left off.
//!
//! Beyond what every [`Store`] promises: a delete removes every row for real (`secure_delete`
//! overwrites the freed pages, and the write-ahead log is checkpointed and truncated so no old
//! copy lingers there) and the file is readable by its owner only.
//!
//! Calls block (callers use `spawn_blocking`) and hold one connection behind a mutex.

use std::fs::{DirBuilder, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{expired, now_ms, Store, StoreError, StoredSession};
use crate::conversation::Exchange;
use crate::text::codeswitch::mixed_with_english;
use crate::text::redact::redact;

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

const SCHEMA_V1: &str = "
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    tenant TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_expiry ON sessions (expires_ms);
CREATE TABLE exchanges (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    user_text TEXT NOT NULL,
    assistant_text TEXT NOT NULL,
    language TEXT NOT NULL,
    interrupted INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
) STRICT, WITHOUT ROWID;
";

/// Where the in-memory store says it lives in errors.
const IN_MEMORY: &str = ":memory:";

pub struct SqliteStore {
    conn: Mutex<Connection>,
    ttl: Duration,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating the parent directory, the file with mode 0600, and the schema) a store at
    /// `path`. An existing file is narrowed to mode 0600 too. Expired sessions are purged.
    pub fn open(path: &Path, ttl: Duration) -> Result<Self, StoreError> {
        let io = |action: &'static str| {
            move |source: std::io::Error| StoreError::Io {
                path: path.to_path_buf(),
                action,
                source,
            }
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let mut dir = DirBuilder::new();
            dir.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
            dir.create(parent)
                .map_err(io("create its parent directory"))?;
        }
        // Create the file ourselves so it never exists with wider permissions; SQLite gives its
        // -wal and -shm files the database file's mode.
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(io("create or open the file"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io("restrict the file to mode 0600"))?;
        }
        drop(file);
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::init(conn, path.to_path_buf(), ttl)
    }

    /// A store that lives in memory only (nothing on disk).
    pub fn in_memory(ttl: Duration) -> Result<Self, StoreError> {
        let path = PathBuf::from(IN_MEMORY);
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        Self::init(conn, path, ttl)
    }

    fn init(mut conn: Connection, path: PathBuf, ttl: Duration) -> Result<Self, StoreError> {
        // The first statement is where SQLite reads the header, so a corrupt file fails here.
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        conn.pragma_update(None, "foreign_keys", "ON")
            .and_then(|()| conn.pragma_update(None, "secure_delete", "ON"))
            // An in-memory database answers "memory"; either is fine.
            .and_then(|()| conn.pragma_update(None, "journal_mode", "WAL"))
            .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
            .map_err(open_err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(open_err)?;
        match version {
            0 => {
                let tx = conn.transaction().map_err(open_err)?;
                tx.execute_batch(SCHEMA_V1)
                    .and_then(|()| tx.pragma_update(None, "user_version", SCHEMA_VERSION))
                    .and_then(|()| tx.commit())
                    .map_err(open_err)?;
            }
            SCHEMA_VERSION => {}
            found => {
                return Err(StoreError::NewerSchema {
                    at: path.display().to_string(),
                    found,
                })
            }
        }
        let store = Self {
            conn: Mutex::new(conn),
            ttl,
            path,
        };
        store.purge_expired()?;
        Ok(store)
    }

    /// (owner tenant, updated ms, expires ms) of session `id`, if there is one.
    fn session_row(
        &self,
        tx: &rusqlite::Transaction<'_>,
        id: &str,
    ) -> Result<Option<(String, i64, i64)>, StoreError> {
        tx.query_row(
            "SELECT tenant, updated_ms, expires_ms FROM sessions WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(self.sql("read a session"))
    }

    /// Makes session `id` `tenant`'s (or refreshes its expiry): an expired session under the id
    /// is deleted first; an unexpired one of another tenant is [`StoreError::IdTaken`].
    fn claim(
        &self,
        tx: &rusqlite::Transaction<'_>,
        tenant: &str,
        id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        match self.session_row(tx, id)? {
            Some((_, updated_ms, expires_ms)) if self.expired(updated_ms, expires_ms, now) => {
                tx.execute("DELETE FROM sessions WHERE id = ?1", [id])
                    .map_err(self.sql("delete an expired session"))?;
            }
            Some((owner, _, _)) if owner != tenant => {
                return Err(StoreError::IdTaken {
                    at: self.path.display().to_string(),
                });
            }
            _ => {}
        }
        tx.execute(
            "INSERT INTO sessions (id, tenant, updated_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET updated_ms = excluded.updated_ms,
                                            expires_ms = excluded.expires_ms",
            params![id, tenant, now, now.saturating_add(self.ttl_ms())],
        )
        .map_err(self.sql("write a session"))?;
        Ok(())
    }

    fn expired(&self, updated_ms: i64, expires_ms: i64, now: i64) -> bool {
        expired(self.ttl, updated_ms, expires_ms, now)
    }

    fn ttl_ms(&self) -> i64 {
        super::ttl_ms(self.ttl)
    }

    /// Copies the write-ahead log into the database and truncates it, so deleted text does not
    /// survive in old log frames. Best effort: the delete itself has committed, and the next
    /// scrub or automatic checkpoint catches up.
    fn scrub_wal(&self, conn: &Connection) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot checkpoint the session store's log");
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves at worst an open transaction, which rusqlite
        // rolls back when it is dropped, so the connection is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sql(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql {
            path: self.path.clone(),
            action,
            source,
        }
    }
}

impl Store for SqliteStore {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn load(&self, tenant: &str, id: &str) -> Result<Option<StoredSession>, StoreError> {
        let now = now_ms();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.sql("begin a load"))?;
        let row = self.session_row(&tx, id)?;
        let Some((owner, updated_ms, expires_ms)) = row else {
            return Ok(None);
        };
        if self.expired(updated_ms, expires_ms, now) {
            tx.execute("DELETE FROM sessions WHERE id = ?1", [id])
                .and_then(|_| tx.commit())
                .map_err(self.sql("delete an expired session"))?;
            self.scrub_wal(&conn);
            return Ok(None);
        }
        if owner != tenant {
            return Ok(None);
        }
        let exchanges = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT user_text, assistant_text, language, interrupted FROM exchanges
                     WHERE session_id = ?1 ORDER BY seq",
                )
                .map_err(self.sql("read the exchanges of a session"))?;
            let rows = stmt
                .query_map([id], |r| {
                    let (user, language): (String, String) = (r.get(0)?, r.get(2)?);
                    // Not stored: a resumed session's first prompt is read whole anyway, so
                    // the words alone decide it (without the recogniser's candidates).
                    let mixed = mixed_with_english(&user, &language, &[]);
                    Ok(Exchange {
                        user,
                        assistant: r.get(1)?,
                        language,
                        interrupted: r.get(3)?,
                        mixed,
                    })
                })
                .map_err(self.sql("read the exchanges of a session"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(self.sql("read the exchanges of a session"))?
        };
        tx.commit().map_err(self.sql("finish a load"))?;
        Ok(Some(StoredSession {
            tenant: owner,
            exchanges,
            updated_unix_ms: updated_ms,
        }))
    }

    fn append(
        &self,
        tenant: &str,
        id: &str,
        exchange: &Exchange,
        keep: usize,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.sql("begin a save"))?;
        self.claim(&tx, tenant, id, now)?;
        let seq: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM exchanges WHERE session_id = ?1",
                [id],
                |r| r.get(0),
            )
            .map_err(self.sql("number an exchange"))?;
        tx.execute(
            "INSERT INTO exchanges
             (session_id, seq, user_text, assistant_text, language, interrupted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                seq,
                redact(&exchange.user),
                redact(&exchange.assistant),
                exchange.language,
                exchange.interrupted
            ],
        )
        .map_err(self.sql("write an exchange"))?;
        let keep = i64::try_from(keep.max(1)).unwrap_or(i64::MAX);
        tx.execute(
            "DELETE FROM exchanges WHERE session_id = ?1 AND seq <= ?2",
            params![id, seq.saturating_sub(keep)],
        )
        .map_err(self.sql("forget the oldest exchanges"))?;
        tx.commit().map_err(self.sql("commit a save"))?;
        Ok(seq)
    }

    fn amend(&self, tenant: &str, id: &str, seq: i64, heard: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.sql("begin a save"))?;
        let owned = matches!(
            self.session_row(&tx, id)?,
            Some((owner, updated, expires)) if owner == tenant && !self.expired(updated, expires, now)
        );
        if !owned {
            return Ok(false);
        }
        let changed = tx
            .execute(
                "UPDATE exchanges SET assistant_text = ?3, interrupted = 1
                 WHERE session_id = ?1 AND seq = ?2",
                params![id, seq, redact(heard)],
            )
            .map_err(self.sql("amend an exchange"))?;
        tx.execute(
            "UPDATE sessions SET updated_ms = ?2, expires_ms = ?3 WHERE id = ?1",
            params![id, now, now.saturating_add(self.ttl_ms())],
        )
        .map_err(self.sql("write a session"))?;
        tx.commit().map_err(self.sql("commit a save"))?;
        Ok(changed > 0)
    }

    fn delete(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let conn = self.lock();
        let deleted = conn
            .execute(
                "DELETE FROM sessions WHERE id = ?1 AND tenant = ?2",
                [id, tenant],
            )
            .map_err(self.sql("delete a session"))?;
        if deleted > 0 {
            self.scrub_wal(&conn);
        }
        Ok(deleted > 0)
    }

    fn purge_expired(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let conn = self.lock();
        let purged = conn
            .execute(
                "DELETE FROM sessions WHERE expires_ms <= ?1 OR updated_ms <= ?2",
                [now, now.saturating_sub(self.ttl_ms())],
            )
            .map_err(self.sql("purge expired sessions"))?;
        if purged > 0 {
            self.scrub_wal(&conn);
        }
        Ok(purged)
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
