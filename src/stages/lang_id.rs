//! Language-id stage: each final transcript's language decided (`flow::language_id`: the
//! spoken guess against the script, then the session's hysteresis), backchannels told apart,
//! and the turn handed to the LLM stage with its language.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tracing::{debug, info_span, Instrument};

use super::StageCtx;
use crate::flow::language::Reason;
use crate::flow::language_id::{detected, is_backchannel, turn_language};
use crate::flow::messages::{Transcript, TurnClock, UserTurn};
use crate::flow::PipelineEvent;
use crate::metrics::Metrics;
use crate::text::codeswitch::mixed_with_english;

pub async fn run(ctx: StageCtx, mut rx: mpsc::Receiver<Transcript>, tx: mpsc::Sender<UserTurn>) {
    let span = info_span!("stage", name = "lang_id", session = %ctx.settings.session_id);
    async move {
        while let Some(t) = ctx.next(&mut rx).await {
            if ctx.drop_if_stale(&t.turn) {
                continue;
            }
            let allowed = &ctx.settings.languages;
            let (detected, confidence) = detected(
                &t.spoken_language,
                t.spoken_prob,
                &t.candidates,
                t.held,
                &t.text,
                allowed,
            );
            TurnClock::mark(&t.turn.clock.lang_done);
            let backchannel_language = if t.held {
                t.spoken_language.as_str()
            } else {
                detected.as_str()
            };
            if t.turn.over_reply.load(Ordering::Relaxed) {
                // Heard over the reply: an acknowledgement lets the reply go on.
                let lists = &ctx.backends.config.turn.backchannels;
                if is_backchannel(&t.text, backchannel_language, lists) {
                    Metrics::incr(&ctx.metrics.backchannels);
                    debug!(turn = t.turn.id.0, "backchannel");
                    ctx.emit(PipelineEvent::Backchannel {
                        turn: t.turn.id,
                        text: t.text.clone(),
                    })
                    .await;
                    continue;
                }
                if let Some(old) = ctx.turns.adopt(&t.turn, true) {
                    ctx.report_interrupted(&old).await;
                }
            }
            let decision = turn_language(
                &ctx.language,
                &detected,
                confidence,
                t.held,
                &t.text,
                allowed,
            );
            let language = decision.language.clone();
            let mixed = mixed_with_english(&t.text, &language, &t.candidates);
            if decision.reason == Reason::Held {
                Metrics::incr(&ctx.metrics.language_holds);
            }
            if mixed {
                Metrics::incr(&ctx.metrics.code_switched_turns);
            }
            debug!(
                turn = t.turn.id.0,
                language = %language,
                detected = %detected,
                confidence,
                reason = decision.reason.as_str(),
                mixed,
                "language decided"
            );
            let _ = t
                .turn
                .user_text
                .set((t.text.clone(), language.clone(), confidence));
            // A speculative turn's final transcript is sent by the output stage once the turn
            // is confirmed (if it is not already now).
            let is_final = t.turn.is_confirmed() && t.turn.claim_final_transcript();
            ctx.emit(PipelineEvent::Transcript {
                turn: t.turn.id,
                text: t.text.clone(),
                stable: if is_final {
                    t.text.clone()
                } else {
                    t.stable.clone()
                },
                language: language.clone(),
                confidence,
                spoken: t.candidates.clone(),
                is_final,
            })
            .await;
            ctx.emit(PipelineEvent::LanguageDecided {
                turn: t.turn.id,
                language: language.clone(),
                detected,
                confidence,
                reason: decision.reason.as_str(),
                mixed_with_english: mixed,
            })
            .await;
            if let Some(from) = decision.switched_from {
                Metrics::incr(&ctx.metrics.language_switches);
                ctx.emit(PipelineEvent::LanguageChanged {
                    turn: t.turn.id,
                    from,
                    to: language.clone(),
                })
                .await;
            }
            let msg = UserTurn {
                turn: t.turn,
                text: t.text,
                language,
                confidence,
                mixed_with_english: mixed,
                asr_compute_s: t.asr_compute_s,
            };
            if !ctx.forward(&tx, msg).await {
                return;
            }
        }
    }
    .instrument(span)
    .await
}
