//! The stage tasks. Each one loops on its input edge with `select! { biased; }` — shutdown first,
//! then input — drops messages of stale (cancelled) turns on arrival, runs blocking inference on
//! the blocking pool through the one CPU scheduler ([`StageCtx::infer`]), and reports to the
//! transport through the session's event edge.

pub mod asr;
pub mod lang_id;
pub mod llm;
pub mod output;
pub mod tts;
pub mod vad;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::backend::Backends;
use crate::flow::language::LanguageTrack;
use crate::flow::messages::{Heard, Turn, TurnClock};
use crate::flow::{PipelineEvent, SessionMemory, SessionSettings, TurnControl};
use crate::metrics::Metrics;
use crate::scheduler::{Priority, SchedError, Slot};

/// Everything a stage task needs besides its own edges.
#[derive(Clone)]
pub struct StageCtx {
    pub shutdown: CancellationToken,
    pub events: mpsc::Sender<PipelineEvent>,
    pub metrics: Arc<Metrics>,
    pub turns: Arc<TurnControl>,
    pub settings: Arc<SessionSettings>,
    pub backends: Arc<Backends>,
    pub memory: Arc<SessionMemory>,
    /// The session's language, with hysteresis (the ASR and language-id stages share it).
    pub language: Arc<LanguageTrack>,
    /// The committed words of the turn being spoken (ASR stage → LLM stage, for prefill).
    pub heard: Arc<watch::Sender<Option<Heard>>>,
}

impl StageCtx {
    /// Next input message, or `None` on shutdown or when the upstream stage has finished.
    pub async fn next<T>(&self, rx: &mut mpsc::Receiver<T>) -> Option<T> {
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => None,
            msg = rx.recv() => msg,
        }
    }

    /// Sends downstream with backpressure; `false` if shutting down or downstream is gone.
    pub async fn forward<T>(&self, tx: &mpsc::Sender<T>, msg: T) -> bool {
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => false,
            r = tx.send(msg) => r.is_ok(),
        }
    }

    /// Reports an event to the transport (backpressure; `false` once the transport is gone).
    pub async fn emit(&self, event: PipelineEvent) -> bool {
        self.forward(&self.events, event).await
    }

    /// Reports an interruption of `turn` (already cancelled by [`Turn::interrupt`]): counts it,
    /// cuts the history to what was heard, tells the transport.
    pub async fn report_interrupted(&self, turn: &Turn) {
        if !turn.is_confirmed() {
            // A speculative reply nobody heard: nothing was interrupted.
            return;
        }
        Metrics::incr(&self.metrics.interruptions);
        self.memory.on_interrupted(turn).await;
        tracing::debug!(turn = turn.id.0, played_s = turn.played_s(), "barge-in");
        self.emit(PipelineEvent::Interrupted {
            turn: turn.id,
            played_s: turn.played_s(),
            kept_text: turn.heard_text(),
        })
        .await;
    }

    /// Runs blocking inference `job` through the CPU scheduler at `priority` (its wait counted
    /// per priority and, when it works for a turn, in that turn's timings).
    pub async fn infer<T: Send + 'static>(
        &self,
        priority: Priority,
        cancel: &CancellationToken,
        turn: Option<&TurnClock>,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, SchedError> {
        self.cpu_slot(priority, cancel, turn).await?.run(job).await
    }

    /// A slot of the cores for work that runs elsewhere (the LLM worker's prompt processing),
    /// counted as [`Self::infer`] counts.
    pub async fn cpu_slot(
        &self,
        priority: Priority,
        cancel: &CancellationToken,
        turn: Option<&TurnClock>,
    ) -> Result<Slot, SchedError> {
        let slot = self.backends.cpu.acquire(priority, cancel).await;
        match &slot {
            Ok(s) => {
                self.metrics.observe(priority.wait_series(), s.waited);
                if let Some(clock) = turn {
                    clock.add_cpu_wait(s.waited);
                }
            }
            Err(SchedError::Shed(_)) => Metrics::incr(&self.metrics.cpu_jobs_shed),
            Err(_) => {}
        }
        slot
    }

    /// Reports that `stage` failed `turn`: one `TurnFailed` event and one `turns_failed` count
    /// per turn, however many clauses or stages fail after the first. `false` if the event
    /// edge is gone (shutting down).
    pub async fn fail_turn(&self, turn: &Turn, stage: &'static str, message: String) -> bool {
        if !turn.claim_failure() {
            return true;
        }
        Metrics::incr(&self.metrics.turns_failed);
        self.emit(PipelineEvent::TurnFailed {
            turn: turn.id,
            stage,
            message,
        })
        .await
    }

    /// True (and counted) if `turn` was cancelled and its message must be dropped.
    pub fn drop_if_stale(&self, turn: &Turn) -> bool {
        if turn.is_stale() {
            Metrics::incr(&self.metrics.stale_messages_dropped);
            true
        } else {
            false
        }
    }
}
