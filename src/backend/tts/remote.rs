//! A remote OpenAI-compatible speech server (`POST /v1/audio/speech`: OpenAI, a GPU TTS server,
//! another vaak) for the languages `[tts.remote]` lists, with the language's own voice as the
//! fallback: [`RemoteTts`] makes the request, [`FallbackTts`] wraps it with the local voice,
//! a time limit and a pause after a failure (so a dead server costs one clause its wait, not
//! every clause), and counts every clause the local voice said instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{TtsEngine, TtsError};
use crate::audio::pcm::i16_to_f32;
use crate::audio::resample::resample_all;
use crate::audio::wav;
use crate::backend::request_failure;
use crate::config::RemoteTtsConfig;

/// OpenAI's `pcm`: 16-bit little-endian mono at 24 kHz. Every clause comes back at this rate.
pub const REMOTE_SAMPLE_RATE: u32 = 24_000;
/// After a failure the local voice speaks for this long before the server is tried again.
pub const RETRY_REMOTE_AFTER: Duration = Duration::from_secs(10);

/// Requests to one speech server with one voice.
pub struct RemoteTts {
    url: String,
    model: String,
    voice: String,
    format: String,
    api_key: Option<String>,
    timeout: Duration,
    name: String,
    client: reqwest::Client,
}

#[derive(serde::Serialize)]
struct SpeechRequest<'a> {
    model: &'a str,
    input: &'a str,
    voice: &'a str,
    response_format: &'a str,
    speed: f32,
}

impl RemoteTts {
    /// The server of `config`, speaking `language` (its voice from `config`).
    pub fn new(config: &RemoteTtsConfig, language: &str) -> Result<Self, TtsError> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .build()
            .map_err(|e| TtsError::Config(format!("remote TTS client: {e}")))?;
        let voice = config.voice_for(language).to_string();
        Ok(Self {
            url: config.url.clone(),
            model: config.model.clone(),
            name: format!("remote:{voice}"),
            voice,
            format: config.response_format.clone(),
            api_key: config
                .api_key_env
                .as_ref()
                .and_then(|var| std::env::var(var).ok()),
            timeout,
            client,
        })
    }

    async fn request(&self, text: &str, speed: f32) -> Result<Vec<f32>, TtsError> {
        let fail = |why: String| TtsError::inference(&self.name, format!("{}: {why}", self.url));
        let mut req = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .json(&SpeechRequest {
                model: &self.model,
                input: text,
                voice: &self.voice,
                response_format: &self.format,
                speed,
            });
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| fail(request_failure(&e, self.timeout, None)))?;
        let status = resp.status();
        if !status.is_success() {
            // The body may echo the text: only the status is reported.
            return Err(fail(format!("HTTP {status}")));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| fail(request_failure(&e, self.timeout, Some("audio"))))?;
        let audio = if self.format == "wav" {
            let (audio, rate) =
                wav::decode_mono("the server's WAV", &body).map_err(|e| fail(e.to_string()))?;
            resample_all(&audio, rate, REMOTE_SAMPLE_RATE).map_err(|e| fail(e.to_string()))?
        } else {
            if body.len() % 2 != 0 {
                return Err(fail("pcm audio of an odd number of bytes".into()));
            }
            body.chunks_exact(2)
                .map(|b| i16_to_f32(i16::from_le_bytes([b[0], b[1]])))
                .collect()
        };
        if audio.is_empty() {
            return Err(fail("no audio for the text".into()));
        }
        Ok(audio)
    }
}

impl TtsEngine for RemoteTts {
    fn name(&self) -> &str {
        &self.name
    }

    fn sample_rate(&self) -> u32 {
        REMOTE_SAMPLE_RATE
    }

    fn synthesize(&self, text: &str, speed: f32) -> Result<Vec<f32>, TtsError> {
        if text.trim().is_empty() {
            return Err(TtsError::EmptyText);
        }
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| TtsError::inference(&self.name, "needs the async runtime"))?;
        let speed = if speed.is_finite() { speed } else { 1.0 };
        handle.block_on(self.request(text, speed.clamp(super::MIN_SPEED, super::MAX_SPEED)))
    }

    /// Waits on the network, not the cores.
    fn light(&self) -> bool {
        true
    }
}

/// A primary voice (the remote server) with a local one answering when it fails.
pub struct FallbackTts {
    primary: Arc<dyn TtsEngine>,
    fallback: Arc<dyn TtsEngine>,
    /// Clauses the fallback said, shared by every language's wrapper (for `/metrics`).
    fallbacks: Arc<AtomicU64>,
    /// The primary is not tried again before this.
    resting_until: Mutex<Option<Instant>>,
}

impl FallbackTts {
    pub fn new(
        primary: Arc<dyn TtsEngine>,
        fallback: Arc<dyn TtsEngine>,
        fallbacks: Arc<AtomicU64>,
    ) -> Self {
        Self {
            primary,
            fallback,
            fallbacks,
            resting_until: Mutex::new(None),
        }
    }

    fn resting(&self) -> bool {
        let until = self.resting_until.lock().unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|t| Instant::now() < t)
    }

    fn local(&self, text: &str, speed: f32) -> Result<Vec<f32>, TtsError> {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        let audio = self.fallback.synthesize(text, speed)?;
        resample_all(
            &audio,
            self.fallback.sample_rate(),
            self.primary.sample_rate(),
        )
        .map_err(|e| TtsError::inference(self.fallback.name(), e))
    }
}

impl TtsEngine for FallbackTts {
    fn name(&self) -> &str {
        self.primary.name()
    }

    fn sample_rate(&self) -> u32 {
        self.primary.sample_rate()
    }

    fn synthesize(&self, text: &str, speed: f32) -> Result<Vec<f32>, TtsError> {
        if self.resting() {
            return self.local(text, speed);
        }
        match self.primary.synthesize(text, speed) {
            Err(TtsError::EmptyText) => Err(TtsError::EmptyText),
            Err(e) => {
                tracing::warn!(voice = self.primary.name(), error = %e,
                    "remote voice failed: the local voice speaks (and for the next {} s)",
                    RETRY_REMOTE_AFTER.as_secs());
                *self.resting_until.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(Instant::now() + RETRY_REMOTE_AFTER);
                self.local(text, speed)
            }
            ok => ok,
        }
    }

    /// While the server is resting the local voice needs the cores.
    fn light(&self) -> bool {
        !self.resting() && self.primary.light()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted voice: fails while `fail` is set; a tone of `n` samples at `rate` otherwise.
    struct Scripted {
        name: &'static str,
        rate: u32,
        fail: std::sync::atomic::AtomicBool,
        calls: AtomicU64,
    }

    impl Scripted {
        fn new(name: &'static str, rate: u32, fail: bool) -> Arc<Self> {
            Arc::new(Self {
                name,
                rate,
                fail: fail.into(),
                calls: AtomicU64::new(0),
            })
        }
    }

    impl TtsEngine for Scripted {
        fn name(&self) -> &str {
            self.name
        }
        fn sample_rate(&self) -> u32 {
            self.rate
        }
        fn synthesize(&self, text: &str, _speed: f32) -> Result<Vec<f32>, TtsError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if text.is_empty() {
                return Err(TtsError::EmptyText);
            }
            if self.fail.load(Ordering::Relaxed) {
                return Err(TtsError::inference(self.name, "scripted failure"));
            }
            Ok((0..self.rate as usize / 10)
                .map(|i| (i as f32 * 0.05).sin() * 0.5)
                .collect())
        }
    }

    #[test]
    fn a_failing_server_hands_over_to_the_local_voice_at_the_server_rate_and_rests() {
        let remote = Scripted::new("remote:alloy", 24_000, true);
        let local = Scripted::new("espeak:te", 22_050, false);
        let count = Arc::new(AtomicU64::new(0));
        let tts = FallbackTts::new(remote.clone(), local.clone(), Arc::clone(&count));
        assert_eq!(tts.name(), "remote:alloy");
        assert!(!tts.light(), "the scripted server needs the cores");
        let audio = tts
            .synthesize("నమస్కారం", 1.0)
            .expect("the local voice answers");
        // 100 ms of the local voice, converted to the server's rate the stage expects.
        assert!((audio.len() as i64 - 2_400).abs() < 40, "{}", audio.len());
        assert_eq!(count.load(Ordering::Relaxed), 1);
        // Resting: the server is not asked again at once.
        tts.synthesize("మళ్ళీ", 1.0).expect("local again");
        assert_eq!(remote.calls.load(Ordering::Relaxed), 1);
        assert_eq!(count.load(Ordering::Relaxed), 2);
        // Blank text is the caller's error, never a fallback.
        let counted = Arc::new(AtomicU64::new(0));
        let healthy = FallbackTts::new(
            Scripted::new("remote:alloy", 24_000, false),
            local,
            Arc::clone(&counted),
        );
        assert!(matches!(
            healthy.synthesize("", 1.0),
            Err(TtsError::EmptyText)
        ));
        assert_eq!(healthy.synthesize("ok", 1.0).expect("server").len(), 2_400);
        assert_eq!(counted.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_server_that_never_answers_fails_within_the_time_limit() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        // Accepts, reads nothing, answers nothing.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://{}/v1/audio/speech",
            listener.local_addr().expect("addr")
        );
        let config = RemoteTtsConfig {
            url,
            model: "tts-1".into(),
            voice: "alloy".into(),
            voices: Default::default(),
            api_key_env: None,
            languages: vec!["hi".into()],
            timeout_ms: 400,
            response_format: "pcm".into(),
        };
        let remote = RemoteTts::new(&config, "hi").expect("client");
        let started = Instant::now();
        let err = rt
            .block_on(async {
                tokio::task::spawn_blocking(move || remote.synthesize("नमस्ते", 1.0)).await
            })
            .expect("join")
            .expect_err("no answer");
        let waited = started.elapsed();
        assert!(err.to_string().contains("no answer within 400 ms"), "{err}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
        drop(listener);
        // Nothing listens now: refused at once.
        let remote = RemoteTts::new(&config, "hi").expect("client");
        let err = rt
            .block_on(async {
                tokio::task::spawn_blocking(move || remote.synthesize("नमस्ते", 1.0)).await
            })
            .expect("join")
            .expect_err("refused");
        assert!(err.to_string().contains("unreachable"), "{err}");
    }
}
