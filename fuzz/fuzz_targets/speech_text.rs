//! Any text as a reply to be spoken, in every language the normaliser knows (and one it does
//! not): `normalize_for_speech` never panics, and what it returns stays within a bound of the
//! input's length (numbers become words, but a reply cannot grow without limit).
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/text/speech/mod.rs"]
mod speech;

/// Characters of speech a single input character may become at most (a digit of a 15-digit
/// number read as a cardinal in Malayalam is the longest case).
const GROWTH: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let languages: Vec<&str> = speech::lexicon::languages().chain(["xx"]).collect();
    let lang = languages[usize::from(pick) % languages.len()];
    let spoken = speech::normalize_for_speech(text, lang);
    assert!(
        spoken.chars().count() <= GROWTH * text.chars().count() + GROWTH,
        "{} characters of {lang} became {}",
        text.chars().count(),
        spoken.chars().count()
    );
});
