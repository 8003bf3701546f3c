//! Twilio Media Streams, bidirectional (`<Connect><Stream url="wss://…/telephony/twilio">`).
//! From Twilio: `connected`, `start` (streamSid, callSid, mediaFormat, customParameters),
//! `media` (base64 μ-law 8 kHz, 20 ms), `dtmf`, `mark` (a mark we sent has been played, or
//! dropped by a `clear`), `stop`. To Twilio: `media`, `mark`, `clear`.

use serde_json::json;

use super::frames::{
    media_stream_event, need, parse_json, rate, string_map, text_at, Codec, Inbound, MediaFormat,
    StartInfo, WireError,
};

pub fn parse(text: &str) -> Result<Inbound, WireError> {
    let (v, event) = parse_json(text)?;
    match event.as_str() {
        "start" => {
            let encoding = need(&v, &["start", "mediaFormat", "encoding"], "mediaFormat")?;
            let sample_rate = rate(&v, &["start", "mediaFormat", "sampleRate"])?;
            let channels = text_at(&v, &["start", "mediaFormat", "channels"]);
            if encoding != "audio/x-mulaw"
                || sample_rate != 8_000
                || channels.is_some_and(|c| c != "1")
            {
                return Err(WireError::Format(format!(
                    "Twilio streams are audio/x-mulaw 8000 Hz mono, not {encoding} {sample_rate} Hz"
                )));
            }
            let stream_id = text_at(&v, &["streamSid"])
                .or_else(|| text_at(&v, &["start", "streamSid"]))
                .ok_or(WireError::Missing("streamSid"))?;
            Ok(Inbound::Start(StartInfo {
                call_id: need(&v, &["start", "callSid"], "start.callSid")?,
                stream_id,
                format: MediaFormat {
                    codec: Codec::Mulaw,
                    rate: 8_000,
                },
                params: string_map(v.pointer("/start/customParameters")),
            }))
        }
        other => media_stream_event(&v, other),
    }
}

pub fn media(stream_sid: &str, audio: &[u8]) -> String {
    json!({
        "event": "media",
        "streamSid": stream_sid,
        "media": { "payload": super::frames::encode_b64(audio) },
    })
    .to_string()
}

pub fn mark(stream_sid: &str, name: &str) -> String {
    json!({ "event": "mark", "streamSid": stream_sid, "mark": { "name": name } }).to_string()
}

pub fn clear(stream_sid: &str) -> String {
    json!({ "event": "clear", "streamSid": stream_sid }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1",
        "streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],
        "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},
        "customParameters":{"session_id":"abc","languages":"hi,en"}},"streamSid":"MZ1"}"#;

    #[test]
    fn documented_messages_parse() {
        assert_eq!(
            parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#),
            Ok(Inbound::Connected)
        );
        let Inbound::Start(s) = parse(START).unwrap() else {
            panic!("not a start")
        };
        assert_eq!((s.call_id.as_str(), s.stream_id.as_str()), ("CA1", "MZ1"));
        assert_eq!(s.format, MediaFormat::MULAW_8K);
        assert_eq!(s.params["languages"], "hi,en");
        let media = r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound",
            "chunk":"1","timestamp":"5","payload":"/38A"},"streamSid":"MZ1"}"#;
        assert_eq!(parse(media), Ok(Inbound::Media(vec![0xff, 0x7f, 0x00])));
        let dtmf = r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5",
            "dtmf":{"track":"inbound_track","digit":"1"}}"#;
        assert_eq!(parse(dtmf), Ok(Inbound::Dtmf('1')));
        let mark = r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ1",
            "mark":{"name":"3:400"}}"#;
        assert_eq!(parse(mark), Ok(Inbound::Played("3:400".into())));
        let stop = r#"{"event":"stop","sequenceNumber":"5","streamSid":"MZ1",
            "stop":{"accountSid":"AC1","callSid":"CA1"}}"#;
        assert_eq!(parse(stop), Ok(Inbound::Stop));
    }

    #[test]
    fn bad_messages_are_errors() {
        assert_eq!(
            parse(r#"{"event":"bogus"}"#),
            Err(WireError::UnknownEvent("bogus".into()))
        );
        assert_eq!(
            parse(r#"{"event":"media","media":{"payload":"!!"}}"#),
            Err(WireError::Base64)
        );
        assert!(matches!(
            parse(&START.replace("8000", "16000")),
            Err(WireError::Format(_))
        ));
        assert!(matches!(parse("not json"), Err(WireError::Json(_))));
    }

    #[test]
    fn outgoing_messages_have_the_documented_shape() {
        let m: serde_json::Value = serde_json::from_str(&media("MZ1", &[0xff, 0x7f])).unwrap();
        assert_eq!(m["event"], "media");
        assert_eq!(m["streamSid"], "MZ1");
        assert_eq!(m["media"]["payload"], "/38=");
        let k: serde_json::Value = serde_json::from_str(&mark("MZ1", "1:200")).unwrap();
        assert_eq!(k["mark"]["name"], "1:200");
        let c: serde_json::Value = serde_json::from_str(&clear("MZ1")).unwrap();
        assert_eq!(
            (c["event"].as_str(), c["streamSid"].as_str()),
            (Some("clear"), Some("MZ1"))
        );
    }
}
