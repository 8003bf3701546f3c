//! Which writing system a text is in, and what that says about its language. Whisper's spoken
//! language id is combined with this: a transcript in Telugu script is Telugu whatever the
//! acoustic guess was, and Devanagari text is told apart (hi/mr/ne) by `whatlang`.

/// Writing systems of the languages vaak serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Script {
    Latin,
    Devanagari,
    Bengali,
    Gurmukhi,
    Gujarati,
    Oriya,
    Tamil,
    Telugu,
    Kannada,
    Malayalam,
    Arabic,
    Other,
}

impl Script {
    pub fn of_char(c: char) -> Option<Script> {
        let cp = c as u32;
        let s = match cp {
            0x41..=0x5A | 0x61..=0x7A | 0xC0..=0x24F => Script::Latin,
            0x0900..=0x097F | 0xA8E0..=0xA8FF => Script::Devanagari,
            0x0980..=0x09FF => Script::Bengali,
            0x0A00..=0x0A7F => Script::Gurmukhi,
            0x0A80..=0x0AFF => Script::Gujarati,
            0x0B00..=0x0B7F => Script::Oriya,
            0x0B80..=0x0BFF => Script::Tamil,
            0x0C00..=0x0C7F => Script::Telugu,
            0x0C80..=0x0CFF => Script::Kannada,
            0x0D00..=0x0D7F => Script::Malayalam,
            0x0600..=0x06FF | 0x0750..=0x077F | 0xFB50..=0xFDFF | 0xFE70..=0xFEFF => Script::Arabic,
            _ if c.is_alphabetic() => Script::Other,
            _ => return None,
        };
        Some(s)
    }

    /// The Unicode block of an Indic or Arabic script (Latin: `None`, handled by callers).
    pub fn block(self) -> Option<(u32, u32)> {
        Some(match self {
            Script::Devanagari => (0x0900, 0x097F),
            Script::Bengali => (0x0980, 0x09FF),
            Script::Gurmukhi => (0x0A00, 0x0A7F),
            Script::Gujarati => (0x0A80, 0x0AFF),
            Script::Oriya => (0x0B00, 0x0B7F),
            Script::Tamil => (0x0B80, 0x0BFF),
            Script::Telugu => (0x0C00, 0x0C7F),
            Script::Kannada => (0x0C80, 0x0CFF),
            Script::Malayalam => (0x0D00, 0x0D7F),
            Script::Arabic => (0x0600, 0x06FF),
            Script::Latin | Script::Other => return None,
        })
    }

    /// The script a language is normally written in (for the languages vaak knows).
    pub fn of_language(lang: &str) -> Option<Script> {
        Some(match lang {
            "en" => Script::Latin,
            "hi" | "mr" | "ne" | "sa" => Script::Devanagari,
            "bn" | "as" => Script::Bengali,
            "pa" => Script::Gurmukhi,
            "gu" => Script::Gujarati,
            "or" => Script::Oriya,
            "ta" => Script::Tamil,
            "te" => Script::Telugu,
            "kn" => Script::Kannada,
            "ml" => Script::Malayalam,
            "ur" => Script::Arabic,
            _ => return None,
        })
    }
}

/// Combining marks (vowel signs, viramas) belong to the word in Indic scripts: what counts a
/// word's letters must keep them.
pub fn is_mark(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        GeneralCategory::NonspacingMark | GeneralCategory::SpacingMark
    )
}

/// Letter counts per script in a text.
#[derive(Debug, Clone, Default)]
pub struct ScriptStats {
    counts: Vec<(Script, usize)>,
    total: usize,
}

impl ScriptStats {
    pub fn of(text: &str) -> Self {
        let mut stats = ScriptStats::default();
        for s in text.chars().filter_map(Script::of_char) {
            stats.total += 1;
            match stats.counts.iter_mut().find(|(k, _)| *k == s) {
                Some((_, n)) => *n += 1,
                None => stats.counts.push((s, 1)),
            }
        }
        stats
    }

    /// The most frequent script and its share of letters.
    pub fn dominant(&self) -> Option<(Script, f32)> {
        self.counts
            .iter()
            .max_by_key(|(_, n)| *n)
            .map(|&(s, n)| (s, n as f32 / self.total as f32))
    }

    /// How many letters the text has.
    pub fn letters(&self) -> usize {
        self.total
    }

    /// Share of letters in `script` (0 for a text with no letters).
    pub fn share(&self, script: Script) -> f32 {
        if self.total == 0 {
            return 0.0;
        }
        self.counts
            .iter()
            .find(|(s, _)| *s == script)
            .map_or(0.0, |&(_, n)| n as f32 / self.total as f32)
    }
}

/// The language a text's script and words point to, restricted to `allowed` codes.
/// Returns `None` for text with no letters or in a script none of `allowed` uses.
pub fn language_of_text(text: &str, allowed: &[String]) -> Option<(String, f32)> {
    let (script, share) = ScriptStats::of(text).dominant()?;
    let candidates: Vec<&String> = allowed
        .iter()
        .filter(|l| Script::of_language(l) == Some(script))
        .collect();
    match candidates.as_slice() {
        [] => None,
        [only] => Some(((*only).clone(), share)),
        many => {
            // Several languages share the script (hi/mr/ne, bn/as): ask whatlang, restricted.
            let langs: Vec<whatlang::Lang> = many.iter().filter_map(|l| to_whatlang(l)).collect();
            let detector = whatlang::Detector::with_allowlist(langs);
            let info = detector.detect(text);
            let pick = info
                .as_ref()
                .and_then(|i| from_whatlang(i.lang()))
                .filter(|code| many.iter().any(|l| l.as_str() == *code))
                .map(str::to_string)
                .unwrap_or_else(|| many[0].clone());
            let conf = info.map_or(0.5, |i| i.confidence() as f32);
            Some((pick, share * conf.max(0.5)))
        }
    }
}

fn to_whatlang(code: &str) -> Option<whatlang::Lang> {
    use whatlang::Lang::*;
    Some(match code {
        "en" => Eng,
        "hi" => Hin,
        "mr" => Mar,
        "ne" => Nep,
        "bn" => Ben,
        "pa" => Pan,
        "gu" => Guj,
        "or" => Ori,
        "ta" => Tam,
        "te" => Tel,
        "kn" => Kan,
        "ml" => Mal,
        "ur" => Urd,
        _ => return None,
    })
}

fn from_whatlang(l: whatlang::Lang) -> Option<&'static str> {
    use whatlang::Lang::*;
    Some(match l {
        Eng => "en",
        Hin => "hi",
        Mar => "mr",
        Nep => "ne",
        Ben => "bn",
        Pan => "pa",
        Guj => "gu",
        Ori => "or",
        Tam => "ta",
        Tel => "te",
        Kan => "kn",
        Mal => "ml",
        Urd => "ur",
        _ => return None,
    })
}

/// English name of a language code (used in prompts and tables).
pub fn language_name(code: &str) -> &'static str {
    match code {
        "en" => "English",
        "hi" => "Hindi",
        "bn" => "Bengali",
        "ta" => "Tamil",
        "te" => "Telugu",
        "mr" => "Marathi",
        "gu" => "Gujarati",
        "kn" => "Kannada",
        "ml" => "Malayalam",
        "pa" => "Punjabi",
        "ur" => "Urdu",
        "or" => "Odia",
        "as" => "Assamese",
        "ne" => "Nepali",
        _ => "the user's language",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<String> {
        [
            "en", "hi", "bn", "ta", "te", "mr", "gu", "kn", "ml", "pa", "ur",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn scripts_map_to_languages() {
        let cases = [
            ("Hello, how are you?", "en"),
            ("आप कैसे हैं, सब ठीक है?", "hi"),
            ("మీరు ఎలా ఉన్నారు", "te"),
            ("நீங்கள் எப்படி இருக்கிறீர்கள்", "ta"),
            ("আপনি কেমন আছেন", "bn"),
            ("ਤੁਸੀਂ ਕਿਵੇਂ ਹੋ", "pa"),
            ("તમે કેમ છો", "gu"),
            ("ನೀವು ಹೇಗಿದ್ದೀರಿ", "kn"),
            ("നിങ്ങൾക്ക് സുഖമാണോ", "ml"),
            ("آپ کیسے ہیں", "ur"),
        ];
        for (text, lang) in cases {
            let got = language_of_text(text, &all()).map(|(l, _)| l);
            assert_eq!(got.as_deref(), Some(lang), "{text}");
        }
    }

    #[test]
    fn marathi_is_told_from_hindi() {
        let got = language_of_text("माझे नाव राहुल आहे आणि मी पुण्यात राहतो", &all());
        assert_eq!(got.map(|(l, _)| l).as_deref(), Some("mr"));
    }

    #[test]
    fn no_letters_or_foreign_script_is_none() {
        assert!(language_of_text("1234 !!", &all()).is_none());
        assert!(language_of_text("こんにちは", &all()).is_none());
        assert!(language_of_text("Hello", &["hi".to_string()]).is_none());
    }

    #[test]
    fn share_counts_letters_only() {
        let s = ScriptStats::of("नमस्ते hello 123");
        assert!(s.share(Script::Devanagari) > 0.4);
        assert!((s.share(Script::Latin) - 5.0 / 11.0).abs() < 0.01);
    }
}
