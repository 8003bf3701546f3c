//! The shared session store: conversation histories in PostgreSQL, so several `vaak serve`
//! replicas behind a load balancer continue each other's sessions. A session started on one
//! replica resumes on another with its history, and a delete on either erases it for all.
//!
//! Concurrency: every write of a session first locks its row (`SELECT … FOR UPDATE`, or the
//! upsert's own lock for a new session), so two replicas appending to one session at once are
//! serialised: both turns are kept, numbered in commit order (the later commit gets the next
//! sequence number; neither overwrites the other). Time is the database's clock, so replicas
//! with skewed clocks agree on expiry.
//!
//! Deletes: rows are deleted and the tables vacuumed (best effort) so the space is reclaimed;
//! PostgreSQL does not overwrite freed bytes, and its write-ahead log keeps old pages until it
//! is recycled, so put the data directory on an encrypted volume (see the README).
//!
//! The password comes from `PGPASSWORD` (the config refuses one in the URL); the connection is
//! plain TCP (`NoTls`): keep the database on a private network or loopback. One connection
//! behind a mutex, reconnected on the next call after it breaks; every statement has a time
//! limit so a stalled database fails calls instead of holding them.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use postgres::{Client, Config, NoTls, Transaction};

use super::{expired, ttl_ms, Store, StoreError, StoredSession};
use crate::conversation::Exchange;
use crate::text::codeswitch::mixed_with_english;
use crate::text::redact::redact;

/// The schema version this code writes (`vaak_schema.version`).
const SCHEMA_VERSION: i32 = 1;
/// Serialises schema creation between replicas starting together.
const SCHEMA_LOCK: i64 = 0x7661_616b; // "vaak"
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS vaak_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS vaak_sessions (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS vaak_sessions_expiry ON vaak_sessions (expires_ms);
CREATE TABLE IF NOT EXISTS vaak_exchanges (
    session_id TEXT NOT NULL REFERENCES vaak_sessions (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    user_text TEXT NOT NULL,
    assistant_text TEXT NOT NULL,
    language TEXT NOT NULL,
    interrupted BOOLEAN NOT NULL,
    PRIMARY KEY (session_id, seq)
);
";
/// The database's clock in Unix milliseconds.
const NOW_MS: &str = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint";
/// A connection attempt and a statement may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const STATEMENT_TIMEOUT_MS: u32 = 10_000;

pub struct PostgresStore {
    config: Config,
    client: Mutex<Option<Client>>,
    ttl: Duration,
    /// host:port/database, for messages (never the password).
    at: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("at", &self.at)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    /// The sync client closes its connection by blocking on its own runtime, which panics on
    /// an async runtime's thread (the daemon drops the store there when it stops): close it on
    /// a thread of its own.
    fn drop(&mut self) {
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(client) = client {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

impl PostgresStore {
    /// Connects to `url` (password from `PGPASSWORD`), creates the schema if it is missing and
    /// purges expired sessions.
    pub fn connect(url: &str, ttl: Duration) -> Result<Self, StoreError> {
        let mut config: Config = url
            .parse()
            .map_err(|e| StoreError::Config(format!("not a PostgreSQL URL: {e}")))?;
        if let Ok(password) = std::env::var("PGPASSWORD") {
            config.password(password);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let options = format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}");
        let options = match config.get_options() {
            Some(theirs) => format!("{theirs} {options}"),
            None => options,
        };
        config.options(&options);
        config.application_name("vaak");
        let store = Self {
            at: describe(&config),
            config,
            client: Mutex::new(None),
            ttl,
        };
        store.migrate()?;
        store.purge_expired()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let at = self.at.clone();
        self.with_client("create the schema", |c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            tx.batch_execute(SCHEMA_V1)?;
            let found: Option<i32> = tx
                .query_opt("SELECT max(version) FROM vaak_schema", &[])?
                .and_then(|r| r.get(0));
            match found {
                None => {
                    tx.execute(
                        "INSERT INTO vaak_schema (version) VALUES ($1)",
                        &[&SCHEMA_VERSION],
                    )?;
                }
                Some(v) if v > SCHEMA_VERSION => return Ok(Err(v)),
                Some(_) => {}
            }
            tx.commit()?;
            Ok(Ok(()))
        })?
        .map_err(|found| StoreError::NewerSchema {
            at,
            found: i64::from(found),
        })
    }

    /// Runs `f` on the connection (made first if there is none); a broken connection is
    /// dropped so the next call reconnects.
    fn with_client<T>(
        &self,
        action: &'static str,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut slot = self.lock();
        let mut client = match slot.take() {
            Some(c) if !c.is_closed() => c,
            _ => self
                .config
                .connect(NoTls)
                .map_err(|source| StoreError::Postgres {
                    at: self.at.clone(),
                    action: "connect",
                    source,
                })?,
        };
        let result = f(&mut client);
        if !client.is_closed() {
            *slot = Some(client);
        }
        result.map_err(|source| StoreError::Postgres {
            at: self.at.clone(),
            action,
            source,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Client>> {
        // A panic while holding the lock leaves at worst a transaction that the client rolls
        // back when dropped, so the connection is still usable.
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Best effort after a delete: reclaim the deleted rows' space now rather than at the next
    /// autovacuum. A failure (no owner rights, say) is logged; the delete has committed.
    fn vacuum(&self) {
        if let Err(e) = self.with_client("vacuum", |c| {
            c.batch_execute("VACUUM vaak_exchanges, vaak_sessions")
        }) {
            tracing::warn!(error = %e, "cannot vacuum the session tables");
        }
    }
}

/// (owner tenant, updated ms, expires ms) of session `id`, its row locked for this transaction.
fn session_row(
    tx: &mut Transaction<'_>,
    id: &str,
) -> Result<Option<(String, i64, i64)>, postgres::Error> {
    Ok(tx
        .query_opt(
            "SELECT tenant, updated_ms, expires_ms FROM vaak_sessions WHERE id = $1 FOR UPDATE",
            &[&id],
        )?
        .map(|r| (r.get(0), r.get(1), r.get(2))))
}

fn now_ms(tx: &mut Transaction<'_>) -> Result<i64, postgres::Error> {
    Ok(tx.query_one(NOW_MS, &[])?.get(0))
}

impl Store for PostgresStore {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn load(&self, tenant: &str, id: &str) -> Result<Option<StoredSession>, StoreError> {
        let ttl = self.ttl;
        self.with_client("load a session", |c| {
            let mut tx = c.transaction()?;
            let now = now_ms(&mut tx)?;
            let Some((owner, updated_ms, expires_ms)) = session_row(&mut tx, id)? else {
                return Ok(None);
            };
            if expired(ttl, updated_ms, expires_ms, now) {
                tx.execute("DELETE FROM vaak_sessions WHERE id = $1", &[&id])?;
                tx.commit()?;
                return Ok(None);
            }
            if owner != tenant {
                return Ok(None);
            }
            let exchanges = tx
                .query(
                    "SELECT user_text, assistant_text, language, interrupted FROM vaak_exchanges
                     WHERE session_id = $1 ORDER BY seq",
                    &[&id],
                )?
                .into_iter()
                .map(|r| {
                    let (user, language): (String, String) = (r.get(0), r.get(2));
                    // Not stored, as in SQLite: the words alone decide it.
                    let mixed = mixed_with_english(&user, &language, &[]);
                    Exchange {
                        user,
                        assistant: r.get(1),
                        language,
                        interrupted: r.get(3),
                        mixed,
                    }
                })
                .collect();
            tx.commit()?;
            Ok(Some(StoredSession {
                tenant: owner,
                exchanges,
                updated_unix_ms: updated_ms,
            }))
        })
    }

    fn append(
        &self,
        tenant: &str,
        id: &str,
        exchange: &Exchange,
        keep: usize,
    ) -> Result<i64, StoreError> {
        let ttl = self.ttl;
        let keep = i64::try_from(keep.max(1)).unwrap_or(i64::MAX);
        let (user, assistant) = (redact(&exchange.user), redact(&exchange.assistant));
        let claimed = self.with_client("save an exchange", |c| {
            let mut tx = c.transaction()?;
            let now = now_ms(&mut tx)?;
            if let Some((_, updated_ms, expires_ms)) = session_row(&mut tx, id)? {
                if expired(ttl, updated_ms, expires_ms, now) {
                    tx.execute("DELETE FROM vaak_sessions WHERE id = $1", &[&id])?;
                }
            }
            // Creates the session, or refreshes it if it is this tenant's; another tenant's
            // row is left alone and nothing comes back.
            let mine = tx.query_opt(
                "INSERT INTO vaak_sessions (id, tenant, updated_ms, expires_ms)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE
                 SET updated_ms = excluded.updated_ms, expires_ms = excluded.expires_ms
                 WHERE vaak_sessions.tenant = excluded.tenant
                 RETURNING id",
                &[&id, &tenant, &now, &now.saturating_add(ttl_ms(ttl))],
            )?;
            if mine.is_none() {
                return Ok(None);
            }
            let seq: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM vaak_exchanges WHERE session_id = $1",
                    &[&id],
                )?
                .get(0);
            tx.execute(
                "INSERT INTO vaak_exchanges
                 (session_id, seq, user_text, assistant_text, language, interrupted)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &id,
                    &seq,
                    &user,
                    &assistant,
                    &exchange.language,
                    &exchange.interrupted,
                ],
            )?;
            tx.execute(
                "DELETE FROM vaak_exchanges WHERE session_id = $1 AND seq <= $2",
                &[&id, &seq.saturating_sub(keep)],
            )?;
            tx.commit()?;
            Ok(Some(seq))
        })?;
        claimed.ok_or_else(|| StoreError::IdTaken {
            at: self.at.clone(),
        })
    }

    fn amend(&self, tenant: &str, id: &str, seq: i64, heard: &str) -> Result<bool, StoreError> {
        let ttl = self.ttl;
        let heard = redact(heard);
        self.with_client("amend an exchange", |c| {
            let mut tx = c.transaction()?;
            let now = now_ms(&mut tx)?;
            let owned = matches!(
                session_row(&mut tx, id)?,
                Some((owner, updated, expires)) if owner == tenant && !expired(ttl, updated, expires, now)
            );
            if !owned {
                return Ok(false);
            }
            let changed = tx.execute(
                "UPDATE vaak_exchanges SET assistant_text = $3, interrupted = true
                 WHERE session_id = $1 AND seq = $2",
                &[&id, &seq, &heard],
            )?;
            tx.execute(
                "UPDATE vaak_sessions SET updated_ms = $2, expires_ms = $3 WHERE id = $1",
                &[&id, &now, &now.saturating_add(ttl_ms(ttl))],
            )?;
            tx.commit()?;
            Ok(changed > 0)
        })
    }

    fn delete(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let deleted = self.with_client("delete a session", |c| {
            c.execute(
                "DELETE FROM vaak_sessions WHERE id = $1 AND tenant = $2",
                &[&id, &tenant],
            )
        })?;
        if deleted > 0 {
            self.vacuum();
        }
        Ok(deleted > 0)
    }

    fn purge_expired(&self) -> Result<usize, StoreError> {
        let ttl = ttl_ms(self.ttl);
        let purged = self.with_client("purge expired sessions", |c| {
            let mut tx = c.transaction()?;
            let now = now_ms(&mut tx)?;
            let n = tx.execute(
                "DELETE FROM vaak_sessions WHERE expires_ms <= $1 OR updated_ms <= $2",
                &[&now, &now.saturating_sub(ttl)],
            )?;
            tx.commit()?;
            Ok(n)
        })?;
        if purged > 0 {
            self.vacuum();
        }
        Ok(usize::try_from(purged).unwrap_or(usize::MAX))
    }
}

/// "postgres host:port/database" for messages: never the user's password.
fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("postgres {host}:{port}/{db}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_never_carry_the_password() {
        let config: Config = "postgres://vaak:s3cret@db.internal:6543/voice"
            .parse()
            .unwrap();
        let at = describe(&config);
        assert_eq!(at, "postgres db.internal:6543/voice");
    }

    #[test]
    fn an_unreachable_database_is_a_clear_error() {
        // Port 1 on loopback: nothing listens there; refused at once.
        let err =
            PostgresStore::connect("postgres://vaak@127.0.0.1:1/vaak", Duration::from_secs(60))
                .expect_err("nothing listens on port 1");
        let text = err.to_string();
        assert!(
            text.contains("postgres 127.0.0.1:1/vaak") && text.contains("connect"),
            "{text}"
        );
    }
}
