//! The common vocabulary of every provider's media stream: what a Twilio, Exotel or Plivo JSON
//! message or an AudioSocket frame tells vaak, once parsed. No I/O and no other vaak module is
//! used here or in the parsers, so that the fuzz targets (`fuzz/`) compile them on their own.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

/// Largest text message accepted from a provider; a 20–200 ms media message is a few kB.
pub const MAX_TEXT_MESSAGE: usize = 128 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// G.711 μ-law, one byte per sample.
    Mulaw,
    /// Signed 16-bit little-endian linear PCM.
    Pcm16,
}

/// The audio format of a stream, both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaFormat {
    pub codec: Codec,
    pub rate: u32,
}

impl MediaFormat {
    pub const MULAW_8K: Self = Self {
        codec: Codec::Mulaw,
        rate: 8_000,
    };
    pub const PCM_8K: Self = Self {
        codec: Codec::Pcm16,
        rate: 8_000,
    };

    /// Bytes of audio per millisecond.
    pub fn bytes_per_ms(self) -> usize {
        let per_sample = match self.codec {
            Codec::Mulaw => 1,
            Codec::Pcm16 => 2,
        };
        per_sample * self.rate as usize / 1000
    }
}

/// The start of a stream: who is calling and how the audio is coded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartInfo {
    pub call_id: String,
    pub stream_id: String,
    pub format: MediaFormat,
    /// Custom parameters the operator put in the provider's configuration (session id,
    /// languages …).
    pub params: BTreeMap<String, String>,
}

/// One message from the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Connection-level hello (`connected`): nothing to do.
    Connected,
    Start(StartInfo),
    /// Caller audio in the stream's format.
    Media(Vec<u8>),
    /// A key pressed on the caller's keypad.
    Dtmf(char),
    /// The provider has played everything sent before the mark (checkpoint) of this name.
    Played(String),
    /// The provider dropped its unplayed audio after a clear.
    Cleared,
    /// The stream ended: the caller hung up or the provider's flow moved on.
    Stop,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message is not valid JSON: {0}")]
    Json(String),
    #[error("message has no `{0}`")]
    Missing(&'static str),
    #[error("unknown event `{0}`")]
    UnknownEvent(String),
    #[error("media payload is not valid base64")]
    Base64,
    #[error("unsupported media format: {0}")]
    Format(String),
    #[error("message of {got} bytes exceeds the limit of {limit} bytes")]
    TooLarge { got: usize, limit: usize },
    #[error("`{0}` is not a DTMF digit")]
    Dtmf(String),
    #[error("bad frame: {0}")]
    Frame(String),
}

/// 0-9, *, #, A-D.
pub fn valid_dtmf(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')
}

/// Parses one JSON text message, bounded in size; returns it with its `event` name.
pub fn parse_json(text: &str) -> Result<(Value, String), WireError> {
    if text.len() > MAX_TEXT_MESSAGE {
        return Err(WireError::TooLarge {
            got: text.len(),
            limit: MAX_TEXT_MESSAGE,
        });
    }
    let v: Value = serde_json::from_str(text).map_err(|e| WireError::Json(e.to_string()))?;
    let event = v
        .get("event")
        .and_then(Value::as_str)
        .ok_or(WireError::Missing("event"))?
        .to_string();
    Ok((v, event))
}

/// The string at `path` (numbers are accepted and printed: providers differ in how they send
/// sequence numbers and rates).
pub fn text_at(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Like [`text_at`], but required.
pub fn need(v: &Value, path: &[&str], name: &'static str) -> Result<String, WireError> {
    text_at(v, path).ok_or(WireError::Missing(name))
}

/// A base64 media payload.
pub fn payload(v: &Value, path: &[&str]) -> Result<Vec<u8>, WireError> {
    let b64 = need(v, path, "media.payload")?;
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| WireError::Base64)
}

pub fn encode_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The events Twilio and Exotel send in the same shape — `connected`, `media`, `dtmf`, `mark`,
/// `stop` — and any unknown event (an error). Callers handle their own `start` first.
pub fn media_stream_event(v: &Value, event: &str) -> Result<Inbound, WireError> {
    match event {
        "connected" => Ok(Inbound::Connected),
        "media" => payload(v, &["media", "payload"]).map(Inbound::Media),
        "dtmf" => Ok(Inbound::Dtmf(digit(&need(
            v,
            &["dtmf", "digit"],
            "dtmf.digit",
        )?)?)),
        "mark" => need(v, &["mark", "name"], "mark.name").map(Inbound::Played),
        "stop" => Ok(Inbound::Stop),
        other => Err(WireError::UnknownEvent(truncate(other, 32))),
    }
}

/// A single DTMF digit.
pub fn digit(s: &str) -> Result<char, WireError> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if valid_dtmf(c.to_ascii_uppercase()) => Ok(c.to_ascii_uppercase()),
        _ => Err(WireError::Dtmf(s.chars().take(8).collect())),
    }
}

/// A JSON object of string-ish values as a map (custom parameters).
pub fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(m)) = v {
        for (k, val) in m {
            let s = match val {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => continue,
            };
            out.insert(k.clone(), s);
        }
    }
    out
}

/// `k=v;k2=v2` (or comma-separated) as a map.
pub fn header_map(s: &str) -> BTreeMap<String, String> {
    s.split([';', ','])
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// A sample rate given as a number or a string.
pub fn rate(v: &Value, path: &[&str]) -> Result<u32, WireError> {
    let s = need(v, path, "sample rate")?;
    s.trim()
        .parse()
        .map_err(|_| WireError::Format(format!("sample rate `{}`", truncate(&s, 16))))
}

pub fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_and_maps() {
        assert_eq!(digit("5"), Ok('5'));
        assert_eq!(digit("#"), Ok('#'));
        assert_eq!(digit("a"), Ok('A'));
        assert!(digit("55").is_err() && digit("x").is_err() && digit("").is_err());
        let m = header_map("session_id=abc;languages=hi, x = y");
        assert_eq!(m["session_id"], "abc");
        assert_eq!(m["x"], "y");
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn json_needs_an_event_and_a_bound() {
        assert_eq!(parse_json("{}").unwrap_err(), WireError::Missing("event"));
        assert!(matches!(parse_json("nope"), Err(WireError::Json(_))));
        let big = format!(
            "{{\"event\":\"media\",\"x\":\"{}\"}}",
            "a".repeat(MAX_TEXT_MESSAGE)
        );
        assert!(matches!(parse_json(&big), Err(WireError::TooLarge { .. })));
    }
}
