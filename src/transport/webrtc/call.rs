//! One browser call = one session: the call kernel (`transport::call`) joins the pipeline to
//! the peer connection through this file's [`Browser`].
//! A reader task decodes the caller's Opus into the pipeline (realtime capture: a full edge
//! drops and counts); a writer task sends reply audio as paced 20 ms Opus frames and reports
//! what was sent as played; a barge-in's clear reaches the writer ahead of queued audio and
//! audio of a cleared turn is dropped on arrival. Events go to the page's data channel.

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
use crate::transport::call::{self, CallRules, Cleared, Input, Overflow, Side};
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
    let cleared = Cleared::default();
    let (out_tx, out_rx) = mpsc::channel(OUT_EDGE);
    let (control_tx, control_rx) = mpsc::channel(CONTROL_EDGE);
    let writer = match Writer::new(
        &svc,
        Arc::clone(&peer),
        Arc::clone(&session.pipeline.turns),
        cleared.clone(),
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
    let mut browser = Browser {
        svc: &svc,
        hello: crate::transport::events::json(&crate::transport::events::session_started(
            &session, None,
        )),
        input: session.pipeline.input.clone(),
        events: &mut events,
        hangup: hangup.clone(),
        stop: stop.clone(),
        connect_deadline: Some(Instant::now() + CONNECT_TIMEOUT),
        reconnect_deadline: None,
        out: out_tx,
        control: control_tx,
        reply: ToRate::new(OPUS_RATE),
        channel: None,
        reader: None,
        outbox: Vec::new(),
    };
    // Text from the page waits for room; the microphone's audio comes through the track
    // reader, which drops and counts like every live capture. A browser's liveness is ICE's
    // business (the connection states below), not an idle limit.
    let rules = CallRules {
        idle: None,
        ..CallRules::remote(Overflow::DropAndCount, &svc.backends.config.server)
    };
    let end = call::run(&svc, &mut session, &mut browser, rules, &cleared).await;
    let end = match end {
        call::End::Transport(end) => end,
        call::End::ShuttingDown => End::ShuttingDown,
        call::End::Gone => End::HungUp,
        stopped @ call::End::PipelineStopped => {
            End::Internal(stopped.describe().unwrap_or_default())
        }
        other => End::Finished(other.describe().unwrap_or_default()),
    };
    match &end {
        End::Internal(_) | End::Network(_) => warn!(reason = %end, "browser call ended"),
        _ => info!(reason = %end, "browser call ended"),
    }
    session.cancel.cancel();
    stop.cancel();
    if let Some(dc) = browser.channel.take() {
        let _ = tokio::time::timeout(TASK_DEADLINE, dc.close()).await;
    }
    let mut tasks = vec![writer_task];
    tasks.extend(browser.reader.take());
    drop(browser);
    for mut t in tasks {
        if tokio::time::timeout(TASK_DEADLINE, &mut t).await.is_err() {
            warn!("a call task did not finish in time");
            t.abort();
        }
    }
    peer.close().await;
}

/// A browser's side of the call kernel: the peer connection's states, its audio track (read
/// by its own task) and the page's data channel in; reply audio to the paced writer, clears
/// ahead of it, and every event as JSON to the page.
struct Browser<'a> {
    svc: &'a SessionService,
    /// The page's first message once its channel opens (`session_started`).
    hello: serde_json::Value,
    /// For the track reader.
    input: mpsc::Sender<Ingest>,
    events: &'a mut PeerEvents,
    hangup: CancellationToken,
    stop: CancellationToken,
    connect_deadline: Option<Instant>,
    reconnect_deadline: Option<Instant>,
    out: mpsc::Sender<Out>,
    control: mpsc::Sender<Control>,
    reply: ToRate,
    channel: Option<Arc<dyn DataChannel>>,
    reader: Option<JoinHandle<()>>,
    /// Messages for the page that the last input asked for, sent by `respond`.
    outbox: Vec<serde_json::Value>,
}

async fn next_page_event(dc: &Option<Arc<dyn DataChannel>>) -> Option<DataChannelEvent> {
    match dc {
        Some(dc) => dc.poll().await,
        None => std::future::pending().await,
    }
}

impl Side for Browser<'_> {
    type End = End;

    async fn next(&mut self) -> Input<End> {
        tokio::select! {
            biased;
            _ = sleep_until_opt(self.connect_deadline) => {
                Input::End(End::Network(format!(
                    "ICE/DTLS did not connect within {} s", CONNECT_TIMEOUT.as_secs())))
            }
            _ = sleep_until_opt(self.reconnect_deadline) => {
                Input::End(End::Network(format!(
                    "the connection stayed lost for {} s", RECONNECT_GRACE.as_secs())))
            }
            changed = self.events.state.changed() => {
                if changed.is_err() {
                    return Input::End(End::Network("the peer connection went away".into()));
                }
                let state = *self.events.state.borrow_and_update();
                self.on_state(state)
            }
            Some(track) = self.events.tracks.recv() => {
                if self.reader.is_some() {
                    debug!("ignoring a second audio track");
                    return Input::Nothing;
                }
                let metrics = Arc::clone(&self.svc.metrics);
                let task = reader(metrics, track, self.input.clone(), self.stop.clone());
                self.reader = Some(self.svc.tracker().spawn(task.in_current_span()));
                Input::Nothing
            }
            Some(dc) = self.events.channels.recv() => {
                if self.channel.is_none() {
                    self.channel = Some(dc);
                    self.outbox.push(self.hello.clone());
                }
                Input::Nothing
            }
            ev = next_page_event(&self.channel) => self.on_page_event(ev),
        }
    }

    async fn respond(&mut self) -> Result<(), End> {
        for message in std::mem::take(&mut self.outbox) {
            self.send_json(&message).await;
        }
        Ok(())
    }

    async fn audio(&mut self, turn: TurnId, samples: Vec<f32>, rate: u32) -> Result<(), End> {
        let mut out = Vec::with_capacity(samples.len() * 2 + 64);
        if let Err(e) = self.reply.push(&samples, rate, &mut out) {
            warn!(error = %e, "cannot resample reply audio");
            return Ok(());
        }
        self.send_audio(turn, out).await
    }

    async fn reply_done(&mut self, turn: TurnId, cleared: bool) -> Result<(), End> {
        let mut out = Vec::new();
        if cleared || self.reply.finish(&mut out).is_err() {
            return Ok(());
        }
        self.send_audio(turn, out).await
    }

    async fn clear(&mut self, turn: TurnId) -> Result<(), End> {
        self.reply.reset();
        let clear = Control::Clear { turn: turn.0 };
        self.control.send(clear).await.map_err(|_| writer_stopped())
    }

    async fn event(&mut self, ev: PipelineEvent) -> Result<(), End> {
        if let PipelineEvent::Interrupted { turn, played_s, .. } = &ev {
            info!(turn = turn.0, played_s, "barge-in: reply cleared");
        }
        if let Some(json) = crate::transport::events::to_json(&ev) {
            self.send_json(&json).await;
        }
        Ok(())
    }

    fn gone(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        // WHIP DELETE.
        self.hangup.clone().cancelled_owned()
    }
}

fn writer_stopped() -> End {
    End::Internal("the reply writer stopped".into())
}

impl Browser<'_> {
    fn on_state(&mut self, state: RTCPeerConnectionState) -> Input<End> {
        debug!(?state, "peer connection state");
        match state {
            RTCPeerConnectionState::Connected => {
                self.connect_deadline = None;
                self.reconnect_deadline = None;
            }
            RTCPeerConnectionState::Disconnected => {
                self.reconnect_deadline = Some(Instant::now() + RECONNECT_GRACE);
            }
            RTCPeerConnectionState::Failed => {
                return Input::End(End::Network("ICE or DTLS failed".into()))
            }
            RTCPeerConnectionState::Closed => return Input::End(End::PageLeft),
            _ => {}
        }
        Input::Nothing
    }

    fn on_page_event(&mut self, ev: Option<DataChannelEvent>) -> Input<End> {
        match ev {
            Some(DataChannelEvent::OnMessage(m)) => match events::parse_page_message(&m.data) {
                Ok(PageMessage::Hangup {}) => Input::End(End::PageLeft),
                Ok(PageMessage::Text { text }) => match typed_turn(&text) {
                    Ok(Some(text)) => Input::Ingest(Ingest::Text(text)),
                    Ok(None) => Input::Nothing,
                    Err(e) => {
                        self.outbox
                            .push(events::error("bad_message", &e.to_string()));
                        Input::Nothing
                    }
                },
                Ok(PageMessage::EndOfInput {}) => Input::Ingest(Ingest::EndOfInput),
                Err(why) => {
                    self.outbox.push(events::error("bad_message", &why));
                    Input::Nothing
                }
            },
            Some(DataChannelEvent::OnClose) | None => {
                // Captions stop; the call's audio goes on until the peer closes.
                self.channel = None;
                Input::Nothing
            }
            Some(_) => Input::Nothing,
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

    async fn send_audio(&mut self, turn: TurnId, samples: Vec<f32>) -> Result<(), End> {
        if samples.is_empty() {
            return Ok(());
        }
        let audio = Out::Audio {
            turn: turn.0,
            samples,
        };
        self.out.send(audio).await.map_err(|_| writer_stopped())
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
        if !call::push_live(&input, std::mem::take(&mut pcm), &metrics) {
            break;
        }
    }
}

/// The reply track's sender.
struct Writer {
    peer: Arc<Peer>,
    turns: Arc<crate::flow::TurnControl>,
    /// Turns up to this one were cut off: their audio is dropped on arrival.
    cleared: Cleared,
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
        cleared: Cleared,
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
                        if !self.cleared.covers(turn) {
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
