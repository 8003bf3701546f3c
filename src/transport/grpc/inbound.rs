//! What a `Converse` client's messages ask, decided without the session: the first message's
//! `SessionConfig` and the audio formats both ways, then for each later message its audio
//! (size-checked and decoded to the pipeline rate), typed text (cleaned or refused) or control.
//! Pure, so that the gRPC door can be fuzzed message by message
//! (`fuzz/fuzz_targets/client_messages.rs`); `converse` acts on the answers and says a
//! [`Refused`] as a gRPC status.

use crate::proto::{client_message::Msg, control::Kind, ClientMessage, SessionConfig};
use crate::text::input::typed_turn;
use crate::transport::codec::{CodecError, InputDecoder, WireFormat, DEFAULT_INPUT};

/// Why a client message is refused (the stream ends with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not what this API accepts (INVALID_ARGUMENT).
    #[error("{0}")]
    Invalid(String),
    /// Over a size limit (RESOURCE_EXHAUSTED).
    #[error("{0}")]
    TooLarge(String),
    /// vaak could not convert it (INTERNAL).
    #[error("{0}")]
    Internal(String),
}

impl From<CodecError> for Refused {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Invalid(m) => Refused::Invalid(m),
            CodecError::Internal(m) => Refused::Internal(m),
        }
    }
}

/// A stream's first message, read: the session it asks for and the audio both ways.
#[derive(Debug)]
pub struct Opening {
    pub config: SessionConfig,
    pub input: WireFormat,
    pub output: WireFormat,
}

/// Reads the first message, which must be a `SessionConfig`.
pub fn opening(first: ClientMessage) -> Result<Opening, Refused> {
    let Some(Msg::Config(config)) = first.msg else {
        return Err(Refused::Invalid(
            "the first message of a Converse stream must be a SessionConfig".into(),
        ));
    };
    let input = WireFormat::parse(config.input_format.as_ref(), DEFAULT_INPUT)?;
    let output = WireFormat::parse(config.output_format.as_ref(), input)?;
    Ok(Opening {
        config,
        input,
        output,
    })
}

/// What one later message asks of the session.
#[derive(Debug, PartialEq)]
pub enum Request {
    /// Nothing to do (an empty audio chunk, blank text).
    Nothing,
    /// Speech at the pipeline rate.
    Audio(Vec<f32>),
    /// A typed turn, cleaned.
    Text(String),
    Interrupt,
    EndOfInput,
    HangUp,
}

/// Reads a message after the first: audio is refused in a text-only session and over
/// `max_bytes`, and decoded with the stream's `decoder`.
pub fn request(
    m: ClientMessage,
    text_only: bool,
    max_bytes: usize,
    decoder: &mut InputDecoder,
) -> Result<Request, Refused> {
    match m.msg {
        None => Err(Refused::Invalid("empty ClientMessage".into())),
        Some(Msg::Config(_)) => Err(Refused::Invalid(
            "SessionConfig may only be the first message".into(),
        )),
        Some(Msg::Audio(bytes)) => {
            if text_only {
                return Err(Refused::Invalid(
                    "this session is text-only: send text, not audio".into(),
                ));
            }
            if bytes.len() > max_bytes {
                return Err(Refused::TooLarge(format!(
                    "audio message too large: {} bytes, the limit is {max_bytes} bytes",
                    bytes.len()
                )));
            }
            let pcm = decoder.decode(&bytes)?;
            Ok(if pcm.is_empty() {
                Request::Nothing
            } else {
                Request::Audio(pcm)
            })
        }
        Some(Msg::Text(text)) => match typed_turn(&text) {
            Ok(Some(text)) => Ok(Request::Text(text)),
            Ok(None) => Ok(Request::Nothing),
            Err(e) => Err(Refused::Invalid(e.to_string())),
        },
        Some(Msg::Control(c)) => match Kind::try_from(c.kind) {
            Ok(Kind::Interrupt) => Ok(Request::Interrupt),
            Ok(Kind::EndOfInput) => Ok(Request::EndOfInput),
            Ok(Kind::HangUp) => Ok(Request::HangUp),
            Ok(Kind::Unspecified) | Err(_) => {
                Err(Refused::Invalid(format!("unknown control kind {}", c.kind)))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{AudioEncoding, AudioFormat, Control};

    fn msg(m: Msg) -> ClientMessage {
        ClientMessage { msg: Some(m) }
    }

    #[test]
    fn the_first_message_opens_with_its_formats() {
        let refused = opening(msg(Msg::Text("hello".into()))).unwrap_err();
        assert!(matches!(refused, Refused::Invalid(m) if m.contains("SessionConfig")));
        let o = opening(msg(Msg::Config(SessionConfig::default()))).unwrap();
        assert_eq!((o.input, o.output), (DEFAULT_INPUT, DEFAULT_INPUT));
        let phone = SessionConfig {
            input_format: Some(AudioFormat {
                encoding: AudioEncoding::Mulaw as i32,
                sample_rate: 8_000,
            }),
            ..Default::default()
        };
        let o = opening(msg(Msg::Config(phone))).unwrap();
        assert_eq!(o.output, o.input, "the output follows the input by default");
        let odd = SessionConfig {
            input_format: Some(AudioFormat {
                encoding: AudioEncoding::Pcm16 as i32,
                sample_rate: 11_025,
            }),
            ..Default::default()
        };
        assert!(matches!(
            opening(msg(Msg::Config(odd))),
            Err(Refused::Invalid(_))
        ));
    }

    #[test]
    fn later_messages_are_read_or_refused() {
        let mut dec = InputDecoder::new(DEFAULT_INPUT).unwrap();
        let audio = |n: usize| msg(Msg::Audio(vec![0u8; n]));
        assert!(
            matches!(request(audio(640), false, 1024, &mut dec), Ok(Request::Audio(p)) if p.len() == 320)
        );
        assert_eq!(
            request(audio(0), false, 1024, &mut dec),
            Ok(Request::Nothing)
        );
        assert!(matches!(
            request(audio(2048), false, 1024, &mut dec),
            Err(Refused::TooLarge(_))
        ));
        assert!(matches!(
            request(audio(641), false, 4096, &mut dec),
            Err(Refused::Invalid(_))
        ));
        assert!(
            matches!(request(audio(640), true, 1024, &mut dec), Err(Refused::Invalid(m)) if m.contains("text-only"))
        );
        assert_eq!(
            request(
                msg(Msg::Text("  hi \u{0}there ".into())),
                false,
                1024,
                &mut dec
            ),
            Ok(Request::Text("hi there".into()))
        );
        assert_eq!(
            request(msg(Msg::Text("   ".into())), false, 1024, &mut dec),
            Ok(Request::Nothing)
        );
        let control = |kind: i32| msg(Msg::Control(Control { kind }));
        assert_eq!(
            request(control(Kind::HangUp as i32), false, 1024, &mut dec),
            Ok(Request::HangUp)
        );
        assert!(matches!(
            request(control(99), false, 1024, &mut dec),
            Err(Refused::Invalid(_))
        ));
        assert!(matches!(
            request(
                msg(Msg::Config(SessionConfig::default())),
                false,
                1024,
                &mut dec
            ),
            Err(Refused::Invalid(_))
        ));
        assert!(request(ClientMessage { msg: None }, false, 1024, &mut dec).is_err());
    }
}
