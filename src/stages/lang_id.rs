//! Language-id stage: combines Whisper's spoken-language guess with the script and words of the
//! transcript. The script wins when it clearly names an allowed language (Whisper prompted in
//! Devanagari that still writes Urdu script is Urdu); otherwise the acoustic guess stands.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tracing::{debug, info_span, Instrument};

use super::StageCtx;
use crate::metrics::Metrics;
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

/// True if `text` is only an acknowledgement in `language` (or in English, which people mix
/// into every language): "haan", "ok", "accha", "ஆமா" … Compared without punctuation or case.
pub fn is_backchannel(text: &str, language: &str, lists: &BTreeMap<String, Vec<String>>) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_alphanumeric() || is_mark(c) {
                    c
                } else {
                    ' '
                }
            })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let said = norm(text);
    if said.is_empty() {
        return false;
    }
    [language, "en"]
        .iter()
        .filter_map(|l| lists.get(*l))
        .flatten()
        .any(|phrase| {
            let p = norm(phrase);
            // "ok ok", "haan haan": repetitions of one acknowledgement.
            !p.is_empty() && said.split(' ').count() <= 4 && {
                let mut rest = said.as_str();
                loop {
                    match rest.strip_prefix(p.as_str()) {
                        Some(r) => rest = r.trim_start(),
                        None => break rest.is_empty() && rest.len() < said.len(),
                    }
                }
            }
        })
}

/// Combining marks (vowel signs, viramas) belong to the word in Indic scripts.
fn is_mark(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        GeneralCategory::NonspacingMark | GeneralCategory::SpacingMark
    )
}

pub async fn run(ctx: StageCtx, mut rx: mpsc::Receiver<Transcript>, tx: mpsc::Sender<UserTurn>) {
    let span = info_span!("stage", name = "lang_id", session = %ctx.settings.session_id);
    async move {
        let mut current: Option<String> = None;
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
            if t.turn.partial_only.load(Ordering::Relaxed) {
                ctx.emit(PipelineEvent::Transcript {
                    turn: t.turn.id,
                    text: t.text,
                    language,
                    confidence,
                    spoken: t.candidates,
                    is_final: false,
                })
                .await;
                continue;
            }
            TurnClock::mark(&t.turn.clock.lang_done);
            if t.turn.over_reply.load(Ordering::Relaxed) {
                // Heard over the reply: an acknowledgement lets the reply go on.
                if is_backchannel(&t.text, &language, &ctx.backends.config.turn.backchannels) {
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
            let _ = t
                .turn
                .user_text
                .set((t.text.clone(), language.clone(), confidence));
            ctx.emit(PipelineEvent::Transcript {
                turn: t.turn.id,
                text: t.text.clone(),
                language: language.clone(),
                confidence,
                spoken: t.candidates.clone(),
                is_final: t.turn.is_confirmed(),
            })
            .await;
            if current.as_deref() != Some(language.as_str()) {
                if let Some(from) = current.replace(language.clone()) {
                    Metrics::incr(&ctx.metrics.language_switches);
                    ctx.emit(PipelineEvent::LanguageChanged {
                        turn: t.turn.id,
                        from,
                        to: language.clone(),
                    })
                    .await;
                }
            }
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
    use super::{decide, is_backchannel};

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

    #[test]
    fn backchannels_in_every_script() {
        let lists = crate::config::TurnConfig::default().backchannels;
        assert!(is_backchannel("Haan.", "hi", &lists));
        assert!(is_backchannel("हाँ हाँ", "hi", &lists));
        assert!(
            is_backchannel("OK!", "te", &lists),
            "English acknowledgements count anywhere"
        );
        assert!(is_backchannel("అవును", "te", &lists));
        assert!(is_backchannel("ஆமா", "ta", &lists));
        assert!(!is_backchannel("हाँ लेकिन कल का मौसम कैसा रहेगा", "hi", &lists));
        assert!(!is_backchannel("okay so what about tomorrow", "en", &lists));
        assert!(!is_backchannel("", "en", &lists));
        assert!(!is_backchannel("stop", "en", &lists));
    }
}
