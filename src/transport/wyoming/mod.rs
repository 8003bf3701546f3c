//! The Wyoming protocol (Home Assistant's voice protocol) over TCP, off by default
//! (`[wyoming] bind`): a Home Assistant install, or a voice satellite, uses vaak as its speech
//! to text, its text to speech and its conversation agent.
//!
//! Each event is a JSON header line (`type`, optional `data`, `data_length`, `payload_length`),
//! then that many bytes of JSON data and of binary payload. Served:
//! - `describe` → `info`: vaak's recogniser (the served languages), its voices and its agent;
//! - `transcribe`, then `audio-start` / `audio-chunk`… / `audio-stop` (16-bit PCM, any rate and
//!   channels, ≤ 30 s) → `transcript` with the language heard;
//! - `synthesize` (a voice by name or a language, else the text's script) → `audio-start`,
//!   `audio-chunk` per clause as it is synthesised, `audio-stop`;
//! - `transcript` to the agent (a whole turn) → `handled` with vaak's answer from its LLM,
//!   checked as a live reply is, then that answer spoken as `audio-start`/`audio-chunk`/`audio-stop`;
//! - `ping` → `pong`. Other events are dropped, as the protocol asks.
//!
//! A malformed or oversized event is answered with an `error` event and the connection closed;
//! a client that goes away mid-audio loses only its own request. Each request takes a
//! conversation slot (the same admission as every other way in) and waits for the cores behind
//! live conversations' replies.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info_span, warn, Instrument};

use super::oneoff::{self, OneOffError, SpeechRequest, MAX_TRANSCRIBE_S};
use super::{accept_allowed, allow_list, unless_stalled};
use crate::audio::resample::{resample_all, ToRate};
use crate::audio::{pcm, PIPELINE_RATE};
use crate::backend::llm::spoken::{speak, ClauseSink, ReplySpec};
use crate::backend::llm::ChatRequest;
use crate::conversation::Conversation;
use crate::scheduler::Priority;
use crate::session::service::SessionService;
use crate::text::clauses::ClauseSplitter;
use crate::text::input::{echo, typed_turn};
use crate::text::script::language_of_text;

mod wire;

use wire::{audio_format, encode, read_event, Event, WireError};

/// A client that sends nothing for this long (mid-event or between events) is closed.
const IDLE: Duration = Duration::from_secs(20);
/// Spoken audio is sent in chunks of at most this long.
const CHUNK_MS: u32 = 500;

/// Accepts Wyoming clients until `stop`; each connection is a task of the session service.
pub async fn serve(svc: Arc<SessionService>, listener: TcpListener, stop: CancellationToken) {
    let allow = allow_list(&svc.backends.config.wyoming.allow);
    while let Some((stream, peer)) =
        accept_allowed(&listener, &allow, &stop, "wyoming", "wyoming.allow").await
    {
        let _ = stream.set_nodelay(true);
        let span = info_span!("wyoming", %peer);
        let conn = Connection::new(Arc::clone(&svc), stream, stop.clone());
        svc.tracker().spawn(conn.run().instrument(span));
    }
}

/// Audio a client is sending for a transcription.
struct AudioIn {
    rate: u32,
    channels: usize,
    samples: Vec<f32>,
}

struct Connection {
    svc: Arc<SessionService>,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    stop: CancellationToken,
    /// `transcribe` was asked: the language it named, if any.
    transcribe: Option<Option<String>>,
    /// The request being served, as `/metrics` names it.
    request: &'static str,
    audio: Option<AudioIn>,
}

impl Connection {
    fn new(svc: Arc<SessionService>, stream: TcpStream, stop: CancellationToken) -> Self {
        let (read, writer) = stream.into_split();
        Self {
            svc,
            reader: BufReader::new(read),
            writer,
            stop,
            transcribe: None,
            audio: None,
            request: "wyoming",
        }
    }

    async fn run(mut self) {
        loop {
            let ev = tokio::select! {
                biased;
                _ = self.stop.cancelled() => break,
                ev = tokio::time::timeout(IDLE, read_event(&mut self.reader)) => {
                    ev.unwrap_or(Err(WireError::Idle(IDLE)))
                }
            };
            let ev = match ev {
                Ok(ev) => ev,
                Err(WireError::Closed) => break,
                Err(e) => {
                    warn!(error = %e, "Wyoming client dropped");
                    let _ = self.error("bad-event", &e.to_string()).await;
                    break;
                }
            };
            if let Err(e) = self.handle(ev).await {
                debug!(error = %e, "Wyoming client gone");
                break;
            }
        }
        let _ = self.writer.shutdown().await;
    }

    async fn handle(&mut self, ev: Event) -> Result<(), WireError> {
        match ev.kind.as_str() {
            "describe" => self.send("info", self.info(), &[]).await,
            "ping" => {
                let text = ev.data.get("text").cloned().unwrap_or(Value::Null);
                self.send("pong", json!({ "text": text }), &[]).await
            }
            "transcribe" => {
                self.request = "wyoming_transcribe";
                let language = ev.data.get("language").and_then(Value::as_str);
                self.transcribe = Some(language.map(str::to_string));
                Ok(())
            }
            "audio-start" => {
                let (rate, channels) = match audio_format(&ev.data) {
                    Ok(f) => f,
                    Err(why) => return self.error("bad-audio", &why).await,
                };
                self.audio = Some(AudioIn {
                    rate,
                    channels,
                    samples: Vec::new(),
                });
                Ok(())
            }
            "audio-chunk" => self.audio_chunk(&ev).await,
            "audio-stop" => self.audio_stop().await,
            "synthesize" => {
                self.request = "wyoming_synthesize";
                self.synthesize(&ev.data).await
            }
            "transcript" => {
                self.request = "wyoming_handle";
                self.answer(&ev.data).await
            }
            // The protocol asks servers to drop what they do not serve.
            _ => Ok(()),
        }
    }

    async fn audio_chunk(&mut self, ev: &Event) -> Result<(), WireError> {
        let Some(audio) = self.audio.as_mut() else {
            return self
                .error("bad-audio", "audio-chunk before audio-start")
                .await;
        };
        let limit = MAX_TRANSCRIBE_S as usize * audio.rate as usize;
        let samples: Vec<f32> = ev
            .payload
            .chunks_exact(2)
            .map(|b| pcm::i16_to_f32(i16::from_le_bytes([b[0], b[1]])))
            .collect();
        audio.samples.extend(pcm::downmix(&samples, audio.channels));
        if audio.samples.len() > limit {
            self.audio = None;
            self.transcribe = None;
            return self
                .error(
                    "too-long",
                    &format!("audio longer than {MAX_TRANSCRIBE_S} s; use a conversation"),
                )
                .await;
        }
        Ok(())
    }

    async fn audio_stop(&mut self) -> Result<(), WireError> {
        let (Some(audio), Some(language)) = (self.audio.take(), self.transcribe.take()) else {
            // Audio nobody asked to transcribe (a satellite's stream): dropped.
            return Ok(());
        };
        let backends = Arc::clone(&self.svc.backends);
        let served = &backends.config.pipeline.languages;
        let asked: Vec<String> = language.into_iter().collect();
        let languages = match oneoff::languages(served, &asked) {
            Ok(l) => l,
            Err(e) => return self.error("bad-language", &e.to_string()).await,
        };
        let pcm = match resample_all(&audio.samples, audio.rate, PIPELINE_RATE) {
            Ok(p) => p,
            Err(e) => return self.error("bad-audio", &e.to_string()).await,
        };
        let Ok(_slot) = self.svc.admit("wyoming", super::auth::OPEN_TENANT) else {
            return self.error("busy", "vaak is at capacity; retry").await;
        };
        match oneoff::transcribe(&backends, pcm, languages).await {
            Ok(t) => {
                self.count(200);
                self.send(
                    "transcript",
                    json!({ "text": t.text, "language": t.language }),
                    &[],
                )
                .await
            }
            Err(e) => self.oneoff_error(e).await,
        }
    }

    async fn synthesize(&mut self, data: &Value) -> Result<(), WireError> {
        let text = data.get("text").and_then(Value::as_str).unwrap_or_default();
        let voice = data.get("voice");
        let name = voice
            .and_then(|v| v.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let language = voice
            .and_then(|v| v.get("language"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let language = match self.language_for(text, name.as_deref(), language) {
            Ok(l) => l,
            Err(why) => return self.error("bad-voice", &why).await,
        };
        let Ok(_slot) = self.svc.admit("wyoming", super::auth::OPEN_TENANT) else {
            return self.error("busy", "vaak is at capacity; retry").await;
        };
        self.say(text, language, name).await
    }

    /// The language to speak `text` in: the one asked for, the named voice's, or the text's
    /// script (the first served language when the script says nothing).
    fn language_for(
        &self,
        text: &str,
        voice: Option<&str>,
        asked: Option<String>,
    ) -> Result<String, String> {
        let served = &self.svc.backends.config.pipeline.languages;
        if let Some(l) = asked.filter(|l| !l.is_empty()) {
            return Ok(l);
        }
        if let Some(name) = voice {
            return self
                .svc
                .backends
                .tts
                .voices()
                .into_iter()
                .find(|c| c.name == name)
                .map(|c| c.language)
                .ok_or_else(|| format!("no voice is named `{}`", echo(name)));
        }
        Ok(language_of_text(text, served)
            .map(|(l, _)| l)
            .or_else(|| served.first().cloned())
            .unwrap_or_default())
    }

    /// Speaks `text` clause by clause: `audio-start`, the chunks of each clause as it is
    /// synthesised, `audio-stop`.
    async fn say(
        &mut self,
        text: &str,
        language: String,
        voice: Option<String>,
    ) -> Result<(), WireError> {
        let backends = Arc::clone(&self.svc.backends);
        let mut ask = SpeechRequest {
            text: text.to_string(),
            language,
            voice,
            speed: 0.0,
        };
        let speed = match ask.check(&backends) {
            Ok(s) => s,
            Err(e) => return self.oneoff_error(e).await,
        };
        let mut splitter = ClauseSplitter::new();
        let mut clauses = splitter.push(&ask.text);
        clauses.extend(splitter.finish());
        let mut rate: Option<u32> = None;
        let mut to_rate: Option<ToRate> = None;
        for clause in clauses.into_iter().filter(|c| !c.trim().is_empty()) {
            let lang = ask.language.clone();
            let speech =
                match oneoff::synthesize(&backends, clause, lang, ask.voice.clone(), speed).await {
                    Ok(s) => s,
                    Err(e) if rate.is_none() => return self.oneoff_error(e).await,
                    Err(e) => {
                        // Mid-reply: end the audio cleanly with what was said.
                        warn!(error = %e, "Wyoming synthesis ended early");
                        break;
                    }
                };
            let out_rate = *rate.get_or_insert(speech.sample_rate);
            if to_rate.is_none() {
                to_rate = Some(ToRate::new(out_rate));
                let format = json!({ "rate": out_rate, "width": 2, "channels": 1 });
                self.send("audio-start", format, &[]).await?;
            }
            let audio = to_rate
                .as_mut()
                .and_then(|r| r.convert(&speech.audio, speech.sample_rate).ok())
                .unwrap_or_default();
            let per_chunk = (out_rate * CHUNK_MS / 1000) as usize;
            for part in audio.chunks(per_chunk.max(1)) {
                let bytes: Vec<u8> = part
                    .iter()
                    .flat_map(|&s| pcm::f32_to_i16(s).to_le_bytes())
                    .collect();
                let format = json!({ "rate": out_rate, "width": 2, "channels": 1 });
                self.send("audio-chunk", format, &bytes).await?;
            }
        }
        if rate.is_some() {
            self.send("audio-stop", json!({}), &[]).await?;
            self.count(200);
        }
        Ok(())
    }

    /// A whole turn for the agent: vaak's answer to the transcript, as `handled`, then spoken.
    async fn answer(&mut self, data: &Value) -> Result<(), WireError> {
        let raw = data.get("text").and_then(Value::as_str).unwrap_or_default();
        let text = match typed_turn(raw) {
            Ok(Some(t)) => t,
            Ok(None) => return self.error("empty", "the transcript is empty").await,
            Err(e) => return self.error("too-long", &e.to_string()).await,
        };
        let served = self.svc.backends.config.pipeline.languages.clone();
        let language = match data.get("language").and_then(Value::as_str) {
            Some(l) if !l.is_empty() => match oneoff::languages(&served, &[l.to_string()]) {
                Ok(mut l) => l.pop().unwrap_or_default(),
                Err(e) => return self.error("bad-language", &e.to_string()).await,
            },
            _ => language_of_text(&text, &served)
                .map(|(l, _)| l)
                .or_else(|| served.first().cloned())
                .unwrap_or_default(),
        };
        let Ok(_slot) = self.svc.admit("wyoming", super::auth::OPEN_TENANT) else {
            return self.error("busy", "vaak is at capacity; retry").await;
        };
        let reply = match self.reply(&text, &language).await {
            Ok(r) => r,
            Err(why) => {
                self.count(500);
                return self.send("not-handled", json!({ "text": why }), &[]).await;
            }
        };
        self.send(
            "handled",
            json!({ "text": reply, "language": language }),
            &[],
        )
        .await?;
        self.say(&reply, language, None).await
    }

    /// The LLM's checked reply to one turn (no history: each connection's turn stands alone).
    async fn reply(&self, text: &str, language: &str) -> Result<String, String> {
        let backends = &self.svc.backends;
        let cfg = &backends.config.llm;
        let conversation = Conversation::new(cfg.system_prompt.clone(), cfg.history_turns);
        let req = ChatRequest {
            messages: conversation.messages_for(text, language, false),
            max_tokens: cfg.max_tokens,
            temperature: cfg.temperature,
            session_key: Some("wyoming".into()),
        };
        let spec = ReplySpec {
            user_text: text,
            language,
            mixed: false,
            first_token_timeout: Duration::from_millis(cfg.first_token_timeout_ms),
            idle_timeout: Duration::from_millis(cfg.idle_timeout_ms),
        };
        let cancel = self.stop.child_token();
        // The prompt waits for the cores like a live turn's first clause.
        let _cores = backends
            .cpu
            .acquire(Priority::FirstClause, &cancel)
            .await
            .map_err(|e| e.to_string())?;
        let spoken = speak(backends.llm.as_ref(), req, &spec, &cancel, &mut Discard).await;
        match spoken.failure {
            Some(e) if spoken.text.is_empty() => Err(format!("the language model failed: {e}")),
            _ => Ok(spoken.text),
        }
    }

    fn info(&self) -> Value {
        let cfg = &self.svc.backends.config;
        let languages = &cfg.pipeline.languages;
        let attribution = json!({ "name": "vaak", "url": "https://github.com/vaak" });
        let artifact = |name: &str, description: &str, languages: Value| {
            json!({
                "name": name, "attribution": attribution, "installed": true,
                "description": description, "version": env!("CARGO_PKG_VERSION"),
                "languages": languages,
            })
        };
        let voices: Vec<Value> = self
            .svc
            .backends
            .tts
            .voices()
            .into_iter()
            .map(|v| artifact(&v.name, "vaak voice", json!([v.language])))
            .collect();
        let mut asr = artifact("vaak-asr", "vaak speech recognition", json!(languages));
        asr["models"] = json!([artifact(
            "vaak-asr",
            "Whisper with language detection",
            json!(languages)
        )]);
        let mut tts = artifact("vaak-tts", "vaak voices", json!(languages));
        tts["voices"] = json!(voices);
        let mut handle = artifact("vaak", "vaak's assistant", json!(languages));
        handle["models"] = json!([artifact("vaak", "vaak's assistant", json!(languages))]);
        json!({ "asr": [asr], "tts": [tts], "handle": [handle] })
    }

    async fn oneoff_error(&mut self, e: OneOffError) -> Result<(), WireError> {
        let code = match e {
            OneOffError::Invalid(_) => "bad-request",
            OneOffError::Internal(_) => "internal",
        };
        self.error(code, &e.to_string()).await
    }

    /// Counts the current request's outcome in `/metrics` (with HTTP's status numbers: 200
    /// served, 400 the client's mistake, 503 busy, 500 vaak's failure).
    fn count(&self, status: u16) {
        self.svc.metrics.api_request(self.request, status);
    }

    async fn error(&mut self, code: &str, text: &str) -> Result<(), WireError> {
        self.count(match code {
            "busy" => 503,
            "internal" => 500,
            _ => 400,
        });
        self.send("error", json!({ "text": text, "code": code }), &[])
            .await
    }

    async fn send(&mut self, kind: &str, data: Value, payload: &[u8]) -> Result<(), WireError> {
        let bytes = encode(kind, &data, payload);
        match unless_stalled(self.writer.write_all(&bytes)).await {
            Some(written) => Ok(written?),
            None => Err(WireError::Stalled(super::WRITE_STALL)),
        }
    }
}

/// Keeps nothing: the agent's reply is collected as text by [`speak`] itself.
struct Discard;

impl ClauseSink for Discard {
    fn first_token(&mut self) {}
    async fn clause(&mut self, _text: String) -> bool {
        true
    }
}
