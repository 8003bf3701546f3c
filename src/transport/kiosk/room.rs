//! The kiosk's room as the call kernel's `Side`: the microphone (gated against the kiosk's own
//! voice), push-to-talk, the devices' state and a poll of the speaker in; replies to the
//! speaker, captions to the terminal, greetings when the room is quiet.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::devices::{Captured, DeviceEvent, Devices, Playback};
use super::{greetings, MicGate};
use crate::audio::resample::ToRate;
use crate::audio::PIPELINE_RATE;
use crate::backend::Backends;
use crate::config::Config;
use crate::flow::{Ingest, PipelineEvent, TurnId};
use crate::metrics::Metrics;
use crate::transport::call::{Input, Side};

/// How often the kiosk checks whether a reply's first sample has reached the speaker.
const PLAYED_POLL: Duration = Duration::from_millis(10);

/// A turn's reply on its way to the speaker: when its first sample is played, latency is known.
struct Pending {
    turn: u64,
    /// The speaker's sample count at which the reply's first sample is played.
    at_sample: u64,
    /// When the pipeline handed the first reply audio over.
    handed_over: Instant,
}

/// A [`ToRate`] whose target follows a device that may reopen at another rate.
struct Converter(Option<ToRate>);

impl Converter {
    fn new() -> Self {
        Self(None)
    }

    /// `samples` at `from` converted to `to`; nothing if they cannot be (a rate of 0).
    fn run(&mut self, samples: &[f32], from: u32, to: u32) -> Vec<f32> {
        if self.0.as_ref().map(ToRate::rate) != Some(to) {
            self.0 = Some(ToRate::new(to));
        }
        self.0
            .as_mut()
            .and_then(|c| c.convert(samples, from).ok())
            .unwrap_or_default()
    }
}

/// The kiosk's side of the call kernel: the microphone (gated against the kiosk's own voice),
/// push-to-talk, the devices' state and a poll of the speaker in; replies to the speaker,
/// captions to the terminal, greetings when the room is quiet.
pub(super) struct Room {
    backends: Arc<Backends>,
    metrics: Arc<Metrics>,
    tracker: TaskTracker,
    devices: Devices,
    playback: Arc<Playback>,
    talk: mpsc::Receiver<()>,
    signals: Signals,
    gate: MicGate,
    mic_rs: Converter,
    spk_rs: Converter,
    pending: Vec<Pending>,
    device_delay_ms: std::collections::HashMap<u64, u64>,
    last_audio_turn: u64,
    last_activity: Instant,
    greeted: bool,
    greetings: Vec<(String, String)>,
    idle: Duration,
    poll: tokio::time::Interval,
}

/// SIGINT or SIGTERM.
#[derive(Debug)]
pub(super) struct Signalled;

impl Side for Room {
    type End = Signalled;

    async fn next(&mut self) -> Input<Signalled> {
        tokio::select! {
            biased;
            _ = next_signal(&mut self.signals) => Input::End(Signalled),
            Some(ev) = self.devices.events.recv() => {
                self.on_device(ev);
                Input::Nothing
            }
            Some(Captured { mut samples, rate }) = self.devices.captured.recv() => {
                let playing = self.playback.queued() > 0;
                let level = self.playback.level();
                self.gate.pass(&mut samples, playing, level, Instant::now());
                let pcm = self.mic_rs.run(&samples, rate, PIPELINE_RATE);
                if pcm.is_empty() {
                    Input::Nothing
                } else {
                    Input::Ingest(Ingest::Audio(pcm))
                }
            }
            Some(()) = self.talk.recv() => {
                self.gate.talking = !self.gate.talking;
                println!("{}", if self.gate.talking { "[listening…]" } else { "[thinking…]" });
                if self.gate.talking {
                    Input::Nothing
                } else {
                    Input::Ingest(Ingest::EndOfInput)
                }
            }
            _ = self.poll.tick() => {
                self.on_poll();
                Input::Nothing
            }
        }
    }

    async fn audio(&mut self, turn: TurnId, samples: Vec<f32>, rate: u32) -> Result<(), Signalled> {
        let out_rate = self.playback.rate.load(Ordering::Relaxed) as u32;
        let audio = self.spk_rs.run(&samples, rate, out_rate);
        if turn.0 != self.last_audio_turn {
            // The reply's first audio: latency is known once the speaker plays it.
            self.last_audio_turn = turn.0;
            self.pending.push(Pending {
                turn: turn.0,
                at_sample: self.playback.played.load(Ordering::Relaxed)
                    + self.playback.queued() as u64,
                handed_over: Instant::now(),
            });
        }
        if self.playback.push(&audio) > 0 {
            // The speaker's queue is full (a stalled device): that audio is lost, counted.
            Metrics::incr(&self.metrics.audio_chunks_dropped);
        }
        self.last_activity = Instant::now();
        Ok(())
    }

    async fn reply_done(&mut self, _turn: TurnId, _cleared: bool) -> Result<(), Signalled> {
        Ok(())
    }

    async fn clear(&mut self, _turn: TurnId) -> Result<(), Signalled> {
        self.playback.clear();
        Ok(())
    }

    async fn event(&mut self, ev: PipelineEvent) -> Result<(), Signalled> {
        match ev {
            PipelineEvent::SpeechStarted => self.last_activity = Instant::now(),
            PipelineEvent::Transcript {
                text,
                language,
                is_final: true,
                ..
            } => println!("you ({language}): {text}"),
            PipelineEvent::ReplyText { text, .. } => println!("vaak: {text}"),
            PipelineEvent::TurnCompleted { turn, timings, .. } => {
                let device = self.device_delay_ms.remove(&turn.0);
                if let (Some(to_audio), Some(device)) = (timings.end_to_first_audio, device) {
                    let total = to_audio.as_millis() as u64 + device;
                    info!(
                        turn = turn.0,
                        end_of_speech_to_speaker_ms = total,
                        device_ms = device,
                        "turn timing"
                    );
                    println!(
                        "[turn {}: {total} ms from the end of speech to the speaker]",
                        turn.0
                    );
                }
                self.last_activity = Instant::now();
            }
            PipelineEvent::TurnFailed { message, .. } => {
                println!("[could not answer: {message}]");
            }
            _ => {}
        }
        Ok(())
    }
}

impl Room {
    /// The kiosk's room: `devices` opened, `talk` toggled by Enter (push-to-talk).
    pub(super) fn new(
        config: &Config,
        backends: Arc<Backends>,
        metrics: Arc<Metrics>,
        tracker: TaskTracker,
        devices: Devices,
        talk: mpsc::Receiver<()>,
    ) -> Self {
        let cfg = &config.kiosk;
        let mut poll = tokio::time::interval(PLAYED_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Self {
            backends,
            metrics,
            tracker,
            playback: Arc::clone(&devices.playback),
            devices,
            talk,
            signals: signals(),
            gate: MicGate::new(cfg.duplex, cfg.wake),
            mic_rs: Converter::new(),
            spk_rs: Converter::new(),
            pending: Vec::new(),
            device_delay_ms: Default::default(),
            last_audio_turn: 0,
            last_activity: Instant::now(),
            greeted: false,
            greetings: greetings(config),
            idle: Duration::from_secs(cfg.greeting_idle_s),
            poll,
        }
    }

    /// The devices, to close once the conversation ended.
    pub(super) fn into_devices(self) -> Devices {
        self.devices
    }

    fn on_device(&mut self, ev: DeviceEvent) {
        match ev {
            DeviceEvent::Ready {
                input_rate,
                output_rate,
            } => {
                info!(input_rate, output_rate, "audio devices open");
                println!("[listening: microphone {input_rate} Hz, speaker {output_rate} Hz]");
                if !self.greeted {
                    self.greeted = true;
                    self.greet();
                }
            }
            DeviceEvent::Failed(why) => {
                warn!(error = %why, "audio device unavailable; retrying");
                println!("[audio device problem: {why} — retrying]");
            }
        }
    }

    /// Notes when each reply's first sample reached the speaker; greets a quiet room.
    fn on_poll(&mut self) {
        let played = self.playback.played.load(Ordering::Relaxed);
        let delays = &mut self.device_delay_ms;
        self.pending.retain(|p| {
            if played > p.at_sample {
                delays.insert(p.turn, p.handed_over.elapsed().as_millis() as u64);
                false
            } else {
                true
            }
        });
        let quiet = self.last_activity.elapsed() >= self.idle && self.playback.queued() == 0;
        if self.greeted && self.idle > Duration::ZERO && quiet {
            self.greet();
        }
    }

    fn greet(&mut self) {
        self.tracker.spawn(speak_greetings(
            Arc::clone(&self.backends),
            self.greetings.clone(),
            Arc::clone(&self.playback),
        ));
        self.last_activity = Instant::now();
    }
}

/// Speaks each greeting (with its caption) through the speaker; a task of its own, so that the
/// kiosk loop keeps taking the microphone meanwhile.
async fn speak_greetings(
    backends: Arc<Backends>,
    greetings: Vec<(String, String)>,
    playback: Arc<Playback>,
) {
    let mut spk_rs = Converter::new();
    for (lang, text) in &greetings {
        let engine = match backends.tts.for_language(lang) {
            Ok(e) => e,
            Err(e) => {
                warn!(language = %lang, error = %e, "no voice for the greeting");
                continue;
            }
        };
        let (spoken, speed) = (
            crate::text::speech::normalize_for_speech(text, lang),
            backends.config.tts.default_speed,
        );
        let synth = tokio::task::spawn_blocking(move || {
            engine
                .synthesize(&spoken, speed)
                .map(|s| (s, engine.sample_rate()))
        })
        .await;
        match synth {
            Ok(Ok((samples, rate))) => {
                let out_rate = playback.rate.load(Ordering::Relaxed) as u32;
                // The caption goes with the audio.
                println!("vaak: {text}");
                playback.push(&spk_rs.run(&samples, rate, out_rate));
            }
            Ok(Err(e)) => warn!(language = %lang, error = %e, "greeting synthesis failed"),
            Err(e) => warn!(error = %e, "greeting task failed"),
        }
    }
}

type Signals = Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>;

fn signals() -> Signals {
    use tokio::signal::unix::{signal, SignalKind};
    Some((
        signal(SignalKind::terminate()).ok()?,
        signal(SignalKind::interrupt()).ok()?,
    ))
}

async fn next_signal(s: &mut Signals) {
    match s {
        Some((term, int)) => {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM"),
                _ = int.recv() => info!("SIGINT"),
            }
        }
        None => std::future::pending().await,
    }
}
