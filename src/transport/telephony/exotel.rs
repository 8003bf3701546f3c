//! Exotel Voicebot applet (AgentStream), bidirectional. snake_case events from Exotel:
//! `connected`, `start` (stream_sid, call_sid, media_format, custom_parameters), `media`
//! (base64 PCM16 little-endian at 8 kHz, or 16 kHz with `?sample-rate=16000`; μ-law where the
//! applet's MediaFormat asks for it), `dtmf`, `mark`, `stop`. To Exotel: `media` in chunks that
//! are a multiple of 320 bytes between 3.2 kB and 100 kB, `mark`, `clear`.

use serde_json::json;

use super::frames::{
    media_stream_event, need, parse_json, rate, string_map, text_at, Codec, Inbound, MediaFormat,
    StartInfo, WireError,
};

/// Outgoing media chunks are multiples of this many bytes …
pub const CHUNK_QUANTUM: usize = 320;
/// … and at least this long (100 ms at 16 kHz, 200 ms at 8 kHz) …
pub const MIN_CHUNK: usize = 3_200;
/// … and at most this long.
pub const MAX_CHUNK: usize = 100_000;

/// Rates Exotel streams at.
pub const RATES: [u32; 3] = [8_000, 16_000, 24_000];

/// Parses one message. `default_rate` is the `sample-rate` of the stream's URL (8000 if none),
/// used when `start` carries no rate.
pub fn parse(text: &str, default_rate: u32) -> Result<Inbound, WireError> {
    let (v, event) = parse_json(text)?;
    match event.as_str() {
        "start" => {
            let sample_rate = match text_at(&v, &["start", "media_format", "sample_rate"]) {
                Some(_) => rate(&v, &["start", "media_format", "sample_rate"])?,
                None => default_rate,
            };
            let encoding = text_at(&v, &["start", "media_format", "encoding"])
                .unwrap_or_else(|| "base64".into())
                .to_ascii_lowercase();
            let codec = if encoding.contains("mulaw") || encoding.contains("pcmu") {
                Codec::Mulaw
            } else {
                Codec::Pcm16
            };
            let ok = match codec {
                Codec::Mulaw => sample_rate == 8_000,
                Codec::Pcm16 => RATES.contains(&sample_rate),
            };
            if !ok {
                return Err(WireError::Format(format!(
                    "Exotel streams PCM16 at 8000, 16000 or 24000 Hz (μ-law at 8000), not \
                     {encoding} at {sample_rate} Hz"
                )));
            }
            let stream_id = text_at(&v, &["stream_sid"])
                .or_else(|| text_at(&v, &["start", "stream_sid"]))
                .ok_or(WireError::Missing("stream_sid"))?;
            Ok(Inbound::Start(StartInfo {
                call_id: need(&v, &["start", "call_sid"], "start.call_sid")?,
                stream_id,
                format: MediaFormat {
                    codec,
                    rate: sample_rate,
                },
                params: string_map(v.pointer("/start/custom_parameters")),
            }))
        }
        "clear" => Ok(Inbound::Cleared),
        other => media_stream_event(&v, other),
    }
}

/// One outgoing media chunk; the caller keeps it to [`CHUNK_QUANTUM`] multiples within
/// [`MIN_CHUNK`]..=[`MAX_CHUNK`].
pub fn media(stream_sid: &str, audio: &[u8]) -> String {
    json!({
        "event": "media",
        "stream_sid": stream_sid,
        "media": { "payload": super::frames::encode_b64(audio) },
    })
    .to_string()
}

pub fn mark(stream_sid: &str, name: &str) -> String {
    json!({ "event": "mark", "stream_sid": stream_sid, "mark": { "name": name } }).to_string()
}

pub fn clear(stream_sid: &str) -> String {
    json!({ "event": "clear", "stream_sid": stream_sid }).to_string()
}

/// The tail of a reply padded with silence to a valid chunk length.
pub fn pad_chunk(mut audio: Vec<u8>, silence: u8) -> Vec<u8> {
    let len = audio.len().max(MIN_CHUNK).div_ceil(CHUNK_QUANTUM) * CHUNK_QUANTUM;
    audio.resize(len, silence);
    audio
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"event":"start","sequence_number":1,"stream_sid":"S1",
        "start":{"stream_sid":"S1","call_sid":"C1","account_sid":"A1","from":"+910000000000",
        "to":"+910000000001","custom_parameters":{"languages":"te"},
        "media_format":{"encoding":"base64","sample_rate":"16000","bit_rate":"256kbps"}}}"#;

    #[test]
    fn documented_messages_parse() {
        let Inbound::Start(s) = parse(START, 8_000).unwrap() else {
            panic!("not a start")
        };
        assert_eq!((s.call_id.as_str(), s.stream_id.as_str()), ("C1", "S1"));
        assert_eq!(
            s.format,
            MediaFormat {
                codec: Codec::Pcm16,
                rate: 16_000
            }
        );
        assert_eq!(s.params["languages"], "te");
        let media = r#"{"event":"media","sequence_number":2,"stream_sid":"S1",
            "media":{"chunk":1,"timestamp":"100","payload":"AAA="}}"#;
        assert_eq!(parse(media, 8_000), Ok(Inbound::Media(vec![0, 0])));
        let dtmf = r#"{"event":"dtmf","sequence_number":3,"stream_sid":"S1",
            "dtmf":{"duration":"250","digit":"9"}}"#;
        assert_eq!(parse(dtmf, 8_000), Ok(Inbound::Dtmf('9')));
        let mark =
            r#"{"event":"mark","sequence_number":4,"stream_sid":"S1","mark":{"name":"2:600"}}"#;
        assert_eq!(parse(mark, 8_000), Ok(Inbound::Played("2:600".into())));
        let stop = r#"{"event":"stop","sequence_number":5,"stream_sid":"S1",
            "stop":{"call_sid":"C1","account_sid":"A1","reason":"callended"}}"#;
        assert_eq!(parse(stop, 8_000), Ok(Inbound::Stop));
    }

    #[test]
    fn rates_outside_exotels_are_refused() {
        assert!(matches!(
            parse(&START.replace("\"16000\"", "\"44100\""), 8_000),
            Err(WireError::Format(_))
        ));
        let no_rate = START.replace(",\"sample_rate\":\"16000\"", "");
        let Ok(Inbound::Start(s)) = parse(&no_rate, 8_000) else {
            panic!("start without a rate")
        };
        assert_eq!(s.format.rate, 8_000);
    }

    #[test]
    fn padded_chunks_are_valid() {
        for n in [0, 1, 319, 320, 3_199, 3_200, 3_201, 9_999] {
            let c = pad_chunk(vec![1; n], 0);
            assert!(c.len() % CHUNK_QUANTUM == 0 && c.len() >= MIN_CHUNK && c.len() >= n);
        }
    }
}
