//! TTS stage: speaks each clause with the voice configured for the turn's language, on the
//! blocking pool, and hands the audio on in short chunks so that barge-in can stop it quickly
//! and the audio edge's capacity is a duration.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{info_span, warn, Instrument};

use super::StageCtx;
use crate::metrics::Metrics;
use crate::pipeline::messages::{ReplyAudio, ReplyText, TurnClock};
use crate::pipeline::PipelineEvent;

/// Reply audio travels in chunks of this length.
pub const AUDIO_CHUNK_MS: u32 = 200;

/// Sends a clause's caption without audio (its voice failed): text still reaches the user.
async fn caption_only(ctx: &StageCtx, tx: &mpsc::Sender<ReplyAudio>, clause: &ReplyText) {
    ctx.forward(tx, without_audio(clause, clause.text.clone(), false))
        .await;
}

/// A message for the output stage that carries no audio: a caption, or the end of a reply.
fn without_audio(clause: &ReplyText, text: String, last: bool) -> ReplyAudio {
    ReplyAudio {
        turn: Arc::clone(&clause.turn),
        samples: Vec::new(),
        sample_rate: 0,
        text,
        voice: String::new(),
        last,
        asr_compute_s: clause.asr_compute_s,
        synth_s: 0.0,
        clause_ms: 0,
    }
}

pub async fn run(ctx: StageCtx, mut rx: mpsc::Receiver<ReplyText>, tx: mpsc::Sender<ReplyAudio>) {
    let span = info_span!("stage", name = "tts", session = %ctx.settings.session_id);
    async move {
        let mut failed_turn = None;
        while let Some(clause) = ctx.next(&mut rx).await {
            if ctx.drop_if_stale(&clause.turn) {
                continue;
            }
            let turn = Arc::clone(&clause.turn);
            if clause.text.trim().is_empty() {
                if clause.last
                    && !ctx
                        .forward(&tx, without_audio(&clause, String::new(), true))
                        .await
                {
                    return;
                }
                continue;
            }
            if ctx.settings.text_only {
                if !ctx
                    .forward(
                        &tx,
                        without_audio(&clause, clause.text.clone(), clause.last),
                    )
                    .await
                {
                    return;
                }
                continue;
            }
            let preferred = ctx.settings.voices.get(&clause.language);
            let engine = match preferred {
                Some(name) => ctx.backends.tts.named(name, &clause.language),
                None => ctx.backends.tts.for_language(&clause.language),
            };
            let engine = match engine {
                Ok(e) => e,
                Err(e) => {
                    caption_only(&ctx, &tx, &clause).await;
                    if failed_turn != Some(turn.id) {
                        failed_turn = Some(turn.id);
                        warn!(turn = turn.id.0, error = %e, "no voice");
                        ctx.emit(PipelineEvent::TurnFailed {
                            turn: turn.id,
                            stage: "tts",
                            message: e.to_string(),
                        })
                        .await;
                    }
                    continue;
                }
            };
            let voice = engine.name().to_string();
            let speed = ctx.settings.speech_rate;
            let text = clause.text.clone();
            let started = std::time::Instant::now();
            let synth = tokio::task::spawn_blocking(move || {
                engine
                    .synthesize(&text, speed)
                    .map(|s| (s, engine.sample_rate()))
            })
            .await;
            let synth_s = started.elapsed().as_secs_f32();
            let (samples, rate) = match synth {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    warn!(turn = turn.id.0, error = %e, "synthesis failed");
                    caption_only(&ctx, &tx, &clause).await;
                    ctx.emit(PipelineEvent::TurnFailed {
                        turn: turn.id,
                        stage: "tts",
                        message: e.to_string(),
                    })
                    .await;
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, "TTS task failed");
                    caption_only(&ctx, &tx, &clause).await;
                    continue;
                }
            };
            if turn.is_stale() {
                Metrics::incr(&ctx.metrics.stale_messages_dropped);
                continue;
            }
            TurnClock::mark(&turn.clock.tts_first_audio);
            let chunk = (rate * AUDIO_CHUNK_MS / 1000).max(1) as usize;
            let clause_ms = samples.len() as u64 * 1000 / u64::from(rate.max(1));
            for (i, part) in samples.chunks(chunk).enumerate() {
                if turn.is_stale() {
                    break;
                }
                let msg = ReplyAudio {
                    turn: Arc::clone(&turn),
                    samples: part.to_vec(),
                    sample_rate: rate,
                    text: if i == 0 {
                        clause.text.clone()
                    } else {
                        String::new()
                    },
                    voice: voice.clone(),
                    last: false,
                    asr_compute_s: clause.asr_compute_s,
                    synth_s: if i == 0 { synth_s } else { 0.0 },
                    clause_ms: if i == 0 { clause_ms } else { 0 },
                };
                if !ctx.forward(&tx, msg).await {
                    return;
                }
            }
            if clause.last
                && !ctx
                    .forward(&tx, without_audio(&clause, String::new(), true))
                    .await
            {
                return;
            }
        }
    }
    .instrument(span)
    .await
}
