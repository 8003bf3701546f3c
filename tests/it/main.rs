//! vaak's integration tests, one binary (each test binary links whisper.cpp and ONNX Runtime,
//! so one binary keeps links and disk small). Themes are modules.

mod bad_input;
#[macro_use]
mod common;
mod config_cli;
mod container;
mod converse_real;
mod eval_replies;
mod fakes;
mod fast_clients;
mod faults;
mod frameworks;
mod grpc_api;
mod k8s;
mod kiosk;
mod languages;
mod live_turns;
mod openai_api;
mod packaging;
mod privacy;
mod remote_asr;
mod remote_llm;
mod remote_tts;
mod scheduling;
mod serve;
mod session_store;
mod slow_clients;
mod streaming;
mod telephony;
mod turn_taking;
mod webrtc;
mod worker_restart;
mod wyoming;
