//! Any bytes as a Twilio media-stream message: the parser returns a message or an error, never
//! panics; a parsed media payload is never larger than the message.
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/transport/telephony/frames.rs"]
mod frames;
#[path = "../../src/transport/telephony/twilio.rs"]
mod twilio;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(frames::Inbound::Media(m)) = twilio::parse(text) {
            assert!(m.len() <= text.len());
        }
    }
});
