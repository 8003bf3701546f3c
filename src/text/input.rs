//! What clients type, checked once at the session boundary for every transport: a typed turn
//! loses its control characters (a NUL would otherwise reach the LLM worker and come back as
//! its HTTP error) and is refused past a length limit; and client input quoted in an error
//! message is cut short (a 10 000-character session id echoed whole overflows gRPC's metadata
//! limit and turns a clear INVALID_ARGUMENT into RESOURCE_EXHAUSTED).

/// Longest typed turn, in characters.
pub const MAX_TYPED_CHARS: usize = 2_000;
/// Most characters of client input an error message repeats.
pub const MAX_ECHO_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypedError {
    #[error("typed turn longer than {MAX_TYPED_CHARS} characters ({0})")]
    TooLong(usize),
}

/// A typed turn as the pipeline should get it: control characters dropped (line breaks and
/// tabs become spaces), whitespace trimmed; `None` if nothing is left.
pub fn typed_turn(raw: &str) -> Result<Option<String>, TypedError> {
    let n = raw.chars().count();
    if n > MAX_TYPED_CHARS {
        return Err(TypedError::TooLong(n));
    }
    let cleaned: String = raw
        .chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            // Zero-width joiners and non-joiners are part of Indic spelling: kept.
            '\u{200c}' | '\u{200d}' => Some(c),
            c if c.is_control() || is_invisible_format(c) => None,
            c => Some(c),
        })
        .collect();
    let cleaned = cleaned.trim();
    Ok((!cleaned.is_empty()).then(|| cleaned.to_string()))
}

/// Bidi overrides and other invisible format characters that only hide what text says.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// `value` for an error message: personal numbers masked, at most [`MAX_ECHO_CHARS`]
/// characters, control characters shown escaped, and a note of how long it really was when cut.
pub fn echo(value: &str) -> String {
    let value = &super::redact::redact(value);
    let n = value.chars().count();
    let shown: String = value
        .chars()
        .take(MAX_ECHO_CHARS)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if n > MAX_ECHO_CHARS {
        format!("{shown}… ({n} characters)")
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn typed_turns_lose_control_characters() {
        assert_eq!(
            typed_turn("  what\u{0} is\tthe\r\ntime? ").unwrap(),
            Some("what is the  time?".into())
        );
        assert_eq!(typed_turn("\u{0}\u{7}  ").unwrap(), None);
        assert_eq!(typed_turn("क्‍ष \u{202e}txt").unwrap(), Some("क्‍ष txt".into()));
        assert_eq!(
            typed_turn(&"a".repeat(MAX_TYPED_CHARS + 1)),
            Err(TypedError::TooLong(MAX_TYPED_CHARS + 1))
        );
        assert!(typed_turn(&"अ".repeat(MAX_TYPED_CHARS)).unwrap().is_some());
    }

    #[test]
    fn echoes_are_short() {
        assert_eq!(echo("abc"), "abc");
        assert_eq!(echo("a\u{0}b"), "a\\u{0}b");
        assert_eq!(echo("id 98765 43210"), "id [redacted]");
        let long = echo(&"x".repeat(10_000));
        assert!(long.starts_with(&"x".repeat(MAX_ECHO_CHARS)));
        assert!(long.ends_with("(10000 characters)"), "{long}");
        assert!(long.len() < 100);
    }

    proptest! {
        #[test]
        fn a_typed_turn_has_no_control_character(raw in "\\PC{0,40}|[\\x00-\\x1f a-z]{0,40}") {
            if let Some(t) = typed_turn(&raw).unwrap() {
                prop_assert!(!t.chars().any(char::is_control));
                prop_assert_eq!(t.trim(), t.as_str());
            }
        }

        #[test]
        fn an_echo_is_bounded(raw in "\\PC{0,300}") {
            prop_assert!(echo(&raw).chars().count() <= MAX_ECHO_CHARS * 10 + 32);
        }
    }
}
