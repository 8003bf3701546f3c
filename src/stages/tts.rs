//! TTS stage: speaks each clause with the voice configured for the turn's language, through the
//! CPU scheduler (the first clause and a playing reply's next one before other work), and hands
//! the audio on in short chunks so that barge-in can stop it quickly and the audio edge's
//! capacity is a duration.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info_span, warn, Instrument};

use super::StageCtx;
use crate::audio::resample::resample_all;
use crate::backend::tts::{TtsEngine, TtsError};
use crate::flow::messages::{ReplyAudio, ReplyText, Turn, TurnClock, TurnId};
use crate::metrics::Metrics;
use crate::scheduler::{Priority, SchedError};
use crate::text::codeswitch::script_runs;
use crate::text::speech::normalize_for_speech;

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

/// The voice the user chose for `language`, or the configured one.
fn voice_for(ctx: &StageCtx, language: &str) -> Result<Arc<dyn TtsEngine>, TtsError> {
    match ctx.settings.voices.get(language) {
        Some(name) => ctx.backends.tts.named(name, language),
        None => ctx.backends.tts.for_language(language),
    }
}

/// One stretch of a clause, the voice that says it and the words it says.
struct Part {
    engine: Arc<dyn TtsEngine>,
    spoken: String,
}

/// The clause as its voices will say it: English words inside a reply in another script go to
/// the English voice (when there is one), every stretch is normalised for speech in its own
/// language (numbers, money, dates, abbreviations).
fn spoken_parts(
    ctx: &StageCtx,
    engine: Arc<dyn TtsEngine>,
    text: &str,
    language: &str,
) -> Vec<Part> {
    let english = if language == "en" {
        None
    } else {
        voice_for(ctx, "en").ok()
    };
    let runs = match &english {
        Some(_) => script_runs(text, language),
        None => Vec::new(),
    };
    if runs.len() <= 1 {
        return vec![Part {
            engine,
            spoken: normalize_for_speech(text, language),
        }];
    }
    runs.into_iter()
        .map(|run| match (&english, run.english) {
            (Some(en), true) => Part {
                engine: Arc::clone(en),
                spoken: normalize_for_speech(run.text, "en"),
            },
            _ => Part {
                engine: Arc::clone(&engine),
                spoken: normalize_for_speech(run.text, language),
            },
        })
        .collect()
}

/// Quieter than this (about −45 dBFS) is silence at the joins between voices.
const JOIN_SILENCE: f32 = 0.0056;
/// Silence kept at each join, so that words do not run into each other.
const JOIN_KEEP_MS: u32 = 40;

/// Drops the silence an engine pads before speech, but `keep` samples. Kokoro starts every
/// clause with ~350 ms of it: on the first clause that is latency the user hears, and between
/// clauses the previous clause's trailing pad is pause enough.
fn trim_lead(audio: &mut Vec<f32>, keep: usize) {
    if let Some(p) = audio.iter().position(|s| s.abs() > JOIN_SILENCE) {
        audio.drain(..p.saturating_sub(keep));
    }
}

/// Synthesises every part and joins them into one buffer at the first voice's rate, with the
/// silence each engine pads before speech and around its joins trimmed (no audible gaps, no
/// silent start).
fn synthesize_parts(parts: &[Part], speed: f32) -> Result<(Vec<f32>, u32), TtsError> {
    let Some(first) = parts.first() else {
        return Ok((Vec::new(), 0));
    };
    let rate = first.engine.sample_rate();
    let keep = (rate * JOIN_KEEP_MS / 1000) as usize;
    if parts.len() == 1 {
        let mut audio = first.engine.synthesize(&first.spoken, speed)?;
        trim_lead(&mut audio, keep);
        return Ok((audio, rate));
    }
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if part.spoken.trim().is_empty() {
            continue;
        }
        let mut audio = part.engine.synthesize(&part.spoken, speed)?;
        if part.engine.sample_rate() != rate {
            audio = resample_all(&audio, part.engine.sample_rate(), rate)
                .map_err(|e| TtsError::inference(part.engine.name(), e))?;
        }
        let loud = |s: &&f32| s.abs() > JOIN_SILENCE;
        let start = audio
            .iter()
            .position(|s| loud(&s))
            .map_or(0, |p| p.saturating_sub(keep));
        let end = match i + 1 == parts.len() {
            true => audio.len(),
            false => audio
                .iter()
                .rposition(|s| loud(&s))
                .map_or(audio.len(), |p| (p + keep).min(audio.len())),
        };
        out.extend_from_slice(&audio[start..end.max(start)]);
    }
    Ok((out, rate))
}

/// A clause whose reply has less audio than this still to play is needed soon: it is voiced
/// before the first clauses of other turns (a gap in a reply is worse than a later start).
const NEXT_AUDIO_MARGIN: Duration = Duration::from_millis(1_500);

/// How much of a turn's reply has been voiced, to tell how soon its next clause is needed.
#[derive(Default)]
struct Pace {
    turn: Option<TurnId>,
    first_audio: Option<Instant>,
    voiced: Duration,
}

impl Pace {
    /// The scheduler priority of the next clause of `turn`.
    fn priority(&mut self, turn: &Turn) -> Priority {
        if self.turn != Some(turn.id) {
            *self = Pace {
                turn: Some(turn.id),
                ..Pace::default()
            };
        }
        let Some(first) = self.first_audio else {
            return Priority::FirstClause;
        };
        // Audio handed out but not yet played (the transport plays it in real time).
        let ahead = self.voiced.saturating_sub(first.elapsed());
        if ahead < NEXT_AUDIO_MARGIN {
            Priority::NextAudio
        } else {
            Priority::LaterClause
        }
    }

    fn produced(&mut self, turn: &Turn, clause_ms: u64) {
        if self.turn == Some(turn.id) {
            self.first_audio.get_or_insert_with(Instant::now);
            self.voiced += Duration::from_millis(clause_ms);
        }
    }
}

pub async fn run(ctx: StageCtx, mut rx: mpsc::Receiver<ReplyText>, tx: mpsc::Sender<ReplyAudio>) {
    let span = info_span!("stage", name = "tts", session = %ctx.settings.session_id);
    async move {
        let mut pace = Pace::default();
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
            let engine = match voice_for(&ctx, &clause.language) {
                Ok(e) => e,
                Err(e) => {
                    caption_only(&ctx, &tx, &clause).await;
                    warn!(turn = turn.id.0, error = %e, "no voice");
                    ctx.fail_turn(&turn, "tts", e.to_string()).await;
                    continue;
                }
            };
            // The language's voice first, then any other voice a run used ("…+kokoro:af_heart").
            let mut voices = vec![engine.name().to_string()];
            let parts = spoken_parts(&ctx, engine, &clause.text, &clause.language);
            for p in &parts {
                if !voices.iter().any(|v| v == p.engine.name()) {
                    voices.push(p.engine.name().to_string());
                }
            }
            let voice = voices.join("+");
            let speed = ctx.settings.speech_rate;
            let priority = pace.priority(&turn);
            let started = std::time::Instant::now();
            let synth = if parts.iter().all(|p| p.engine.light()) {
                tokio::task::spawn_blocking(move || synthesize_parts(&parts, speed))
                    .await
                    .map_err(|e| SchedError::Task(e.to_string()))
            } else {
                let job = move || synthesize_parts(&parts, speed);
                ctx.infer(priority, &turn.cancel, Some(&turn.clock), job)
                    .await
            };
            let synth_s = started.elapsed().as_secs_f32();
            let (samples, rate) = match synth {
                Ok(Ok(r)) => r,
                // Interrupted while it waited for the CPU.
                Err(SchedError::Cancelled) => {
                    Metrics::incr(&ctx.metrics.stale_messages_dropped);
                    continue;
                }
                Ok(Err(e)) => {
                    warn!(turn = turn.id.0, error = %e, "synthesis failed");
                    caption_only(&ctx, &tx, &clause).await;
                    ctx.fail_turn(&turn, "tts", e.to_string()).await;
                    continue;
                }
                // The synthesis panicked (or the scheduler is gone): the words still reach the
                // user as a caption, and the turn is reported failed like any other.
                Err(e) => {
                    warn!(turn = turn.id.0, error = %e, "TTS task failed");
                    caption_only(&ctx, &tx, &clause).await;
                    ctx.fail_turn(&turn, "tts", e.to_string()).await;
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
            pace.produced(&turn, clause_ms);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_silence_is_trimmed_to_the_keep() {
        let mut audio = vec![0.0f32; 8_400];
        audio.extend(std::iter::repeat_n(0.3f32, 100));
        trim_lead(&mut audio, 960);
        assert_eq!(audio.len(), 960 + 100);
        assert_eq!(audio[960], 0.3);
        // All silence (nothing to find) and already-tight audio stay as they are.
        let mut quiet = vec![0.0f32; 500];
        trim_lead(&mut quiet, 10);
        assert_eq!(quiet.len(), 500);
        let mut tight = vec![0.3f32; 50];
        trim_lead(&mut tight, 960);
        assert_eq!(tight.len(), 50);
    }
}
