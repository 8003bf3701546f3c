//! One view of a session's events for every client: each [`PipelineEvent`] as the API's
//! `ServerEvent` (the one place that lists the event kinds and their fields). gRPC sends it as
//! protobuf; a browser call's data channel sends the same message as JSON
//! (`{"type": "transcript", …}`, serde derived in `build.rs`). Reply audio is the exception:
//! each transport encodes it its own way (gRPC bytes in the session's format, RTP for a page).

use std::time::Duration;

use crate::flow::PipelineEvent;
use crate::proto::{self, server_event::Event};
use crate::session::service::OpenSession;

/// `ev` as the API's event; `None` for reply audio.
pub fn to_proto(ev: &PipelineEvent) -> Option<Event> {
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f32() * 1000.0).unwrap_or(0.0);
    Some(match ev {
        PipelineEvent::SpeechStarted => Event::SpeechStarted(proto::SpeechStarted {}),
        PipelineEvent::SpeechStopped { turn, audio_s } => {
            Event::SpeechStopped(proto::SpeechStopped {
                turn: turn.0,
                audio_s: *audio_s,
            })
        }
        PipelineEvent::Transcript {
            turn,
            text,
            stable,
            language,
            confidence,
            is_final,
            ..
        } => Event::Transcript(proto::Transcript {
            turn: turn.0,
            text: text.clone(),
            language: language.clone(),
            confidence: *confidence,
            is_final: *is_final,
            stable: stable.clone(),
        }),
        PipelineEvent::LanguageDecided {
            turn,
            language,
            detected,
            confidence,
            reason,
            mixed_with_english,
        } => Event::LanguageDecision(proto::LanguageDecision {
            turn: turn.0,
            language: language.clone(),
            detected: detected.clone(),
            confidence: *confidence,
            reason: reason.to_string(),
            mixed_with_english: *mixed_with_english,
        }),
        PipelineEvent::LanguageChanged { turn, from, to } => {
            Event::LanguageChanged(proto::LanguageChanged {
                turn: turn.0,
                from: from.clone(),
                to: to.clone(),
            })
        }
        PipelineEvent::TurnContinued { turn } => {
            Event::TurnContinued(proto::TurnContinued { turn: turn.0 })
        }
        PipelineEvent::Backchannel { turn, text } => Event::Backchannel(proto::Backchannel {
            turn: turn.0,
            text: text.clone(),
        }),
        PipelineEvent::ReplyText { turn, text } => Event::ReplyText(proto::ReplyText {
            turn: turn.0,
            text: text.clone(),
        }),
        PipelineEvent::ReplyAudio { .. } => return None,
        PipelineEvent::TurnCompleted {
            turn,
            reply_text,
            voice,
            language,
            timings,
        } => Event::TurnCompleted(proto::TurnCompleted {
            turn: turn.0,
            reply_text: reply_text.clone(),
            voice: voice.clone(),
            language: language.clone(),
            timings: Some(proto::StageTimings {
                asr_ms: ms(timings.asr),
                lang_id_ms: ms(timings.lang_id),
                llm_first_token_ms: ms(timings.llm_first_token),
                tts_first_audio_ms: ms(timings.tts_first_audio),
                end_to_first_audio_ms: ms(timings.end_to_first_audio),
                first_clause_ms: ms(timings.first_clause),
                cpu_wait_ms: ms(Some(timings.cpu_wait)),
            }),
        }),
        PipelineEvent::Interrupted {
            turn,
            played_s,
            kept_text,
        } => Event::Interrupted(proto::Interrupted {
            turn: turn.0,
            played_s: *played_s,
            kept_text: kept_text.clone(),
        }),
        PipelineEvent::TurnFailed {
            turn,
            stage,
            message,
        } => Event::Error(proto::Error {
            code: format!("{stage}_failed"),
            message: message.clone(),
            turn: turn.0,
        }),
        PipelineEvent::NoSpeech => Event::Error(proto::Error {
            code: "no_speech".into(),
            message: "no speech was heard in the audio".into(),
            turn: 0,
        }),
    })
}

/// The first event of every session: its id, whether its history continues, and (gRPC) the
/// reply audio's format — a page's audio is RTP, so it has none.
pub fn session_started(session: &OpenSession, output_format: Option<proto::AudioFormat>) -> Event {
    Event::SessionStarted(proto::SessionStarted {
        session_id: session.id.clone(),
        resumed: session.resumed,
        history_turns: session.history_turns as u32,
        output_format,
    })
}

/// `ev` as the JSON a page receives; `None` for reply audio.
pub fn to_json(ev: &PipelineEvent) -> Option<serde_json::Value> {
    to_proto(ev).map(|e| json(&e))
}

/// An API event as JSON: `{"type": <the oneof field's name>, …the message's fields}`.
pub fn json(event: &Event) -> serde_json::Value {
    // Plain data (strings, numbers, nested messages): serializing it cannot fail.
    serde_json::to_value(event).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::messages::StageTimings;
    use crate::flow::TurnId;
    use serde_json::json;

    #[test]
    fn events_carry_the_grpc_fields() {
        let v = to_json(&PipelineEvent::Transcript {
            turn: TurnId(3),
            text: "नमस्ते".into(),
            stable: "नमस्ते".into(),
            language: "hi".into(),
            confidence: 0.5,
            spoken: vec![],
            is_final: true,
        })
        .unwrap();
        let expected = json!({"type": "transcript", "turn": 3, "text": "नमस्ते",
            "stable": "नमस्ते", "language": "hi", "confidence": 0.5, "is_final": true});
        assert_eq!(v, expected);
        let audio = PipelineEvent::ReplyAudio {
            turn: TurnId(3),
            samples: vec![0.0; 10],
            sample_rate: 24_000,
            offset_samples: 0,
        };
        assert!(to_json(&audio).is_none());
        let v = to_json(&PipelineEvent::NoSpeech).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "no_speech");
        assert_eq!(
            to_json(&PipelineEvent::SpeechStarted),
            Some(json!({"type": "speech_started"}))
        );
    }

    #[test]
    fn a_completed_turn_carries_its_timings_as_an_object() {
        let v = to_json(&PipelineEvent::TurnCompleted {
            turn: TurnId(2),
            reply_text: "ok".into(),
            voice: "kokoro:hf_alpha".into(),
            language: "hi".into(),
            timings: StageTimings {
                asr: Some(Duration::from_millis(250)),
                ..Default::default()
            },
        })
        .unwrap();
        assert_eq!(v["type"], "turn_completed");
        assert_eq!(v["timings"]["asr_ms"], 250.0);
        assert_eq!(v["timings"]["llm_first_token_ms"], 0.0);
        let v = to_json(&PipelineEvent::LanguageChanged {
            turn: TurnId(4),
            from: "hi".into(),
            to: "te".into(),
        })
        .unwrap();
        assert_eq!(
            v,
            json!({"type": "language_changed", "turn": 4, "from": "hi", "to": "te"})
        );
    }
}
