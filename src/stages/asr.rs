//! ASR stage: recognises speech while the user talks. The VAD streams each utterance's audio
//! here as it arrives; a [`StreamState`] plans passes (a steady cadence, every pause, cuts of a
//! long window) that run one at a time through the CPU scheduler, commit the words two passes
//! agree on, and send partial transcripts. When a transcript is wanted (a speculative pause, the
//! end of the utterance) the last pass usually covers all the speech already; otherwise only the
//! uncommitted tail is decoded. A session never queues a second pass behind its own; a partial
//! pass waits behind every other job of the cores and is shed at its deadline; a pass that
//! fails or is shed loses nothing (its audio stays for the next pass).

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, warn, Instrument};

use super::StageCtx;
use crate::backend::asr::streaming::{run_pass, PassKind, PassPlan, StreamConfig, StreamState};
use crate::backend::asr::{AsrError, Transcription};
use crate::flow::messages::{Heard, SpeechInput, Transcript, Turn, TurnClock};
use crate::flow::PipelineEvent;
use crate::metrics::Metrics;
use crate::scheduler::{Priority, SchedError};
use crate::text::redact::redact;

/// Messages held while a finished utterance still waits for its transcript and the user has
/// already started the next one (~16 s of audio; more is dropped and counted).
const DEFERRED_MAX: usize = 500;

/// Speech at least this long with no word recognised in it was meant to be heard: the user is
/// asked to say it again. Shorter bursts (a cough, a door) pass in silence.
const UNHEARD_SPEECH_S: f32 = 1.0;

/// Whisper's stock outputs for non-speech (noise, music): not something the user said.
fn is_non_speech(text: &str) -> bool {
    let t = text.trim();
    t.is_empty()
        || (t.starts_with('[') && t.ends_with(']'))
        || (t.starts_with('(') && t.ends_with(')'))
        || t.chars().all(|c| !c.is_alphanumeric())
}

/// The pass in flight (at most one per session).
struct Running {
    /// The stream it belongs to.
    generation: u64,
    end: usize,
    /// Started while a decision was waiting.
    for_decision: bool,
    kind: PassKind,
    cancel: CancellationToken,
    handle: JoinHandle<(Arc<PassPlan>, Result<Transcription, AsrError>)>,
}

/// What one session's recogniser is doing.
struct Recognition {
    stream: Option<StreamState>,
    generation: u64,
    /// Cancels the current stream's passes (a child of the session's shutdown).
    stream_cancel: CancellationToken,
    running: Option<Running>,
    /// Turns waiting for a transcript of the current stream, in order.
    decisions: VecDeque<Arc<Turn>>,
    /// Input of the next utterance, held until the current one's transcript is out.
    deferred: VecDeque<SpeechInput>,
    last_partial: String,
    /// A pass run for a decision failed: the decision is answered with what the stream has
    /// (and this error if that is nothing).
    decision_error: Option<AsrError>,
}

impl Recognition {
    fn new() -> Self {
        Self {
            stream: None,
            generation: 0,
            stream_cancel: CancellationToken::new(),
            running: None,
            decisions: VecDeque::new(),
            deferred: VecDeque::new(),
            last_partial: String::new(),
            decision_error: None,
        }
    }

    fn stream_config(ctx: &StageCtx) -> StreamConfig {
        let cfg = &ctx.backends.config;
        let streams = ctx.backends.asr.streams();
        let mut s = StreamConfig::from_config(&cfg.asr, cfg.vad.speech_pad_ms, streams);
        if !cfg.asr.streaming {
            s.pass_every_ms = 0;
            s.streams = false;
        } else if !streams {
            // A recogniser that re-decodes the whole utterance each pass: partials only as
            // often as `turn.partial_every_ms`, and only in live conversations.
            s.pass_every_ms = if ctx.settings.speculative {
                cfg.turn.partial_every_ms
            } else {
                0
            };
        }
        s
    }

    /// A new utterance begins (or the last one goes on, with `resume`).
    fn start(&mut self, ctx: &StageCtx, resume: bool) {
        let limit = ctx.backends.config.vad.max_utterance_ms as usize * 16 / 2;
        if resume
            && self
                .stream
                .as_ref()
                .is_some_and(|s| s.window_len() <= limit)
        {
            debug!("utterance continues the last one");
            return;
        }
        self.stream_cancel.cancel();
        self.stream_cancel = ctx.shutdown.child_token();
        self.generation += 1;
        self.last_partial.clear();
        self.decision_error = None;
        let hint = ctx.language.asr_hint(&ctx.settings.languages);
        self.stream = Some(StreamState::new(Self::stream_config(ctx), hint));
    }

    /// Starts the pass that is due, if none is running.
    fn start_pass(&mut self, ctx: &StageCtx) {
        let deciding = self.decisions.iter().any(|t| !t.is_stale());
        let Some(stream) = &self.stream else { return };
        if let Some(r) = &self.running {
            // A decision cannot use a pass that will not cover all the speech, and a pause
            // the user talked through makes its pass worthless: abort them.
            let stale = deciding && r.end < stream.speech_end();
            let talked_on = r.kind == PassKind::Pause && !r.for_decision && stream.speaking();
            if stale || talked_on {
                r.cancel.cancel();
            }
            return;
        }
        let Some(plan) = stream.plan(deciding) else {
            return;
        };
        if !deciding && ctx.backends.asr.is_busy() {
            // Another session is decoding: a partial pass waits for the next audio.
            Metrics::incr(&ctx.metrics.asr_passes_skipped);
            return;
        }
        let asr = Arc::clone(&ctx.backends.asr);
        let cancel = self.stream_cancel.child_token();
        let token = cancel.clone();
        let (end, kind) = (plan.end, plan.kind);
        // A pause's pass usually becomes the transcript; a cadence pass only shows words (and
        // is shed, its audio kept for the next pass, if the cores stay busy for long).
        let priority = if deciding || kind == PassKind::Pause {
            Priority::Transcript
        } else {
            Priority::Partial
        };
        let plan = Arc::new(plan);
        let ctx = ctx.clone();
        let handle = tokio::spawn(async move {
            let (job_plan, job_token) = (Arc::clone(&plan), token.clone());
            let job = move || run_pass(asr.as_ref(), &job_plan, &job_token);
            let result = match ctx.infer(priority, &token, None, job).await {
                Ok(result) => result,
                Err(SchedError::Shed(_)) => {
                    Metrics::incr(&ctx.metrics.asr_passes_skipped);
                    Err(AsrError::Cancelled)
                }
                Err(SchedError::Cancelled) => Err(AsrError::Cancelled),
                Err(e @ SchedError::Task(_)) => Err(AsrError::Failed(e.to_string())),
            };
            (plan, result)
        });
        self.running = Some(Running {
            generation: self.generation,
            end,
            for_decision: deciding,
            kind,
            cancel,
            handle,
        });
    }

    /// Takes a finished pass; returns its kind if it was applied to the current stream.
    fn finish_pass(
        &mut self,
        ctx: &StageCtx,
        generation: u64,
        for_decision: bool,
        joined: PassJoin,
    ) -> Option<PassKind> {
        let (plan, result) = match joined {
            Ok((plan, result)) => (Some(plan), result),
            Err(e) => (None, Err(AsrError::Failed(format!("ASR task failed: {e}")))),
        };
        let stream = self
            .stream
            .as_mut()
            .filter(|_| generation == self.generation)?;
        match (plan, result) {
            (None, Err(e)) => {
                warn!(error = %e, "ASR pass task failed");
                if for_decision {
                    self.decision_error = Some(e);
                }
                None
            }
            (Some(plan), Ok(t)) => {
                Metrics::incr(&ctx.metrics.asr_passes);
                debug!(kind = ?plan.kind, audio_s = t.audio_s, compute_s = t.elapsed_s,
                    lang = %t.language, held = t.held, text = %redact(&t.text), "ASR pass");
                stream.apply(&plan, t);
                Some(plan.kind)
            }
            (Some(_), Err(AsrError::Cancelled)) => None,
            (Some(plan), Err(e)) => {
                Metrics::incr(&ctx.metrics.asr_pass_failures);
                warn!(error = %e, "ASR pass failed (its audio stays for the next pass)");
                stream.failed(&plan);
                if for_decision {
                    self.decision_error = Some(e);
                }
                None
            }
            (None, Ok(_)) => None,
        }
    }
}

/// Waits for the pass in flight (forever if there is none). Cancel-safe: the pass stays in
/// `running` until it has finished.
async fn pass_finished(running: &mut Option<Running>) -> (u64, bool, PassJoin) {
    let Some(r) = running.as_mut() else {
        return std::future::pending().await;
    };
    let (generation, for_decision) = (r.generation, r.for_decision);
    let joined = (&mut r.handle).await;
    *running = None;
    (generation, for_decision, joined)
}

/// What a pass task hands back.
type PassJoin = Result<(Arc<PassPlan>, Result<Transcription, AsrError>), tokio::task::JoinError>;

pub async fn run(ctx: StageCtx, mut rx: mpsc::Receiver<SpeechInput>, tx: mpsc::Sender<Transcript>) {
    let span = info_span!("stage", name = "asr", session = %ctx.settings.session_id);
    async move {
        let mut rec = Recognition::new();
        let mut input_open = true;
        loop {
            if !input_open && rec.running.is_none() && !has_work(&rec) {
                break;
            }
            tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => break,
                (generation, for_decision, joined) = pass_finished(&mut rec.running) => {
                    let kind = rec.finish_pass(&ctx, generation, for_decision, joined);
                    // Every pass while the user speaks shows its words (a pause's pass too:
                    // the turn may not end there).
                    let partial = matches!(kind, Some(PassKind::Cadence | PassKind::Pause));
                    if partial && rec.decisions.is_empty() {
                        emit_partial(&ctx, &mut rec).await;
                    }
                }
                msg = rx.recv(), if input_open => match msg {
                    Some(m) => {
                        if !rec.decisions.is_empty() || !rec.deferred.is_empty() {
                            defer(&ctx, &mut rec, m);
                        } else if !handle(&ctx, &tx, &mut rec, m).await {
                            return;
                        }
                    }
                    None => input_open = false,
                },
            }
            if !serve(&ctx, &tx, &mut rec, input_open).await {
                return;
            }
        }
        rec.stream_cancel.cancel();
    }
    .instrument(span)
    .await
}

/// A decision is waiting (or input is deferred behind one).
fn has_work(rec: &Recognition) -> bool {
    !rec.decisions.is_empty() || !rec.deferred.is_empty()
}

/// Holds input of the next utterance while the current one waits for its transcript. Typed
/// turns and control are held too, so the order of turns stays the order of speech.
fn defer(ctx: &StageCtx, rec: &mut Recognition, msg: SpeechInput) {
    match msg {
        // Audio and decisions of the stream being decided are its own, not the next one's.
        m @ (SpeechInput::Audio { .. } | SpeechInput::Decide(_)) if rec.deferred.is_empty() => {
            apply_now(ctx, rec, m)
        }
        m if rec.deferred.len() < DEFERRED_MAX => rec.deferred.push_back(m),
        _ => Metrics::incr(&ctx.metrics.audio_chunks_dropped),
    }
}

/// Audio or a decision of the current stream.
fn apply_now(ctx: &StageCtx, rec: &mut Recognition, msg: SpeechInput) {
    match msg {
        SpeechInput::Audio {
            pcm,
            trailing_silence,
        } => {
            if let Some(s) = rec.stream.as_mut() {
                s.push(&pcm, trailing_silence);
            }
        }
        SpeechInput::Decide(turn) => rec.decisions.push_back(turn),
        SpeechInput::Start { resume } => rec.start(ctx, resume),
        SpeechInput::Typed { .. } => {}
    }
}

/// One input message; false once downstream is gone.
async fn handle(
    ctx: &StageCtx,
    tx: &mpsc::Sender<Transcript>,
    rec: &mut Recognition,
    msg: SpeechInput,
) -> bool {
    match msg {
        SpeechInput::Typed { turn, text } => {
            TurnClock::mark(&turn.clock.asr_done);
            ctx.forward(tx, typed(ctx, turn, text)).await
        }
        m => {
            apply_now(ctx, rec, m);
            true
        }
    }
}

/// Answers the decisions the stream can answer, replays deferred input once none is left,
/// and starts the next pass. False once downstream is gone.
async fn serve(
    ctx: &StageCtx,
    tx: &mpsc::Sender<Transcript>,
    rec: &mut Recognition,
    input_open: bool,
) -> bool {
    loop {
        while rec.decisions.front().is_some_and(|t| t.is_stale()) {
            rec.decisions.pop_front();
            Metrics::incr(&ctx.metrics.stale_messages_dropped);
        }
        if let Some(turn) = rec.decisions.front().cloned() {
            let current = rec.stream.as_ref().is_some_and(StreamState::is_current);
            let failed = rec.running.is_none() && rec.decision_error.is_some();
            if current || failed || rec.stream.is_none() {
                rec.decisions.pop_front();
                if !decide(ctx, tx, rec, turn).await {
                    return false;
                }
                continue;
            }
        }
        if rec.decisions.is_empty() {
            if let Some(m) = rec.deferred.pop_front() {
                if !handle(ctx, tx, rec, m).await {
                    return false;
                }
                continue;
            }
        }
        break;
    }
    if input_open || !rec.decisions.is_empty() {
        rec.start_pass(ctx);
    }
    true
}

/// Sends `turn` its transcript: the stream's text (or the error that left it without one).
async fn decide(
    ctx: &StageCtx,
    tx: &mpsc::Sender<Transcript>,
    rec: &mut Recognition,
    turn: Arc<Turn>,
) -> bool {
    TurnClock::mark(&turn.clock.asr_done);
    let error = rec.decision_error.take();
    let outcome = match rec.stream.as_ref().map(StreamState::transcription) {
        // A failed last pass still leaves the words earlier passes heard.
        Some(t) if !is_non_speech(&t.text) => Ok(t),
        // Real speech in which no word was recognised: the LLM stage asks the user to say it
        // again (an empty transcript is unclear), rather than the turn passing in silence.
        Some(t) if error.is_none() && t.audio_s >= UNHEARD_SPEECH_S => Ok(Transcription {
            text: String::new(),
            ..t
        }),
        Some(_) => Err(error.map_or_else(String::new, |e| e.to_string())),
        None => Err("no speech was streamed for this turn".to_string()),
    };
    match outcome {
        Ok(t) => {
            debug!(turn = turn.id.0, lang = %t.language, text = %redact(&t.text),
                audio_s = t.audio_s, compute_s = t.elapsed_s, "transcribed");
            if let Some(d) = turn.clock.asr_done.get() {
                ctx.metrics
                    .observe("asr", d.duration_since(turn.clock.speech_end));
            }
            rec.last_partial = t.text.clone();
            let stable = rec
                .stream
                .as_ref()
                .map(StreamState::committed_text)
                .unwrap_or_default();
            let msg = Transcript {
                turn,
                stable,
                text: t.text,
                spoken_language: t.language,
                spoken_prob: t.language_prob,
                candidates: t.candidates,
                held: t.held,
                audio_s: t.audio_s,
                asr_compute_s: t.elapsed_s,
            };
            ctx.forward(tx, msg).await
        }
        Err(error) => {
            ctx.turns.finish(turn.id);
            // A speculative turn that the user went on with is nobody's business; one that the
            // pause confirms (within `vad.min_silence_ms`) fails like any other.
            if !turn.wait_confirmed().await {
                return true;
            }
            let message = if error.is_empty() {
                "no words were recognised in the speech".to_string()
            } else {
                warn!(turn = turn.id.0, error = %error, "ASR failed");
                error
            };
            ctx.fail_turn(&turn, "asr", message).await
        }
    }
}

/// The stream's text so far as a partial transcript, if it says something new.
async fn emit_partial(ctx: &StageCtx, rec: &mut Recognition) {
    let Some(stream) = rec.stream.as_ref() else {
        return;
    };
    let text = stream.text();
    let Some(language) = stream.language() else {
        return;
    };
    if is_non_speech(&text) || text == rec.last_partial {
        return;
    }
    rec.last_partial = text.clone();
    let committed = stream.committed_text();
    let heard = Heard {
        text: committed.trim().to_string(),
        language: language.code.clone(),
        utterance: rec.generation,
    };
    ctx.heard.send_if_modified(|last| {
        let changed = last.as_ref() != Some(&heard);
        *last = Some(heard);
        changed
    });
    ctx.emit(PipelineEvent::Transcript {
        turn: ctx.turns.next_id(),
        text,
        stable: committed,
        language: language.code.clone(),
        confidence: language.prob,
        spoken: language.candidates.clone(),
        is_final: false,
    })
    .await;
}

/// A typed turn: its language from its script and words (the session's first language if the
/// text does not say).
fn typed(ctx: &StageCtx, turn: Arc<Turn>, text: String) -> Transcript {
    let allowed = &ctx.settings.languages;
    let (language, prob) = crate::text::script::language_of_text(&text, allowed)
        .unwrap_or_else(|| (allowed.first().cloned().unwrap_or_else(|| "en".into()), 0.5));
    Transcript {
        turn,
        stable: text.clone(),
        text,
        spoken_language: language.clone(),
        spoken_prob: prob,
        candidates: vec![(language, prob)],
        held: false,
        audio_s: 0.0,
        asr_compute_s: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::is_non_speech;

    #[test]
    fn whisper_noise_markers_are_not_speech() {
        assert!(is_non_speech(" [Music] "));
        assert!(is_non_speech("(upbeat music)"));
        assert!(is_non_speech("..."));
        assert!(!is_non_speech("नमस्ते"));
        assert!(!is_non_speech("And so, my fellow Americans"));
    }
}
