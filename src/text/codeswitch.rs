//! Code-switching: people in India mix English into every language ("meeting कल है",
//! "kal ka weather kaisa hai"). This tells when a turn is a language mixed with English, so the
//! reply can come in the same register, and splits mixed-script reply text into runs that
//! each get a voice of their own script.

use super::script::Script;

/// Hindi words that, written in Latin letters, mark romanised Hindi (Hinglish) rather than
/// English. Only words that are not also common English words.
const HINGLISH_MARKERS: &[&str] = &[
    "hai", "hain", "kya", "kaise", "kaisa", "kaisi", "nahi", "nahin", "mera", "meri", "mere",
    "tera", "teri", "aap", "aapka", "aapki", "tum", "tumhara", "hum", "hamara", "ka", "ki", "ke",
    "ko", "se", "mein", "bhi", "aur", "yeh", "woh", "kal", "aaj", "abhi", "kab", "kahan", "kyun",
    "kyon", "kitna", "kitne", "batao", "bataiye", "karo", "kariye", "karna", "chahiye", "haan",
    "accha", "achha", "theek", "thik", "bahut", "lekin", "par", "wala", "wali", "raha", "rahi",
    "rahe", "tha", "thi", "hoga", "hogi", "mujhe", "tujhe", "humein", "unka", "unki", "kuch",
    "sab", "koi", "jaldi", "dena", "lena", "chalo", "samjha", "samjhao", "bolo",
];

/// Share of words that must be Hinglish markers for Latin text to count as romanised Hindi.
const ROMANISED_SHARE: f32 = 0.25;
/// A spoken-language candidate this likely for English, beside the chosen language, says the
/// speech itself mixed in English.
const ENGLISH_CANDIDATE_PROB: f32 = 0.25;

fn latin_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphabetic())
        .filter(|w| w.len() >= 2 && w.chars().all(|c| c.is_ascii_alphabetic()))
        .map(|w| w.to_ascii_lowercase())
}

/// Latin-script text that is Hindi written in English letters ("kal ka weather kaisa hai").
pub fn is_romanised_hindi(text: &str) -> bool {
    let words: Vec<String> = latin_words(text).collect();
    if words.len() < 2 {
        return false;
    }
    let markers = words
        .iter()
        .filter(|w| HINGLISH_MARKERS.contains(&w.as_str()))
        .count();
    markers >= 2 && markers as f32 / words.len() as f32 >= ROMANISED_SHARE
}

/// Whether a turn in `language` (not English) mixed in English: Latin words among the native
/// script, romanised Hindi, or English close behind in spoken-language detection.
pub fn mixed_with_english(text: &str, language: &str, candidates: &[(String, f32)]) -> bool {
    if language == "en" {
        return false;
    }
    let native = Script::of_language(language);
    let has_native = native.is_some_and(|s| text.chars().any(|c| Script::of_char(c) == Some(s)));
    let has_latin = latin_words(text).next().is_some();
    let english_heard = candidates
        .iter()
        .any(|(l, p)| l == "en" && *p >= ENGLISH_CANDIDATE_PROB);
    (has_native && has_latin)
        || (language == "hi" && is_romanised_hindi(text))
        || (has_native && english_heard)
}

/// A stretch of reply text to be spoken by one voice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run<'a> {
    pub text: &'a str,
    /// Latin letters inside a reply in another script (English words): speak with an English
    /// voice.
    pub english: bool,
}

/// Splits `text` (a reply clause in `language`) into runs of English words and runs of the
/// language's own script. Digits, spaces and punctuation stay with the run they are in. A reply
/// in English, one with no Latin words, and one with no letter of the language's script (the
/// whole clause romanised: "aap kaise ho") are one run in the language's voice, and so is a
/// Latin run that is romanised Hindi rather than English.
pub fn script_runs<'a>(text: &'a str, language: &str) -> Vec<Run<'a>> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let whole = vec![Run {
        text,
        english: language == "en",
    }];
    let Some(native) = Script::of_language(language) else {
        return whole;
    };
    let has_native = text.chars().any(|c| Script::of_char(c) == Some(native));
    if native == Script::Latin || !has_native || latin_words(text).next().is_none() {
        return whole;
    }
    let mut runs: Vec<Run<'a>> = Vec::new();
    let mut start = 0;
    let mut english: Option<bool> = None;
    for (i, c) in text.char_indices() {
        let is_english = match Script::of_char(c) {
            Some(Script::Latin) => true,
            Some(_) => false,
            None => continue, // neutral: stays with the current run
        };
        match english {
            Some(e) if e != is_english => {
                // Neutral characters just before the switch (a space) end the old run.
                let cut = text[start..i]
                    .rfind(|ch: char| !ch.is_whitespace())
                    .map_or(i, |j| {
                        start + j + text[start + j..].chars().next().map_or(1, char::len_utf8)
                    });
                runs.push(Run {
                    text: &text[start..cut],
                    english: e,
                });
                start = cut;
                english = Some(is_english);
            }
            None => english = Some(is_english),
            _ => {}
        }
    }
    runs.push(Run {
        text: &text[start..],
        english: english.unwrap_or(false),
    });
    runs.retain(|r| !r.text.trim().is_empty());
    for r in &mut runs {
        if r.english && language == "hi" && is_romanised_hindi(r.text) {
            r.english = false;
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hinglish_is_recognised() {
        assert!(is_romanised_hindi("kal ka weather kaisa hai"));
        assert!(is_romanised_hindi("Mera order kab aayega?"));
        assert!(!is_romanised_hindi("What is the weather like tomorrow?"));
        assert!(!is_romanised_hindi("hai"));
        assert!(mixed_with_english("मेरी meeting कल है", "hi", &[]));
        assert!(mixed_with_english("kal ka weather kaisa hai", "hi", &[]));
        assert!(mixed_with_english(
            "मेरी मीटिंग कल है",
            "hi",
            &[("hi".into(), 0.6), ("en".into(), 0.35)]
        ));
        assert!(!mixed_with_english(
            "मेरी मीटिंग कल है",
            "hi",
            &[("hi".into(), 0.9)]
        ));
        assert!(!mixed_with_english("the meeting is tomorrow", "en", &[]));
        assert!(mixed_with_english("నా meeting రేపు", "te", &[]));
    }

    #[test]
    fn runs_split_at_script_changes() {
        let runs = script_runs("आपकी meeting कल 3 बजे है, OK?", "hi");
        let texts: Vec<(&str, bool)> = runs.iter().map(|r| (r.text, r.english)).collect();
        assert_eq!(
            texts,
            vec![
                ("आपकी", false),
                (" meeting", true),
                (" कल 3 बजे है,", false),
                (" OK?", true)
            ]
        );
        assert_eq!(script_runs("कल मिलते हैं", "hi").len(), 1);
        assert_eq!(script_runs("See you tomorrow", "en").len(), 1);
        // A single Latin letter (a unit, an initial) is not an English word.
        assert_eq!(script_runs("5 k दूर", "hi").len(), 1);
        // A wholly romanised reply is the language's, not English.
        let whole = script_runs("Sabar karo, sab theek hoga", "hi");
        assert_eq!((whole.len(), whole[0].english), (1, false));
        // Romanised Hindi inside Devanagari stays with the Hindi voice.
        let runs = script_runs("हाँ, kal ka mausam kaisa hai yeh batao", "hi");
        assert!(runs.iter().all(|r| !r.english), "{runs:?}");
    }

    proptest! {
        #[test]
        fn runs_cover_the_text(text in "[a-zA-Z\u{900}-\u{97f} ,.?0-9]{0,60}") {
            let runs = script_runs(&text, "hi");
            let joined: String = runs.iter().map(|r| r.text).collect();
            prop_assert_eq!(joined.trim(), text.trim());
            prop_assert!(runs.iter().all(|r| !r.text.trim().is_empty()));
        }
    }
}
