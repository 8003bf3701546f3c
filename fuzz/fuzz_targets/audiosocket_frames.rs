//! Any bytes as an AudioSocket TCP stream: frames are parsed one after another until the
//! parser wants more bytes or reports an error; it never panics, never claims more bytes than
//! it was given, and an audio frame re-encodes to the bytes it came from.
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/transport/telephony/audiosocket.rs"]
mod audiosocket;
#[path = "../../src/transport/telephony/frames.rs"]
mod frames;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((frame, n))) = audiosocket::parse(rest) {
        assert!(n >= audiosocket::HEADER && n <= rest.len());
        if let audiosocket::Frame::Audio(a) = &frame {
            assert_eq!(audiosocket::encode(audiosocket::KIND_AUDIO, a), rest[..n]);
        }
        rest = &rest[n..];
    }
});
