//! `vaak bench turn`: measures each stage on real eval clips with the loaded models and prints
//! p50/p95 — VAD per 32 ms frame and per 20 ms chunk as the stage runs it, ASR per clip and its
//! real-time factor, LLM time to first token (a new session over the worker's cached system
//! prompt, and a follow-up with the session's prompt cached) and decode rate, TTS time to first audio
//! and real-time factor, and the whole turn from end of input to first reply audio.
//! [`latency`] is `vaak bench latency`: voice-to-voice latency at a gRPC or phone client;
//! [`eval`] is `vaak eval asr`: recognition accuracy per language; [`replies`] is `vaak eval
//! replies`: whether the model answers typed questions rightly, in the right script; [`tts`] is
//! `vaak bench tts`: synthesis time per voice and phrase length; [`soak`] is `vaak bench soak`:
//! how many mostly-listening sessions the box holds, CPU and memory per session; [`store`] is
//! `vaak bench store`: a turn's write and a resume's load on the configured session store;
//! [`overload`] is `vaak bench overload`: open-loop arrivals past capacity, what admission did.

pub mod eval;
pub mod latency;
pub mod overload;
pub mod replies;
pub mod soak;
pub mod store;
pub mod tts;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::audio::resample::resample_all;
use crate::audio::wav::read_mono;
use crate::audio::PIPELINE_RATE;
use crate::backend::asr::LanguageHint;
use crate::backend::llm::{ChatRequest, LlmEvent};
use crate::backend::Backends;
use crate::conversation::Conversation;
use crate::converse::{converse, ConverseRequest};
use crate::metrics::{summarize, Metrics, Summary};

/// One row of a manifest (`path`, `language`, `duration_s`, `text`).
#[derive(Debug, Clone)]
pub struct Clip {
    pub path: PathBuf,
    pub language: String,
    pub duration_s: f32,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot read manifest {path}: {detail}")]
    Manifest { path: PathBuf, detail: String },
    #[error("{0}")]
    Stage(String),
}

/// Reads an eval manifest (tab-separated, header line, paths relative to the manifest).
pub fn read_manifest(path: &Path) -> Result<Vec<Clip>, BenchError> {
    let err = |detail: String| BenchError::Manifest {
        path: path.to_path_buf(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let (Some(p), Some(l), Some(d), Some(t)) =
        (col("path"), col("language"), col("duration_s"), col("text"))
    else {
        return Err(err(
            "header must name path, language, duration_s and text".into()
        ));
    };
    let mut clips = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let get = |c: usize| {
            f.get(c)
                .copied()
                .ok_or_else(|| err(format!("line {} has too few columns", i + 2)))
        };
        clips.push(Clip {
            path: base.join(get(p)?),
            language: get(l)?.split('-').next().unwrap_or_default().to_string(),
            duration_s: get(d)?
                .parse()
                .map_err(|_| err(format!("line {}: bad duration", i + 2)))?,
            text: get(t)?.to_string(),
        });
    }
    Ok(clips)
}

/// Latency rows of the report: (what, unit, values, target).
pub struct BenchReport {
    pub rows: Vec<(String, Vec<f64>, Option<&'static str>)>,
    pub notes: Vec<String>,
}

impl BenchReport {
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<52} {:>5} {:>10} {:>10}  {}\n",
            "metric", "n", "p50", "p95", "target"
        );
        for (name, values, target) in &self.rows {
            let Summary { p50_ms, p95_ms, .. } = summarize(values, values.len() as u64);
            out.push_str(&format!(
                "{:<52} {:>5} {:>10.3} {:>10.3}  {}\n",
                name,
                values.len(),
                p50_ms,
                p95_ms,
                target.unwrap_or("")
            ));
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Runs every measurement over up to `limit` clips.
pub async fn bench_turn(
    backends: Arc<Backends>,
    clips: &[Clip],
    limit: usize,
    languages: &[String],
) -> Result<BenchReport, BenchError> {
    let clips: Vec<Clip> = clips.iter().take(limit.max(1)).cloned().collect();
    let mut vad_frame_ms = Vec::new();
    let mut vad_chunk_ms = Vec::new();
    let mut asr_s = Vec::new();
    let mut asr_5s = Vec::new();
    let mut asr_rtf = Vec::new();
    let mut ttft_cold = Vec::new();
    let mut ttft_cached = Vec::new();
    let mut tok_per_s = Vec::new();
    let mut tts_first = Vec::new();
    let mut tts_rtf = Vec::new();
    let mut turn_first_audio = Vec::new();
    let mut notes = Vec::new();
    let cfg = Arc::clone(&backends.config);

    for (i, clip) in clips.iter().enumerate() {
        let (pcm, rate) = read_mono(&clip.path).map_err(|e| BenchError::Stage(e.to_string()))?;
        let pcm = resample_all(&pcm, rate, PIPELINE_RATE)
            .map_err(|e| BenchError::Stage(e.to_string()))?;

        // VAD: every 32 ms frame of the clip through the model alone, then the production path
        // — each 20 ms chunk a transport delivers crosses to the blocking pool, takes the shared
        // model's lock and runs the frames it completes, as the VAD stage does.
        let b = Arc::clone(&backends);
        let pcm2 = pcm.clone();
        let frames = tokio::task::spawn_blocking(move || -> Result<Vec<f64>, String> {
            let mut vad = b.vad.create(PIPELINE_RATE).map_err(|e| e.to_string())?;
            let n = vad.frame_samples();
            let mut times = Vec::new();
            for f in pcm2.chunks_exact(n) {
                let t = Instant::now();
                vad.speech_probability(f).map_err(|e| e.to_string())?;
                times.push(secs(t.elapsed()));
            }
            Ok(times)
        })
        .await
        .map_err(|e| BenchError::Stage(e.to_string()))?
        .map_err(BenchError::Stage)?;
        vad_chunk_ms.extend(vad_production_path(&backends, &pcm).await?);
        vad_frame_ms.extend(frames);

        // ASR with restricted language detection.
        let b = Arc::clone(&backends);
        let hint = LanguageHint::DetectAmong(languages.to_vec());
        let pcm2 = pcm.clone();
        let tr = tokio::task::spawn_blocking(move || {
            b.asr.transcribe(&pcm2, &hint, &CancellationToken::new())
        })
        .await
        .map_err(|e| BenchError::Stage(e.to_string()))?
        .map_err(|e| BenchError::Stage(e.to_string()))?;
        asr_s.push(f64::from(tr.elapsed_s));
        asr_rtf.push(f64::from(tr.elapsed_s / tr.audio_s.max(0.01)));
        if (4.0..=6.0).contains(&tr.audio_s) {
            asr_5s.push(f64::from(tr.elapsed_s));
        }

        // LLM: a new session, then a follow-up in the same session. The worker keeps the shared
        // system prompt's prefix across sessions, so even the first is not cold: it pays the
        // user's words and the language instruction, not the system prompt.
        let mut memory = Conversation::new(cfg.llm.system_prompt.clone(), cfg.llm.history_turns);
        let session = format!("bench-{}-{i}", std::process::id());
        let user = if tr.text.is_empty() {
            clip.text.clone()
        } else {
            tr.text.clone()
        };
        let (ttft, rate, reply) = llm_once(
            &backends,
            memory.messages_for(&user, &clip.language, false),
            &session,
        )
        .await?;
        ttft_cold.push(ttft);
        if let Some(r) = rate {
            tok_per_s.push(r);
        }
        memory.record(crate::conversation::Exchange {
            user,
            assistant: reply.clone(),
            language: clip.language.clone(),
            interrupted: false,
            mixed: false,
        });
        let follow_up = follow_up_question(&clip.language);
        let (ttft2, _, _) = llm_once(
            &backends,
            memory.messages_for(follow_up, &clip.language, false),
            &session,
        )
        .await?;
        ttft_cached.push(ttft2);

        // TTS: the first clause of the reply.
        let first = crate::text::clauses::split_clauses(&crate::text::clauses::speakable(&reply))
            .into_iter()
            .next()
            .unwrap_or_else(|| clip.text.clone());
        let voice = backends
            .tts
            .for_language(&clip.language)
            .map_err(|e| BenchError::Stage(e.to_string()))?;
        let t = Instant::now();
        let audio = tokio::task::spawn_blocking(move || {
            voice
                .synthesize(&first, 1.0)
                .map(|a| (a, voice.sample_rate()))
        })
        .await
        .map_err(|e| BenchError::Stage(e.to_string()))?
        .map_err(|e| BenchError::Stage(e.to_string()))?;
        let took = secs(t.elapsed());
        tts_first.push(took);
        let dur = audio.0.len() as f64 / f64::from(audio.1.max(1));
        if dur > 0.0 {
            tts_rtf.push(took / dur);
        }

        // Whole turn through the pipeline, as `converse` runs it.
        let out = std::env::temp_dir().join(format!("vaak-bench-{}-{i}.wav", std::process::id()));
        let report = converse(
            Arc::clone(&backends),
            ConverseRequest {
                input: &clip.path,
                output: &out,
                languages: languages.to_vec(),
                speech_rate: 1.0,
                min_silence_ms: crate::converse::FILE_MIN_SILENCE_MS,
            },
            Arc::new(Metrics::default()),
            CancellationToken::new(),
        )
        .await;
        let _ = std::fs::remove_file(&out);
        match report {
            Ok(r) => {
                for t in r.turns {
                    if let Some(d) = t.timings.and_then(|t| t.end_to_first_audio) {
                        turn_first_audio.push(secs(d));
                    }
                }
            }
            Err(e) => notes.push(format!("{}: {e}", clip.path.display())),
        }
        eprintln!("bench: clip {}/{} done", i + 1, clips.len());
    }
    if asr_5s.is_empty() {
        notes.push("no clip of 4-6 s: the 5 s ASR row is empty".into());
    }
    let ms = |v: Vec<f64>| v.into_iter().map(|s| s * 1000.0).collect::<Vec<f64>>();
    Ok(BenchReport {
        rows: vec![
            (
                "VAD per 32 ms frame, model alone (ms)".into(),
                ms(vad_frame_ms),
                Some("<= 1 ms"),
            ),
            (
                "VAD per 20 ms chunk as the stage runs it (ms)".into(),
                ms(vad_chunk_ms),
                None,
            ),
            ("ASR per clip (s)".into(), asr_s, None),
            (
                "ASR per 4-6 s clip (s)".into(),
                asr_5s,
                Some("<= 0.5 s for 5 s"),
            ),
            ("ASR real-time factor".into(), asr_rtf, None),
            (
                "LLM first token, new session, system prompt cached (s)".into(),
                ttft_cold,
                None,
            ),
            (
                "LLM first token, prompt cached (s)".into(),
                ttft_cached,
                Some("<= 0.6 s"),
            ),
            ("LLM decode (tokens/s)".into(), tok_per_s, None),
            (
                "TTS first clause to audio (s)".into(),
                tts_first,
                Some("<= 0.15 s"),
            ),
            ("TTS real-time factor".into(), tts_rtf, None),
            (
                "turn: end of input -> first audio (s)".into(),
                turn_first_audio,
                None,
            ),
        ],
        notes,
    })
}

/// A short follow-up question in the clip's language (exercises the cached prefix).
fn follow_up_question(lang: &str) -> &'static str {
    match lang {
        "hi" => "कृपया इसे और छोटा करके बताइए।",
        "te" => "దయచేసి ఇంకా చిన్నగా చెప్పండి.",
        _ => "Please say that more briefly.",
    }
}

/// Tokens per second after the first one (`first`: when it came, `total`: when the reply ended),
/// if the server reported usage and more than one token came.
pub fn decode_rate(
    usage: Option<&crate::backend::llm::Usage>,
    first: Duration,
    total: Duration,
) -> Option<f64> {
    let u = usage?;
    let decode = total.saturating_sub(first).as_secs_f64();
    (u.completion_tokens > 1 && decode > 0.0).then(|| f64::from(u.completion_tokens - 1) / decode)
}

/// One streamed request: (time to first token, tokens/s if measurable, reply text).
async fn llm_once(
    backends: &Backends,
    messages: Vec<crate::backend::llm::ChatMessage>,
    session: &str,
) -> Result<(f64, Option<f64>, String), BenchError> {
    let cfg = &backends.config.llm;
    let t = Instant::now();
    let mut stream = backends
        .llm
        .stream_chat(ChatRequest {
            messages,
            max_tokens: cfg.max_tokens,
            temperature: 0.0,
            session_key: Some(session.to_string()),
        })
        .await
        .map_err(|e| BenchError::Stage(e.to_string()))?;
    let mut first = None;
    let mut text = String::new();
    let mut usage = None;
    while let Some(ev) = stream.next().await {
        match ev.map_err(|e| BenchError::Stage(e.to_string()))? {
            LlmEvent::Delta(d) => {
                first.get_or_insert_with(|| t.elapsed());
                text.push_str(&d);
            }
            LlmEvent::Done(u) => usage = u,
        }
    }
    let total = t.elapsed();
    let first = first.unwrap_or(total);
    let rate = decode_rate(usage.as_ref(), first, total);
    Ok((secs(first), rate, text))
}

/// The VAD stage's cost per 20 ms chunk, measured from the runtime: the hop to the blocking
/// pool, the shared model's lock and the frames the chunk completes (a chunk completes one
/// 32 ms frame or none, so some rows are the hop alone — as in production).
async fn vad_production_path(
    backends: &Arc<Backends>,
    pcm: &[f32],
) -> Result<Vec<f64>, BenchError> {
    let stage = |e: String| BenchError::Stage(e);
    let mut vad = backends
        .vad
        .create(PIPELINE_RATE)
        .map_err(|e| stage(e.to_string()))?;
    let chunk = (PIPELINE_RATE * crate::pipeline::INGEST_CHUNK_MS / 1000) as usize;
    let mut pending: Vec<f32> = Vec::new();
    let mut times = Vec::new();
    for c in pcm.chunks(chunk) {
        let c = c.to_vec();
        let t = Instant::now();
        let (v, p, r) = tokio::task::spawn_blocking(move || {
            pending.extend_from_slice(&c);
            let n = vad.frame_samples();
            let mut used = 0;
            let mut r = Ok(());
            while pending.len() - used >= n && r.is_ok() {
                r = vad.speech_probability(&pending[used..used + n]).map(|_| ());
                used += n;
            }
            pending.drain(..used);
            (vad, pending, r)
        })
        .await
        .map_err(|e| stage(e.to_string()))?;
        times.push(secs(t.elapsed()));
        r.map_err(|e| stage(e.to_string()))?;
        (vad, pending) = (v, p);
    }
    Ok(times)
}
