//! Keeps personal numbers out of logs: phone numbers, Aadhaar numbers, OTPs, card numbers
//! (any run of 6+ digits, in any Indic digit system, spaces and hyphens allowed between groups)
//! and PAN-shaped tokens (`ABCDE1234F`) are masked before text is logged.

/// Replacement for a masked span.
pub const MASK: &str = "[redacted]";
/// Digit runs at least this long are masked.
const MIN_DIGITS: usize = 6;

/// Returns `text` with personal numbers masked.
pub fn redact(text: &str) -> String {
    let masked = mask_digit_runs(text);
    masked
        .split(' ')
        .map(|w| if looks_like_pan(w) { MASK } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

fn mask_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_numeric()
            || (chars[i] == '+' && chars.get(i + 1).is_some_and(|c| c.is_numeric()))
        {
            // Extend over digits and single separators between digits.
            let start = i;
            let mut j = i + 1;
            let mut digits = usize::from(chars[i].is_numeric());
            while j < chars.len() {
                if chars[j].is_numeric() {
                    digits += 1;
                    j += 1;
                } else if matches!(chars[j], ' ' | '-' | '.')
                    && chars.get(j + 1).is_some_and(|c| c.is_numeric())
                {
                    j += 1;
                } else {
                    break;
                }
            }
            if digits >= MIN_DIGITS {
                out.push_str(MASK);
            } else {
                out.extend(&chars[start..j]);
            }
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn looks_like_pan(word: &str) -> bool {
    let w: Vec<char> = word
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .collect();
    w.len() == 10
        && w[..5].iter().all(|c| c.is_ascii_alphabetic())
        && w[5..9].iter().all(|c| c.is_ascii_digit())
        && w[9].is_ascii_alphabetic()
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

    proptest! {
        #[test]
        fn never_leaves_a_long_digit_run(text in "[a-z0-9 +-]{0,80}") {
            let r = redact(&text);
            let longest = r.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0);
            prop_assert!(longest < MIN_DIGITS);
        }
    }
}
