//! Turn control for one session: which turn is current, its cancellation token (child of the
//! session's shutdown token), and barge-in. Starting a turn or interrupting one cancels the
//! previous turn's token, so every stage drops that turn's messages on arrival.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::messages::{Turn, TurnId};

pub struct TurnControl {
    session: CancellationToken,
    inner: Mutex<Inner>,
}

struct Inner {
    next_id: u64,
    /// The turn being answered (from end of speech until its reply is fully handed out).
    active: Option<Arc<Turn>>,
}

impl TurnControl {
    pub fn new(session: CancellationToken) -> Self {
        Self {
            session,
            inner: Mutex::new(Inner {
                next_id: 1,
                active: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The guarded data is two plain fields; a panic elsewhere cannot leave them torn.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a turn at end of speech. With `supersede`, a turn still being answered is
    /// cancelled (live conversation); without, turns queue behind each other (files).
    pub fn begin(&self, supersede: bool) -> Arc<Turn> {
        let mut inner = self.lock();
        if supersede {
            if let Some(old) = inner.active.take() {
                old.cancel.cancel();
            }
        }
        let turn = Arc::new(Turn::new(TurnId(inner.next_id), self.session.child_token()));
        inner.next_id += 1;
        inner.active = Some(Arc::clone(&turn));
        turn
    }

    /// Barge-in: cancels the active turn, returning it if there was one.
    pub fn interrupt(&self) -> Option<Arc<Turn>> {
        let turn = self.lock().active.take()?;
        turn.cancel.cancel();
        Some(turn)
    }

    /// The reply of `id` has been fully handed out.
    pub fn finish(&self, id: TurnId) {
        let mut inner = self.lock();
        if inner.active.as_ref().is_some_and(|t| t.id == id) {
            inner.active = None;
        }
    }

    pub fn active(&self) -> Option<Arc<Turn>> {
        self.lock().active.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superseding_cancels_the_previous_turn() {
        let c = TurnControl::new(CancellationToken::new());
        let a = c.begin(true);
        let b = c.begin(true);
        assert!(a.is_stale());
        assert!(!b.is_stale());
        assert!(b.id > a.id);
        let i = c.interrupt().unwrap();
        assert_eq!(i.id, b.id);
        assert!(b.is_stale());
        assert!(c.interrupt().is_none());
    }

    #[test]
    fn queued_turns_are_not_cancelled_and_session_cancel_reaches_all() {
        let session = CancellationToken::new();
        let c = TurnControl::new(session.clone());
        let a = c.begin(false);
        let b = c.begin(false);
        assert!(!a.is_stale());
        c.finish(a.id);
        assert_eq!(c.active().map(|t| t.id), Some(b.id));
        session.cancel();
        assert!(a.is_stale() && b.is_stale());
    }
}
