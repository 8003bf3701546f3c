//! The gRPC transport: the `vaak.v1.Vaak` service (streaming `Converse` and the unary calls),
//! standard health and server reflection, API-key authentication, message-size limits and
//! optional TLS, all on one listener.

pub mod auth;
pub mod converse;
pub mod inbound;

use std::net::SocketAddr;
use std::sync::Arc;

use futures::Stream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

use crate::proto;
use crate::proto::vaak_server::{Vaak, VaakServer};
use crate::session::service::{OpenError, SessionService};
use crate::text::script::language_name;
use crate::transport::auth::ApiKeys;
use crate::transport::codec::{
    self, CodecError, InputDecoder, OutputEncoder, WireFormat, DEFAULT_INPUT,
};
use crate::transport::oneoff::{self, OneOffError, MAX_TRANSCRIBE_S};
use auth::tenant_of;

/// File descriptor set of `proto/vaak/v1/vaak.proto`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("vaak_descriptor");

/// The largest unary request: the longest `Transcribe` audio as 48 kHz PCM16, plus framing.
pub const MAX_UNARY_BYTES: usize = (MAX_TRANSCRIBE_S as usize) * 48_000 * 2 + 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("cannot read TLS {what} {path}: {source}")]
    TlsFile {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("TLS configuration rejected: {0}")]
    Tls(String),
    #[error("reflection service: {0}")]
    Reflection(String),
    #[error("gRPC server on {addr}: {detail}")]
    Serve { addr: SocketAddr, detail: String },
}

/// Maps a session-opening failure to its status code (with a retry hint when the daemon is
/// full: `retry-after-ms` and gRPC's `grpc-retry-pushback-ms`).
pub fn open_error_status(e: OpenError) -> Status {
    match &e {
        OpenError::Draining => Status::unavailable(e.to_string()),
        OpenError::Full { retry_after, .. }
        | OpenError::Overloaded { retry_after, .. }
        | OpenError::RateLimited { retry_after } => {
            let mut s = Status::resource_exhausted(e.to_string());
            let ms = retry_after.as_millis().to_string();
            if let Ok(v) = ms.parse::<tonic::metadata::MetadataValue<_>>() {
                s.metadata_mut().insert("retry-after-ms", v.clone());
                s.metadata_mut().insert("grpc-retry-pushback-ms", v);
            }
            s
        }
        OpenError::BadSessionId(_)
        | OpenError::UnknownLanguage { .. }
        | OpenError::UnknownVoice { .. }
        | OpenError::BadSpeechRate(_) => Status::invalid_argument(e.to_string()),
        OpenError::Store(_) | OpenError::Randomness(_) => Status::internal(e.to_string()),
    }
}

/// Wire audio errors as gRPC statuses.
impl From<CodecError> for Status {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Invalid(m) => Status::invalid_argument(m),
            CodecError::Internal(m) => Status::internal(m),
        }
    }
}

/// A refused `Converse` message as a gRPC status.
impl From<inbound::Refused> for Status {
    fn from(e: inbound::Refused) -> Self {
        match e {
            inbound::Refused::Invalid(m) => Status::invalid_argument(m),
            inbound::Refused::TooLarge(m) => Status::resource_exhausted(m),
            inbound::Refused::Internal(m) => Status::internal(m),
        }
    }
}

/// A one-off call's error as a gRPC status.
fn oneoff_status(e: OneOffError) -> Status {
    match e {
        OneOffError::Invalid(m) => Status::invalid_argument(m),
        OneOffError::Internal(m) => Status::internal(m),
    }
}

pub struct VaakService {
    svc: Arc<SessionService>,
}

impl VaakService {
    pub fn new(svc: Arc<SessionService>) -> Self {
        Self { svc }
    }
}

type EventStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<proto::ServerEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Vaak for VaakService {
    type ConverseStream = EventStream;

    async fn converse(
        &self,
        request: Request<Streaming<proto::ClientMessage>>,
    ) -> Result<Response<Self::ConverseStream>, Status> {
        let tenant = tenant_of(&request)?;
        let stream = converse::start(Arc::clone(&self.svc), tenant, request.into_inner()).await?;
        Ok(Response::new(Box::pin(stream)))
    }

    async fn transcribe(
        &self,
        request: Request<proto::TranscribeRequest>,
    ) -> Result<Response<proto::TranscribeResponse>, Status> {
        let req = request.into_inner();
        let format = WireFormat::parse(req.format.as_ref(), DEFAULT_INPUT)?;
        let samples = (req.audio.len() / format.bytes_per_sample()) as u64;
        if samples > MAX_TRANSCRIBE_S * u64::from(format.rate) {
            return Err(Status::invalid_argument(format!(
                "audio longer than {MAX_TRANSCRIBE_S} s; use Converse for long audio"
            )));
        }
        let mut decoder = InputDecoder::new(format)?;
        let mut pcm = Vec::with_capacity(samples as usize);
        let bps = format.bytes_per_sample();
        // The decoder takes at most 1 s per call.
        for chunk in req.audio.chunks(format.rate as usize * bps / 2) {
            pcm.extend(decoder.decode(chunk)?);
        }
        let backends = &self.svc.backends;
        let languages = oneoff::languages(&backends.config.pipeline.languages, &req.languages)
            .map_err(oneoff_status)?;
        let t = oneoff::transcribe(backends, pcm, languages)
            .await
            .map_err(oneoff_status)?;
        Ok(Response::new(proto::TranscribeResponse {
            text: t.text,
            language: t.language,
            confidence: t.language_prob,
            candidates: t
                .candidates
                .into_iter()
                .map(|(language, probability)| proto::LanguageScore {
                    language,
                    probability,
                })
                .collect(),
            audio_s: t.audio_s,
            compute_s: t.elapsed_s,
        }))
    }

    async fn synthesize(
        &self,
        request: Request<proto::SynthesizeRequest>,
    ) -> Result<Response<proto::SynthesizeResponse>, Status> {
        let req = request.into_inner();
        let backends = &self.svc.backends;
        let mut ask = oneoff::SpeechRequest {
            text: req.text,
            language: req.language,
            voice: Some(req.voice).filter(|v| !v.is_empty()),
            speed: req.speech_rate,
        };
        let speed = ask.check(backends).map_err(oneoff_status)?;
        let speech = oneoff::synthesize(backends, ask.text, ask.language, ask.voice, speed)
            .await
            .map_err(oneoff_status)?;
        let rate = speech.sample_rate;
        let default = WireFormat {
            encoding: codec::Encoding::Pcm16,
            rate,
        };
        let format = WireFormat::parse(req.output_format.as_ref(), default)?;
        let mut enc = OutputEncoder::new(format);
        let (mut bytes, mut n) = enc.encode(&speech.audio, rate)?;
        let (tail, m) = enc.flush()?;
        bytes.extend(tail);
        n += m;
        Ok(Response::new(proto::SynthesizeResponse {
            audio: bytes,
            sample_rate: format.rate,
            voice: speech.voice,
            audio_s: n as f32 / format.rate as f32,
        }))
    }

    async fn list_voices(
        &self,
        _request: Request<proto::ListVoicesRequest>,
    ) -> Result<Response<proto::ListVoicesResponse>, Status> {
        let voices = self
            .svc
            .backends
            .tts
            .voices()
            .into_iter()
            .map(|v| proto::Voice {
                name: v.name,
                language: v.language,
                sample_rate: v.sample_rate,
                is_default: v.is_default,
            })
            .collect();
        Ok(Response::new(proto::ListVoicesResponse { voices }))
    }

    async fn list_languages(
        &self,
        _request: Request<proto::ListLanguagesRequest>,
    ) -> Result<Response<proto::ListLanguagesResponse>, Status> {
        let languages = self
            .svc
            .backends
            .config
            .pipeline
            .languages
            .iter()
            .map(|code| proto::Language {
                code: code.clone(),
                name: language_name(code).to_string(),
                voice: self
                    .svc
                    .backends
                    .tts
                    .for_language(code)
                    .map(|e| e.name().to_string())
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(proto::ListLanguagesResponse { languages }))
    }

    async fn delete_session(
        &self,
        request: Request<proto::DeleteSessionRequest>,
    ) -> Result<Response<proto::DeleteSessionResponse>, Status> {
        let tenant = tenant_of(&request)?;
        let id = request.into_inner().session_id;
        if !crate::session::service::valid_session_id(&id) {
            return Err(Status::invalid_argument("invalid session id"));
        }
        let deleted = self
            .svc
            .delete(&tenant, &id)
            .await
            .map_err(open_error_status)?;
        if !deleted {
            return Err(Status::not_found(format!("no session `{id}`")));
        }
        Ok(Response::new(proto::DeleteSessionResponse { deleted }))
    }
}

/// Serves the API, health and reflection on `listener` until `stop` fires.
pub async fn serve(
    svc: Arc<SessionService>,
    listener: tokio::net::TcpListener,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    stop: CancellationToken,
) -> Result<(), GrpcError> {
    let cfg = svc.backends.config.server.clone();
    let addr = listener.local_addr().map_err(|e| GrpcError::Serve {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        detail: e.to_string(),
    })?;
    let keys = ApiKeys::from_config(&cfg);
    // Converse enforces `max_message_bytes` per message itself (RESOURCE_EXHAUSTED); the
    // transport limit only has to admit the largest unary request, a 30 s Transcribe.
    let api = VaakServer::new(VaakService::new(Arc::clone(&svc)))
        .max_decoding_message_size(cfg.max_message_bytes.max(MAX_UNARY_BYTES))
        .max_encoding_message_size(4 * 1024 * 1024);
    let api = tonic::service::interceptor::InterceptedService::new(api, move |req| {
        auth::check(&keys, req)
    });
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| GrpcError::Reflection(e.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| GrpcError::Reflection(e.to_string()))?;
    let mut builder = Server::builder();
    if let Some(tls) = &cfg.tls {
        let read = |what: &'static str, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| GrpcError::TlsFile {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let identity = Identity::from_pem(read("certificate", &tls.cert)?, read("key", &tls.key)?);
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(|e| GrpcError::Tls(e.to_string()))?;
    }
    builder
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(api)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            stop.cancelled_owned(),
        )
        .await
        .map_err(|e| GrpcError::Serve {
            addr,
            detail: e.to_string(),
        })
}
