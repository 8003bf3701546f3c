//! `vaak converse`: one WAV file through the same session pipeline the daemon runs. The file is
//! streamed in as audio (resampled to the pipeline rate chunk by chunk, never loaded whole), and
//! the spoken replies are streamed out to a WAV file, so memory stays bounded for long inputs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::audio::resample::{StreamResampler, ToRate};
use crate::audio::wav::{WavError, WavInfo, WavSource};
use crate::audio::PIPELINE_RATE;
use crate::backend::Backends;
use crate::flow::messages::StageTimings;
use crate::flow::{Ingest, PipelineEvent, TurnId};
use crate::metrics::Metrics;
use crate::pipeline::INGEST_CHUNK_MS;
use crate::session::service::{AudioSource, OpenRequest, SessionService};

/// Silence between the replies to successive turns in the output file.
const GAP_BETWEEN_REPLIES_MS: u32 = 300;
/// Audio read from the file per ingest message.
const FEED_CHUNK_MS: u32 = 5 * INGEST_CHUNK_MS;

#[derive(Debug, thiserror::Error)]
pub enum ConverseError {
    #[error(transparent)]
    Input(#[from] WavError),
    #[error("no speech was heard in {0}")]
    NoSpeech(PathBuf),
    #[error("{input}: {detail}")]
    Resample { input: PathBuf, detail: String },
    #[error("no turn could be answered: {0}")]
    Failed(String),
    #[error("cannot write {path}: {detail}")]
    Output { path: PathBuf, detail: String },
    #[error("interrupted")]
    Cancelled,
    #[error("cannot open a session: {0}")]
    Session(String),
}

/// The tenant of conversations run on this machine from the command line.
pub const LOCAL_TENANT: &str = "local";

/// What happened in one turn.
#[derive(Debug, Clone)]
pub struct TurnReport {
    pub turn: TurnId,
    pub user_audio_s: f32,
    pub transcript: String,
    pub language: String,
    pub confidence: f32,
    pub spoken_candidates: Vec<(String, f32)>,
    pub reply_text: String,
    pub voice: String,
    pub reply_audio_s: f32,
    pub timings: Option<StageTimings>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ConverseReport {
    pub input: WavInfo,
    pub input_truncated: bool,
    pub turns: Vec<TurnReport>,
    pub reply_sample_rate: u32,
    pub reply_audio_s: f32,
}

pub struct ConverseRequest<'a> {
    pub input: &'a Path,
    pub output: &'a Path,
    pub languages: Vec<String>,
    pub speech_rate: f32,
    /// Silence that ends a question in the file (longer than live turn-taking's default).
    pub min_silence_ms: u32,
}

/// A file holds a whole question, pauses for effect included: only this much silence ends it.
pub const FILE_MIN_SILENCE_MS: u32 = 2_000;

/// Streams `input` through a fresh session and writes the replies to `output`.
pub async fn converse(
    backends: Arc<Backends>,
    req: ConverseRequest<'_>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<ConverseReport, ConverseError> {
    let source = WavSource::open(req.input)?;
    let info = source.info();
    let resampler = StreamResampler::new(info.sample_rate, PIPELINE_RATE).map_err(|e| {
        ConverseError::Resample {
            input: req.input.to_path_buf(),
            detail: e.to_string(),
        }
    })?;

    // The same door as the daemon's sessions (validation, memory, settings), with no store: a
    // file's conversation is not kept.
    let tracker = TaskTracker::new();
    let session_token = shutdown.child_token();
    let svc = SessionService::new(
        backends,
        metrics,
        None,
        tracker.clone(),
        session_token.clone(),
    );
    let slot = svc
        .admit("converse", LOCAL_TENANT)
        .map_err(|e| ConverseError::Session(e.to_string()))?;
    let open = OpenRequest {
        tenant: LOCAL_TENANT.into(),
        languages: req.languages.clone(),
        speech_rate: req.speech_rate,
        source: AudioSource::File {
            min_silence_ms: req.min_silence_ms,
        },
        ..Default::default()
    };
    let mut session = svc
        .open(slot, open)
        .await
        .map_err(|e| ConverseError::Session(e.to_string()))?;

    // The feeder reads the file in chunks and applies backpressure (a file is not realtime);
    // it holds the only sender, so the session ends when the file does.
    let input = std::mem::replace(&mut session.pipeline.input, mpsc::channel(1).0);
    let feed = tracker.spawn(feed_file(source, resampler, input, session_token.clone()));
    tracker.close();

    let mut writer = ReplyWriter::new(req.output);
    let mut turns: Vec<TurnReport> = Vec::new();
    let mut no_speech = false;
    let mut pending_audio_s: f32 = 0.0;
    while let Some(ev) = session.pipeline.events.recv().await {
        match ev {
            PipelineEvent::SpeechStarted => {}
            PipelineEvent::SpeechStopped { turn, audio_s } => turns.push(TurnReport {
                turn,
                user_audio_s: audio_s,
                transcript: String::new(),
                language: String::new(),
                confidence: 0.0,
                spoken_candidates: Vec::new(),
                reply_text: String::new(),
                voice: String::new(),
                reply_audio_s: 0.0,
                timings: None,
                error: None,
            }),
            PipelineEvent::Transcript {
                turn,
                text,
                language,
                confidence,
                spoken,
                ..
            } => {
                if let Some(t) = turns.iter_mut().find(|t| t.turn == turn) {
                    t.transcript = text;
                    t.language = language;
                    t.confidence = confidence;
                    t.spoken_candidates = spoken;
                }
            }
            PipelineEvent::ReplyText { .. } => {}
            PipelineEvent::ReplyAudio {
                samples,
                sample_rate,
                ..
            } => {
                pending_audio_s += samples.len() as f32 / sample_rate.max(1) as f32;
                writer.write(&samples, sample_rate)?;
            }
            PipelineEvent::TurnCompleted {
                turn,
                reply_text,
                voice,
                timings,
                ..
            } => {
                if let Some(t) = turns.iter_mut().find(|t| t.turn == turn) {
                    t.reply_text = reply_text;
                    t.voice = voice;
                    t.timings = Some(timings);
                    t.reply_audio_s = pending_audio_s;
                }
                pending_audio_s = 0.0;
                writer.gap(GAP_BETWEEN_REPLIES_MS)?;
            }
            PipelineEvent::Interrupted { .. }
            | PipelineEvent::LanguageChanged { .. }
            | PipelineEvent::LanguageDecided { .. }
            | PipelineEvent::Backchannel { .. }
            | PipelineEvent::TurnContinued { .. } => {}
            PipelineEvent::TurnFailed {
                turn,
                stage,
                message,
            } => {
                warn!(turn = turn.0, stage, %message, "turn failed");
                if let Some(t) = turns.iter_mut().find(|t| t.turn == turn) {
                    t.error = Some(format!("{stage}: {message}"));
                }
            }
            PipelineEvent::NoSpeech => no_speech = true,
        }
    }
    let truncated = match feed.await {
        Ok(Ok(truncated)) => truncated,
        Ok(Err(e)) => return Err(e),
        Err(e) => {
            return Err(ConverseError::Failed(format!("audio feeder failed: {e}")));
        }
    };
    tracker.wait().await;
    if shutdown.is_cancelled() {
        return Err(ConverseError::Cancelled);
    }
    if no_speech || turns.is_empty() {
        return Err(ConverseError::NoSpeech(req.input.to_path_buf()));
    }
    if !turns.iter().any(|t| t.timings.is_some()) {
        let why: Vec<String> = turns.iter().filter_map(|t| t.error.clone()).collect();
        return Err(ConverseError::Failed(if why.is_empty() {
            "the pipeline produced no reply".into()
        } else {
            why.join("; ")
        }));
    }
    let (reply_sample_rate, reply_audio_s) = writer.finish()?;
    Ok(ConverseReport {
        input: info,
        input_truncated: truncated,
        turns,
        reply_sample_rate,
        reply_audio_s,
    })
}

async fn feed_file(
    mut source: WavSource,
    mut resampler: StreamResampler,
    tx: tokio::sync::mpsc::Sender<Ingest>,
    cancel: CancellationToken,
) -> Result<bool, ConverseError> {
    let frames = (source.info().sample_rate * FEED_CHUNK_MS / 1000) as usize;
    let mut out = Vec::with_capacity(PIPELINE_RATE as usize / 5);
    loop {
        if cancel.is_cancelled() {
            return Ok(source.was_truncated());
        }
        // Reading and resampling a 100 ms chunk takes microseconds: fine on the runtime.
        let chunk = source.read_chunk(frames)?;
        out.clear();
        let done = match chunk {
            Some(c) => {
                resampler
                    .push(&c, &mut out)
                    .map_err(|e| ConverseError::Failed(e.to_string()))?;
                false
            }
            None => {
                resampler
                    .finish(&mut out)
                    .map_err(|e| ConverseError::Failed(e.to_string()))?;
                true
            }
        };
        if !out.is_empty() && tx.send(Ingest::Audio(out.clone())).await.is_err() {
            return Ok(source.was_truncated());
        }
        if done {
            let _ = tx.send(Ingest::EndOfInput).await;
            return Ok(source.was_truncated());
        }
    }
}

/// Writes reply audio as it arrives, at the rate of the first chunk (later chunks at another
/// rate, e.g. a different voice, are resampled).
struct ReplyWriter {
    path: PathBuf,
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
    rate: u32,
    /// Set with the file's rate by the first chunk.
    resampler: Option<ToRate>,
    samples: u64,
}

impl ReplyWriter {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            writer: None,
            rate: 0,
            resampler: None,
            samples: 0,
        }
    }

    fn err(&self, detail: impl ToString) -> ConverseError {
        ConverseError::Output {
            path: self.path.clone(),
            detail: detail.to_string(),
        }
    }

    fn write(&mut self, samples: &[f32], rate: u32) -> Result<(), ConverseError> {
        if self.writer.is_none() {
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let w = hound::WavWriter::create(&self.path, spec).map_err(|e| self.err(e))?;
            self.writer = Some(w);
            self.rate = rate;
        }
        let to = self.rate;
        let data = self
            .resampler
            .get_or_insert_with(|| ToRate::new(to))
            .convert(samples, rate)
            .map_err(|e| self.err(e))?;
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        for &s in &data {
            w.write_sample(crate::audio::pcm::f32_to_i16(s))
                .map_err(|e| ConverseError::Output {
                    path: self.path.clone(),
                    detail: e.to_string(),
                })?;
        }
        self.samples += data.len() as u64;
        Ok(())
    }

    fn gap(&mut self, ms: u32) -> Result<(), ConverseError> {
        if self.writer.is_none() {
            return Ok(());
        }
        let n = (self.rate * ms / 1000) as usize;
        let rate = self.rate;
        self.write(&vec![0.0; n], rate)
    }

    fn finish(mut self) -> Result<(u32, f32), ConverseError> {
        let secs = self.samples as f32 / self.rate.max(1) as f32;
        match self.writer.take() {
            Some(w) => w.finalize().map_err(|e| self.err(e))?,
            None => return Err(self.err("no reply audio was produced")),
        }
        Ok((self.rate, secs))
    }
}

fn ms(d: Option<std::time::Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.0}", d.as_secs_f64() * 1000.0))
}

/// The human-readable summary `vaak converse` prints.
pub fn report_text(r: &ConverseReport, out: &Path) -> String {
    let mut s = format!(
        "input: {} Hz, {} ch, {:.2} s{}\n",
        r.input.sample_rate,
        r.input.channels,
        r.input.duration_s(),
        if r.input_truncated {
            " (truncated file: used what was there)"
        } else {
            ""
        }
    );
    for t in &r.turns {
        s.push_str(&format!(
            "\n── turn {} ({:.2} s of speech)\n",
            t.turn.0, t.user_audio_s
        ));
        let cands: Vec<String> = t
            .spoken_candidates
            .iter()
            .map(|(l, p)| format!("{l} {p:.2}"))
            .collect();
        s.push_str(&format!(
            "language:   {} ({}, confidence {:.2}; spoken: {})\n",
            t.language,
            crate::text::script::language_name(&t.language),
            t.confidence,
            cands.join(", ")
        ));
        s.push_str(&format!("transcript: {}\n", t.transcript));
        s.push_str(&format!("reply:      {}\n", t.reply_text));
        s.push_str(&format!("voice:      {}\n", t.voice));
        if let Some(e) = &t.error {
            s.push_str(&format!("error:      {e}\n"));
        }
        if let Some(tm) = &t.timings {
            s.push_str("stage                               ms\n");
            s.push_str(&format!(
                "  ASR (end of speech → transcript) {:>6}   compute {:.0} ms\n",
                ms(tm.asr),
                tm.asr_compute_s * 1000.0
            ));
            s.push_str(&format!(
                "  language id                      {:>6}\n",
                ms(tm.lang_id)
            ));
            s.push_str(&format!(
                "  LLM first token                  {:>6}\n",
                ms(tm.llm_first_token)
            ));
            s.push_str(&format!(
                "  first clause ready               {:>6}\n",
                ms(tm.first_clause)
            ));
            s.push_str(&format!(
                "  TTS first clause → audio         {:>6}\n",
                ms(tm.tts_first_audio)
            ));
            s.push_str(&format!(
                "  end of speech → first audio      {:>6}\n",
                ms(tm.end_to_first_audio)
            ));
            s.push_str(&format!(
                "  LLM finished                     {:>6}\n",
                ms(tm.llm_total)
            ));
            if let Some(rtf) = tm.tts_rtf {
                s.push_str(&format!("  TTS real-time factor             {rtf:>6.2}\n"));
            }
        }
    }
    s.push_str(&format!(
        "\nreply audio: {} ({:.2} s at {} Hz)\n",
        out.display(),
        r.reply_audio_s,
        r.reply_sample_rate
    ));
    s
}

/// The same as JSON (`--json`).
pub fn report_json(r: &ConverseReport, out: &Path) -> String {
    let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
    let turns: Vec<serde_json::Value> = r
        .turns
        .iter()
        .map(|t| {
            serde_json::json!({
                "turn": t.turn.0,
                "user_audio_s": t.user_audio_s,
                "transcript": t.transcript,
                "language": t.language,
                "confidence": t.confidence,
                "spoken_candidates": t.spoken_candidates,
                "reply_text": t.reply_text,
                "voice": t.voice,
                "reply_audio_s": t.reply_audio_s,
                "error": t.error,
                "timings_s": t.timings.as_ref().map(|tm| serde_json::json!({
                    "asr": secs(tm.asr),
                    "lang_id": secs(tm.lang_id),
                    "llm_first_token": secs(tm.llm_first_token),
                    "first_clause": secs(tm.first_clause),
                    "tts_first_audio": secs(tm.tts_first_audio),
                    "end_to_first_audio": secs(tm.end_to_first_audio),
                    "llm_total": secs(tm.llm_total),
                    "asr_compute": tm.asr_compute_s,
                    "tts_rtf": tm.tts_rtf,
                })),
            })
        })
        .collect();
    serde_json::json!({
        "input": {
            "sample_rate": r.input.sample_rate,
            "channels": r.input.channels,
            "duration_s": r.input.duration_s(),
            "truncated": r.input_truncated,
        },
        "turns": turns,
        "reply": { "path": out, "sample_rate": r.reply_sample_rate, "audio_s": r.reply_audio_s },
    })
    .to_string()
}
