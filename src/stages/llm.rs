//! LLM stage: asks the model for a short spoken answer in the user's language, streams its
//! tokens through the clause splitter, and hands each clause to TTS as soon as it is complete.
//! Owns the session's conversation memory.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tracing::{debug, info_span, warn, Instrument};

use super::StageCtx;
use crate::backend::llm::{with_deadlines, ChatRequest, LlmError, LlmEvent};
use crate::metrics::Metrics;
use crate::pipeline::messages::{Heard, ReplyText, TurnClock, UserTurn};
use crate::scheduler::Priority;
use crate::text::clauses::ClauseSplitter;

/// Removes what a TTS voice should not read out: markdown emphasis, headings, code ticks.
pub fn speakable(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '*' | '#' | '`' | '_' | '~' | '|' | '\u{FFFD}'))
        .filter(|c| !is_emoji(*c))
        .collect()
}

fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F300..=0x1FAFF | 0x2600..=0x27BF | 0xFE0F)
}

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
            let clause = |text: String, last: bool| ReplyText {
                turn: turn.clone(),
                text,
                language: user.language.clone(),
                last,
                asr_compute_s: user.asr_compute_s,
            };
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
            let mut reply = String::new();
            let mut failure: Option<String> = None;
            // The worker's prompt processing holds a slot of the cores until the first token.
            // Its decoding then runs beside the voices: holding the slot for the whole reply
            // would keep the first clause's voice waiting for the reply's last token.
            let mut prompt_slot = match ctx.backends.llm.on_local_cores() {
                true => ctx
                    .cpu_slot(Priority::FirstClause, &turn.cancel, Some(&turn.clock))
                    .await
                    .ok(),
                false => None,
            };
            let opened = tokio::select! {
                biased;
                _ = turn.cancel.cancelled() => None,
                r = ctx.backends.llm.stream_chat(req) => Some(r),
            };
            match opened {
                None => {}
                Some(Err(e)) => failure = Some(e.to_string()),
                Some(Ok(stream)) => {
                    let mut stream = with_deadlines(
                        stream,
                        Duration::from_millis(cfg.first_token_timeout_ms),
                        Duration::from_millis(cfg.idle_timeout_ms),
                    );
                    let mut splitter = ClauseSplitter::new();
                    loop {
                        let ev = tokio::select! {
                            biased;
                            _ = turn.cancel.cancelled() => break,
                            ev = stream.next() => ev,
                        };
                        match ev {
                            Some(Ok(LlmEvent::Delta(d))) => {
                                prompt_slot = None;
                                TurnClock::mark(&turn.clock.llm_first_token);
                                reply.push_str(&d);
                                for c in splitter.push(&d) {
                                    TurnClock::mark(&turn.clock.first_clause);
                                    if !ctx.forward(&tx, clause(speakable(&c), false)).await {
                                        return;
                                    }
                                }
                            }
                            Some(Ok(LlmEvent::Done(usage))) => {
                                debug!(turn = turn.id.0, ?usage, "reply done");
                                break;
                            }
                            Some(Err(e)) => {
                                failure = Some(e.to_string());
                                break;
                            }
                            None => break,
                        }
                    }
                    if !turn.is_stale() {
                        if let Some(rest) = splitter.finish() {
                            TurnClock::mark(&turn.clock.first_clause);
                            if !ctx.forward(&tx, clause(speakable(&rest), false)).await {
                                return;
                            }
                        }
                    }
                }
            }
            drop(prompt_slot);
            TurnClock::mark(&turn.clock.llm_done);
            if let (Some(first), Some(lang)) =
                (turn.clock.llm_first_token.get(), turn.clock.lang_done.get())
            {
                ctx.metrics
                    .observe("llm_first_token", first.duration_since(*lang));
            }
            let reply = reply.trim().to_string();
            if let Some(msg) = &failure {
                warn!(turn = turn.id.0, error = %msg, "LLM failed");
                if reply.is_empty() {
                    ctx.fail_turn(&turn, "llm", msg.clone()).await;
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
            if !ctx.forward(&tx, clause(String::new(), true)).await {
                return;
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::speakable;

    #[test]
    fn markdown_and_emoji_are_not_spoken() {
        assert_eq!(speakable("**Namaste** 🙏 `code`"), "Namaste  code");
        assert_eq!(speakable("नमस्ते।"), "नमस्ते।");
    }
}
