//! The session service every live transport (gRPC today; WebRTC and telephony next) opens
//! conversations through, so that limits, tenants, resume and delete behave the same on all of
//! them: admission against `server.max_sessions` before anything is allocated, validation of a
//! session's languages and voices, history restored from the store (and saved after each turn),
//! one live stream per session id (a reconnect takes over), and draining on shutdown.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::backend::tts::{requested_speed, MAX_SPEED, MIN_SPEED};
use crate::backend::Backends;
use crate::config::ServerConfig;
use crate::conversation::{Conversation, Exchange};
use crate::flow::{HistorySink, SessionMemory, SessionSettings, TurnControl};
use crate::metrics::Metrics;
use crate::pipeline::{self, SessionPipeline};
use crate::scheduler::Load;
use crate::session::rate::RateLimits;
use crate::session::store::Store;
use crate::text::input::{echo, MAX_ECHO_CHARS};

/// Longest session id a client may choose.
pub const MAX_SESSION_ID_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("vaak is shutting down; reconnect to another instance")]
    Draining,
    #[error("all {limit} conversation slots are busy; retry in {retry_after:?}")]
    Full { limit: u32, retry_after: Duration },
    #[error("vaak is at capacity ({detail}); retry in {retry_after:?}")]
    Overloaded {
        detail: String,
        retry_after: Duration,
    },
    /// The tenant's `requests_per_minute` is used up (the message names no tenant).
    #[error("too many requests for this API key; retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// Holds the id as [`echo`] quotes it.
    #[error("session id must be 1..=64 characters of A-Z a-z 0-9 - _ (got {0:?})")]
    BadSessionId(String),
    #[error("language `{language}` is not served here; served: {served}")]
    UnknownLanguage { language: String, served: String },
    #[error("voice for `{language}`: {detail}")]
    UnknownVoice { language: String, detail: String },
    #[error("speech rate {0} is outside {MIN_SPEED}..={MAX_SPEED}")]
    BadSpeechRate(f32),
    #[error("session store: {0}")]
    Store(String),
    #[error("cannot draw a random session id from the operating system: {0}")]
    Randomness(String),
}

/// What a transport asks for when a conversation starts.
#[derive(Debug, Clone, Default)]
pub struct OpenRequest {
    pub tenant: String,
    /// Resume this session (or start one with this id).
    pub session_id: Option<String>,
    pub languages: Vec<String>,
    pub voices: BTreeMap<String, String>,
    pub text_only: bool,
    /// 0 = the voice's default.
    pub speech_rate: f32,
    pub barge_in: bool,
    /// The transport reports which reply audio was played (telephony).
    pub playback_acks: bool,
    /// The caller's audio is 8 kHz (a phone line).
    pub narrowband: bool,
    /// The user's own language, used while language detection is unsure.
    pub preferred_language: Option<String>,
    pub source: AudioSource,
}

/// Where a session's audio comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioSource {
    /// A person talking now: speculative starts at short pauses, reply audio paced to real
    /// time so that an interruption stops what was not heard.
    #[default]
    Live,
    /// A recording read as fast as the pipeline takes it: no speculation, no pacing, and only
    /// `min_silence_ms` of silence ends a question (a file's pauses are part of it).
    File { min_silence_ms: u32 },
}

/// An open conversation. Dropping it releases its slot; cancelling `cancel` stops its pipeline.
pub struct OpenSession {
    pub id: String,
    pub resumed: bool,
    pub history_turns: usize,
    pub pipeline: SessionPipeline,
    pub cancel: CancellationToken,
    _slot: OwnedSemaphorePermit,
    _live: LiveGuard,
}

pub struct SessionService {
    pub backends: Arc<Backends>,
    pub metrics: Arc<Metrics>,
    store: Option<Arc<dyn Store>>,
    slots: Arc<Semaphore>,
    rates: RateLimits,
    /// The turn control of every open conversation, to count those in a turn at admission.
    talkers: Mutex<Vec<std::sync::Weak<TurnControl>>>,
    live: Arc<LiveMap>,
    next_live: std::sync::atomic::AtomicU64,
    draining: AtomicBool,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

/// How many conversations may be in a turn before new ones are refused.
fn talking_limit(cfg: &ServerConfig) -> usize {
    match cfg.admit_max_talking {
        // One turn per two cores: measured on 2 cores, one turn in flight keeps a new
        // conversation's first reply at its unloaded time (p50 2.8 s vs 3.1 s unloaded);
        // two let it grow to 5.4 s (`vaak bench overload`, README).
        0 => std::thread::available_parallelism().map_or(1, |n| (usize::from(n) / 2).max(1)),
        n => n as usize,
    }
}

/// Why the cores cannot take another conversation now, if they cannot: recent CPU use, replies
/// waiting for the CPU, or (`talking`: in a turn now, the limit) the turns in flight.
fn overload(load: &Load, talking: (usize, usize), cfg: &ServerConfig) -> Option<String> {
    let max_wait = Duration::from_millis(cfg.admit_max_wait_ms);
    if talking.0 >= talking.1 {
        Some(format!(
            "{} conversations are in a turn, the most this box answers in time",
            talking.0
        ))
    } else if load.busy > cfg.admit_max_busy {
        Some(format!(
            "the cores were saturated {:.0}% of the last seconds",
            100.0 * load.busy
        ))
    } else if load.urgent_wait > max_wait {
        Some(format!(
            "replies waited {} ms for the CPU, past {} ms",
            load.urgent_wait.as_millis(),
            max_wait.as_millis()
        ))
    } else {
        None
    }
}

impl SessionService {
    /// `tracker` owns every session task; `shutdown` stops them all.
    pub fn new(
        backends: Arc<Backends>,
        metrics: Arc<Metrics>,
        store: Option<Arc<dyn Store>>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let limit = backends.config.server.max_sessions as usize;
        let rates = RateLimits::from_config(&backends.config.server);
        Self {
            backends,
            metrics,
            store,
            slots: Arc::new(Semaphore::new(limit)),
            rates,
            talkers: Mutex::new(Vec::new()),
            live: Arc::new(Mutex::new(HashMap::new())),
            next_live: std::sync::atomic::AtomicU64::new(1),
            draining: AtomicBool::new(false),
            tracker,
            shutdown,
        }
    }

    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Refuse new conversations from now on (open ones go on until the drain deadline).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Open conversations in a turn now (their user speaking, or being answered).
    fn talking(&self) -> usize {
        let mut talkers = self.talkers.lock().unwrap_or_else(|p| p.into_inner());
        talkers.retain(|t| t.strong_count() > 0);
        talkers
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .filter(|t| t.in_turn())
            .count()
    }

    /// Conversations open now.
    pub fn open_sessions(&self) -> usize {
        self.backends.config.server.max_sessions as usize - self.slots.available_permits()
    }

    /// Takes a conversation slot for a caller of `transport`, or refuses at once (no
    /// queueing: a caller on a phone line is better served by a clear "busy" than by
    /// silence): at `max_sessions`, or while the open conversations already load the cores
    /// past the admission limits (a lone caller is never refused for load).
    pub fn admit(
        &self,
        transport: &'static str,
        tenant: &str,
    ) -> Result<OwnedSemaphorePermit, OpenError> {
        if self.is_draining() || self.shutdown.is_cancelled() {
            return Err(OpenError::Draining);
        }
        if let Err(retry_after) = self.rates.check(tenant) {
            Metrics::incr(&self.metrics.sessions_refused);
            self.metrics.refused(transport, "rate_limit");
            return Err(OpenError::RateLimited { retry_after });
        }
        let cfg = &self.backends.config.server;
        let retry_after = Duration::from_millis(cfg.retry_after_ms);
        let open = self.open_sessions();
        let slot = Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            Metrics::incr(&self.metrics.sessions_refused);
            self.metrics.refused(transport, "max_sessions");
            OpenError::Full {
                limit: cfg.max_sessions,
                retry_after,
            }
        })?;
        if open > 0 {
            let talking = (self.talking(), talking_limit(cfg));
            if let Some(detail) = overload(&self.backends.cpu.load(), talking, cfg) {
                Metrics::incr(&self.metrics.sessions_refused);
                self.metrics.refused(transport, "overload");
                return Err(OpenError::Overloaded {
                    detail,
                    retry_after,
                });
            }
        }
        Ok(slot)
    }

    /// Opens a conversation in an admitted slot.
    pub async fn open(
        &self,
        slot: OwnedSemaphorePermit,
        req: OpenRequest,
    ) -> Result<OpenSession, OpenError> {
        let cfg = &self.backends.config;
        let languages = self.languages(&req.languages)?;
        let speech_rate = requested_speed(req.speech_rate, cfg.tts.default_speed)
            .map_err(OpenError::BadSpeechRate)?;
        self.check_voices(&req.voices, &languages, req.text_only)
            .await?;
        if let Some(p) = &req.preferred_language {
            if !languages.contains(p) {
                return Err(OpenError::UnknownLanguage {
                    language: echo(p),
                    served: languages.join(", "),
                });
            }
        }
        let (id, chosen) = match &req.session_id {
            Some(id) if !id.is_empty() => {
                if !valid_session_id(id) {
                    return Err(OpenError::BadSessionId(echo(id)));
                }
                (id.clone(), true)
            }
            _ => (new_session_id()?, false),
        };
        // Take the session over before reading its history: the old stream is stopped first,
        // and whatever it still saves is appended after what is read here, never over it.
        let cancel = self.shutdown.child_token();
        let live = self.register_live(&req.tenant, &id, cancel.clone());
        let history = match (&self.store, chosen) {
            (Some(store), true) => {
                let (store, tenant, key) = (Arc::clone(store), req.tenant.clone(), id.clone());
                tokio::task::spawn_blocking(move || store.load(&tenant, &key))
                    .await
                    .map_err(|e| OpenError::Store(e.to_string()))?
                    .map_err(|e| OpenError::Store(e.to_string()))?
                    .map(|s| s.exchanges)
            }
            _ => None,
        };
        let resumed = history.is_some();
        let mut conversation =
            Conversation::new(cfg.llm.system_prompt.clone(), cfg.llm.history_turns)
                .with_token_budget(cfg.llm.history_token_budget);
        if let Some(h) = history {
            conversation.restore(h);
        }
        let history_turns = conversation.exchanges().len();
        let sink: Option<Arc<dyn HistorySink>> = self.store.as_ref().map(|s| {
            Arc::new(StoreSink {
                store: Arc::clone(s),
                tenant: req.tenant.clone(),
                id: id.clone(),
                keep: cfg.llm.history_turns,
                metrics: Arc::clone(&self.metrics),
            }) as Arc<dyn HistorySink>
        });
        let memory = Arc::new(SessionMemory::new(conversation, sink));
        let base = match req.source {
            AudioSource::Live => SessionSettings::live(id.clone(), languages),
            AudioSource::File { min_silence_ms } => SessionSettings {
                min_silence_ms: Some(min_silence_ms),
                ..SessionSettings::new(id.clone(), languages)
            },
        };
        let settings = SessionSettings {
            barge_in: req.barge_in,
            speech_rate,
            text_only: req.text_only,
            voices: req.voices,
            memory: Some(memory),
            playback_acks: req.playback_acks,
            narrowband: req.narrowband,
            preferred_language: req.preferred_language,
            ..base
        };
        let capacity =
            pipeline::ingest_capacity(cfg.pipeline.input_buffer_ms, pipeline::INGEST_CHUNK_MS);
        let pipeline = pipeline::spawn(
            Arc::clone(&self.backends),
            settings,
            capacity,
            Arc::clone(&self.metrics),
            &self.tracker,
            cancel.clone(),
        );
        self.talkers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(&pipeline.turns));
        Metrics::incr(&self.metrics.sessions_opened);
        info!(session = %id, resumed, history_turns, "session opened");
        Ok(OpenSession {
            id,
            resumed,
            history_turns,
            pipeline,
            cancel,
            _slot: slot,
            _live: live,
        })
    }

    /// Forgets a session: stops it if it is live, deletes what the store holds for it.
    pub async fn delete(&self, tenant: &str, id: &str) -> Result<bool, OpenError> {
        let live = {
            let map = self.live.lock().unwrap_or_else(|p| p.into_inner());
            map.get(&(tenant.to_string(), id.to_string()))
                .map(|(_, c)| c.clone())
        };
        let was_live = live.is_some();
        if let Some(c) = live {
            c.cancel();
        }
        let stored = match &self.store {
            Some(store) => {
                let (store, tenant, id) = (Arc::clone(store), tenant.to_string(), id.to_string());
                tokio::task::spawn_blocking(move || store.delete(&tenant, &id))
                    .await
                    .map_err(|e| OpenError::Store(e.to_string()))?
                    .map_err(|e| OpenError::Store(e.to_string()))?
            }
            None => false,
        };
        Ok(was_live || stored)
    }

    /// Deletes expired sessions from the store (called periodically by the daemon).
    pub async fn purge_expired(&self) {
        let Some(store) = self.store.clone() else {
            return;
        };
        match tokio::task::spawn_blocking(move || store.purge_expired()).await {
            Ok(Ok(n)) if n > 0 => info!(purged = n, "expired sessions deleted"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "cannot purge expired sessions"),
            Err(e) => warn!(error = %e, "purge task failed"),
        }
    }

    fn languages(&self, asked: &[String]) -> Result<Vec<String>, OpenError> {
        let served = &self.backends.config.pipeline.languages;
        if asked.is_empty() {
            return Ok(served.clone());
        }
        let mut out = Vec::new();
        for l in asked {
            let code = l.trim().to_ascii_lowercase();
            let code = code
                .split(['-', '_'])
                .next()
                .unwrap_or_default()
                .to_string();
            if !served.contains(&code) {
                return Err(OpenError::UnknownLanguage {
                    language: echo(l),
                    served: served.join(", "),
                });
            }
            if !out.contains(&code) {
                out.push(code);
            }
        }
        Ok(out)
    }

    async fn check_voices(
        &self,
        voices: &BTreeMap<String, String>,
        languages: &[String],
        text_only: bool,
    ) -> Result<(), OpenError> {
        if text_only {
            return Ok(());
        }
        for (language, name) in voices {
            if !languages.contains(language) {
                return Err(OpenError::UnknownVoice {
                    language: echo(language),
                    detail: "that language is not one of this session's languages".into(),
                });
            }
            if name.chars().count() > MAX_ECHO_CHARS {
                return Err(OpenError::UnknownVoice {
                    language: language.clone(),
                    detail: format!("no voice is named {}", echo(name)),
                });
            }
            let bank = Arc::clone(&self.backends.tts);
            let (n, l) = (name.clone(), language.clone());
            // Loading a chosen voice pack reads a file: off the runtime.
            let found = tokio::task::spawn_blocking(move || bank.named(&n, &l).map(|_| ()))
                .await
                .map_err(|e| OpenError::UnknownVoice {
                    language: language.clone(),
                    detail: e.to_string(),
                })?;
            found.map_err(|e| OpenError::UnknownVoice {
                language: language.clone(),
                detail: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// One live stream per session: a reconnect with the same id takes over (the old stream,
    /// probably a dead connection not yet noticed, is stopped).
    fn register_live(&self, tenant: &str, id: &str, cancel: CancellationToken) -> LiveGuard {
        let key = (tenant.to_string(), id.to_string());
        let serial = self.next_live.fetch_add(1, Ordering::Relaxed);
        let old = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), (serial, cancel));
        if let Some((_, old)) = old {
            info!(session = %id, "session taken over by a new stream");
            old.cancel();
        }
        LiveGuard {
            map: Arc::clone(&self.live),
            key,
            serial,
        }
    }
}

/// (tenant, session id) → (serial of the stream that holds it, its stop token).
type LiveMap = Mutex<HashMap<(String, String), (u64, CancellationToken)>>;

/// Removes a session from the live map when its stream ends (unless a newer stream took over).
struct LiveGuard {
    map: Arc<LiveMap>,
    key: (String, String),
    serial: u64,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&self.key).is_some_and(|(s, _)| *s == self.serial) {
            map.remove(&self.key);
        }
    }
}

struct StoreSink {
    store: Arc<dyn Store>,
    tenant: String,
    id: String,
    /// Exchanges kept per session (the conversation's own turn limit).
    keep: usize,
    metrics: Arc<Metrics>,
}

impl HistorySink for StoreSink {
    fn append(&self, exchange: &Exchange) -> Result<i64, String> {
        self.store
            .append(&self.tenant, &self.id, exchange, self.keep)
            .map_err(|e| {
                Metrics::incr(&self.metrics.history_saves_failed);
                e.to_string()
            })
    }

    fn amend(&self, key: i64, heard: &str) -> Result<(), String> {
        self.store
            .amend(&self.tenant, &self.id, key, heard)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

pub fn valid_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SESSION_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// 128 random bits from the OS's CSPRNG (the `getrandom` system call, which does not block
/// once the kernel's pool is seeded), hex-encoded. Without randomness no id is made: a
/// guessable id would let another client of the tenant resume the conversation.
fn new_session_id() -> Result<String, OpenError> {
    use rand::TryRngCore;
    let mut buf = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| OpenError::Randomness(e.to_string()))?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_in_a_turn_close_admission_before_the_cpu_shows_it() {
        let cfg = ServerConfig::default();
        let idle = Load {
            busy: 0.0,
            urgent_wait: Duration::ZERO,
        };
        assert_eq!(overload(&idle, (0, 1), &cfg), None);
        let why = overload(&idle, (1, 1), &cfg).expect("one in a turn already");
        assert!(why.contains("1 conversations are in a turn"), "{why}");
        let hot = Load {
            busy: 0.95,
            urgent_wait: Duration::ZERO,
        };
        assert!(overload(&hot, (0, 1), &cfg).is_some());
        assert!(talking_limit(&cfg) >= 1);
    }

    #[test]
    fn session_ids() {
        assert!(valid_session_id("abc-DEF_123"));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id("a b"));
        assert!(!valid_session_id("../etc"));
        assert!(!valid_session_id(&"a".repeat(65)));
        let a = new_session_id().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_session_id().unwrap());
    }
}
