//! OpenAI-compatible speech endpoints on the HTTP listener, so that what is written for
//! OpenAI's audio API — the official SDKs, Pipecat's and LiveKit's OpenAI STT/TTS services —
//! can use vaak's recognition and voices by pointing `base_url` at vaak:
//!
//! - `POST /v1/audio/transcriptions` (multipart: `file` (WAV), `model`, `language`, `prompt`,
//!   `response_format` = `json` | `text` | `verbose_json` with the language and one segment);
//! - `POST /v1/audio/speech` (JSON: `model`, `input`, `voice`, `response_format` = `wav` |
//!   `pcm` (24 kHz 16-bit mono, as OpenAI's), `speed`, and vaak's own `language`), streamed
//!   clause by clause as it is synthesised;
//! - `GET /v1/models`.
//!
//! The same API keys (`Authorization: Bearer`) and admission as every other way in; errors in
//! OpenAI's JSON shape (`{"error": {"message", "type", "param", "code"}}`) with the matching
//! HTTP status. The work itself is [`super::oneoff`], shared with the gRPC unary calls.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use super::auth::ApiKeys;
use super::oneoff::{self, OneOffError, SpeechRequest, MAX_TRANSCRIBE_S};
use crate::audio::resample::{resample_all, ToRate};
use crate::audio::{pcm, wav, PIPELINE_RATE};
use crate::session::service::{OpenError, SessionService};
use crate::text::clauses::ClauseSplitter;
use crate::text::input::echo;
use crate::text::script::{language_name, language_of_text};

/// The recogniser's model id, and the OpenAI ids accepted for it.
pub const ASR_MODEL: &str = "vaak-asr";
const ASR_ALIASES: &[&str] = &["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"];
/// The voices' model id, and the OpenAI ids accepted for it.
pub const TTS_MODEL: &str = "vaak-tts";
const TTS_ALIASES: &[&str] = &["tts-1", "tts-1-hd", "gpt-4o-mini-tts"];
/// OpenAI's own voice names: clients send them by default; each means the language's voice.
const OPENAI_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
];
/// `pcm` is 24 kHz 16-bit mono little-endian, like OpenAI's; `wav` is the same in a WAV header.
pub const SPEECH_RATE_HZ: u32 = 24_000;
/// Largest upload: the longest audio at 48 kHz stereo 32-bit float, plus the form's framing.
pub const MAX_UPLOAD_BYTES: usize = MAX_TRANSCRIBE_S as usize * 48_000 * 2 * 4 + 64 * 1024;
/// How long a refused upload is read on (and thrown away) so that its sender sees the refusal.
const DRAIN_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);
/// Synthesised clauses buffered towards a slow reader (backpressure: synthesis waits).
const SPEECH_EDGE: usize = 4;

#[derive(Clone)]
struct ApiState {
    svc: Arc<SessionService>,
    keys: ApiKeys,
}

/// The `/v1` routes.
pub fn routes(svc: Arc<SessionService>) -> Router {
    let keys = ApiKeys::from_config(&svc.backends.config.server);
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/audio/transcriptions", post(transcriptions))
        .route("/v1/audio/speech", post(speech))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES))
        .with_state(ApiState { svc, keys })
}

/// An error in OpenAI's shape.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: Option<&'static str>,
    param: Option<&'static str>,
    message: String,
}

impl ApiError {
    fn invalid(param: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: None,
            param,
            message: message.into(),
        }
    }

    fn oneoff(e: OneOffError) -> Self {
        match e {
            OneOffError::Invalid(m) => Self::invalid(None, m),
            OneOffError::Internal(m) => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                kind: "server_error",
                code: None,
                param: None,
                message: m,
            },
        }
    }

    fn refused(e: OpenError) -> Self {
        let status = match e {
            OpenError::Draining | OpenError::Full { .. } | OpenError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            OpenError::RateLimited { .. } => {
                return Self {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    kind: "requests",
                    code: Some("rate_limit_exceeded"),
                    param: None,
                    message: e.to_string(),
                }
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            kind: "server_error",
            code: Some("overloaded"),
            param: None,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        });
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// The caller's tenant, from the same keys as the gRPC API.
fn authenticate(st: &ApiState, headers: &HeaderMap) -> Result<String, ApiError> {
    st.keys
        .authenticate(
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
            headers.get("x-api-key").map(|v| v.as_bytes()),
        )
        .map_err(|why| ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "invalid_request_error",
            code: Some("invalid_api_key"),
            param: None,
            message: why.to_string(),
        })
}

/// A request of `model` for a `what` endpoint: vaak's id or one of OpenAI's.
fn check_model(model: &str, ours: &str, aliases: &[&str]) -> Result<(), ApiError> {
    if model == ours || aliases.contains(&model) {
        return Ok(());
    }
    Err(ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "invalid_request_error",
        code: Some("model_not_found"),
        param: Some("model"),
        message: format!(
            "the model `{}` does not exist here; use {ours} (or {})",
            echo(model),
            aliases.join(", ")
        ),
    })
}

/// The response of an endpoint, counted in `/metrics` by its status.
fn counted(st: &ApiState, endpoint: &'static str, r: Result<Response, ApiError>) -> Response {
    let resp = r.unwrap_or_else(IntoResponse::into_response);
    st.svc.metrics.api_request(endpoint, resp.status().as_u16());
    resp
}

async fn models(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    let r = list_models(&st, &headers);
    counted(&st, "models", r)
}

fn list_models(st: &ApiState, headers: &HeaderMap) -> Result<Response, ApiError> {
    authenticate(st, headers)?;
    let entry = |id: &str| serde_json::json!({ "id": id, "object": "model", "created": 0, "owned_by": "vaak" });
    let data: Vec<_> = [ASR_MODEL, TTS_MODEL]
        .iter()
        .chain(ASR_ALIASES)
        .chain(TTS_ALIASES)
        .map(|id| entry(id))
        .collect();
    Ok(Json(serde_json::json!({ "object": "list", "data": data })).into_response())
}

/// What a transcription form carried.
#[derive(Default)]
struct TranscriptionForm {
    file: Option<Bytes>,
    model: Option<String>,
    language: Option<String>,
    response_format: Option<String>,
}

async fn read_form(mut form: Multipart) -> Result<TranscriptionForm, ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        let status = e.status();
        ApiError {
            status,
            kind: "invalid_request_error",
            code: None,
            param: None,
            message: format!("cannot read the form: {}", e.body_text()),
        }
    };
    let mut out = TranscriptionForm::default();
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name().unwrap_or_default() {
            "file" => out.file = Some(field.bytes().await.map_err(bad)?),
            "model" => out.model = Some(field.text().await.map_err(bad)?),
            "language" => out.language = Some(field.text().await.map_err(bad)?),
            "response_format" => out.response_format = Some(field.text().await.map_err(bad)?),
            // Accepted and not used: the prompt, temperature, timestamp granularities…
            _ => {
                field.bytes().await.map_err(bad)?;
            }
        }
    }
    Ok(out)
}

async fn transcriptions(State(st): State<ApiState>, req: Request) -> Response {
    let started = std::time::Instant::now();
    let r = transcribe_request(&st, req).await;
    if r.is_ok() {
        st.svc
            .metrics
            .observe("api_transcription", started.elapsed());
    }
    counted(&st, "transcriptions", r)
}

/// Reads and throws away what is left of a refused request's body (at most
/// [`MAX_UPLOAD_BYTES`], for at most [`DRAIN_WITHIN`]): a client still sending its upload then
/// reads the refusal instead of a connection reset under it.
async fn drain(body: Body) {
    let mut chunks = body.into_data_stream();
    let mut left = MAX_UPLOAD_BYTES;
    let _ = tokio::time::timeout(DRAIN_WITHIN, async {
        while let Some(Ok(chunk)) = chunks.next().await {
            left = left.saturating_sub(chunk.len());
            if left == 0 {
                break;
            }
        }
    })
    .await;
}

/// The caller is checked before the upload is read; a refused one's upload is drained.
async fn transcribe_request(st: &ApiState, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let tenant = match authenticate(st, &parts.headers) {
        Ok(t) => t,
        Err(refused) => {
            drain(body).await;
            return Err(refused);
        }
    };
    let form = Multipart::from_request(Request::from_parts(parts, body), st).await;
    transcribe_form(st, &tenant, form).await
}

async fn transcribe_form(
    st: &ApiState,
    tenant: &str,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    // Not a multipart form (a JSON body, no boundary): OpenAI's shape, not axum's text.
    let form = form.map_err(|e| ApiError::invalid(None, e.body_text()))?;
    let form = read_form(form).await?;
    check_model(form.model.as_deref().unwrap_or(""), ASR_MODEL, ASR_ALIASES)?;
    let format = form.response_format.as_deref().unwrap_or("json");
    if !["json", "text", "verbose_json"].contains(&format) {
        return Err(ApiError::invalid(
            Some("response_format"),
            format!(
                "response_format `{}` is not served; use json, text or verbose_json",
                echo(format)
            ),
        ));
    }
    let file = form
        .file
        .ok_or_else(|| ApiError::invalid(Some("file"), "the form has no `file`"))?;
    let (audio, rate) = wav::decode_mono("the uploaded file", &file)
        .map_err(|e| ApiError::invalid(Some("file"), format!("{e}; vaak reads WAV files")))?;
    if audio.len() as u64 > MAX_TRANSCRIBE_S * u64::from(rate) {
        return Err(ApiError::invalid(
            Some("file"),
            format!("audio longer than {MAX_TRANSCRIBE_S} s"),
        ));
    }
    let pcm = resample_all(&audio, rate, PIPELINE_RATE)
        .map_err(|e| ApiError::invalid(Some("file"), e.to_string()))?;
    let backends = &st.svc.backends;
    let asked: Vec<String> = form
        .language
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect();
    let languages = oneoff::languages(&backends.config.pipeline.languages, &asked)
        .map_err(|e| ApiError::invalid(Some("language"), e.to_string()))?;
    let _slot = st.svc.admit("openai", tenant).map_err(ApiError::refused)?;
    let t = oneoff::transcribe(backends, pcm, languages)
        .await
        .map_err(ApiError::oneoff)?;
    debug!(language = %t.language, audio_s = t.audio_s, "transcription served");
    Ok(match format {
        "text" => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", t.text),
        )
            .into_response(),
        "verbose_json" => Json(serde_json::json!({
            "task": "transcribe",
            "language": language_name(&t.language).to_lowercase(),
            "language_code": t.language,
            "duration": t.audio_s,
            "text": t.text,
            "segments": [{
                "id": 0, "seek": 0, "start": 0.0, "end": t.audio_s, "text": t.text,
                "tokens": [], "temperature": 0.0, "avg_logprob": 0.0,
                "compression_ratio": 0.0, "no_speech_prob": 0.0,
            }],
        }))
        .into_response(),
        _ => Json(serde_json::json!({ "text": t.text })).into_response(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpeechBody {
    model: String,
    input: String,
    #[serde(default)]
    voice: Option<String>,
    #[serde(default)]
    response_format: Option<String>,
    #[serde(default)]
    speed: Option<f32>,
    /// vaak's own: the language to speak (else told by the input's script).
    #[serde(default)]
    language: Option<String>,
    /// OpenAI's style instructions: accepted, not used.
    #[serde(default)]
    #[allow(dead_code)]
    instructions: Option<String>,
    /// OpenAI's `audio` (raw bytes) is what vaak streams; `sse` is not served.
    #[serde(default)]
    stream_format: Option<String>,
}

/// The language and voice a speech request means.
fn voice_and_language(
    st: &ApiState,
    body: &SpeechBody,
) -> Result<(String, Option<String>), ApiError> {
    let served = &st.svc.backends.config.pipeline.languages;
    let named = body
        .voice
        .as_deref()
        .filter(|v| !v.is_empty() && !OPENAI_VOICES.contains(v));
    let choices = st.svc.backends.tts.voices();
    let language = match (&body.language, named) {
        (Some(l), _) if !l.is_empty() => l.clone(),
        // A vaak voice says which language it speaks.
        (_, Some(v)) => choices
            .iter()
            .find(|c| c.name == v)
            .map(|c| c.language.clone())
            .ok_or_else(|| {
                ApiError::invalid(
                    Some("voice"),
                    format!(
                        "no voice is named `{}`; vaak's voices: {}",
                        echo(v),
                        choices
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?,
        // Else the script of the text (Latin: English when served).
        _ => language_of_text(&body.input, served)
            .map(|(l, _)| l)
            .or_else(|| served.first().cloned())
            .unwrap_or_default(),
    };
    Ok((language, named.map(str::to_string)))
}

async fn speech(
    State(st): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<SpeechBody>, JsonRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let r = start_speech(&st, &headers, body).await;
    if r.is_ok() {
        // The first clause is synthesised before the response starts: its first byte is ready.
        st.svc
            .metrics
            .observe("api_speech_first_byte", started.elapsed());
    }
    counted(&st, "speech", r)
}

async fn start_speech(
    st: &ApiState,
    headers: &HeaderMap,
    body: Result<Json<SpeechBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let tenant = authenticate(st, headers)?;
    let Json(body) = body.map_err(|e| ApiError::invalid(None, e.body_text()))?;
    check_model(&body.model, TTS_MODEL, TTS_ALIASES)?;
    let wav_out = match body.response_format.as_deref().unwrap_or("wav") {
        "wav" => true,
        "pcm" => false,
        other => {
            return Err(ApiError::invalid(
                Some("response_format"),
                format!(
                    "response_format `{}` is not served; vaak streams wav or pcm",
                    echo(other)
                ),
            ))
        }
    };
    if body.stream_format.as_deref().is_some_and(|f| f != "audio") {
        return Err(ApiError::invalid(
            Some("stream_format"),
            "only stream_format `audio` is served",
        ));
    }
    let (language, voice) = voice_and_language(st, &body)?;
    let backends = Arc::clone(&st.svc.backends);
    let mut ask = SpeechRequest {
        text: body.input,
        language,
        voice,
        speed: body.speed.unwrap_or(0.0),
    };
    let speed = ask.check(&backends).map_err(ApiError::oneoff)?;
    let slot = st.svc.admit("openai", &tenant).map_err(ApiError::refused)?;

    // Clause by clause: the first is said before the response starts (so a bad voice is a
    // clear error, not an empty body); the rest stream as they are synthesised.
    let mut splitter = ClauseSplitter::new();
    let mut clauses = splitter.push(&ask.text);
    clauses.extend(splitter.finish());
    let mut clauses = clauses.into_iter().filter(|c| !c.trim().is_empty());
    let first = clauses.next().unwrap_or_else(|| ask.text.clone());
    let (lang, voice) = (ask.language.clone(), ask.voice.clone());
    let speech = oneoff::synthesize(&backends, first, lang.clone(), voice.clone(), speed)
        .await
        .map_err(ApiError::oneoff)?;
    let mut to_rate = ToRate::new(SPEECH_RATE_HZ);
    let mut head = if wav_out {
        streaming_wav_header()
    } else {
        Vec::new()
    };
    head.extend(pcm16(&mut to_rate, &speech.audio, speech.sample_rate));
    let rest: Vec<String> = clauses.collect();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(SPEECH_EDGE);
    // Owned by the session service's tracker: shutdown waits for it.
    st.svc.tracker().spawn(async move {
        let _slot = slot;
        if tx.send(Ok(Bytes::from(head))).await.is_err() {
            return;
        }
        for clause in rest {
            let said =
                oneoff::synthesize(&backends, clause, lang.clone(), voice.clone(), speed).await;
            let chunk = match said {
                Ok(s) => Ok(Bytes::from(pcm16(&mut to_rate, &s.audio, s.sample_rate))),
                Err(e) => {
                    warn!(error = %e, "speech stream ended early");
                    Err(std::io::Error::other(e.to_string()))
                }
            };
            let failed = chunk.is_err();
            // A client that went away stops the synthesis.
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
        let mut tail = Vec::new();
        if to_rate.finish(&mut tail).is_ok() && !tail.is_empty() {
            let _ = tx.send(Ok(Bytes::from(le_bytes(&tail)))).await;
        }
    });
    let content_type = if wav_out { "audio/wav" } else { "audio/pcm" };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::HeaderName::from_static("x-vaak-voice"),
                speech.voice,
            ),
        ],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

/// Audio at `rate` as 16-bit little-endian samples at [`SPEECH_RATE_HZ`].
fn pcm16(to_rate: &mut ToRate, audio: &[f32], rate: u32) -> Vec<u8> {
    match to_rate.convert(audio, rate) {
        Ok(a) => le_bytes(&a),
        Err(e) => {
            warn!(error = %e, "cannot resample speech");
            Vec::new()
        }
    }
}

fn le_bytes(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|&s| pcm::f32_to_i16(s).to_le_bytes())
        .collect()
}

/// A WAV header for 16-bit mono audio at [`SPEECH_RATE_HZ`] whose length is not known yet
/// (the sizes say "as long as the stream", the usual form for streamed WAV; the data size is
/// the largest whole number of samples, as readers check it against the sample size).
fn streaming_wav_header() -> Vec<u8> {
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&1u16.to_le_bytes()); // mono
    h.extend_from_slice(&SPEECH_RATE_HZ.to_le_bytes());
    h.extend_from_slice(&(SPEECH_RATE_HZ * 2).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&(u32::MAX - 1).to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_and_aliases() {
        assert!(check_model("whisper-1", ASR_MODEL, ASR_ALIASES).is_ok());
        assert!(check_model(ASR_MODEL, ASR_MODEL, ASR_ALIASES).is_ok());
        let e = check_model("tts-1", ASR_MODEL, ASR_ALIASES).unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e = check_model(&"x".repeat(5000), TTS_MODEL, TTS_ALIASES).unwrap_err();
        assert!(e.message.len() < 200, "{}", e.message);
    }

    #[test]
    fn the_streaming_header_is_a_wav_header_hound_reads() {
        let mut bytes = streaming_wav_header();
        bytes.extend(le_bytes(&[0.0, 0.5, -0.5]));
        let r = hound::WavReader::new(std::io::Cursor::new(bytes)).expect("a WAV header");
        let spec = r.spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (24_000, 1, 16)
        );
    }
}
