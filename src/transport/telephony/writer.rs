//! The writer of a call: one task owns the socket and speaks the provider's format (Twilio,
//! Exotel, Plivo JSON over a WebSocket; AudioSocket frames over TCP, paced in real time).
//! Control (clear, close) has its own channel that it serves first, so a barge-in's `clear`
//! never waits behind queued audio, and audio of a cleared turn is dropped on arrival.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::SplitSink;
use futures::SinkExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn, Instrument};

use super::end::End;
use super::frames::{Codec, MediaFormat, StartInfo};
use super::{audiosocket, exotel, plivo, twilio, Provider};
use crate::flow::{TurnControl, TurnId};
use crate::session::service::SessionService;
use crate::transport::call::Cleared;
use crate::transport::unless_stalled;

/// Reply audio queued towards the writer, in messages of `stages::tts::AUDIO_CHUNK_MS`
/// (16 × 200 ms = 3.2 s); backpressure on the call loop when full.
pub const OUT_EDGE: usize = 16;

/// Clear and close commands; the writer serves these first.
pub const CONTROL_EDGE: usize = 4;

/// The writer gets this long to send its goodbye (close frame, error frame).
pub const WRITER_DEADLINE: Duration = Duration::from_secs(2);

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

/// The call loop's handles on its writer task.
pub(super) struct Writer {
    pub(super) data: mpsc::Sender<Out>,
    pub(super) control: mpsc::Sender<Control>,
    /// Turns up to this one were cleared: their audio is dropped wherever it is.
    pub(super) cleared: Cleared,
    pub(super) task: JoinHandle<()>,
}

/// The provider's side of a call to write to: a WebSocket or an AudioSocket TCP stream.
pub enum Connection {
    Ws(SplitSink<WebSocket, Message>),
    Tcp(OwnedWriteHalf),
}

impl Connection {
    /// Says goodbye on a call that never got a writer (refused, or failed before it opened).
    pub(super) async fn close(self, end: &End) {
        match self {
            Connection::Ws(mut sink) => close_ws(&mut sink, end).await,
            Connection::Tcp(mut write) => close_tcp(&mut write, end).await,
        }
    }
}

/// A close frame with the end's code and reason.
pub(super) async fn close_ws(sink: &mut SplitSink<WebSocket, Message>, end: &End) {
    let (code, reason) = end.close_frame();
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = unless_stalled(sink.send(Message::Close(Some(frame)))).await;
    let _ = unless_stalled(sink.close()).await;
}

/// An AudioSocket error frame if the end is an error, then the socket closed.
pub(super) async fn close_tcp(write: &mut OwnedWriteHalf, end: &End) {
    if let Some(code) = end.audiosocket_error() {
        let _ =
            unless_stalled(write.write_all(&audiosocket::encode(audiosocket::KIND_ERROR, &[code])))
                .await;
    }
    let _ = unless_stalled(write.shutdown()).await;
}

impl Writer {
    /// Starts the writer of a started call; `turns` hears what AudioSocket frames were written.
    pub(super) fn spawn(
        svc: &SessionService,
        conn: Connection,
        provider: Provider,
        start: &StartInfo,
        turns: Arc<TurnControl>,
    ) -> Self {
        let (data_tx, data_rx) = mpsc::channel(OUT_EDGE);
        let (control_tx, control_rx) = mpsc::channel(CONTROL_EDGE);
        let cleared = Cleared::default();
        let c = cleared.clone();
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
    pub(super) async fn close(self, end: End) {
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

pub(super) struct WsOut {
    sink: SplitSink<WebSocket, Message>,
    provider: Provider,
    stream_id: String,
    format: MediaFormat,
}

impl WsOut {
    pub(super) async fn send(&mut self, text: String) -> bool {
        unless_stalled(self.sink.send(Message::Text(text.into())))
            .await
            .is_some_and(|sent| sent.is_ok())
    }

    /// One media message and the mark after it.
    pub(super) async fn media(&mut self, turn: u64, bytes: &[u8], end_ms: u64) -> bool {
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

    pub(super) async fn clear(&mut self) -> bool {
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
pub(super) struct Sent {
    turn: u64,
    bytes: usize,
}

impl Sent {
    pub(super) fn add(&mut self, turn: u64, n: usize, format: MediaFormat) -> u64 {
        if turn != self.turn {
            *self = Sent { turn, bytes: 0 };
        }
        self.bytes += n;
        (self.bytes / format.bytes_per_ms().max(1)) as u64
    }
}

pub(super) async fn ws_writer(
    mut out: WsOut,
    mut data: mpsc::Receiver<Out>,
    mut control: mpsc::Receiver<Control>,
    cleared: Cleared,
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
                    if cleared.covers(turn) {
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
                        && !cleared.covers(turn)
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
pub(super) async fn audiosocket_writer(
    mut write: OwnedWriteHalf,
    turns: Arc<TurnControl>,
    mut data: mpsc::Receiver<Out>,
    mut control: mpsc::Receiver<Control>,
    cleared: Cleared,
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
                if cleared.covers(turn) {
                    continue;
                }
                let frame = audiosocket::encode(audiosocket::KIND_AUDIO, &frame);
                if unless_stalled(write.write_all(&frame)).await.is_none_or(|w| w.is_err()) {
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
                    if cleared.covers(turn) {
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
pub(super) struct Pacing {
    last: Option<Instant>,
    intervals_ms: Vec<f32>,
}

impl Pacing {
    /// Enough for an hour of reply audio; later intervals are not kept.
    const MAX: usize = 180_000;

    pub(super) fn wrote(&mut self, now: Instant) {
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
