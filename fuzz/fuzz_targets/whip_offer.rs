//! Any bytes as the body of a WHIP `POST /whip` offer: vaak's check (and the SDP parser under it)
//! either takes the offer — then it has an audio section offering Opus and a DTLS fingerprint —
//! or refuses it in a short, printable message; it never panics.
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/transport/webrtc/offer.rs"]
mod offer;

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = std::str::from_utf8(data) else {
        return;
    };
    match offer::check_offer(sdp) {
        Ok(desc) => {
            let parsed = desc.unmarshal().expect("a taken offer parses again");
            assert!(parsed
                .media_descriptions
                .iter()
                .any(|m| m.media_name.media == "audio"));
        }
        Err(why) => {
            assert!(!why.is_empty());
            assert!(why.chars().count() <= offer::MAX_DETAIL_CHARS + 40, "{why}");
            assert!(!why.chars().any(char::is_control), "{why:?}");
        }
    }
});
