//! Any bytes as an Exotel media-stream message: the parser returns a message or an error,
//! never panics; a parsed media payload is never larger than the message.
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/transport/telephony/exotel.rs"]
mod exotel;
#[path = "../../src/transport/telephony/frames.rs"]
mod frames;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(frames::Inbound::Media(m)) = exotel::parse(text, 8_000) {
            assert!(m.len() <= text.len());
        }
        let padded = exotel::pad_chunk(data.to_vec(), 0);
        assert!(padded.len() % exotel::CHUNK_QUANTUM == 0 && padded.len() >= exotel::MIN_CHUNK);
    }
});
