//! The OpenAI chat-completions wire types, and request validation.
//!
//! vaak's daemon has one LLM client for this worker and for remote vLLM / llama.cpp / Ollama
//! servers, so the worker speaks exactly that protocol. Extensions are additive: a `timings`
//! object next to `usage`, and `x-vaak-session` as an alternative to the `user` field.
//! Validation lives here (no model needed) so that bad requests become 400s before anything
//! reaches the inference thread.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Most stop strings a request may give (OpenAI's limit).
const MAX_STOPS: usize = 4;

/// `POST /v1/chat/completions` body. Unknown fields are ignored, as OpenAI-compatible servers
/// do, so clients that send `presence_penalty`, `stream_options` … still work. `model` is one
/// of them: a worker serves exactly one model.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<InMessage>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    /// llama.cpp's multiplicative repetition penalty (not OpenAI; llama.cpp server and vLLM
    /// accept it too).
    #[serde(default)]
    pub repetition_penalty: Option<f32>,
    #[serde(default)]
    pub stop: Option<StopField>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub n: Option<u32>,
}

/// `stop` is a string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    One(String),
    Many(Vec<String>),
}

/// One chat message as received.
#[derive(Debug, Deserialize)]
pub struct InMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

/// `content` is a string or a list of typed parts (only `text` parts are supported).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a multi-part `content`.
#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// A chat role the prompt template understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    /// The role name chat templates expect.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// A validated message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// Sampling and stopping settings of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    pub top_p: f32,
    /// Multiplicative penalty on tokens seen in the last [`PENALTY_LAST_N`] generated tokens.
    pub repetition_penalty: f32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    /// `None`: a random seed.
    pub seed: Option<u32>,
    pub max_tokens: u32,
    pub stop: Vec<String>,
}

/// A request after validation, ready for templating.
#[derive(Debug, Clone)]
pub struct ValidRequest {
    pub messages: Vec<Message>,
    pub params: SamplingParams,
    pub stream: bool,
    /// KV-cache session key.
    pub session: Option<String>,
}

/// `value` if it lies within `lo..=hi`, else a 400 naming the field and its bounds.
fn in_range(field: &'static str, value: f32, lo: f32, hi: f32) -> Result<f32, ApiError> {
    if (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::bad_request(
            format!("`{field}` must be between {lo} and {hi}"),
            Some(field),
        ))
    }
}

/// Small models loop ("ను ను ను …") without a repetition penalty; 1.1 is llama.cpp's classic.
pub const DEFAULT_REPETITION_PENALTY: f32 = 1.1;
/// How many recent generated tokens the penalties look at.
pub const PENALTY_LAST_N: i32 = 64;

/// Default temperature when the request gives none (OpenAI's 1.0 is too wild for sub-2B
/// models; llama.cpp's server uses 0.8).
pub const DEFAULT_TEMPERATURE: f32 = 0.7;

/// Parses and validates a request body. `header_session` is the `x-vaak-session` header, which
/// wins over the `user` field.
pub fn parse_request(
    body: &[u8],
    header_session: Option<&str>,
    max_tokens_default: u32,
) -> Result<ValidRequest, ApiError> {
    let req: ChatRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}"), None))?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request(
            "`messages` must contain at least one message",
            Some("messages"),
        ));
    }
    let messages = req
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| validate_message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(n) = req.n {
        if n != 1 {
            return Err(ApiError::bad_request("only n = 1 is supported", Some("n")));
        }
    }
    let temperature = in_range(
        "temperature",
        req.temperature.unwrap_or(DEFAULT_TEMPERATURE),
        0.0,
        2.0,
    )?;
    let top_p = req.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::bad_request(
            "`top_p` must be in (0, 1]",
            Some("top_p"),
        ));
    }
    let repetition_penalty = in_range(
        "repetition_penalty",
        req.repetition_penalty.unwrap_or(DEFAULT_REPETITION_PENALTY),
        1.0,
        2.0,
    )?;
    let frequency_penalty = in_range(
        "frequency_penalty",
        req.frequency_penalty.unwrap_or(0.0),
        -2.0,
        2.0,
    )?;
    let presence_penalty = in_range(
        "presence_penalty",
        req.presence_penalty.unwrap_or(0.0),
        -2.0,
        2.0,
    )?;
    let max_tokens = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(max_tokens_default);
    if max_tokens == 0 {
        return Err(ApiError::bad_request(
            "`max_tokens` must be at least 1",
            Some("max_tokens"),
        ));
    }
    let stop = match req.stop {
        None => Vec::new(),
        Some(StopField::One(s)) => vec![s],
        Some(StopField::Many(v)) => v,
    };
    if stop.len() > MAX_STOPS {
        return Err(ApiError::bad_request(
            format!("at most {MAX_STOPS} stop strings are allowed"),
            Some("stop"),
        ));
    }
    // Any integer is accepted as a seed; it is folded into llama.cpp's 32 bits.
    let seed = req.seed.map(|s| (s as u64 & 0xFFFF_FFFF) as u32);
    let session = header_session
        .map(str::to_owned)
        .or(req.user)
        .filter(|s| !s.is_empty());
    Ok(ValidRequest {
        messages,
        params: SamplingParams {
            temperature,
            top_p,
            repetition_penalty,
            frequency_penalty,
            presence_penalty,
            seed,
            max_tokens,
            stop,
        },
        stream: req.stream.unwrap_or(false),
        session,
    })
}

fn validate_message(i: usize, m: InMessage) -> Result<Message, ApiError> {
    let role = match m.role.as_str() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(ApiError::bad_request(
                format!(
                    "messages[{i}]: unknown role {other:?} (expected system, user or assistant)"
                ),
                Some("messages"),
            ))
        }
    };
    let content = match m.content {
        None => String::new(),
        Some(Content::Text(t)) => t,
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for p in parts {
                match (p.kind.as_str(), p.text) {
                    ("text", Some(t)) => text.push_str(&t),
                    (kind, _) => {
                        return Err(ApiError::bad_request(
                            format!(
                                "messages[{i}]: content part of type {kind:?} is not supported"
                            ),
                            Some("messages"),
                        ))
                    }
                }
            }
            text
        }
    };
    if content.contains('\0') {
        return Err(ApiError::bad_request(
            format!("messages[{i}]: content contains a NUL character"),
            Some("messages"),
        ));
    }
    Ok(Message { role, content })
}

/// An OpenAI-style error response: `{"error":{"message","type","code"}}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub code: Option<String>,
    pub param: Option<&'static str>,
}

impl ApiError {
    /// 400 `invalid_request_error`.
    pub fn bad_request(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            code: None,
            param,
        }
    }

    /// 400 for a prompt that does not fit the context window.
    pub fn context_length(prompt_tokens: usize, ctx: usize) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: format!(
                "the prompt is {prompt_tokens} tokens, which does not fit this worker's \
                 context of {ctx} tokens per session"
            ),
            kind: "invalid_request_error",
            code: Some("context_length_exceeded".into()),
            param: Some("messages"),
        }
    }

    /// 429: the bounded request queue is full.
    pub fn busy() -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "the worker's request queue is full; retry later".into(),
            kind: "rate_limit_error",
            code: Some("queue_full".into()),
            param: None,
        }
    }

    /// 503: the inference thread is gone.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            kind: "server_error",
            code: Some("engine_unavailable".into()),
            param: None,
        }
    }

    /// 500 for a failure during inference.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            code: Some("inference_failed".into()),
            param: None,
        }
    }

    /// 404 for unknown routes.
    pub fn not_found(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!("no route {path}"),
            kind: "invalid_request_error",
            code: Some("not_found".into()),
            param: None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: self.message.clone(),
                kind: self.kind,
                code: self.code.clone(),
                param: self.param,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// `{"error": …}`
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The inside of an error body.
#[derive(Debug, Serialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub code: Option<String>,
    pub param: Option<&'static str>,
}

/// Token counts, OpenAI shape.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
    pub prompt_tokens_details: PromptTokensDetails,
}

/// How much of the prompt came from the KV cache.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PromptTokensDetails {
    pub cached_tokens: usize,
}

/// vaak extension: where the time went.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Timings {
    /// Waiting for a free slot / the inference thread.
    pub queue_ms: f64,
    /// Decoding the uncached part of the prompt.
    pub prefill_ms: f64,
    /// Prompt tokens actually decoded (prompt minus cached).
    pub prefill_tokens: usize,
    /// From the request's arrival to the first generated token.
    pub first_token_ms: f64,
    /// Generated tokens per second after the first one.
    pub decode_tokens_per_s: f64,
}

/// `delta` of a streamed chunk.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// One choice of a streamed chunk.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<&'static str>,
}

/// `chat.completion.chunk`
#[derive(Debug, Clone, Serialize)]
pub struct ChatChunk {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
}

/// The assistant message of a non-streamed answer.
#[derive(Debug, Clone, Serialize)]
pub struct OutMessage {
    pub role: &'static str,
    pub content: String,
}

/// One choice of a non-streamed answer.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub index: u32,
    pub message: OutMessage,
    pub finish_reason: &'static str,
}

/// `chat.completion`
#[derive(Debug, Clone, Serialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
    pub timings: Timings,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<ValidRequest, ApiError> {
        parse_request(body.as_bytes(), None, 256)
    }

    #[test]
    fn minimal_request() {
        let r = parse(r#"{"messages":[{"role":"user","content":"hi"}]}"#).unwrap();
        assert_eq!(r.messages.len(), 1);
        assert!(!r.stream);
        assert_eq!(r.params.max_tokens, 256);
        assert_eq!(r.params.temperature, DEFAULT_TEMPERATURE);
        assert!(r.session.is_none());
    }

    #[test]
    fn full_request() {
        let r = parse(
            r#"{"model":"x","messages":[{"role":"system","content":"s"},
            {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
            {"role":"assistant","content":null}],
            "stream":true,"max_tokens":5,"temperature":0,"top_p":0.9,"stop":"\n",
            "seed":-1,"user":"u1","presence_penalty":0.5,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert!(r.stream);
        assert_eq!(r.messages[1].content, "ab");
        assert_eq!(r.messages[2].content, "");
        assert_eq!(r.params.stop, vec!["\n".to_string()]);
        assert_eq!(r.params.seed, Some(u32::MAX));
        assert_eq!(r.session.as_deref(), Some("u1"));
        assert_eq!(r.params.max_tokens, 5);
    }

    #[test]
    fn header_session_wins() {
        let r = parse_request(
            br#"{"messages":[{"role":"user","content":"hi"}],"user":"u"}"#,
            Some("h"),
            8,
        )
        .unwrap();
        assert_eq!(r.session.as_deref(), Some("h"));
    }

    #[test]
    fn bad_requests_are_400() {
        for body in [
            "not json",
            r#"{"messages":[]}"#,
            r#"{"messages":[{"role":"wizard","content":"x"}]}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"temperature":5}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"n":2}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}"#,
            r#"{"model":"m"}"#,
        ] {
            let e = parse(body).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
            let v = serde_json::to_value(e.body()).unwrap();
            assert_eq!(v["error"]["type"], "invalid_request_error");
            assert!(v["error"]["message"].as_str().unwrap().len() > 3);
        }
    }

    #[test]
    fn chunk_serialises_like_openai() {
        let c = ChatChunk {
            id: "chatcmpl-1".into(),
            object: "chat.completion.chunk",
            created: 1,
            model: "m".into(),
            choices: vec![ChunkChoice {
                index: 0,
                delta: Delta {
                    role: None,
                    content: Some("नम".into()),
                },
                finish_reason: None,
            }],
            usage: None,
            timings: None,
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["choices"][0]["delta"]["content"], "नम");
        assert!(v["choices"][0]["finish_reason"].is_null());
        assert!(v.get("usage").is_none());
    }
}
