//! Turn control for one session: which turn is current, its cancellation token (child of the
//! session's shutdown token), and barge-in. Starting a turn or interrupting one cancels the
//! previous turn's token, so every stage drops that turn's messages on arrival.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::messages::{Turn, TurnId};

pub struct TurnControl {
    session: CancellationToken,
    /// The transport reports what was played (see [`Turn::report_played`]).
    playback_acks: bool,
    inner: Mutex<Inner>,
    /// When the user started speaking, while they speak (the VAD sets and clears it).
    speaking_since: Mutex<Option<std::time::Instant>>,
}

/// Speech longer than this without an end is not counted as a turn in flight any more (a
/// stuck microphone must not hold admission closed).
const SPEAKING_COUNTS_FOR: std::time::Duration = std::time::Duration::from_secs(30);

struct Inner {
    next_id: u64,
    /// The turn being answered (from end of speech until its reply is fully handed out).
    active: Option<Arc<Turn>>,
}

impl TurnControl {
    pub fn new(session: CancellationToken) -> Self {
        Self::with_playback_acks(session, false)
    }

    /// Turn control for a transport that reports playback (telephony marks, paced frames).
    pub fn with_playback_acks(session: CancellationToken, playback_acks: bool) -> Self {
        Self {
            session,
            playback_acks,
            inner: Mutex::new(Inner {
                next_id: 1,
                active: None,
            }),
            speaking_since: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The guarded data is two plain fields; a panic elsewhere cannot leave them torn.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a turn at end of speech. With `supersede`, a turn still being answered is
    /// cancelled (live conversation); without, turns queue behind each other (files).
    pub fn begin(&self, supersede: bool) -> Arc<Turn> {
        self.start(supersede).0
    }

    /// Like [`TurnControl::begin`], also returning the turn it interrupted (if one was live).
    pub fn start(&self, supersede: bool) -> (Arc<Turn>, Option<Arc<Turn>>) {
        let turn = self.new_turn(Turn::new);
        let old = self.adopt(&turn, supersede);
        (turn, old)
    }

    /// A turn started at a short pause: current, but its reply is held until it is confirmed.
    pub fn begin_speculative(&self) -> Arc<Turn> {
        let turn = self.new_turn(Turn::speculative);
        self.adopt(&turn, true);
        turn
    }

    /// A turn heard over a reply: not current until [`TurnControl::adopt`] (its transcript may
    /// show a backchannel that must not interrupt).
    pub fn begin_tentative(&self) -> Arc<Turn> {
        let turn = self.new_turn(Turn::new);
        turn.over_reply
            .store(true, std::sync::atomic::Ordering::Relaxed);
        turn
    }

    /// The id the next turn will get (partial transcripts of speech in progress carry it).
    pub fn next_id(&self) -> TurnId {
        TurnId(self.lock().next_id)
    }

    fn new_turn(&self, make: fn(TurnId, CancellationToken) -> Turn) -> Arc<Turn> {
        let mut inner = self.lock();
        let turn = Arc::new(
            make(TurnId(inner.next_id), self.session.child_token())
                .with_playback_acks(self.playback_acks),
        );
        inner.next_id += 1;
        turn
    }

    /// Makes `turn` current. With `supersede`, the turn it replaces is interrupted and returned
    /// (if it was still live).
    pub fn adopt(&self, turn: &Arc<Turn>, supersede: bool) -> Option<Arc<Turn>> {
        let mut inner = self.lock();
        let old = inner.active.replace(Arc::clone(turn))?;
        if old.id == turn.id || !supersede {
            return None;
        }
        old.interrupt().then_some(old)
    }

    /// Barge-in: interrupts the current turn, returning it if it was live.
    pub fn interrupt(&self) -> Option<Arc<Turn>> {
        let turn = self.lock().active.take()?;
        turn.interrupt().then_some(turn)
    }

    /// A speculative turn the user talked over: cancelled, never heard.
    pub fn abandon(&self, turn: &Turn) {
        let mut inner = self.lock();
        if inner.active.as_ref().is_some_and(|t| t.id == turn.id) {
            inner.active = None;
        }
        turn.cancel.cancel();
    }

    /// The reply of `id` has been fully handed out.
    pub fn finish(&self, id: TurnId) {
        let mut inner = self.lock();
        if inner.active.as_ref().is_some_and(|t| t.id == id) {
            inner.active = None;
        }
    }

    /// The transport played the first `ms` of turn `id`'s reply (ignored once that turn is no
    /// longer current: an interrupted turn keeps what was played when it was interrupted).
    pub fn report_played(&self, id: TurnId, ms: u64) {
        if let Some(t) = self.lock().active.as_ref().filter(|t| t.id == id) {
            t.report_played(ms);
        }
    }

    pub fn active(&self) -> Option<Arc<Turn>> {
        self.lock().active.clone()
    }

    /// The user started (`true`) or stopped (`false`) speaking.
    pub fn set_speaking(&self, speaking: bool) {
        let mut since = self
            .speaking_since
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *since = speaking.then(std::time::Instant::now);
    }

    /// In a turn: the user is speaking, or a turn is being answered (its reply prepared or
    /// played). What admission counts across sessions.
    pub fn in_turn(&self) -> bool {
        let speaking = self
            .speaking_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < SPEAKING_COUNTS_FOR);
        speaking || self.lock().active.as_ref().is_some_and(|t| !t.is_stale())
    }

    /// True while a confirmed reply is being prepared or played.
    pub fn replying(&self) -> bool {
        self.lock()
            .active
            .as_ref()
            .is_some_and(|t| t.is_confirmed() && !t.is_stale())
    }
}

#[cfg(test)]
mod tests {
    use super::super::messages::TurnClock;
    use super::*;

    #[test]
    fn a_session_is_in_a_turn_while_its_user_speaks_and_while_it_is_answered() {
        let t = TurnControl::new(CancellationToken::new());
        assert!(!t.in_turn());
        t.set_speaking(true);
        assert!(t.in_turn());
        t.set_speaking(false);
        let turn = t.begin(true);
        assert!(t.in_turn(), "being answered");
        t.finish(turn.id);
        assert!(!t.in_turn(), "answered");
        let turn = t.begin(true);
        t.abandon(&turn);
        assert!(!t.in_turn(), "abandoned");
    }

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
        assert!(b.is_stale() && b.was_interrupted());
        assert!(c.interrupt().is_none());
    }

    #[test]
    fn speculative_turns_wait_and_tentative_turns_are_not_current() {
        let c = TurnControl::new(CancellationToken::new());
        let reply = c.begin(true);
        assert!(c.replying());
        let t = c.begin_tentative();
        assert_eq!(
            c.active().map(|a| a.id),
            Some(reply.id),
            "tentative is not current"
        );
        let old = c.adopt(&t, true).unwrap();
        assert_eq!(old.id, reply.id);
        assert!(reply.was_interrupted());
        c.finish(t.id);
        let s = c.begin_speculative();
        assert!(!s.is_confirmed() && !c.replying());
        c.abandon(&s);
        assert!(s.is_stale() && !s.was_interrupted());
        assert!(c.active().is_none());
        let s2 = c.begin_speculative();
        assert!(s2.confirm() && !s2.confirm());
        assert!(c.replying());
    }

    #[test]
    fn reported_playback_is_what_history_keeps() {
        let c = TurnControl::with_playback_acks(CancellationToken::new(), true);
        let t = c.begin(true);
        t.record_clause("one two three four", 0, 1_000);
        t.add_played(16_000, 16_000);
        TurnClock::mark(&t.clock.output_first_audio);
        // Handed out, but nothing reported played yet.
        assert_eq!(t.played_s(), 0.0);
        c.report_played(t.id, 500);
        c.report_played(TurnId(t.id.0 + 1), 900);
        assert_eq!(t.played_s(), 0.5);
        let i = c.interrupt().unwrap();
        // Reports after the interruption (marks echoed by a clear) change nothing.
        i.report_played(1_000);
        assert_eq!(i.heard_text(), "one two");
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
