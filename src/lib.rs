//! vaak — a voice-first assistant daemon for India.
//!
//! ```text
//!  ingest (transport)        stages, one tokio task each, joined by bounded channels          egress
//!  ─────────────────   ┌─────┐   ┌─────┐   ┌─────────┐   ┌─────┐   ┌─────┐   ┌────────┐   ─────────────
//!  file / gRPC /    ──►│ VAD │──►│ ASR │──►│ lang id │──►│ LLM │──►│ TTS │──►│ output │──► same transport
//!  WebRTC / phone      └─────┘   └─────┘   └─────────┘   └─────┘   └─────┘   └────────┘
//!         ▲                │  barge-in: user speech while the assistant talks                │
//!         └────────────────┴── cancels the turn (token), output clears, history keeps only ──┘
//!                              what was actually played
//!
//!  Ingest ─► Utterance ─► Transcript ─► UserTurn ─► ReplyText ─► ReplyAudio ─► PipelineEvent
//!  (edges: pipeline::{UTTERANCE_EDGE, TURN_EDGE, CLAUSE_EDGE, AUDIO_OUT_EDGE, EVENT_EDGE})
//!
//!  vaak (this crate, links whisper.cpp + ONNX Runtime) ──HTTP/SSE (OpenAI chat)──► vaak-llm
//!                                                      (crates/vaak-llm, links llama.cpp)
//! ```
//!
//! Modules: [`audio`] pcm/resample/wav · [`text`] clauses/script/redaction · [`config`] the one
//! config door · [`models`] manifest/fetch/verify/CT2→ggml · [`backend`] VAD/ASR/LLM/TTS engines
//! and fakes · [`pipeline`] `spawn()`, edges, turns, events · [`stages`] the stage tasks ·
//! [`session`] conversation memory · [`converse`] a file through the pipeline · [`daemon`]
//! `vaak serve` · [`bench`] latency benchmarks · [`metrics`] counters and latency summaries.

pub mod audio;
pub mod backend;
pub mod bench;
pub mod config;
pub mod converse;
pub mod daemon;
pub mod grpc;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod service;
pub mod session;
pub mod stages;
pub mod text;

/// Generated gRPC types for `proto/vaak/v1/vaak.proto`.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("vaak.v1");
}
