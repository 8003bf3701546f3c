//! vaak — a voice-first assistant daemon for India.
//!
//! ```text
//!  ingest (transport)        stages, one tokio task each, joined by bounded channels          egress
//!  ─────────────────   ┌─────┐   ┌─────┐   ┌─────────┐   ┌─────┐   ┌─────┐   ┌────────┐   ─────────────
//!  file / gRPC /    ──►│ VAD │──►│ ASR │──►│ lang id │──►│ LLM │──►│ TTS │──►│ output │──► same transport
//!  WebRTC / phone /    └─────┘   └─────┘   └─────────┘   └─────┘   └─────┘   └────────┘
//!  kiosk mic
//!         ▲                │  barge-in: user speech while the assistant talks                │
//!         └────────────────┴── cancels the turn (token), output clears, history keeps only ──┘
//!                              what was actually played
//!
//!  transport::openai (/v1/audio/transcriptions, /v1/audio/speech: one-off, no session;
//!    transport::oneoff, shared with gRPC's unary calls) ─► admission, CPU scheduler, ASR/TTS
//!  transport::wyoming (Home Assistant: transcribe, synthesize, one agent turn) ─► the same
//!  transport::grpc ─────────┐
//!  transport::webrtc ───────┤
//!  transport::telephony ────┼─► session::service (admission, tenant, resume from the store:
//!  transport::kiosk ────────┘   SQLite, or PostgreSQL shared by replicas); every live call then
//!                               runs in transport::call (deadlines, ingest overflow policy,
//!                               cleared-turn watermark), the transport supplying its `Side`
//!   (Twilio/Exotel/Plivo WS,     ──► pipeline::spawn(settings, memory) ──► the stages above
//!    Asterisk AudioSocket;       telephony: marks/paced frames report what was played, 8 kHz
//!    one writer task per call)   audio through G.711 + resampling, Silero's 8 kHz mode
//!  webrtc: WHIP on the HTTP listener, Opus/DTLS-SRTP (webrtc-rs), events as JSON on a data
//!  channel; a paced 20 ms Opus writer per call reports what was sent; lost caller packets are
//!  rebuilt from FEC or concealed; the page (assets/web) is served at `/`
//!
//!  languages: ASR holds the session's language (flow::language, hysteresis) and routes
//!  per language (backend::asr::routed: a ggml per language, a remote /v1/audio/transcriptions,
//!  embedded Whisper as fallback); lang id decides each turn and spots Hinglish; TTS splits
//!  mixed-script clauses into runs, each normalised (text::speech) and spoken by its own voice
//!
//!  Ingest ─► SpeechInput ─► Transcript ─► UserTurn ─► ReplyText ─► ReplyAudio ─► PipelineEvent
//!  (edges: pipeline::{SPEECH_EDGE, TURN_EDGE, CLAUSE_EDGE, AUDIO_OUT_EDGE, EVENT_EDGE})
//!
//!  streaming recognition: VAD ──audio as it arrives──► ASR stage: passes every 1 s and at
//!  pauses (backend::asr::streaming: LocalAgreement-2 commits, window cut at agreed pauses,
//!  language from the same encoder pass) ──partials──► events; a pause's pass is the final
//!  ASR ──committed words (StageCtx::heard, a watch: the newest replaces an unread one)──► LLM
//!  stage: prefilled into the session's KV slot (vaak-llm `/v1/vaak/prefill`) while the user
//!  speaks; one language-neutral system prompt, a greeting in the user's language where a
//!  stretch of turns in it begins, so every turn's prompt extends the last one's
//!
//!  reply checks (text::reply_guard, backend::llm::spoken — the same path for live turns and
//!  `vaak eval replies`): speech with no word made out, a recogniser loop or a foreign-script
//!  transcript gets "please say that again" in the user's language; each reply clause is checked before TTS — read-back of the
//!  user's words or of the system prompt withheld, a wrong-script start asked for once more,
//!  then a fixed sentence; history stored with personal numbers masked (text::redact)
//!
//!  one CPU scheduler (scheduler::CpuScheduler, in Backends): every session's ASR pass, TTS
//!  clause and LLM prompt waits for a slot (cores ÷ threads per job), highest priority first:
//!  next audio of a playing reply > first clause (LLM prompt, its voice) > transcript pass >
//!  later clauses > partial passes and prefills (shed after 1 s)
//!
//!  vaak (this crate, links whisper.cpp + ONNX Runtime) ──HTTP/SSE (OpenAI chat)──► vaak-llm
//!                                                      (crates/vaak-llm, links llama.cpp)
//!       or ──► a remote OpenAI-compatible server, wrapped in backend::llm::fallback
//!              (retry, time-outs, cool-down) with vaak-llm as the fallback
//!
//!  devices (backend::device, `[compute]`): CPU by default; with an NVIDIA GPU, whisper.cpp
//!  (`--features cuda`), llama.cpp (vaak-llm's `cuda`) and ONNX Runtime's CUDA provider (the
//!  onnxruntime-gpu library) run on it, each falling back to the CPU with one warning; VAD stays
//!  on the CPU
//! ```
//!
//! Modules: [`audio`] pcm/resample/G.711/Opus/wav · [`text`] clauses/script/redaction/code-switching/
//! speech normalisation (numbers, money, dates in 12 languages)/reply checks · [`config`] the
//! one config door · [`models`] manifest/fetch/verify/CT2→ggml · [`backend`] VAD/ASR/LLM/TTS
//! engines, remote clients with fallback, fakes, which device each runs on (CPU or CUDA) · [`flow`] what the stages share (messages, events,
//! turns, language, memory, endpointer, settings) · [`pipeline`] `spawn()` and edges · [`stages`] the stage tasks · [`scheduler`] one priority queue for the cores ·
//! [`conversation`] a session's history and its budgets · [`session`] the session service
//! (admission, rates, tenants, resume) and the stores (SQLite, PostgreSQL) · [`transport`] gRPC (`vaak.v1.Vaak`, health,
//! reflection, auth, TLS), WebRTC browser calls (WHIP, Opus, data-channel events, the web
//! page), telephony (provider WebSockets, AudioSocket), the OpenAI-compatible speech endpoints,
//! Wyoming for Home Assistant and the offline kiosk (cpal microphone and speaker) · [`converse`] a file
//! through the pipeline · [`daemon`] `vaak serve` · [`bench`] stage, voice-to-voice latency, TTS,
//! ASR accuracy, reply quality, soak, overload and store benchmarks · [`metrics`] counters and
//! latencies.

pub mod audio;
pub mod backend;
pub mod bench;
pub mod config;
pub mod conversation;
pub mod converse;
pub mod daemon;
pub mod flow;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod scheduler;
pub mod session;
pub mod stages;
pub mod text;
pub mod transport;

/// Generated gRPC types for `proto/vaak/v1/vaak.proto`.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("vaak.v1");
}
