//! Language-id stage: combines Whisper's spoken-language guess with the script and words of the
//! transcript. The script wins when it clearly names an allowed language (Whisper prompted in
//! Devanagari that still writes Urdu script is Urdu); otherwise the acoustic guess stands.

use tokio::sync::mpsc;
use tracing::{info_span, Instrument};

use super::StageCtx;
use crate::pipeline::messages::{Transcript, TurnClock, UserTurn};
use crate::pipeline::PipelineEvent;
use crate::text::script::{language_of_text, Script};

/// Share of letters a script needs before it overrides the acoustic guess.
const SCRIPT_OVERRIDE_SHARE: f32 = 0.6;

/// The language to answer in and its confidence.
pub fn decide(spoken: &str, spoken_prob: f32, text: &str, allowed: &[String]) -> (String, f32) {
    match language_of_text(text, allowed) {
        Some((lang, share)) if lang == spoken => (lang, spoken_prob.max(share)),
        // Same script family as the spoken guess (e.g. hi vs mr): trust the acoustics unless
        // the text is decisive; romanised Hindi (Latin script, spoken hi) stays Hindi.
        Some((lang, share))
            if share >= SCRIPT_OVERRIDE_SHARE
                && Script::of_language(&lang) != Script::of_language(spoken)
                && !(Script::of_language(&lang) == Some(Script::Latin)) =>
        {
            (lang, share * 0.9)
        }
        _ => (spoken.to_string(), spoken_prob),
    }
}

pub async fn run(ctx: StageCtx, mut rx: mpsc::Receiver<Transcript>, tx: mpsc::Sender<UserTurn>) {
    let span = info_span!("stage", name = "lang_id", session = %ctx.settings.session_id);
    async move {
        while let Some(t) = ctx.next(&mut rx).await {
            if ctx.drop_if_stale(&t.turn) {
                continue;
            }
            let (language, confidence) = decide(
                &t.spoken_language,
                t.spoken_prob,
                &t.text,
                &ctx.settings.languages,
            );
            TurnClock::mark(&t.turn.clock.lang_done);
            ctx.emit(PipelineEvent::Transcript {
                turn: t.turn.id,
                text: t.text.clone(),
                language: language.clone(),
                confidence,
                spoken: t.candidates.clone(),
            })
            .await;
            let msg = UserTurn {
                turn: t.turn,
                text: t.text,
                language,
                confidence,
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

#[cfg(test)]
mod tests {
    use super::decide;

    fn langs() -> Vec<String> {
        ["en", "hi", "te", "ur", "mr"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn script_and_acoustics() {
        assert_eq!(decide("hi", 0.8, "आप कैसे हैं", &langs()).0, "hi");
        assert_eq!(decide("hi", 0.6, "آپ کیسے ہیں", &langs()).0, "ur");
        assert_eq!(decide("en", 0.5, "మీరు ఎలా ఉన్నారు", &langs()).0, "te");
        // Romanised Hindi keeps the acoustic decision.
        assert_eq!(decide("hi", 0.7, "aap kaise ho", &langs()).0, "hi");
        assert_eq!(decide("en", 0.9, "", &langs()).0, "en");
    }
}
