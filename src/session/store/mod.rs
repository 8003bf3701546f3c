//! Where conversations are kept between connections, so a client that reconnects with its
//! session id within the TTL continues where it left off: one [`Store`] contract, two
//! implementations — SQLite in a local file ([`sqlite`], the embedded default) and PostgreSQL
//! shared by several daemons behind a load balancer ([`postgres`]) — held to the same behaviour
//! by one [`conformance`] suite.
//!
//! The text of a conversation is personal data, so a store keeps as little as it can for as
//! short as it can: a session past its TTL is never returned and is deleted when seen (and by
//! [`Store::purge_expired`]); a delete removes every row; a session is visible only to the
//! tenant that created it; and phone, Aadhaar, PAN and other long numbers are masked
//! ([`crate::text::redact`]) before a word is written.

pub mod conformance;
pub mod postgres;
pub mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use crate::config::SessionsConfig;
use crate::conversation::Exchange;

/// A session as loaded from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    pub tenant: String,
    pub exchanges: Vec<Exchange>,
    pub updated_unix_ms: i64,
}

/// What every session store does. Calls block (callers use `spawn_blocking`).
pub trait Store: Send + Sync + std::fmt::Debug {
    fn ttl(&self) -> Duration;

    /// The session if it exists, belongs to `tenant`, and is within its TTL. An expired one is
    /// deleted and reported as None. A session of another tenant is None (never reveal it
    /// exists).
    fn load(&self, tenant: &str, id: &str) -> Result<Option<StoredSession>, StoreError>;

    /// Appends `exchange` to the history of session `id` (created if new, its expiry refreshed),
    /// keeps only the newest `keep` exchanges, and returns the exchange's sequence number (for
    /// [`Store::amend`]). Personal numbers are masked before anything is written: the live turn
    /// saw them, the store never holds them.
    ///
    /// Appending, not replacing the history, means two streams of one session (a reconnect that
    /// took over while the old stream's last turn was still being saved, or two replicas) cannot
    /// overwrite each other's turns: both are kept, in the order they were saved.
    ///
    /// Fails with [`StoreError::IdTaken`] if the id exists (unexpired) for another tenant; an
    /// expired session of any tenant under that id is deleted first.
    fn append(
        &self,
        tenant: &str,
        id: &str,
        exchange: &Exchange,
        keep: usize,
    ) -> Result<i64, StoreError>;

    /// Replaces the reply of exchange `seq` with what the user heard of it before interrupting
    /// (masked like [`Store::append`]); false if there is no such exchange for `tenant`
    /// (deleted, expired, or trimmed away meanwhile).
    fn amend(&self, tenant: &str, id: &str, seq: i64, heard: &str) -> Result<bool, StoreError>;

    /// Deletes the session and everything stored for it; true if it existed (for that tenant).
    fn delete(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;

    /// Deletes every expired session; returns how many.
    fn purge_expired(&self) -> Result<usize, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store {path}: cannot {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("session store {path}: cannot open it as a SQLite database (corrupt or not a session store?): {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("session store {at} has schema version {found}, newer than this vaak understands; upgrade vaak or move the data away")]
    NewerSchema { at: String, found: i64 },
    #[error("session store {path}: {action} failed: {source}")]
    Sql {
        path: PathBuf,
        action: &'static str,
        source: rusqlite::Error,
    },
    /// A PostgreSQL call failed (`at` is host, port and database: never the password).
    #[error("session store {at}: {action} failed: {source}")]
    Postgres {
        at: String,
        action: &'static str,
        source: ::postgres::Error,
    },
    #[error("session store: {0}")]
    Config(String),
    /// The id is taken by a session of another tenant. The message names neither.
    #[error(
        "session store {at}: the session id is already in use by another tenant; choose a new id"
    )]
    IdTaken { at: String },
}

/// Opens the configured store (blocking): memory only, a PostgreSQL database
/// (`postgres://…`, password from `PGPASSWORD`) or the SQLite file.
pub fn open(config: &SessionsConfig) -> Result<Arc<dyn Store>, StoreError> {
    let ttl = Duration::from_secs(config.ttl_s);
    if config.in_memory {
        return Ok(Arc::new(SqliteStore::in_memory(ttl)?));
    }
    if let Some(url) = config.postgres_url() {
        return Ok(Arc::new(PostgresStore::connect(url, ttl)?));
    }
    Ok(Arc::new(SqliteStore::open(&config.store_path(), ttl)?))
}

/// Expired by the TTL it was saved with or by the current one, whichever is shorter, so a
/// store reopened with a shorter TTL keeps nothing longer than it now promises.
fn expired(ttl: Duration, updated_ms: i64, expires_ms: i64, now: i64) -> bool {
    expires_ms <= now || updated_ms.saturating_add(ttl_ms(ttl)) <= now
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch; 0 if the clock is before it.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
