//! Per-language recognisers with the embedded model as fallback: an Indic fine-tune of Whisper
//! for Hindi, a remote service for Tamil, the default model for the rest. The embedded model
//! detects the language (with the session's hysteresis); the utterance then goes to that
//! language's recogniser, and back to the embedded one if that fails.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Asr, AsrError, Detected, LanguageHint, Transcription, WindowRequest};

/// The embedded recogniser plus the languages routed elsewhere.
pub struct RoutedAsr {
    embedded: Arc<dyn Asr>,
    /// language → (recogniser, its name for logs).
    routes: BTreeMap<String, (Arc<dyn Asr>, String)>,
    /// Utterances that fell back to the embedded model because a route failed.
    pub fallbacks: AtomicU64,
}

impl RoutedAsr {
    pub fn new(embedded: Arc<dyn Asr>) -> Self {
        Self {
            embedded,
            routes: BTreeMap::new(),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Sends `language` to `asr` (named `name` in logs).
    pub fn route(mut self, language: &str, asr: Arc<dyn Asr>, name: impl Into<String>) -> Self {
        self.routes.insert(language.to_string(), (asr, name.into()));
        self
    }

    /// The routed languages and the recogniser each goes to.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.routes
            .iter()
            .map(|(l, (_, n))| (l.as_str(), n.as_str()))
    }
}

impl RoutedAsr {
    /// Detects the language with the embedded model (unless fixed), then runs `recognise` on
    /// that language's recogniser, and on the embedded one if that fails.
    fn routed(
        &self,
        pcm: &[f32],
        hint: &LanguageHint,
        cancel: &CancellationToken,
        recognise: impl Fn(&dyn Asr, &LanguageHint) -> Result<Transcription, AsrError>,
    ) -> Result<Transcription, AsrError> {
        if self.routes.is_empty() {
            return recognise(self.embedded.as_ref(), hint);
        }
        let (language, prob, candidates, held) = match hint {
            LanguageHint::Fixed(l) => (l.clone(), 1.0, vec![(l.clone(), 1.0)], false),
            LanguageHint::DetectAmong(allowed) | LanguageHint::Prefer { allowed, .. } => {
                let detected: Detected = self.embedded.detect_language(pcm, allowed, cancel)?;
                let (language, prob, held) = hint.choose_among(&detected);
                (language, prob, detected.2, held)
            }
        };
        let fixed = LanguageHint::Fixed(language.clone());
        let result = match self.routes.get(&language) {
            Some((asr, name)) => match recognise(asr.as_ref(), &fixed) {
                Err(AsrError::Cancelled) => return Err(AsrError::Cancelled),
                Err(e) => {
                    self.fallbacks.fetch_add(1, Ordering::Relaxed);
                    warn!(language = %language, recogniser = %name, error = %e,
                        "per-language recogniser failed: the embedded model answers");
                    recognise(self.embedded.as_ref(), &fixed)
                }
                ok => ok,
            },
            None => recognise(self.embedded.as_ref(), &fixed),
        };
        result.map(|t| Transcription {
            language_prob: prob,
            candidates,
            held,
            ..t
        })
    }
}

impl Asr for RoutedAsr {
    fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    fn transcribe(
        &self,
        pcm: &[f32],
        hint: &LanguageHint,
        cancel: &CancellationToken,
    ) -> Result<Transcription, AsrError> {
        self.routed(pcm, hint, cancel, |asr, hint| {
            asr.transcribe(pcm, hint, cancel)
        })
    }

    fn detect_language(
        &self,
        pcm: &[f32],
        allowed: &[String],
        cancel: &CancellationToken,
    ) -> Result<Detected, AsrError> {
        self.embedded.detect_language(pcm, allowed, cancel)
    }

    fn is_busy(&self) -> bool {
        self.embedded.is_busy()
    }

    /// Streams only if every recogniser behind it does (a prefix forced on one that does not
    /// would be lost).
    fn streams(&self) -> bool {
        self.embedded.streams() && self.routes.values().all(|(asr, _)| asr.streams())
    }

    fn transcribe_window(
        &self,
        req: &WindowRequest<'_>,
        cancel: &CancellationToken,
    ) -> Result<Transcription, AsrError> {
        self.routed(req.pcm, req.hint, cancel, |asr, hint| {
            asr.transcribe_window(
                &WindowRequest {
                    hint,
                    ..req.clone()
                },
                cancel,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::ScriptedAsr;

    /// A recogniser that always fails (a route that is down).
    struct Down;
    impl Asr for Down {
        fn transcribe(
            &self,
            _: &[f32],
            _: &LanguageHint,
            _: &CancellationToken,
        ) -> Result<Transcription, AsrError> {
            Err(AsrError::Failed("HTTP 503".into()))
        }
    }

    fn langs() -> Vec<String> {
        vec!["hi".into(), "ta".into(), "en".into()]
    }

    #[test]
    fn routes_by_detected_language_and_falls_back() {
        let embedded = Arc::new(ScriptedAsr::new(&[("embedded", "ta")]));
        let tamil = Arc::new(ScriptedAsr::new(&[("from the tamil model", "ta")]));
        let asr = RoutedAsr::new(embedded.clone())
            .route("ta", tamil.clone(), "ggml-tamil")
            .route("hi", Arc::new(Down), "remote");
        let cancel = CancellationToken::new();
        let pcm = vec![0.0; 16_000];
        let t = asr
            .transcribe(&pcm, &LanguageHint::DetectAmong(langs()), &cancel)
            .unwrap();
        assert_eq!(
            (t.text.as_str(), t.language.as_str()),
            ("from the tamil model", "ta")
        );
        assert_eq!(
            tamil.seen.lock().unwrap()[0],
            LanguageHint::Fixed("ta".into())
        );
        // Hindi's route is down: the embedded model answers, in Hindi.
        let t = asr
            .transcribe(&pcm, &LanguageHint::Fixed("hi".into()), &cancel)
            .unwrap();
        assert_eq!(t.text, "embedded");
        assert_eq!(
            embedded.seen.lock().unwrap().last(),
            Some(&LanguageHint::Fixed("hi".into()))
        );
        assert_eq!(asr.fallbacks.load(Ordering::Relaxed), 1);
        let names: Vec<(&str, &str)> = asr.routes().collect();
        assert_eq!(names, [("hi", "remote"), ("ta", "ggml-tamil")]);
    }
}
