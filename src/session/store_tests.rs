//! Tests of the session store (a file of their own: the store is long enough).

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn history() -> Vec<Exchange> {
    vec![
        Exchange {
            user: "नमस्ते, आज मौसम कैसा है?".into(),
            assistant: "आज धूप है और हल्की हवा चल रही है।".into(),
            language: "hi".into(),
            interrupted: false,
            mixed: false,
        },
        Exchange {
            user: "మీరు ఎవరు?".into(),
            assistant: "నేను వాక్, మీ వాయిస్".into(),
            language: "te".into(),
            interrupted: true,
            mixed: false,
        },
    ]
}

/// Appends each exchange in turn (as a session's turns do).
fn save_all(store: &SessionStore, tenant: &str, id: &str, exchanges: &[Exchange]) {
    for ex in exchanges {
        store.append(tenant, id, ex, 64).expect("append");
    }
}

fn count(store: &SessionStore, table: &str) -> i64 {
    let conn = store.lock();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count rows")
}

#[test]
fn save_load_round_trip_with_indic_text() {
    let store = SessionStore::in_memory(HOUR).expect("store");
    assert_eq!(store.ttl(), HOUR);
    assert_eq!(store.load("t1", "s1").expect("load"), None);
    let before = now_ms();
    save_all(&store, "t1", "s1", &history());
    let got = store.load("t1", "s1").expect("load").expect("present");
    assert_eq!(got.tenant, "t1");
    assert_eq!(got.exchanges, history());
    assert!(got.updated_unix_ms >= before);
}

#[test]
fn only_the_newest_exchanges_are_kept() {
    let store = SessionStore::in_memory(HOUR).expect("store");
    let mut all = Vec::new();
    for i in 0..5 {
        let ex = Exchange {
            user: format!("question {i}"),
            ..history()[0].clone()
        };
        assert_eq!(store.append("t1", "s1", &ex, 3).expect("append"), i);
        all.push(ex);
    }
    let got = store.load("t1", "s1").expect("load").expect("present");
    assert_eq!(got.exchanges, all[2..]);
    assert_eq!(count(&store, "exchanges"), 3);
}

#[test]
fn an_interrupted_reply_is_cut_to_what_was_heard() {
    let store = SessionStore::in_memory(HOUR).expect("store");
    let seq = store.append("t1", "s1", &history()[0], 8).expect("append");
    assert!(store.amend("t1", "s1", seq, "आज धूप है").expect("amend"));
    let got = store.load("t1", "s1").expect("load").expect("present");
    assert_eq!(got.exchanges[0].assistant, "आज धूप है");
    assert!(got.exchanges[0].interrupted);
    // Not another tenant's, not an exchange that is gone.
    assert!(!store.amend("t2", "s1", seq, "x").expect("amend"));
    assert!(!store.amend("t1", "s1", seq + 5, "x").expect("amend"));
}

/// A reconnect takes a session over while the old stream's last turn is still being saved:
/// the old stream's exchange lands after the new stream loaded the history. Neither stream's
/// turn may be lost.
#[test]
fn two_streams_of_one_session_lose_no_turn() {
    let store = SessionStore::in_memory(HOUR).expect("store");
    let [first, second] = history().try_into().expect("two exchanges");
    store.append("t1", "s1", &first, 8).expect("append");
    let loaded_by_new_stream = store.load("t1", "s1").expect("load").expect("present");
    assert_eq!(loaded_by_new_stream.exchanges.len(), 1);
    // The old stream's in-flight save, then the new stream's first turn.
    store.append("t1", "s1", &second, 8).expect("old stream");
    let third = Exchange {
        user: "and tomorrow?".into(),
        ..first.clone()
    };
    store.append("t1", "s1", &third, 8).expect("new stream");
    let got = store.load("t1", "s1").expect("load").expect("present");
    assert_eq!(got.exchanges, vec![first, second, third]);
}

#[test]
fn personal_numbers_never_reach_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sessions.db");
    let store = SessionStore::open(&path, HOUR).expect("open");
    let said = Exchange {
        user: "My phone number is 98,765, 43,210, Aadhaar 1234 5678 9012, PAN a BCD-1234F.".into(),
        assistant: "I have noted 9876543210 and ABCDE1234F.".into(),
        language: "en".into(),
        interrupted: false,
        mixed: false,
    };
    let seq = store.append("t1", "s1", &said, 8).expect("append");
    store
        .amend("t1", "s1", seq, "I have noted 98765 43210")
        .expect("amend");
    let got = store.load("t1", "s1").expect("load").expect("present");
    assert_eq!(
        got.exchanges[0].user,
        "My phone number is [redacted], Aadhaar [redacted], PAN [redacted]."
    );
    assert_eq!(got.exchanges[0].assistant, "I have noted [redacted]");
    // Nor in the database file, its log or its shared memory, in any spelling.
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
fn expired_session_is_none_and_deleted() {
    let store = SessionStore::in_memory(Duration::from_millis(50)).expect("store");
    save_all(&store, "t1", "s1", &history());
    save_all(&store, "t1", "s2", &history());
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(store.load("t1", "s1").expect("load"), None);
    let conn = store.lock();
    let left: i64 = conn
        .query_row("SELECT count(*) FROM sessions WHERE id = 's1'", [], |r| {
            r.get(0)
        })
        .expect("count");
    drop(conn);
    assert_eq!(left, 0);
    assert_eq!(count(&store, "exchanges"), 2, "only s2's rows remain");
    assert_eq!(store.purge_expired().expect("purge"), 1);
    assert_eq!(count(&store, "sessions"), 0);
    assert_eq!(count(&store, "exchanges"), 0);
}

#[test]
fn expired_id_can_be_taken_by_another_tenant() {
    let store = SessionStore::in_memory(Duration::from_millis(30)).expect("store");
    save_all(&store, "t1", "s1", &history());
    std::thread::sleep(Duration::from_millis(80));
    save_all(&store, "t2", "s1", &history()[..1]);
    let got = store.load("t2", "s1").expect("load").expect("present");
    assert_eq!(got.exchanges, history()[..1]);
}

#[test]
fn tenants_are_isolated() {
    let store = SessionStore::in_memory(HOUR).expect("store");
    save_all(&store, "t1", "s1", &history());
    assert_eq!(store.load("t2", "s1").expect("load"), None);
    assert!(!store.delete("t2", "s1").expect("delete"));
    let err = store
        .append("t2", "s1", &history()[0], 8)
        .expect_err("id is taken");
    assert!(matches!(err, StoreError::IdTaken { .. }), "{err}");
    assert!(!err.to_string().contains("t1"), "{err}");
    // Untouched by the other tenant's attempts.
    let got = store.load("t1", "s1").expect("load").expect("present");
    assert_eq!(got.exchanges, history());
}

#[test]
fn delete_removes_every_row() {
    let store = SessionStore::in_memory(HOUR).expect("store");
    save_all(&store, "t1", "s1", &history());
    save_all(&store, "t1", "s2", &history());
    assert_eq!(count(&store, "exchanges"), 4);
    assert!(store.delete("t1", "s1").expect("delete"));
    assert!(!store.delete("t1", "s1").expect("delete again"));
    assert_eq!(count(&store, "sessions"), 1);
    assert_eq!(count(&store, "exchanges"), 2);
    assert_eq!(store.load("t1", "s1").expect("load"), None);
}

#[test]
fn file_store_persists_is_private_and_scrubs_deleted_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/dir/sessions.db");
    {
        let store = SessionStore::open(&path, HOUR).expect("open");
        save_all(&store, "t1", "s1", &history());
        save_all(&store, "t1", "gone", &history());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let store = SessionStore::open(&path, HOUR).expect("reopen");
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
        SessionStore::open(&path, HOUR).expect("open");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
}

#[test]
fn garbage_file_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0xA5_u8; 8192]).expect("write");
    let err = SessionStore::open(&path, HOUR).expect_err("not a database");
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
    let err = SessionStore::open(&path, HOUR).expect_err("newer schema");
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
        &SessionStore::open(&path, HOUR).expect("open"),
        "t1",
        "s1",
        &history(),
    );
    std::thread::sleep(Duration::from_millis(60));
    let store = SessionStore::open(&path, Duration::from_millis(20)).expect("reopen");
    // Purged on open.
    assert_eq!(count(&store, "sessions"), 0);
    assert_eq!(count(&store, "exchanges"), 0);
}
