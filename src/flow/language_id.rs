//! What a turn's language is: Whisper's spoken-language guess weighed against the transcript's
//! script and words (the script wins when it clearly names an allowed language; Hindi in Latin
//! letters is Hindi), then the session's hysteresis; and whether a short reply over the
//! assistant is only a backchannel ("haan", "ok"). Pure: the language-id stage and `vaak eval
//! asr` decide the same way.

use std::collections::BTreeMap;

use super::language::{Decision, LanguageTrack};
use crate::text::codeswitch::is_romanised_hindi;
use crate::text::script::{is_mark, language_of_text, Script};

/// Share of letters a script needs before it overrides the acoustic guess.
const SCRIPT_OVERRIDE_SHARE: f32 = 0.6;

/// The language to answer in and its confidence.
pub fn decide(spoken: &str, spoken_prob: f32, text: &str, allowed: &[String]) -> (String, f32) {
    // Hindi in English letters ("kal ka weather kaisa hai") is Hindi, whatever the acoustics.
    if spoken != "hi" && allowed.iter().any(|l| l == "hi") && is_romanised_hindi(text) {
        return ("hi".to_string(), spoken_prob.max(0.5));
    }
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

/// Whether the transcript's script alone names `language` among `allowed` (Telugu letters can
/// only be Telugu; Devanagari could be Hindi or Marathi, Latin anything).
fn script_is_decisive(text: &str, language: &str, allowed: &[String]) -> bool {
    let Some(script) = Script::of_language(language) else {
        return false;
    };
    script != Script::Latin
        && allowed
            .iter()
            .filter(|l| Script::of_language(l) == Some(script))
            .count()
            == 1
        && language_of_text(text, allowed)
            .is_some_and(|(l, share)| l == language && share >= SCRIPT_OVERRIDE_SHARE)
}

/// What detection and the transcript say about a turn's language, before the session's
/// hysteresis: when the recogniser held the session's language, the acoustic best guess.
pub fn detected(
    spoken: &str,
    spoken_prob: f32,
    candidates: &[(String, f32)],
    held: bool,
    text: &str,
    allowed: &[String],
) -> (String, f32) {
    if held {
        candidates
            .first()
            .cloned()
            .unwrap_or((spoken.to_string(), spoken_prob))
    } else {
        decide(spoken, spoken_prob, text, allowed)
    }
}

/// A final turn's language: the session's hysteresis applied to what was detected.
pub fn turn_language(
    track: &LanguageTrack,
    detected: &str,
    confidence: f32,
    held: bool,
    text: &str,
    allowed: &[String],
) -> Decision {
    if held {
        track.hold(detected)
    } else {
        let decisive = script_is_decisive(text, detected, allowed);
        track.decide(detected, confidence, decisive)
    }
}

#[cfg(test)]
mod tests {
    use super::{decide, is_backchannel, script_is_decisive};

    #[test]
    fn decisive_scripts() {
        assert!(script_is_decisive("మీరు ఎలా ఉన్నారు", "te", &langs()));
        // Devanagari is shared by Hindi and Marathi here.
        assert!(!script_is_decisive("आप कैसे हैं", "hi", &langs()));
        assert!(script_is_decisive(
            "आप कैसे हैं",
            "hi",
            &["hi".into(), "en".into()]
        ));
        assert!(!script_is_decisive("hello", "en", &langs()));
    }

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
        assert_eq!(
            decide("en", 0.8, "kal ka weather kaisa hai", &langs()).0,
            "hi"
        );
        assert_eq!(decide("en", 0.8, "what is the weather", &langs()).0, "en");
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
