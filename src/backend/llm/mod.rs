//! Language-model backends. Everything speaks the OpenAI-compatible streaming chat protocol:
//! the embedded llama.cpp worker process (`vaak-llm`, supervised by `worker`) and any remote
//! server (vLLM, SGLang, TGI, llama.cpp server, Ollama) go through the same client.

pub mod fallback;
pub mod openai;
pub mod spoken;
pub mod worker;

use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub max_tokens: u32,
    pub temperature: f32,
    /// Keeps this conversation's KV cache warm in servers that support it.
    pub session_key: Option<String>,
}

/// What the model reports once a reply is finished.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub cached_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LlmEvent {
    Delta(String),
    Done(Option<Usage>),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("LLM server not reachable at {endpoint}: {detail}")]
    Unreachable { endpoint: String, detail: String },
    #[error("LLM worker is not running (it is starting or restarting)")]
    WorkerDown,
    #[error("LLM server answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("LLM gave no first token within {0:?}")]
    FirstTokenTimeout(Duration),
    #[error("LLM stream stalled for {0:?}")]
    StreamStalled(Duration),
    #[error("LLM stream broken: {0}")]
    Stream(String),
}

pub type LlmStream = BoxStream<'static, Result<LlmEvent, LlmError>>;

/// A streaming chat model.
pub trait Llm: Send + Sync {
    fn stream_chat(&self, req: ChatRequest) -> BoxFuture<'_, Result<LlmStream, LlmError>>;

    /// Puts `req`'s conversation, whose last user message is still being spoken, into the
    /// session's KV cache without generating, so the final request only reads what follows.
    /// `Ok(false)`: this backend keeps no such cache (remote servers), nothing was done.
    fn prefill(&self, _req: ChatRequest) -> BoxFuture<'_, Result<bool, LlmError>> {
        Box::pin(async { Ok(false) })
    }

    /// Its prompt processing runs on this machine's cores (the embedded worker): the LLM stage
    /// then waits for the CPU scheduler before asking. A remote server's time is its own.
    fn on_local_cores(&self) -> bool {
        false
    }

    /// Requests this backend's remote part failed and its embedded fallback answered (0 for a
    /// backend with no fallback); served at `/metrics`.
    fn fallbacks(&self) -> u64 {
        0
    }
}

/// Wraps a stream so the first event must come within `first` and each later one within `idle`.
pub fn with_deadlines(stream: LlmStream, first: Duration, idle: Duration) -> LlmStream {
    let state = (stream, true, false);
    futures::stream::unfold(state, move |(mut s, is_first, ended)| async move {
        if ended {
            return None;
        }
        let limit = if is_first { first } else { idle };
        match tokio::time::timeout(limit, s.next()).await {
            Ok(Some(item)) => Some((item, (s, false, false))),
            Ok(None) => None,
            Err(_) => {
                let err = if is_first {
                    LlmError::FirstTokenTimeout(first)
                } else {
                    LlmError::StreamStalled(idle)
                };
                Some((Err(err), (s, false, true)))
            }
        }
    })
    .boxed()
}
