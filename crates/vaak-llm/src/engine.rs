//! The inference thread: one OS thread owns the llama context and runs every generation.
//!
//! llama.cpp decoding is blocking and CPU-bound, so it never runs on the tokio runtime. The HTTP
//! side sends [`GenRequest`]s through a bounded channel (a full channel is a 429) and receives
//! [`Event`]s back through a bounded per-request channel.
//!
//! All active requests advance together: each step builds one llama batch holding the next
//! token of every generating request (so every stream gets a token per step — round-robin at
//! token granularity, but in a single forward pass) plus prompt chunks of requests still
//! prefilling. While others are generating, a prefill chunk is capped so a long new prompt
//! cannot freeze the running streams. The order in which prefill chunks get the step's token
//! budget rotates every step.
//!
//! One context holds `max_slots + 1` sequences in a unified KV cache; [`crate::slots`] decides
//! which sequence a request uses and which cached prefix it reuses. A request's sequence holds
//! exactly the tokens that were decoded, so a cancelled generation leaves a consistent slot.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::vocab::LlamaVocab;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio_util::sync::CancellationToken;

use crate::api::{SamplingParams, Timings};
use crate::slots::{KvOp, Lease, SeqId, SlotTable, Token};
use crate::text::{StopMatcher, Utf8Stream};

/// Tokens per llama batch (and per physical micro-batch).
const BATCH: u32 = 512;
/// Largest prompt chunk per step while other requests are generating.
const SHARED_PREFILL_CHUNK: usize = 64;
/// Largest prompt chunk per step otherwise: big enough for full-speed prefill, small enough
/// that a cancellation or a newly arrived request waits at most one such chunk.
const SOLO_PREFILL_CHUNK: usize = 256;
/// Capacity of each request's event channel.
pub const EVENT_CAPACITY: usize = 64;
/// A request is paused (not scheduled) while its reader leaves fewer free event slots than
/// this; one step sends at most three events (delta, flushed tail, done).
const MIN_EVENT_ROOM: usize = 4;
/// llama.cpp's "pick a random seed".
const RANDOM_SEED: u32 = 0xFFFF_FFFF;

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// CPU threads for decoding.
    pub threads: i32,
    /// Context window of one session (prompt + reply).
    pub ctx_per_slot: u32,
    /// Session slots kept in the KV cache (one more serves key-less requests).
    pub max_slots: usize,
    /// Requests that may wait in the channel before new ones get a 429.
    pub queue_depth: usize,
}

/// One generation job.
#[derive(Debug)]
pub struct GenRequest {
    /// Short id for logs.
    pub id: String,
    pub prompt: Vec<Token>,
    pub params: SamplingParams,
    pub session: Option<String>,
    /// Only put the prompt into the session's KV cache (no token is sampled): a head start for
    /// the turn the user is still speaking. Ends with a `Done` of zero completion tokens.
    pub prefill_only: bool,
    /// When the HTTP request arrived.
    pub received: Instant,
    pub events: mpsc::Sender<Event>,
}

/// What the engine reports back to the HTTP side.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Text to append (whole characters, never part of a stop string).
    Delta(String),
    /// Generation ended normally.
    Done(Summary),
    /// Generation failed.
    Failed(String),
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
}

impl FinishReason {
    /// OpenAI's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Final accounting of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub cached_tokens: usize,
    pub timings: Timings,
}

/// Engine failures.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("creating the llama context failed: {0}")]
    Context(String),
    #[error("could not start the inference thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("the inference thread exited during start-up")]
    StartupLost,
}

/// Why a request could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("queue full")]
    Full,
    #[error("engine stopped")]
    Closed,
}

enum Msg {
    Generate(GenRequest),
    Shutdown,
}

/// The HTTP side's handle on the inference thread.
#[derive(Debug, Clone)]
pub struct EngineSender {
    tx: mpsc::Sender<Msg>,
    alive: Arc<AtomicBool>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Generate(r) => write!(f, "Generate({})", r.id),
            Msg::Shutdown => write!(f, "Shutdown"),
        }
    }
}

impl EngineSender {
    /// Queues a request without waiting.
    pub fn submit(&self, req: GenRequest) -> Result<(), SubmitError> {
        match self.tx.try_send(Msg::Generate(req)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(SubmitError::Full),
            Err(TrySendError::Closed(_)) => Err(SubmitError::Closed),
        }
    }

    /// False once the inference thread has exited (or panicked).
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }
}

/// Owner of the inference thread.
pub struct Engine {
    sender: EngineSender,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Starts the thread and waits until its context exists. `exited` is cancelled when the
    /// thread ends for any reason, including a panic.
    pub fn start(
        backend: Arc<LlamaBackend>,
        model: Arc<LlamaModel>,
        cfg: EngineConfig,
        exited: CancellationToken,
    ) -> Result<Self, EngineError> {
        let (tx, rx) = mpsc::channel(cfg.queue_depth.max(1));
        let alive = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
        let guard = ExitGuard {
            alive: alive.clone(),
            exited,
        };
        let stop_flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("vaak-llm-engine".into())
            .spawn(move || {
                let _guard = guard;
                thread_main(&backend, &model, &cfg, rx, ready_tx, &stop_flag);
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                sender: EngineSender { tx, alive },
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(EngineError::Context(e))
            }
            Err(_) => {
                let _ = thread.join();
                Err(EngineError::StartupLost)
            }
        }
    }

    /// A handle for submitting requests.
    pub fn sender(&self) -> EngineSender {
        self.sender.clone()
    }

    /// Stops the thread: running generations end without finishing (their streams close).
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the thread if it is idle in `blocking_recv`; if the queue is full the thread is
        // busy and sees the flag at its next step anyway.
        let _ = self.sender.tx.try_send(Msg::Shutdown);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("inference thread panicked");
            }
        }
    }
}

/// Marks the engine dead when the thread ends, however it ends.
struct ExitGuard {
    alive: Arc<AtomicBool>,
    exited: CancellationToken,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Release);
        self.exited.cancel();
    }
}

fn thread_main(
    backend: &LlamaBackend,
    model: &LlamaModel,
    cfg: &EngineConfig,
    rx: mpsc::Receiver<Msg>,
    ready: std::sync::mpsc::SyncSender<Result<(), String>>,
    stop: &AtomicBool,
) {
    let n_seqs = cfg.max_slots + 1;
    let n_ctx = cfg
        .ctx_per_slot
        .saturating_mul(u32::try_from(n_seqs).unwrap_or(u32::MAX));
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(BATCH)
        .with_n_ubatch(BATCH)
        .with_n_seq_max(u32::try_from(n_seqs).unwrap_or(u32::MAX))
        // One cell pool for all sequences: a shared prefix is stored once and copying it to
        // another sequence only tags cells.
        .with_kv_unified(true)
        .with_n_threads(cfg.threads)
        .with_n_threads_batch(cfg.threads);
    let mut ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let mut batch = LlamaBatch::new(BATCH as usize, 1);
    warm_up(&mut ctx, &mut batch, model);
    tracing::info!(
        n_ctx = ctx.n_ctx(),
        n_seqs,
        ctx_per_slot = cfg.ctx_per_slot,
        threads = cfg.threads,
        "llama context ready"
    );
    if ready.send(Ok(())).is_err() {
        return;
    }
    let mut w = Worker {
        n_vocab: model.n_vocab(),
        vocab: model.vocab(),
        ctx,
        batch,
        // Recurrent memories (Mamba-like) keep no positions to move.
        slots: SlotTable::new(
            n_seqs,
            cfg.max_slots,
            !(model.is_recurrent() || model.is_hybrid()),
        ),
        active: Vec::new(),
        waiting: VecDeque::new(),
        ctx_per_slot: cfg.ctx_per_slot as usize,
        rr: 0,
    };
    w.run(rx, stop);
}

/// Runs one tiny decode so that the first real request does not pay for thread start-up and
/// first-touch page faults of the weights (llama.cpp's server does the same).
fn warm_up(ctx: &mut LlamaContext, batch: &mut LlamaBatch, model: &LlamaModel) {
    let started = Instant::now();
    let vocab = model.vocab();
    // Any valid id will do; BOS may be "none" (-1) for some vocabularies.
    let tok = Some(vocab.bos())
        .filter(|t| t.0 >= 0)
        .unwrap_or(LlamaToken(0));
    let tokens = [tok, tok];
    batch.clear();
    let mut ok = true;
    for (pos, tok) in (0..).zip(tokens) {
        ok &= batch.add(tok, pos, &[0], pos == 1).is_ok();
    }
    if ok {
        if let Err(e) = ctx.decode(batch) {
            tracing::warn!(error = %e, "warm-up decode failed");
        }
    }
    let _ = ctx.kv_cache_seq_rm(0, None, None);
    batch.clear();
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "warm-up decode done"
    );
}

/// A request that holds a slot.
struct Active {
    req: GenRequest,
    lease: Lease,
    sampler: LlamaSampler,
    utf8: Utf8Stream,
    stop: StopMatcher,
    /// Prompt tokens already in the slot's sequence.
    prompt_done: usize,
    /// Sampled but not yet decoded (the next input token).
    pending: Option<Token>,
    completion_tokens: usize,
    max_tokens: usize,
    admitted: Instant,
    prefill_done: Option<Instant>,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    /// Tokens this request put into the current batch, and where its logits are.
    in_batch: Vec<Token>,
    logits_at: Option<i32>,
    outcome: Option<Outcome>,
}

enum Outcome {
    Finished(FinishReason),
    Cancelled,
    Failed(String),
}

struct Worker<'m> {
    n_vocab: i32,
    vocab: LlamaVocab<'m>,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    slots: SlotTable,
    active: Vec<Active>,
    waiting: VecDeque<GenRequest>,
    ctx_per_slot: usize,
    rr: usize,
}

impl Worker<'_> {
    fn run(&mut self, mut rx: mpsc::Receiver<Msg>, stop: &AtomicBool) {
        let mut intake_open = true;
        loop {
            if stop.load(Ordering::Acquire) {
                break;
            }
            if self.active.is_empty() && self.waiting.is_empty() {
                if !intake_open {
                    break;
                }
                match rx.blocking_recv() {
                    Some(Msg::Generate(r)) => self.waiting.push_back(r),
                    Some(Msg::Shutdown) | None => break,
                }
            }
            // Pull more only while the internal wait list is short, so that the channel fills
            // up and the HTTP side can answer 429 instead of queueing without bound.
            while intake_open && self.waiting.len() < self.slots.len() {
                match rx.try_recv() {
                    Ok(Msg::Generate(r)) => self.waiting.push_back(r),
                    Ok(Msg::Shutdown) => {
                        intake_open = false;
                        stop.store(true, Ordering::Release);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => intake_open = false,
                }
            }
            if stop.load(Ordering::Acquire) {
                break;
            }
            self.admit();
            if self.active.is_empty() {
                if !self.waiting.is_empty() {
                    // Cannot happen (a waiting request only waits for a busy slot, and a busy
                    // slot means an active request), but never spin.
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                continue;
            }
            self.step();
        }
        // Dropping the requests closes their event channels: streams end without [DONE].
        let dropped = self.active.len() + self.waiting.len();
        if dropped > 0 {
            tracing::info!(dropped, "inference thread stopping; abandoning requests");
        }
    }

    /// Gives waiting requests a slot, in arrival order where possible.
    fn admit(&mut self) {
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].events.is_closed() {
                if let Some(r) = self.waiting.remove(i) {
                    tracing::info!(id = %r.id, "client left while queued");
                }
                continue;
            }
            let lease = {
                let r = &self.waiting[i];
                self.slots.acquire(r.session.as_deref(), &r.prompt)
            };
            let Some(lease) = lease else {
                i += 1;
                continue;
            };
            if let Some(req) = self.waiting.remove(i) {
                self.start(req, lease);
            }
        }
    }

    /// Applies the lease's KV operation and makes the request active.
    fn start(&mut self, req: GenRequest, mut lease: Lease) {
        let seq = lease.seq;
        let applied = match lease.op {
            KvOp::Truncate { keep } => {
                let keep = u32::try_from(keep).unwrap_or(u32::MAX);
                self.ctx.kv_cache_seq_rm(seq, Some(keep), None).is_ok()
            }
            KvOp::CopyPrefix { from, len } => {
                let len = u32::try_from(len).unwrap_or(u32::MAX);
                self.ctx.kv_cache_seq_rm(seq, None, None).is_ok()
                    && self
                        .ctx
                        .kv_cache_seq_cp(from, seq, Some(0), Some(len))
                        .is_ok()
            }
            KvOp::Shift { keep, from, len } => {
                let pos = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
                let gap = i32::try_from(from - keep).unwrap_or(i32::MAX);
                tracing::debug!(seq, keep, from, len, "moving a cached run back");
                self.ctx
                    .kv_cache_seq_rm(seq, Some(pos(from + len)), None)
                    .is_ok()
                    && self
                        .ctx
                        .kv_cache_seq_rm(seq, Some(pos(keep)), Some(pos(from)))
                        .is_ok()
                    && self
                        .ctx
                        .kv_cache_seq_add(seq, Some(pos(from)), Some(pos(from + len)), -gap)
                        .is_ok()
            }
        };
        if !applied {
            // Some memory types cannot drop a partial sequence: start this slot from scratch.
            tracing::warn!(seq, "partial KV removal failed; clearing the sequence");
            let _ = self.ctx.kv_cache_seq_rm(seq, None, None);
            self.slots.reset(lease.slot);
            lease.cached = 0;
        }
        if let Some(evicted) = &lease.evicted {
            tracing::debug!(session = %evicted, seq, "evicted session cache");
        }
        let prompt_len = req.prompt.len();
        let room = self.ctx_per_slot.saturating_sub(prompt_len);
        let max_tokens = (req.params.max_tokens as usize).min(room);
        let sampler = make_sampler(&req.params, self.n_vocab);
        let stop = StopMatcher::new(req.params.stop.clone());
        let mut a = Active {
            sampler,
            utf8: Utf8Stream::default(),
            stop,
            prompt_done: lease.cached,
            pending: None,
            completion_tokens: 0,
            max_tokens,
            admitted: Instant::now(),
            prefill_done: None,
            first_token: None,
            last_token: None,
            in_batch: Vec::new(),
            logits_at: None,
            outcome: None,
            lease,
            req,
        };
        if (max_tokens == 0 && !a.req.prefill_only) || prompt_len == 0 {
            a.outcome = Some(Outcome::Failed(format!(
                "prompt of {prompt_len} tokens leaves no room in a {}-token context",
                self.ctx_per_slot
            )));
        }
        self.active.push(a);
    }

    /// One forward pass over every schedulable request, then sampling and event delivery.
    fn step(&mut self) {
        let Worker {
            vocab,
            ctx,
            batch,
            slots,
            active,
            ctx_per_slot,
            rr,
            ..
        } = self;
        batch.clear();
        let budget = BATCH as usize;
        let mut any_generating = false;

        // Generating requests first: one token each.
        for a in active.iter_mut() {
            a.in_batch.clear();
            a.logits_at = None;
            if a.outcome.is_some() {
                continue;
            }
            if a.req.events.is_closed() {
                a.outcome = Some(Outcome::Cancelled);
                continue;
            }
            if a.req.events.capacity() < MIN_EVENT_ROOM {
                continue; // slow reader: hold this one back, keep the others flowing
            }
            if let Some(tok) = a.pending {
                let pos = slots.tokens(a.lease.slot).len();
                if add(batch, tok, pos, a.lease.seq, true) {
                    a.in_batch.push(tok);
                    a.logits_at = Some(batch.n_tokens() - 1);
                    any_generating = true;
                }
            }
        }

        // Then prompt chunks, starting at a rotating position.
        let chunk_cap = if any_generating {
            SHARED_PREFILL_CHUNK
        } else {
            SOLO_PREFILL_CHUNK
        };
        let n = active.len();
        for k in 0..n {
            let a = &mut active[(*rr + k) % n];
            if a.outcome.is_some() || a.pending.is_some() || !a.in_batch.is_empty() {
                continue;
            }
            if a.req.events.capacity() < MIN_EVENT_ROOM {
                continue;
            }
            let used = usize::try_from(batch.n_tokens()).unwrap_or(budget);
            let room = budget.saturating_sub(used);
            let left = a.req.prompt.len().saturating_sub(a.prompt_done);
            if left == 0 {
                // Only reachable if a batch insert failed on the prompt's last token.
                a.outcome = Some(Outcome::Failed("prompt consumed without logits".into()));
                continue;
            }
            let take = left.min(chunk_cap).min(room);
            if take == 0 {
                continue;
            }
            let base = slots.tokens(a.lease.slot).len();
            let ends_prompt = take == left;
            let sample_after = ends_prompt && !a.req.prefill_only;
            for j in 0..take {
                let tok = a.req.prompt[a.prompt_done + j];
                let want_logits = sample_after && j + 1 == take;
                if !add(batch, tok, base + j, a.lease.seq, want_logits) {
                    break;
                }
                a.in_batch.push(tok);
            }
            if sample_after && a.in_batch.len() == take {
                a.logits_at = Some(batch.n_tokens() - 1);
            }
        }
        *rr = rr.wrapping_add(1);

        if batch.n_tokens() == 0 {
            finish_and_reap(active, slots);
            // Every request is paused on a slow reader: wait a little instead of spinning.
            if !active.is_empty() {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            return;
        }

        match ctx.decode(batch) {
            Ok(()) => {
                for a in active.iter_mut().filter(|a| !a.in_batch.is_empty()) {
                    slots.push_decoded(a.lease.slot, &a.in_batch);
                    if a.pending.take().is_none() {
                        a.prompt_done += a.in_batch.len();
                    }
                    if a.req.prefill_only && a.prompt_done == a.req.prompt.len() {
                        a.prefill_done = Some(Instant::now());
                        a.outcome = Some(Outcome::Finished(FinishReason::Stop));
                        continue;
                    }
                    if let Some(idx) = a.logits_at {
                        if a.prefill_done.is_none() {
                            a.prefill_done = Some(Instant::now());
                        }
                        let LlamaToken(tok) = a.sampler.sample(ctx, idx);
                        on_token(
                            a,
                            tok,
                            vocab,
                            slots.tokens(a.lease.slot).len(),
                            *ctx_per_slot,
                        );
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "llama decode failed");
                for a in active.iter_mut().filter(|a| !a.in_batch.is_empty()) {
                    // What the failed batch left in the cache is unknown: drop the sequence.
                    let _ = ctx.kv_cache_seq_rm(a.lease.seq, None, None);
                    slots.reset(a.lease.slot);
                    a.outcome = Some(Outcome::Failed(format!("decode failed: {e}")));
                }
            }
        }
        finish_and_reap(active, slots);
    }
}

/// Adds one token to the batch; false if the batch is full.
fn add(batch: &mut LlamaBatch, tok: Token, pos: usize, seq: SeqId, logits: bool) -> bool {
    let Ok(pos) = i32::try_from(pos) else {
        return false;
    };
    batch.add(LlamaToken(tok), pos, &[seq], logits).is_ok()
}

/// Handles a freshly sampled token: end of generation, stop string, limits, or a text delta.
fn on_token(a: &mut Active, tok: Token, vocab: &LlamaVocab, slot_len: usize, ctx_per_slot: usize) {
    let now = Instant::now();
    a.first_token.get_or_insert(now);
    if vocab.is_eog(LlamaToken(tok)) {
        finish(a, FinishReason::Stop);
        return;
    }
    a.completion_tokens += 1;
    a.last_token = Some(now);
    let piece = vocab.token_to_piece(LlamaToken(tok), false, None);
    let text = a.utf8.push(&piece);
    let out = a.stop.push(&text);
    if !send(a, Event::Delta(out.emit)) {
        return;
    }
    if out.stopped {
        a.outcome = Some(Outcome::Finished(FinishReason::Stop));
    } else if a.completion_tokens >= a.max_tokens || slot_len + 1 >= ctx_per_slot {
        finish(a, FinishReason::Length);
    } else {
        a.pending = Some(tok);
    }
}

/// Flushes held-back text and marks the request finished.
fn finish(a: &mut Active, reason: FinishReason) {
    let tail = a.utf8.finish();
    let mut text = a.stop.push(&tail);
    if text.stopped {
        a.outcome = Some(Outcome::Finished(FinishReason::Stop));
        send(a, Event::Delta(text.emit));
        return;
    }
    text.emit.push_str(&a.stop.finish());
    if send(a, Event::Delta(text.emit)) {
        a.outcome = Some(Outcome::Finished(reason));
    }
}

/// Sends an event (empty deltas are skipped); on a closed channel the request is cancelled.
fn send(a: &mut Active, ev: Event) -> bool {
    if matches!(&ev, Event::Delta(t) if t.is_empty()) {
        return true;
    }
    match a.req.events.try_send(ev) {
        Ok(()) => true,
        Err(TrySendError::Closed(_)) => {
            a.outcome = Some(Outcome::Cancelled);
            false
        }
        Err(TrySendError::Full(_)) => {
            // Scheduling keeps MIN_EVENT_ROOM free, so this means a logic error; failing the
            // request is better than silently dropping text.
            a.outcome = Some(Outcome::Failed("event channel overflow".into()));
            false
        }
    }
}

/// Sends the final event of finished requests and releases their slots.
fn finish_and_reap(active: &mut Vec<Active>, slots: &mut SlotTable) {
    let mut i = 0;
    while i < active.len() {
        if active[i].outcome.is_none() {
            i += 1;
            continue;
        }
        let mut a = active.swap_remove(i);
        slots.release(a.lease.slot);
        let cached = a.lease.cached;
        match a.outcome.take() {
            Some(Outcome::Finished(reason)) => {
                let summary = summarize(&a, reason);
                tracing::info!(
                    id = %a.req.id,
                    session = a.req.session.as_deref().unwrap_or("-"),
                    prompt = summary.prompt_tokens,
                    cached,
                    completion = summary.completion_tokens,
                    prefill_ms = format!("{:.1}", summary.timings.prefill_ms),
                    first_token_ms = format!("{:.1}", summary.timings.first_token_ms),
                    tok_s = format!("{:.1}", summary.timings.decode_tokens_per_s),
                    finish = reason.as_str(),
                    "done"
                );
                let _ = a.req.events.try_send(Event::Done(summary));
            }
            Some(Outcome::Failed(msg)) => {
                tracing::warn!(id = %a.req.id, error = %msg, "generation failed");
                let _ = a.req.events.try_send(Event::Failed(msg));
            }
            Some(Outcome::Cancelled) | None => {
                tracing::info!(
                    id = %a.req.id,
                    decoded = slots.tokens(a.lease.slot).len(),
                    completion = a.completion_tokens,
                    "client disconnected; generation stopped"
                );
            }
        }
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summarize(a: &Active, reason: FinishReason) -> Summary {
    let end = Instant::now();
    let prefill_done = a.prefill_done.unwrap_or(end);
    let first = a.first_token.unwrap_or(end);
    let decode_tokens_per_s = match a.last_token {
        Some(last) if a.completion_tokens > 1 && last > first => {
            (a.completion_tokens - 1) as f64 / (last - first).as_secs_f64()
        }
        _ => 0.0,
    };
    Summary {
        finish_reason: reason,
        prompt_tokens: a.req.prompt.len(),
        completion_tokens: a.completion_tokens,
        cached_tokens: a.lease.cached,
        timings: Timings {
            queue_ms: ms(a.admitted.saturating_duration_since(a.req.received)),
            prefill_ms: ms(prefill_done.saturating_duration_since(a.admitted)),
            prefill_tokens: a.req.prompt.len().saturating_sub(a.lease.cached),
            first_token_ms: ms(first.saturating_duration_since(a.req.received)),
            decode_tokens_per_s,
        },
    }
}

/// Repetition penalties, then temperature / top-p / seed as a llama.cpp sampler chain;
/// greedy at temperature 0.
fn make_sampler(p: &SamplingParams, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::with_capacity(4);
    if p.repetition_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0 {
        chain.push(LlamaSampler::penalties(
            n_vocab,
            crate::api::PENALTY_LAST_N,
            p.repetition_penalty,
            p.frequency_penalty,
            p.presence_penalty,
        ));
    }
    if p.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
        return LlamaSampler::chain_simple(chain);
    }
    if p.top_p < 1.0 {
        chain.push(LlamaSampler::top_p(p.top_p, 1));
    }
    chain.push(LlamaSampler::temp(p.temperature));
    chain.push(LlamaSampler::dist(p.seed.unwrap_or(RANDOM_SEED)));
    LlamaSampler::chain_simple(chain)
}
