//! Keeps personal numbers out of logs and out of the session store: phone numbers, Aadhaar
//! numbers, OTPs, card numbers (any run of 6+ digits, in any Indic digit system, however the
//! groups are separated — "98765 43210", "98,765, 43,210" as Whisper writes them, "1234-5678")
//! and PAN-shaped tokens ("ABCDE1234F", "a BCD-1234F" as Whisper may hear one) are masked.
//!
//! It errs towards masking: a list of years ("1990, 2000") loses its digits too. A number said
//! in words ("nine eight seven …") is not caught.

/// Replacement for a masked span.
pub const MASK: &str = "[redacted]";
/// Digit runs at least this long are masked.
const MIN_DIGITS: usize = 6;
/// Characters that may separate the digit groups of one number.
const DIGIT_SEPARATORS: &[char] = &[' ', '-', '.', ',', '/', '\u{a0}'];
/// At most this many separator characters between two groups (", " is two).
const MAX_SEPARATOR_RUN: usize = 2;

/// Returns `text` with personal numbers masked.
pub fn redact(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut spans = digit_runs(&chars);
    spans.extend(pan_like(&chars));
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in spans {
        if start < at {
            // Overlaps a span already masked.
            at = at.max(end);
            continue;
        }
        out.extend(&chars[at..start]);
        out.push_str(MASK);
        at = end;
    }
    out.extend(&chars[at.min(chars.len())..]);
    out
}

/// Separator characters from `i` (at most [`MAX_SEPARATOR_RUN`]) when a digit follows them.
fn separator_before_digit(chars: &[char], i: usize) -> Option<usize> {
    let n = chars[i..]
        .iter()
        .take(MAX_SEPARATOR_RUN)
        .take_while(|c| DIGIT_SEPARATORS.contains(c))
        .count();
    (n > 0 && chars.get(i + n).is_some_and(|c| c.is_numeric())).then_some(n)
}

/// `[start, end)` of every number of at least [`MIN_DIGITS`] digits (a leading `+` included).
fn digit_runs(chars: &[char]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let plus = chars[i] == '+' && chars.get(i + 1).is_some_and(|c| c.is_numeric());
        if !(chars[i].is_numeric() || plus) {
            i += 1;
            continue;
        }
        let start = i;
        let (mut j, mut digits, mut last_digit) = (i + usize::from(plus), 0, i);
        while j < chars.len() {
            if chars[j].is_numeric() {
                digits += 1;
                last_digit = j;
                j += 1;
            } else if let Some(n) = separator_before_digit(chars, j) {
                j += n;
            } else {
                break;
            }
        }
        if digits >= MIN_DIGITS {
            spans.push((start, last_digit + 1));
        }
        i = j.max(i + 1);
    }
    spans
}

/// `[start, end)` of PAN-shaped tokens: letters, four digits, one letter (ABCDE1234F), allowing
/// the spaces and hyphens a recogniser puts between the parts.
fn pan_like(chars: &[char]) -> Vec<(usize, usize)> {
    let is_sep = |c: char| c == ' ' || c == '-';
    let mut spans = Vec::new();
    let mut i = 0;
    while i + 4 <= chars.len() {
        let four = chars[i..i + 4].iter().all(char::is_ascii_digit)
            && (i == 0 || !chars[i - 1].is_ascii_digit())
            && chars.get(i + 4).is_none_or(|c| !c.is_ascii_digit());
        if !four {
            i += 1;
            continue;
        }
        // The check letter: right after the digits, or after one separator.
        let glued = chars.get(i + 4).is_some_and(char::is_ascii_alphabetic);
        let at = if glued { i + 4 } else { i + 5 };
        let check = chars.get(at).is_some_and(char::is_ascii_alphabetic)
            && (glued || chars.get(i + 4).is_some_and(|c| is_sep(*c)))
            && chars.get(at + 1).is_none_or(|c| !c.is_alphanumeric());
        // Up to five letters before the digits, across at most two single separators.
        let (mut start, mut letters, mut upper, mut seps) = (i, 0, 0, 0);
        let mut k = i;
        while k > 0 && letters < 5 {
            let c = chars[k - 1];
            if c.is_ascii_alphabetic() {
                letters += 1;
                upper += usize::from(c.is_ascii_uppercase());
                start = k - 1;
            } else if is_sep(c) && seps < 2 && k >= 2 && chars[k - 2].is_ascii_alphabetic() {
                seps += 1;
            } else {
                break;
            }
            k -= 1;
        }
        let word_start = start == 0 || !chars[start - 1].is_alphanumeric();
        let shaped = letters >= 3 && (glued || (letters == 5 && upper == 5));
        if check && word_start && shaped {
            spans.push((start, at + 1));
            i = at + 1;
        } else {
            i += 1;
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masks_phone_aadhaar_pan_otp() {
        assert_eq!(redact("call +91 98765 43210 now"), "call [redacted] now");
        assert_eq!(redact("aadhaar 1234-5678-9012."), "aadhaar [redacted].");
        assert_eq!(redact("my PAN is ABCDE1234F ok"), "my PAN is [redacted] ok");
        assert_eq!(redact("OTP ४५६७८९ है"), "OTP [redacted] है");
        assert_eq!(
            redact("I am 42 years old, room 1203"),
            "I am 42 years old, room 1203"
        );
    }

    #[test]
    fn masks_numbers_grouped_the_way_whisper_writes_them() {
        assert_eq!(
            redact("My phone number is 98,765, 43,210."),
            "My phone number is [redacted]."
        );
        assert_eq!(redact("it is 98,765 43,210"), "it is [redacted]");
        assert_eq!(redact("1234 5678 9012 is mine"), "[redacted] is mine");
        assert_eq!(redact("९८७६५ ४३२१०"), "[redacted]");
        assert_eq!(redact("number: 98765, 43210"), "number: [redacted]");
    }

    #[test]
    fn masks_pan_as_a_recogniser_may_spell_it() {
        assert_eq!(redact("PAN a BCD-1234F."), "PAN [redacted].");
        assert_eq!(redact("pan abcde1234f"), "pan [redacted]");
        assert_eq!(redact("ABCDE 1234 F please"), "[redacted] please");
        assert_eq!(redact("ABCDE-1234-F"), "[redacted]");
    }

    #[test]
    fn leaves_ordinary_words_and_small_numbers() {
        for text in [
            "room 1234 B is on the left",
            "in 2019 and 2020",
            "Flight AI 1234 at 5 pm",
            "नमस्ते, मेरा नाम राम है",
            "3 plus 4 is 7",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    proptest! {
        #[test]
        fn never_leaves_a_long_digit_run(text in "[a-z0-9 +,.-]{0,80}") {
            let r = redact(&text);
            let longest = r.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0);
            prop_assert!(longest < MIN_DIGITS);
        }

        #[test]
        fn a_ten_digit_number_is_masked_however_it_is_grouped(
            digits in "[0-9]{10}",
            cuts in proptest::collection::vec((1usize..10, "[ ,.-]{1,2}"), 0..4),
            before in "[a-z ]{0,20}",
        ) {
            let mut number = digits.clone();
            let mut cuts = cuts;
            cuts.sort_by_key(|c| std::cmp::Reverse(c.0));
            cuts.dedup_by_key(|c| c.0);
            for (at, sep) in cuts {
                number.insert_str(at, &sep);
            }
            let r = redact(&format!("{before} {number} ok"));
            prop_assert!(!r.chars().any(|c| c.is_ascii_digit()), "{number} -> {r}");
        }

        #[test]
        fn text_without_digits_is_unchanged(text in "[a-zA-Zअ-ह ,.]{0,80}") {
            prop_assert_eq!(redact(&text), text);
        }
    }
}
