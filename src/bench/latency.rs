//! `vaak bench latency`: voice-to-voice latency as a user feels it, measured at a gRPC client.
//! Each session streams eval clips in real time (20 ms chunks, then silence like a live
//! microphone) and times **the true end of the user's speech → the first reply audio byte**;
//! the end of speech is found in the clip itself (last frame above an energy floor), not taken
//! from the daemon. Sessions run concurrently (1, 2, 4 …) and the report gives p50/p95/p99,
//! the daemon's per-stage breakdown, and the cut-in rate (reply audio arriving while the user
//! is still speaking).
//!
//! `--transport audiosocket` plays the same clips as a phone line: resampled to 8 kHz, sent as
//! Asterisk AudioSocket frames, the latency taken at the first reply audio frame on the wire.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use super::Clip;
use crate::audio::resample::resample_all;
use crate::audio::wav::read_mono;
use crate::audio::{pcm, PIPELINE_RATE};
use crate::metrics::{summarize, Summary};
use crate::proto::{self, client_message::Msg, server_event::Event, vaak_client::VaakClient};

/// Chunk length the client streams.
pub const CHUNK_MS: u64 = 20;
/// Longest wait for a reply after the end of speech.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// A frame is speech if its RMS is above this share of the clip's loud (p95) frame level.
const SPEECH_FLOOR: f32 = 0.12;

#[derive(Debug, thiserror::Error)]
pub enum LatencyError {
    #[error("cannot read {path}: {detail}")]
    Clip { path: PathBuf, detail: String },
    #[error("cannot start the daemon: {0}")]
    Daemon(String),
    #[error("gRPC: {0}")]
    Grpc(String),
    /// The daemon refused the session at admission: the status code and its retry hint.
    #[error("refused ({code}): {message}")]
    Refused {
        code: String,
        message: String,
        retry_after_ms: Option<u64>,
    },
    #[error("AudioSocket: {0}")]
    AudioSocket(String),
}

/// How the benchmark's sessions reach the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `vaak.v1.Vaak/Converse`, PCM16 at 16 kHz.
    Grpc,
    /// Asterisk AudioSocket, slin at 8 kHz: a phone call.
    AudioSocket,
}

impl Transport {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "grpc" => Some(Transport::Grpc),
            "audiosocket" => Some(Transport::AudioSocket),
            _ => None,
        }
    }

    fn rate(self) -> u32 {
        match self {
            Transport::Grpc => PIPELINE_RATE,
            Transport::AudioSocket => crate::transport::telephony::audiosocket::RATE,
        }
    }
}

/// AudioSocket: a reply is over once no audio frame came for this long.
const REPLY_GAP: Duration = Duration::from_secs(3);

/// One clip prepared for streaming.
struct Prepared {
    name: String,
    language: String,
    pcm16: Vec<u8>,
    /// Offset of the end of speech in the clip.
    speech_end: Duration,
    /// Offset of the start of speech in the clip.
    speech_start: Duration,
}

/// One measured turn.
#[derive(Debug, Clone, Default)]
pub struct TurnSample {
    pub clip: String,
    pub language: String,
    pub latency_ms: Option<f64>,
    pub cut_in: bool,
    pub asr_ms: f32,
    pub llm_first_token_ms: f32,
    pub tts_first_audio_ms: f32,
    pub first_clause_ms: f32,
    pub server_e2e_ms: f32,
    /// The turn's LLM prompt and TTS clauses queued for the CPU scheduler, in all.
    pub cpu_wait_ms: f32,
    /// Start of speech → the first partial transcript (gRPC only).
    pub first_partial_ms: Option<f64>,
    /// The longest wait for a new partial while the user was speaking (gRPC only).
    pub partial_gap_ms: Option<f64>,
    /// The longest silence inside the reply, as a listener playing it on arrival hears it:
    /// audio that came after what had come before had finished playing (gRPC only).
    pub reply_stall_ms: Option<f64>,
    pub error: Option<String>,
}

impl TurnSample {
    /// A sample for `clip`, nothing measured yet.
    fn of(clip: &Prepared) -> Self {
        Self {
            clip: clip.name.clone(),
            language: clip.language.clone(),
            ..Self::default()
        }
    }
}

pub struct LatencyReport {
    pub sessions: usize,
    pub transport: Transport,
    pub samples: Vec<TurnSample>,
}

impl LatencyReport {
    pub fn e2e(&self) -> Summary {
        let v: Vec<f64> = self.samples.iter().filter_map(|s| s.latency_ms).collect();
        summarize(&v, v.len() as u64)
    }

    fn stage(&self, f: impl Fn(&TurnSample) -> f32) -> Summary {
        let v: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.latency_ms.is_some())
            .map(|s| f64::from(f(s)))
            .collect();
        summarize(&v, v.len() as u64)
    }

    /// A partial-transcript figure over the turns that had one.
    fn partials(&self, f: impl Fn(&TurnSample) -> Option<f64>) -> Summary {
        let v: Vec<f64> = self.samples.iter().filter_map(f).collect();
        summarize(&v, v.len() as u64)
    }

    pub fn render(&self) -> String {
        let e = self.e2e();
        let ok = self
            .samples
            .iter()
            .filter(|s| s.latency_ms.is_some())
            .count();
        let cut = self.samples.iter().filter(|s| s.cut_in).count();
        let failed: Vec<&TurnSample> = self.samples.iter().filter(|s| s.error.is_some()).collect();
        let row = |name: &str, s: Summary| {
            format!(
                "  {name:<34} {:>7.0} {:>7.0} {:>7.0}\n",
                s.p50_ms, s.p95_ms, s.p99_ms
            )
        };
        let mut out = format!(
            "sessions={}  turns={}  answered={}  cut-in={:.1}%  failed={}\n",
            self.sessions,
            self.samples.len(),
            ok,
            100.0 * cut as f64 / self.samples.len().max(1) as f64,
            failed.len()
        );
        out += &format!("  {:<34} {:>7} {:>7} {:>7}\n", "(ms)", "p50", "p95", "p99");
        out += &row("end of speech → first reply audio", e);
        if self.transport == Transport::AudioSocket {
            out += "  (AudioSocket carries no per-stage timings: see --transport grpc)\n";
        } else {
            out += &row("  daemon: VAD end → transcript", self.stage(|s| s.asr_ms));
            out += &row(
                "  daemon: lang → first LLM token",
                self.stage(|s| s.llm_first_token_ms),
            );
            out += &row(
                "  daemon: VAD end → first clause",
                self.stage(|s| s.first_clause_ms),
            );
            out += &row(
                "  daemon: clause → its audio (TTS)",
                self.stage(|s| s.tts_first_audio_ms),
            );
            out += &row(
                "  daemon: VAD end → first audio",
                self.stage(|s| s.server_e2e_ms),
            );
            out += &row(
                "  daemon: turn's wait for the CPU",
                self.stage(|s| s.cpu_wait_ms),
            );
            out += &row(
                "speech start → first partial",
                self.partials(|s| s.first_partial_ms),
            );
            out += &row(
                "longest wait for a partial (speaking)",
                self.partials(|s| s.partial_gap_ms),
            );
            out += &row(
                "longest silence inside a reply",
                self.partials(|s| s.reply_stall_ms),
            );
        }
        for f in failed.iter().take(5) {
            out += &format!(
                "  failed: {} ({}): {}\n",
                f.clip,
                f.language,
                f.error.as_deref().unwrap_or_default()
            );
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        let s = |x: Summary| serde_json::json!({"p50_ms": x.p50_ms, "p95_ms": x.p95_ms, "p99_ms": x.p99_ms, "count": x.count});
        serde_json::json!({
            "sessions": self.sessions,
            "transport": format!("{:?}", self.transport).to_lowercase(),
            "turns": self.samples.len(),
            "cut_in": self.samples.iter().filter(|t| t.cut_in).count(),
            "failed": self.samples.iter().filter(|t| t.error.is_some()).count(),
            "end_of_speech_to_first_audio": s(self.e2e()),
            "asr": s(self.stage(|t| t.asr_ms)),
            "llm_first_token": s(self.stage(|t| t.llm_first_token_ms)),
            "first_clause": s(self.stage(|t| t.first_clause_ms)),
            "tts_first_audio": s(self.stage(|t| t.tts_first_audio_ms)),
            "daemon_end_to_first_audio": s(self.stage(|t| t.server_e2e_ms)),
            "cpu_wait": s(self.stage(|t| t.cpu_wait_ms)),
            "first_partial": s(self.partials(|t| t.first_partial_ms)),
            "partial_gap": s(self.partials(|t| t.partial_gap_ms)),
            "reply_stall": s(self.partials(|t| t.reply_stall_ms)),
        })
    }
}

fn prepare(clip: &Clip, out_rate: u32) -> Result<Prepared, LatencyError> {
    let err = |detail: String| LatencyError::Clip {
        path: clip.path.clone(),
        detail,
    };
    let (mono, rate) = read_mono(&clip.path).map_err(|e| err(e.to_string()))?;
    let audio = resample_all(&mono, rate, PIPELINE_RATE).map_err(|e| err(e.to_string()))?;
    let frame = (PIPELINE_RATE as u64 * CHUNK_MS / 1000) as usize;
    let levels: Vec<f32> = audio.chunks(frame).map(crate::audio::rms).collect();
    let mut sorted = levels.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let loud = sorted
        .get(sorted.len().saturating_sub(1) * 95 / 100)
        .copied()
        .unwrap_or(0.0);
    let last = levels
        .iter()
        .rposition(|&l| l >= loud * SPEECH_FLOOR)
        .ok_or_else(|| err("no speech found in the clip".into()))?;
    let speech_end = Duration::from_millis((last as u64 + 1) * CHUNK_MS);
    let first = levels
        .iter()
        .position(|&l| l >= loud * SPEECH_FLOOR)
        .unwrap_or(last);
    let speech_start = Duration::from_millis(first as u64 * CHUNK_MS);
    let audio = if out_rate == PIPELINE_RATE {
        audio
    } else {
        resample_all(&audio, PIPELINE_RATE, out_rate).map_err(|e| err(e.to_string()))?
    };
    let pcm16 = audio
        .iter()
        .flat_map(|&s| pcm::f32_to_i16(s).to_le_bytes())
        .collect();
    Ok(Prepared {
        name: clip
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        language: clip.language.clone(),
        pcm16,
        speech_end,
        speech_start,
    })
}

/// Plays `clips` one after another in one session (a conversation), in real time.
async fn run_session(
    addr: String,
    api_key: Option<String>,
    clips: Vec<Prepared>,
) -> Result<Vec<TurnSample>, LatencyError> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| LatencyError::Grpc(e.to_string()))?
        .connect()
        .await
        .map_err(|e| LatencyError::Grpc(format!("connect {addr}: {e}")))?;
    let mut client = VaakClient::new(channel);
    let (tx, rx) = mpsc::channel::<proto::ClientMessage>(64);
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    if let Some(k) = &api_key {
        if let Ok(v) = format!("Bearer {k}").parse() {
            request.metadata_mut().insert("authorization", v);
        }
    }
    let config = proto::ClientMessage {
        msg: Some(Msg::Config(proto::SessionConfig::default())),
    };
    tx.send(config)
        .await
        .map_err(|_| LatencyError::Grpc("stream closed".into()))?;
    let mut events = client
        .converse(request)
        .await
        .map_err(|status| match status.code() {
            tonic::Code::ResourceExhausted | tonic::Code::Unavailable => LatencyError::Refused {
                code: format!("{:?}", status.code()),
                message: status.message().to_string(),
                retry_after_ms: status
                    .metadata()
                    .get("retry-after-ms")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok()),
            },
            _ => LatencyError::Grpc(status.to_string()),
        })?
        .into_inner();
    let chunk_bytes = (PIPELINE_RATE as u64 * CHUNK_MS / 1000 * 2) as usize;
    let silence = vec![0u8; chunk_bytes];
    let mut out = Vec::new();
    for clip in clips {
        let mut sample = TurnSample::of(&clip);
        let start = Instant::now();
        let speech_end_at = start + clip.speech_end;
        let mut sent = 0usize;
        let mut tick = tokio::time::interval(Duration::from_millis(CHUNK_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut first_audio: Option<Instant> = None;
        let mut answered_turn: Option<u64> = None;
        let deadline = speech_end_at + REPLY_TIMEOUT;
        let speech_start_at = start + clip.speech_start;
        let mut last_partial: Option<Instant> = None;
        // When the reply audio received so far finishes playing.
        let mut played_until: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                ev = events.message() => {
                    let ev = match ev {
                        Ok(Some(ev)) => ev,
                        Ok(None) => { sample.error = Some("stream ended".into()); break; }
                        Err(s) => { sample.error = Some(format!("{:?}: {}", s.code(), s.message())); break; }
                    };
                    match ev.event {
                        Some(Event::ReplyAudio(a)) if first_audio.is_none() => {
                            let now = Instant::now();
                            first_audio = Some(now);
                            answered_turn = Some(a.turn);
                            sample.cut_in |= now < speech_end_at;
                            sample.latency_ms = Some(now.saturating_duration_since(speech_end_at).as_secs_f64() * 1000.0);
                            played_until = Some(now + pcm16_duration(&a));
                        }
                        Some(Event::ReplyAudio(a)) if Some(a.turn) == answered_turn => {
                            let now = Instant::now();
                            let until = played_until.unwrap_or(now);
                            let stall = now.saturating_duration_since(until).as_secs_f64() * 1000.0;
                            sample.reply_stall_ms = Some(sample.reply_stall_ms.unwrap_or(0.0).max(stall));
                            played_until = Some(until.max(now) + pcm16_duration(&a));
                        }
                        Some(Event::Transcript(t)) if !t.is_final && Instant::now() < speech_end_at => {
                            let now = Instant::now();
                            let since = last_partial.unwrap_or(speech_start_at);
                            let gap = now.saturating_duration_since(since).as_secs_f64() * 1000.0;
                            if last_partial.is_none() {
                                sample.first_partial_ms = Some(gap);
                            } else {
                                sample.partial_gap_ms = Some(sample.partial_gap_ms.unwrap_or(0.0).max(gap));
                            }
                            last_partial = Some(now);
                        }
                        Some(Event::Interrupted(i)) if Some(i.turn) == answered_turn => {
                            // A reply that cut in on a pause and was cut off by the user going
                            // on: the cut-in stays counted; the answer to the whole utterance
                            // is the one measured.
                            first_audio = None;
                            answered_turn = None;
                            sample.latency_ms = None;
                            played_until = None;
                            sample.reply_stall_ms = None;
                        }
                        Some(Event::TurnCompleted(t)) if Some(t.turn) == answered_turn => {
                            if let Some(tm) = t.timings {
                                sample.asr_ms = tm.asr_ms;
                                sample.llm_first_token_ms = tm.llm_first_token_ms;
                                sample.tts_first_audio_ms = tm.tts_first_audio_ms;
                                sample.first_clause_ms = tm.first_clause_ms;
                                sample.server_e2e_ms = tm.end_to_first_audio_ms;
                                sample.cpu_wait_ms = tm.cpu_wait_ms;
                            }
                            break;
                        }
                        Some(Event::Error(e)) if e.turn != 0 && first_audio.is_none() => {
                            // The turn failed (e.g. nothing recognisable was said): no reply.
                            sample.error = Some(format!("{}: {}", e.code, e.message));
                            break;
                        }
                        _ => {}
                    }
                }
                _ = tick.tick() => {
                    if Instant::now() > deadline {
                        sample.error.get_or_insert_with(|| "no reply within 60 s".into());
                        break;
                    }
                    // The clip, then silence like an open microphone.
                    let chunk = if sent < clip.pcm16.len() {
                        let end = (sent + chunk_bytes).min(clip.pcm16.len());
                        let c = clip.pcm16[sent..end].to_vec();
                        sent = end;
                        c
                    } else {
                        silence.clone()
                    };
                    let msg = proto::ClientMessage { msg: Some(Msg::Audio(chunk)) };
                    if tx.send(msg).await.is_err() {
                        sample.error = Some("request stream closed".into());
                        break;
                    }
                }
            }
        }
        let broken = sample
            .error
            .as_deref()
            .is_some_and(|e| e.contains("stream") || e.starts_with("Unavailable"));
        out.push(sample);
        if broken {
            break;
        }
        // A breath between turns, still streaming silence.
        let pause = Instant::now() + Duration::from_millis(800);
        while Instant::now() < pause {
            tokio::time::sleep(Duration::from_millis(CHUNK_MS)).await;
            let msg = proto::ClientMessage {
                msg: Some(Msg::Audio(silence.clone())),
            };
            if tx.send(msg).await.is_err() {
                break;
            }
        }
    }
    let hang_up = proto::ClientMessage {
        msg: Some(Msg::Control(proto::Control {
            kind: proto::control::Kind::HangUp as i32,
        })),
    };
    let _ = tx.send(hang_up).await;
    Ok(out)
}

/// Plays `clips` as one phone call over AudioSocket: 20 ms slin frames at 8 kHz in real time,
/// silence between clips; a reply's latency is taken at its first audio frame.
async fn run_audiosocket_session(
    addr: String,
    index: u8,
    clips: Vec<Prepared>,
) -> Result<Vec<TurnSample>, LatencyError> {
    use crate::transport::telephony::audiosocket as wire;
    use crate::transport::telephony::frames::Inbound;
    use tokio::io::AsyncWriteExt;
    let io = |e: std::io::Error| LatencyError::AudioSocket(format!("{addr}: {e}"));
    let stream = tokio::net::TcpStream::connect(&addr).await.map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    let (rd, mut wr) = stream.into_split();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut uuid = [0u8; 16];
    uuid[..15].copy_from_slice(&nanos.to_be_bytes()[1..]);
    uuid[15] = index;
    wr.write_all(&wire::encode(wire::KIND_UUID, &uuid))
        .await
        .map_err(io)?;
    // Arrival times of reply audio frames, read with the daemon's own AudioSocket frame reader;
    // it stops at hang-up, an error frame, a bad frame or EOF.
    let (frames_tx, mut frames) = mpsc::channel::<Instant>(1024);
    let mut reply = crate::transport::telephony::reader::Reader::Tcp {
        read: rd,
        buf: bytes::BytesMut::with_capacity(4096),
    };
    let reader = tokio::spawn(async move {
        while let Ok(Some(msg)) = reply.next().await {
            match msg {
                Inbound::Media(_) if frames_tx.send(Instant::now()).await.is_err() => return,
                Inbound::Stop => return,
                _ => {}
            }
        }
    });
    let frame_bytes = wire::FRAME_BYTES;
    let silence = vec![0u8; frame_bytes];
    let mut out = Vec::new();
    for clip in clips {
        let mut sample = TurnSample::of(&clip);
        let start = Instant::now();
        let speech_end_at = start + clip.speech_end;
        let deadline = speech_end_at + REPLY_TIMEOUT;
        let mut tick = tokio::time::interval(Duration::from_millis(wire::FRAME_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sent = 0usize;
        let mut last_frame: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                f = frames.recv() => {
                    let Some(at) = f else {
                        sample.error = Some("the daemon closed the call".into());
                        break;
                    };
                    if sample.latency_ms.is_none() {
                        sample.cut_in = at < speech_end_at;
                        sample.latency_ms =
                            Some(at.saturating_duration_since(speech_end_at).as_secs_f64() * 1000.0);
                    }
                    last_frame = Some(at);
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    if last_frame.is_some_and(|t| now > t + REPLY_GAP) && sent >= clip.pcm16.len() {
                        break;
                    }
                    if now > deadline {
                        if sample.latency_ms.is_none() {
                            sample.error = Some("no reply within 60 s".into());
                        }
                        break;
                    }
                    let chunk = if sent < clip.pcm16.len() {
                        let end = (sent + frame_bytes).min(clip.pcm16.len());
                        let mut c = clip.pcm16[sent..end].to_vec();
                        c.resize(frame_bytes, 0);
                        sent = end;
                        c
                    } else {
                        silence.clone()
                    };
                    if wr.write_all(&wire::encode(wire::KIND_AUDIO, &chunk)).await.is_err() {
                        sample.error = Some("the daemon closed the call".into());
                        break;
                    }
                }
            }
        }
        let broken = sample
            .error
            .as_deref()
            .is_some_and(|e| e.contains("closed"));
        out.push(sample);
        if broken {
            break;
        }
    }
    let _ = wr.write_all(&wire::encode(wire::KIND_HANGUP, &[])).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
    Ok(out)
}

/// One conversation of one question (`clip`) over gRPC: its turn, or why it had none.
pub async fn one_question(
    addr: &str,
    api_key: Option<String>,
    clip: &Clip,
) -> Result<TurnSample, LatencyError> {
    let prepared = prepare(clip, Transport::Grpc.rate())?;
    let mut turns = run_session(addr.to_string(), api_key, vec![prepared]).await?;
    turns
        .pop()
        .ok_or_else(|| LatencyError::Grpc("the session ended with no turn".into()))
}

/// Runs `sessions` concurrent conversations over `clips` (each session takes every
/// `sessions`-th clip, so all clips are used once, and plays them grouped by language).
pub async fn run(
    addr: &str,
    api_key: Option<String>,
    clips: &[Clip],
    sessions: usize,
    transport: Transport,
) -> Result<LatencyReport, LatencyError> {
    let prepared: Vec<Prepared> = clips
        .iter()
        .map(|c| prepare(c, transport.rate()))
        .collect::<Result<_, _>>()?;
    let mut per_session: Vec<Vec<Prepared>> = (0..sessions).map(|_| Vec::new()).collect();
    for (i, p) in prepared.into_iter().enumerate() {
        per_session[i % sessions].push(p);
    }
    // A person keeps to a language within a conversation: each session plays its clips grouped
    // by language (a switch costs the LLM its cached prompt, as it would in real use).
    for list in &mut per_session {
        list.sort_by(|a, b| a.language.cmp(&b.language));
    }
    let mut handles = Vec::new();
    for (i, list) in per_session.into_iter().enumerate() {
        handles.push(match transport {
            Transport::Grpc => tokio::spawn(run_session(addr.to_string(), api_key.clone(), list)),
            Transport::AudioSocket => {
                tokio::spawn(run_audiosocket_session(addr.to_string(), i as u8, list))
            }
        });
    }
    let mut samples = Vec::new();
    for h in handles {
        match h.await {
            Ok(Ok(s)) => samples.extend(s),
            Ok(Err(e)) => samples.push(TurnSample {
                error: Some(e.to_string()),
                ..TurnSample::default()
            }),
            Err(e) => samples.push(TurnSample {
                error: Some(format!("session task: {e}")),
                ..TurnSample::default()
            }),
        }
    }
    Ok(LatencyReport {
        sessions,
        transport,
        samples,
    })
}

/// A daemon started for the benchmark: `vaak serve` on a free port, stopped on drop.
pub struct ChildDaemon {
    child: tokio::process::Child,
    pub addr: String,
    /// Its AudioSocket listener.
    pub audiosocket: Option<String>,
    dir: PathBuf,
}

impl ChildDaemon {
    /// Starts this executable's `serve` with `config` (its listen address replaced by
    /// 127.0.0.1:0) and waits for the ready line.
    pub async fn start(config: &crate::config::Config) -> Result<Self, LatencyError> {
        let err = |e: String| LatencyError::Daemon(e);
        let exe = std::env::current_exe().map_err(|e| err(e.to_string()))?;
        let dir = std::env::temp_dir().join(format!("vaak-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
        let mut cfg = config.clone();
        cfg.server.grpc_listen = "127.0.0.1:0".into();
        cfg.server.http_listen = "127.0.0.1:0".into();
        cfg.telephony.audiosocket_listen = "127.0.0.1:0".into();
        cfg.sessions.in_memory = true;
        let path = dir.join("bench.toml");
        let text = toml::to_string(&cfg).map_err(|e| err(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| err(e.to_string()))?;
        Self::spawn(&exe, &path, dir).await
    }

    async fn spawn(exe: &Path, config: &Path, dir: PathBuf) -> Result<Self, LatencyError> {
        let err = |e: String| LatencyError::Daemon(e);
        let mut child = tokio::process::Command::new(exe)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("VAAK_LOG", "info,whisper_rs=warn,ort=warn,llama-cpp-2=warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| err(format!("{}: {e}", exe.display())))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| err("no stderr pipe".into()))?;
        let mut lines = BufReader::new(stderr).lines();
        let ready = tokio::time::timeout(Duration::from_secs(180), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("vaak ready") {
                    return Some(line);
                }
            }
            None
        })
        .await;
        let field = |line: &str, key: &str| {
            let i = line.find(&format!(" {key}="))?;
            let v = line[i + key.len() + 2..].split_whitespace().next()?;
            Some(v.to_string()).filter(|v| v != "off")
        };
        let (addr, audiosocket) = match ready {
            Ok(Some(line)) => match field(&line, "grpc") {
                Some(a) => (a, field(&line, "audiosocket")),
                None => return Err(err(format!("no grpc= in the ready line: {line}"))),
            },
            _ => return Err(err("the daemon did not report ready within 180 s".into())),
        };
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            addr,
            audiosocket,
            dir,
        })
    }

    /// The daemon's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Peak resident memory so far of the daemon and of its LLM worker (its child), MiB.
    pub fn peak_rss_mib(&self) -> Option<(f64, Option<f64>)> {
        let pid = self.child.id()?;
        let daemon = peak_rss_of(pid)?;
        let worker = child_pids(pid)
            .into_iter()
            .filter_map(peak_rss_of)
            .reduce(f64::max);
        Some((daemon, worker))
    }

    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM: the daemon drains and exits.
            // SAFETY: plain libc call with a pid we own.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `VmHWM` (peak resident set) of process `pid`, MiB (Linux `/proc`).
fn peak_rss_of(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The processes whose parent is `pid` (from `/proc/*/stat`).
fn child_pids(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                return false;
            };
            // The command may hold spaces and parentheses: fields start after the last ')'.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            rest.split_whitespace().nth(1) == Some(&pid.to_string())
        })
        .collect()
}

/// How long a reply chunk plays (PCM16 at its rate; other encodings are not measured).
fn pcm16_duration(a: &proto::ReplyAudio) -> Duration {
    Duration::from_secs_f64(a.audio.len() as f64 / 2.0 / f64::from(a.sample_rate.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_and_children_come_from_proc() {
        let me = std::process::id();
        assert!(peak_rss_of(me).is_some_and(|mib| mib > 1.0));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(child_pids(me).contains(&child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(peak_rss_of(u32::MAX), None);
    }

    #[test]
    fn end_of_speech_is_found_in_the_clip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        // 1 s of tone then 1 s of near-silence at 16 kHz.
        let mut audio: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
        audio.extend((0..16_000).map(|i| (i as f32 * 0.3).sin() * 0.002));
        crate::audio::wav::write_mono_i16(&path, &audio, 16_000).unwrap();
        let clip = Clip {
            path,
            language: "en".into(),
            duration_s: 2.0,
            text: String::new(),
        };
        let p = prepare(&clip, PIPELINE_RATE).unwrap();
        assert!(
            p.speech_end >= Duration::from_millis(980)
                && p.speech_end <= Duration::from_millis(1020),
            "{:?}",
            p.speech_end
        );
        assert_eq!(p.pcm16.len(), 32_000 * 2);
        let narrow = prepare(&clip, 8_000).unwrap();
        assert_eq!(narrow.speech_end, p.speech_end);
        assert!((narrow.pcm16.len() as i64 - 16_000 * 2).abs() <= 64);
    }
}
