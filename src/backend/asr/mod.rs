//! Speech recognition backends. The trait takes one utterance at the pipeline rate and returns
//! its text plus the spoken-language decision, so a remote recogniser or a per-language model
//! can replace the embedded whisper.cpp one. A recogniser that can continue a committed prefix
//! over a window of audio ([`Asr::transcribe_window`]) streams: [`streaming`] drives it while
//! the user speaks.

pub mod remote;
pub mod routed;
pub mod script_filter;
pub mod streaming;
pub mod whisper;

use tokio_util::sync::CancellationToken;

/// How the recogniser should choose the language.
#[derive(Debug, Clone, PartialEq)]
pub enum LanguageHint {
    /// Detect among these language codes (Whisper codes: `en`, `hi`, `te` …).
    DetectAmong(Vec<String>),
    /// The caller knows the language.
    Fixed(String),
    /// Detect among `allowed`, but decode in the session's `current` language unless another
    /// is detected with at least `switch_prob` (or is `pending`: seen once already).
    Prefer {
        allowed: Vec<String>,
        current: String,
        pending: Option<String>,
        switch_prob: f32,
    },
}

impl LanguageHint {
    /// The language to decode in, given the detection's best language and its probability;
    /// `true` when that is the held language rather than the detected one.
    /// [`Self::choose_among`] also gives the chosen language's probability.
    ///
    /// (Measured alternative, not taken: holding only while the session's language keeps at
    /// least 0.2 of the probability. It lets a session that really switches every turn follow
    /// sooner — Telugu turns amid Hindi ones recognised 70 % instead of 10 % — but costs the
    /// common single-language conversation: Telugu 60 % instead of 90 %, Hindi 94 % instead of
    /// 100 %.)
    pub fn choose(&self, best: &str, prob: f32) -> (String, bool) {
        match self {
            LanguageHint::Prefer {
                current,
                pending,
                switch_prob,
                ..
            } if best != current && prob < *switch_prob && pending.as_deref() != Some(best) => {
                (current.clone(), true)
            }
            _ => (best.to_string(), false),
        }
    }

    /// [`Self::choose`] on a detection: the language to decode in, its probability among the
    /// candidates (the best one's if it is not listed) and whether it was held.
    pub fn choose_among(&self, detected: &Detected) -> (String, f32, bool) {
        let (best, prob, candidates) = detected;
        let (language, held) = self.choose(best, *prob);
        let p = candidates
            .iter()
            .find(|(l, _)| *l == language)
            .map_or(*prob, |(_, p)| *p);
        (language, p, held)
    }
}

/// One recognised utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcription {
    pub text: String,
    pub language: String,
    /// Probability of `language` after restricting detection to the allowed set (1.0 if fixed).
    pub language_prob: f32,
    /// The best three candidates, most likely first.
    pub candidates: Vec<(String, f32)>,
    /// Decoded in the session's language although detection preferred another (hysteresis).
    pub held: bool,
    pub audio_s: f32,
    pub elapsed_s: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("ASR model not found at {0}: run `vaak models fetch`")]
    Missing(std::path::PathBuf),
    #[error("cannot load the ASR model {path}: {detail}")]
    Load {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("language `{0}` is not supported by this ASR model")]
    UnsupportedLanguage(String),
    #[error("utterance too short to transcribe ({0:.2} s)")]
    TooShort(f32),
    #[error("transcription cancelled")]
    Cancelled,
    #[error("transcription failed: {0}")]
    Failed(String),
}

/// Detected language, its probability, and the top candidates.
pub type Detected = (String, f32, Vec<(String, f32)>);

/// A speech recogniser. Blocking: callers run it with `spawn_blocking`.
pub trait Asr: Send + Sync {
    fn transcribe(
        &self,
        pcm_16k: &[f32],
        hint: &LanguageHint,
        cancel: &CancellationToken,
    ) -> Result<Transcription, AsrError>;

    /// Spoken-language detection alone (to route the utterance to a per-language model).
    /// The default transcribes and keeps the language; Whisper does it for a fraction of that.
    fn detect_language(
        &self,
        pcm_16k: &[f32],
        allowed: &[String],
        cancel: &CancellationToken,
    ) -> Result<Detected, AsrError> {
        let t = self.transcribe(
            pcm_16k,
            &LanguageHint::DetectAmong(allowed.to_vec()),
            cancel,
        )?;
        Ok((t.language, t.language_prob, t.candidates))
    }

    /// Every decode slot is taken: optional work (partial transcripts) should be skipped.
    fn is_busy(&self) -> bool {
        false
    }

    /// Requests this backend's remote part failed and its embedded fallback answered (0 for a
    /// backend with no fallback); served at `/metrics`.
    fn fallbacks(&self) -> u64 {
        0
    }

    /// True if [`Self::transcribe_window`] really continues `prefix` after `context` (a pass
    /// costs the window, not the utterance): the streaming state then trims committed audio.
    /// Others are re-run over the whole utterance at each pass.
    fn streams(&self) -> bool {
        false
    }

    /// One streaming pass: the text of `req.pcm`, which must begin with `req.prefix` (words
    /// already committed inside this window), decoded after `req.context` (words committed
    /// from audio before the window). The default ignores both and transcribes the window.
    fn transcribe_window(
        &self,
        req: &WindowRequest<'_>,
        cancel: &CancellationToken,
    ) -> Result<Transcription, AsrError> {
        self.transcribe(req.pcm, req.hint, cancel)
    }
}

/// One pass of a streaming recogniser over the uncommitted window of an utterance.
#[derive(Debug, Clone)]
pub struct WindowRequest<'a> {
    /// The window's audio at the pipeline rate.
    pub pcm: &'a [f32],
    pub hint: &'a LanguageHint,
    /// Committed text of the audio before the window (the decoder's prompt).
    pub context: &'a str,
    /// Committed text at the start of the window (forced: the pass only decodes what follows).
    pub prefix: &'a str,
}
