//! One browser call = one session: the call loop joins the pipeline to the peer connection.
//! A reader task decodes the caller's Opus into the pipeline (realtime capture: a full edge
//! drops and counts); a writer task sends reply audio as paced 20 ms Opus frames and reports
//! what was sent as played; a barge-in's clear reaches the writer ahead of queued audio and
//! audio of a cleared turn is dropped on arrival. Events go to the page's data channel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::RTCPeerConnectionState;

use super::events::{self, PageMessage};
use super::media::{InboundAudio, ReplyQueue};
use super::peer::{Peer, PeerEvents};
use super::CallGuard;
use crate::audio::opus::{OpusEncoder, FRAME_MS, FRAME_SAMPLES, OPUS_RATE};
use crate::audio::resample::ToRate;
use crate::flow::{Ingest, PipelineEvent, TurnId};
use crate::metrics::Metrics;
use crate::session::service::{OpenSession, SessionService};
use crate::text::input::typed_turn;
use crate::transport::sleep_until_opt;

/// Reply audio towards the writer, in the pipeline's chunks (~200 ms each): 16 ≈ 3.2 s;
/// backpressure on the call loop when full.
pub const OUT_EDGE: usize = 16;
/// Clear commands; the writer serves these first.
pub const CONTROL_EDGE: usize = 4;
/// The writer takes no more audio while this much waits (2 s at 48 kHz).
pub const MAX_QUEUED_SAMPLES: usize = 2 * OPUS_RATE as usize;
/// ICE and DTLS must complete within this long of the answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A connection the browser's network dropped (ICE `disconnected`) may come back this long.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(10);
/// Each task of a call gets this long to finish when the call ends.
pub const TASK_DEADLINE: Duration = Duration::from_secs(2);
/// Events sent to the data channel wait at most this long for room.
pub const EVENT_SEND_TIMEOUT: Duration = Duration::from_secs(2);

enum Out {
    Audio { turn: u64, samples: Vec<f32> },
}

enum Control {
    Clear { turn: u64 },
}

/// Why a call ended (logged).
#[derive(Debug, thiserror::Error)]
enum End {
    #[error("hung up (WHIP DELETE)")]
    HungUp,
    #[error("the page left")]
    PageLeft,
    #[error("{0}")]
    Finished(String),
    #[error("vaak is shutting down")]
    ShuttingDown,
    #[error("network: {0}")]
    Network(String),
    #[error("internal: {0}")]
    Internal(String),
}

pub(super) async fn run(
    svc: Arc<SessionService>,
    mut session: OpenSession,
    peer: Peer,
    mut events: PeerEvents,
    hangup: CancellationToken,
    _guard: CallGuard,
) {
    let peer = Arc::new(peer);
    let stop = CancellationToken::new();
    let cleared = Arc::new(AtomicU64::new(0));
    let (out_tx, out_rx) = mpsc::channel(OUT_EDGE);
    let (control_tx, control_rx) = mpsc::channel(CONTROL_EDGE);
    let writer = match Writer::new(
        &svc,
        Arc::clone(&peer),
        Arc::clone(&session.pipeline.turns),
        Arc::clone(&cleared),
    ) {
        Ok(w) => w,
        Err(e) => {
            warn!(error = %e, "cannot start the reply encoder");
            session.cancel.cancel();
            peer.close().await;
            return;
        }
    };
    let writer_task = svc.tracker().spawn(
        writer
            .run(out_rx, control_rx, events.state.clone(), stop.clone())
            .in_current_span(),
    );
    let mut call = Call {
        svc: &svc,
        out: out_tx,
        control: control_tx,
        cleared,
        reply: ToRate::new(OPUS_RATE),
        channel: None,
        reader: None,
    };
    let end = call.run(&mut session, &mut events, &hangup, &stop).await;
    match &end {
        End::Internal(_) | End::Network(_) => warn!(reason = %end, "browser call ended"),
        _ => info!(reason = %end, "browser call ended"),
    }
    session.cancel.cancel();
    stop.cancel();
    if let Some(dc) = call.channel.take() {
        let _ = tokio::time::timeout(TASK_DEADLINE, dc.close()).await;
    }
    let mut tasks = vec![writer_task];
    tasks.extend(call.reader.take());
    drop(call);
    for mut t in tasks {
        if tokio::time::timeout(TASK_DEADLINE, &mut t).await.is_err() {
            warn!("a call task did not finish in time");
            t.abort();
        }
    }
    peer.close().await;
}

struct Call<'a> {
    svc: &'a SessionService,
    out: mpsc::Sender<Out>,
    control: mpsc::Sender<Control>,
    /// Turns up to this one were cut off by a barge-in.
    cleared: Arc<AtomicU64>,
    reply: ToRate,
    channel: Option<Arc<dyn DataChannel>>,
    reader: Option<JoinHandle<()>>,
}

async fn next_page_event(dc: &Option<Arc<dyn DataChannel>>) -> Option<DataChannelEvent> {
    match dc {
        Some(dc) => dc.poll().await,
        None => std::future::pending().await,
    }
}

impl Call<'_> {
    async fn run(
        &mut self,
        session: &mut OpenSession,
        events: &mut PeerEvents,
        hangup: &CancellationToken,
        stop: &CancellationToken,
    ) -> End {
        let cfg = &self.svc.backends.config;
        let session_deadline = Instant::now() + Duration::from_secs(cfg.server.max_session_s);
        let shutdown = self.svc.shutdown_token().clone();
        let mut connect_deadline = Some(Instant::now() + CONNECT_TIMEOUT);
        let mut reconnect_deadline = None;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return End::ShuttingDown,
                _ = hangup.cancelled() => return End::HungUp,
                _ = session.cancel.cancelled() => {
                    return End::Finished("the session was continued elsewhere or deleted".into())
                }
                _ = tokio::time::sleep_until(session_deadline) => {
                    return End::Finished(format!(
                        "the call reached its maximum length of {} s", cfg.server.max_session_s))
                }
                _ = sleep_until_opt(connect_deadline) => {
                    return End::Network(format!(
                        "ICE/DTLS did not connect within {} s", CONNECT_TIMEOUT.as_secs()))
                }
                _ = sleep_until_opt(reconnect_deadline) => {
                    return End::Network(format!(
                        "the connection stayed lost for {} s", RECONNECT_GRACE.as_secs()))
                }
                changed = events.state.changed() => {
                    if changed.is_err() {
                        return End::Network("the peer connection went away".into());
                    }
                    let state = *events.state.borrow_and_update();
                    debug!(?state, "peer connection state");
                    match state {
                        RTCPeerConnectionState::Connected => {
                            connect_deadline = None;
                            reconnect_deadline = None;
                        }
                        RTCPeerConnectionState::Disconnected => {
                            reconnect_deadline = Some(Instant::now() + RECONNECT_GRACE);
                        }
                        RTCPeerConnectionState::Failed => {
                            return End::Network("ICE or DTLS failed".into())
                        }
                        RTCPeerConnectionState::Closed => return End::PageLeft,
                        _ => {}
                    }
                }
                Some(track) = events.tracks.recv() => {
                    if self.reader.is_some() {
                        debug!("ignoring a second audio track");
                        continue;
                    }
                    let task = reader(
                        Arc::clone(&self.svc.metrics),
                        track,
                        session.pipeline.input.clone(),
                        stop.clone(),
                    );
                    self.reader = Some(self.svc.tracker().spawn(task.in_current_span()));
                }
                Some(dc) = events.channels.recv() => {
                    if self.channel.is_none() {
                        self.channel = Some(dc);
                        let hello = serde_json::json!({
                            "type": "session", "session_id": session.id,
                            "resumed": session.resumed,
                        });
                        self.send_json(&hello).await;
                    }
                }
                ev = next_page_event(&self.channel) => match ev {
                    Some(DataChannelEvent::OnMessage(m)) => {
                        match events::parse_page_message(&m.data) {
                            Ok(PageMessage::Hangup {}) => return End::PageLeft,
                            Ok(PageMessage::Text { text }) => match typed_turn(&text) {
                                Ok(Some(text)) => {
                                    if session.pipeline.input.send(Ingest::Text(text)).await.is_err() {
                                        return End::Internal("the pipeline stopped".into());
                                    }
                                }
                                Ok(None) => {}
                                Err(e) => self.send_json(&events::error("bad_message", &e.to_string())).await,
                            },
                            Ok(PageMessage::EndOfInput {}) => {
                                if session.pipeline.input.send(Ingest::EndOfInput).await.is_err() {
                                    return End::Internal("the pipeline stopped".into());
                                }
                            }
                            Err(why) => self.send_json(&events::error("bad_message", &why)).await,
                        }
                    }
                    Some(DataChannelEvent::OnClose) | None => {
                        // Captions stop; the call's audio goes on until the peer closes.
                        self.channel = None;
                    }
                    Some(_) => {}
                },
                ev = session.pipeline.events.recv() => {
                    let Some(ev) = ev else { return End::Finished("the session ended".into()) };
                    if !self.forward(ev).await {
                        return End::Internal("the reply writer stopped".into());
                    }
                }
            }
        }
    }

    /// Sends one event to the page, if it has a channel; a page that does not read in time
    /// loses that event, not the call.
    async fn send_json(&mut self, v: &serde_json::Value) {
        let Some(dc) = &self.channel else { return };
        let text = v.to_string();
        match tokio::time::timeout(EVENT_SEND_TIMEOUT, dc.send_text(&text)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(error = %e, "data channel send failed"),
            Err(_) => warn!("the page's data channel is full; an event was dropped"),
        }
    }

    /// Pipeline event → page. False once the writer is gone.
    async fn forward(&mut self, ev: PipelineEvent) -> bool {
        if let Some(json) = crate::transport::events::to_json(&ev) {
            self.send_json(&json).await;
        }
        match ev {
            PipelineEvent::ReplyAudio {
                turn,
                samples,
                sample_rate,
                ..
            } => {
                if turn.0 <= self.cleared.load(Ordering::Acquire) {
                    return true;
                }
                let mut out = Vec::with_capacity(samples.len() * 2 + 64);
                if let Err(e) = self.reply.push(&samples, sample_rate, &mut out) {
                    warn!(error = %e, "cannot resample reply audio");
                    return true;
                }
                self.send_audio(turn, out).await
            }
            PipelineEvent::TurnCompleted { turn, .. } => {
                let mut out = Vec::new();
                if self.reply.finish(&mut out).is_err() {
                    return true;
                }
                self.send_audio(turn, out).await
            }
            PipelineEvent::Interrupted { turn, played_s, .. } => {
                info!(turn = turn.0, played_s, "barge-in: reply cleared");
                self.cleared.fetch_max(turn.0, Ordering::AcqRel);
                self.reply.reset();
                self.control
                    .send(Control::Clear { turn: turn.0 })
                    .await
                    .is_ok()
            }
            _ => true,
        }
    }

    async fn send_audio(&mut self, turn: TurnId, samples: Vec<f32>) -> bool {
        if samples.is_empty() || turn.0 <= self.cleared.load(Ordering::Acquire) {
            return true;
        }
        self.out
            .send(Out::Audio {
                turn: turn.0,
                samples,
            })
            .await
            .is_ok()
    }
}

/// The caller's audio track → pipeline audio.
async fn reader(
    metrics: Arc<Metrics>,
    track: Arc<dyn TrackRemote>,
    input: mpsc::Sender<Ingest>,
    stop: CancellationToken,
) {
    let mut audio = match InboundAudio::new() {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "cannot start the caller's audio decoder");
            return;
        }
    };
    let mut corrupt = 0u64;
    let mut pcm = Vec::with_capacity(1024);
    loop {
        let ev = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            ev = track.poll() => ev,
        };
        let packet = match ev {
            None | Some(TrackRemoteEvent::OnEnded) => break,
            Some(TrackRemoteEvent::OnRtpPacket(p)) => p,
            Some(_) => continue,
        };
        pcm.clear();
        match audio.packet(packet.header.sequence_number, &packet.payload, &mut pcm) {
            Ok(r) => {
                Metrics::add(&metrics.webrtc_fec_recovered, u64::from(r.fec_recovered));
                Metrics::add(&metrics.webrtc_concealed, u64::from(r.concealed));
                if r.late {
                    Metrics::incr(&metrics.stale_messages_dropped);
                }
            }
            Err(e) => {
                corrupt += 1;
                // The first and then every 100th: a broken sender must not flood the log.
                if corrupt % 100 == 1 {
                    warn!(error = %e, corrupt, "caller audio packet dropped");
                }
                continue;
            }
        }
        if pcm.is_empty() {
            continue;
        }
        match input.try_send(Ingest::Audio(std::mem::take(&mut pcm))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                Metrics::incr(&metrics.audio_chunks_dropped);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
    }
}

/// The reply track's sender.
struct Writer {
    peer: Arc<Peer>,
    turns: Arc<crate::flow::TurnControl>,
    /// Turns up to this one were cut off: their audio is dropped on arrival.
    cleared: Arc<AtomicU64>,
    encoder: OpusEncoder,
    /// One encoded frame of digital silence, sent between replies without encoding each one
    /// (encoding 50 silent frames a second was a sixth of an idle call's CPU).
    silence: Vec<u8>,
}

impl Writer {
    fn new(
        svc: &SessionService,
        peer: Arc<Peer>,
        turns: Arc<crate::flow::TurnControl>,
        cleared: Arc<AtomicU64>,
    ) -> Result<Self, crate::audio::opus::OpusError> {
        let w = &svc.backends.config.webrtc;
        let settings = (w.opus_complexity, w.opus_bitrate, w.opus_loss_perc);
        let mut quiet = OpusEncoder::new(settings.0, settings.1, settings.2)?;
        let zeros = [0.0f32; FRAME_SAMPLES];
        let mut silence = Vec::new();
        // The encoder settles after its first frames; the last one is the steady silence.
        for _ in 0..5 {
            silence = quiet.encode(&zeros)?;
        }
        Ok(Self {
            peer,
            turns,
            cleared,
            encoder: OpusEncoder::new(settings.0, settings.1, settings.2)?,
            silence,
        })
    }

    /// Once connected, sends one frame every 20 ms for the whole call (silence between replies
    /// keeps the browser's jitter buffer steady), reporting each reply frame as played.
    async fn run(
        mut self,
        mut data: mpsc::Receiver<Out>,
        mut control: mpsc::Receiver<Control>,
        mut state: watch::Receiver<RTCPeerConnectionState>,
        stop: CancellationToken,
    ) {
        // Nothing can be sent before DTLS is up.
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            up = state.wait_for(|s| *s == RTCPeerConnectionState::Connected) => {
                if up.is_err() {
                    return;
                }
            }
        }
        let mut queue = ReplyQueue::default();
        let mut frame = [0.0f32; FRAME_SAMPLES];
        let mut tick = tokio::time::interval(Duration::from_millis(FRAME_MS));
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut sent = SendLog::default();
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                c = control.recv() => match c {
                    Some(Control::Clear { turn }) => queue.clear(turn),
                    None => return,
                },
                _ = tick.tick() => {
                    let played = queue.next_frame(&mut frame);
                    let packet = if played.is_none() {
                        self.silence.clone()
                    } else {
                        match self.encoder.encode(&frame) {
                            Ok(p) => p,
                            Err(e) => {
                                warn!(error = %e, "cannot encode reply audio");
                                continue;
                            }
                        }
                    };
                    let started = Instant::now();
                    let result = self.peer.send_frame(packet).await;
                    sent.record(started.elapsed(), result.is_ok());
                    if let Err(e) = result {
                        // A connection being re-established drops frames; count, do not stop.
                        if sent.errors % 500 == 1 {
                            debug!(error = %e, errors = sent.errors, "reply frame not sent");
                        }
                        continue;
                    }
                    if let Some((turn, ms)) = played {
                        self.turns.report_played(TurnId(turn), ms);
                    }
                },
                d = data.recv(), if queue.len() < MAX_QUEUED_SAMPLES => match d {
                    Some(Out::Audio { turn, samples }) => {
                        if turn > self.cleared.load(Ordering::Acquire) {
                            queue.push(turn, samples);
                        }
                    }
                    None => return,
                },
            }
        }
    }
}

/// What the writer sent, logged when it ends: frames, failed sends, the slowest send.
#[derive(Default)]
struct SendLog {
    frames: u64,
    errors: u64,
    slowest: Duration,
}

impl SendLog {
    fn record(&mut self, took: Duration, ok: bool) {
        self.frames += 1;
        if !ok {
            self.errors += 1;
        }
        self.slowest = self.slowest.max(took);
    }
}

impl Drop for SendLog {
    fn drop(&mut self) {
        info!(
            frames = self.frames,
            failed = self.errors,
            slowest_ms = self.slowest.as_secs_f32() * 1000.0,
            "reply track closed"
        );
    }
}
