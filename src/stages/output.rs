//! Output stage: hands reply audio to the transport in order, tracks how much of each reply went
//! out (what barge-in reports as played), and closes each turn with its stage timings.

use tokio::sync::mpsc;
use tracing::{info, info_span, Instrument};

use super::StageCtx;
use crate::metrics::Metrics;
use crate::pipeline::messages::{ReplyAudio, TurnClock, TurnId};
use crate::pipeline::PipelineEvent;

struct Progress {
    turn: TurnId,
    offset: u64,
    rate: u32,
    text: String,
    voice: String,
    audio_s: f64,
    synth_s: f64,
}

pub async fn run(ctx: StageCtx, mut rx: mpsc::Receiver<ReplyAudio>) {
    let span = info_span!("stage", name = "output", session = %ctx.settings.session_id);
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
            let p = cur.get_or_insert_with(|| Progress {
                turn: a.turn.id,
                offset: 0,
                rate: a.sample_rate,
                text: String::new(),
                voice: String::new(),
                audio_s: 0.0,
                synth_s: 0.0,
            });
            if !a.text.is_empty() {
                if !p.text.is_empty() {
                    p.text.push(' ');
                }
                p.text.push_str(&a.text);
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
                p.rate = a.sample_rate;
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
                if p.offset > 0 {
                    Metrics::incr(&ctx.metrics.turns_completed);
                    info!(
                        turn = a.turn.id.0,
                        first_audio_ms = timings.end_to_first_audio.map(|d| d.as_millis() as u64),
                        reply_audio_s = p.audio_s,
                        "turn completed"
                    );
                    ctx.emit(PipelineEvent::TurnCompleted {
                        turn: a.turn.id,
                        reply_text: p.text,
                        voice: p.voice,
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
