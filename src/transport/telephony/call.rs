//! One phone call = one session, whatever the provider. A reader turns the provider's messages
//! into [`Inbound`]; the call loop feeds the pipeline and turns its events into [`Out`] audio
//! and [`Control`]; a writer task owns the socket and speaks the provider's format. Control
//! (clear, close) has its own channel that the writer serves first, so a barge-in's `clear`
//! never waits behind queued audio, and audio of a cleared turn is dropped on arrival.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::{Buf, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};

use super::frames::{Codec, Inbound, MediaFormat, StartInfo, WireError};
use super::{audiosocket, exotel, plivo, twilio, Provider};
use crate::metrics::Metrics;
use crate::pipeline::{Ingest, PipelineEvent, TurnControl, TurnId};
use crate::session::service::{OpenError, OpenRequest, OpenSession, SessionService};
use crate::transport::grpc::audio::{Encoding, InputDecoder, OutputEncoder, WireFormat};
use crate::transport::{language_list, sleep_until_opt};

/// Reply audio queued towards the writer, in messages of `stages::tts::AUDIO_CHUNK_MS`
/// (16 × 200 ms = 3.2 s); backpressure on the call loop when full.
pub const OUT_EDGE: usize = 16;
/// Clear and close commands; the writer serves these first.
pub const CONTROL_EDGE: usize = 4;
/// A call must say who it is (`start`, or AudioSocket's UUID) within this long.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The writer gets this long to send its goodbye (close frame, error frame).
pub const WRITER_DEADLINE: Duration = Duration::from_secs(2);
/// After vaak closes a call, what the provider still sends is read (and dropped) until it
/// closes too, for at most this long: dropping a socket with unread data makes the kernel send
/// a reset, and the provider then loses the close frame that says why the call ended.
pub const CLOSE_DRAIN: Duration = Duration::from_secs(2);
/// AudioSocket: at most this many 20 ms frames wait in the writer (1 s).
pub const MAX_QUEUED_FRAMES: usize = 50;

/// Reply audio for the writer, already in the stream's format.
#[derive(Debug)]
pub enum Out {
    Audio {
        turn: u64,
        bytes: Vec<u8>,
    },
    /// The turn's reply is complete: send what is buffered (padded where the format needs).
    EndOfReply {
        turn: u64,
    },
}

#[derive(Debug)]
pub enum Control {
    /// Barge-in: drop every unplayed byte of `turn` (and earlier) and tell the provider.
    Clear {
        turn: u64,
    },
    Close(End),
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The caller hung up or the provider stopped the stream.
    HungUp,
    /// The caller asked for a person: vaak's part ends, the provider's flow goes on.
    Handoff,
    /// The session ended on vaak's side (time limit, taken over, deleted).
    Finished(String),
    ShuttingDown,
    Busy(String),
    /// The provider sent something its protocol does not allow.
    Protocol(String),
    /// Valid protocol, but a format or parameter vaak does not serve.
    Unsupported(String),
    Internal(String),
}

impl End {
    /// WebSocket close code (RFC 6455 §7.4.1) and reason.
    pub fn close_frame(&self) -> (u16, String) {
        let (code, reason) = match self {
            End::HungUp => (1000, "call ended".to_string()),
            End::Handoff => (1000, "handoff".to_string()),
            End::Finished(m) => (1000, m.clone()),
            End::ShuttingDown => (1001, "vaak is shutting down".to_string()),
            End::Busy(m) => (1013, m.clone()),
            End::Protocol(m) => (1007, m.clone()),
            End::Unsupported(m) => (1003, m.clone()),
            End::Internal(m) => (1011, m.clone()),
        };
        // A close reason is at most 123 bytes.
        let mut reason = reason;
        while reason.len() > 123 {
            reason.pop();
        }
        (code, reason)
    }

    /// AudioSocket error code sent before closing, if the end is an error.
    pub fn audiosocket_error(&self) -> Option<u8> {
        match self {
            End::Protocol(_) | End::Unsupported(_) => Some(audiosocket::ERROR_PROTOCOL),
            End::Busy(_) | End::ShuttingDown => Some(audiosocket::ERROR_BUSY),
            End::Internal(_) => Some(audiosocket::ERROR_INTERNAL),
            _ => None,
        }
    }

    fn from_wire(e: WireError) -> Self {
        match e {
            WireError::Format(m) => End::Unsupported(m),
            WireError::UnknownEvent(_) => End::Unsupported(e.to_string()),
            other => End::Protocol(other.to_string()),
        }
    }

    fn from_open(e: OpenError) -> Self {
        match e {
            OpenError::Full { .. } | OpenError::Overloaded { .. } | OpenError::Draining => {
                End::Busy(e.to_string())
            }
            OpenError::Store(_) => End::Internal(e.to_string()),
            other => End::Unsupported(other.to_string()),
        }
    }

    fn is_error(&self) -> bool {
        matches!(
            self,
            End::Protocol(_) | End::Unsupported(_) | End::Internal(_) | End::Busy(_)
        )
    }
}

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
    async fn drain(&mut self) {
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

fn from_audiosocket(frame: audiosocket::Frame) -> Inbound {
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

/// The call loop's handles on its writer task.
struct Writer {
    data: mpsc::Sender<Out>,
    control: mpsc::Sender<Control>,
    /// Turns up to this one were cleared: their audio is dropped wherever it is.
    cleared: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// The provider's side of a call to write to: a WebSocket or an AudioSocket TCP stream.
pub enum Connection {
    Ws(SplitSink<WebSocket, Message>),
    Tcp(OwnedWriteHalf),
}

impl Connection {
    /// Says goodbye on a call that never got a writer (refused, or failed before it opened).
    async fn close(self, end: &End) {
        match self {
            Connection::Ws(mut sink) => close_ws(&mut sink, end).await,
            Connection::Tcp(mut write) => close_tcp(&mut write, end).await,
        }
    }
}

/// A close frame with the end's code and reason.
async fn close_ws(sink: &mut SplitSink<WebSocket, Message>, end: &End) {
    let (code, reason) = end.close_frame();
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}

/// An AudioSocket error frame if the end is an error, then the socket closed.
async fn close_tcp(write: &mut OwnedWriteHalf, end: &End) {
    if let Some(code) = end.audiosocket_error() {
        let _ = write
            .write_all(&audiosocket::encode(audiosocket::KIND_ERROR, &[code]))
            .await;
    }
    let _ = write.shutdown().await;
}

impl Writer {
    /// Starts the writer of a started call; `turns` hears what AudioSocket frames were written.
    fn spawn(
        svc: &SessionService,
        conn: Connection,
        provider: Provider,
        start: &StartInfo,
        turns: Arc<TurnControl>,
    ) -> Self {
        let (data_tx, data_rx) = mpsc::channel(OUT_EDGE);
        let (control_tx, control_rx) = mpsc::channel(CONTROL_EDGE);
        let cleared = Arc::new(AtomicU64::new(0));
        let c = Arc::clone(&cleared);
        // Writers log inside the call's span.
        let task = match conn {
            Connection::Ws(sink) => {
                let out = WsOut {
                    sink,
                    provider,
                    stream_id: start.stream_id.clone(),
                    format: start.format,
                };
                svc.tracker()
                    .spawn(ws_writer(out, data_rx, control_rx, c).in_current_span())
            }
            Connection::Tcp(write) => svc
                .tracker()
                .spawn(audiosocket_writer(write, turns, data_rx, control_rx, c).in_current_span()),
        };
        Self {
            data: data_tx,
            control: control_tx,
            cleared,
            task,
        }
    }

    /// Tells the writer to close the call and waits (bounded) for it to finish.
    async fn close(self, end: End) {
        let _ = self.control.send(Control::Close(end)).await;
        drop(self.data);
        let mut task = self.task;
        if tokio::time::timeout(WRITER_DEADLINE, &mut task)
            .await
            .is_err()
        {
            warn!("writer did not finish in time");
            task.abort();
        }
    }
}

/// Mark names carry the turn and how much of its reply precedes them: `"<turn>:<ms>"`.
pub fn mark_name(turn: u64, ms: u64) -> String {
    format!("{turn}:{ms}")
}

pub fn parse_mark(name: &str) -> Option<(u64, u64)> {
    let (t, ms) = name.split_once(':')?;
    Some((t.parse().ok()?, ms.parse().ok()?))
}

struct WsOut {
    sink: SplitSink<WebSocket, Message>,
    provider: Provider,
    stream_id: String,
    format: MediaFormat,
}

impl WsOut {
    async fn send(&mut self, text: String) -> bool {
        self.sink.send(Message::Text(text.into())).await.is_ok()
    }

    /// One media message and the mark after it.
    async fn media(&mut self, turn: u64, bytes: &[u8], end_ms: u64) -> bool {
        let id = self.stream_id.clone();
        let (media, mark) = match self.provider {
            Provider::Twilio => (
                twilio::media(&id, bytes),
                twilio::mark(&id, &mark_name(turn, end_ms)),
            ),
            Provider::Exotel => (
                exotel::media(&id, bytes),
                exotel::mark(&id, &mark_name(turn, end_ms)),
            ),
            Provider::Plivo => (
                plivo::play_audio(self.format, bytes),
                plivo::checkpoint(&id, &mark_name(turn, end_ms)),
            ),
            Provider::AudioSocket => return false,
        };
        self.send(media).await && self.send(mark).await
    }

    async fn clear(&mut self) -> bool {
        let id = self.stream_id.clone();
        let msg = match self.provider {
            Provider::Twilio => twilio::clear(&id),
            Provider::Exotel => exotel::clear(&id),
            Provider::Plivo => plivo::clear_audio(&id),
            Provider::AudioSocket => return false,
        };
        self.send(msg).await
    }
}

/// Per-turn count of reply bytes sent, for mark positions.
#[derive(Default)]
struct Sent {
    turn: u64,
    bytes: usize,
}

impl Sent {
    fn add(&mut self, turn: u64, n: usize, format: MediaFormat) -> u64 {
        if turn != self.turn {
            *self = Sent { turn, bytes: 0 };
        }
        self.bytes += n;
        (self.bytes / format.bytes_per_ms().max(1)) as u64
    }
}

async fn ws_writer(
    mut out: WsOut,
    mut data: mpsc::Receiver<Out>,
    mut control: mpsc::Receiver<Control>,
    cleared: Arc<AtomicU64>,
) {
    // Exotel wants chunks of 3.2–100 kB in 320-byte multiples: audio gathers here first.
    let mut pending: Vec<u8> = Vec::new();
    let mut sent = Sent::default();
    let silence = match out.format.codec {
        Codec::Mulaw => 0xff,
        Codec::Pcm16 => 0,
    };
    let mut data_open = true;
    loop {
        tokio::select! {
            biased;
            c = control.recv() => match c {
                Some(Control::Clear { turn }) => {
                    if sent.turn <= turn {
                        pending.clear();
                    }
                    if !out.clear().await {
                        return;
                    }
                }
                Some(Control::Close(end)) => {
                    close_ws(&mut out.sink, &end).await;
                    return;
                }
                None => return,
            },
            d = data.recv(), if data_open => match d {
                Some(Out::Audio { turn, bytes }) => {
                    if turn <= cleared.load(Ordering::Acquire) {
                        continue;
                    }
                    if out.provider != Provider::Exotel {
                        let end = sent.add(turn, bytes.len(), out.format);
                        if !out.media(turn, &bytes, end).await {
                            return;
                        }
                        continue;
                    }
                    if sent.turn != turn {
                        pending.clear();
                    }
                    pending.extend_from_slice(&bytes);
                    while pending.len() >= exotel::MIN_CHUNK {
                        let chunk: Vec<u8> = pending.drain(..exotel::MIN_CHUNK).collect();
                        let end = sent.add(turn, chunk.len(), out.format);
                        if !out.media(turn, &chunk, end).await {
                            return;
                        }
                    }
                }
                Some(Out::EndOfReply { turn }) => {
                    if out.provider == Provider::Exotel && !pending.is_empty()
                        && turn > cleared.load(Ordering::Acquire)
                    {
                        let chunk = exotel::pad_chunk(std::mem::take(&mut pending), silence);
                        let end = sent.add(turn, chunk.len(), out.format);
                        if !out.media(turn, &chunk, end).await {
                            return;
                        }
                    }
                }
                None => data_open = false,
            },
        }
    }
}

/// AudioSocket has no marks: vaak paces 20 ms frames itself, so what was written is what was
/// played, and the writer reports it to the turn as it goes.
async fn audiosocket_writer(
    mut write: OwnedWriteHalf,
    turns: Arc<TurnControl>,
    mut data: mpsc::Receiver<Out>,
    mut control: mpsc::Receiver<Control>,
    cleared: Arc<AtomicU64>,
) {
    let frame_dur = Duration::from_millis(audiosocket::FRAME_MS);
    let mut queue: std::collections::VecDeque<(u64, Vec<u8>)> = Default::default();
    let mut partial: Vec<u8> = Vec::new();
    let mut partial_turn = 0u64;
    let mut played = (0u64, 0u64);
    let mut next_at = Instant::now();
    let mut data_open = true;
    // Logged when the writer ends, however it ends.
    let mut pacing = Pacing::default();
    loop {
        tokio::select! {
            biased;
            c = control.recv() => match c {
                Some(Control::Clear { turn }) => {
                    queue.retain(|(t, _)| *t > turn);
                    if partial_turn <= turn {
                        partial.clear();
                    }
                }
                Some(Control::Close(end)) => {
                    close_tcp(&mut write, &end).await;
                    return;
                }
                None => return,
            },
            _ = tokio::time::sleep_until(next_at), if !queue.is_empty() => {
                let Some((turn, frame)) = queue.pop_front() else { continue };
                if turn <= cleared.load(Ordering::Acquire) {
                    continue;
                }
                if write
                    .write_all(&audiosocket::encode(audiosocket::KIND_AUDIO, &frame))
                    .await
                    .is_err()
                {
                    return;
                }
                if played.0 != turn {
                    played = (turn, 0);
                }
                played.1 += audiosocket::FRAME_MS;
                turns.report_played(TurnId(turn), played.1);
                pacing.wrote(Instant::now());
                // Real time from the previous slot, but never sooner than 3/4 of a frame
                // after this write (a late write is not followed by a burst); after a stall,
                // restart from now.
                let now = Instant::now();
                next_at = (next_at + frame_dur).max(now + frame_dur * 3 / 4);
                if next_at + frame_dur < now {
                    next_at = now;
                }
            },
            d = data.recv(), if data_open && queue.len() < MAX_QUEUED_FRAMES => match d {
                Some(Out::Audio { turn, bytes }) => {
                    if turn <= cleared.load(Ordering::Acquire) {
                        continue;
                    }
                    if queue.is_empty() {
                        next_at = next_at.max(Instant::now());
                    }
                    if partial_turn != turn {
                        partial.clear();
                        partial_turn = turn;
                    }
                    partial.extend_from_slice(&bytes);
                    while partial.len() >= audiosocket::FRAME_BYTES {
                        queue.push_back((turn, partial.drain(..audiosocket::FRAME_BYTES).collect()));
                    }
                }
                Some(Out::EndOfReply { turn }) => {
                    if turn == partial_turn && !partial.is_empty() {
                        let mut last = std::mem::take(&mut partial);
                        last.resize(audiosocket::FRAME_BYTES, 0);
                        if queue.is_empty() {
                            next_at = next_at.max(Instant::now());
                        }
                        queue.push_back((turn, last));
                    }
                }
                None => data_open = false,
            },
        }
    }
}

/// Intervals between consecutive AudioSocket frames within a reply (gaps between replies are
/// not intervals), logged as p5/p50/p95 when the call's writer ends.
#[derive(Default)]
struct Pacing {
    last: Option<Instant>,
    intervals_ms: Vec<f32>,
}

impl Pacing {
    /// Enough for an hour of reply audio; later intervals are not kept.
    const MAX: usize = 180_000;

    fn wrote(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let d = now.duration_since(last);
            if d < Duration::from_millis(3 * audiosocket::FRAME_MS)
                && self.intervals_ms.len() < Self::MAX
            {
                self.intervals_ms.push(d.as_secs_f32() * 1000.0);
            }
        }
        self.last = Some(now);
    }
}

impl Drop for Pacing {
    fn drop(&mut self) {
        if self.intervals_ms.is_empty() {
            return;
        }
        let mut v = std::mem::take(&mut self.intervals_ms);
        v.sort_by(f32::total_cmp);
        let pct = |p: usize| v[(v.len() - 1) * p / 100];
        info!(
            frames = v.len() + 1,
            p5_ms = pct(5),
            p50_ms = pct(50),
            p95_ms = pct(95),
            "audiosocket pacing"
        );
    }
}

/// What a call needs besides its socket.
pub struct CallSetup {
    pub provider: Provider,
    pub tenant: String,
    /// Parameters from the connection URL (Exotel passes its custom parameters there); the
    /// `start` message's own parameters win.
    pub url_params: std::collections::BTreeMap<String, String>,
}

/// The session request of a call: its parameters may name a session to continue (e.g. a hash
/// of the caller's number, never the number) and its languages.
fn open_request(setup: &CallSetup, start: &StartInfo, default_languages: &[String]) -> OpenRequest {
    let mut params = setup.url_params.clone();
    params.extend(start.params.clone());
    let session_id = params.get("session_id").cloned().unwrap_or_else(|| {
        let id: String = start
            .call_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(48)
            .collect();
        format!("{}-{id}", setup.provider.name())
    });
    let languages = params
        .get("languages")
        .or_else(|| params.get("language"))
        .map(|l| language_list(l))
        .unwrap_or_else(|| default_languages.to_vec());
    OpenRequest {
        tenant: setup.tenant.clone(),
        session_id: Some(session_id),
        languages,
        voices: Default::default(),
        text_only: false,
        speech_rate: 0.0,
        barge_in: true,
        playback_acks: true,
        narrowband: start.format.rate == 8_000,
        // `preferred_language=te`: a caller's IVR choice ("press 2 for Telugu").
        preferred_language: params.get("preferred_language").cloned(),
    }
}

fn wire_format(f: MediaFormat) -> WireFormat {
    WireFormat {
        encoding: match f.codec {
            Codec::Mulaw => Encoding::Mulaw,
            Codec::Pcm16 => Encoding::Pcm16,
        },
        rate: f.rate,
    }
}

/// One call from connection to goodbye, whatever the provider: admission, the stream's
/// start, the session, the call loop, then the log line and the close (a close frame, or
/// AudioSocket's error frame).
pub async fn serve(
    svc: Arc<SessionService>,
    setup: CallSetup,
    mut reader: Reader,
    conn: Connection,
) {
    let slot = match svc.admit("telephony") {
        Ok(s) => s,
        Err(e) => return refuse(&svc, conn, &mut reader, End::Busy(e.to_string())).await,
    };
    let start = match await_start(&mut reader).await {
        Ok(s) => s,
        Err(end) => return refuse(&svc, conn, &mut reader, end).await,
    };
    let cfg = &svc.backends.config;
    let default_languages = if cfg.telephony.languages.is_empty() {
        cfg.pipeline.languages.clone()
    } else {
        cfg.telephony.languages.clone()
    };
    let req = open_request(&setup, &start, &default_languages);
    let mut decoder = match InputDecoder::new(wire_format(start.format)) {
        Ok(d) => d,
        Err(s) => {
            return refuse(
                &svc,
                conn,
                &mut reader,
                End::Internal(s.message().to_string()),
            )
            .await
        }
    };
    let mut session = match svc.open(slot, req).await {
        Ok(s) => s,
        Err(e) => return refuse(&svc, conn, &mut reader, End::from_open(e)).await,
    };
    info!(
        session = %session.id,
        resumed = session.resumed,
        rate = start.format.rate,
        codec = ?start.format.codec,
        "call started"
    );
    let turns = Arc::clone(&session.pipeline.turns);
    let writer = Writer::spawn(&svc, conn, setup.provider, &start, turns);
    let end = call_loop(
        &svc,
        &mut session,
        &mut reader,
        &writer,
        &mut decoder,
        start.format,
    )
    .await;
    session.cancel.cancel();
    log_end(&svc, &end);
    writer.close(end).await;
    reader.drain().await;
}

/// Ends a call that never got a session.
async fn refuse(svc: &SessionService, conn: Connection, reader: &mut Reader, end: End) {
    log_end(svc, &end);
    conn.close(&end).await;
    reader.drain().await;
}

async fn call_loop(
    svc: &SessionService,
    session: &mut OpenSession,
    reader: &mut Reader,
    writer: &Writer,
    decoder: &mut InputDecoder,
    format: MediaFormat,
) -> End {
    let cfg = &svc.backends.config;
    let idle = Duration::from_secs(cfg.server.idle_timeout_s);
    let session_deadline = Instant::now() + Duration::from_secs(cfg.server.max_session_s);
    let mut idle_deadline = Instant::now() + idle;
    let shutdown = svc.shutdown_token().clone();
    let input = session.pipeline.input.clone();
    let turns = Arc::clone(&session.pipeline.turns);
    let handoff = cfg.telephony.handoff_digit.chars().next();
    let dtmf_wait = Duration::from_millis(cfg.telephony.dtmf_turn_ms);
    let mut encoder = OutputEncoder::new(wire_format(format));
    let mut pending: Option<Ingest> = None;
    let mut digits = String::new();
    let mut digits_deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return End::ShuttingDown,
            _ = session.cancel.cancelled() => {
                return End::Finished("the session was continued elsewhere or deleted".into())
            }
            _ = tokio::time::sleep_until(session_deadline) => {
                return End::Finished(format!(
                    "the call reached its maximum length of {} s", cfg.server.max_session_s))
            }
            _ = tokio::time::sleep_until(idle_deadline), if pending.is_none() => {
                return End::Protocol(format!(
                    "no message from the provider for {} s", cfg.server.idle_timeout_s))
            }
            _ = sleep_until_opt(digits_deadline), if pending.is_none() => {
                digits_deadline = None;
                pending = Some(keypad_turn(&mut digits));
            }
            permit = input.reserve(), if pending.is_some() => {
                let Ok(permit) = permit else { return End::Internal("the pipeline stopped".into()) };
                if let Some(msg) = pending.take() {
                    permit.send(msg);
                }
            }
            msg = reader.next(), if pending.is_none() => {
                idle_deadline = Instant::now() + idle;
                match msg {
                    Ok(None) | Ok(Some(Inbound::Stop)) => return End::HungUp,
                    Ok(Some(Inbound::Connected)) | Ok(Some(Inbound::Cleared)) => {}
                    Ok(Some(Inbound::Start(_))) => {
                        return End::Protocol("a second `start` in one stream".into())
                    }
                    Ok(Some(Inbound::Media(bytes))) => {
                        if bytes.len() > cfg.server.max_message_bytes {
                            return End::Protocol(format!(
                                "media of {} bytes exceeds the limit of {} bytes",
                                bytes.len(), cfg.server.max_message_bytes));
                        }
                        match decoder.decode(&bytes) {
                            Ok(pcm) if pcm.is_empty() => {}
                            Ok(pcm) => pending = Some(Ingest::Audio(pcm)),
                            Err(s) => return End::Protocol(s.message().to_string()),
                        }
                    }
                    Ok(Some(Inbound::Dtmf(d))) => {
                        Metrics::incr(&svc.metrics.dtmf_digits);
                        // Digits may be a PIN or an OTP: counted, never logged.
                        // The hand-off key counts only as the first key: inside a number
                        // being typed ("1 0 2") it is a digit.
                        if Some(d) == handoff && digits.is_empty() {
                            Metrics::incr(&svc.metrics.call_handoffs);
                            return End::Handoff;
                        }
                        if d == '#' {
                            if !digits.is_empty() {
                                digits_deadline = None;
                                pending = Some(keypad_turn(&mut digits));
                            }
                        } else if digits.len() < 32 {
                            digits.push(d);
                            digits_deadline = Some(Instant::now() + dtmf_wait);
                        }
                    }
                    Ok(Some(Inbound::Played(name))) => {
                        if let Some((turn, ms)) = parse_mark(&name) {
                            turns.report_played(TurnId(turn), ms);
                        }
                    }
                    Err(e) => return End::from_wire(e),
                }
            }
            ev = session.pipeline.events.recv() => {
                let Some(ev) = ev else { return End::Finished("the session ended".into()) };
                if !forward(ev, writer, &mut encoder).await {
                    return End::HungUp;
                }
            }
        }
    }
}

/// Keys pressed so far, as the user's typed turn.
fn keypad_turn(digits: &mut String) -> Ingest {
    let keys: Vec<String> = digits.chars().map(String::from).collect();
    // How many keys, never which.
    info!(keys = keys.len(), "keypad turn");
    digits.clear();
    Ingest::Text(format!("(keypad) {}", keys.join(" ")))
}

/// Pipeline event → writer. False once the writer is gone.
async fn forward(ev: PipelineEvent, writer: &Writer, encoder: &mut OutputEncoder) -> bool {
    match ev {
        PipelineEvent::ReplyAudio {
            turn,
            samples,
            sample_rate,
            ..
        } => {
            if turn.0 <= writer.cleared.load(Ordering::Acquire) {
                return true;
            }
            match encoder.encode(&samples, sample_rate) {
                Ok((bytes, n)) if n > 0 => writer
                    .data
                    .send(Out::Audio {
                        turn: turn.0,
                        bytes,
                    })
                    .await
                    .is_ok(),
                Ok(_) => true,
                Err(s) => {
                    warn!(error = %s.message(), "cannot encode reply audio");
                    true
                }
            }
        }
        PipelineEvent::TurnCompleted { turn, .. } => {
            if let Ok((bytes, n)) = encoder.flush() {
                if n > 0
                    && turn.0 > writer.cleared.load(Ordering::Acquire)
                    && writer
                        .data
                        .send(Out::Audio {
                            turn: turn.0,
                            bytes,
                        })
                        .await
                        .is_err()
                {
                    return false;
                }
            }
            writer
                .data
                .send(Out::EndOfReply { turn: turn.0 })
                .await
                .is_ok()
        }
        PipelineEvent::Interrupted {
            turn,
            played_s,
            kept_text,
        } => {
            // The reply's words may repeat the caller's numbers: only their count is logged.
            info!(
                turn = turn.0,
                played_s,
                kept_words = kept_text.split_whitespace().count(),
                "barge-in: reply cleared"
            );
            writer.cleared.fetch_max(turn.0, Ordering::AcqRel);
            encoder.reset();
            writer
                .control
                .send(Control::Clear { turn: turn.0 })
                .await
                .is_ok()
        }
        PipelineEvent::TurnFailed { stage, .. } => {
            warn!(stage, "turn failed");
            true
        }
        _ => true,
    }
}

/// Waits for the call's `start` (skipping `connected`), bounded by [`START_TIMEOUT`].
async fn await_start(reader: &mut Reader) -> Result<StartInfo, End> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let msg = tokio::time::timeout_at(deadline, reader.next())
            .await
            .map_err(|_| {
                End::Protocol(format!(
                    "no start within {} s of connecting",
                    START_TIMEOUT.as_secs()
                ))
            })?;
        match msg {
            Ok(Some(Inbound::Start(s))) => return Ok(s),
            Ok(Some(Inbound::Connected)) => continue,
            Ok(None) | Ok(Some(Inbound::Stop)) => return Err(End::HungUp),
            Ok(Some(other)) => {
                return Err(End::Protocol(format!(
                    "`{}` before the stream's start",
                    inbound_name(&other)
                )))
            }
            Err(e) => return Err(End::from_wire(e)),
        }
    }
}

fn inbound_name(i: &Inbound) -> &'static str {
    match i {
        Inbound::Connected => "connected",
        Inbound::Start(_) => "start",
        Inbound::Media(_) => "media",
        Inbound::Dtmf(_) => "dtmf",
        Inbound::Played(_) => "mark",
        Inbound::Cleared => "clear",
        Inbound::Stop => "stop",
    }
}

/// Logs how a call ended and counts protocol errors.
fn log_end(svc: &SessionService, end: &End) {
    if end.is_error() {
        if matches!(end, End::Protocol(_) | End::Unsupported(_)) {
            Metrics::incr(&svc.metrics.call_protocol_errors);
        }
        warn!(reason = ?end, "call closed with an error");
    } else {
        info!(reason = ?end, "call ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip() {
        assert_eq!(parse_mark(&mark_name(7, 1_240)), Some((7, 1_240)));
        assert_eq!(parse_mark("greeting"), None);
        assert_eq!(parse_mark("1:x"), None);
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let (code, reason) = End::Protocol("é".repeat(200)).close_frame();
        assert_eq!(code, 1007);
        assert!(reason.len() <= 123);
        assert_eq!(End::Busy("full".into()).close_frame().0, 1013);
        assert_eq!(End::Unsupported("rate".into()).close_frame().0, 1003);
        assert_eq!(End::HungUp.audiosocket_error(), None);
        assert_eq!(
            End::Protocol("x".into()).audiosocket_error(),
            Some(audiosocket::ERROR_PROTOCOL)
        );
    }

    #[test]
    fn call_parameters_choose_session_and_languages() {
        let setup = CallSetup {
            provider: Provider::Exotel,
            tenant: "exotel".into(),
            url_params: [("languages".to_string(), "hi,en".to_string())].into(),
        };
        let mut start = StartInfo {
            call_id: "CA 12/34".into(),
            stream_id: "s".into(),
            format: MediaFormat::PCM_8K,
            params: Default::default(),
        };
        let r = open_request(&setup, &start, &["te".to_string()]);
        assert_eq!(r.session_id.as_deref(), Some("exotel-CA1234"));
        assert_eq!(r.languages, vec!["hi", "en"]);
        assert!(r.narrowband && r.playback_acks && r.barge_in);
        start
            .params
            .insert("session_id".into(), "caller-3f2a".into());
        start.params.insert("language".into(), "te".into());
        let r = open_request(&setup, &start, &[]);
        assert_eq!(r.session_id.as_deref(), Some("caller-3f2a"));
        // The URL's `languages` is still there; `start` parameters win only key by key.
        assert_eq!(r.languages, vec!["hi", "en"]);
    }

    #[test]
    fn keypad_digits_become_one_turn() {
        let mut d = "123".to_string();
        let Ingest::Text(t) = keypad_turn(&mut d) else {
            panic!("not text")
        };
        assert_eq!(t, "(keypad) 1 2 3");
        assert!(d.is_empty());
    }
}
