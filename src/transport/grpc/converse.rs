//! One `Converse` stream = one session. The first client message must be a `SessionConfig`;
//! then audio, typed text and control flow in while pipeline events flow out. One task per
//! stream (owned by the daemon's tracker) runs the call kernel (`transport::call`) with this
//! file's [`Side`]: client messages in, server events out.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::{debug, info, info_span, warn, Instrument};

use super::inbound::{self, Request};
use super::open_error_status;
use crate::flow::{Ingest, PipelineEvent, TurnId};
use crate::proto::{self, server_event::Event};
use crate::session::service::{AudioSource, OpenRequest, OpenSession, SessionService};
use crate::transport::call::{self, CallRules, Cleared, Input, Overflow, Side};
use crate::transport::codec::{InputDecoder, OutputEncoder};
use crate::transport::events;
use crate::transport::unless_stalled;

/// Server events buffered towards one client; backpressure (a client that stops reading stalls
/// its own session's output, nothing else).
pub const CLIENT_EVENT_EDGE: usize = 64;

pub type EventStream = ReceiverStream<Result<proto::ServerEvent, Status>>;

/// Admits, reads the `SessionConfig`, opens the session and starts its task.
pub async fn start(
    svc: Arc<SessionService>,
    tenant: String,
    mut inbound: Streaming<proto::ClientMessage>,
) -> Result<EventStream, Status> {
    // Refused before anything is read or allocated.
    let slot = svc.admit("grpc", &tenant).map_err(open_error_status)?;
    let cfg = &svc.backends.config.server;
    let idle = Duration::from_secs(cfg.idle_timeout_s);
    let first = match tokio::time::timeout(idle, inbound.message()).await {
        Err(_) => {
            return Err(Status::deadline_exceeded(
                "no SessionConfig within the idle timeout",
            ))
        }
        Ok(Err(status)) => return Err(map_inbound_error(status)),
        Ok(Ok(None)) => {
            return Err(Status::invalid_argument(
                "the stream ended before its first message (a SessionConfig)",
            ))
        }
        Ok(Ok(Some(m))) => m,
    };
    let inbound::Opening {
        config,
        input,
        output,
    } = inbound::opening(first)?;
    let req = OpenRequest {
        tenant,
        session_id: Some(config.session_id.clone()).filter(|s| !s.is_empty()),
        languages: config.languages.clone(),
        voices: config.voices.clone().into_iter().collect(),
        text_only: config.text_only,
        speech_rate: config.speech_rate,
        barge_in: config.barge_in.unwrap_or(true),
        playback_acks: false,
        narrowband: input.rate == 8_000,
        preferred_language: Some(config.preferred_language.clone()).filter(|l| !l.is_empty()),
        source: AudioSource::Live,
    };
    let session = svc.open(slot, req).await.map_err(open_error_status)?;
    let (tx, rx) = mpsc::channel(CLIENT_EVENT_EDGE);
    let started = proto::ServerEvent {
        event: Some(events::session_started(&session, Some(output.to_proto()))),
    };
    // The channel is new and empty: this cannot block.
    let _ = tx.try_send(Ok(started));
    let span = info_span!("session", id = %session.id, transport = "grpc");
    let stream = Stream {
        inbound,
        limit: cfg.max_message_bytes,
        decoder: InputDecoder::new(input)?,
        encoder: OutputEncoder::new(output),
        text_only: config.text_only,
        out: tx,
        offsets: OffsetTracker::default(),
    };
    let svc2 = Arc::clone(&svc);
    svc.tracker()
        .spawn(run(svc2, session, stream).instrument(span));
    Ok(ReceiverStream::new(rx))
}

/// One client's stream: its messages in, the session's events out.
struct Stream {
    inbound: Streaming<proto::ClientMessage>,
    limit: usize,
    decoder: InputDecoder,
    encoder: OutputEncoder,
    text_only: bool,
    out: mpsc::Sender<Result<proto::ServerEvent, Status>>,
    offsets: OffsetTracker,
}

/// Reply-audio offsets in output samples, per turn.
#[derive(Default)]
struct OffsetTracker {
    turn: u64,
    samples: u64,
}

impl OffsetTracker {
    fn take(&mut self, turn: u64, n: usize) -> u64 {
        if turn != self.turn {
            self.turn = turn;
            self.samples = 0;
        }
        let at = self.samples;
        self.samples += n as u64;
        at
    }
}

/// How the client's side ended.
enum Close {
    /// It hung up, or finished and every reply went out, or went away.
    Done,
    Error(Status),
}

async fn run(svc: Arc<SessionService>, mut session: OpenSession, mut s: Stream) {
    // A client under HTTP/2 flow control is slowed, not dropped.
    let rules = CallRules::remote(Overflow::Backpressure, &svc.backends.config.server);
    let end = call::run(&svc, &mut session, &mut s, rules, &Cleared::default()).await;
    session.cancel.cancel();
    let status = match end {
        call::End::ShuttingDown => Some(Status::unavailable(
            "vaak is shutting down; reconnect to continue this session",
        )),
        call::End::TakenOver => Some(Status::aborted(
            "this session was continued in another stream or deleted",
        )),
        call::End::MaxLength(limit) => Some(Status::deadline_exceeded(format!(
            "the session reached its maximum length of {limit} s"
        ))),
        call::End::Idle(limit) => Some(Status::deadline_exceeded(format!(
            "no message from the client for {limit} s"
        ))),
        call::End::Transport(Close::Error(status)) => Some(status),
        call::End::SessionEnded
        | call::End::PipelineStopped
        | call::End::Gone
        | call::End::Transport(Close::Done) => None,
    };
    match status {
        None => info!("session ended"),
        Some(status) => {
            info!(code = ?status.code(), "session ended with status");
            let _ = unless_stalled(s.out.send(Err(status))).await;
        }
    }
}

impl Side for Stream {
    type End = Close;

    async fn next(&mut self) -> Input<Close> {
        let m = match self.inbound.message().await {
            Ok(Some(m)) => m,
            // Half-close: finish the utterance in progress, answer, then end.
            Ok(None) => return Input::Finish,
            Err(status) => {
                debug!(%status, "client stream ended");
                return Input::End(Close::Error(map_inbound_error(status)));
            }
        };
        match inbound::request(m, self.text_only, self.limit, &mut self.decoder) {
            Ok(Request::Nothing) => Input::Nothing,
            Ok(Request::Audio(pcm)) => Input::Ingest(Ingest::Audio(pcm)),
            Ok(Request::Text(text)) => Input::Ingest(Ingest::Text(text)),
            Ok(Request::EndOfInput) => Input::Ingest(Ingest::EndOfInput),
            Ok(Request::HangUp) => Input::End(Close::Done),
            Ok(Request::Interrupt) => Input::Interrupt,
            Err(refused) => Input::End(Close::Error(refused.into())),
        }
    }

    async fn audio(&mut self, turn: TurnId, samples: Vec<f32>, rate: u32) -> Result<(), Close> {
        if self.text_only {
            return Ok(());
        }
        match self.encoder.encode(&samples, rate) {
            Ok((audio, n)) => self.send_audio(turn.0, audio, n).await,
            Err(e) => {
                warn!(error = %e, "cannot encode reply audio");
                let ev = Event::Error(proto::Error {
                    code: "audio_encoding".into(),
                    message: e.to_string(),
                    turn: turn.0,
                });
                self.send(ev).await
            }
        }
    }

    async fn reply_done(&mut self, turn: TurnId, cleared: bool) -> Result<(), Close> {
        // The audio the resampler still holds goes out before the turn's end.
        if self.text_only || cleared {
            return Ok(());
        }
        match self.encoder.flush() {
            Ok((audio, n)) => self.send_audio(turn.0, audio, n).await,
            Err(_) => Ok(()),
        }
    }

    async fn clear(&mut self, _turn: TurnId) -> Result<(), Close> {
        self.encoder.reset();
        Ok(())
    }

    async fn event(&mut self, ev: PipelineEvent) -> Result<(), Close> {
        match events::to_proto(&ev) {
            Some(event) => self.send(event).await,
            None => Ok(()),
        }
    }

    fn gone(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let out = self.out.clone();
        async move { out.closed().await }
    }
}

impl Stream {
    /// `Err` once the client is gone or has stopped reading (see [`unless_stalled`]).
    async fn send(&self, ev: Event) -> Result<(), Close> {
        let event = Ok(proto::ServerEvent { event: Some(ev) });
        match unless_stalled(self.out.send(event)).await {
            Some(Ok(())) => Ok(()),
            _ => Err(Close::Done),
        }
    }

    /// `n` encoded samples of `turn`'s reply, at their offset in it.
    async fn send_audio(&mut self, turn: u64, audio: Vec<u8>, n: usize) -> Result<(), Close> {
        if n == 0 {
            return Ok(());
        }
        let offset = self.offsets.take(turn, n);
        let event = Event::ReplyAudio(proto::ReplyAudio {
            turn,
            audio,
            offset_samples: offset,
            sample_rate: self.encoder.format().rate,
        });
        self.send(event).await
    }
}

/// tonic reports an over-limit message as OUT_OF_RANGE; gRPC's convention (and this API's
/// documentation) is RESOURCE_EXHAUSTED.
fn map_inbound_error(status: Status) -> Status {
    if status.code() == tonic::Code::OutOfRange && status.message().contains("too large") {
        return Status::resource_exhausted(format!("message too large: {}", status.message()));
    }
    status
}
