//! The conversation memory of one live session, shared by the stages that change it: the LLM
//! stage records each exchange, and whoever interrupts a reply (barge-in, a client's INTERRUPT)
//! cuts the recorded reply down to what the user actually heard. Every change is handed to the
//! session's sink (the SQLite store) so that a reconnecting client continues the conversation.

use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use super::messages::{Turn, TurnId};
use crate::backend::llm::ChatMessage;
use crate::conversation::{Conversation, Exchange};

/// Where a session's history is kept between streams. Both calls block (callers run them on
/// the blocking pool).
pub trait HistorySink: Send + Sync {
    /// Adds an exchange after those kept; returns its key for [`HistorySink::amend`].
    fn append(&self, exchange: &Exchange) -> Result<i64, String>;
    /// Cuts the reply of exchange `key` to `heard`, marked interrupted.
    fn amend(&self, key: i64, heard: &str) -> Result<(), String>;
}

pub struct SessionMemory {
    inner: Mutex<Inner>,
    sink: Option<Arc<dyn HistorySink>>,
    /// What the sink holds. Held across a write, so an interruption's amend waits for the
    /// append of the exchange it amends.
    persisted: tokio::sync::Mutex<Persisted>,
}

/// Exchanges a failing store could not take are kept, at most this many (the oldest go first).
const MAX_UNSAVED: usize = 64;

#[derive(Default)]
struct Persisted {
    /// The turn and sink key of the newest exchange persisted.
    newest: Option<(TurnId, i64)>,
    /// Exchanges not yet persisted (the store failed), oldest first: written, in order, at the
    /// next save that reaches it.
    unsaved: std::collections::VecDeque<(TurnId, Exchange)>,
    /// The last write failed (logged once per outage, not per turn).
    failing: bool,
}

struct Inner {
    conversation: Conversation,
    /// The turn whose exchange is the newest in `conversation`.
    last_turn: Option<TurnId>,
}

impl std::fmt::Debug for SessionMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMemory")
            .field("exchanges", &self.lock().conversation.exchanges().len())
            .field("persisted", &self.sink.is_some())
            .finish()
    }
}

impl SessionMemory {
    pub fn new(conversation: Conversation, sink: Option<Arc<dyn HistorySink>>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                conversation,
                last_turn: None,
            }),
            sink,
            persisted: tokio::sync::Mutex::new(Persisted::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The conversation is only replaced whole under the lock: a panic cannot tear it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn messages_for(&self, user_text: &str, language: &str, mixed: bool) -> Vec<ChatMessage> {
        self.lock()
            .conversation
            .messages_for(user_text, language, mixed)
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.lock().conversation.exchanges().to_vec()
    }

    /// Records the exchange of `turn`: the whole reply, or — if the user interrupted it — only
    /// what was heard, marked interrupted. A turn abandoned before it was ever answered (the user
    /// went on speaking) leaves no trace.
    /// `mixed`: the user mixed `language` with English (as the language stage decided).
    pub async fn record(
        &self,
        turn: &Turn,
        user: String,
        reply: String,
        language: String,
        mixed: bool,
    ) {
        let exchange = if turn.was_interrupted() {
            Exchange {
                user,
                assistant: turn.heard_text(),
                language,
                interrupted: true,
                mixed,
            }
        } else if turn.is_stale() || reply.is_empty() {
            return;
        } else {
            Exchange {
                user,
                assistant: reply,
                language,
                interrupted: false,
                mixed,
            }
        };
        {
            let mut inner = self.lock();
            inner.conversation.record(exchange.clone());
            inner.last_turn = Some(turn.id);
        }
        let Some(sink) = self.sink.clone() else {
            return;
        };
        let mut persisted = self.persisted.lock().await;
        persisted.unsaved.push_back((turn.id, exchange));
        while persisted.unsaved.len() > MAX_UNSAVED {
            persisted.unsaved.pop_front();
        }
        // This exchange and any a failing store missed before it, in order.
        while let Some((id, exchange)) = persisted.unsaved.front().cloned() {
            let sink = Arc::clone(&sink);
            let error = match tokio::task::spawn_blocking(move || sink.append(&exchange)).await {
                Ok(Ok(key)) => {
                    persisted.unsaved.pop_front();
                    persisted.newest = Some((id, key));
                    if std::mem::take(&mut persisted.failing) {
                        info!(
                            "the session store answers again: the history kept meanwhile is saved"
                        );
                    }
                    continue;
                }
                Ok(Err(e)) => e,
                Err(e) => e.to_string(),
            };
            if !std::mem::replace(&mut persisted.failing, true) {
                warn!(error = %error, unsaved = persisted.unsaved.len(),
                    "cannot save the session history: kept in memory until the store answers");
            }
            break;
        }
    }

    /// The reply of `turn` was interrupted after it was recorded: keep only what was heard.
    pub async fn on_interrupted(&self, turn: &Turn) {
        {
            let mut inner = self.lock();
            if inner.last_turn != Some(turn.id) {
                return;
            }
            let mut all = inner.conversation.exchanges().to_vec();
            let Some(last) = all.last_mut() else { return };
            last.assistant = turn.heard_text();
            last.interrupted = true;
            inner.conversation.restore(all);
        }
        let Some(sink) = self.sink.clone() else {
            return;
        };
        let mut persisted = self.persisted.lock().await;
        let heard = turn.heard_text();
        if let Some((_, unsaved)) = persisted.unsaved.iter_mut().find(|(t, _)| *t == turn.id) {
            // Not written yet: it will be, cut to what was heard.
            unsaved.assistant = heard;
            unsaved.interrupted = true;
            return;
        }
        let Some((_, key)) = persisted.newest.filter(|(t, _)| *t == turn.id) else {
            return;
        };
        match tokio::task::spawn_blocking(move || sink.amend(key, &heard)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "cannot persist the session history"),
            Err(e) => warn!(error = %e, "history persistence task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::sync::CancellationToken;

    fn turn(id: u64) -> Turn {
        Turn::new(TurnId(id), CancellationToken::new())
    }

    #[tokio::test]
    async fn interrupted_replies_keep_only_what_was_heard() {
        let m = SessionMemory::new(Conversation::new("sys", 8), None);
        let t = turn(1);
        t.record_clause("Delhi is the capital.", 0, 1_000);
        t.record_clause("It has many monuments to see.", 1_000, 2_000);
        // Recorded in full first (the LLM finished before the user interrupted).
        m.record(
            &t,
            "q".into(),
            "Delhi is the capital. It has many monuments to see.".into(),
            "en".into(),
            false,
        )
        .await;
        assert!(!m.exchanges()[0].interrupted);
        // Nothing was handed out: nothing was heard.
        assert!(t.interrupt());
        m.on_interrupted(&t).await;
        let ex = &m.exchanges()[0];
        assert!(ex.interrupted);
        assert_eq!(ex.assistant, "");
    }

    /// A store that fails while `down` is set and records what it was given.
    #[derive(Default)]
    struct FlakyStore {
        down: std::sync::atomic::AtomicBool,
        saved: Mutex<Vec<Exchange>>,
    }

    impl HistorySink for FlakyStore {
        fn append(&self, exchange: &Exchange) -> Result<i64, String> {
            if self.down.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("connection refused".into());
            }
            let mut saved = self.saved.lock().unwrap();
            saved.push(exchange.clone());
            Ok(saved.len() as i64 - 1)
        }
        fn amend(&self, key: i64, heard: &str) -> Result<(), String> {
            let mut saved = self.saved.lock().unwrap();
            saved[key as usize].assistant = heard.to_string();
            saved[key as usize].interrupted = true;
            Ok(())
        }
    }

    #[tokio::test]
    async fn turns_a_failing_store_missed_are_saved_in_order_when_it_answers() {
        let store = Arc::new(FlakyStore::default());
        let m = SessionMemory::new(Conversation::new("sys", 8), Some(store.clone()));
        let answer = |id: u64, q: &str| {
            let t = turn(id);
            t.record_clause("An answer.", 0, 1_000);
            (t, q.to_string())
        };
        let (t1, q1) = answer(1, "one");
        m.record(&t1, q1, "An answer.".into(), "en".into(), false)
            .await;
        store.down.store(true, std::sync::atomic::Ordering::SeqCst);
        let (t2, q2) = answer(2, "two");
        m.record(&t2, q2, "An answer.".into(), "en".into(), false)
            .await;
        let (t3, q3) = answer(3, "three");
        m.record(&t3, q3, "An answer. And more.".into(), "en".into(), false)
            .await;
        // Turn 3's reply is cut while the store is down: the kept copy is cut too.
        assert!(t3.interrupt());
        m.on_interrupted(&t3).await;
        assert_eq!(
            store.saved.lock().unwrap().len(),
            1,
            "only turn one reached the store"
        );
        // The conversation itself went on in memory.
        assert_eq!(m.exchanges().len(), 3);
        store.down.store(false, std::sync::atomic::Ordering::SeqCst);
        let (t4, q4) = answer(4, "four");
        m.record(&t4, q4, "An answer.".into(), "en".into(), false)
            .await;
        let saved = store.saved.lock().unwrap().clone();
        let users: Vec<&str> = saved.iter().map(|e| e.user.as_str()).collect();
        assert_eq!(users, ["one", "two", "three", "four"]);
        assert!(saved[2].interrupted && saved[2].assistant.is_empty());
    }

    #[tokio::test]
    async fn abandoned_turns_leave_no_trace() {
        let m = SessionMemory::new(Conversation::new("sys", 8), None);
        let t = turn(1);
        t.cancel.cancel();
        m.record(&t, "q".into(), "partial".into(), "en".into(), false)
            .await;
        assert!(m.exchanges().is_empty());
    }
}
