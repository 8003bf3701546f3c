//! ASR stage: transcribes each utterance on the blocking pool (abortable through the turn's
//! token) with spoken-language detection restricted to the session's languages.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{debug, info_span, warn, Instrument};

use super::StageCtx;
use crate::backend::asr::AsrError;
use crate::metrics::Metrics;
use crate::pipeline::messages::{Transcript, Turn, TurnClock, UserInput, Utterance};
use crate::pipeline::PipelineEvent;
use crate::text::redact::redact;

/// Whisper's stock outputs for non-speech (noise, music): not something the user said.
fn is_non_speech(text: &str) -> bool {
    let t = text.trim();
    t.is_empty()
        || (t.starts_with('[') && t.ends_with(']'))
        || (t.starts_with('(') && t.ends_with(')'))
        || t.chars().all(|c| !c.is_alphanumeric())
}

pub async fn run(ctx: StageCtx, mut rx: mpsc::Receiver<Utterance>, tx: mpsc::Sender<Transcript>) {
    let span = info_span!("stage", name = "asr", session = %ctx.settings.session_id);
    async move {
        while let Some(utt) = ctx.next(&mut rx).await {
            if ctx.drop_if_stale(&utt.turn) {
                continue;
            }
            if utt.turn.partial_only.load(Ordering::Relaxed) && ctx.backends.asr.is_busy() {
                // A partial transcript is a nicety: it never delays another turn's answer.
                Metrics::incr(&ctx.metrics.stale_messages_dropped);
                continue;
            }
            let pcm = match utt.input {
                UserInput::Speech(pcm) => pcm,
                UserInput::Typed(text) => {
                    TurnClock::mark(&utt.turn.clock.asr_done);
                    if !ctx.forward(&tx, typed(&ctx, utt.turn, text)).await {
                        return;
                    }
                    continue;
                }
            };
            let asr = Arc::clone(&ctx.backends.asr);
            let turn = Arc::clone(&utt.turn);
            let hint = ctx.language.asr_hint(&ctx.settings.languages);
            let result =
                tokio::task::spawn_blocking(move || asr.transcribe(&pcm, &hint, &turn.cancel))
                    .await;
            let turn = utt.turn;
            TurnClock::mark(&turn.clock.asr_done);
            let result = match result {
                Ok(r) => r,
                Err(e) => Err(AsrError::Failed(format!("ASR task failed: {e}"))),
            };
            match result {
                // A partial transcript that is stale, empty or failed is simply not shown.
                Ok(_) | Err(_) if turn.partial_only.load(Ordering::Relaxed) && turn.is_stale() => {}
                Ok(t) if is_non_speech(&t.text) && turn.partial_only.load(Ordering::Relaxed) => {}
                Ok(t) if is_non_speech(&t.text) => {
                    ctx.turns.finish(turn.id);
                    // A speculative turn that the user went on with is nobody's business.
                    if !turn.wait_confirmed().await {
                        continue;
                    }
                    Metrics::incr(&ctx.metrics.turns_failed);
                    ctx.emit(PipelineEvent::TurnFailed {
                        turn: turn.id,
                        stage: "asr",
                        message: "no words were recognised in the speech".into(),
                    })
                    .await;
                }
                Ok(t) => {
                    debug!(turn = turn.id.0, lang = %t.language, text = %redact(&t.text), rtf = t.elapsed_s / t.audio_s.max(0.01), "transcribed");
                    if let Some(d) = turn.clock.asr_done.get() {
                        ctx.metrics.observe("asr", d.duration_since(turn.clock.speech_end));
                    }
                    let msg = Transcript {
                        turn,
                        text: t.text,
                        spoken_language: t.language,
                        spoken_prob: t.language_prob,
                        candidates: t.candidates,
                        held: t.held,
                        audio_s: t.audio_s,
                        asr_compute_s: t.elapsed_s,
                    };
                    if !ctx.forward(&tx, msg).await {
                        return;
                    }
                }
                Err(AsrError::Cancelled) => {
                    Metrics::incr(&ctx.metrics.stale_messages_dropped);
                }
                Err(_) if turn.partial_only.load(Ordering::Relaxed) => {}
                Err(e) => {
                    warn!(turn = turn.id.0, error = %e, "ASR failed");
                    ctx.turns.finish(turn.id);
                    if !turn.wait_confirmed().await {
                        continue;
                    }
                    Metrics::incr(&ctx.metrics.turns_failed);
                    ctx.emit(PipelineEvent::TurnFailed {
                        turn: turn.id,
                        stage: "asr",
                        message: e.to_string(),
                    })
                    .await;
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// A typed turn: its language from its script and words (the session's first language if the
/// text does not say).
fn typed(ctx: &StageCtx, turn: Arc<Turn>, text: String) -> Transcript {
    let allowed = &ctx.settings.languages;
    let (language, prob) = crate::text::script::language_of_text(&text, allowed)
        .unwrap_or_else(|| (allowed.first().cloned().unwrap_or_else(|| "en".into()), 0.5));
    Transcript {
        turn,
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
