//! The words a language needs to read numbers, money, dates and abbreviations aloud. The data
//! lives in `lexicon_data.rs`, generated from the reviewed tables in `assets/lexicon/` by
//! `scripts/gen_lexicon.py`; this file only defines its shape and the lookup.

/// How a power of ten with its own word (thousand, lakh, crore) is said.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Exactly one of it, alone: "one lakh" / "एक लाख" / "వెయ్యి" (1000 in Telugu has no "one").
    pub one: &'static str,
    /// One of it with more following: "ఒక లక్ష" / "ஆயிரத்து" (Tamil 1005: ஆயிரத்து ஐந்து).
    pub one_joined: &'static str,
    /// The word after a multiplier of 2–99, alone: "lakh" / "लाख" / "వేలు".
    pub many: &'static str,
    /// The word after a multiplier with more following: "వేల" / "ஆயிரத்து".
    pub many_joined: &'static str,
}

/// Everything a language needs to speak numbers and the symbols around them.
#[derive(Debug)]
pub struct Lexicon {
    /// ISO 639-1 code (`en` is read in Indian English: lakh and crore).
    pub lang: &'static str,
    /// 0–99 as words.
    pub below_100: [&'static str; 100],
    /// 100 × i (i = 1..9) alone; index 0 is "".
    pub hundreds: [&'static str; 10],
    /// 100 × i with more following (Telugu నూట, Kannada ನೂರ, Tamil நூற்று); index 0 is "".
    pub hundreds_joined: [&'static str; 10],
    pub thousand: Scale,
    pub lakh: Scale,
    pub crore: Scale,
    /// "minus" before a negative number.
    pub minus: &'static str,
    /// The decimal point, read between the whole part and the digits after it.
    pub point: &'static str,
    /// Said after a percentage's number.
    pub percent: &'static str,
    /// Currency words: one rupee, several rupees, one paisa, several paise.
    pub rupee_one: &'static str,
    pub rupee_many: &'static str,
    pub paisa_one: &'static str,
    pub paisa_many: &'static str,
    /// Written abbreviations of the rupee in this language's script, besides the ₹, Rs, Rs. and
    /// INR every language accepts: "रु.", "ரூ.", "రూ." …
    pub rupee_abbreviations: &'static [&'static str],
    /// "One" counting a noun (one rupee): Tamil ஒரு, Telugu ఒక, Malayalam ഒരു.
    pub one_before_noun: &'static str,
    /// Numbers before a noun take the joined form (Telugu ఐదు వందల రూపాయలు).
    pub oblique_before_noun: bool,
    /// Said between the rupees and the paise ("and", "और"); "" where nothing is said.
    pub money_and: &'static str,
    /// Written ordinal suffixes after digits ("st", "वाँ", "ஆவது", "వ", "ನೇ" …), longest first.
    pub ordinal_suffixes: &'static [&'static str],
    /// Irregular ordinals: (n, written suffix or "" for any, spoken word), e.g. (1, "ला", "पहला").
    pub ordinal_irregular: &'static [(u64, &'static str, &'static str)],
    /// Spoken ending joined to the cardinal for a regular ordinal with written suffix `s`:
    /// (written suffix, spoken ending), e.g. ("वाँ", "वाँ"), ("ஆவது", "ஆவது").
    pub ordinal_spoken: &'static [(&'static str, &'static str)],
    /// January … December.
    pub months: [&'static str; 12],
    /// A clock time with minutes, `{h}` and `{m}` replaced by number words: "{h} बजकर {m} मिनट".
    pub time_hm: &'static str,
    /// A clock time on the hour: "{h} बजे", "{h} o'clock".
    pub time_h: &'static str,
    /// A date, `{d}` day, `{month}` month name, `{y}` year: "{d} {month} {y}".
    pub date: &'static str,
    /// Abbreviations spelled out: (written form, spoken form), matched as whole words.
    pub abbreviations: &'static [(&'static str, &'static str)],
}

/// The lexicon for a language code (`en`, `hi`, … `or`); `None` for a language vaak cannot
/// read numbers in (the text is then spoken as written).
pub fn lexicon(lang: &str) -> Option<&'static Lexicon> {
    super::lexicon_data::ALL
        .iter()
        .copied()
        .find(|l| l.lang == lang)
}

/// The languages with a lexicon.
pub fn languages() -> impl Iterator<Item = &'static str> {
    super::lexicon_data::ALL.iter().map(|l| l.lang)
}
