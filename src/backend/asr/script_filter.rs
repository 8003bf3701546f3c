//! Keeps Whisper in the decided language's script: while decoding Telugu, tokens that spell
//! Devanagari, Urdu, Tamil … (or Cyrillic, CJK) get no probability. Whisper's byte-level tokens
//! often hold part of a character; the script is read from the UTF-8 lead bytes where the token
//! has them, and a token that only continues a character is left alone. Latin, digits and
//! punctuation always stay allowed (English words inside Indian speech are real).

use crate::text::script::Script;

/// What a token's bytes say about its script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A script vaak knows (the 64-code-point row of a 3-byte character is enough).
    Known(Script),
    /// A script no Indian language here uses (Cyrillic, Greek, CJK, Hangul, Thai …).
    Foreign,
}

/// The Indic block a 3-byte UTF-8 character starting `E0 b2` is in.
fn indic_row(b2: u8) -> Option<Script> {
    Some(match b2 {
        0xA4 | 0xA5 => Script::Devanagari,
        0xA6 | 0xA7 => Script::Bengali,
        0xA8 | 0xA9 => Script::Gurmukhi,
        0xAA | 0xAB => Script::Gujarati,
        0xAC | 0xAD => Script::Oriya,
        0xAE | 0xAF => Script::Tamil,
        0xB0 | 0xB1 => Script::Telugu,
        0xB2 | 0xB3 => Script::Kannada,
        0xB4 | 0xB5 => Script::Malayalam,
        _ => return None,
    })
}

/// Every script the token's bytes reveal.
fn scripts_of(bytes: &[u8]) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (len, seen) = match b {
            0x00..=0x7F => (1, None),
            // A continuation byte with no lead in this token: part of an earlier character.
            0x80..=0xBF => (1, None),
            // Two-byte characters: Latin-1 and Latin Extended (C2–C9), IPA and marks (CA–CD)
            // are allowed; Greek, Cyrillic, Armenian, Hebrew (CE–D7) are foreign; Arabic
            // script (D8–DB, U+0600–06FF, and DD for its supplement) is Urdu's.
            0xC2..=0xCD => (2, None),
            0xD8..=0xDB | 0xDD => (2, Some(Seen::Known(Script::Arabic))),
            0xCE..=0xDF => (2, Some(Seen::Foreign)),
            // The danda and double danda (U+0964/0965) end sentences in Bengali, Gurmukhi and
            // Odia text too: they belong to no one script.
            0xE0 if bytes.get(i + 1) == Some(&0xA5)
                && matches!(bytes.get(i + 2), Some(0xA4 | 0xA5)) =>
            {
                (3, None)
            }
            0xE0 => match bytes.get(i + 1) {
                Some(&b2) => (3, indic_row(b2).map(Seen::Known)),
                None => (1, None),
            },
            // U+1000–U+1FFF: Myanmar, Georgian, Hangul Jamo, Ethiopic … ; U+2000–2FFF is
            // punctuation and symbols (allowed).
            0xE1 => (3, Some(Seen::Foreign)),
            0xE2 => (3, None),
            // CJK, kana, Hangul syllables, and the rest of the BMP.
            0xE3..=0xED => (3, Some(Seen::Foreign)),
            // Arabic presentation forms (U+FB50–FDFF, U+FE70–FEFF) are Urdu's; other
            // compatibility characters are left alone.
            0xEF => match bytes.get(i + 1) {
                Some(0xAD..=0xB7) | Some(0xB9..=0xBB) => (3, Some(Seen::Known(Script::Arabic))),
                _ => (3, None),
            },
            0xEE => (3, None),
            // Four-byte characters: emoji and rare scripts.
            0xF0..=0xF4 => (4, Some(Seen::Foreign)),
            _ => (1, None),
        };
        out.extend(seen);
        i += len;
    }
    out
}

/// Whether a token should be suppressed while decoding text in `script`.
pub fn is_foreign(bytes: &[u8], script: Script) -> bool {
    scripts_of(bytes).into_iter().any(|s| match s {
        Seen::Known(other) => other != script,
        Seen::Foreign => true,
    })
}

/// The token ids to suppress for `script`, from a vocabulary given as id → bytes.
pub fn foreign_tokens<'a>(
    vocab: impl Iterator<Item = (i32, &'a [u8])>,
    script: Script,
) -> Vec<i32> {
    vocab
        .filter(|(_, bytes)| is_foreign(bytes, script))
        .map(|(id, _)| id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_and_partial_characters() {
        let te = Script::Telugu;
        assert!(!is_foreign("మీరు".as_bytes(), te));
        assert!(!is_foreign(b" hello, 42!", te), "Latin and digits stay");
        assert!(is_foreign("आप".as_bytes(), te));
        assert!(is_foreign("آپ".as_bytes(), te));
        assert!(is_foreign("你好".as_bytes(), te));
        assert!(is_foreign("привет".as_bytes(), te));
        // A token holding only the first two bytes of a Devanagari letter.
        assert!(is_foreign(&"क".as_bytes()[..2], te));
        assert!(!is_foreign(&"క".as_bytes()[..2], te));
        // Only the lead byte, or only continuation bytes: cannot tell, so allowed.
        assert!(!is_foreign(&"क".as_bytes()[..1], te));
        assert!(!is_foreign(&"क".as_bytes()[1..], te));
        // Urdu keeps its presentation forms and Hindi its own script.
        assert!(!is_foreign("ﷺ".as_bytes(), Script::Arabic));
        assert!(!is_foreign("हिन्दी।".as_bytes(), Script::Devanagari));
        assert!(is_foreign("😀".as_bytes(), Script::Devanagari));
        // The danda is every Indic script's full stop.
        assert!(!is_foreign("।".as_bytes(), Script::Bengali));
        assert!(!is_foreign(" ॥".as_bytes(), Script::Gurmukhi));
    }

    #[test]
    fn vocabulary_filter() {
        let vocab: Vec<(i32, &[u8])> = vec![
            (0, b" the"),
            (1, "न".as_bytes()),
            (2, " న".as_bytes()),
            (3, &[0xE0]),
        ];
        assert_eq!(foreign_tokens(vocab.into_iter(), Script::Telugu), vec![1]);
    }
}
