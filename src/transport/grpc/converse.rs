//! One `Converse` stream = one session. The first client message must be a `SessionConfig`;
//! then audio, typed text and control flow in while pipeline events flow out. One task per
//! stream (owned by the daemon's tracker) selects, in order: shutdown, the session being taken
//! over or deleted, the session's time limit, client messages, pipeline events.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use tracing::{debug, info, info_span, warn, Instrument};

use super::inbound::{self, Request};
use super::open_error_status;
use crate::flow::{Ingest, PipelineEvent};
use crate::metrics::Metrics;
use crate::proto::{self, server_event::Event};
use crate::session::service::{OpenRequest, OpenSession, SessionService};
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
    };
    let session = svc.open(slot, req).await.map_err(open_error_status)?;
    let (tx, rx) = mpsc::channel(CLIENT_EVENT_EDGE);
    let started = proto::ServerEvent {
        event: Some(Event::SessionStarted(proto::SessionStarted {
            session_id: session.id.clone(),
            resumed: session.resumed,
            history_turns: session.history_turns as u32,
            output_format: Some(output.to_proto()),
        })),
    };
    // The channel is new and empty: this cannot block.
    let _ = tx.try_send(Ok(started));
    let span = info_span!("session", id = %session.id, transport = "grpc");
    let stream = Stream {
        decoder: InputDecoder::new(input)?,
        encoder: OutputEncoder::new(output),
        text_only: config.text_only,
        out: tx,
        offsets: OffsetTracker::default(),
    };
    let svc2 = Arc::clone(&svc);
    svc.tracker()
        .spawn(run(svc2, session, inbound, stream).instrument(span));
    Ok(ReceiverStream::new(rx))
}

struct Stream {
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

/// Why a session ended, as the client sees it.
enum End {
    /// Normal end (client hung up or finished and every reply went out).
    Done,
    Error(Status),
}

async fn run(
    svc: Arc<SessionService>,
    mut session: OpenSession,
    mut inbound: Streaming<proto::ClientMessage>,
    mut s: Stream,
) {
    let cfg = &svc.backends.config.server;
    let session_deadline = Instant::now() + Duration::from_secs(cfg.max_session_s);
    let idle = Duration::from_secs(cfg.idle_timeout_s);
    let shutdown = svc.shutdown_token().clone();
    let mut input = Some(session.pipeline.input.clone());
    let mut idle_deadline = Instant::now() + idle;
    // Audio waiting for room in the pipeline. While it waits, the client is not read, so HTTP/2
    // flow control slows a client that sends faster than real time instead of losing its audio.
    let mut pending: Option<Ingest> = None;
    // The client half-closed: once `pending` (its end of input) is delivered, close the input.
    let mut half_closed = false;
    let out = s.out.clone();
    let end = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                break End::Error(Status::unavailable("vaak is shutting down; reconnect to continue this session"));
            }
            _ = session.cancel.cancelled() => {
                break End::Error(Status::aborted("this session was continued in another stream or deleted"));
            }
            _ = out.closed() => {
                debug!("client went away");
                break End::Done;
            }
            _ = tokio::time::sleep_until(session_deadline) => {
                break End::Error(Status::deadline_exceeded(format!(
                    "the session reached its maximum length of {} s", cfg.max_session_s)));
            }
            _ = tokio::time::sleep_until(idle_deadline), if input.is_some() && pending.is_none() => {
                break End::Error(Status::deadline_exceeded(format!(
                    "no message from the client for {} s", cfg.idle_timeout_s)));
            }
            permit = reserve(input.clone()), if pending.is_some() => {
                match (permit, pending.take()) {
                    (Some(p), Some(msg)) => {
                        p.send(msg);
                    }
                    _ => break End::Done,
                }
                if half_closed {
                    // Every stage drains and the event stream closes after the last reply.
                    input = None;
                    session.pipeline.input = closed_sender();
                }
                idle_deadline = Instant::now() + idle;
            }
            msg = inbound.message(), if input.is_some() && pending.is_none() => {
                idle_deadline = Instant::now() + idle;
                match msg {
                    Ok(Some(m)) => {
                        match on_client_message(&svc, &session, &mut s, input.as_ref(), m).await {
                            Ok(Step::Continue) => {}
                            Ok(Step::Ingest(i)) => pending = Some(i),
                            Ok(Step::HangUp) => break End::Done,
                            Err(status) => break End::Error(status),
                        }
                    }
                    Ok(None) => {
                        // Half-close: finish the utterance in progress, answer, then end.
                        pending = Some(Ingest::EndOfInput);
                        half_closed = true;
                    }
                    Err(status) => {
                        debug!(%status, "client stream ended");
                        break End::Error(map_inbound_error(status));
                    }
                }
            }
            ev = session.pipeline.events.recv() => {
                let Some(ev) = ev else { break End::Done };
                if !forward_event(&mut s, ev).await {
                    // The client is gone.
                    break End::Done;
                }
            }
        }
    };
    session.cancel.cancel();
    match end {
        End::Done => info!("session ended"),
        End::Error(status) => {
            info!(code = ?status.code(), "session ended with status");
            let _ = unless_stalled(s.out.send(Err(status))).await;
        }
    }
}

/// A sender whose receiver is gone: replaces the pipeline's input once the client half-closed,
/// so that every stage drains and the event stream closes.
fn closed_sender() -> mpsc::Sender<Ingest> {
    mpsc::channel(1).0
}

/// What a client message asks of the session loop.
enum Step {
    Continue,
    /// Hand this to the pipeline (waiting for room: backpressure).
    Ingest(Ingest),
    HangUp,
}

/// Room for one message on the pipeline's input (`None` once it is closed).
async fn reserve(input: Option<mpsc::Sender<Ingest>>) -> Option<mpsc::OwnedPermit<Ingest>> {
    input?.reserve_owned().await.ok()
}

/// Handles one client message.
async fn on_client_message(
    svc: &SessionService,
    session: &OpenSession,
    s: &mut Stream,
    input: Option<&mpsc::Sender<Ingest>>,
    m: proto::ClientMessage,
) -> Result<Step, Status> {
    if input.is_none() {
        return Ok(Step::Continue);
    }
    let limit = svc.backends.config.server.max_message_bytes;
    Ok(
        match inbound::request(m, s.text_only, limit, &mut s.decoder)? {
            Request::Nothing => Step::Continue,
            Request::Audio(pcm) => Step::Ingest(Ingest::Audio(pcm)),
            Request::Text(text) => Step::Ingest(Ingest::Text(text)),
            Request::EndOfInput => Step::Ingest(Ingest::EndOfInput),
            Request::HangUp => Step::HangUp,
            Request::Interrupt => {
                if let Some(info) = session.pipeline.interrupt().await {
                    Metrics::incr(&svc.metrics.interruptions);
                    s.encoder.reset();
                    let ev = Event::Interrupted(proto::Interrupted {
                        turn: info.turn.0,
                        played_s: info.played_s,
                        kept_text: info.kept_text,
                    });
                    send(s, ev).await;
                }
                Step::Continue
            }
        },
    )
}

/// False once the client is gone or has stopped reading (see [`unless_stalled`]).
async fn send(s: &Stream, ev: Event) -> bool {
    let event = Ok(proto::ServerEvent { event: Some(ev) });
    unless_stalled(s.out.send(event))
        .await
        .is_some_and(|sent| sent.is_ok())
}

async fn send_error(s: &Stream, code: &str, message: &str, turn: u64) -> bool {
    send(
        s,
        Event::Error(proto::Error {
            code: code.into(),
            message: message.into(),
            turn,
        }),
    )
    .await
}

/// Pipeline event → server event(s). False once the client is gone.
async fn forward_event(s: &mut Stream, ev: PipelineEvent) -> bool {
    // Reply audio in the session's format; the rest as every transport sees it.
    match &ev {
        PipelineEvent::ReplyAudio {
            turn,
            samples,
            sample_rate,
            ..
        } => {
            if s.text_only {
                return true;
            }
            return match s.encoder.encode(samples, *sample_rate) {
                Ok((audio, n)) => send_audio(s, turn.0, audio, n).await,
                Err(e) => {
                    warn!(error = %e, "cannot encode reply audio");
                    send_error(s, "audio_encoding", &e.to_string(), turn.0).await
                }
            };
        }
        // The audio the resampler still holds goes out before the turn's end.
        PipelineEvent::TurnCompleted { turn, .. } if !s.text_only => {
            if let Ok((audio, n)) = s.encoder.flush() {
                if !send_audio(s, turn.0, audio, n).await {
                    return false;
                }
            }
        }
        PipelineEvent::Interrupted { .. } => s.encoder.reset(),
        _ => {}
    }
    match events::to_proto(&ev) {
        Some(event) => send(s, event).await,
        None => true,
    }
}

/// `n` encoded samples of `turn`'s reply, at their offset in it. False once the client is gone.
async fn send_audio(s: &mut Stream, turn: u64, audio: Vec<u8>, n: usize) -> bool {
    if n == 0 {
        return true;
    }
    let offset = s.offsets.take(turn, n);
    let event = Event::ReplyAudio(proto::ReplyAudio {
        turn,
        audio,
        offset_samples: offset,
        sample_rate: s.encoder.format().rate,
    });
    send(s, event).await
}

/// tonic reports an over-limit message as OUT_OF_RANGE; gRPC's convention (and this API's
/// documentation) is RESOURCE_EXHAUSTED.
fn map_inbound_error(status: Status) -> Status {
    if status.code() == tonic::Code::OutOfRange && status.message().contains("too large") {
        return Status::resource_exhausted(format!("message too large: {}", status.message()));
    }
    status
}
