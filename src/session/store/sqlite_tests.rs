//! SQLite's own promises (a private file, deleted text scrubbed from the file and its log,
//! corrupt and newer files refused), and the conformance suite every store passes.

use std::sync::Arc;

use super::*;
use crate::session::store::conformance::{self, history, save_all};

const HOUR: Duration = Duration::from_secs(3600);

fn count(store: &SqliteStore, table: &str) -> i64 {
    let conn = store.lock();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count rows")
}

#[test]
fn sqlite_keeps_every_promise_of_a_store() {
    conformance::run_all(&|ttl| Arc::new(SqliteStore::in_memory(ttl).expect("store")));
}

#[test]
fn two_connections_to_one_file_lose_no_turn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.db");
    let open = || -> Arc<dyn Store> { Arc::new(SqliteStore::open(&path, HOUR).expect("open")) };
    conformance::concurrent_writers_lose_no_turn(open(), open());
}

#[test]
fn rows_go_with_the_newest_kept_expiry_and_delete() {
    let store = SqliteStore::in_memory(HOUR).expect("store");
    for i in 0..5 {
        let ex = Exchange {
            user: format!("question {i}"),
            ..history()[0].clone()
        };
        store.append("t1", "s1", &ex, 3).expect("append");
    }
    assert_eq!(count(&store, "exchanges"), 3);
    save_all(&store, "t1", "s2", &history());
    assert!(store.delete("t1", "s1").expect("delete"));
    assert_eq!(count(&store, "sessions"), 1);
    assert_eq!(count(&store, "exchanges"), 2);

    let store = SqliteStore::in_memory(Duration::from_millis(50)).expect("store");
    save_all(&store, "t1", "s1", &history());
    save_all(&store, "t1", "s2", &history());
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(store.load("t1", "s1").expect("load"), None);
    assert_eq!(count(&store, "exchanges"), 2, "only s2's rows remain");
    assert_eq!(store.purge_expired().expect("purge"), 1);
    assert_eq!(count(&store, "sessions"), 0);
    assert_eq!(count(&store, "exchanges"), 0);
}

#[test]
fn personal_numbers_never_reach_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.db");
    let store = SqliteStore::open(&path, HOUR).expect("open");
    conformance::save_personal_numbers(&store);
    // Not in the database file, its log or its shared memory, in any spelling.
    for entry in std::fs::read_dir(dir.path()).expect("list") {
        let file = entry.expect("entry").path();
        let bytes = std::fs::read(&file).expect("read");
        for needle in [
            "98,765",
            "43,210",
            "9876543210",
            "1234 5678",
            "1234F",
            "5678 9012",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} found in {}",
                file.display()
            );
        }
    }
}

#[test]
fn file_store_persists_is_private_and_scrubs_deleted_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/dir/sessions.db");
    {
        let store = SqliteStore::open(&path, HOUR).expect("open");
        save_all(&store, "t1", "s1", &history());
        save_all(&store, "t1", "gone", &history());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let store = SqliteStore::open(&path, HOUR).expect("reopen");
    let got = store.load("t1", "s1").expect("load").expect("present");
    assert_eq!(got.exchanges, history());
    #[cfg(unix)]
    {
        // The -wal and -shm files SQLite creates take the database file's mode.
        use std::os::unix::fs::PermissionsExt;
        let dir = path.parent().expect("parent");
        let names: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .collect();
        assert!(names.len() >= 2, "{names:?}");
        for file in names {
            let mode = std::fs::metadata(&file).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{} has mode {mode:o}", file.display());
        }
    }

    assert!(store.delete("t1", "gone").expect("delete"));
    store.delete("t1", "s1").expect("delete");
    // With secure_delete and the log truncated, the text is nowhere in the files, even while
    // the store is open (closing would checkpoint and remove the log anyway).
    let needle = "మీరు ఎవరు".as_bytes();
    for entry in std::fs::read_dir(path.parent().expect("parent")).expect("list") {
        let file = entry.expect("entry").path();
        let bytes = std::fs::read(&file).expect("read");
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "deleted text found in {}",
            file.display()
        );
    }
}

#[test]
fn existing_file_is_narrowed_to_0600() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.db");
    std::fs::write(&path, b"").expect("create");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        SqliteStore::open(&path, HOUR).expect("open");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
}

#[test]
fn garbage_file_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0xA5_u8; 8192]).expect("write");
    let err = SqliteStore::open(&path, HOUR).expect_err("not a database");
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.db");
    {
        let conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "user_version", 99)
            .expect("version");
    }
    let err = SqliteStore::open(&path, HOUR).expect_err("newer schema");
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, .. }),
        "{err:?}"
    );
}

#[test]
fn shorter_ttl_on_reopen_applies_to_old_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.db");
    save_all(
        &SqliteStore::open(&path, HOUR).expect("open"),
        "t1",
        "s1",
        &history(),
    );
    std::thread::sleep(Duration::from_millis(60));
    let store = SqliteStore::open(&path, Duration::from_millis(20)).expect("reopen");
    // Purged on open.
    assert_eq!(count(&store, "sessions"), 0);
    assert_eq!(count(&store, "exchanges"), 0);
}
