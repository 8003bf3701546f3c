//! The HTTP face of the worker: OpenAI-compatible routes over axum.
//!
//! Handlers validate, template and tokenise (cheap, model-only work), then hand a
//! [`GenRequest`] to the inference thread and turn its [`Event`]s into either Server-Sent
//! Events or one JSON body. Dropping the response (client gone) drops the event receiver,
//! which the inference thread notices before its next token.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;

use crate::api::{
    parse_request, ApiError, ChatChunk, ChatCompletion, Choice, ChunkChoice, Delta, OutMessage,
    PromptTokensDetails, Usage,
};
use crate::engine::{EngineSender, Event, GenRequest, SubmitError, Summary, EVENT_CAPACITY};
use crate::prompt::{PromptBuilder, PromptError};
use crate::slots::Token;

/// Header that names the KV-cache session (alternative to the `user` field).
pub const SESSION_HEADER: &str = "x-vaak-session";

/// vaak's extension: put a conversation whose last user message is still being spoken into the
/// session's KV cache, so the final request only prefills what was said after it.
pub const PREFILL_PATH: &str = "/v1/vaak/prefill";

/// Shared state of all handlers.
pub struct AppState {
    pub engine: EngineSender,
    pub prompt: PromptBuilder,
    pub model_name: String,
    pub ctx_per_slot: usize,
    pub max_tokens_default: u32,
    pub started: u64,
    pub next_id: AtomicU64,
}

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route(PREFILL_PATH, post(prefill))
        .fallback(|uri: Uri| async move { ApiError::not_found(uri.path()) })
        .with_state(state)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn health(State(st): State<Arc<AppState>>) -> Response {
    if st.engine.is_alive() {
        Json(json!({"status": "ok", "model": st.model_name})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "error", "model": st.model_name, "error": "inference thread stopped"})),
        )
            .into_response()
    }
}

async fn models(State(st): State<Arc<AppState>>) -> Response {
    Json(json!({
        "object": "list",
        "data": [{
            "id": st.model_name,
            "object": "model",
            "created": st.started,
            "owned_by": "vaak",
            "meta": {"n_ctx_per_session": st.ctx_per_slot},
        }]
    }))
    .into_response()
}

/// Identity of one completion, repeated in each chunk.
#[derive(Clone)]
struct Meta {
    id: String,
    created: u64,
    model: String,
}

/// Hands a request to the inference thread: a full queue is 429, a stopped thread 503.
fn submit(st: &AppState, gen: GenRequest) -> Result<(), ApiError> {
    st.engine.submit(gen).map_err(|e| match e {
        SubmitError::Full => ApiError::busy(),
        SubmitError::Closed => ApiError::unavailable("the inference thread has stopped"),
    })
}

/// A rendered prompt that fits a session's context, or the API error that says why not.
fn fitting_prompt(
    st: &AppState,
    built: Result<Vec<Token>, PromptError>,
) -> Result<Vec<Token>, ApiError> {
    let prompt = built.map_err(|e| match e {
        PromptError::Nul | PromptError::OpenTurn => {
            ApiError::bad_request(e.to_string(), Some("messages"))
        }
        PromptError::Template(_) => ApiError::internal(e.to_string()),
    })?;
    if prompt.len() >= st.ctx_per_slot {
        return Err(ApiError::context_length(prompt.len(), st.ctx_per_slot));
    }
    Ok(prompt)
}

async fn chat(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let received = Instant::now();
    let session_header = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok());
    let req = match parse_request(&body, session_header, st.max_tokens_default) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let prompt = match fitting_prompt(&st, st.prompt.build(&req.messages)) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let n = st.next_id.fetch_add(1, Ordering::Relaxed);
    let meta = Meta {
        id: format!("chatcmpl-{:x}{n:04x}", st.started),
        created: unix_now(),
        model: st.model_name.clone(),
    };
    let (tx, rx) = mpsc::channel(EVENT_CAPACITY);
    let gen = GenRequest {
        id: meta.id.clone(),
        prompt,
        params: req.params,
        session: req.session,
        received,
        prefill_only: false,
        events: tx,
    };
    if let Err(e) = submit(&st, gen) {
        return e.into_response();
    }
    if req.stream {
        Sse::new(sse_stream(rx, meta)).into_response()
    } else {
        collect(rx, meta).await
    }
}

/// `POST /v1/vaak/prefill`: the chat request's body (only `messages` and the session count);
/// answers `{"object":"vaak.prefill","prompt_tokens","cached_tokens","prefill_ms"}` once the
/// tokens are in the cache. Needs a session (a key-less prefill would be thrown away).
async fn prefill(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let received = Instant::now();
    let session_header = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok());
    let req = match parse_request(&body, session_header, st.max_tokens_default) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if req.session.is_none() {
        return ApiError::bad_request(
            "a prefill needs a session (`user` or the x-vaak-session header)",
            Some("user"),
        )
        .into_response();
    }
    let prompt = match fitting_prompt(&st, st.prompt.build_open_turn(&req.messages)) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let n = st.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel(EVENT_CAPACITY);
    let gen = GenRequest {
        id: format!("prefill-{:x}{n:04x}", st.started),
        prompt,
        params: req.params,
        session: req.session,
        received,
        prefill_only: true,
        events: tx,
    };
    if let Err(e) = submit(&st, gen) {
        return e.into_response();
    }
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Delta(_) => {}
            Event::Done(s) => {
                return Json(json!({
                    "object": "vaak.prefill",
                    "prompt_tokens": s.prompt_tokens,
                    "cached_tokens": s.cached_tokens,
                    "prefill_ms": s.timings.prefill_ms,
                }))
                .into_response()
            }
            Event::Failed(msg) => return ApiError::internal(msg).into_response(),
        }
    }
    ApiError::unavailable("the inference thread stopped during the prefill").into_response()
}

fn usage(s: &Summary) -> Usage {
    Usage {
        prompt_tokens: s.prompt_tokens,
        completion_tokens: s.completion_tokens,
        total_tokens: s.prompt_tokens + s.completion_tokens,
        prompt_tokens_details: PromptTokensDetails {
            cached_tokens: s.cached_tokens,
        },
    }
}

fn chunk(
    meta: &Meta,
    delta: Delta,
    finish: Option<&'static str>,
    done: Option<&Summary>,
) -> ChatChunk {
    ChatChunk {
        id: meta.id.clone(),
        object: "chat.completion.chunk",
        created: meta.created,
        model: meta.model.clone(),
        choices: vec![ChunkChoice {
            index: 0,
            delta,
            finish_reason: finish,
        }],
        usage: done.map(usage),
        timings: done.map(|s| s.timings.clone()),
    }
}

fn json_event<T: serde::Serialize>(value: &T) -> SseEvent {
    // Serialising these plain structs cannot fail; an empty object is a harmless fallback.
    SseEvent::default().data(serde_json::to_string(value).unwrap_or_else(|_| "{}".into()))
}

/// Turns engine events into SSE frames. Ends with `[DONE]` after a normal finish; after a
/// failure it ends with an `{"error":…}` frame and no `[DONE]`, so a client can tell.
fn sse_frames(
    rx: mpsc::Receiver<Event>,
    meta: Meta,
) -> impl Stream<Item = SseEvent> + Send + 'static {
    futures::stream::unfold(Some((rx, meta, true)), |state| async move {
        let (mut rx, meta, first) = state?;
        let frames = match rx.recv().await? {
            Event::Delta(text) => {
                let delta = Delta {
                    role: first.then_some("assistant"),
                    content: Some(text),
                };
                return Some((
                    vec![json_event(&chunk(&meta, delta, None, None))],
                    Some((rx, meta, false)),
                ));
            }
            Event::Done(summary) => vec![
                json_event(&chunk(
                    &meta,
                    Delta::default(),
                    Some(summary.finish_reason.as_str()),
                    Some(&summary),
                )),
                SseEvent::default().data("[DONE]"),
            ],
            Event::Failed(msg) => vec![json_event(&ApiError::internal(msg).body())],
        };
        Some((frames, None))
    })
    .flat_map(futures::stream::iter)
}

fn sse_stream(
    rx: mpsc::Receiver<Event>,
    meta: Meta,
) -> impl Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    sse_frames(rx, meta).map(Ok)
}

async fn collect(mut rx: mpsc::Receiver<Event>, meta: Meta) -> Response {
    let mut text = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Delta(t) => text.push_str(&t),
            Event::Done(s) => {
                let body = ChatCompletion {
                    id: meta.id,
                    object: "chat.completion",
                    created: meta.created,
                    model: meta.model,
                    choices: vec![Choice {
                        index: 0,
                        message: OutMessage {
                            role: "assistant",
                            content: text,
                        },
                        finish_reason: s.finish_reason.as_str(),
                    }],
                    usage: usage(&s),
                    timings: s.timings,
                };
                return Json(body).into_response();
            }
            Event::Failed(msg) => return ApiError::internal(msg).into_response(),
        }
    }
    ApiError::unavailable("the inference thread stopped during generation").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Timings;
    use crate::engine::FinishReason;

    fn meta() -> Meta {
        Meta {
            id: "chatcmpl-t".into(),
            created: 7,
            model: "m".into(),
        }
    }

    async fn sse_body(events: Vec<Event>) -> String {
        let (tx, rx) = mpsc::channel(16);
        for e in events {
            tx.try_send(e).unwrap();
        }
        drop(tx);
        let resp = Sse::new(sse_stream(rx, meta())).into_response();
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn data_lines(body: &str) -> Vec<&str> {
        body.split("\n\n")
            .filter(|f| !f.is_empty())
            .map(|f| {
                f.strip_prefix("data: ")
                    .expect("every frame is one data line")
            })
            .collect()
    }

    fn summary() -> Summary {
        Summary {
            finish_reason: FinishReason::Stop,
            prompt_tokens: 10,
            completion_tokens: 3,
            cached_tokens: 6,
            timings: Timings {
                queue_ms: 0.1,
                prefill_ms: 5.0,
                prefill_tokens: 4,
                first_token_ms: 6.0,
                decode_tokens_per_s: 30.0,
            },
        }
    }

    #[tokio::test]
    async fn stream_frames_deltas_usage_and_done() {
        let body = sse_body(vec![
            Event::Delta("नम".into()),
            Event::Delta("स्ते".into()),
            Event::Done(summary()),
        ])
        .await;
        let lines = data_lines(&body);
        assert_eq!(lines.len(), 4, "{body}");
        assert_eq!(lines[3], "[DONE]");
        let chunks: Vec<serde_json::Value> = lines[..3]
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(chunks[1]["choices"][0]["delta"].get("role").is_none());
        let text: String = chunks[..2]
            .iter()
            .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(text, "नमस्ते");
        let last = &chunks[2];
        assert_eq!(last["object"], "chat.completion.chunk");
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        assert_eq!(last["usage"]["total_tokens"], 13);
        assert_eq!(last["usage"]["prompt_tokens_details"]["cached_tokens"], 6);
        assert_eq!(last["timings"]["prefill_ms"], 5.0);
        assert_eq!(last["timings"]["decode_tokens_per_s"], 30.0);
    }

    #[tokio::test]
    async fn failure_ends_without_done() {
        let body = sse_body(vec![Event::Delta("a".into()), Event::Failed("boom".into())]).await;
        let lines = data_lines(&body);
        assert_eq!(lines.len(), 2);
        let err: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(err["error"]["message"], "boom");
        assert!(!body.contains("[DONE]"));
    }

    #[tokio::test]
    async fn engine_gone_ends_stream_without_done() {
        let body = sse_body(vec![Event::Delta("a".into())]).await;
        assert_eq!(data_lines(&body).len(), 1);
    }
}
