//! LLM stage: asks the model for a short spoken answer in the user's language and hands each
//! clause to TTS as soon as it is complete and checked (`backend::llm::spoken`); a transcript
//! too broken to answer gets "please say that again" instead. Prefills the words of a turn still
//! being spoken. Owns the session's conversation memory.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::mpsc;
use tracing::{debug, info_span, warn, Instrument};

use super::StageCtx;
use crate::backend::llm::spoken::{speak, ClauseSink, ReplySpec};
use crate::backend::llm::{ChatRequest, LlmError};
use crate::flow::messages::{Heard, ReplyText, TurnClock, UserTurn};
use crate::metrics::Metrics;
use crate::scheduler::{Priority, Slot};
use crate::text::phrases::say_again;
use crate::text::reply_guard::unclear_transcript;

/// Starts prefilling what the user has said so far of the turn still being spoken.
fn start_prefill(ctx: &StageCtx, heard: Heard) -> BoxFuture<'static, Result<bool, LlmError>> {
    let mixed = crate::text::codeswitch::mixed_with_english(&heard.text, &heard.language, &[]);
    let req = ChatRequest {
        messages: ctx.memory.messages_for(&heard.text, &heard.language, mixed),
        max_tokens: 1,
        temperature: ctx.backends.config.llm.temperature,
        session_key: Some(ctx.settings.session_id.clone()),
    };
    let ctx = ctx.clone();
    async move {
        // Words still being spoken are the least urgent work of the cores: shed when busy.
        let _slot = if ctx.backends.llm.on_local_cores() {
            let cancel = ctx.shutdown.child_token();
            match ctx.cpu_slot(Priority::Partial, &cancel, None).await {
                Ok(slot) => Some(slot),
                Err(_) => return Ok(false),
            }
        } else {
            None
        };
        ctx.backends.llm.prefill(req).await
    }
    .boxed()
}

/// One clause of the reply to `user` for the TTS stage (`last` closes the reply).
fn reply_text(user: &UserTurn, text: String, last: bool) -> ReplyText {
    ReplyText {
        turn: user.turn.clone(),
        text,
        language: user.language.clone(),
        last,
        asr_compute_s: user.asr_compute_s,
    }
}

/// Hands a live turn's checked clauses to the TTS stage, marking the turn's clock.
struct StageSink<'a> {
    ctx: &'a StageCtx,
    tx: &'a mpsc::Sender<ReplyText>,
    user: &'a UserTurn,
    /// Held until the first token: the prompt's processing is what it guards.
    prompt_slot: Option<Slot>,
}

impl ClauseSink for StageSink<'_> {
    fn first_token(&mut self) {
        self.prompt_slot = None;
        TurnClock::mark(&self.user.turn.clock.llm_first_token);
    }

    async fn clause(&mut self, text: String) -> bool {
        TurnClock::mark(&self.user.turn.clock.first_clause);
        self.ctx
            .forward(self.tx, reply_text(self.user, text, false))
            .await
    }
}

pub async fn run(ctx: StageCtx, mut rx: mpsc::Receiver<UserTurn>, tx: mpsc::Sender<ReplyText>) {
    let span = info_span!("stage", name = "llm", session = %ctx.settings.session_id);
    async move {
        let cfg = &ctx.backends.config.llm;
        let mut heard = ctx.heard.subscribe();
        // At most one prefill in flight; a turn that arrives drops it (what it already put in
        // the cache stays there). A failed prefill costs only the head start.
        let mut prefill: Option<BoxFuture<'static, Result<bool, LlmError>>> = None;
        loop {
            let user = tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => break,
                msg = rx.recv() => match msg {
                    Some(user) => user,
                    None => break,
                },
                done = async { prefill.as_mut().expect("guarded by is_some").await },
                    if prefill.is_some() => {
                    prefill = None;
                    match done {
                        Ok(true) => Metrics::incr(&ctx.metrics.llm_prefills),
                        Ok(false) => {}
                        Err(e) => debug!(error = %e, "prefill failed; the turn reads it all"),
                    }
                    continue;
                }
                changed = heard.changed(), if prefill.is_none() => {
                    if changed.is_ok() {
                        if let Some(h) = heard.borrow_and_update().clone() {
                            prefill = Some(start_prefill(&ctx, h));
                        }
                    }
                    continue;
                }
            };
            prefill = None;
            // Words heard before this turn was decided belong to it: no later prefill of them.
            heard.borrow_and_update();
            if ctx.drop_if_stale(&user.turn) {
                continue;
            }
            let turn = user.turn.clone();
            if let Some(why) = unclear_transcript(&user.text, &user.language) {
                // Not worth a guess: ask again in the user's language, and keep the noise out
                // of the history the next prompts are built from.
                debug!(
                    turn = turn.id.0,
                    ?why,
                    "unclear transcript: asking to repeat"
                );
                Metrics::incr(&ctx.metrics.turns_unclear);
                TurnClock::mark(&turn.clock.llm_first_token);
                TurnClock::mark(&turn.clock.first_clause);
                let ask = say_again(&user.language).to_string();
                if !ctx.forward(&tx, reply_text(&user, ask, false)).await
                    || !ctx
                        .forward(&tx, reply_text(&user, String::new(), true))
                        .await
                {
                    return;
                }
                continue;
            }
            let req = ChatRequest {
                messages: ctx.memory.messages_for(
                    &user.text,
                    &user.language,
                    user.mixed_with_english,
                ),
                max_tokens: cfg.max_tokens,
                temperature: cfg.temperature,
                session_key: Some(ctx.settings.session_id.clone()),
            };
            // The worker's prompt processing holds a slot of the cores until the first token.
            // Its decoding then runs beside the voices: holding the slot for the whole reply
            // would keep the first clause's voice waiting for the reply's last token.
            let prompt_slot = match ctx.backends.llm.on_local_cores() {
                true => ctx
                    .cpu_slot(Priority::FirstClause, &turn.cancel, Some(&turn.clock))
                    .await
                    .ok(),
                false => None,
            };
            let spec = ReplySpec {
                user_text: &user.text,
                language: &user.language,
                mixed: user.mixed_with_english,
                first_token_timeout: Duration::from_millis(cfg.first_token_timeout_ms),
                idle_timeout: Duration::from_millis(cfg.idle_timeout_ms),
            };
            let mut sink = StageSink {
                ctx: &ctx,
                tx: &tx,
                user: &user,
                prompt_slot,
            };
            let spoken = speak(
                ctx.backends.llm.as_ref(),
                req,
                &spec,
                &turn.cancel,
                &mut sink,
            )
            .await;
            drop(sink);
            if spoken.stopped && !turn.cancel.is_cancelled() {
                return; // the TTS stage is gone: the session is ending
            }
            Metrics::add(
                &ctx.metrics.reply_clauses_wrong_script,
                u64::from(spoken.wrong_script),
            );
            Metrics::add(&ctx.metrics.reply_clauses_echoed, u64::from(spoken.echoed));
            if spoken.regenerated {
                Metrics::incr(&ctx.metrics.replies_regenerated);
            }
            if spoken.fallback {
                Metrics::incr(&ctx.metrics.replies_fallback);
            }
            TurnClock::mark(&turn.clock.llm_done);
            if let (Some(first), Some(lang)) =
                (turn.clock.llm_first_token.get(), turn.clock.lang_done.get())
            {
                ctx.metrics
                    .observe("llm_first_token", first.duration_since(*lang));
            }
            let reply = spoken.text;
            if let Some(e) = &spoken.failure {
                warn!(turn = turn.id.0, error = %e, "LLM failed");
                if reply.is_empty() {
                    ctx.fail_turn(&turn, "llm", e.to_string()).await;
                }
            }
            // A speculative turn is remembered only once the user's pause proved final.
            if turn.is_confirmed() || turn.wait_confirmed().await {
                let (text, language) = (user.text.clone(), user.language.clone());
                ctx.memory
                    .record(&turn, text, reply, language, user.mixed_with_english)
                    .await;
            }
            // Always close the reply so the output stage can complete (or fail) the turn.
            if !ctx
                .forward(&tx, reply_text(&user, String::new(), true))
                .await
            {
                return;
            }
        }
    }
    .instrument(span)
    .await
}
