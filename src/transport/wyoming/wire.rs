//! Wyoming's wire format: each event is a JSON header line (`type`, optional `data`,
//! `data_length`, `payload_length`), then that many bytes of JSON data and of binary payload.
//! Reading is bounded (header, data and payload sizes) and never panics on bad bytes.

use serde_json::{json, Value};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// Longest header line, JSON data section and payload of one event.
pub(super) const MAX_HEADER_BYTES: usize = 16 * 1024;
pub(super) const MAX_DATA_BYTES: usize = 256 * 1024;
pub(super) const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// The protocol version written in each header.
pub(super) const VERSION: &str = "1.8.0";

#[derive(Debug, thiserror::Error)]
pub(super) enum WireError {
    #[error("the connection closed")]
    Closed,
    #[error("no event for {0:?}")]
    Idle(Duration),
    #[error("the client took nothing for {0:?}: it stopped reading")]
    Stalled(Duration),
    #[error("bad event: {0}")]
    Bad(String),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// One event as read or written.
#[derive(Debug, Default)]
pub(super) struct Event {
    pub(super) kind: String,
    pub(super) data: Value,
    pub(super) payload: Vec<u8>,
}

/// (rate, channels) of an `audio-start` or `audio-chunk`: 16-bit samples only.
pub(super) fn audio_format(data: &Value) -> Result<(u32, usize), String> {
    let field = |k: &str| data.get(k).and_then(Value::as_u64);
    let (Some(rate), Some(width), Some(channels)) =
        (field("rate"), field("width"), field("channels"))
    else {
        return Err("audio-start needs rate, width and channels".into());
    };
    if width != 2 {
        return Err(format!("{width}-byte samples: vaak reads 16-bit audio"));
    }
    if !(4_000..=192_000).contains(&rate) || !(1..=8).contains(&channels) {
        return Err(format!(
            "{rate} Hz, {channels} channels is not audio vaak reads"
        ));
    }
    Ok((rate as u32, channels as usize))
}

/// One event's bytes: the header line, the JSON data, the payload.
pub(super) fn encode(kind: &str, data: &Value, payload: &[u8]) -> Vec<u8> {
    let data_bytes = if data.as_object().is_some_and(|o| !o.is_empty()) {
        data.to_string().into_bytes()
    } else {
        Vec::new()
    };
    let mut header = json!({ "type": kind, "version": VERSION });
    if !data_bytes.is_empty() {
        header["data_length"] = json!(data_bytes.len());
    }
    if !payload.is_empty() {
        header["payload_length"] = json!(payload.len());
    }
    let mut out = header.to_string().into_bytes();
    out.push(b'\n');
    out.extend(data_bytes);
    out.extend_from_slice(payload);
    out
}

/// Reads one event; [`WireError::Closed`] at a clean end of the stream.
pub(super) async fn read_event<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> Result<Event, WireError> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(MAX_HEADER_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Err(WireError::Closed);
    }
    if line.last() != Some(&b'\n') {
        return Err(if line.len() > MAX_HEADER_BYTES {
            WireError::Bad(format!("header longer than {MAX_HEADER_BYTES} bytes"))
        } else {
            WireError::Closed
        });
    }
    let header: Value = serde_json::from_slice(&line)
        .map_err(|e| WireError::Bad(format!("the header is not JSON: {e}")))?;
    let kind = header
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| WireError::Bad("the header has no type".into()))?
        .to_string();
    let length = |k: &str, max: usize| -> Result<usize, WireError> {
        match header.get(k) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => match v.as_u64() {
                Some(n) if n as usize <= max => Ok(n as usize),
                _ => Err(WireError::Bad(format!("{k} {v} is past {max} bytes"))),
            },
        }
    };
    let (data_len, payload_len) = (
        length("data_length", MAX_DATA_BYTES)?,
        length("payload_length", MAX_PAYLOAD_BYTES)?,
    );
    let mut data = header.get("data").cloned().unwrap_or_else(|| json!({}));
    if data_len > 0 {
        let mut bytes = vec![0; data_len];
        reader.read_exact(&mut bytes).await?;
        let more: Value = serde_json::from_slice(&bytes)
            .map_err(|e| WireError::Bad(format!("the data is not JSON: {e}")))?;
        if let (Some(d), Some(m)) = (data.as_object_mut(), more.as_object()) {
            d.extend(m.clone());
        } else {
            data = more;
        }
    }
    let mut payload = vec![0; payload_len];
    reader.read_exact(&mut payload).await?;
    Ok(Event {
        kind,
        data,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Event, WireError> {
        read_event(&mut BufReader::new(bytes)).await
    }

    #[tokio::test]
    async fn events_round_trip_with_data_and_payload() {
        let bytes = encode("audio-chunk", &json!({ "rate": 16000 }), &[1, 2, 3, 4]);
        let ev = parse(&bytes).await.unwrap();
        assert_eq!(ev.kind, "audio-chunk");
        assert_eq!(ev.data["rate"], 16000);
        assert_eq!(ev.payload, [1, 2, 3, 4]);
        // Data inline in the header (older clients) merges with the data section.
        let ev = parse(b"{\"type\":\"transcribe\",\"data\":{\"language\":\"hi\"}}\n")
            .await
            .unwrap();
        assert_eq!(ev.data["language"], "hi");
    }

    #[tokio::test]
    async fn bad_events_are_errors_not_panics() {
        for bad in [
            &b"not json\n"[..],
            b"{\"data\":{}}\n",
            b"{\"type\":\"x\",\"payload_length\":99999999999}\n",
            b"{\"type\":\"x\",\"data_length\":-1}\n",
        ] {
            assert!(
                matches!(parse(bad).await, Err(WireError::Bad(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b'x'; MAX_HEADER_BYTES + 10];
        assert!(matches!(parse(&long).await, Err(WireError::Bad(_))));
        // Cut inside the payload: the client went away.
        assert!(parse(b"{\"type\":\"x\",\"payload_length\":10}\nabc")
            .await
            .is_err());
        assert!(matches!(parse(b"").await, Err(WireError::Closed)));
    }

    #[test]
    fn audio_formats() {
        assert_eq!(
            audio_format(&json!({"rate": 16000, "width": 2, "channels": 1})),
            Ok((16000, 1))
        );
        assert!(audio_format(&json!({"rate": 16000, "width": 4, "channels": 1})).is_err());
        assert!(audio_format(&json!({"rate": 16000})).is_err());
    }
}
