//! The one door for configuration: a TOML file deserialised into these structs (unknown keys are
//! errors), every default a named constant, validated once at start-up. Secrets never live here:
//! an API key is named by the environment variable that holds it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::tts::TtsConfig;

pub const DEFAULT_LANGUAGES: &[&str] = &[
    "en", "hi", "bn", "ta", "te", "mr", "gu", "kn", "ml", "pa", "ur",
];
pub const DEFAULT_GRPC_LISTEN: &str = "127.0.0.1:50051";
pub const DEFAULT_MAX_SESSIONS: u32 = 8;
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_AUDIOSOCKET_LISTEN: &str = "127.0.0.1:9092";
pub const DEFAULT_HANDOFF_DIGIT: &str = "0";
pub const DEFAULT_DTMF_TURN_MS: u64 = 2_000;
pub const DEFAULT_VAD_THRESHOLD: f32 = 0.5;
pub const DEFAULT_VAD_NEG_THRESHOLD: f32 = 0.35;
pub const DEFAULT_MIN_SPEECH_MS: u32 = 250;
pub const DEFAULT_MIN_SILENCE_MS: u32 = 500;
pub const DEFAULT_SPEECH_PAD_MS: u32 = 200;
pub const DEFAULT_MAX_UTTERANCE_MS: u32 = 28_000;
pub const DEFAULT_ASR_THREADS: usize = 2;
pub const DEFAULT_AUDIO_CTX_PADDING_MS: u32 = 1_000;
pub const DEFAULT_ASR_PASS_EVERY_MS: u32 = 1_000;
pub const DEFAULT_ASR_MAX_WINDOW_MS: u32 = 8_000;
/// The stream's language is decided on the first pass over at least this much audio.
pub const ASR_LID_MS: u32 = 1_500;
pub const DEFAULT_LID_SWITCH_CONFIDENCE: f32 = 0.8;
pub const DEFAULT_REMOTE_ASR_MODEL: &str = "whisper-1";
pub const DEFAULT_KIOSK_GREETING_IDLE_S: u64 = 120;
pub const DEFAULT_WEBRTC_BIND_IP: &str = "127.0.0.1";
pub const DEFAULT_WEBRTC_MAX_CALLS: u32 = 8;
pub const DEFAULT_OPUS_COMPLEXITY: i32 = 5;
pub const DEFAULT_OPUS_BITRATE: i32 = 32_000;
pub const DEFAULT_OPUS_LOSS_PERC: i32 = 10;
pub const DEFAULT_KIOSK_DEVICE_RETRY_MS: u64 = 2_000;
pub const DEFAULT_REMOTE_ASR_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_LLM_MAX_TOKENS: u32 = 120;
pub const DEFAULT_LLM_TEMPERATURE: f32 = 0.3;
pub const DEFAULT_LLM_CONNECT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_LLM_FIRST_TOKEN_TIMEOUT_MS: u64 = 20_000;
pub const DEFAULT_LLM_IDLE_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_LLM_THREADS: usize = 2;
pub const DEFAULT_LLM_CTX: u32 = 4_096;
pub const DEFAULT_LLM_SLOTS: u32 = 4;
pub const DEFAULT_HISTORY_TURNS: usize = 8;
pub const DEFAULT_INPUT_BUFFER_MS: u32 = 2_000;
pub const DEFAULT_HISTORY_TOKEN_BUDGET: usize = 1_200;
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 256 * 1024;
pub const DEFAULT_MAX_SESSION_S: u64 = 3_600;
pub const DEFAULT_IDLE_TIMEOUT_S: u64 = 120;
pub const DEFAULT_RETRY_AFTER_MS: u64 = 2_000;
/// Load-aware admission: refuse a new conversation while the cores were saturated for more than
/// this share of the last ~10 s…
pub const DEFAULT_ADMIT_MAX_BUSY: f64 = 0.85;
/// …or while the work users wait for (transcripts, first clauses) typically queued this long.
pub const DEFAULT_ADMIT_MAX_WAIT_MS: u64 = 400;
pub const DEFAULT_SESSION_TTL_S: u64 = 1_800;
pub const DEFAULT_SPECULATIVE_PAUSE_MS: u32 = 200;
pub const DEFAULT_BARGE_IN_MIN_MS: u32 = 600;
pub const DEFAULT_OUTPUT_LEAD_MS: u32 = 400;
pub const DEFAULT_PARTIAL_EVERY_MS: u32 = 2_500;
pub const DEFAULT_LLM_RETRIES: u32 = 1;
/// Short acknowledgements that do not interrupt the assistant, per language (matched after
/// lower-casing and removing punctuation).
pub const DEFAULT_BACKCHANNELS: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "ok", "okay", "hmm", "mm", "mhm", "uh huh", "yeah", "yes", "right", "i see", "sure",
        ],
    ),
    (
        "hi",
        &[
            "हाँ",
            "हां",
            "हम्म",
            "अच्छा",
            "ठीक है",
            "जी",
            "जी हाँ",
            "ओके",
            "haan",
            "han",
            "accha",
            "acha",
            "theek hai",
            "ji",
            "hmm",
            "ok",
        ],
    ),
    ("bn", &["হ্যাঁ", "আচ্ছা", "ঠিক আছে", "হুম", "ওকে"]),
    ("ta", &["ஆமா", "ஆமாம்", "சரி", "ம்ம்", "ஓகே"]),
    ("te", &["అవును", "సరే", "అలాగే", "హ్మ్", "ఓకే", "ఊ"]),
    ("mr", &["हो", "हां", "बरं", "ठीक आहे", "ओके"]),
    ("gu", &["હા", "બરાબર", "સારું", "ઓકે"]),
    ("kn", &["ಹೌದು", "ಸರಿ", "ಹ್ಮ್", "ಓಕೆ"]),
    ("ml", &["അതെ", "ശരി", "ഉം", "ഓക്കെ"]),
    ("pa", &["ਹਾਂ", "ਠੀਕ ਹੈ", "ਅੱਛਾ", "ਓਕੇ"]),
    ("ur", &["جی", "ہاں", "اچھا", "ٹھیک ہے", "اوکے"]),
];
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are vaak, a helpful voice assistant for people in India. \
Your replies are spoken aloud, so answer in one to three short sentences of plain text: no lists, \
no markdown, no emoji. Answer what the user asked; never repeat the question back. \
Always reply in the language and script of the user's latest message.";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub models: ModelsConfig,
    pub server: ServerConfig,
    pub pipeline: PipelineConfig,
    pub vad: VadConfig,
    pub asr: AsrConfig,
    pub llm: LlmConfig,
    pub tts: TtsConfig,
    pub turn: TurnConfig,
    pub sessions: SessionsConfig,
    pub telephony: TelephonyConfig,
    pub kiosk: KioskConfig,
    pub webrtc: WebrtcConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Model cache directory; empty = `$VAAK_MODELS_DIR`, else `$XDG_CACHE_HOME/vaak/models`.
    pub dir: Option<PathBuf>,
    /// Which manifest set to use: `default`, `small` or `large`.
    pub set: String,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            set: "default".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// gRPC listen address (the `vaak.v1.Vaak` API, health and reflection).
    pub grpc_listen: String,
    /// HTTP listen address: `/healthz`, `/metrics` and the telephony providers' WebSocket media
    /// streams (`/telephony/twilio`, `/telephony/exotel`, `/telephony/plivo`); empty = off.
    pub http_listen: String,
    /// Conversations open at once; one more is refused with RESOURCE_EXHAUSTED.
    pub max_sessions: u32,
    /// Largest gRPC message accepted (an audio chunk, a text turn).
    pub max_message_bytes: usize,
    /// A conversation ends after this long, whatever happens in it.
    pub max_session_s: u64,
    /// A conversation with no client message for this long ends.
    pub idle_timeout_s: u64,
    /// Sent as `retry-after-ms` when the session limit refuses a stream.
    pub retry_after_ms: u64,
    /// Load-aware admission (below `max_sessions`): while at least one conversation is open, a
    /// new one is refused when the CPU scheduler was saturated more than this share (0..=1)
    /// of the last ~10 s, so that the open ones keep their latency.
    pub admit_max_busy: f64,
    /// … or when transcripts, first clauses and next audio typically waited longer than this
    /// for the CPU (ms).
    pub admit_max_wait_ms: u64,
    /// API keys, each named by the environment variable that holds it. Empty = no auth
    /// (bind to loopback then).
    pub api_keys: Vec<ApiKeyConfig>,
    /// Serve TLS (rustls) with this certificate chain and key (PEM files).
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_listen: DEFAULT_GRPC_LISTEN.into(),
            http_listen: DEFAULT_HTTP_LISTEN.into(),
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_session_s: DEFAULT_MAX_SESSION_S,
            idle_timeout_s: DEFAULT_IDLE_TIMEOUT_S,
            retry_after_ms: DEFAULT_RETRY_AFTER_MS,
            admit_max_busy: DEFAULT_ADMIT_MAX_BUSY,
            admit_max_wait_ms: DEFAULT_ADMIT_MAX_WAIT_MS,
            api_keys: Vec::new(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who the key belongs to (sessions are visible only to their tenant).
    pub tenant: String,
    /// Environment variable holding the key.
    pub key_env: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Phone calls through an IVR provider or Asterisk: each call is a session with the same
/// limits, memory and store as a gRPC stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelephonyConfig {
    /// Asterisk AudioSocket TCP listen address; empty = off.
    pub audiosocket_listen: String,
    /// IP addresses allowed to connect to AudioSocket (the protocol has no credentials);
    /// empty = any (keep the listener on a private address then).
    pub audiosocket_allow: Vec<String>,
    /// Languages of calls whose parameters name none; empty = `pipeline.languages`.
    pub languages: Vec<String>,
    /// Pressing this key (as the first key, not inside a number being typed) ends vaak's part
    /// of the call: the media stream closes and the provider's flow goes on to its next step
    /// (a `<Dial>` to a person, the dialplan's next priority); empty = off.
    pub handoff_digit: String,
    /// Other keys pressed become a typed user turn after `#` or this long without a key.
    pub dtmf_turn_ms: u64,
    pub twilio: ProviderConfig,
    pub exotel: ProviderConfig,
    pub plivo: ProviderConfig,
}

impl Default for TelephonyConfig {
    fn default() -> Self {
        Self {
            audiosocket_listen: DEFAULT_AUDIOSOCKET_LISTEN.into(),
            audiosocket_allow: Vec::new(),
            languages: Vec::new(),
            handoff_digit: DEFAULT_HANDOFF_DIGIT.into(),
            dtmf_turn_ms: DEFAULT_DTMF_TURN_MS,
            twilio: ProviderConfig::named("twilio"),
            exotel: ProviderConfig::named("exotel"),
            plivo: ProviderConfig::named("plivo"),
        }
    }
}

/// Browser calls over WebRTC: signalling on the HTTP listener (`POST /whip`), media over
/// DTLS-SRTP on UDP, the web client at `/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebrtcConfig {
    pub enabled: bool,
    /// Address whose UDP ports carry the media (the host candidate): this machine's address on
    /// the browsers' network; behind NAT, also name STUN/TURN servers.
    pub bind_ip: String,
    /// STUN and TURN servers offered to ICE (`stun:host:port`, `turn:host:port?transport=udp`).
    pub ice_servers: Vec<IceServerConfig>,
    /// Browser calls open at once; one more gets 503 (the session limit applies too).
    pub max_calls: u32,
    /// Languages of calls whose offer names none; empty = `pipeline.languages`.
    pub languages: Vec<String>,
    /// Opus encoder complexity of reply audio, 0..=5 (CPU per call; 5 is near 10's quality
    /// for speech).
    pub opus_complexity: i32,
    /// Reply audio bit rate (bits/s, 6000..=64000).
    pub opus_bitrate: i32,
    /// Packet loss the reply encoder plans in-band FEC for (percent, 0..=30).
    pub opus_loss_perc: i32,
}

impl Default for WebrtcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind_ip: DEFAULT_WEBRTC_BIND_IP.into(),
            ice_servers: Vec::new(),
            max_calls: DEFAULT_WEBRTC_MAX_CALLS,
            languages: Vec::new(),
            opus_complexity: DEFAULT_OPUS_COMPLEXITY,
            opus_bitrate: DEFAULT_OPUS_BITRATE,
            opus_loss_perc: DEFAULT_OPUS_LOSS_PERC,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the TURN credential (never the credential itself).
    #[serde(default)]
    pub credential_env: Option<String>,
}

impl WebrtcConfig {
    fn validate(&self, served: &[String]) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        match self.bind_ip.parse::<std::net::IpAddr>() {
            Err(_) => {
                return bad(format!(
                    "webrtc.bind_ip: `{}` is not an IP address",
                    self.bind_ip
                ))
            }
            Ok(ip) if ip.is_unspecified() => {
                return bad(format!(
                    "webrtc.bind_ip: `{ip}` is no address a browser can reach; name this \
                     machine's address on the browsers' network (or 127.0.0.1)"
                ))
            }
            Ok(_) => {}
        }
        if self.max_calls == 0 {
            return bad("webrtc.max_calls must be at least 1".into());
        }
        if !(0..=5).contains(&self.opus_complexity) {
            return bad("webrtc.opus_complexity must be within 0..=5".into());
        }
        if !(6_000..=64_000).contains(&self.opus_bitrate) {
            return bad("webrtc.opus_bitrate must be within 6000..=64000".into());
        }
        if !(0..=30).contains(&self.opus_loss_perc) {
            return bad("webrtc.opus_loss_perc must be within 0..=30".into());
        }
        for l in &self.languages {
            if !served.contains(l) {
                return bad(format!(
                    "webrtc.languages: `{l}` is not in pipeline.languages"
                ));
            }
        }
        for s in &self.ice_servers {
            if s.urls.is_empty() {
                return bad("webrtc.ice_servers: every server needs `urls`".into());
            }
            for u in &s.urls {
                let turn = u.starts_with("turn:") || u.starts_with("turns:");
                if !(turn || u.starts_with("stun:") || u.starts_with("stuns:")) {
                    return bad(format!(
                        "webrtc.ice_servers: `{u}` is not a stun:, stuns:, turn: or turns: URL"
                    ));
                }
                if turn && (s.username.is_none() || s.credential_env.is_none()) {
                    return bad(format!(
                        "webrtc.ice_servers: `{u}` needs `username` and `credential_env`"
                    ));
                }
            }
            if let Some(var) = &s.credential_env {
                if std::env::var_os(var).is_none() {
                    return bad(format!(
                        "webrtc.ice_servers: `credential_env` names `{var}`, which is not set"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// How a kiosk hears the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wake {
    /// Always listening; the VAD finds speech.
    Vad,
    /// Listening only while talking is switched on (Enter toggles it on the terminal).
    PushToTalk,
}

/// How a kiosk keeps from hearing itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Duplex {
    /// The microphone is muted while the reply plays (and for a short tail after it).
    Half,
    /// The microphone stays open; what it hears is compared with the reply being played and
    /// passed on only when it is clearly louder than the reply's echo, so the user can still
    /// interrupt.
    EchoSuppression,
}

/// `vaak kiosk`: a microphone and a speaker on this machine, no network.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KioskConfig {
    /// Capture device name (as `vaak kiosk --list-devices` prints it); empty = the default.
    pub input_device: String,
    /// Playback device name; empty = the default.
    pub output_device: String,
    pub wake: Wake,
    pub duplex: Duplex,
    /// Greet again after this many seconds without speech (0 = greet only at start).
    pub greeting_idle_s: u64,
    /// Greeting per language (spoken in each of `pipeline.languages` that has one); languages
    /// without an entry use the built-in greeting.
    pub greetings: BTreeMap<String, String>,
    /// An unplugged or failed device is reopened this often until it is back.
    pub device_retry_ms: u64,
}

impl Default for KioskConfig {
    fn default() -> Self {
        Self {
            input_device: String::new(),
            output_device: String::new(),
            wake: Wake::Vad,
            duplex: Duplex::Half,
            greeting_idle_s: DEFAULT_KIOSK_GREETING_IDLE_S,
            greetings: BTreeMap::new(),
            device_retry_ms: DEFAULT_KIOSK_DEVICE_RETRY_MS,
        }
    }
}

/// One provider's WebSocket endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub enabled: bool,
    /// Sessions of this provider's calls belong to this tenant.
    pub tenant: String,
    /// Environment variable holding the provider's secret (Twilio: the account's auth token,
    /// which signs every request; all: a token accepted as `?token=` or as the password of
    /// HTTP basic auth). Unset = no authentication (keep the listener on loopback then).
    pub secret_env: Option<String>,
    /// The public `wss://` base URL the provider connects to (Twilio signs the URL it used).
    pub public_url: Option<String>,
}

/// A secret named by `var` (an API key, a provider's token) must be set in the environment and
/// at least 16 characters long.
fn check_secret(what: &str, var: &str) -> Result<(), ConfigError> {
    match std::env::var(var) {
        Ok(v) if v.len() >= 16 => Ok(()),
        Ok(_) => Err(ConfigError::Invalid(format!(
            "{what}: the secret in `{var}` is shorter than 16 characters"
        ))),
        Err(_) => Err(ConfigError::Invalid(format!(
            "{what}: environment variable `{var}` is not set"
        ))),
    }
}

impl TelephonyConfig {
    /// The WebSocket providers with their path names (`/telephony/<name>`).
    pub fn providers(&self) -> [(&'static str, &ProviderConfig); 3] {
        [
            ("twilio", &self.twilio),
            ("exotel", &self.exotel),
            ("plivo", &self.plivo),
        ]
    }

    fn validate(&self, served: &[String]) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        for l in &self.languages {
            if !served.contains(l) {
                return bad(format!(
                    "telephony.languages: `{l}` is not in pipeline.languages"
                ));
            }
        }
        for ip in &self.audiosocket_allow {
            if ip.parse::<std::net::IpAddr>().is_err() {
                return bad(format!(
                    "telephony.audiosocket_allow: `{ip}` is not an IP address"
                ));
            }
        }
        let mut digits = self.handoff_digit.chars();
        if let (Some(c), rest) = (digits.next(), digits.as_str()) {
            if !rest.is_empty() || !matches!(c, '0'..='9' | '*' | 'A'..='D') {
                return bad(format!(
                    "telephony.handoff_digit must be one key 0-9, * or A-D, not `{}`",
                    self.handoff_digit
                ));
            }
        }
        if self.dtmf_turn_ms < 200 {
            return bad("telephony.dtmf_turn_ms must be at least 200".into());
        }
        for (name, p) in self.providers() {
            if p.tenant.trim().is_empty() {
                return bad(format!("telephony.{name}.tenant must not be empty"));
            }
            if let Some(var) = p.secret_env.as_ref().filter(|_| p.enabled) {
                check_secret(&format!("telephony.{name}.secret_env"), var)?;
            }
            if let Some(u) = &p.public_url {
                if !(u.starts_with("wss://") || u.starts_with("ws://")) {
                    return bad(format!(
                        "telephony.{name}.public_url must start with wss:// or ws://"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl ProviderConfig {
    fn named(name: &str) -> Self {
        Self {
            enabled: true,
            tenant: name.into(),
            secret_env: None,
            public_url: None,
        }
    }
}

/// Turn-taking of live conversations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurnConfig {
    /// A pause this long starts answering speculatively (held until `vad.min_silence_ms`
    /// confirms the end of the turn, cancelled if the user goes on); 0 = off.
    pub speculative_pause_ms: u32,
    /// User speech over the reply must last this long to interrupt it (shorter speech is
    /// transcribed, and interrupts only if it is not a backchannel).
    pub barge_in_min_ms: u32,
    /// Live transports send reply audio at most this far ahead of real-time playback, so an
    /// interruption stops what the user has not heard yet.
    pub output_lead_ms: u32,
    /// A partial transcript of a long utterance every this much speech (it uses the CPU while
    /// the user talks, when it is otherwise idle); 0 = only at pauses.
    pub partial_every_ms: u32,
    /// language -> phrases that never interrupt ("haan", "ok" …).
    pub backchannels: BTreeMap<String, Vec<String>>,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            speculative_pause_ms: DEFAULT_SPECULATIVE_PAUSE_MS,
            barge_in_min_ms: DEFAULT_BARGE_IN_MIN_MS,
            output_lead_ms: DEFAULT_OUTPUT_LEAD_MS,
            partial_every_ms: DEFAULT_PARTIAL_EVERY_MS,
            backchannels: DEFAULT_BACKCHANNELS
                .iter()
                .map(|(l, w)| (l.to_string(), w.iter().map(|s| s.to_string()).collect()))
                .collect(),
        }
    }
}

/// Where conversations are kept so that a client can reconnect and continue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// SQLite file; empty = `$XDG_STATE_HOME/vaak/sessions.sqlite` (`~/.local/state/…`).
    pub store: Option<PathBuf>,
    /// Keep nothing on disk (history lives only as long as the stream).
    pub in_memory: bool,
    /// A session not resumed within this long is deleted.
    pub ttl_s: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            store: None,
            in_memory: false,
            ttl_s: DEFAULT_SESSION_TTL_S,
        }
    }
}

impl SessionsConfig {
    pub fn store_path(&self) -> PathBuf {
        if let Some(p) = &self.store {
            return p.clone();
        }
        let base = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("vaak").join("sessions.sqlite")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Audio the ingest edge may hold before a realtime transport starts dropping (ms).
    pub input_buffer_ms: u32,
    /// Languages the assistant understands and answers in (Whisper codes).
    pub languages: Vec<String>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            input_buffer_ms: DEFAULT_INPUT_BUFFER_MS,
            languages: DEFAULT_LANGUAGES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VadConfig {
    /// Speech probability above which a frame is speech.
    pub threshold: f32,
    /// Probability below which a frame counts towards the end of speech.
    pub neg_threshold: f32,
    /// Speech shorter than this is ignored (clicks, coughs).
    pub min_speech_ms: u32,
    /// Silence that ends an utterance.
    pub min_silence_ms: u32,
    /// Audio kept before speech starts and after it ends.
    pub speech_pad_ms: u32,
    /// An utterance is cut here (Whisper's window is 30 s).
    pub max_utterance_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_VAD_THRESHOLD,
            neg_threshold: DEFAULT_VAD_NEG_THRESHOLD,
            min_speech_ms: DEFAULT_MIN_SPEECH_MS,
            min_silence_ms: DEFAULT_MIN_SILENCE_MS,
            speech_pad_ms: DEFAULT_SPEECH_PAD_MS,
            max_utterance_ms: DEFAULT_MAX_UTTERANCE_MS,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsrConfig {
    /// A whisper.cpp ggml model file; empty = the model set's Whisper.
    pub model: Option<PathBuf>,
    pub threads: usize,
    pub audio_ctx_padding_ms: u32,
    /// 1 = greedy decoding; >1 = beam search.
    pub beam_size: u32,
    pub temperature_fallback: bool,
    /// Prompt the decoder in the language's own script.
    pub native_script_prompt: bool,
    /// While decoding a language, give no probability to tokens of other scripts (Devanagari
    /// or Urdu letters in a Telugu transcript). Latin stays allowed.
    pub suppress_foreign_scripts: bool,
    /// Hysteresis: a detected language this sure (0–1) switches the session's language at
    /// once; a less sure one only on the second turn in a row (the decoder meanwhile keeps the
    /// session's language). 0 = every turn follows detection.
    pub switch_confidence: f32,
    /// Per-language whisper.cpp ggml files (an Indic fine-tune for `hi`, …); the embedded
    /// model detects the language and answers for every other one, and if these fail.
    pub models: BTreeMap<String, PathBuf>,
    /// A remote OpenAI-compatible recogniser for some languages.
    pub remote: Option<RemoteAsrConfig>,
    /// Recognise while the user speaks (a pass every `pass_every_ms` of new speech, agreed
    /// words committed); false = one decode of the whole utterance at its end.
    pub streaming: bool,
    /// Streaming: a pass (and a partial transcript) every this much new speech, the first
    /// one once this much was heard.
    pub pass_every_ms: u32,
    /// Streaming: a window longer than this with no pause is cut at its quietest point, so a
    /// pass costs a bounded amount however long the user talks.
    pub max_window_ms: u32,
}

/// `[asr.remote]`: `POST <url>` as OpenAI's `/v1/audio/transcriptions` (multipart WAV).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteAsrConfig {
    /// The full endpoint URL, e.g. `https://api.example.com/v1/audio/transcriptions`.
    pub url: String,
    #[serde(default = "default_remote_asr_model")]
    pub model: String,
    /// Environment variable holding the bearer token (never the token itself).
    pub api_key_env: Option<String>,
    /// The languages sent there (each must be in `pipeline.languages`).
    pub languages: Vec<String>,
    #[serde(default = "default_remote_asr_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_remote_asr_model() -> String {
    DEFAULT_REMOTE_ASR_MODEL.into()
}

fn default_remote_asr_timeout_ms() -> u64 {
    DEFAULT_REMOTE_ASR_TIMEOUT_MS
}

impl AsrConfig {
    fn validate(&self, served: &[String]) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !(0.0..=1.0).contains(&self.switch_confidence) {
            return bad("asr.switch_confidence must be within 0..1".into());
        }
        if !(250..=10_000).contains(&self.pass_every_ms)
            || !(4_000..=28_000).contains(&self.max_window_ms)
        {
            return bad(
                "asr.pass_every_ms must be within 250..10000 and asr.max_window_ms within \
                 4000..28000"
                    .into(),
            );
        }
        for (lang, path) in &self.models {
            if !served.contains(lang) {
                return bad(format!("asr.models: `{lang}` is not in pipeline.languages"));
            }
            if !path.is_file() {
                return bad(format!(
                    "asr.models.{lang}: {} is not a readable file",
                    path.display()
                ));
            }
        }
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        if !(remote.url.starts_with("http://") || remote.url.starts_with("https://")) {
            return bad(format!(
                "asr.remote.url must be an http(s) URL, not `{}`",
                remote.url
            ));
        }
        if remote.languages.is_empty() || remote.timeout_ms == 0 {
            return bad("asr.remote needs languages and a timeout_ms above 0".into());
        }
        for lang in &remote.languages {
            if !served.contains(lang) {
                return bad(format!(
                    "asr.remote.languages: `{lang}` is not in pipeline.languages"
                ));
            }
            if self.models.contains_key(lang) {
                return bad(format!(
                    "asr: `{lang}` is in both asr.models and asr.remote"
                ));
            }
        }
        if let Some(var) = &remote.api_key_env {
            check_secret("asr.remote.api_key_env", var)?;
        }
        Ok(())
    }
}

impl Default for AsrConfig {
    fn default() -> Self {
        Self {
            model: None,
            threads: DEFAULT_ASR_THREADS,
            audio_ctx_padding_ms: DEFAULT_AUDIO_CTX_PADDING_MS,
            beam_size: 1,
            temperature_fallback: false,
            native_script_prompt: true,
            suppress_foreign_scripts: true,
            switch_confidence: DEFAULT_LID_SWITCH_CONFIDENCE,
            models: BTreeMap::new(),
            remote: None,
            streaming: true,
            pass_every_ms: DEFAULT_ASR_PASS_EVERY_MS,
            max_window_ms: DEFAULT_ASR_MAX_WINDOW_MS,
        }
    }
}

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
}

impl Default for LlmWorkerConfig {
    fn default() -> Self {
        Self {
            model: None,
            binary: None,
            threads: DEFAULT_LLM_THREADS,
            ctx_size: DEFAULT_LLM_CTX,
            max_slots: DEFAULT_LLM_SLOTS,
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is invalid: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { detail, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                detail,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            detail: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The defaults as a commented TOML document (`vaak config print-default`).
    pub fn default_toml() -> String {
        let body = toml::to_string_pretty(&Config::default())
            .unwrap_or_else(|e| format!("# cannot render defaults: {e}\n"));
        format!(
            "# vaak configuration: every key below is optional and shows its default.\n\
             # Unknown keys are errors. Secrets are never written here: llm.openai.api_key_env\n\
             # names the environment variable that holds the key.\n\n{body}"
        )
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !["default", "small", "fast"].contains(&self.models.set.as_str()) {
            return bad(format!(
                "models.set must be default, small or fast, not `{}`",
                self.models.set
            ));
        }
        let v = &self.vad;
        if !(0.0..=1.0).contains(&v.threshold) || !(0.0..=1.0).contains(&v.neg_threshold) {
            return bad("vad thresholds must be within 0..1".into());
        }
        if v.neg_threshold > v.threshold {
            return bad("vad.neg_threshold must not exceed vad.threshold".into());
        }
        if v.min_silence_ms < 100 || v.max_utterance_ms > 30_000 || v.max_utterance_ms < 1_000 {
            return bad(
                "vad.min_silence_ms must be >= 100 and vad.max_utterance_ms within 1000..30000"
                    .into(),
            );
        }
        if self.pipeline.languages.is_empty() {
            return bad("pipeline.languages must name at least one language".into());
        }
        for l in &self.pipeline.languages {
            if crate::text::script::Script::of_language(l).is_none() {
                return bad(format!("pipeline.languages: unknown language code `{l}`"));
            }
        }
        if self.pipeline.input_buffer_ms < 100 {
            return bad("pipeline.input_buffer_ms must be at least 100".into());
        }
        if self.asr.threads == 0 || self.llm.worker.threads == 0 {
            return bad("thread counts must be at least 1".into());
        }
        self.asr.validate(&self.pipeline.languages)?;
        if self.llm.max_tokens == 0 || !(0.0..=2.0).contains(&self.llm.temperature) {
            return bad("llm.max_tokens must be > 0 and llm.temperature within 0..2".into());
        }
        if self.llm.kind == LlmKind::Openai && self.llm.openai.base_url.is_empty() {
            return bad("llm.kind = \"openai\" needs llm.openai.base_url".into());
        }
        if let Some(var) = &self.llm.openai.api_key_env {
            if self.llm.kind == LlmKind::Openai && std::env::var_os(var).is_none() {
                return bad(format!(
                    "llm.openai.api_key_env names `{var}`, which is not set"
                ));
            }
        }
        let srv = &self.server;
        if srv.max_sessions == 0 || srv.max_message_bytes < 1024 {
            return bad("server.max_sessions must be >= 1 and max_message_bytes >= 1024".into());
        }
        if !(srv.admit_max_busy > 0.0 && srv.admit_max_busy <= 1.0) {
            return bad(format!(
                "server.admit_max_busy {} must be in (0, 1] (1 = admit by max_sessions only)",
                srv.admit_max_busy
            ));
        }
        if srv.max_session_s == 0 || srv.idle_timeout_s == 0 {
            return bad("server.max_session_s and server.idle_timeout_s must be > 0".into());
        }
        for k in &srv.api_keys {
            if k.tenant.trim().is_empty() {
                return bad("server.api_keys: every key needs a tenant".into());
            }
            check_secret(
                &format!("server.api_keys (tenant {})", k.tenant),
                &k.key_env,
            )?;
        }
        if let Some(tls) = &srv.tls {
            for p in [&tls.cert, &tls.key] {
                if !p.is_file() {
                    return bad(format!(
                        "server.tls: {} is not a readable file",
                        p.display()
                    ));
                }
            }
        }
        self.telephony.validate(&self.pipeline.languages)?;
        self.webrtc.validate(&self.pipeline.languages)?;
        for lang in self.kiosk.greetings.keys() {
            if !self.pipeline.languages.contains(lang) {
                return bad(format!(
                    "kiosk.greetings: `{lang}` is not in pipeline.languages"
                ));
            }
        }
        if self.kiosk.device_retry_ms < 100 {
            return bad("kiosk.device_retry_ms must be at least 100".into());
        }
        if self.sessions.ttl_s == 0 {
            return bad("sessions.ttl_s must be > 0".into());
        }
        if self.turn.speculative_pause_ms >= self.vad.min_silence_ms {
            return bad(
                "turn.speculative_pause_ms must be shorter than vad.min_silence_ms (0 = off)"
                    .into(),
            );
        }
        self.tts
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("tts: {e}")))?;
        Ok(())
    }

    /// Per-language map of configured voices, for display.
    pub fn languages(&self) -> BTreeMap<String, String> {
        self.pipeline
            .languages
            .iter()
            .map(|l| (l.clone(), language_name(l).to_string()))
            .collect()
    }
}

/// English name of a language code (used in prompts and tables).
pub fn language_name(code: &str) -> &'static str {
    match code {
        "en" => "English",
        "hi" => "Hindi",
        "bn" => "Bengali",
        "ta" => "Tamil",
        "te" => "Telugu",
        "mr" => "Marathi",
        "gu" => "Gujarati",
        "kn" => "Kannada",
        "ml" => "Malayalam",
        "pa" => "Punjabi",
        "ur" => "Urdu",
        "or" => "Odia",
        "as" => "Assamese",
        "ne" => "Nepali",
        _ => "the user's language",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_validate() {
        let text = Config::default_toml();
        let cfg = Config::parse(&text).unwrap();
        assert_eq!(cfg.server.max_sessions, DEFAULT_MAX_SESSIONS);
        assert_eq!(cfg.pipeline.languages.len(), DEFAULT_LANGUAGES.len());
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = Config::parse("[vad]\nthreshhold = 0.4\n").unwrap_err();
        assert!(e.to_string().contains("threshhold"), "{e}");
        assert!(Config::parse("colour = 1\n").is_err());
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(Config::parse("[vad]\nthreshold = 1.5\n").is_err());
        assert!(Config::parse("[pipeline]\nlanguages = [\"xx\"]\n").is_err());
        assert!(Config::parse("[llm]\nkind = \"openai\"\n").is_err());
        assert!(Config::parse("[models]\nset = \"huge\"\n").is_err());
        let e = Config::parse("[kiosk.greetings]\nxx = \"hi\"\n").unwrap_err();
        assert!(e.to_string().contains("kiosk.greetings"), "{e}");
        for (bad, names) in [
            ("[webrtc]\nbind_ip = \"0.0.0.0\"\n", "bind_ip"),
            ("[webrtc]\nopus_complexity = 9\n", "opus_complexity"),
            ("[[webrtc.ice_servers]]\nurls = [\"http://x\"]\n", "stun:"),
            (
                "[[webrtc.ice_servers]]\nurls = [\"turn:t.example:3478\"]\n",
                "credential_env",
            ),
        ] {
            let e = Config::parse(bad).unwrap_err();
            assert!(e.to_string().contains(names), "{bad}: {e}");
        }
        let e = Config::parse("[asr]\nswitch_confidence = 2.0\n").unwrap_err();
        assert!(e.to_string().contains("switch_confidence"), "{e}");
        let c = Config::parse("[kiosk]\nwake = \"push-to-talk\"\nduplex = \"echo-suppression\"\n")
            .expect("kiosk modes parse");
        assert_eq!(
            (c.kiosk.wake, c.kiosk.duplex),
            (Wake::PushToTalk, Duplex::EchoSuppression)
        );
    }

    #[test]
    fn partial_files_keep_other_defaults() {
        let cfg = Config::parse("[vad]\nmin_silence_ms = 700\n").unwrap();
        assert_eq!(cfg.vad.min_silence_ms, 700);
        assert_eq!(cfg.vad.threshold, DEFAULT_VAD_THRESHOLD);
    }
}
