//! The kiosk's microphone and speaker through `cpal` (ALSA on Linux, which reaches PulseAudio or
//! PipeWire through their ALSA plugins). cpal streams are not `Send`, so one thread owns them:
//! it opens both devices, reopens them after an error (an unplugged microphone) every
//! `retry` until they are back, and stops when told. The capture callback never blocks: it
//! hands mono chunks to a bounded channel and counts what it has to drop; the playback callback
//! takes samples from a bounded queue and plays silence when it is empty.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use tokio::sync::mpsc;

/// Capture chunks in flight before the callback drops (each callback's worth, ~10–40 ms):
/// about 2 s of audio.
pub const CAPTURE_EDGE: usize = 100;
/// The most reply audio queued for the speaker, in seconds (the pipeline paces its output in
/// real time, so this is only reached by a greeting).
pub const PLAYBACK_QUEUE_S: usize = 30;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("no {0} audio device (is a microphone/speaker connected, and PulseAudio running?)")]
    NoDevice(&'static str),
    #[error("{kind} device `{name}` not found; available: {available}")]
    NotFound {
        kind: &'static str,
        name: String,
        available: String,
    },
    #[error("{kind} device: {detail}")]
    Stream { kind: &'static str, detail: String },
}

/// Audio captured from the microphone: mono samples at `rate`.
#[derive(Debug)]
pub struct Captured {
    pub samples: Vec<f32>,
    pub rate: u32,
}

/// What the device thread reports.
#[derive(Debug)]
pub enum DeviceEvent {
    /// Both devices are open (again): capture at `input_rate`, play at `output_rate`.
    Ready { input_rate: u32, output_rate: u32 },
    /// A device failed or could not be opened; it is retried.
    Failed(String),
}

/// Reply audio waiting for the speaker, and what has been played.
#[derive(Debug, Default)]
pub struct Playback {
    queue: Mutex<VecDeque<f32>>,
    /// Samples the speaker has taken (its clock).
    pub played: AtomicU64,
    /// The device's rate (0 until it is open).
    pub rate: AtomicU64,
    /// RMS of the last buffer played (f32 bits): the echo reference.
    level: AtomicU32,
}

impl Playback {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<f32>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues samples at the device rate; returns how many did not fit (dropped).
    pub fn push(&self, samples: &[f32]) -> usize {
        let cap = PLAYBACK_QUEUE_S * self.rate.load(Ordering::Relaxed).max(8_000) as usize;
        let mut q = self.lock();
        let room = cap.saturating_sub(q.len());
        q.extend(samples.iter().take(room));
        samples.len().saturating_sub(room)
    }

    /// Drops everything queued (barge-in).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Samples still to play.
    pub fn queued(&self) -> usize {
        self.lock().len()
    }

    /// How loud the speaker is playing right now (RMS of its last buffer).
    pub fn level(&self) -> f32 {
        f32::from_bits(self.level.load(Ordering::Relaxed))
    }

    /// Fills an interleaved output buffer: each queued sample on every channel, then silence.
    fn fill(&self, out: &mut [f32], channels: usize) {
        let mut q = self.lock();
        let (mut taken, mut energy) = (0u64, 0.0f32);
        for frame in out.chunks_mut(channels.max(1)) {
            let s = match q.pop_front() {
                Some(s) => {
                    taken += 1;
                    s
                }
                None => 0.0,
            };
            energy += s * s;
            frame.fill(s);
        }
        drop(q);
        self.played.fetch_add(taken, Ordering::Relaxed);
        let frames = (out.len() / channels.max(1)).max(1) as f32;
        self.level
            .store((energy / frames).sqrt().to_bits(), Ordering::Relaxed);
    }
}

/// The device thread's handles.
pub struct Devices {
    pub captured: mpsc::Receiver<Captured>,
    pub events: mpsc::Receiver<DeviceEvent>,
    pub playback: Arc<Playback>,
    /// Capture chunks the callback had to drop because the kiosk loop was behind.
    pub dropped: Arc<AtomicU64>,
    /// Under- and overruns the devices recovered from.
    pub glitches: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Devices {
    /// Starts the device thread for the named devices ("" = default).
    pub fn start(input: &str, output: &str, retry: Duration) -> Self {
        let (cap_tx, captured) = mpsc::channel(CAPTURE_EDGE);
        let (ev_tx, events) = mpsc::channel(16);
        let playback = Arc::new(Playback::default());
        let dropped = Arc::new(AtomicU64::new(0));
        let glitches = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let owner = Owner {
            input: input.to_string(),
            output: output.to_string(),
            retry,
            captured: cap_tx,
            events: ev_tx,
            playback: Arc::clone(&playback),
            dropped: Arc::clone(&dropped),
            glitches: Arc::clone(&glitches),
            heartbeat: Arc::new(AtomicU64::new(0)),
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("kiosk-audio".into())
            .spawn(move || owner.run())
            .ok();
        Self {
            captured,
            events,
            playback,
            dropped,
            glitches,
            stop,
            thread,
        }
    }

    /// Stops the device thread and waits for it (it checks every 50 ms).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Names of the capture and playback devices, for `vaak kiosk --list-devices`.
pub fn list() -> (Vec<String>, Vec<String>) {
    let host = cpal::default_host();
    let inputs = host
        .input_devices()
        .map(|d| d.map(|d| d.to_string()).collect())
        .unwrap_or_default();
    let outputs = host
        .output_devices()
        .map(|d| d.map(|d| d.to_string()).collect())
        .unwrap_or_default();
    (inputs, outputs)
}

/// Owns the cpal streams on the device thread.
struct Owner {
    input: String,
    output: String,
    retry: Duration,
    captured: mpsc::Sender<Captured>,
    events: mpsc::Sender<DeviceEvent>,
    playback: Arc<Playback>,
    dropped: Arc<AtomicU64>,
    glitches: Arc<AtomicU64>,
    /// Capture callbacks so far: a microphone that stops calling back has stalled.
    heartbeat: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

/// A microphone that delivers nothing for this long is treated as lost and reopened.
pub const CAPTURE_STALL: Duration = Duration::from_secs(3);

/// How often the device thread looks at its stop flag and the streams' health.
const POLL: Duration = Duration::from_millis(50);

impl Owner {
    fn run(self) {
        while !self.stop.load(Ordering::Relaxed) {
            let failed = Arc::new(AtomicBool::new(false));
            match self.open(&failed) {
                Ok((input_stream, output_stream, input_rate, output_rate)) => {
                    let _ = self.events.try_send(DeviceEvent::Ready {
                        input_rate,
                        output_rate,
                    });
                    let (mut beats, mut quiet) =
                        (self.heartbeat.load(Ordering::Relaxed), Duration::ZERO);
                    while !self.stop.load(Ordering::Relaxed) && !failed.load(Ordering::Relaxed) {
                        std::thread::sleep(POLL);
                        let now = self.heartbeat.load(Ordering::Relaxed);
                        quiet = if now == beats {
                            quiet + POLL
                        } else {
                            Duration::ZERO
                        };
                        beats = now;
                        if quiet >= CAPTURE_STALL {
                            tracing::warn!("the microphone stopped delivering audio");
                            break;
                        }
                    }
                    drop((input_stream, output_stream));
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let _ = self.events.try_send(DeviceEvent::Failed(
                        "an audio device stopped working; reopening".into(),
                    ));
                }
                Err(e) => {
                    let _ = self.events.try_send(DeviceEvent::Failed(e.to_string()));
                }
            }
            let mut waited = Duration::ZERO;
            while waited < self.retry && !self.stop.load(Ordering::Relaxed) {
                std::thread::sleep(POLL);
                waited += POLL;
            }
        }
    }

    fn open(
        &self,
        failed: &Arc<AtomicBool>,
    ) -> Result<(cpal::Stream, cpal::Stream, u32, u32), DeviceError> {
        let host = cpal::default_host();
        let input = find(&host, &self.input, true)?;
        let output = find(&host, &self.output, false)?;
        let stream_err = |kind: &'static str| {
            move |e: cpal::Error| DeviceError::Stream {
                kind,
                detail: e.to_string(),
            }
        };

        let in_cfg = pick_config(&input, true).map_err(stream_err("input"))?;
        let in_rate = in_cfg.sample_rate();
        let in_channels = usize::from(in_cfg.channels()).max(1);
        let (tx, dropped) = (self.captured.clone(), Arc::clone(&self.dropped));
        let on_error = {
            let (failed, glitches) = (Arc::clone(failed), Arc::clone(&self.glitches));
            move |e: cpal::Error| {
                use cpal::ErrorKind::{
                    DeviceNotAvailable, HostUnavailable, PermissionDenied, StreamInvalidated,
                };
                match e.kind() {
                    // The device or the sound server is gone: reopen (and retry until back).
                    DeviceNotAvailable | HostUnavailable | StreamInvalidated | PermissionDenied => {
                        tracing::warn!(error = %e, "audio device lost");
                        failed.store(true, Ordering::Relaxed);
                    }
                    // Under/overruns and transient backend errors (ALSA's pulse plugin reports
                    // EIO on a late buffer): the stream goes on; a stream that really stopped
                    // is caught by the stall watchdog.
                    _ => {
                        glitches.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(error = %e, "audio device glitch");
                    }
                }
            }
        };
        let heartbeat = Arc::clone(&self.heartbeat);
        let deliver = move |mono: Vec<f32>| {
            heartbeat.fetch_add(1, Ordering::Relaxed);
            // Never block the audio thread: a full channel drops the chunk and counts it.
            if tx
                .try_send(Captured {
                    samples: mono,
                    rate: in_rate,
                })
                .is_err()
            {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
        };
        let input_stream = match in_cfg.sample_format() {
            cpal::SampleFormat::F32 => input.build_input_stream(
                stream_config(&in_cfg),
                move |data: &[f32], _: &_| deliver(to_mono(data, in_channels, |s| s)),
                on_error.clone(),
                None,
            ),
            cpal::SampleFormat::I16 => input.build_input_stream(
                stream_config(&in_cfg),
                move |data: &[i16], _: &_| {
                    deliver(to_mono(data, in_channels, |s| f32::from(s) / 32768.0))
                },
                on_error.clone(),
                None,
            ),
            other => {
                return Err(DeviceError::Stream {
                    kind: "input",
                    detail: format!("unsupported sample format {other:?}"),
                })
            }
        }
        .map_err(stream_err("input"))?;

        let out_cfg = pick_config(&output, false).map_err(stream_err("output"))?;
        let out_rate = out_cfg.sample_rate();
        let out_channels = usize::from(out_cfg.channels()).max(1);
        self.playback
            .rate
            .store(u64::from(out_rate), Ordering::Relaxed);
        let playback = Arc::clone(&self.playback);
        let output_stream = match out_cfg.sample_format() {
            cpal::SampleFormat::F32 => output.build_output_stream(
                stream_config(&out_cfg),
                move |out: &mut [f32], _: &_| playback.fill(out, out_channels),
                on_error,
                None,
            ),
            cpal::SampleFormat::I16 => {
                let mut scratch: Vec<f32> = Vec::new();
                output.build_output_stream(
                    stream_config(&out_cfg),
                    move |out: &mut [i16], _: &_| {
                        scratch.resize(out.len(), 0.0);
                        playback.fill(&mut scratch, out_channels);
                        for (o, s) in out.iter_mut().zip(&scratch) {
                            *o = (s.clamp(-1.0, 1.0) * 32767.0) as i16;
                        }
                    },
                    on_error,
                    None,
                )
            }
            other => {
                return Err(DeviceError::Stream {
                    kind: "output",
                    detail: format!("unsupported sample format {other:?}"),
                })
            }
        }
        .map_err(stream_err("output"))?;
        input_stream.play().map_err(stream_err("input"))?;
        output_stream.play().map_err(stream_err("output"))?;
        Ok((input_stream, output_stream, in_rate, out_rate))
    }
}

/// The device rate asked for: the pipeline's, so that the sound server (optimised C, once)
/// rather than vaak resamples, and a 16 kHz stream moves a third of a 48 kHz one (idle CPU went
/// from 31 % to about 8 % of a core).
pub const PREFERRED_RATE: u32 = crate::audio::PIPELINE_RATE;
/// A mono (or the fewest channels) f32/i16 configuration at [`PREFERRED_RATE`] if the device
/// has one, else its default.
fn pick_config(
    device: &cpal::Device,
    input: bool,
) -> Result<cpal::SupportedStreamConfig, cpal::Error> {
    let ranges: Vec<cpal::SupportedStreamConfigRange> = if input {
        device.supported_input_configs()?.collect()
    } else {
        device.supported_output_configs()?.collect()
    };
    let mut candidates: Vec<cpal::SupportedStreamConfigRange> = ranges
        .into_iter()
        .filter(|r| {
            matches!(
                r.sample_format(),
                cpal::SampleFormat::F32 | cpal::SampleFormat::I16
            )
        })
        .collect();
    candidates.sort_by_key(|r| (r.channels(), r.sample_format() != cpal::SampleFormat::F32));
    if let Some(c) = candidates
        .into_iter()
        .find_map(|r| r.try_with_sample_rate(PREFERRED_RATE))
    {
        return Ok(c);
    }
    if input {
        device.default_input_config()
    } else {
        device.default_output_config()
    }
}

/// The stream configuration, with the device's own buffer size: asking ALSA's pulse plugin for
/// fixed 20 ms periods made its threads spin (measured: ~50 % of a core each while idle, against
/// ~1 % with its default).
fn stream_config(c: &cpal::SupportedStreamConfig) -> cpal::StreamConfig {
    c.config()
}

/// The named (or default) device of a kind.
fn find(host: &cpal::Host, name: &str, input: bool) -> Result<cpal::Device, DeviceError> {
    let kind = if input { "input" } else { "output" };
    if name.is_empty() {
        let dev = if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        };
        return dev.ok_or(DeviceError::NoDevice(kind));
    }
    let devices = if input {
        host.input_devices()
    } else {
        host.output_devices()
    };
    let devices: Vec<cpal::Device> = devices.map(|d| d.collect()).unwrap_or_default();
    let available: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
    devices
        .into_iter()
        .find(|d| d.to_string() == name)
        .ok_or_else(|| DeviceError::NotFound {
            kind,
            name: name.to_string(),
            available: available.join(", "),
        })
}

/// Interleaved frames to mono (the mean of the channels).
fn to_mono<T: Copy>(data: &[T], channels: usize, conv: impl Fn(T) -> f32) -> Vec<f32> {
    data.chunks(channels)
        .map(|f| f.iter().map(|&s| conv(s)).sum::<f32>() / f.len() as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_mix_and_playback_queue() {
        assert_eq!(to_mono(&[1.0f32, 0.0, 0.5, 0.5], 2, |s| s), vec![0.5, 0.5]);
        let p = Playback::default();
        p.rate.store(8_000, Ordering::Relaxed);
        assert_eq!(p.push(&[0.1, 0.2, 0.3]), 0);
        let mut out = [9.0f32; 8];
        p.fill(&mut out, 2);
        assert_eq!(out, [0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.0, 0.0]);
        assert_eq!(p.played.load(Ordering::Relaxed), 3);
        let too_much = vec![0.0; PLAYBACK_QUEUE_S * 8_000 + 5];
        assert_eq!(p.push(&too_much), 5, "the overflow is dropped and reported");
        p.clear();
        assert_eq!(p.queued(), 0);
    }
}
