//! The pipeline of one session, wired in one function that reads like the diagram:
//! ingest → VAD → ASR → language id → LLM → TTS → output. Each stage is one task owned by the
//! caller's `TaskTracker`; edges are bounded `mpsc` channels (capacities below, with what
//! happens when full); control (shutdown, barge-in) travels by cancellation tokens.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::Backends;
use crate::flow::language::LanguageTrack;
use crate::flow::{Ingest, PipelineEvent, SessionMemory, SessionSettings, TurnControl, TurnId};
use crate::metrics::Metrics;
use crate::stages;

/// VAD → ASR: speech as it arrives (a message per VAD batch, ~20–32 ms of audio), sized in
/// time: 2 s; backpressure (the ASR stage never waits on inference: passes run beside it).
pub const SPEECH_EDGE: usize = 64;
/// ASR → language id → LLM: one message per turn; backpressure.
pub const TURN_EDGE: usize = 2;
/// LLM → TTS: clauses of a reply; backpressure holds the LLM when TTS falls behind.
pub const CLAUSE_EDGE: usize = 16;
/// TTS → output: reply audio in chunks of [`stages::tts::AUDIO_CHUNK_MS`]; sized in time
/// (25 × 200 ms = 5 s buffered); backpressure.
pub const AUDIO_OUT_EDGE: usize = 25;
/// Pipeline → transport events; backpressure (a transport that stops reading stalls its own
/// session only).
pub const EVENT_EDGE: usize = 64;
/// Chunk length transports should use when feeding audio.
pub const INGEST_CHUNK_MS: u32 = 20;

/// Capacity of the ingest edge for a given buffer length and chunk size.
pub fn ingest_capacity(buffer_ms: u32, chunk_ms: u32) -> usize {
    (buffer_ms / chunk_ms.max(1)).max(2) as usize
}

/// The handles a transport keeps for one running session.
pub struct SessionPipeline {
    /// Audio in. Realtime transports `try_send` and count drops; files `send().await`.
    pub input: mpsc::Sender<Ingest>,
    pub events: mpsc::Receiver<PipelineEvent>,
    pub turns: Arc<TurnControl>,
    pub memory: Arc<SessionMemory>,
}

/// What an interruption cut: the turn, how much of its reply was heard, and what history keeps.
#[derive(Debug, Clone)]
pub struct InterruptInfo {
    pub turn: TurnId,
    pub played_s: f32,
    pub kept_text: String,
}

impl SessionPipeline {
    /// A client's explicit interrupt: cancels the current reply at once (control does not queue
    /// behind audio) and cuts the history to what was heard.
    pub async fn interrupt(&self) -> Option<InterruptInfo> {
        let turn = self.turns.interrupt()?;
        self.memory.on_interrupted(&turn).await;
        Some(InterruptInfo {
            turn: turn.id,
            played_s: turn.played_s(),
            kept_text: turn.heard_text(),
        })
    }
}

/// Starts the stage tasks of one session on `tracker`. Dropping `input` ends the session
/// gracefully (every stage drains and exits); cancelling `shutdown` stops it at once.
pub fn spawn(
    backends: Arc<Backends>,
    settings: SessionSettings,
    input_capacity: usize,
    metrics: Arc<Metrics>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> SessionPipeline {
    let (ingest_tx, ingest_rx) = mpsc::channel(input_capacity);
    let (speech_tx, speech_rx) = mpsc::channel(SPEECH_EDGE);
    let (tr_tx, tr_rx) = mpsc::channel(TURN_EDGE);
    let (user_tx, user_rx) = mpsc::channel(TURN_EDGE);
    let (clause_tx, clause_rx) = mpsc::channel(CLAUSE_EDGE);
    let (audio_tx, audio_rx) = mpsc::channel(AUDIO_OUT_EDGE);
    let (event_tx, event_rx) = mpsc::channel(EVENT_EDGE);

    let turns = Arc::new(TurnControl::with_playback_acks(
        shutdown.clone(),
        settings.playback_acks,
    ));
    let memory = settings.memory.clone().unwrap_or_else(|| {
        let llm = &backends.config.llm;
        let conversation =
            crate::conversation::Conversation::new(llm.system_prompt.clone(), llm.history_turns)
                .with_token_budget(llm.history_token_budget);
        Arc::new(SessionMemory::new(conversation, None))
    });
    let language = Arc::new(LanguageTrack::new(
        backends.config.asr.switch_confidence,
        settings.preferred_language.clone(),
    ));
    let ctx = stages::StageCtx {
        shutdown,
        events: event_tx,
        metrics,
        turns: Arc::clone(&turns),
        settings: Arc::new(settings),
        backends,
        memory: Arc::clone(&memory),
        language,
        heard: Arc::new(tokio::sync::watch::channel(None).0),
    };

    tracker.spawn(stages::vad::run(ctx.clone(), ingest_rx, speech_tx));
    tracker.spawn(stages::asr::run(ctx.clone(), speech_rx, tr_tx));
    tracker.spawn(stages::lang_id::run(ctx.clone(), tr_rx, user_tx));
    tracker.spawn(stages::llm::run(ctx.clone(), user_rx, clause_tx));
    tracker.spawn(stages::tts::run(ctx.clone(), clause_rx, audio_tx));
    tracker.spawn(stages::output::run(ctx, audio_rx));

    SessionPipeline {
        input: ingest_tx,
        events: event_rx,
        turns,
        memory,
    }
}
