//! What every [`Store`] must do, as one suite run against each implementation (SQLite in the
//! unit tests, PostgreSQL in `tests/it/session_store.rs`): history round trips in every script,
//! the newest exchanges kept, interruptions amended, no turn lost between two streams or two
//! replicas writing at once, personal numbers masked, the TTL, tenant isolation and deletes.
//!
//! Each case gets a fresh, empty store from `make(ttl)`, and panics on the first broken
//! promise. Only the store's own calls are observed, so the suite holds any implementation to
//! the same contract.

use std::sync::Arc;
use std::time::Duration;

use super::{Store, StoreError};
use crate::conversation::Exchange;

const HOUR: Duration = Duration::from_secs(3600);
/// Long enough for a few calls on a loaded CI machine, short enough to wait out.
const SHORT_TTL: Duration = Duration::from_millis(300);

/// A fresh, empty store with this TTL.
pub type MakeStore<'a> = &'a dyn Fn(Duration) -> Arc<dyn Store>;

/// Runs every case; `make` gives a new empty store each time.
pub fn run_all(make: MakeStore<'_>) {
    round_trip_with_indic_text(make);
    only_the_newest_exchanges_are_kept(make);
    an_interrupted_reply_is_cut_to_what_was_heard(make);
    two_streams_of_one_session_lose_no_turn(make);
    personal_numbers_are_masked(make);
    expired_sessions_are_gone(make);
    an_expired_id_can_be_taken_by_another_tenant(make);
    tenants_are_isolated(make);
    deletes_are_final(make);
}

pub fn history() -> Vec<Exchange> {
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
pub fn save_all(store: &dyn Store, tenant: &str, id: &str, exchanges: &[Exchange]) {
    for ex in exchanges {
        store.append(tenant, id, ex, 64).expect("append");
    }
}

fn exchanges(store: &dyn Store, tenant: &str, id: &str) -> Vec<Exchange> {
    store
        .load(tenant, id)
        .expect("load")
        .unwrap_or_else(|| panic!("session {id} of {tenant} is missing"))
        .exchanges
}

pub fn round_trip_with_indic_text(make: MakeStore<'_>) {
    let store = make(HOUR);
    assert_eq!(store.ttl(), HOUR);
    assert_eq!(store.load("t1", "s1").expect("load"), None);
    save_all(&*store, "t1", "s1", &history());
    let got = store.load("t1", "s1").expect("load").expect("present");
    assert_eq!(got.tenant, "t1");
    assert_eq!(got.exchanges, history());
    assert!(got.updated_unix_ms > 0);
    let ur = Exchange {
        user: "آپ کیسے ہیں؟".into(),
        assistant: "میں ٹھیک ہوں، شکریہ۔".into(),
        language: "ur".into(),
        interrupted: false,
        mixed: false,
    };
    save_all(&*store, "t1", "s1", std::slice::from_ref(&ur));
    assert_eq!(exchanges(&*store, "t1", "s1").last(), Some(&ur));
}

pub fn only_the_newest_exchanges_are_kept(make: MakeStore<'_>) {
    let store = make(HOUR);
    let mut all = Vec::new();
    for i in 0..5 {
        let ex = Exchange {
            user: format!("question {i}"),
            ..history()[0].clone()
        };
        assert_eq!(store.append("t1", "s1", &ex, 3).expect("append"), i);
        all.push(ex);
    }
    assert_eq!(exchanges(&*store, "t1", "s1"), all[2..]);
}

pub fn an_interrupted_reply_is_cut_to_what_was_heard(make: MakeStore<'_>) {
    let store = make(HOUR);
    let seq = store.append("t1", "s1", &history()[0], 8).expect("append");
    assert!(store.amend("t1", "s1", seq, "आज धूप है").expect("amend"));
    let got = exchanges(&*store, "t1", "s1");
    assert_eq!(got[0].assistant, "आज धूप है");
    assert!(got[0].interrupted);
    // Not another tenant's, not an exchange that is gone.
    assert!(!store.amend("t2", "s1", seq, "x").expect("amend"));
    assert!(!store.amend("t1", "s1", seq + 5, "x").expect("amend"));
}

/// A reconnect takes a session over while the old stream's last turn is still being saved:
/// the old stream's exchange lands after the new stream loaded the history. Neither stream's
/// turn may be lost.
pub fn two_streams_of_one_session_lose_no_turn(make: MakeStore<'_>) {
    let store = make(HOUR);
    let [first, second] = history().try_into().expect("two exchanges");
    store.append("t1", "s1", &first, 8).expect("append");
    assert_eq!(exchanges(&*store, "t1", "s1").len(), 1);
    // The old stream's in-flight save, then the new stream's first turn.
    store.append("t1", "s1", &second, 8).expect("old stream");
    let third = Exchange {
        user: "and tomorrow?".into(),
        ..first.clone()
    };
    store.append("t1", "s1", &third, 8).expect("new stream");
    assert_eq!(exchanges(&*store, "t1", "s1"), vec![first, second, third]);
}

/// An exchange with a phone, an Aadhaar and a PAN number in Whisper's spellings, saved and its
/// reply amended with another spelling of the phone number, as session `s1` of `t1`.
pub fn save_personal_numbers(store: &dyn Store) {
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
}

pub fn personal_numbers_are_masked(make: MakeStore<'_>) {
    let store = make(HOUR);
    save_personal_numbers(&*store);
    let got = exchanges(&*store, "t1", "s1");
    assert_eq!(
        got[0].user,
        "My phone number is [redacted], Aadhaar [redacted], PAN [redacted]."
    );
    assert_eq!(got[0].assistant, "I have noted [redacted]");
}

pub fn expired_sessions_are_gone(make: MakeStore<'_>) {
    let store = make(SHORT_TTL);
    save_all(&*store, "t1", "s1", &history());
    save_all(&*store, "t1", "s2", &history());
    std::thread::sleep(SHORT_TTL + Duration::from_millis(100));
    assert_eq!(store.load("t1", "s1").expect("load"), None);
    // s1 went when it was seen; the purge finds only s2, and then nothing.
    assert_eq!(store.purge_expired().expect("purge"), 1);
    assert_eq!(store.purge_expired().expect("purge again"), 0);
    assert_eq!(store.load("t1", "s2").expect("load"), None);
    // A session in use stays: each save refreshes its expiry.
    save_all(&*store, "t1", "s3", &history()[..1]);
    std::thread::sleep(SHORT_TTL / 2);
    save_all(&*store, "t1", "s3", &history()[1..]);
    std::thread::sleep(SHORT_TTL / 2 + Duration::from_millis(50));
    assert_eq!(exchanges(&*store, "t1", "s3"), history());
}

pub fn an_expired_id_can_be_taken_by_another_tenant(make: MakeStore<'_>) {
    let store = make(SHORT_TTL);
    save_all(&*store, "t1", "s1", &history());
    std::thread::sleep(SHORT_TTL + Duration::from_millis(100));
    save_all(&*store, "t2", "s1", &history()[..1]);
    assert_eq!(exchanges(&*store, "t2", "s1"), history()[..1]);
    assert_eq!(store.load("t1", "s1").expect("load"), None);
}

pub fn tenants_are_isolated(make: MakeStore<'_>) {
    let store = make(HOUR);
    save_all(&*store, "t1", "s1", &history());
    assert_eq!(store.load("t2", "s1").expect("load"), None);
    assert!(!store.delete("t2", "s1").expect("delete"));
    let err = store
        .append("t2", "s1", &history()[0], 8)
        .expect_err("id is taken");
    assert!(matches!(err, StoreError::IdTaken { .. }), "{err}");
    assert!(!err.to_string().contains("t1"), "{err}");
    assert!(!store.amend("t2", "s1", 0, "x").expect("amend"));
    // Untouched by the other tenant's attempts.
    assert_eq!(exchanges(&*store, "t1", "s1"), history());
}

pub fn deletes_are_final(make: MakeStore<'_>) {
    let store = make(HOUR);
    save_all(&*store, "t1", "s1", &history());
    save_all(&*store, "t1", "s2", &history());
    assert!(store.delete("t1", "s1").expect("delete"));
    assert!(!store.delete("t1", "s1").expect("delete again"));
    assert_eq!(store.load("t1", "s1").expect("load"), None);
    assert_eq!(exchanges(&*store, "t1", "s2"), history());
    // A new session under the deleted id starts empty.
    save_all(&*store, "t1", "s1", &history()[..1]);
    assert_eq!(exchanges(&*store, "t1", "s1"), history()[..1]);
}

/// Two handles on one store (two replicas, or two connections) append to one session at once:
/// every turn of both is kept, each once, numbered without gaps.
pub fn concurrent_writers_lose_no_turn(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    const EACH: usize = 20;
    let writer = |store: Arc<dyn Store>, who: &'static str| {
        std::thread::spawn(move || {
            for i in 0..EACH {
                let ex = Exchange {
                    user: format!("{who} {i}"),
                    ..history()[0].clone()
                };
                store.append("t1", "shared", &ex, 1_000).expect("append");
            }
        })
    };
    let (wa, wb) = (writer(Arc::clone(&a), "a"), writer(Arc::clone(&b), "b"));
    wa.join().expect("writer a");
    wb.join().expect("writer b");
    let got = exchanges(&*a, "t1", "shared");
    assert_eq!(got.len(), 2 * EACH, "turns lost: {}", got.len());
    for who in ["a", "b"] {
        let mine: Vec<String> = got
            .iter()
            .filter(|e| e.user.starts_with(who))
            .map(|e| e.user.clone())
            .collect();
        let want: Vec<String> = (0..EACH).map(|i| format!("{who} {i}")).collect();
        assert_eq!(mine, want, "{who}'s turns out of order or lost");
    }
    let next = a
        .append("t1", "shared", &history()[0], 1_000)
        .expect("append");
    assert_eq!(next, 2 * EACH as i64, "sequence numbers have gaps");
    assert_eq!(exchanges(&*b, "t1", "shared").len(), 2 * EACH + 1);
}
