//! The call kernel: the one loop of a live session, whatever carries it. It owns what every
//! transport used to copy — the session's deadlines (shutdown, the session taken over, its
//! maximum length, idle), ingest into the pipeline under a declared overflow policy, the
//! cleared-turn watermark that drops reply audio of an interrupted turn, and the ending as one
//! [`End`]. A transport supplies only its protocol, as a [`Side`]: what the caller sent
//! ([`Side::next`]: decoded audio, typed text, control) and how events reach the caller
//! (media, clear, end of reply, captions). Control comes first: the `select!` is biased with
//! shutdown at the top, and the peer's writer gets clears ahead of queued audio.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::flow::{Ingest, PipelineEvent, TurnId};
use crate::metrics::Metrics;
use crate::session::service::{OpenSession, SessionService};
use crate::transport::sleep_until_opt;

/// What ingest does when the pipeline's input edge is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Live capture (a phone line, a browser's microphone): the chunk is dropped and counted
    /// (`audio_chunks_dropped`); waiting would only make the caller's audio late.
    DropAndCount,
    /// A client that can slow down (gRPC's HTTP/2 flow control, a file): the peer is not read
    /// until there is room, so nothing is lost.
    Backpressure,
}

/// How a transport's calls are run.
#[derive(Debug, Clone, Copy)]
pub struct CallRules {
    /// Applies to audio; typed text, keys and the end of input always wait for room.
    pub overflow: Overflow,
    /// The call ends when the peer sends nothing for this long (`None`: no idle limit, e.g. a
    /// browser whose liveness is ICE's business).
    pub idle: Option<Duration>,
    /// The call ends after this long (`server.max_session_s`; `None` for the kiosk, whose
    /// conversation lasts as long as the machine runs).
    pub max_length: Option<Duration>,
}

impl CallRules {
    /// A caller over the network: idle and length limits from `[server]`.
    pub fn remote(overflow: Overflow, server: &crate::config::ServerConfig) -> Self {
        Self {
            overflow,
            idle: Some(Duration::from_secs(server.idle_timeout_s)),
            max_length: Some(Duration::from_secs(server.max_session_s)),
        }
    }
}

/// What a peer's next message asks of the session.
#[derive(Debug)]
pub enum Input<P> {
    /// Hand this to the pipeline.
    Ingest(Ingest),
    /// The peer is alive but has nothing for the pipeline (a keep-alive, a mark, a state change).
    Nothing,
    /// The user asked to stop the reply (an explicit interrupt, not speech over it).
    Interrupt,
    /// The peer's input is over: the utterance in progress is finished and answered, then the
    /// session ends once every reply has gone out.
    Finish,
    /// The peer ended the call, or broke its protocol.
    End(P),
}

/// A transport's side of a call. `next` runs inside the kernel's `select!`, so it must be
/// cancel-safe: a message half-read when another branch wins must not be lost. The event
/// methods return `Err` with the transport's reason when the caller can no longer be reached.
pub(crate) trait Side {
    /// The transport's own reasons for an end (hung up, protocol error, network …).
    type End;

    async fn next(&mut self) -> Input<Self::End>;

    /// Reply audio of a turn that has not been cleared, in the pipeline's rate.
    async fn audio(&mut self, turn: TurnId, samples: Vec<f32>, rate: u32) -> Result<(), Self::End>;

    /// The turn's reply is complete (called before its `TurnCompleted` event): flush what an
    /// encoder holds, unless `cleared` (the turn was interrupted: its audio is not wanted).
    async fn reply_done(&mut self, turn: TurnId, cleared: bool) -> Result<(), Self::End>;

    /// The turn was interrupted (called before its `Interrupted` event): forget its queued
    /// audio and tell the caller's side to stop playing it.
    async fn clear(&mut self, turn: TurnId) -> Result<(), Self::End>;

    /// Every event, after the audio-specific calls above (captions, transcripts, timings).
    async fn event(&mut self, event: PipelineEvent) -> Result<(), Self::End>;

    /// What the last input asked to be answered (e.g. a page's malformed message gets an error
    /// back). Called after every input outside the `select!`, so unlike `next` it is never
    /// cut short.
    async fn respond(&mut self) -> Result<(), Self::End> {
        Ok(())
    }

    /// Resolves when the caller can no longer be reached at all (e.g. a gRPC client dropped
    /// its response stream); watched even while the peer is not read.
    fn gone(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        std::future::pending()
    }
}

/// Turns up to this one were cut off by an interruption: their audio is dropped wherever it is
/// found (in the kernel, and in a transport's writer task that holds a clone).
#[derive(Debug, Clone, Default)]
pub struct Cleared(Arc<AtomicU64>);

impl Cleared {
    pub fn covers(&self, turn: u64) -> bool {
        turn <= self.0.load(Ordering::Acquire)
    }

    pub fn clear(&self, turn: u64) {
        self.0.fetch_max(turn, Ordering::AcqRel);
    }
}

/// Why a call ended: the kernel's own reasons, or the transport's.
#[derive(Debug)]
pub enum End<P> {
    ShuttingDown,
    /// The session was continued in another call, or deleted.
    TakenOver,
    /// The session reached `server.max_session_s` (the value).
    MaxLength(u64),
    /// Nothing from the peer for `idle` (the seconds).
    Idle(u64),
    /// Every reply went out after the input ended (or the pipeline finished).
    SessionEnded,
    /// The pipeline's input closed while the peer still had something for it.
    PipelineStopped,
    /// The caller can no longer be reached ([`Side::gone`]).
    Gone,
    Transport(P),
}

impl<P> End<P> {
    /// A sentence for logs and close reasons (the transport words its own ends).
    pub fn describe(&self) -> Option<String> {
        Some(match self {
            End::ShuttingDown => "vaak is shutting down".into(),
            End::TakenOver => "the session was continued elsewhere or deleted".into(),
            End::MaxLength(s) => format!("the call reached its maximum length of {s} s"),
            End::Idle(s) => format!("no message from the peer for {s} s"),
            End::SessionEnded => "the session ended".into(),
            End::PipelineStopped => "the pipeline stopped".into(),
            End::Gone => "the peer went away".into(),
            End::Transport(_) => return None,
        })
    }
}

/// Runs one call until it ends. The caller cancels `session.cancel` afterwards and closes its
/// own side with the reason.
pub(crate) async fn run<P: Side>(
    svc: &SessionService,
    session: &mut OpenSession,
    peer: &mut P,
    rules: CallRules,
    cleared: &Cleared,
) -> End<P::End> {
    let shutdown = svc.shutdown_token().clone();
    let session_deadline = rules.max_length.map(|d| Instant::now() + d);
    let next_idle = || rules.idle.map(|d| Instant::now() + d);
    let mut idle_deadline = next_idle();
    let mut input = Some(session.pipeline.input.clone());
    // Input waiting for room in the pipeline; the peer is not read meanwhile.
    let mut pending: Option<Ingest> = None;
    // The peer finished its input: once `pending` (its end) is delivered, the input closes.
    let mut finishing = false;
    let gone = peer.gone();
    tokio::pin!(gone);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return End::ShuttingDown,
            _ = session.cancel.cancelled() => return End::TakenOver,
            _ = &mut gone => return End::Gone,
            _ = sleep_until_opt(session_deadline) => {
                return End::MaxLength(rules.max_length.map_or(0, |d| d.as_secs()))
            }
            _ = sleep_until_opt(idle_deadline), if input.is_some() && pending.is_none() => {
                return End::Idle(rules.idle.map_or(0, |d| d.as_secs()))
            }
            permit = reserve(input.clone()), if pending.is_some() => {
                let (Some(permit), Some(msg)) = (permit, pending.take()) else {
                    return End::PipelineStopped;
                };
                permit.send(msg);
                if finishing {
                    // Every stage drains and the event stream closes after the last reply.
                    input = None;
                    session.pipeline.input = mpsc::channel(1).0;
                }
                idle_deadline = next_idle();
            }
            step = peer.next(), if input.is_some() && pending.is_none() => {
                idle_deadline = next_idle();
                if let Err(e) = peer.respond().await {
                    return End::Transport(e);
                }
                match step {
                    Input::Ingest(msg) => {
                        pending = offer(&svc.metrics, input.as_ref(), msg, rules.overflow);
                    }
                    Input::Nothing => {}
                    Input::Interrupt => {
                        if let Some(info) = session.pipeline.interrupt().await {
                            Metrics::incr(&svc.metrics.interruptions);
                            let ev = PipelineEvent::Interrupted {
                                turn: info.turn,
                                played_s: info.played_s,
                                kept_text: info.kept_text,
                            };
                            if let Err(e) = deliver(peer, cleared, &svc.metrics, ev).await {
                                return End::Transport(e);
                            }
                        }
                    }
                    Input::Finish => {
                        pending = Some(Ingest::EndOfInput);
                        finishing = true;
                    }
                    Input::End(e) => return End::Transport(e),
                }
            }
            ev = session.pipeline.events.recv() => {
                let Some(ev) = ev else { return End::SessionEnded };
                if let Err(e) = deliver(peer, cleared, &svc.metrics, ev).await {
                    return End::Transport(e);
                }
            }
        }
    }
}

/// Hands `msg` to the pipeline now if there is room; otherwise audio under
/// [`Overflow::DropAndCount`] is dropped and counted, and anything else is returned to wait.
fn offer(
    metrics: &Metrics,
    input: Option<&mpsc::Sender<Ingest>>,
    msg: Ingest,
    overflow: Overflow,
) -> Option<Ingest> {
    let input = input?;
    match (msg, overflow) {
        (Ingest::Audio(pcm), Overflow::DropAndCount) => {
            // A closed input shows on the next event: the pipeline has ended.
            let _ = push_live(input, pcm, metrics);
            None
        }
        (msg, _) => match input.try_send(msg) {
            Ok(()) => None,
            // Waits for room (a closed input shows when it is reserved).
            Err(mpsc::error::TrySendError::Full(msg) | mpsc::error::TrySendError::Closed(msg)) => {
                Some(msg)
            }
        },
    }
}

/// Live captured audio into a pipeline: dropped and counted when the edge is full (waiting
/// would only make the speaker's audio late). `false` once the pipeline's input is closed.
/// The kernel, a browser call's track reader and the kiosk's microphone all feed it this way.
pub(crate) fn push_live(input: &mpsc::Sender<Ingest>, pcm: Vec<f32>, metrics: &Metrics) -> bool {
    match input.try_send(Ingest::Audio(pcm)) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            Metrics::incr(&metrics.audio_chunks_dropped);
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// Room for one message on the pipeline's input (`None` once it is closed).
async fn reserve(input: Option<mpsc::Sender<Ingest>>) -> Option<mpsc::OwnedPermit<Ingest>> {
    input?.reserve_owned().await.ok()
}

/// One pipeline event → the peer, with the watermark applied.
async fn deliver<P: Side>(
    peer: &mut P,
    cleared: &Cleared,
    metrics: &Metrics,
    ev: PipelineEvent,
) -> Result<(), P::End> {
    match ev {
        PipelineEvent::ReplyAudio {
            turn,
            samples,
            sample_rate,
            ..
        } => {
            if cleared.covers(turn.0) {
                Metrics::incr(&metrics.stale_messages_dropped);
                return Ok(());
            }
            peer.audio(turn, samples, sample_rate).await
        }
        PipelineEvent::TurnCompleted { turn, .. } => {
            peer.reply_done(turn, cleared.covers(turn.0)).await?;
            peer.event(ev).await
        }
        PipelineEvent::Interrupted { turn, .. } => {
            cleared.clear(turn.0);
            peer.clear(turn).await?;
            peer.event(ev).await
        }
        ev => peer.event(ev).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::{EnergyVad, ScriptedAsr, ScriptedLlm, ToneBank};
    use crate::backend::Backends;
    use crate::session::service::OpenRequest;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    /// A caller that says nothing and records what reaches it.
    #[derive(Default)]
    struct Recorder {
        seen: Vec<String>,
    }

    impl Side for Recorder {
        type End = ();

        async fn next(&mut self) -> Input<()> {
            std::future::pending().await
        }

        async fn audio(&mut self, turn: TurnId, _: Vec<f32>, _: u32) -> Result<(), ()> {
            self.seen.push(format!("audio {}", turn.0));
            Ok(())
        }

        async fn reply_done(&mut self, turn: TurnId, cleared: bool) -> Result<(), ()> {
            self.seen.push(format!("done {} cleared={cleared}", turn.0));
            Ok(())
        }

        async fn clear(&mut self, turn: TurnId) -> Result<(), ()> {
            self.seen.push(format!("clear {}", turn.0));
            Ok(())
        }

        async fn event(&mut self, ev: PipelineEvent) -> Result<(), ()> {
            let name = match ev {
                PipelineEvent::Interrupted { .. } => "interrupted",
                PipelineEvent::TurnCompleted { .. } => "completed",
                _ => "other",
            };
            self.seen.push(format!("event {name}"));
            Ok(())
        }
    }

    fn audio(turn: u64) -> PipelineEvent {
        PipelineEvent::ReplyAudio {
            turn: TurnId(turn),
            samples: vec![0.1; 160],
            sample_rate: 16_000,
            offset_samples: 0,
        }
    }

    fn completed(turn: u64) -> PipelineEvent {
        PipelineEvent::TurnCompleted {
            turn: TurnId(turn),
            reply_text: String::new(),
            voice: String::new(),
            language: "en".into(),
            timings: Default::default(),
        }
    }

    #[tokio::test]
    async fn an_interrupted_turn_is_cleared_before_its_event_and_its_late_audio_dropped() {
        let (mut side, cleared, metrics) =
            (Recorder::default(), Cleared::default(), Metrics::default());
        let interrupted = PipelineEvent::Interrupted {
            turn: TurnId(2),
            played_s: 0.5,
            kept_text: String::new(),
        };
        for ev in [
            audio(2),
            interrupted,
            audio(2),
            completed(2),
            audio(3),
            completed(3),
        ] {
            deliver(&mut side, &cleared, &metrics, ev).await.unwrap();
        }
        assert_eq!(
            side.seen,
            [
                "audio 2",
                "clear 2",
                "event interrupted",
                "done 2 cleared=true",
                "event completed",
                "audio 3",
                "done 3 cleared=false",
                "event completed"
            ]
        );
        assert_eq!(Metrics::counter(&metrics.stale_messages_dropped), 1);
        assert!(cleared.covers(1) && cleared.covers(2) && !cleared.covers(3));
    }

    #[test]
    fn live_audio_is_dropped_and_counted_at_a_full_input_anything_else_waits() {
        let metrics = Metrics::default();
        let (tx, _rx) = mpsc::channel(1);
        let pcm = || Ingest::Audio(vec![0.0; 320]);
        assert!(offer(&metrics, Some(&tx), pcm(), Overflow::DropAndCount).is_none());
        // Full now: live audio is dropped and counted …
        assert!(offer(&metrics, Some(&tx), pcm(), Overflow::DropAndCount).is_none());
        assert_eq!(Metrics::counter(&metrics.audio_chunks_dropped), 1);
        // … typed text and the end of input wait, as does audio from a client that can slow down.
        let text = Ingest::Text("hello".into());
        assert!(offer(&metrics, Some(&tx), text, Overflow::DropAndCount).is_some());
        assert!(offer(
            &metrics,
            Some(&tx),
            Ingest::EndOfInput,
            Overflow::DropAndCount
        )
        .is_some());
        assert!(offer(&metrics, Some(&tx), pcm(), Overflow::Backpressure).is_some());
        assert_eq!(Metrics::counter(&metrics.audio_chunks_dropped), 1);
    }

    /// A session on scripted backends, opened through the session service as transports do.
    async fn open_session(stop: &CancellationToken) -> (SessionService, OpenSession) {
        let backends = Arc::new(Backends {
            config: Arc::new(crate::config::Config::default()),
            vad: Arc::new(EnergyVad { threshold: 0.05 }),
            asr: Arc::new(ScriptedAsr::new(&[("hello", "en")])),
            llm: Arc::new(ScriptedLlm::new(
                "Hi.",
                Duration::from_millis(10),
                Duration::from_millis(10),
            )),
            tts: Arc::new(ToneBank::default()),
            worker: None,
            cpu: crate::scheduler::CpuScheduler::new(1),
            devices: crate::backend::Devices::cpu(),
        });
        let svc = SessionService::new(
            backends,
            Arc::new(Metrics::default()),
            None,
            TaskTracker::new(),
            stop.clone(),
        );
        let slot = svc.admit("test", "t").unwrap();
        let req = OpenRequest {
            tenant: "t".into(),
            languages: vec!["en".into()],
            ..Default::default()
        };
        let session = svc.open(slot, req).await.unwrap();
        (svc, session)
    }

    /// How a call of a caller who never says anything ends, with these limits (seconds).
    async fn silent_call(
        stop: &CancellationToken,
        idle_s: Option<u64>,
        max_s: Option<u64>,
        before: impl FnOnce(&OpenSession),
    ) -> End<()> {
        let (svc, mut session) = open_session(stop).await;
        before(&session);
        let rules = CallRules {
            overflow: Overflow::DropAndCount,
            idle: idle_s.map(Duration::from_secs),
            max_length: max_s.map(Duration::from_secs),
        };
        let cleared = Cleared::default();
        run(
            &svc,
            &mut session,
            &mut Recorder::default(),
            rules,
            &cleared,
        )
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_caller_ends_at_idle_the_length_limit_or_shutdown_whichever_is_first() {
        let stop = CancellationToken::new();
        let started = Instant::now();
        let end = silent_call(&stop, Some(5), Some(60), |_| {}).await;
        assert!(matches!(end, End::Idle(5)), "{end:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(5));

        let end = silent_call(&stop, None, Some(30), |_| {}).await;
        assert!(matches!(end, End::MaxLength(30)), "{end:?}");

        let end = silent_call(&stop, None, None, |session| {
            let taken = session.cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                taken.cancel();
            });
        })
        .await;
        assert!(matches!(end, End::TakenOver), "{end:?}");

        let end = silent_call(&stop, Some(5), Some(60), |_| stop.cancel()).await;
        assert!(matches!(end, End::ShuttingDown), "{end:?}");
    }
}
