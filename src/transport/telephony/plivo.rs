//! Plivo audio streams, bidirectional (`<Stream bidirectional="true" keepCallAlive="true">`).
//! From Plivo: `start` (callId, streamId, mediaFormat, extra_headers), `media`, `dtmf`,
//! `playedStream` (a checkpoint was reached; some documents call it `played`), `clearedAudio`,
//! `stop`. To Plivo: `playAudio` (contentType and sampleRate of the stream), `checkpoint`,
//! `clearAudio`.

use serde_json::json;

use super::frames::{
    digit, header_map, need, parse_json, payload, rate, text_at, Codec, Inbound, MediaFormat,
    StartInfo, WireError,
};

pub fn parse(text: &str) -> Result<Inbound, WireError> {
    let (v, event) = parse_json(text)?;
    match event.as_str() {
        "start" => {
            let encoding = need(&v, &["start", "mediaFormat", "encoding"], "mediaFormat")?;
            let sample_rate = rate(&v, &["start", "mediaFormat", "sampleRate"])?;
            let codec = match encoding.split(';').next().unwrap_or_default().trim() {
                "audio/x-mulaw" => Codec::Mulaw,
                "audio/x-l16" => Codec::Pcm16,
                other => {
                    return Err(WireError::Format(format!(
                        "Plivo encoding `{}`: use audio/x-mulaw or audio/x-l16",
                        super::frames::truncate(other, 32)
                    )))
                }
            };
            let ok = match codec {
                Codec::Mulaw => sample_rate == 8_000,
                Codec::Pcm16 => sample_rate == 8_000 || sample_rate == 16_000,
            };
            if !ok {
                return Err(WireError::Format(format!(
                    "Plivo streams audio/x-l16 at 8000 or 16000 Hz or audio/x-mulaw at 8000 Hz, \
                     not {encoding} at {sample_rate} Hz"
                )));
            }
            let stream_id = text_at(&v, &["start", "streamId"])
                .or_else(|| text_at(&v, &["streamId"]))
                .ok_or(WireError::Missing("streamId"))?;
            let params = text_at(&v, &["extra_headers"])
                .or_else(|| text_at(&v, &["extraHeaders"]))
                .map(|h| header_map(&h))
                .unwrap_or_default();
            Ok(Inbound::Start(StartInfo {
                call_id: need(&v, &["start", "callId"], "start.callId")?,
                stream_id,
                format: MediaFormat {
                    codec,
                    rate: sample_rate,
                },
                params,
            }))
        }
        "media" => Ok(Inbound::Media(payload(&v, &["media", "payload"])?)),
        "dtmf" => {
            let d = text_at(&v, &["dtmf", "digit"])
                .or_else(|| text_at(&v, &["digit"]))
                .ok_or(WireError::Missing("dtmf.digit"))?;
            Ok(Inbound::Dtmf(digit(&d)?))
        }
        "playedStream" | "played" => Ok(Inbound::Played(need(&v, &["name"], "name")?)),
        "clearedAudio" => Ok(Inbound::Cleared),
        "stop" => Ok(Inbound::Stop),
        other => Err(WireError::UnknownEvent(super::frames::truncate(other, 32))),
    }
}

fn content_type(format: MediaFormat) -> &'static str {
    match format.codec {
        Codec::Mulaw => "audio/x-mulaw",
        Codec::Pcm16 => "audio/x-l16",
    }
}

pub fn play_audio(format: MediaFormat, audio: &[u8]) -> String {
    json!({
        "event": "playAudio",
        "media": {
            "contentType": content_type(format),
            "sampleRate": format.rate,
            "payload": super::frames::encode_b64(audio),
        },
    })
    .to_string()
}

pub fn checkpoint(stream_id: &str, name: &str) -> String {
    json!({ "event": "checkpoint", "streamId": stream_id, "name": name }).to_string()
}

pub fn clear_audio(stream_id: &str) -> String {
    json!({ "event": "clearAudio", "streamId": stream_id }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"event":"start","sequenceNumber":1,"start":{"callId":"c-1",
        "streamId":"s-1","accountId":"MA1","tracks":["inbound"],
        "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000}},
        "extra_headers":"session_id=abc;languages=hi"}"#;

    #[test]
    fn documented_messages_parse() {
        let Inbound::Start(s) = parse(START).unwrap() else {
            panic!("not a start")
        };
        assert_eq!((s.call_id.as_str(), s.stream_id.as_str()), ("c-1", "s-1"));
        assert_eq!(s.format, MediaFormat::MULAW_8K);
        assert_eq!(s.params["session_id"], "abc");
        let media = r#"{"event":"media","sequenceNumber":42,"streamId":"s-1",
            "media":{"track":"inbound","timestamp":"1705312200000","chunk":41,"payload":"/w=="}}"#;
        assert_eq!(parse(media), Ok(Inbound::Media(vec![0xff])));
        for ev in ["playedStream", "played"] {
            let p = format!(r#"{{"event":"{ev}","streamId":"s-1","name":"4:800"}}"#);
            assert_eq!(parse(&p), Ok(Inbound::Played("4:800".into())));
        }
        assert_eq!(
            parse(r#"{"event":"clearedAudio","streamId":"s-1","sequenceNumber":7}"#),
            Ok(Inbound::Cleared)
        );
        assert_eq!(
            parse(r##"{"event":"dtmf","streamId":"s-1","dtmf":{"digit":"#"}}"##),
            Ok(Inbound::Dtmf('#'))
        );
    }

    #[test]
    fn l16_at_other_rates_is_refused() {
        let l16 = START.replace("audio/x-mulaw", "audio/x-l16");
        assert!(matches!(parse(&l16), Ok(Inbound::Start(_))));
        assert!(matches!(
            parse(&l16.replace("8000", "44100")),
            Err(WireError::Format(_))
        ));
        assert!(matches!(
            parse(&START.replace("8000", "16000")),
            Err(WireError::Format(_))
        ));
    }

    #[test]
    fn play_audio_names_the_stream_format() {
        let m: serde_json::Value =
            serde_json::from_str(&play_audio(MediaFormat::PCM_8K, &[0, 0])).unwrap();
        assert_eq!(m["event"], "playAudio");
        assert_eq!(m["media"]["contentType"], "audio/x-l16");
        assert_eq!(m["media"]["sampleRate"], 8000);
        let c: serde_json::Value = serde_json::from_str(&checkpoint("s-1", "1:200")).unwrap();
        assert_eq!(
            (c["event"].as_str(), c["name"].as_str()),
            (Some("checkpoint"), Some("1:200"))
        );
    }
}
