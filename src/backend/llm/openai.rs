//! Client for OpenAI-compatible streaming chat completions (Server-Sent Events). Used for the
//! local `vaak-llm` worker and for remote servers alike; the endpoint may change at run time
//! (the worker restarts on a new port), so it is read from a `watch` channel per request.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use serde::Deserialize;
use tokio::sync::watch;

use super::{ChatRequest, Llm, LlmError, LlmEvent, LlmStream, Usage};

/// Times a request to the local worker is re-sent after a refused connection.
const WORKER_RETRIES: u32 = 3;
/// Longest SSE line accepted (a runaway server cannot make us buffer without bound).
const MAX_SSE_LINE: usize = 1 << 20;

/// Where requests go: a fixed URL, or wherever the supervised worker currently listens.
#[derive(Clone)]
pub enum Endpoint {
    Fixed(String),
    Worker(watch::Receiver<Option<String>>),
}

#[derive(Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    endpoint: Endpoint,
    model: String,
    api_key: Option<String>,
    connect_timeout: Duration,
}

impl OpenAiClient {
    pub fn new(
        endpoint: Endpoint,
        model: String,
        api_key: Option<String>,
        connect_timeout: Duration,
    ) -> Result<Self, LlmError> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| LlmError::Stream(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            http,
            endpoint,
            model,
            api_key,
            connect_timeout,
        })
    }

    /// The base URL to use now, waiting up to the connect timeout for a restarting worker.
    async fn base_url(&self) -> Result<String, LlmError> {
        match &self.endpoint {
            Endpoint::Fixed(url) => Ok(url.trim_end_matches('/').to_string()),
            Endpoint::Worker(rx) => self
                .published_url(rx, None)
                .await
                .ok_or(LlmError::WorkerDown),
        }
    }

    /// Waits up to the connect timeout for the worker to publish an address other than
    /// `avoid` (any address if `None`).
    async fn published_url(
        &self,
        rx: &watch::Receiver<Option<String>>,
        avoid: Option<&str>,
    ) -> Option<String> {
        let mut rx = rx.clone();
        let wanted = |v: &Option<String>| {
            v.as_deref()
                .is_some_and(|u| avoid != Some(u.trim_end_matches('/')))
        };
        tokio::time::timeout(self.connect_timeout, async {
            rx.wait_for(wanted).await.ok().and_then(|v| v.clone())
        })
        .await
        .ok()
        .flatten()
    }

    /// Opens a stream. A supervised worker that just died still has its old address published
    /// until the supervisor notices, so a refused connection waits for the next address
    /// (nothing was sent yet, so retrying is safe) — a crash costs the reply in flight only.
    async fn open(&self, req: ChatRequest) -> Result<LlmStream, LlmError> {
        let mut attempts = 0;
        loop {
            let base = self.base_url().await?;
            match self.send(&base, &req).await {
                Err(LlmError::Unreachable { .. })
                    if attempts < WORKER_RETRIES
                        && matches!(self.endpoint, Endpoint::Worker(_)) =>
                {
                    attempts += 1;
                    self.wait_for_new_address(&base).await;
                }
                other => return other,
            }
        }
    }

    async fn wait_for_new_address(&self, old: &str) {
        if let Endpoint::Worker(rx) = &self.endpoint {
            self.published_url(rx, Some(old)).await;
        }
    }

    /// The worker's `/v1/vaak/prefill` (a vaak extension); remote servers have none.
    async fn prefill_worker(&self, req: ChatRequest) -> Result<bool, LlmError> {
        let (Endpoint::Worker(_), Some(key)) = (&self.endpoint, &req.session_key) else {
            return Ok(false);
        };
        let base = self.base_url().await?;
        let body = serde_json::json!({ "messages": req.messages, "user": key });
        let builder = self
            .http
            .post(format!("{base}/v1/vaak/prefill"))
            .header("x-vaak-session", key)
            .json(&body);
        Self::post(&base, builder).await?;
        Ok(true)
    }

    /// Sends a request to `base`; a refused connection or a non-2xx status is the error.
    async fn post(
        base: &str,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, LlmError> {
        let resp = builder.send().await.map_err(|e| LlmError::Unreachable {
            endpoint: base.to_string(),
            detail: e.to_string(),
        })?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(LlmError::Http {
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        Ok(resp)
    }

    async fn send(&self, base: &str, req: &ChatRequest) -> Result<LlmStream, LlmError> {
        let base = base.to_string();
        let url = format!("{base}/v1/chat/completions");
        let mut body = serde_json::json!({
            "model": self.model,
            "messages": req.messages,
            "stream": true,
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
        });
        if let Some(key) = &req.session_key {
            body["user"] = serde_json::Value::String(key.clone());
        }
        let mut builder = self.http.post(&url).json(&body);
        if let Some(key) = &self.api_key {
            builder = builder.bearer_auth(key);
        }
        if let Some(key) = &req.session_key {
            builder = builder.header("x-vaak-session", key);
        }
        let resp = Self::post(&base, builder).await?;
        Ok(sse_events(resp.bytes_stream().boxed()))
    }
}

impl Llm for OpenAiClient {
    fn stream_chat(&self, req: ChatRequest) -> BoxFuture<'_, Result<LlmStream, LlmError>> {
        self.open(req).boxed()
    }

    fn prefill(&self, req: ChatRequest) -> BoxFuture<'_, Result<bool, LlmError>> {
        self.prefill_worker(req).boxed()
    }

    fn on_local_cores(&self) -> bool {
        matches!(self.endpoint, Endpoint::Worker(_))
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: u32,
}

type ByteStream = futures::stream::BoxStream<'static, Result<bytes::Bytes, reqwest::Error>>;

/// Turns an SSE byte stream into chat events. Lines may be split anywhere, including inside a
/// multi-byte character, so bytes are buffered until a full line is present.
fn sse_events(bytes: ByteStream) -> LlmStream {
    struct St {
        bytes: ByteStream,
        buf: Vec<u8>,
        usage: Option<Usage>,
        done: bool,
    }
    let st = St {
        bytes,
        buf: Vec::new(),
        usage: None,
        done: false,
    };
    futures::stream::unfold(st, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            if let Some(pos) = st.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = st.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim();
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let data = data.trim();
                if data == "[DONE]" {
                    st.done = true;
                    let usage = st.usage.take();
                    return Some((Ok(LlmEvent::Done(usage)), st));
                }
                match serde_json::from_str::<Chunk>(data) {
                    Ok(chunk) => {
                        if let Some(u) = chunk.usage {
                            st.usage = Some(Usage {
                                prompt_tokens: u.prompt_tokens,
                                completion_tokens: u.completion_tokens,
                                cached_tokens: u
                                    .prompt_tokens_details
                                    .map_or(0, |d| d.cached_tokens),
                            });
                        }
                        let text: String = chunk
                            .choices
                            .into_iter()
                            .filter_map(|c| c.delta.and_then(|d| d.content))
                            .collect();
                        if !text.is_empty() {
                            return Some((Ok(LlmEvent::Delta(text)), st));
                        }
                    }
                    Err(e) => {
                        st.done = true;
                        return Some((Err(LlmError::Stream(format!("bad SSE chunk: {e}"))), st));
                    }
                }
                continue;
            }
            if st.buf.len() > MAX_SSE_LINE {
                st.done = true;
                return Some((Err(LlmError::Stream("SSE line too long".into())), st));
            }
            match st.bytes.next().await {
                Some(Ok(b)) => st.buf.extend_from_slice(&b),
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(LlmError::Stream(e.to_string())), st));
                }
                None => {
                    st.done = true;
                    return Some((
                        Err(LlmError::Stream(
                            "server closed the stream before [DONE]".into(),
                        )),
                        st,
                    ));
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(parts: Vec<&'static [u8]>) -> ByteStream {
        futures::stream::iter(parts.into_iter().map(|p| Ok(bytes::Bytes::from_static(p)))).boxed()
    }

    #[tokio::test]
    async fn parses_split_lines_and_multibyte_text() {
        let hindi = "नमस्ते".as_bytes();
        let mut line = b"data: {\"choices\":[{\"delta\":{\"content\":\"".to_vec();
        line.extend_from_slice(hindi);
        line.extend_from_slice(b"\"}}]}\n\n");
        let leaked: &'static [u8] = Box::leak(line.into_boxed_slice());
        let (a, b) = leaked.split_at(45);
        let events: Vec<_> = sse_events(stream_of(vec![
            a,
            b,
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":7}}}\n",
            b"data: [DONE]\n",
        ]))
        .collect()
        .await;
        assert_eq!(events[0].as_ref().unwrap(), &LlmEvent::Delta("नमस्ते".into()));
        assert_eq!(
            events[1].as_ref().unwrap(),
            &LlmEvent::Done(Some(Usage {
                prompt_tokens: 10,
                cached_tokens: 7,
                completion_tokens: 2
            }))
        );
        assert_eq!(events.len(), 2);
    }

    #[tokio::test]
    async fn early_close_is_an_error() {
        let events: Vec<_> = sse_events(stream_of(vec![
            b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n",
        ]))
        .collect()
        .await;
        assert_eq!(events.len(), 2);
        assert!(matches!(events[1], Err(LlmError::Stream(_))));
    }
}
