//! The stage tasks. Each one loops on its input edge with `select! { biased; }` — shutdown first,
//! then input — drops messages of stale (cancelled) turns on arrival, runs blocking inference on
//! the blocking pool, and reports to the transport through the session's event edge.

pub mod asr;
pub mod lang_id;
pub mod llm;
pub mod output;
pub mod tts;
pub mod vad;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backend::Backends;
use crate::metrics::Metrics;
use crate::pipeline::language::LanguageTrack;
use crate::pipeline::messages::Turn;
use crate::pipeline::{PipelineEvent, SessionMemory, SessionSettings, TurnControl};

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
