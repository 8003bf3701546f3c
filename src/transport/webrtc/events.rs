//! The gRPC stream's events as JSON for the call's data channel (`"type"` names the event, the
//! other fields are the proto message's), and the messages a page may send back.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::pipeline::PipelineEvent;

/// One pipeline event as the JSON the page receives; `None` for reply audio, which travels as
/// RTP on the call's audio track.
pub fn to_json(ev: &PipelineEvent) -> Option<Value> {
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f32() * 1000.0).unwrap_or(0.0);
    Some(match ev {
        PipelineEvent::SpeechStarted => json!({"type": "speech_started"}),
        PipelineEvent::SpeechStopped { turn, audio_s } => {
            json!({"type": "speech_stopped", "turn": turn.0, "audio_s": audio_s})
        }
        PipelineEvent::Transcript {
            turn,
            text,
            stable,
            language,
            confidence,
            is_final,
            ..
        } => json!({
            "type": "transcript", "turn": turn.0, "text": text, "stable": stable,
            "language": language, "confidence": confidence, "is_final": is_final,
        }),
        PipelineEvent::LanguageDecided {
            turn,
            language,
            detected,
            confidence,
            reason,
            mixed_with_english,
        } => json!({
            "type": "language_decision", "turn": turn.0, "language": language,
            "detected": detected, "confidence": confidence, "reason": reason,
            "mixed_with_english": mixed_with_english,
        }),
        PipelineEvent::LanguageChanged { turn, from, to } => {
            json!({"type": "language_changed", "turn": turn.0, "from": from, "to": to})
        }
        PipelineEvent::TurnContinued { turn } => json!({"type": "turn_continued", "turn": turn.0}),
        PipelineEvent::Backchannel { turn, text } => {
            json!({"type": "backchannel", "turn": turn.0, "text": text})
        }
        PipelineEvent::ReplyText { turn, text } => {
            json!({"type": "reply_text", "turn": turn.0, "text": text})
        }
        PipelineEvent::ReplyAudio { .. } => return None,
        PipelineEvent::TurnCompleted {
            turn,
            reply_text,
            voice,
            language,
            timings,
        } => json!({
            "type": "turn_completed", "turn": turn.0, "reply_text": reply_text,
            "voice": voice, "language": language,
            "timings": {
                "asr_ms": ms(timings.asr),
                "lang_id_ms": ms(timings.lang_id),
                "llm_first_token_ms": ms(timings.llm_first_token),
                "tts_first_audio_ms": ms(timings.tts_first_audio),
                "end_to_first_audio_ms": ms(timings.end_to_first_audio),
                "first_clause_ms": ms(timings.first_clause),
                "cpu_wait_ms": ms(Some(timings.cpu_wait)),
            },
        }),
        PipelineEvent::Interrupted {
            turn,
            played_s,
            kept_text,
        } => json!({
            "type": "interrupted", "turn": turn.0, "played_s": played_s, "kept_text": kept_text,
        }),
        PipelineEvent::TurnFailed {
            turn,
            stage,
            message,
        } => json!({
            "type": "error", "code": format!("{stage}_failed"), "message": message,
            "turn": turn.0,
        }),
        PipelineEvent::NoSpeech => json!({
            "type": "error", "code": "no_speech",
            "message": "no speech was heard in the audio", "turn": 0,
        }),
    })
}

/// The page's messages on the data channel.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PageMessage {
    /// A typed turn (accessibility, or a microphone that will not work).
    Text { text: String },
    /// Finish the utterance in progress now (a push-to-talk release).
    EndOfInput {},
    /// The page is leaving (the DELETE may not make it).
    Hangup {},
}

/// Largest data-channel message accepted from a page.
pub const MAX_PAGE_MESSAGE: usize = 8 * 1024;

/// Parses one data-channel message, or says what is wrong with it (sent back as an error
/// event; the call goes on).
pub fn parse_page_message(data: &[u8]) -> Result<PageMessage, String> {
    if data.len() > MAX_PAGE_MESSAGE {
        return Err(format!(
            "message of {} bytes exceeds the limit of {MAX_PAGE_MESSAGE} bytes",
            data.len()
        ));
    }
    let msg: PageMessage =
        serde_json::from_slice(data).map_err(|e| format!("not a vaak page message: {e}"))?;
    if let PageMessage::Text { text } = &msg {
        if text.trim().is_empty() {
            return Err("a text turn needs some text".into());
        }
    }
    Ok(msg)
}

/// An error event for the page.
pub fn error(code: &str, message: &str) -> Value {
    json!({"type": "error", "code": code, "message": message, "turn": 0})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::TurnId;

    #[test]
    fn events_carry_the_grpc_fields() {
        let v = to_json(&PipelineEvent::Transcript {
            turn: TurnId(3),
            text: "नमस्ते".into(),
            stable: "नमस्ते".into(),
            language: "hi".into(),
            confidence: 0.9,
            spoken: vec![],
            is_final: true,
        })
        .unwrap();
        assert_eq!(v["type"], "transcript");
        assert_eq!(v["turn"], 3);
        assert_eq!(v["text"], "नमस्ते");
        assert_eq!(v["is_final"], true);
        let audio = PipelineEvent::ReplyAudio {
            turn: TurnId(3),
            samples: vec![0.0; 10],
            sample_rate: 24_000,
            offset_samples: 0,
        };
        assert!(to_json(&audio).is_none());
        let v = to_json(&PipelineEvent::NoSpeech).unwrap();
        assert_eq!(v["code"], "no_speech");
    }

    #[test]
    fn page_messages_are_checked() {
        assert_eq!(
            parse_page_message(br#"{"type":"text","text":"hello"}"#),
            Ok(PageMessage::Text {
                text: "hello".into()
            })
        );
        assert_eq!(
            parse_page_message(br#"{"type":"hangup"}"#),
            Ok(PageMessage::Hangup {})
        );
        for bad in [
            &br#"{"type":"text","text":"  "}"#[..],
            br#"{"type":"dance"}"#,
            br#"{"type":"hangup","x":1}"#,
            b"\xff\xfe",
            b"",
        ] {
            assert!(parse_page_message(bad).is_err(), "{bad:?}");
        }
        assert!(parse_page_message(&vec![b' '; MAX_PAGE_MESSAGE + 1]).is_err());
    }
}
