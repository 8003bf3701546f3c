//! Whether the words heard so far sound like a finished turn. A finished question or sentence
//! ("…क्या?", "ఇది ఏమిటి", "what time is it?") lets the turn end after a short pause; an
//! unfinished one (a trailing "और…", "मतलब", "and", "కానీ") waits longer before answering. Pure
//! text rules per language, with English's always applied too (Indians mix it in); the VAD stage
//! asks once a pause's transcript is known (`turn.finished_pause_ms`,
//! `turn.unfinished_pause_ms`).

/// What the end of a transcript says about the turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    /// Ends like a question or a sentence: a short pause ends the turn.
    Finished,
    /// Ends on a conjunction, a filler or a trailing ellipsis: the user is thinking.
    Unfinished,
    /// Nothing either way: the usual pause.
    Unsure,
}

/// Words that continue a sentence: a turn ending on one is not over.
fn continuations(language: &str) -> &'static [&'static str] {
    match language {
        "en" => &[
            "and", "but", "or", "so", "because", "then", "like", "um", "uh", "umm", "the", "a",
            "an", "to", "of", "with", "if", "that", "which", "my", "your", "is", "are",
        ],
        "hi" => &[
            "और",
            "लेकिन",
            "मतलब",
            "तो",
            "कि",
            "या",
            "क्योंकि",
            "अगर",
            "जैसे",
            "के",
            "की",
            "का",
            "में",
            "पर",
            "से",
            "एवं",
            "किंतु",
            "परंतु",
            "यानी",
            "फिर",
            "वो",
            "यह",
            "ये",
        ],
        "ur" => &[
            "اور",
            "لیکن",
            "مطلب",
            "تو",
            "کہ",
            "یا",
            "کیونکہ",
            "اگر",
            "جیسے",
            "کے",
            "کی",
            "کا",
            "میں",
            "پر",
            "سے",
        ],
        "mr" => &["आणि", "पण", "म्हणजे", "तर", "की", "किंवा", "कारण", "जर"],
        "bn" => &["এবং", "আর", "কিন্তু", "মানে", "তো", "যে", "বা", "কারণ", "যদি"],
        "gu" => &["અને", "પણ", "એટલે", "તો", "કે", "અથવા", "કારણ", "જો"],
        "pa" => &["ਅਤੇ", "ਪਰ", "ਮਤਲਬ", "ਤਾਂ", "ਕਿ", "ਜਾਂ", "ਕਿਉਂਕਿ", "ਜੇ"],
        "te" => &["మరియు", "కానీ", "అంటే", "కాబట్టి", "లేదా", "ఎందుకంటే", "అయితే", "మరి"],
        "ta" => &["மற்றும்", "ஆனால்", "அதாவது", "அதனால்", "அல்லது", "ஏனென்றால்", "என்றால்"],
        "kn" => &["ಮತ್ತು", "ಆದರೆ", "ಅಂದರೆ", "ಆದ್ದರಿಂದ", "ಅಥವಾ", "ಏಕೆಂದರೆ"],
        "ml" => &["പിന്നെ", "എന്നാൽ", "അതായത്", "അതുകൊണ്ട്", "അല്ലെങ്കിൽ", "കാരണം"],
        "or" => &["ଏବଂ", "କିନ୍ତୁ", "ମାନେ", "ତେଣୁ", "କିମ୍ବା", "କାରଣ"],
        _ => &[],
    }
}

/// Question words and sentence-final verbs or particles that end a turn in languages whose
/// recogniser output often lacks punctuation (verb-final languages end on these).
fn finals(language: &str) -> &'static [&'static str] {
    match language {
        "hi" => &[
            "क्या",
            "ना",
            "है",
            "हैं",
            "था",
            "थी",
            "थे",
            "हूँ",
            "हूं",
            "करें",
            "बताइए",
            "बताइये",
            "बताओ",
            "बताएं",
            "चाहिए",
            "सकते",
            "सकती",
        ],
        "ur" => &[
            "کیا",
            "نا",
            "ہے",
            "ہیں",
            "تھا",
            "تھی",
            "تھے",
            "ہوں",
            "بتائیں",
            "چاہیے",
        ],
        "mr" => &["का", "आहे", "आहेत", "होते", "होता", "सांगा"],
        "bn" => &["কি", "কী", "আছে", "হয়", "বলুন", "বলো"],
        "gu" => &["છે", "શું", "હતું", "કહો"],
        "pa" => &["ਕੀ", "ਹੈ", "ਹਨ", "ਸੀ", "ਦੱਸੋ"],
        "te" => &[
            "ఏమిటి",
            "ఎలా",
            "ఎక్కడ",
            "ఎందుకు",
            "ఎవరు",
            "ఏది",
            "ఉంది",
            "చెప్పండి",
            "కదా",
            "ఏంటి",
        ],
        "ta" => &["என்ன", "எப்படி", "எங்கே", "ஏன்", "யார்", "உள்ளது", "சொல்லுங்கள்"],
        "kn" => &["ಏನು", "ಹೇಗೆ", "ಎಲ್ಲಿ", "ಏಕೆ", "ಯಾರು", "ಇದೆ", "ಹೇಳಿ"],
        "ml" => &["എന്താണ്", "എങ്ങനെ", "എവിടെ", "എന്തുകൊണ്ട്", "ആര്", "ഉണ്ട്", "പറയൂ"],
        "or" => &["କଣ", "କିପରି", "କେଉଁଠି", "କାହିଁକି", "ଅଛି", "କୁହନ୍ତୁ"],
        _ => &[],
    }
}

/// Punctuation that ends a sentence, in the scripts Whisper writes.
const TERMINAL: &[char] = &['?', '.', '!', '।', '॥', '؟', '۔'];

/// How `text` (a transcript in `language`) ends.
pub fn completeness(text: &str, language: &str) -> Completeness {
    let text = text.trim();
    if text.ends_with("...") || text.ends_with('…') || text.ends_with(',') || text.ends_with('-')
    {
        return Completeness::Unfinished;
    }
    let Some(last) = text.split_whitespace().last() else {
        return Completeness::Unsure;
    };
    let word = last
        .trim_matches(|c: char| !c.is_alphanumeric() && !is_mark(c))
        .to_lowercase();
    let is = |list: &[&str]| list.contains(&word.as_str());
    if is(continuations(language)) || is(continuations("en")) {
        return Completeness::Unfinished;
    }
    if text.ends_with(TERMINAL) || is(finals(language)) {
        return Completeness::Finished;
    }
    Completeness::Unsure
}

/// Combining marks (vowel signs, viramas) of the Indic and Arabic scripts belong to the word,
/// though not all are alphanumeric; their scripts' punctuation does not.
fn is_mark(c: char) -> bool {
    matches!(c as u32, 0x0900..=0x0DFF | 0x0600..=0x06FF)
        && !TERMINAL.contains(&c)
        && !matches!(c, '\u{060C}' | '\u{066B}' | '\u{066C}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Completeness::*;

    #[test]
    fn finished_questions_and_sentences() {
        assert_eq!(completeness("What time is it?", "en"), Finished);
        assert_eq!(completeness("आज मौसम कैसा है", "hi"), Finished);
        assert_eq!(completeness("क्या आप मेरी मदद करेंगे?", "hi"), Finished);
        assert_eq!(completeness("दिल्ली कितनी दूर है।", "hi"), Finished);
        assert_eq!(completeness("ఈ రోజు వాతావరణం ఎలా", "te"), Finished);
        assert_eq!(completeness("ఇది ఏమిటి", "te"), Finished);
        assert_eq!(completeness("আজ কী খবর?", "bn"), Finished);
        assert_eq!(completeness("یہ کیا ہے", "ur"), Finished);
    }

    #[test]
    fn unfinished_trails() {
        assert_eq!(completeness("मुझे दिल्ली जाना है और", "hi"), Unfinished);
        assert_eq!(completeness("मतलब", "hi"), Unfinished);
        assert_eq!(completeness("I want to go to Delhi and", "en"), Unfinished);
        assert_eq!(completeness("so my question is um", "en"), Unfinished);
        assert_eq!(completeness("నాకు కావాలి కానీ", "te"), Unfinished);
        assert_eq!(completeness("well...", "en"), Unfinished);
        assert_eq!(completeness("मैं सोच रहा था कि…", "hi"), Unfinished);
        // English conjunctions in a Hindi turn (Hinglish).
        assert_eq!(completeness("मुझे ticket चाहिए but", "hi"), Unfinished);
        // A conjunction with a question mark after it is still a trailing conjunction.
        assert_eq!(completeness("Tea or?", "en"), Unfinished);
        assert_eq!(completeness("چائے اور؟", "ur"), Unfinished);
    }

    #[test]
    fn neither() {
        assert_eq!(completeness("", "hi"), Unsure);
        assert_eq!(completeness("   ", "en"), Unsure);
        assert_eq!(completeness("Delhi to Mumbai tomorrow", "en"), Unsure);
        assert_eq!(completeness("नमस्ते जी", "hi"), Unsure);
        // A language without lists still reads punctuation.
        assert_eq!(completeness("xyz.", "as"), Finished);
    }

    proptest! {
        /// Any text, any language: an answer, never a panic; a trailing ellipsis is always
        /// unfinished.
        #[test]
        fn any_text(text in "\\PC{0,40}", lang in "(en|hi|te|ta|ur|bn|zz)") {
            let _ = completeness(&text, &lang);
            prop_assert_eq!(completeness(&format!("{text} ..."), &lang), Unfinished);
        }
    }
}
