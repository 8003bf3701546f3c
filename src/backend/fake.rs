//! Scripted stand-ins for every model, for tests of turn-taking, cancellation and backpressure
//! without loading weights. Their timing is scripted with `tokio::time`, so tests can pause time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::asr::{Asr, AsrError, LanguageHint, Transcription};
use super::llm::{ChatRequest, Llm, LlmError, LlmEvent, LlmStream};
use super::tts::{TtsEngine, TtsError};
use super::vad::{VadError, VadFactory, VoiceActivity};
use super::VoiceBank;

/// Energy detector: a frame is speech when its RMS exceeds `threshold`.
pub struct EnergyVad {
    pub threshold: f32,
}

impl VadFactory for EnergyVad {
    fn create(&self, sample_rate: u32) -> Result<Box<dyn VoiceActivity>, VadError> {
        let frame = match sample_rate {
            16_000 => 512,
            8_000 => 256,
            other => return Err(VadError::SampleRate(other)),
        };
        Ok(Box::new(EnergyStream {
            frame,
            threshold: self.threshold,
        }))
    }
}

struct EnergyStream {
    frame: usize,
    threshold: f32,
}

impl VoiceActivity for EnergyStream {
    fn frame_samples(&self) -> usize {
        self.frame
    }
    fn speech_probability(&mut self, frame: &[f32]) -> Result<f32, VadError> {
        Ok(if crate::audio::rms(frame) > self.threshold {
            1.0
        } else {
            0.0
        })
    }
    fn reset(&mut self) {}
}

/// Returns scripted transcripts in order (the last one repeats), recording each request.
pub struct ScriptedAsr {
    pub replies: Vec<(String, String)>,
    /// Detection probability of each reply's language (0.9 where not given).
    pub probs: Vec<f32>,
    pub calls: AtomicUsize,
    pub seen: Mutex<Vec<LanguageHint>>,
}

impl ScriptedAsr {
    pub fn new(replies: &[(&str, &str)]) -> Self {
        Self {
            replies: replies
                .iter()
                .map(|(t, l)| (t.to_string(), l.to_string()))
                .collect(),
            probs: Vec::new(),
            calls: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Replies whose language detection is only `prob` sure (hysteresis scenarios). A held
    /// decode reports the held language, as a recogniser decoding in it would.
    pub fn with_probs(replies: &[(&str, &str, f32)]) -> Self {
        let pairs: Vec<(&str, &str)> = replies.iter().map(|&(t, l, _)| (t, l)).collect();
        Self {
            probs: replies.iter().map(|r| r.2).collect(),
            ..Self::new(&pairs)
        }
    }
}

impl Asr for ScriptedAsr {
    fn transcribe(
        &self,
        pcm: &[f32],
        hint: &LanguageHint,
        cancel: &CancellationToken,
    ) -> Result<Transcription, AsrError> {
        if cancel.is_cancelled() {
            return Err(AsrError::Cancelled);
        }
        let i = self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hint.clone());
        let (text, lang) = self
            .replies
            .get(i)
            .or(self.replies.last())
            .cloned()
            .unwrap_or_default();
        let prob = self.probs.get(i).copied().unwrap_or(0.9);
        // The rest of the probability is shared by the other allowed languages.
        let mut candidates = vec![(lang.clone(), prob)];
        if let LanguageHint::DetectAmong(allowed) | LanguageHint::Prefer { allowed, .. } = hint {
            let others: Vec<&String> = allowed.iter().filter(|l| **l != lang).collect();
            let share = (1.0 - prob) / others.len().max(1) as f32;
            candidates.extend(others.into_iter().map(|l| (l.clone(), share)));
        }
        let (language, held) = hint.choose(&lang, prob);
        Ok(Transcription {
            text,
            language,
            language_prob: prob,
            candidates,
            held,
            audio_s: pcm.len() as f32 / 16_000.0,
            elapsed_s: 0.0,
        })
    }
}

/// Streams a scripted reply word by word, `per_token` apart; records every request.
pub struct ScriptedLlm {
    pub reply: String,
    pub first_token: Duration,
    pub per_token: Duration,
    pub requests: Mutex<Vec<ChatRequest>>,
    /// Prefills asked for, in order (as the embedded worker would take them).
    pub prefills: Mutex<Vec<ChatRequest>>,
    /// Fail this many requests first (backend-down scenarios).
    pub fail_first: AtomicUsize,
}

impl ScriptedLlm {
    pub fn new(reply: &str, first_token: Duration, per_token: Duration) -> Self {
        Self {
            reply: reply.into(),
            first_token,
            per_token,
            requests: Mutex::new(Vec::new()),
            prefills: Mutex::new(Vec::new()),
            fail_first: AtomicUsize::new(0),
        }
    }
}

impl Llm for ScriptedLlm {
    fn prefill(&self, req: ChatRequest) -> BoxFuture<'_, Result<bool, LlmError>> {
        self.prefills
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(req);
        Box::pin(async { Ok(true) })
    }

    fn stream_chat(&self, req: ChatRequest) -> BoxFuture<'_, Result<LlmStream, LlmError>> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(req);
        let fail = self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let words: Vec<String> = self
            .reply
            .split_inclusive(' ')
            .map(str::to_string)
            .collect();
        let (first, per) = (self.first_token, self.per_token);
        async move {
            if fail {
                return Err(LlmError::Unreachable {
                    endpoint: "scripted".into(),
                    detail: "scripted failure".into(),
                });
            }
            let stream = futures::stream::iter(words.into_iter().enumerate())
                .then(move |(i, w)| async move {
                    tokio::time::sleep(if i == 0 { first } else { per }).await;
                    Ok(LlmEvent::Delta(w))
                })
                .chain(futures::stream::once(async { Ok(LlmEvent::Done(None)) }));
            Ok(stream.boxed())
        }
        .boxed()
    }
}

/// What the fake voices were asked to say: (voice language, text), in order.
pub type SpokenLog = Arc<Mutex<Vec<(String, String)>>>;

/// A voice that "speaks" 50 ms of tone per character at 16 kHz, and logs what it said; fails
/// every synthesis while `failing` is set.
pub struct ToneVoice {
    name: String,
    language: String,
    log: SpokenLog,
    failing: Arc<AtomicBool>,
}

impl TtsEngine for ToneVoice {
    fn name(&self) -> &str {
        &self.name
    }
    fn sample_rate(&self) -> u32 {
        16_000
    }
    fn synthesize(&self, text: &str, _speed: f32) -> Result<Vec<f32>, TtsError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(TtsError::inference("fake", "scripted failure"));
        }
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((self.language.clone(), text.to_string()));
        let n = text.chars().count() * 800;
        Ok((0..n).map(|i| ((i as f32) * 0.05).sin() * 0.3).collect())
    }
}

/// Every language speaks through a [`ToneVoice`] of its own (`fake:tone:<lang>`).
#[derive(Default)]
pub struct ToneBank {
    pub spoken: SpokenLog,
    /// Every voice of the bank fails while this is set.
    pub failing: Arc<AtomicBool>,
}

impl ToneBank {
    fn voice(&self, lang: &str) -> Arc<dyn TtsEngine> {
        Arc::new(ToneVoice {
            name: format!("fake:tone:{lang}"),
            language: lang.to_string(),
            log: Arc::clone(&self.spoken),
            failing: Arc::clone(&self.failing),
        })
    }
}

impl VoiceBank for ToneBank {
    fn for_language(&self, lang: &str) -> Result<Arc<dyn TtsEngine>, TtsError> {
        Ok(self.voice(lang))
    }
    fn named(&self, name: &str, lang: &str) -> Result<Arc<dyn TtsEngine>, TtsError> {
        if name == "tone" {
            return Ok(self.voice(lang));
        }
        Err(TtsError::UnknownVoice {
            engine: "fake",
            voice: name.to_string(),
            available: format!("tone (for {lang})"),
        })
    }
    fn voices(&self) -> Vec<crate::backend::tts::VoiceChoice> {
        vec![crate::backend::tts::VoiceChoice {
            name: "tone".into(),
            language: "en".into(),
            sample_rate: 16_000,
            is_default: true,
        }]
    }
}

/// A streaming recogniser for tests: it "hears" words spoken by [`WordTones::speech`] (each
/// word a tone of its own loudness, words apart by short gaps) and continues the prefix of a
/// window pass as Whisper does. A word still being spoken at the window's end is heard with a
/// `~` (a recogniser is unsure at the edge). Records the longest window it was given; fails
/// every pass while `failing` is set.
pub struct WordTones {
    pub vocabulary: Vec<String>,
    pub passes: AtomicUsize,
    pub longest_window: AtomicUsize,
    pub failing: std::sync::atomic::AtomicBool,
}

/// Loudness step between words' tones.
const WORD_LEVEL: f32 = 0.04;
/// One word's tone and the gap after it, at 16 kHz.
const WORD_SAMPLES: usize = 6_400;
const WORD_GAP: usize = 960;

impl WordTones {
    pub fn new(vocabulary: &[&str]) -> Self {
        Self {
            vocabulary: vocabulary.iter().map(|w| w.to_string()).collect(),
            passes: AtomicUsize::new(0),
            longest_window: AtomicUsize::new(0),
            failing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// 16 kHz audio of the words at `indices` of the vocabulary (400 ms each, 60 ms apart).
    pub fn speech(indices: &[usize]) -> Vec<f32> {
        let mut out = Vec::new();
        for &i in indices {
            let amp = WORD_LEVEL * (i + 2) as f32 * std::f32::consts::SQRT_2;
            out.extend((0..WORD_SAMPLES).map(|n| (n as f32 * 0.3).sin() * amp));
            out.extend(std::iter::repeat_n(0.0, WORD_GAP));
        }
        out
    }

    /// The words in `pcm`: runs of 20 ms frames at one word's loudness.
    fn hear(&self, pcm: &[f32]) -> String {
        let levels: Vec<Option<usize>> = pcm
            .chunks(320)
            .map(|f| {
                let l = (crate::audio::rms(f) / WORD_LEVEL).round() as usize;
                (l >= 2).then(|| l - 2)
            })
            .collect();
        let mut words = Vec::new();
        let mut run: Option<(usize, usize)> = None;
        for (k, level) in levels.iter().enumerate() {
            match (*level, run) {
                (Some(w), Some((rw, n))) if w == rw => run = Some((w, n + 1)),
                (l, prev) => {
                    if let Some((w, n)) = prev {
                        if n >= 5 {
                            words.push(self.word(w, false));
                        }
                    }
                    run = l.map(|w| (w, 1));
                }
            }
            if k + 1 == levels.len() {
                if let Some((w, n)) = run {
                    if n >= 5 {
                        words.push(self.word(w, n < 20));
                    }
                }
            }
        }
        words.join(" ")
    }

    fn word(&self, i: usize, unsure: bool) -> String {
        let w = self
            .vocabulary
            .get(i)
            .cloned()
            .unwrap_or_else(|| "?".into());
        if unsure {
            format!("{w}~")
        } else {
            w
        }
    }
}

impl Asr for WordTones {
    fn transcribe(
        &self,
        pcm: &[f32],
        hint: &LanguageHint,
        cancel: &CancellationToken,
    ) -> Result<Transcription, AsrError> {
        if cancel.is_cancelled() {
            return Err(AsrError::Cancelled);
        }
        self.passes.fetch_add(1, Ordering::SeqCst);
        self.longest_window.fetch_max(pcm.len(), Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(AsrError::Failed("scripted failure".into()));
        }
        let language = match hint {
            LanguageHint::Fixed(l) => l.clone(),
            LanguageHint::DetectAmong(a) | LanguageHint::Prefer { allowed: a, .. } => {
                a.first().cloned().unwrap_or_else(|| "en".into())
            }
        };
        Ok(Transcription {
            text: self.hear(pcm),
            language: language.clone(),
            language_prob: 0.99,
            candidates: vec![(language, 0.99)],
            held: false,
            audio_s: pcm.len() as f32 / 16_000.0,
            elapsed_s: 0.01,
        })
    }

    fn streams(&self) -> bool {
        true
    }

    fn transcribe_window(
        &self,
        req: &super::asr::WindowRequest<'_>,
        cancel: &CancellationToken,
    ) -> Result<Transcription, AsrError> {
        // The window's words begin with the prefix: hearing the whole window continues it.
        self.transcribe(req.pcm, req.hint, cancel)
    }
}
