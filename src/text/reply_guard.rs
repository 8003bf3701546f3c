//! What vaak refuses to answer and refuses to say: a transcript too broken to answer (no word
//! made out, a recogniser loop, letters of a script the language does not use), a reply clause in the wrong
//! script (the small model drifting into English or Chinese mid-Telugu) or reading the user's
//! words back, and the fixed sentences spoken instead, in every language vaak serves. Pure functions: the LLM stage and `vaak eval
//! replies` apply them the same way.

use super::script::{is_mark, Script, ScriptStats};

/// Why a transcript is not worth answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unclear {
    /// No word at all (speech the recogniser could not make out).
    NoWords,
    /// The same word or phrase over and over (a recogniser loop on noise).
    Repetitive,
    /// Mostly letters of a script neither the language nor English uses.
    ForeignScript,
}

/// A transcript of at least this many words, with at most this share of distinct ones, is a loop.
const LOOP_MIN_WORDS: usize = 8;
const LOOP_MAX_DISTINCT: f32 = 0.3;
/// The same word this many times in a row is a loop, however short the transcript; a phrase of
/// up to [`LOOP_PHRASE_WORDS`] words, [`LOOP_PHRASE_RUN`] times.
const LOOP_RUN: usize = 4;
const LOOP_PHRASE_WORDS: usize = 4;
const LOOP_PHRASE_RUN: usize = 3;
/// The longest looping phrase [`without_loops`] cuts ("And so my fellow Americans." is five).
const COLLAPSE_PHRASE_WORDS: usize = 8;
/// Letters outside the language's script and Latin: more than this share and the transcript is
/// not the language; a reply clause with more is in the wrong script.
const FOREIGN_MAX: f32 = 0.5;
const CLAUSE_FOREIGN_MAX: f32 = 0.05;
/// A reply clause (not mixed with English) needs this share of its letters in the language's
/// own script, once it has [`CLAUSE_MIN_LETTERS`] letters (a short "OK," or "Delhi" passes).
const CLAUSE_NATIVE_MIN: f32 = 0.5;
const CLAUSE_MIN_LETTERS: usize = 12;

/// A word as loops are compared: its letters, digits and marks, lower-cased.
fn bare(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric() || is_mark(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `text`, heard as `language`, is too broken to answer (`None`: answer it).
pub fn unclear_transcript(text: &str, language: &str) -> Option<Unclear> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(bare)
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Some(Unclear::NoWords);
    }
    let distinct = {
        let mut d: Vec<&String> = words.iter().collect();
        d.sort();
        d.dedup();
        d.len()
    };
    if repeats_a_phrase(&words)
        || (words.len() >= LOOP_MIN_WORDS
            && (distinct as f32) <= words.len() as f32 * LOOP_MAX_DISTINCT)
    {
        return Some(Unclear::Repetitive);
    }
    (foreign_share(&ScriptStats::of(text), language) > FOREIGN_MAX)
        .then_some(Unclear::ForeignScript)
}

/// Some word said [`LOOP_RUN`] times running, or a phrase [`LOOP_PHRASE_RUN`] times.
fn repeats_a_phrase(words: &[String]) -> bool {
    (1..=LOOP_PHRASE_WORDS).any(|n| {
        let needed = if n == 1 { LOOP_RUN } else { LOOP_PHRASE_RUN };
        (0..words.len()).any(|start| {
            let phrase = &words[start..(start + n).min(words.len())];
            phrase.len() == n
                && (1..needed)
                    .all(|k| words.get(start + k * n..start + (k + 1) * n) == Some(phrase))
        })
    })
}

/// `text` with each recogniser loop cut to one copy of its phrase: a phrase of 2 to
/// [`COLLAPSE_PHRASE_WORDS`] words said [`LOOP_PHRASE_RUN`] or more times running ("Ask not.
/// Ask not. Ask not. …" from a short clip). For transcripts returned as they are (the one-off
/// recognition calls); a live turn instead treats a loop as not heard ([`unclear_transcript`]).
/// A copy cut short at the very end (the decoder's token budget ran out) goes too. Single
/// repeated words are left alone (the recogniser's own cleaning bounds those).
pub fn without_loops(text: &str) -> String {
    // Cutting one loop can line up another ("A A A B A A A B …" → "A B A B …"): cut until none
    // is left (each pass that changes anything drops words, so this ends).
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    loop {
        let cut = cut_loops_once(&text);
        if cut == text {
            return text;
        }
        text = cut;
    }
}

fn cut_loops_once(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let keys: Vec<String> = words.iter().map(|w| bare(w)).collect();
    let mut kept: Vec<&str> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let run = (2..=COLLAPSE_PHRASE_WORDS).find_map(|n| {
            let phrase = keys.get(i..i + n)?;
            if phrase.iter().all(String::is_empty) {
                return None;
            }
            let copies = (1..)
                .take_while(|k| keys.get(i + k * n..i + (k + 1) * n) == Some(phrase))
                .count()
                + 1;
            (copies >= LOOP_PHRASE_RUN).then_some((n, copies))
        });
        match run {
            Some((n, copies)) => {
                kept.extend_from_slice(&words[i..i + n]);
                i += n * copies;
            }
            None => {
                kept.push(words[i]);
                i += 1;
            }
        }
    }
    without_cut_copy_at_end(&mut kept);
    kept.join(" ")
}

/// A loop the decoder's token budget cut short ends in a copy of the phrase before it, cut
/// off ("What your country can do for you? What your country can do for"): drops that copy.
fn without_cut_copy_at_end(words: &mut Vec<&str>) {
    let keys: Vec<String> = words.iter().map(|w| bare(w)).collect();
    let len = keys.len();
    let cut_copy = (3..=COLLAPSE_PHRASE_WORDS).find_map(|n| {
        (2..n).rev().find(|&p| {
            len >= n + p
                && keys[len - p..] == keys[len - p - n..len - n]
                && keys[len - p..].iter().any(|k| !k.is_empty())
        })
    });
    if let Some(p) = cut_copy {
        words.truncate(len - p);
    }
}

/// Whether a reply clause may be spoken to a user of `language` (`mixed`: the user mixes it with
/// English, so English words in Latin letters are expected).
pub fn clause_fits(text: &str, language: &str, mixed: bool) -> bool {
    let stats = ScriptStats::of(text);
    if foreign_share(&stats, language) > CLAUSE_FOREIGN_MAX {
        return false;
    }
    let Some(own) = Script::of_language(language) else {
        return true;
    };
    mixed
        || own == Script::Latin
        || stats.letters() < CLAUSE_MIN_LETTERS
        || stats.share(own) >= CLAUSE_NATIVE_MIN
}

/// Share of letters in neither `language`'s script nor Latin (0 for a language vaak does not
/// know the script of, or a text with no letters).
fn foreign_share(stats: &ScriptStats, language: &str) -> f32 {
    match Script::of_language(language) {
        None => 0.0,
        Some(Script::Latin) => {
            if stats.letters() == 0 {
                0.0
            } else {
                1.0 - stats.share(Script::Latin)
            }
        }
        Some(own) => {
            if stats.letters() == 0 {
                0.0
            } else {
                1.0 - stats.share(own) - stats.share(Script::Latin)
            }
        }
    }
}

/// A clause of at least this many words found inside the user's words is read back, not said.
const ECHO_MIN_WORDS: usize = 3;

/// How a reply clause stands to words the model was given (the user's, or its instructions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBack {
    /// Not found there (or a short sentence that merely shares their words): spoken.
    No,
    /// Found there, sentence not finished, however short: held and judged with what follows
    /// ("No lists," may go on to "no markdown, no emoji."; "भारत की" to "राजधानी नई दिल्ली है।"),
    /// so a read-back cut into short first clauses is still caught whole.
    Fragment,
    /// A whole sentence of three words or more found there ("No lists, no markdown, no emoji."
    /// spoken to a caller), or one that holds all the user's words: not an answer, not spoken.
    Whole,
}

/// Whether `clause` is `source`'s words (whole words, after normalisation), and how much.
fn read_back(clause: &str, source: &str) -> ReadBack {
    let c = super::normalize::normalize_for_scoring(clause);
    let words = c.split(' ').filter(|w| !w.is_empty()).count();
    let s = super::normalize::normalize_for_scoring(source);
    if words == 0 || !format!(" {s} ").contains(&format!(" {c} ")) {
        ReadBack::No
    } else if !ends_sentence(clause) {
        ReadBack::Fragment
    } else if words >= ECHO_MIN_WORDS {
        ReadBack::Whole
    } else {
        ReadBack::No
    }
}

/// Whether a reply clause reads the user's words back: part of what the user said (see
/// [`ReadBack`]), or all of it (two words or more) inside the clause.
pub fn echo(clause: &str, user: &str) -> ReadBack {
    let c = super::normalize::normalize_for_scoring(clause);
    let u = super::normalize::normalize_for_scoring(user);
    let holds_all = u.split(' ').filter(|w| !w.is_empty()).count() >= 2 && c.contains(&u);
    match (holds_all, ends_sentence(clause)) {
        (true, true) => ReadBack::Whole,
        (true, false) => ReadBack::Fragment,
        (false, _) => read_back(clause, user),
    }
}

/// Whether `clause` recites `prompt`.
pub fn recital(clause: &str, prompt: &str) -> ReadBack {
    read_back(clause, prompt)
}

/// Whether a clause ends a sentence (rather than being cut at a comma or at the length limit).
pub fn ends_sentence(clause: &str) -> bool {
    clause
        .trim_end()
        .ends_with(['.', '?', '!', '।', '॥', '۔', '؟'])
}

/// The reminder added to the user's message when the model's first reply was in the wrong
/// script (English: small models follow an English instruction best).
pub fn script_reminder(language: &str, mixed: bool) -> String {
    let name = crate::text::script::language_name(language);
    match (Script::of_language(language), mixed) {
        (Some(Script::Latin) | None, _) => format!("(Reply in {name}.)"),
        (Some(_), true) => format!("(Reply in {name} mixed with English, as I speak.)"),
        (Some(script), false) => format!("(Reply in {name}, written in {script:?} script.)"),
    }
}

/// The reminder added when the model's first reply only read the user's words back.
pub const ECHO_REMINDER: &str = "(Answer the question in one short sentence; do not repeat it.)";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn recogniser_loops_are_unclear() {
        assert_eq!(
            unclear_transcript("धन्यवाद धन्यवाद धन्यवाद धन्यवाद", "hi"),
            Some(Unclear::Repetitive)
        );
        assert_eq!(
            unclear_transcript("you know you know you know you know the", "en"),
            Some(Unclear::Repetitive)
        );
        assert_eq!(unclear_transcript("भारत की राजधानी क्या है?", "hi"), None);
        assert_eq!(unclear_transcript("", "hi"), Some(Unclear::NoWords));
        assert_eq!(unclear_transcript(" ... ", "en"), Some(Unclear::NoWords));
        // Real speech repeats words, not every word.
        assert_eq!(
            unclear_transcript(
                "no no, I said the blue one, not the red one, the blue one",
                "en"
            ),
            None
        );
    }

    #[test]
    fn foreign_script_transcripts_are_unclear() {
        assert_eq!(
            unclear_transcript("你好你好吗我很好", "te"),
            Some(Unclear::ForeignScript)
        );
        assert_eq!(
            unclear_transcript("నా phone పని చేయడం లేదు", "te"),
            None,
            "Telugu with English words is the language"
        );
    }

    #[test]
    fn reply_clauses_in_the_wrong_script_are_caught() {
        assert!(clause_fits("भारत की राजधानी नई दिल्ली है।", "hi", false));
        assert!(clause_fits("भारत की राजधानी New Delhi है।", "hi", false));
        assert!(clause_fits("Delhi.", "hi", false), "too short to judge");
        assert!(!clause_fits(
            "The capital of India is New Delhi.",
            "hi",
            false
        ));
        assert!(clause_fits("The capital is New Delhi, हाँ।", "hi", true));
        assert!(!clause_fits("భారతదేశ రాజధాని 北京 是", "te", false));
        assert!(!clause_fits("भारत की राजधानी है", "en", false));
        assert!(clause_fits(
            "The capital of India is New Delhi.",
            "en",
            false
        ));
        assert!(clause_fits("42", "ta", false));
    }

    #[test]
    fn clauses_reading_the_user_back_are_echoes() {
        use ReadBack::*;
        let q = "दो और तीन कितने होते हैं?";
        assert_eq!(echo("दो और तीन कितने होते हैं?", q), Whole);
        assert_eq!(
            echo("दो और तीन", q),
            Fragment,
            "a cut-off start of the question"
        );
        assert_eq!(echo("दो और तीन पाँच होते हैं।", q), No);
        assert_eq!(
            echo("एक साल में 12 महीने होते हैं।", "एक साल में कितने महीने होते हैं?"),
            No
        );
        assert_eq!(
            echo(
                "Sure. What is the capital of India?",
                "What is the capital of India"
            ),
            Whole
        );
        assert_eq!(echo("It is.", "It is noon, is it?"), No, "too short");
        assert_eq!(echo("Bees make honey.", "What do bees make?"), No);
    }

    #[test]
    fn a_read_back_cut_short_is_held_however_few_its_words() {
        use ReadBack::*;
        let q = "भारत की राजधानी क्या है?";
        // A first clause of one or two words that only repeats the question is held …
        assert_eq!(echo("राजधानी", q), Fragment);
        assert_eq!(echo("भारत की", q), Fragment);
        // … judged with what follows: an answer, or the question again.
        assert_eq!(echo("भारत की राजधानी नई दिल्ली है।", q), No);
        assert_eq!(echo("भारत की राजधानी क्या है?", q), Whole);
        // Whole words only: a word that merely begins like one of the user's is no read-back.
        assert_eq!(echo("भार", q), No);
        assert_eq!(echo("Capital", "What is the capital city?"), Fragment);
        assert_eq!(echo("Capitalism", "What is the capital city?"), No);
        // A short finished sentence that shares the user's words is an answer ("Yes.").
        assert_eq!(echo("हाँ।", "क्या आप हाँ या ना में बता सकते हैं?"), No);
    }

    #[test]
    fn loops_are_cut_to_one_phrase_and_speech_is_kept() {
        assert_eq!(
            without_loops("Ask not. Ask not. Ask not. Ask not. what your country"),
            "Ask not. what your country"
        );
        assert_eq!(
            without_loops("What your country can do for you? What your country can do for"),
            "What your country can do for you?"
        );
        let jfk = "And so my fellow Americans.";
        assert_eq!(without_loops(&[jfk; 9].join(" ")), jfk);
        assert_eq!(
            without_loops("मैं ठीक हूँ मैं ठीक हूँ मैं ठीक हूँ और आप"),
            "मैं ठीक हूँ और आप"
        );
        for kept in [
            "bahut bahut dhanyavaad",
            "ask not, ask what",
            "no no no, not that",
            "one two one two",
            "ask not what your country can do for you, ask what you can do for your country",
            "",
        ] {
            assert_eq!(without_loops(kept), kept);
        }
    }

    proptest! {
        #[test]
        fn checks_never_panic(text in "\\PC{0,120}", lang in "(hi|te|en|ur|xx)") {
            let _ = unclear_transcript(&text, &lang);
            let _ = clause_fits(&text, &lang, false);
            let _ = clause_fits(&text, &lang, true);
        }

        #[test]
        fn a_looping_phrase_is_kept_once(
            before in "[a-m]{2,6}( [a-m]{2,6}){0,3}",
            phrase in "[n-z]{2,6}( [n-z]{2,6}){1,7}",
            after in "[a-m]{2,6}( [a-m]{2,6}){0,3}",
            n in 3usize..20,
        ) {
            let looped = format!("{before} {} {after}", vec![format!("{phrase}."); n].join(" "));
            prop_assert_eq!(without_loops(&looped), format!("{before} {phrase}. {after}"));
        }

        #[test]
        fn loop_cutting_only_removes_and_settles(text in "((ab|cd|ef|\\PC{1,4})[ .,]{1,2}){0,40}") {
            let once = without_loops(&text);
            // Only whole words go, in order: what is left is a subsequence of the input.
            let mut rest = text.split_whitespace();
            prop_assert!(once.split_whitespace().all(|w| rest.any(|x| x == w)));
            prop_assert_eq!(without_loops(&once), once.clone());
        }

        #[test]
        fn a_word_said_four_times_running_is_a_loop(word in "[a-z]{2,8}", n in 4usize..10) {
            let text = vec![word.as_str(); n].join(" ");
            prop_assert_eq!(unclear_transcript(&text, "en"), Some(Unclear::Repetitive));
        }
    }
}
