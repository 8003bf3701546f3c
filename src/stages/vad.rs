//! VAD stage: frames the incoming audio, asks the detector for speech probabilities, and turns
//! them into utterances with the endpointing rules of `VadConfig` (min speech, min silence,
//! padding, maximum length). A confirmed utterance's audio streams on to ASR as it arrives (the
//! recogniser works while the user talks); pauses and ends of speech ask it for a transcript.
//! Speech during a reply (live sessions) interrupts it.

use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{debug, info_span, warn, Instrument};

use super::StageCtx;
use crate::audio::PIPELINE_RATE;
use crate::backend::vad::VoiceActivity;
use crate::config::VadConfig;
use crate::flow::endpoint::{Endpoint, Endpointer};
use crate::flow::messages::{Ingest, SpeechInput, Turn, TurnId};
use crate::flow::PipelineEvent;
use crate::metrics::Metrics;
use crate::text::turn_end::{completeness, Completeness};

/// The rate of Silero's telephone mode, used for sessions whose audio came from a phone line.
pub const NARROWBAND_RATE: u32 = 8_000;

struct Work {
    detector: Box<dyn VoiceActivity>,
    endpointer: Endpointer,
    pending: Vec<f32>,
    error: Option<String>,
    /// Pipeline samples per detector sample: 2 when the detector runs Silero's 8 kHz mode on a
    /// phone line's audio (upsampled to the pipeline rate by the transport, so every other
    /// sample is the band-limited 8 kHz signal again).
    decimate: usize,
    /// Samples of the utterance in progress already streamed to ASR.
    streamed: usize,
}

/// What the detector made of a batch of audio, in order.
#[derive(Debug)]
enum VadOut {
    /// Audio of the confirmed utterance in progress, and the non-speech at its end.
    Speech(Vec<f32>, usize),
    Endpoint(Endpoint),
}

impl Work {
    /// Streams the utterance's audio not yet handed out (coalesced with a preceding chunk).
    fn stream_new(&mut self, out: &mut Vec<VadOut>) {
        let utt = self.endpointer.utterance();
        if utt.len() <= self.streamed {
            return;
        }
        let silence = self.endpointer.trailing_silence();
        let new = &utt[self.streamed..];
        self.streamed = utt.len();
        if let Some(VadOut::Speech(pcm, trailing)) = out.last_mut() {
            pcm.extend_from_slice(new);
            *trailing = silence;
        } else {
            out.push(VadOut::Speech(new.to_vec(), silence));
        }
    }

    /// An endpoint, with the audio it covers streamed before it (after it, for a start).
    fn endpoint(&mut self, ev: Endpoint, out: &mut Vec<VadOut>) {
        match ev {
            Endpoint::Utterance(pcm) => {
                // The finished utterance (trailing silence trimmed): only what was not sent.
                if pcm.len() > self.streamed {
                    out.push(VadOut::Speech(pcm[self.streamed..].to_vec(), 0));
                }
                self.streamed = 0;
                out.push(VadOut::Endpoint(Endpoint::Utterance(pcm)));
            }
            Endpoint::SpeechStarted => {
                self.streamed = 0;
                out.push(VadOut::Endpoint(Endpoint::SpeechStarted));
                self.stream_new(out);
            }
            ev => {
                self.stream_new(out);
                out.push(VadOut::Endpoint(ev));
            }
        }
    }
}

/// Runs the detector over `audio` on the blocking pool; returns what it found, in order.
async fn process(mut work: Work, audio: Vec<f32>) -> Option<(Work, Vec<VadOut>)> {
    let joined = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        work.pending.extend_from_slice(&audio);
        let frame = work.detector.frame_samples() * work.decimate;
        let mut start = 0;
        let mut narrow = Vec::new();
        while work.pending.len() - start >= frame {
            let f = &work.pending[start..start + frame];
            let input = if work.decimate == 1 {
                f
            } else {
                narrow.clear();
                narrow.extend(f.iter().step_by(work.decimate));
                &narrow[..]
            };
            let p = match work.detector.speech_probability(input) {
                Ok(p) => p,
                Err(e) => {
                    // One bad inference must not end the session: count it as silence.
                    if work.error.is_none() {
                        work.error = Some(e.to_string());
                    }
                    0.0
                }
            };
            match work.endpointer.push(f, p) {
                Some(ev) => work.endpoint(ev, &mut out),
                None => work.stream_new(&mut out),
            }
            start += frame;
        }
        work.pending.drain(..start);
        (work, out)
    })
    .await;
    // Fails only if the closure panicked or the runtime is shutting down: the stage ends.
    joined
        .map_err(|e| warn!(error = %e, "VAD worker failed"))
        .ok()
}

pub async fn run(ctx: StageCtx, mut rx: mpsc::Receiver<Ingest>, tx: mpsc::Sender<SpeechInput>) {
    let span = info_span!("stage", name = "vad", session = %ctx.settings.session_id);
    async move {
        let vad_rate = if ctx.settings.narrowband {
            NARROWBAND_RATE
        } else {
            PIPELINE_RATE
        };
        let detector = match ctx.backends.vad.create(vad_rate) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "VAD unavailable");
                return;
            }
        };
        let decimate = (PIPELINE_RATE / vad_rate) as usize;
        let frame = detector.frame_samples() * decimate;
        let pause_ms = if ctx.settings.speculative {
            ctx.backends.config.turn.speculative_pause_ms
        } else {
            0
        };
        let mut work = Some(Work {
            detector,
            endpointer: Endpointer::new(vad_config(&ctx), frame).with_pause(pause_ms),
            pending: Vec::with_capacity(frame * 4),
            error: None,
            decimate,
            streamed: 0,
        });
        let mut turns = TurnTaking::default();
        while let Some(msg) = ctx.next(&mut rx).await {
            let (Some(w), outs) = (match msg {
                Ingest::Audio(samples) => {
                    let Some(mut w) = work.take() else { break };
                    turns.judge_end(&ctx, &mut w.endpointer);
                    let Some((w, outs)) = process(w, samples).await else {
                        break;
                    };
                    (Some(w), outs)
                }
                Ingest::Text(text) => {
                    if !turns.typed(&ctx, &tx, text).await {
                        return;
                    }
                    continue;
                }
                Ingest::EndOfInput => {
                    let Some(mut w) = work.take() else { break };
                    let mut outs = Vec::new();
                    if let Some(pcm) = w.endpointer.finish() {
                        w.endpoint(Endpoint::Utterance(pcm), &mut outs);
                    }
                    (Some(w), outs)
                }
            }) else {
                break;
            };
            if let Some(e) = &w.error {
                warn!(error = %e, "VAD inference error (treated as silence)");
            }
            for out in outs {
                if !turns.on_output(&ctx, &tx, out).await {
                    return;
                }
            }
            turns.check_barge_in(&ctx, w.endpointer.speech_ms()).await;
            work = Some(w);
        }
        // Input closed: flush an utterance in progress.
        if let Some(mut w) = work {
            if let Some(pcm) = w.endpointer.finish() {
                let mut outs = Vec::new();
                w.endpoint(Endpoint::Utterance(pcm), &mut outs);
                for out in outs {
                    if !turns.on_output(&ctx, &tx, out).await {
                        break;
                    }
                }
            }
        }
        if !turns.heard_speech && !ctx.shutdown.is_cancelled() {
            ctx.emit(PipelineEvent::NoSpeech).await;
        }
    }
    .instrument(span)
    .await
}

/// Turn-taking decisions on top of the endpointer: speculative starts at pauses, barge-in only
/// after `turn.barge_in_min_ms` of speech over a reply, short speech over a reply sent on as a
/// tentative turn (a backchannel does not interrupt), and a user who goes on speaking before the
/// assistant has said anything continues the same turn (the recogniser resumes its stream).
#[derive(Default)]
struct TurnTaking {
    heard_speech: bool,
    /// A reply was playing when the current speech started (barge-in on: it may interrupt).
    over_reply: bool,
    /// Barge-in off and a reply was playing when the current speech started: this speech is not
    /// heard, so the reply plays out whole.
    ignoring: bool,
    speculative: Option<Arc<Turn>>,
    /// The speculative turn whose words already set how long its pause must last.
    judged: Option<TurnId>,
    /// The latest confirmed turn and the length of all the audio it was heard from.
    base: Option<(Arc<Turn>, usize)>,
    /// Audio of an unanswered turn the user is continuing (it prefixes this utterance).
    carried: usize,
}

/// The base turn is still being worked on and nothing of its reply went out.
fn unanswered(ctx: &StageCtx, turn: &Turn) -> bool {
    !turn.is_stale()
        && turn.clock.output_first_audio.get().is_none()
        && ctx.turns.active().is_some_and(|a| a.id == turn.id)
}

impl TurnTaking {
    /// Once the words of the pause's speculative turn are known, they say how long the pause
    /// must last to end the turn: a finished question or sentence ends it sooner
    /// (`turn.finished_pause_ms`), words that trail off make it wait (`turn.unfinished_pause_ms`).
    fn judge_end(&mut self, ctx: &StageCtx, endpointer: &mut Endpointer) {
        let Some(turn) = &self.speculative else {
            return;
        };
        if self.judged == Some(turn.id) || turn.is_stale() {
            return;
        }
        let Some((text, language, _)) = turn.user_text.get() else {
            return;
        };
        self.judged = Some(turn.id);
        let cfg = &ctx.backends.config.turn;
        let (ms, counter) = match completeness(text, language) {
            Completeness::Finished => (cfg.finished_pause_ms, &ctx.metrics.turn_ends_sooner),
            Completeness::Unfinished => (cfg.unfinished_pause_ms, &ctx.metrics.turn_ends_later),
            Completeness::Unsure => return,
        };
        if ms > 0 {
            debug!(
                turn = turn.id.0,
                pause_ms = ms,
                "the words set the end of the turn"
            );
            Metrics::incr(counter);
            endpointer.end_after(ms);
        }
    }

    async fn on_output(
        &mut self,
        ctx: &StageCtx,
        tx: &mpsc::Sender<SpeechInput>,
        out: VadOut,
    ) -> bool {
        match out {
            VadOut::Speech(..) if self.ignoring => true,
            VadOut::Speech(pcm, trailing_silence) => {
                ctx.forward(
                    tx,
                    SpeechInput::Audio {
                        pcm,
                        trailing_silence,
                    },
                )
                .await
            }
            VadOut::Endpoint(ev) => self.on_endpoint(ctx, tx, ev).await,
        }
    }

    async fn on_endpoint(
        &mut self,
        ctx: &StageCtx,
        tx: &mpsc::Sender<SpeechInput>,
        ev: Endpoint,
    ) -> bool {
        if self.ignoring {
            return self.while_ignoring(ctx, ev);
        }
        match ev {
            Endpoint::SpeechStarted if !ctx.settings.barge_in && ctx.turns.replying() => {
                debug!("speech over a reply with barge-in off: not heard");
                self.ignoring = true;
                true
            }
            Endpoint::SpeechStarted => {
                self.heard_speech = true;
                self.carried = 0;
                if ctx.settings.barge_in {
                    if let Some((base, audio)) = self.base.take() {
                        if unanswered(ctx, &base) {
                            // The user goes on before being answered: one turn, not two.
                            debug!(turn = base.id.0, "turn continued");
                            ctx.turns.abandon(&base);
                            self.carried = audio;
                            if base.is_confirmed() {
                                ctx.emit(PipelineEvent::TurnContinued { turn: base.id })
                                    .await;
                            }
                        }
                    }
                }
                self.over_reply = ctx.settings.barge_in && ctx.turns.replying();
                let resume = self.carried > 0;
                if !ctx.forward(tx, SpeechInput::Start { resume }).await {
                    return false;
                }
                ctx.turns.set_speaking(true);
                ctx.emit(PipelineEvent::SpeechStarted).await;
                true
            }
            Endpoint::Pause(pcm) => {
                if self.over_reply || self.speculative.is_some() {
                    return true;
                }
                let turn = ctx.turns.begin_speculative();
                Metrics::incr(&ctx.metrics.speculative_started);
                debug!(turn = turn.id.0, "speculative start");
                self.speculative = Some(Arc::clone(&turn));
                self.base = Some((Arc::clone(&turn), self.carried + pcm.len()));
                ctx.forward(tx, SpeechInput::Decide(turn)).await
            }
            Endpoint::Resumed => {
                if let Some(turn) = self.speculative.take() {
                    Metrics::incr(&ctx.metrics.speculative_abandoned);
                    debug!(turn = turn.id.0, "speculative turn abandoned");
                    ctx.turns.abandon(&turn);
                }
                true
            }
            Endpoint::Utterance(pcm) => {
                ctx.turns.set_speaking(false);
                self.heard_speech = true;
                let audio = std::mem::take(&mut self.carried) + pcm.len();
                let audio_s = audio as f32 / PIPELINE_RATE as f32;
                if let Some(turn) = self.speculative.take() {
                    if turn.confirm() && !turn.is_stale() {
                        let audio_s =
                            self.base.as_ref().map_or(0, |(_, a)| *a) as f32 / PIPELINE_RATE as f32;
                        return ctx
                            .emit(PipelineEvent::SpeechStopped {
                                turn: turn.id,
                                audio_s,
                            })
                            .await;
                    }
                }
                let turn = if std::mem::take(&mut self.over_reply) && ctx.turns.replying() {
                    ctx.turns.begin_tentative()
                } else {
                    let (turn, old) = ctx.turns.start(ctx.settings.barge_in);
                    if let Some(old) = old {
                        ctx.report_interrupted(&old).await;
                    }
                    turn
                };
                debug!(turn = turn.id.0, audio_s, "utterance");
                if !turn.over_reply.load(std::sync::atomic::Ordering::Relaxed) {
                    self.base = Some((Arc::clone(&turn), audio));
                }
                ctx.emit(PipelineEvent::SpeechStopped {
                    turn: turn.id,
                    audio_s,
                })
                .await;
                ctx.forward(tx, SpeechInput::Decide(turn)).await
            }
        }
    }

    /// Speech that started over a reply of a session with barge-in off: nothing of it reaches
    /// the recogniser or the turns; it ends with its utterance.
    fn while_ignoring(&mut self, ctx: &StageCtx, ev: Endpoint) -> bool {
        if let Endpoint::Utterance(_) = ev {
            self.ignoring = false;
            Metrics::incr(&ctx.metrics.speech_over_reply_ignored);
        }
        true
    }

    /// Interrupts the reply once the speech over it has lasted `turn.barge_in_min_ms`.
    async fn check_barge_in(&mut self, ctx: &StageCtx, speech_ms: u32) {
        if !self.over_reply || speech_ms < ctx.backends.config.turn.barge_in_min_ms {
            return;
        }
        self.over_reply = false;
        if let Some(turn) = ctx.turns.interrupt() {
            ctx.report_interrupted(&turn).await;
        }
    }

    /// A typed turn interrupts whatever is playing and goes straight to the LLM.
    async fn typed(
        &mut self,
        ctx: &StageCtx,
        tx: &mpsc::Sender<SpeechInput>,
        text: String,
    ) -> bool {
        // A typed turn is the user's input too: the session did not end without one.
        self.heard_speech = true;
        if let Some(turn) = self.speculative.take() {
            ctx.turns.abandon(&turn);
        }
        let (turn, old) = ctx.turns.start(true);
        if let Some(old) = old {
            ctx.report_interrupted(&old).await;
        }
        ctx.forward(tx, SpeechInput::Typed { turn, text }).await
    }
}

fn vad_config(ctx: &StageCtx) -> VadConfig {
    let mut cfg = ctx.backends.config.vad.clone();
    if let Some(ms) = ctx.settings.min_silence_ms {
        cfg.min_silence_ms = ms;
    }
    cfg
}
