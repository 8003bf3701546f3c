//! Any text as a client's typed turn and as a transcript to be stored or logged: the typed turn
//! comes out trimmed, bounded and free of control characters (or is refused), an echo of it in
//! an error message is short, and redaction leaves no run of six digits in clear.
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/text/input.rs"]
mod input;
#[path = "../../src/text/redact.rs"]
mod redact;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match input::typed_turn(text) {
        Ok(Some(turn)) => {
            assert!(!turn.chars().any(char::is_control));
            assert_eq!(turn.trim(), turn);
            assert!(turn.chars().count() <= input::MAX_TYPED_CHARS);
        }
        Ok(None) => {}
        Err(input::TypedError::TooLong(n)) => assert!(n > input::MAX_TYPED_CHARS),
    }
    let echoed = input::echo(text);
    assert!(echoed.chars().count() <= input::MAX_ECHO_CHARS * 10 + 32);
    let masked = redact::redact(text);
    let longest = masked
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(longest < 6, "{masked:?}");
});
