//! `[llm]`: the reply model: the embedded worker or an OpenAI-compatible server, the system
//! prompt, reply length, deadlines and the history kept per session.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

pub const DEFAULT_LLM_MAX_TOKENS: u32 = 120;

pub const DEFAULT_LLM_TEMPERATURE: f32 = 0.3;

pub const DEFAULT_LLM_CONNECT_TIMEOUT_MS: u64 = 5_000;

pub const DEFAULT_LLM_FIRST_TOKEN_TIMEOUT_MS: u64 = 20_000;

pub const DEFAULT_LLM_IDLE_TIMEOUT_MS: u64 = 10_000;

pub const DEFAULT_LLM_THREADS: usize = 2;

pub const DEFAULT_LLM_CTX: u32 = 4_096;

pub const DEFAULT_LLM_SLOTS: u32 = 4;
/// A worker silent on `/health` this long is restarted (a long prefill still answers it).
pub const DEFAULT_LLM_HUNG_AFTER_MS: u64 = 20_000;

pub const DEFAULT_HISTORY_TURNS: usize = 8;

pub const DEFAULT_HISTORY_TOKEN_BUDGET: usize = 1_200;

pub const DEFAULT_LLM_RETRIES: u32 = 1;

pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are vaak, a helpful voice assistant for people in India. \
Your replies are spoken aloud, so answer in one to three short sentences of plain text: no lists, \
no markdown, no emoji. Answer what the user asked; never repeat the question back. \
Always reply in the language and script of the user's latest message.";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// `worker` (embedded llama.cpp in the supervised `vaak-llm` process) or `openai` (remote).
    pub kind: LlmKind,
    pub max_tokens: u32,
    pub temperature: f32,
    /// The same for every language, so a language switch keeps the cached prompt. A custom
    /// prompt may contain `{language}` (replaced by the turn's language name), at the cost of
    /// re-reading the whole conversation whenever the user switches language.
    pub system_prompt: String,
    /// Past turns sent with each request, at most; past it the oldest are dropped down to
    /// half of it (each cut makes the LLM re-read the history once, so it cuts deep and rarely).
    pub history_turns: usize,
    /// Past turns are trimmed, oldest first, to about this many tokens (down to two thirds of
    /// it when a turn goes over).
    pub history_token_budget: usize,
    pub connect_timeout_ms: u64,
    pub first_token_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub worker: LlmWorkerConfig,
    pub openai: OpenAiConfig,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            kind: LlmKind::Worker,
            max_tokens: DEFAULT_LLM_MAX_TOKENS,
            temperature: DEFAULT_LLM_TEMPERATURE,
            system_prompt: DEFAULT_SYSTEM_PROMPT.into(),
            history_turns: DEFAULT_HISTORY_TURNS,
            history_token_budget: DEFAULT_HISTORY_TOKEN_BUDGET,
            connect_timeout_ms: DEFAULT_LLM_CONNECT_TIMEOUT_MS,
            first_token_timeout_ms: DEFAULT_LLM_FIRST_TOKEN_TIMEOUT_MS,
            idle_timeout_ms: DEFAULT_LLM_IDLE_TIMEOUT_MS,
            worker: LlmWorkerConfig::default(),
            openai: OpenAiConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmKind {
    Worker,
    Openai,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmWorkerConfig {
    /// A GGUF chat model; empty = the model set's LLM.
    pub model: Option<PathBuf>,
    /// The `vaak-llm` binary; empty = next to `vaak`.
    pub binary: Option<PathBuf>,
    pub threads: usize,
    pub ctx_size: u32,
    pub max_slots: u32,
    /// A worker that has not answered its `/health` for this long (stopped, deadlocked) is
    /// killed and restarted, so one wedged process does not take every session's replies.
    pub hung_after_ms: u64,
}

impl Default for LlmWorkerConfig {
    fn default() -> Self {
        Self {
            model: None,
            binary: None,
            threads: DEFAULT_LLM_THREADS,
            ctx_size: DEFAULT_LLM_CTX,
            max_slots: DEFAULT_LLM_SLOTS,
            hung_after_ms: DEFAULT_LLM_HUNG_AFTER_MS,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiConfig {
    /// e.g. `http://127.0.0.1:8000` (the client appends `/v1/chat/completions`).
    pub base_url: String,
    pub model: String,
    /// Name of the environment variable holding the API key (the key itself never goes here).
    pub api_key_env: Option<String>,
    /// Further attempts after a failed connect (before any token arrived).
    pub retries: u32,
    /// Also start the embedded worker and answer with it when the server fails, so a dead
    /// server costs one slow turn, not the conversation.
    pub fallback_to_worker: bool,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            model: String::new(),
            api_key_env: None,
            retries: DEFAULT_LLM_RETRIES,
            fallback_to_worker: true,
        }
    }
}

impl LlmConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.worker.threads == 0 {
            return bad("thread counts must be at least 1".into());
        }
        if self.worker.hung_after_ms < 1_000 {
            return bad("llm.worker.hung_after_ms must be at least 1000".into());
        }
        if self.max_tokens == 0 || !(0.0..=2.0).contains(&self.temperature) {
            return bad("llm.max_tokens must be > 0 and llm.temperature within 0..2".into());
        }
        if self.kind == LlmKind::Openai && self.openai.base_url.is_empty() {
            return bad("llm.kind = \"openai\" needs llm.openai.base_url".into());
        }
        if let Some(var) = &self.openai.api_key_env {
            if self.kind == LlmKind::Openai && std::env::var_os(var).is_none() {
                return bad(format!(
                    "llm.openai.api_key_env names `{var}`, which is not set"
                ));
            }
        }
        Ok(())
    }
}
