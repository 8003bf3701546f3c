//! The reader of a call: turns the provider's messages (WebSocket JSON or AudioSocket frames)
//! into [`Inbound`], and after the call drains what the provider still sends.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use bytes::{Buf, BytesMut};
use futures::stream::SplitStream;
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tracing::debug;

use super::frames::{Inbound, MediaFormat, StartInfo, WireError};
use super::{audiosocket, Provider};

/// A call must say who it is (`start`, or AudioSocket's UUID) within this long.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// After vaak closes a call, what the provider still sends is read (and dropped) until it
/// closes too, for at most this long: dropping a socket with unread data makes the kernel send
/// a reset, and the provider then loses the close frame that says why the call ended.
pub const CLOSE_DRAIN: Duration = Duration::from_secs(2);

/// The provider's messages, parsed.
pub enum Reader {
    Ws {
        stream: SplitStream<WebSocket>,
        provider: Provider,
        default_rate: u32,
    },
    Tcp {
        read: OwnedReadHalf,
        buf: BytesMut,
    },
}

impl Reader {
    /// Reads and drops whatever the provider still sends until it closes its side (its close
    /// frame, or EOF), for at most [`CLOSE_DRAIN`].
    pub(super) async fn drain(&mut self) {
        let until_closed = async {
            match self {
                Reader::Ws { stream, .. } => {
                    while let Some(Ok(m)) = stream.next().await {
                        if matches!(m, Message::Close(_)) {
                            break;
                        }
                    }
                }
                Reader::Tcp { read, buf } => {
                    buf.clear();
                    while matches!(read.read_buf(buf).await, Ok(n) if n > 0) {
                        buf.clear();
                    }
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_DRAIN, until_closed).await;
    }

    /// The next message; `Ok(None)` once the provider closed the connection. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<Inbound>, WireError> {
        match self {
            Reader::Ws {
                stream,
                provider,
                default_rate,
            } => loop {
                match stream.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(None),
                    Some(Ok(Message::Text(t))) => {
                        return provider.parse(t.as_str(), *default_rate).map(Some)
                    }
                    Some(Ok(Message::Binary(_))) => {
                        return Err(WireError::Frame(
                            "binary WebSocket messages are not part of this protocol".into(),
                        ))
                    }
                    Some(Ok(_)) => continue,
                }
            },
            Reader::Tcp { read, buf } => loop {
                if let Some((frame, n)) = audiosocket::parse(buf)? {
                    buf.advance(n);
                    return Ok(Some(from_audiosocket(frame)));
                }
                match read.read_buf(buf).await {
                    Ok(0) | Err(_) => return Ok(None),
                    Ok(_) => {}
                }
            },
        }
    }
}

pub(super) fn from_audiosocket(frame: audiosocket::Frame) -> Inbound {
    match frame {
        audiosocket::Frame::Uuid(u) => {
            let id = audiosocket::uuid_string(&u);
            Inbound::Start(StartInfo {
                call_id: id.clone(),
                stream_id: id,
                format: MediaFormat::PCM_8K,
                params: Default::default(),
            })
        }
        audiosocket::Frame::Audio(a) => Inbound::Media(a),
        audiosocket::Frame::Dtmf(d) => Inbound::Dtmf(d),
        audiosocket::Frame::Hangup => Inbound::Stop,
        audiosocket::Frame::Error(code) => {
            debug!(?code, "Asterisk reported an error");
            Inbound::Stop
        }
    }
}
