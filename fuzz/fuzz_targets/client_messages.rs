//! Any bytes as a `Converse` stream: a run of length-delimited `ClientMessage`s (arbitrary
//! protobuf, any field combination) read the way the daemon reads them — the first opens the
//! session (its `SessionConfig` and audio formats), each later one is audio, text or control
//! under a size limit the input picks. Nothing panics; a refusal is short; decoded audio is
//! finite and no longer than the chunk sent, resampled; a typed turn is clean and bounded.
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;
use prost::Message;

mod proto {
    include!(concat!(env!("OUT_DIR"), "/vaak.v1.rs"));
}
#[path = "../../src/audio/mod.rs"]
mod audio;
#[path = "../../src/text"]
mod text {
    pub mod input;
    pub mod redact;
}
#[path = "../../src/transport"]
mod transport {
    pub mod codec;
    pub mod grpc {
        pub mod inbound;
    }
}

use transport::codec::InputDecoder;
use transport::grpc::inbound::{self, Refused, Request};

/// A stream ends at its first refusal, as in the daemon; this many messages are enough.
const MAX_MESSAGES: usize = 64;

fn check_refusal(r: &Refused) {
    let text = r.to_string();
    assert!(!text.is_empty());
    assert!(text.chars().count() <= 400, "an unbounded refusal: {text:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, mut buf)) = data.split_first() else {
        return;
    };
    // The operator's limit, from 1 KiB (the least the config takes) up.
    let max_bytes = 1024 + usize::from(pick) * 1024;
    let Ok(first) = proto::ClientMessage::decode_length_delimited(&mut buf) else {
        return;
    };
    let opening = match inbound::opening(first) {
        Ok(o) => o,
        Err(r) => return check_refusal(&r),
    };
    for f in [opening.input, opening.output] {
        assert!(transport::codec::PCM_RATES.contains(&f.rate), "{f:?}");
    }
    let mut decoder = match InputDecoder::new(opening.input) {
        Ok(d) => d,
        Err(e) => panic!("a format the opening took has no decoder: {e}"),
    };
    let mut sent_samples = 0u64;
    let mut decoded = 0u64;
    for _ in 0..MAX_MESSAGES {
        let Ok(m) = proto::ClientMessage::decode_length_delimited(&mut buf) else {
            return;
        };
        if let Some(proto::client_message::Msg::Audio(bytes)) = &m.msg {
            sent_samples += (bytes.len() / opening.input.bytes_per_sample()) as u64;
        }
        match inbound::request(m, opening.config.text_only, max_bytes, &mut decoder) {
            Ok(Request::Audio(pcm)) => {
                assert!(pcm.iter().all(|s| s.is_finite() && s.abs() <= 2.0));
                decoded += pcm.len() as u64;
                // The resampler may hold back a block, never invent audio.
                let expected = sent_samples * u64::from(audio::PIPELINE_RATE)
                    / u64::from(opening.input.rate);
                assert!(decoded <= expected + 64, "{decoded} samples from {expected}");
            }
            Ok(Request::Text(t)) => {
                assert!(!t.is_empty() && !t.chars().any(char::is_control));
                assert!(t.chars().count() <= text::input::MAX_TYPED_CHARS);
            }
            Ok(_) => {}
            Err(r) => return check_refusal(&r),
        }
    }
});
