//! One scheduler for the cores. Every heavy inference call of every session — a streaming
//! recognition pass, a TTS synthesis, the prompt processing of an LLM request — waits here for
//! a slot, highest priority first, so that concurrent work never oversubscribes the cores
//! (whisper.cpp's and ONNX Runtime's thread pools spin at barriers: two 2-thread jobs on two
//! cores run far slower than one after the other) and the audio a user is about to hear never
//! waits behind a partial transcript of another session. Slots are cores ÷ threads per job.
//!
//! Work that may be dropped (partial passes, prefills of words still being spoken) is shed
//! when it has waited past its deadline; everything else waits its turn. Callers count the
//! waits per priority and the shed jobs (`StageCtx::infer`: `cpu_wait_<priority>` and
//! `cpu_jobs_shed` in `/metrics`, and each turn's wait in its timings).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What a job is for, lowest first: a waiting job of a higher priority is served first (a job
/// that has waited long gains priority, see [`AGING_STEP`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// A recognition pass while the user speaks, a prefill of words still being spoken.
    Partial,
    /// A clause whose audio is not needed yet (the reply has seconds of audio queued).
    LaterClause,
    /// The pass that becomes the turn's transcript (at a pause or the end of speech).
    Transcript,
    /// What a waiting user needs first: the LLM's prompt and the first clause's voice.
    FirstClause,
    /// The next clause of a reply that is playing and will run out soon.
    NextAudio,
}

impl Priority {
    pub const ALL: [Priority; 5] = [
        Priority::Partial,
        Priority::LaterClause,
        Priority::Transcript,
        Priority::FirstClause,
        Priority::NextAudio,
    ];

    /// The metric series of this priority's queue wait.
    pub fn wait_series(self) -> &'static str {
        match self {
            Priority::Partial => "cpu_wait_partial",
            Priority::LaterClause => "cpu_wait_later_clause",
            Priority::Transcript => "cpu_wait_transcript",
            Priority::FirstClause => "cpu_wait_first_clause",
            Priority::NextAudio => "cpu_wait_next_audio",
        }
    }

    /// How long a job of this priority may wait before it is shed; `None`: it is needed.
    pub fn deadline(self) -> Option<Duration> {
        match self {
            Priority::Partial => Some(PARTIAL_DEADLINE),
            _ => None,
        }
    }
}

/// A partial pass or a prefill that waited this long is stale: the next one covers more.
pub const PARTIAL_DEADLINE: Duration = Duration::from_millis(1_000);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchedError {
    #[error("cancelled while waiting for the CPU")]
    Cancelled,
    #[error("shed: waited {0:?} for the CPU, past its deadline")]
    Shed(Duration),
    #[error("the inference task panicked or was aborted: {0}")]
    Task(String),
}

/// The scheduler; cheap to clone (all clones share the slots).
#[derive(Clone)]
pub struct CpuScheduler {
    inner: Arc<Inner>,
}

struct Inner {
    slots: usize,
    state: Mutex<State>,
    seq: AtomicU64,
}

struct State {
    free: usize,
    queue: Vec<Waiter>,
    /// Share of recent time with every slot taken (decaying average, see [`LOAD_WINDOW`]).
    busy: Decaying,
    /// Recent queue wait of work a user waits for (transcripts, first clauses, next audio).
    urgent_wait_ms: Decaying,
}

/// The time over which [`Load`] averages: long enough to ride out one reply, short enough
/// that a box that has just calmed down admits again within seconds.
pub const LOAD_WINDOW: Duration = Duration::from_secs(10);

/// What the scheduler has seen lately, for admission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Share of the last ~[`LOAD_WINDOW`] with every slot taken (0..=1).
    pub busy: f64,
    /// Typical recent queue wait of transcripts, first clauses and next audio.
    pub urgent_wait: Duration,
}

/// The scheduler at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub slots: usize,
    pub free: usize,
    pub waiting: usize,
    /// How long the longest-waiting job has waited (zero if none waits).
    pub oldest_wait: Duration,
}

/// An exponentially decaying average over time: a level held for `LOAD_WINDOW` weighs ~63 %.
#[derive(Debug, Clone, Copy)]
struct Decaying {
    value: f64,
    at: Instant,
}

impl Decaying {
    fn new() -> Self {
        Self {
            value: 0.0,
            at: Instant::now(),
        }
    }

    /// The average now, had the level been `level` since the last update.
    fn held(&self, level: f64) -> f64 {
        let dt = self.at.elapsed().as_secs_f64();
        let keep = (-dt / LOAD_WINDOW.as_secs_f64()).exp();
        level + (self.value - level) * keep
    }

    fn hold(&mut self, level: f64) {
        self.value = self.held(level);
        self.at = Instant::now();
    }

    /// Mixes in one sample (a fifth of its weight) after decaying toward zero.
    fn sample(&mut self, x: f64) {
        let decayed = self.held(0.0);
        self.value = decayed + 0.2 * (x - decayed);
        self.at = Instant::now();
    }
}

/// A job waiting for a slot; the slot itself is handed over through `wake`, so a waiter that
/// is dropped after the handover (a prefill dropped when its turn arrives) releases it with
/// the channel instead of losing a slot of the cores for good.
struct Waiter {
    priority: Priority,
    seq: u64,
    since: Instant,
    wake: oneshot::Sender<Slot>,
}

/// Every this long a job waits, it counts as one priority higher: strict priority would let a
/// steady stream of voice work starve a transcript on a loaded box (seen: 12 s for a
/// backchannel's one word with three conversations on two cores).
pub const AGING_STEP: Duration = Duration::from_millis(1_000);

impl Waiter {
    /// Priority level plus the levels it has aged by, then first come first.
    fn rank(&self, now: Instant) -> (f64, std::cmp::Reverse<u64>) {
        let aged = now.duration_since(self.since).as_secs_f64() / AGING_STEP.as_secs_f64();
        (
            self.priority as u8 as f64 + aged,
            std::cmp::Reverse(self.seq),
        )
    }
}

/// A slot of the cores, held while the job runs; dropping it hands it to the next waiter.
#[must_use = "the slot is released when dropped"]
pub struct Slot {
    /// `None` only for a slot whose handover failed (its waiter was gone): nothing to release.
    inner: Option<Arc<Inner>>,
    /// How long the job waited for it.
    pub waited: Duration,
}

impl Slot {
    /// Runs blocking inference `job` on the blocking pool, holding this slot until it returns.
    pub async fn run<T: Send + 'static>(
        self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, SchedError> {
        tokio::task::spawn_blocking(move || {
            let out = job();
            drop(self);
            out
        })
        .await
        .map_err(|e| SchedError::Task(e.to_string()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            Inner::release(&inner);
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves the counts consistent (no await inside).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands the slot to the best waiter that still waits, or frees it.
    fn release(this: &Arc<Inner>) {
        let mut state = this.lock();
        let now = Instant::now();
        while let Some(best) = (0..state.queue.len()).max_by(|&a, &b| {
            let (ra, rb) = (state.queue[a].rank(now), state.queue[b].rank(now));
            ra.partial_cmp(&rb).unwrap_or(std::cmp::Ordering::Equal)
        }) {
            let waiter = state.queue.swap_remove(best);
            let slot = Slot {
                inner: Some(Arc::clone(this)),
                waited: now.duration_since(waiter.since),
            };
            match waiter.wake.send(slot) {
                Ok(()) => return,
                // The waiter is gone: the slot comes back unreleased (released here, under
                // the lock, it would deadlock) and goes to the next one.
                Err(mut back) => back.inner = None,
            }
        }
        if state.free == 0 {
            state.busy.hold(1.0);
        }
        state.free += 1;
    }
}

impl CpuScheduler {
    /// A scheduler of `slots` concurrent jobs (at least one).
    pub fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        Self {
            inner: Arc::new(Inner {
                slots,
                state: Mutex::new(State {
                    free: slots,
                    queue: Vec::new(),
                    busy: Decaying::new(),
                    urgent_wait_ms: Decaying::new(),
                }),
                seq: AtomicU64::new(0),
            }),
        }
    }

    /// As many slots as jobs of `threads_per_job` threads fit on this machine's cores.
    pub fn for_cores(threads_per_job: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cores / threads_per_job.max(1))
    }

    pub fn slots(&self) -> usize {
        self.inner.slots
    }

    /// Jobs waiting now.
    pub fn queued(&self) -> usize {
        self.inner.lock().queue.len()
    }

    /// The slots and the queue now, for `/metrics`: a slot never handed back, or a job that
    /// waits for ever, shows here first.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.inner.lock();
        let now = Instant::now();
        Snapshot {
            slots: self.inner.slots,
            free: state.free,
            waiting: state.queue.len(),
            oldest_wait: state
                .queue
                .iter()
                .map(|w| now.duration_since(w.since))
                .max()
                .unwrap_or_default(),
        }
    }

    /// How loaded the cores have been lately.
    pub fn load(&self) -> Load {
        let state = self.inner.lock();
        let busy_now = if state.free == 0 { 1.0 } else { 0.0 };
        Load {
            busy: state.busy.held(busy_now).clamp(0.0, 1.0),
            urgent_wait: Duration::from_secs_f64(state.urgent_wait_ms.held(0.0).max(0.0) / 1e3),
        }
    }

    /// Waits for a slot: at once if one is free, else after every waiting job of a higher
    /// priority (and earlier ones of the same). Gives up when `cancel` fires, or, for work
    /// that may be dropped, at its deadline.
    pub async fn acquire(
        &self,
        priority: Priority,
        cancel: &CancellationToken,
    ) -> Result<Slot, SchedError> {
        let started = Instant::now();
        let mut woken = {
            let mut state = self.inner.lock();
            if state.free > 0 {
                state.free -= 1;
                if state.free == 0 {
                    state.busy.hold(0.0);
                }
                if priority >= Priority::Transcript {
                    state.urgent_wait_ms.sample(0.0);
                }
                return Ok(Slot {
                    inner: Some(Arc::clone(&self.inner)),
                    waited: started.elapsed(),
                });
            }
            let (wake, woken) = oneshot::channel();
            let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
            state.queue.push(Waiter {
                priority,
                seq,
                since: started,
                wake,
            });
            woken
        };
        let deadline = async {
            match priority.deadline() {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(SchedError::Cancelled),
            r = &mut woken => r.map_err(|_| SchedError::Task("the scheduler was dropped".into())),
            _ = deadline => Err(SchedError::Shed(started.elapsed())),
        };
        // A slot handed over just as the wait ended is ours all the same: a shed job that got
        // it runs; a cancelled one drops it (which hands it on), and so does `woken` if the
        // slot arrives after this.
        let slot = match outcome {
            Err(SchedError::Shed(waited)) => woken.try_recv().map_err(|_| SchedError::Shed(waited)),
            other => other,
        }?;
        if priority >= Priority::Transcript {
            let waited_ms = slot.waited.as_secs_f64() * 1e3;
            self.inner.lock().urgent_wait_ms.sample(waited_ms);
        }
        Ok(slot)
    }

    /// Runs blocking inference `job` on the blocking pool once a slot is free; the slot is
    /// held until the job returns (an abort must come from inside the job, e.g. its token).
    /// Returns the job's value and how long it waited.
    pub async fn run<T: Send + 'static>(
        &self,
        priority: Priority,
        cancel: &CancellationToken,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<(T, Duration), SchedError> {
        let slot = self.acquire(priority, cancel).await?;
        let waited = slot.waited;
        slot.run(job).await.map(|v| (v, waited))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(slots: usize) -> CpuScheduler {
        CpuScheduler::new(slots)
    }

    /// A slot taken at once (the scheduler must have one free).
    async fn hold(s: &CpuScheduler, p: Priority) -> Slot {
        s.acquire(p, &CancellationToken::new()).await.unwrap()
    }

    /// A task that waits for a slot at `p` and hands back how long it waited.
    fn waiter(
        s: &CpuScheduler,
        p: Priority,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<Result<Duration, SchedError>> {
        let s = s.clone();
        tokio::spawn(async move { s.acquire(p, &cancel).await.map(|slot| slot.waited) })
    }

    /// Queues one waiter per priority behind a held slot; returns the order they ran in.
    async fn order_of(priorities: &[Priority]) -> Vec<Priority> {
        let s = sched(1);
        let held = s
            .acquire(Priority::Partial, &CancellationToken::new())
            .await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for &p in priorities {
            let (s, order) = (s.clone(), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let slot = s.acquire(p, &CancellationToken::new()).await;
                order.lock().unwrap().push(p);
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(slot);
            }));
            // Each waiter queues before the next one is spawned.
            tokio::task::yield_now().await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        order
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_run_by_priority_then_arrival() {
        use Priority::*;
        let order = order_of(&[LaterClause, Transcript, NextAudio, FirstClause]).await;
        assert_eq!(order, [NextAudio, FirstClause, Transcript, LaterClause]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_wait_outranks_fresher_urgent_work() {
        let s = sched(1);
        let held = hold(&s, Priority::Partial).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let queue = |p: Priority| {
            let (s, order) = (s.clone(), Arc::clone(&order));
            tokio::spawn(async move {
                let slot = s.acquire(p, &CancellationToken::new()).await;
                order.lock().unwrap().push(p);
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(slot);
            })
        };
        let transcript = queue(Priority::Transcript);
        tokio::time::sleep(AGING_STEP * 5 / 2).await;
        // Fresh voice work arrives after the transcript has waited 2.5 levels' worth.
        let audio = queue(Priority::NextAudio);
        tokio::task::yield_now().await;
        drop(held);
        transcript.await.unwrap();
        audio.await.unwrap();
        let order = order.lock().unwrap().clone();
        assert_eq!(order, [Priority::Transcript, Priority::NextAudio]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_is_shed_at_its_deadline() {
        let s = sched(1);
        let held = hold(&s, Priority::Transcript).await;
        let r = s
            .acquire(Priority::Partial, &CancellationToken::new())
            .await;
        assert!(matches!(r, Err(SchedError::Shed(d)) if d >= PARTIAL_DEADLINE));
        // The shed waiter left no claim behind: the slot comes back free.
        drop(held);
        assert_eq!(s.inner.lock().free, 1);
        // A needed job waits as long as it takes.
        let held = hold(&s, Priority::Transcript).await;
        let waiting = waiter(&s, Priority::FirstClause, CancellationToken::new());
        tokio::time::sleep(10 * PARTIAL_DEADLINE).await;
        drop(held);
        assert_eq!(waiting.await.unwrap(), Ok(10 * PARTIAL_DEADLINE));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_gives_its_place_away() {
        let s = sched(1);
        let held = hold(&s, Priority::Transcript).await;
        let cancel = CancellationToken::new();
        let gone = waiter(&s, Priority::NextAudio, cancel.clone());
        tokio::task::yield_now().await;
        cancel.cancel();
        assert_eq!(gone.await.unwrap(), Err(SchedError::Cancelled));
        let next = waiter(&s, Priority::LaterClause, CancellationToken::new());
        tokio::task::yield_now().await;
        drop(held);
        assert!(next.await.unwrap().is_ok());
        assert_eq!(s.inner.lock().free, 1);
    }

    /// The lost-slot defect: a prefill waiting for the CPU was handed the slot and dropped
    /// (its turn arrived) before it ran; the slot went with it and, with one slot, no pass,
    /// voice or prompt of any session ran again.
    #[tokio::test(start_paused = true)]
    async fn a_waiter_dropped_after_the_handover_hands_the_slot_on() {
        let s = sched(1);
        let held = hold(&s, Priority::Transcript).await;
        let cancel = CancellationToken::new();
        let mut prefill = Box::pin(s.acquire(Priority::Partial, &cancel));
        assert!(futures::poll!(&mut prefill).is_pending());
        drop(held); // handed to the prefill…
        drop(prefill); // …which is dropped before it runs
        assert_eq!(s.inner.lock().free, 1, "the slot came back");
        let next = waiter(&s, Priority::FirstClause, CancellationToken::new());
        assert_eq!(next.await.unwrap(), Ok(Duration::ZERO));
        // The same with a later waiter queued: the slot goes to it.
        let held = hold(&s, Priority::Transcript).await;
        let mut first = Box::pin(s.acquire(Priority::NextAudio, &cancel));
        assert!(futures::poll!(&mut first).is_pending());
        let second = waiter(&s, Priority::Partial, CancellationToken::new());
        tokio::task::yield_now().await;
        drop(held);
        drop(first);
        assert!(second.await.unwrap().is_ok());
        assert_eq!(s.inner.lock().free, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_snapshot_shows_the_slots_and_the_oldest_wait() {
        let s = sched(2);
        assert_eq!(
            s.snapshot(),
            Snapshot {
                slots: 2,
                free: 2,
                waiting: 0,
                oldest_wait: Duration::ZERO
            }
        );
        let (a, b) = (
            hold(&s, Priority::Partial).await,
            hold(&s, Priority::Partial).await,
        );
        let first = waiter(&s, Priority::Transcript, CancellationToken::new());
        tokio::time::sleep(Duration::from_millis(700)).await;
        let second = waiter(&s, Priority::NextAudio, CancellationToken::new());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let snap = s.snapshot();
        assert_eq!((snap.free, snap.waiting), (0, 2));
        assert_eq!(snap.oldest_wait, Duration::from_millis(1_000));
        drop((a, b));
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(s.snapshot().free, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_handed_a_slot_passes_it_on() {
        let s = sched(1);
        let held = hold(&s, Priority::Transcript).await;
        let cancel = CancellationToken::new();
        let mut gone = Box::pin(s.acquire(Priority::NextAudio, &cancel));
        assert!(futures::poll!(&mut gone).is_pending());
        drop(held);
        cancel.cancel(); // cancelled with the slot already in its channel
        assert_eq!(gone.await.err(), Some(SchedError::Cancelled));
        assert_eq!(s.inner.lock().free, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_knows_how_long_it_was_waited_for() {
        let s = sched(1);
        let held = hold(&s, Priority::Partial).await;
        assert_eq!(held.waited, Duration::ZERO);
        let first = waiter(&s, Priority::FirstClause, CancellationToken::new());
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(held);
        assert_eq!(first.await.unwrap(), Ok(Duration::from_millis(300)));
    }

    #[tokio::test(start_paused = true)]
    async fn load_rises_while_saturated_and_decays_after() {
        let s = sched(1);
        assert_eq!(s.load().busy, 0.0);
        let held = hold(&s, Priority::Transcript).await;
        tokio::time::sleep(LOAD_WINDOW).await;
        let busy = s.load().busy;
        assert!((0.6..0.65).contains(&busy), "{busy}");
        // A first clause that waited 2 s raises the urgent wait.
        let first = waiter(&s, Priority::FirstClause, CancellationToken::new());
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(held);
        first.await.unwrap().unwrap();
        let load = s.load();
        assert!(load.urgent_wait >= Duration::from_millis(350), "{load:?}");
        assert!(load.busy > busy);
        // Idle for a while: both fall back.
        tokio::time::sleep(4 * LOAD_WINDOW).await;
        let idle = s.load();
        assert!(
            idle.busy < 0.05 && idle.urgent_wait < Duration::from_millis(20),
            "{idle:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn run_holds_the_slot_for_the_blocking_job() {
        let s = sched(1);
        let out = s
            .run(Priority::FirstClause, &CancellationToken::new(), || 6 * 7)
            .await;
        assert_eq!(out, Ok((42, Duration::ZERO)));
        assert_eq!(s.inner.lock().free, 1);
        let panicked = s
            .run(Priority::Partial, &CancellationToken::new(), || -> u8 {
                panic!("boom")
            })
            .await;
        assert!(matches!(panicked, Err(SchedError::Task(_))));
        assert_eq!(
            s.inner.lock().free,
            1,
            "a panicking job still frees its slot"
        );
    }
}
