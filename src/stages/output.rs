//! Output stage: hands reply captions and audio to the transport in order. It holds a
//! speculative turn's reply until the turn is confirmed (the user really stopped), paces audio
//! in real time for live transports (so an interruption stops what was not yet heard), records
//! which clause went out when (what barge-in keeps in the history), and closes each turn with
//! its stage timings.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, info_span, Instrument};

use super::StageCtx;
use crate::flow::messages::{ReplyAudio, Turn, TurnClock, TurnId};
use crate::flow::PipelineEvent;
use crate::metrics::Metrics;

struct Progress {
    turn: TurnId,
    offset: u64,
    text: String,
    voice: String,
    audio_s: f64,
    synth_s: f64,
    /// When the reply's first audio went out (pacing reference).
    started: Option<Instant>,
}

impl Progress {
    fn new(turn: TurnId) -> Self {
        Self {
            turn,
            offset: 0,
            text: String::new(),
            voice: String::new(),
            audio_s: 0.0,
            synth_s: 0.0,
            started: None,
        }
    }
}

/// Waits until audio starting `audio_s` into the reply may go out: no more than `lead` ahead of
/// real-time playback. False if the turn was cancelled meanwhile.
async fn pace(turn: &Turn, started: Instant, audio_s: f64, lead: Duration) -> bool {
    let due = started + Duration::from_secs_f64(audio_s).saturating_sub(lead);
    tokio::select! {
        biased;
        _ = turn.cancel.cancelled() => false,
        _ = tokio::time::sleep_until(due) => true,
    }
}

pub async fn run(ctx: StageCtx, mut rx: mpsc::Receiver<ReplyAudio>) {
    let span = info_span!("stage", name = "output", session = %ctx.settings.session_id);
    let lead = Duration::from_millis(u64::from(ctx.backends.config.turn.output_lead_ms));
    async move {
        let mut cur: Option<Progress> = None;
        while let Some(a) = ctx.next(&mut rx).await {
            if cur.as_ref().is_some_and(|p| p.turn != a.turn.id) {
                // The previous turn was cut off (barge-in reported it); start afresh.
                cur = None;
            }
            if ctx.drop_if_stale(&a.turn) {
                continue;
            }
            if cur.is_none() {
                // First output of this turn: a speculative reply waits for the end of the turn,
                // and then the final transcript goes out unless it already has (the turn may
                // have been confirmed after its words were decided but before this output).
                if !a.turn.is_confirmed() && !a.turn.wait_confirmed().await {
                    Metrics::incr(&ctx.metrics.stale_messages_dropped);
                    continue;
                }
                let words = a.turn.user_text.get();
                if let Some((text, language, confidence)) =
                    words.filter(|_| a.turn.claim_final_transcript())
                {
                    let final_transcript = PipelineEvent::Transcript {
                        turn: a.turn.id,
                        text: text.clone(),
                        stable: text.clone(),
                        language: language.clone(),
                        confidence: *confidence,
                        spoken: Vec::new(),
                        is_final: true,
                    };
                    if !ctx.emit(final_transcript).await {
                        return;
                    }
                }
            }
            let p = cur.get_or_insert_with(|| Progress::new(a.turn.id));
            if !a.samples.is_empty() && ctx.settings.pace_output {
                let started = *p.started.get_or_insert_with(Instant::now);
                if !pace(&a.turn, started, p.audio_s, lead).await {
                    Metrics::incr(&ctx.metrics.stale_messages_dropped);
                    continue;
                }
            }
            if !a.text.is_empty() {
                if !p.text.is_empty() {
                    p.text.push(' ');
                }
                p.text.push_str(&a.text);
                a.turn
                    .record_clause(&a.text, (p.audio_s * 1000.0) as u64, a.clause_ms);
                // The caption goes out just before the audio it belongs to.
                let caption = PipelineEvent::ReplyText {
                    turn: a.turn.id,
                    text: a.text.clone(),
                };
                if !ctx.emit(caption).await {
                    return;
                }
            }
            p.synth_s += f64::from(a.synth_s);
            if p.voice.is_empty() && !a.voice.is_empty() {
                p.voice = a.voice.clone();
            }
            if !a.samples.is_empty() {
                TurnClock::mark(&a.turn.clock.output_first_audio);
                let n = a.samples.len() as u64;
                a.turn.add_played(a.samples.len(), a.sample_rate);
                p.audio_s += n as f64 / f64::from(a.sample_rate.max(1));
                let ev = PipelineEvent::ReplyAudio {
                    turn: a.turn.id,
                    samples: a.samples,
                    sample_rate: a.sample_rate,
                    offset_samples: p.offset,
                };
                p.offset += n;
                if !ctx.emit(ev).await {
                    return;
                }
            }
            if a.last {
                let Some(p) = cur.take() else { continue };
                let rtf = (p.audio_s > 0.0).then(|| (p.synth_s / p.audio_s) as f32);
                let timings = a.turn.clock.timings(a.asr_compute_s, rtf);
                if let Some(d) = timings.end_to_first_audio {
                    ctx.metrics.observe("end_to_first_audio", d);
                }
                ctx.turns.finish(a.turn.id);
                if p.offset > 0 || !p.text.is_empty() {
                    Metrics::incr(&ctx.metrics.turns_completed);
                    info!(
                        turn = a.turn.id.0,
                        first_audio_ms = timings.end_to_first_audio.map(|d| d.as_millis() as u64),
                        reply_audio_s = p.audio_s,
                        "turn completed"
                    );
                    let language = a
                        .turn
                        .user_text
                        .get()
                        .map(|(_, l, _)| l.clone())
                        .unwrap_or_default();
                    ctx.emit(PipelineEvent::TurnCompleted {
                        turn: a.turn.id,
                        reply_text: p.text,
                        voice: p.voice,
                        language,
                        timings,
                    })
                    .await;
                }
            }
        }
    }
    .instrument(span)
    .await
}
