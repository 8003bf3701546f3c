//! The messages a page may send on a call's data channel. What it receives is the gRPC
//! stream's events as JSON (`transport::events`: `"type"` names the event, the other fields are
//! the proto message's).

use serde::Deserialize;
use serde_json::Value;

use crate::proto::{self, server_event::Event};

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
    crate::transport::events::json(&Event::Error(proto::Error {
        code: code.into(),
        message: message.into(),
        turn: 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_the_api_error_event() {
        let v = error("bad_message", "not JSON");
        assert_eq!(
            v,
            serde_json::json!({"type": "error", "code": "bad_message", "message": "not JSON", "turn": 0})
        );
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
