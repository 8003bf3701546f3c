//! Which KV-cache sequence serves a request, and how much of it can be reused.
//!
//! The engine's llama context holds `n` sequences in one unified KV cache. Each sequence is a
//! *slot*: it remembers the exact tokens whose keys/values are in the cache. A session (the
//! OpenAI `user` field or the `x-vaak-session` header) sticks to its slot across turns, so turn
//! N+1 — whose prompt starts with everything turn N saw and said — only prefills the new tail.
//! A request that lands on a fresh slot can still borrow the longest matching prefix (usually
//! the shared system prompt) from any other slot: in a unified cache that copy only tags the
//! cells with a second sequence id, so it is free.
//!
//! When the daemon trims a long conversation (the oldest turns dropped), the new prompt is the
//! system prompt, then turns the cache already holds further on: that run is moved back into
//! place (removed gap, positions shifted, RoPE re-applied by llama.cpp) instead of re-read, as
//! llama.cpp's server does with `--cache-reuse`. On two cores a re-read of 400–600 history tokens
//! cost 2–4 s before the first word of the reply.
//!
//! This module is pure bookkeeping (no model, no FFI), so its policy is unit-tested here; the
//! engine applies the returned [`KvOp`] to the real cache.

/// A token id as llama.cpp numbers it.
pub type Token = i32;
/// A llama.cpp sequence id.
pub type SeqId = i32;

/// What the engine must do to the slot's KV sequence before prefilling the rest of the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    /// Keep the first `keep` cached tokens of this sequence and remove everything after them.
    Truncate { keep: usize },
    /// Remove this whole sequence, then share positions `0..len` of sequence `from`.
    CopyPrefix { from: SeqId, len: usize },
    /// Keep the first `keep` cached tokens and the run `from..from + len`, moved to start at
    /// `keep`; remove the rest.
    Shift {
        keep: usize,
        from: usize,
        len: usize,
    },
}

/// The shortest cached run worth moving rather than re-reading (a turn is longer than this).
pub const MIN_SHIFTED_RUN: usize = 32;

/// The longest run of `cached` after position `keep` that equals `prompt[keep..limit]`'s start,
/// as `(from, len)`, if at least [`MIN_SHIFTED_RUN`] long.
pub fn shifted_run(
    cached: &[Token],
    prompt: &[Token],
    keep: usize,
    limit: usize,
) -> Option<(usize, usize)> {
    let wanted = prompt.get(keep..limit.max(keep))?;
    let first = *wanted.first()?;
    (keep + 1..cached.len())
        .filter(|&from| cached[from] == first)
        .map(|from| (from, common_prefix(&cached[from..], wanted)))
        .max_by_key(|&(_, len)| len)
        .filter(|&(_, len)| len >= MIN_SHIFTED_RUN)
}

/// A slot handed to one request until [`SlotTable::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Index into the table (stable for the table's life).
    pub slot: usize,
    /// The llama.cpp sequence id of that slot.
    pub seq: SeqId,
    /// KV change to apply before decoding.
    pub op: KvOp,
    /// Prompt tokens whose KV entries are reused; prefill starts at this position.
    pub cached: usize,
    /// The session whose cache was dropped to make room, if any.
    pub evicted: Option<String>,
}

#[derive(Debug)]
struct Slot {
    seq: SeqId,
    key: Option<String>,
    tokens: Vec<Token>,
    last_used: u64,
    busy: bool,
}

/// All slots plus the LRU clock.
#[derive(Debug)]
pub struct SlotTable {
    slots: Vec<Slot>,
    max_sessions: usize,
    clock: u64,
    /// The model's KV cache can move tokens to new positions (not a recurrent model).
    can_shift: bool,
}

/// Length of the longest common prefix of two token lists.
pub fn common_prefix(a: &[Token], b: &[Token]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl SlotTable {
    /// `n_seqs` sequences (ids `0..n_seqs`), of which at most `max_sessions` are owned by a
    /// session key at once; the rest serve requests without a key. `can_shift`: cached runs may
    /// be moved ([`KvOp::Shift`]).
    pub fn new(n_seqs: usize, max_sessions: usize, can_shift: bool) -> Self {
        let slots = (0..n_seqs)
            .map(|i| Slot {
                seq: SeqId::try_from(i).unwrap_or(SeqId::MAX),
                key: None,
                tokens: Vec::new(),
                last_used: 0,
                busy: false,
            })
            .collect();
        Self {
            slots,
            max_sessions,
            clock: 0,
            can_shift,
        }
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Number of slots owned by a session key.
    pub fn sessions(&self) -> usize {
        self.slots.iter().filter(|s| s.key.is_some()).count()
    }

    /// Tokens currently in the slot's KV sequence.
    pub fn tokens(&self, slot: usize) -> &[Token] {
        self.slots.get(slot).map_or(&[], |s| s.tokens.as_slice())
    }

    /// Records tokens that were just decoded into the slot's sequence.
    pub fn push_decoded(&mut self, slot: usize, tokens: &[Token]) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.tokens.extend_from_slice(tokens);
        }
    }

    /// Forgets the slot's cache (after the engine cleared its sequence).
    pub fn reset(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.tokens.clear();
        }
    }

    /// Ends a request's use of the slot; it stays cached for the session's next turn.
    pub fn release(&mut self, slot: usize) {
        self.clock += 1;
        let now = self.clock;
        if let Some(s) = self.slots.get_mut(slot) {
            s.busy = false;
            s.last_used = now;
        }
    }

    /// Picks a slot for a request with session `key` and full prompt `prompt`, or `None` when
    /// every usable slot is busy (the caller waits and retries after a release).
    pub fn acquire(&mut self, key: Option<&str>, prompt: &[Token]) -> Option<Lease> {
        let (idx, evicted) = self.choose(key, prompt)?;
        // Always leave at least one prompt token to decode: its logits start generation.
        let limit = prompt.len().saturating_sub(1);
        let own = common_prefix(&self.slots[idx].tokens, prompt).min(limit);
        // Cells another sequence borrowed (a copied prefix) have one position for both: moving
        // them would move the other's too, so a run that reaches into them stays put.
        let mine = &self.slots[idx].tokens;
        let lent = self
            .slots
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != idx)
            .map(|(_, s)| common_prefix(&s.tokens, mine))
            .max()
            .unwrap_or(0);
        let shifted = self
            .can_shift
            .then(|| shifted_run(mine, prompt, own, limit))
            .flatten()
            .filter(|&(from, _)| lent <= from);
        let own_total = own + shifted.map_or(0, |(_, len)| len);
        let donor = self
            .slots
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != idx)
            .map(|(_, s)| (s.seq, common_prefix(&s.tokens, prompt).min(limit)))
            .max_by_key(|(_, n)| *n)
            .filter(|(_, n)| *n > own_total);

        self.clock += 1;
        let now = self.clock;
        let slot = &mut self.slots[idx];
        let (op, cached) = match donor {
            Some((from, len)) => {
                slot.tokens.clear();
                slot.tokens.extend_from_slice(&prompt[..len]);
                (KvOp::CopyPrefix { from, len }, len)
            }
            None => match shifted {
                Some((from, len)) => {
                    slot.tokens.truncate(from + len);
                    slot.tokens.drain(own..from);
                    (
                        KvOp::Shift {
                            keep: own,
                            from,
                            len,
                        },
                        own + len,
                    )
                }
                None => {
                    slot.tokens.truncate(own);
                    (KvOp::Truncate { keep: own }, own)
                }
            },
        };
        slot.key = key.map(str::to_owned);
        slot.busy = true;
        slot.last_used = now;
        Some(Lease {
            slot: idx,
            seq: slot.seq,
            op,
            cached,
            evicted,
        })
    }

    /// Slot index for the request plus the evicted session key, if one had to go.
    fn choose(&self, key: Option<&str>, prompt: &[Token]) -> Option<(usize, Option<String>)> {
        if let Some(k) = key {
            if let Some(i) = self.slots.iter().position(|s| s.key.as_deref() == Some(k)) {
                // One conversation, one cache: a second concurrent request of the same session
                // waits rather than forking the session's history.
                return (!self.slots[i].busy).then_some((i, None));
            }
        }
        let idle_unowned = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.busy && s.key.is_none())
            // Among free slots prefer the one that already holds most of this prompt.
            .max_by_key(|(_, s)| {
                (
                    common_prefix(&s.tokens, prompt),
                    std::cmp::Reverse(s.last_used),
                )
            })
            .map(|(i, _)| i);
        let lru_owned = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.busy && s.key.is_some())
            .min_by_key(|(_, s)| s.last_used)
            .map(|(i, _)| i);
        let at_cap = key.is_some() && self.sessions() >= self.max_sessions;
        let pick = if at_cap {
            lru_owned
        } else {
            idle_unowned.or(lru_owned)
        }?;
        Some((pick, self.slots[pick].key.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(r: std::ops::Range<i32>) -> Vec<Token> {
        r.collect()
    }

    #[test]
    fn a_trimmed_history_moves_its_cached_turns_back_instead_of_rereading_them() {
        // Turn 9's cache: system prompt 0..100, turns 1–8 at 100..900, turn 9's reply.
        let mut t = SlotTable::new(2, 1, true);
        let before = toks(0..950);
        let l = t.acquire(Some("a"), &before).unwrap();
        t.push_decoded(l.slot, &before);
        t.release(l.slot);
        // The daemon drops turns 1–4: system prompt, turns 5–8 (cached at 500..950), a new turn.
        let mut after = toks(0..100);
        after.extend(500..950);
        after.extend(2000..2040);
        let l = t.acquire(Some("a"), &after).unwrap();
        assert_eq!(
            l.op,
            KvOp::Shift {
                keep: 100,
                from: 500,
                len: 450
            }
        );
        assert_eq!(l.cached, 550, "only the new turn is read");
        assert_eq!(t.tokens(l.slot), &after[..550]);

        // A model whose cache cannot move tokens re-reads, as before.
        let mut fixed = SlotTable::new(2, 1, false);
        let l = fixed.acquire(Some("a"), &before).unwrap();
        fixed.push_decoded(l.slot, &before);
        fixed.release(l.slot);
        let l = fixed.acquire(Some("a"), &after).unwrap();
        assert_eq!((l.op, l.cached), (KvOp::Truncate { keep: 100 }, 100));
    }

    #[test]
    fn a_run_that_another_sequence_shares_is_not_moved() {
        let mut t = SlotTable::new(2, 2, true);
        let before = toks(0..950);
        let a = t.acquire(Some("a"), &before).unwrap();
        t.push_decoded(a.slot, &before);
        t.release(a.slot);
        // Session b's prompt is the same conversation up to 600: it borrows those cells.
        let mut other = toks(0..600);
        other.extend(3000..3010);
        let b = t.acquire(Some("b"), &other).unwrap();
        assert_eq!(
            b.op,
            KvOp::CopyPrefix {
                from: a.seq,
                len: 600
            }
        );
        t.push_decoded(b.slot, &other[600..]);
        t.release(b.slot);
        let mut after = toks(0..100);
        after.extend(500..950);
        after.extend(2000..2040);
        let l = t.acquire(Some("a"), &after).unwrap();
        assert_eq!((l.op, l.cached), (KvOp::Truncate { keep: 100 }, 100));
    }

    #[test]
    fn only_runs_worth_moving_are_moved_and_one_token_is_left_to_decode() {
        let cached = toks(0..200);
        let mut prompt = toks(0..50);
        prompt.extend(150..170); // 20 tokens: shorter than a run worth moving
        prompt.extend(900..910);
        assert_eq!(shifted_run(&cached, &prompt, 50, prompt.len() - 1), None);
        let mut prompt = toks(0..50);
        prompt.extend(100..200); // everything after the gap, and nothing new
        let limit = prompt.len() - 1;
        assert_eq!(shifted_run(&cached, &prompt, 50, limit), Some((100, 99)));
        assert_eq!(shifted_run(&cached, &prompt, 50, 50), None);
    }

    #[test]
    fn prefix_length() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4]), 2);
        assert_eq!(common_prefix(&[], &[1]), 0);
        assert_eq!(common_prefix(&[1, 2], &[1, 2, 3]), 2);
    }

    #[test]
    fn second_turn_reuses_first_turn() {
        let mut t = SlotTable::new(3, 2, true);
        let turn1 = toks(0..100);
        let l = t.acquire(Some("a"), &turn1).unwrap();
        assert_eq!(l.cached, 0);
        assert_eq!(l.op, KvOp::Truncate { keep: 0 });
        // The engine decodes the prompt and 20 generated tokens.
        t.push_decoded(l.slot, &turn1);
        t.push_decoded(l.slot, &toks(100..120));
        t.release(l.slot);

        // Turn 2: history + reply (re-tokenised identically up to 115) + new user turn.
        let mut turn2 = toks(0..115);
        turn2.extend(500..530);
        let l2 = t.acquire(Some("a"), &turn2).unwrap();
        assert_eq!(l2.slot, l.slot);
        assert_eq!(l2.cached, 115);
        assert_eq!(l2.op, KvOp::Truncate { keep: 115 });
        assert_eq!(t.tokens(l2.slot), &turn2[..115]);
    }

    #[test]
    fn identical_prompt_keeps_one_token_to_decode() {
        let mut t = SlotTable::new(2, 1, true);
        let p = toks(0..10);
        let l = t.acquire(Some("a"), &p).unwrap();
        t.push_decoded(l.slot, &p);
        t.release(l.slot);
        let l = t.acquire(Some("a"), &p).unwrap();
        assert_eq!(l.cached, 9);
        assert_eq!(t.tokens(l.slot).len(), 9);
    }

    #[test]
    fn new_session_borrows_system_prompt_from_another_slot() {
        let mut t = SlotTable::new(3, 2, true);
        let system = toks(0..150);
        let mut p1 = system.clone();
        p1.extend(1000..1010);
        let l1 = t.acquire(Some("a"), &p1).unwrap();
        t.push_decoded(l1.slot, &p1);
        t.release(l1.slot);

        let mut p2 = system.clone();
        p2.extend(2000..2010);
        let l2 = t.acquire(Some("b"), &p2).unwrap();
        assert_ne!(l2.slot, l1.slot);
        assert_eq!(
            l2.op,
            KvOp::CopyPrefix {
                from: l1.seq,
                len: 150
            }
        );
        assert_eq!(l2.cached, 150);
        assert_eq!(t.tokens(l2.slot), &system[..]);
        // The donor is untouched.
        assert_eq!(t.tokens(l1.slot), &p1[..]);
    }

    #[test]
    fn copies_from_busy_slot_too() {
        let mut t = SlotTable::new(3, 2, true);
        let p1 = toks(0..50);
        let l1 = t.acquire(Some("a"), &p1).unwrap();
        t.push_decoded(l1.slot, &p1);
        // still busy
        let l2 = t.acquire(None, &toks(0..60)).unwrap();
        assert_eq!(
            l2.op,
            KvOp::CopyPrefix {
                from: l1.seq,
                len: 50
            }
        );
    }

    #[test]
    fn lru_session_is_evicted_beyond_max() {
        let mut t = SlotTable::new(3, 2, true);
        for k in ["a", "b"] {
            let l = t.acquire(Some(k), &[1, 2, 3]).unwrap();
            t.release(l.slot);
        }
        // touch "a" so "b" is the least recently used
        let la = t.acquire(Some("a"), &[1, 2, 3]).unwrap();
        t.push_decoded(la.slot, &[1, 2, 3]);
        t.release(la.slot);
        let lc = t.acquire(Some("c"), &[7, 8]).unwrap();
        assert_eq!(lc.evicted.as_deref(), Some("b"));
        assert_eq!(t.sessions(), 2);
        t.release(lc.slot);
        // "b" lost its slot; "a" kept it.
        let la2 = t.acquire(Some("a"), &[1, 2, 3, 4]).unwrap();
        assert_eq!(la2.slot, la.slot);
        assert_eq!(la2.cached, 3);
    }

    #[test]
    fn keyless_requests_use_scratch_and_never_exceed_sessions() {
        let mut t = SlotTable::new(3, 2, true);
        let a = t.acquire(Some("a"), &[1]).unwrap();
        let b = t.acquire(Some("b"), &[1]).unwrap();
        let s = t.acquire(None, &[1]).unwrap();
        assert!(s.evicted.is_none());
        // All three busy: a fourth request waits.
        assert!(t.acquire(None, &[1]).is_none());
        t.release(a.slot);
        // A keyless request may now take a's slot (evicting it), as llama-server would.
        let s2 = t.acquire(None, &[1]).unwrap();
        assert_eq!(s2.slot, a.slot);
        assert_eq!(s2.evicted.as_deref(), Some("a"));
        t.release(b.slot);
        t.release(s.slot);
        t.release(s2.slot);
        assert_eq!(t.sessions(), 1);
    }

    #[test]
    fn same_session_concurrent_request_waits() {
        let mut t = SlotTable::new(3, 2, true);
        let a = t.acquire(Some("a"), &[1, 2]).unwrap();
        assert!(t.acquire(Some("a"), &[1, 2, 3]).is_none());
        t.release(a.slot);
        assert!(t.acquire(Some("a"), &[1, 2, 3]).is_some());
    }

    #[test]
    fn new_session_at_cap_waits_when_all_sessions_busy() {
        let mut t = SlotTable::new(3, 2, true);
        let _a = t.acquire(Some("a"), &[1]).unwrap();
        let _b = t.acquire(Some("b"), &[1]).unwrap();
        // The scratch slot is free, but taking it would make three sessions.
        assert!(t.acquire(Some("c"), &[1]).is_none());
        assert!(t.acquire(None, &[1]).is_some());
    }

    #[test]
    fn keyless_prefers_free_slot_with_matching_prefix() {
        let mut t = SlotTable::new(3, 1, true);
        let x = t.acquire(None, &[9, 9, 9]).unwrap();
        t.push_decoded(x.slot, &[9, 9, 9]);
        t.release(x.slot);
        let y = t.acquire(None, &[5, 5]).unwrap();
        t.push_decoded(y.slot, &[5, 5]);
        t.release(y.slot);
        let z = t.acquire(None, &[9, 9, 9, 1]).unwrap();
        assert_eq!(z.slot, x.slot);
        assert_eq!(z.op, KvOp::Truncate { keep: 3 });
    }
}
