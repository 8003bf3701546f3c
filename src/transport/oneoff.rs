//! One-off recognition and synthesis, outside any conversation: the gRPC unary calls
//! (`Transcribe`, `Synthesize`) and the OpenAI-compatible HTTP endpoints share these, so the
//! limits, the CPU scheduler's priorities and the errors are the same on both. Each call is
//! abandoned (its decoder stopped) when the caller goes away.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::audio::PIPELINE_RATE;
use crate::backend::asr::{AsrError, LanguageHint, Transcription};
use crate::backend::tts::{requested_speed, TtsError, MAX_SPEED, MIN_SPEED};
use crate::backend::Backends;
use crate::scheduler::Priority;
use crate::text::input::echo;
use crate::text::reply_guard::without_loops;

/// Longest text one synthesis request may ask for, in characters.
pub const MAX_SYNTH_CHARS: usize = 2_000;
/// Longest audio one recognition request may send (longer audio belongs in a conversation).
pub const MAX_TRANSCRIBE_S: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum OneOffError {
    /// The request is wrong and the client can fix it (unknown language or voice, empty or
    /// too long text or audio, a speed out of range).
    #[error("{0}")]
    Invalid(String),
    /// vaak failed (a model error, a task that died).
    #[error("{0}")]
    Internal(String),
}

/// The languages a request may use: those it names (each must be served; `en-IN` is `en`),
/// or every served language when it names none.
pub fn languages(served: &[String], asked: &[String]) -> Result<Vec<String>, OneOffError> {
    if asked.is_empty() {
        return Ok(served.to_vec());
    }
    let mut out = Vec::new();
    for l in asked {
        let lower = l.trim().to_ascii_lowercase();
        let code = lower.split(['-', '_']).next().unwrap_or_default();
        if !served.iter().any(|s| s == code) {
            return Err(OneOffError::Invalid(format!(
                "language `{}` is not served here; served: {}",
                echo(l),
                served.join(", ")
            )));
        }
        if !out.iter().any(|o: &String| o == code) {
            out.push(code.to_string());
        }
    }
    Ok(out)
}

/// Recognises `pcm` (mono, at the pipeline rate) in one of `languages` (one: fixed; several:
/// detected among them), waiting for the cores behind live conversations' replies.
pub async fn transcribe(
    backends: &Backends,
    pcm: Vec<f32>,
    languages: Vec<String>,
) -> Result<Transcription, OneOffError> {
    if pcm.len() as u64 > MAX_TRANSCRIBE_S * u64::from(PIPELINE_RATE) {
        return Err(OneOffError::Invalid(format!(
            "audio longer than {MAX_TRANSCRIBE_S} s; use a conversation for long audio"
        )));
    }
    let hint = match languages.as_slice() {
        [one] => LanguageHint::Fixed(one.clone()),
        many => LanguageHint::DetectAmong(many.to_vec()),
    };
    let asr = Arc::clone(&backends.asr);
    // Abandoned with the call: a caller that goes away stops the decoder.
    let cancel = CancellationToken::new();
    let guard = cancel.clone().drop_guard();
    let job_cancel = cancel.clone();
    let job = move || asr.transcribe(&pcm, &hint, &job_cancel);
    let (result, _) = backends
        .cpu
        .run(Priority::Transcript, &cancel, job)
        .await
        .map_err(|e| OneOffError::Internal(format!("ASR task failed: {e}")))?;
    drop(guard);
    // A short clip can send the decoder round a loop; the caller gets the phrase once.
    result
        .map(|t| Transcription {
            text: without_loops(&t.text),
            ..t
        })
        .map_err(|e| match e {
            AsrError::TooShort(_) | AsrError::UnsupportedLanguage(_) => {
                OneOffError::Invalid(e.to_string())
            }
            other => OneOffError::Internal(other.to_string()),
        })
}

/// Synthesised speech and the voice that spoke it.
#[derive(Debug)]
pub struct Speech {
    pub audio: Vec<f32>,
    pub sample_rate: u32,
    pub voice: String,
}

/// What a synthesis request asks for, checked by [`SpeechRequest::check`].
#[derive(Debug, Clone)]
pub struct SpeechRequest {
    pub text: String,
    pub language: String,
    /// A voice by name; `None`: the language's voice.
    pub voice: Option<String>,
    /// 0: the configured default.
    pub speed: f32,
}

impl SpeechRequest {
    /// Trims the text and checks it, the language and the speed; returns the speed to use.
    pub fn check(&mut self, backends: &Backends) -> Result<f32, OneOffError> {
        self.text = self.text.trim().to_string();
        if self.text.is_empty() {
            return Err(OneOffError::Invalid(
                "nothing to synthesize: text is empty".into(),
            ));
        }
        let n = self.text.chars().count();
        if n > MAX_SYNTH_CHARS {
            return Err(OneOffError::Invalid(format!(
                "text longer than {MAX_SYNTH_CHARS} characters ({n})"
            )));
        }
        let served = &backends.config.pipeline.languages;
        self.language = languages(served, std::slice::from_ref(&self.language))?
            .pop()
            .unwrap_or_default();
        requested_speed(self.speed, backends.config.tts.default_speed).map_err(|asked| {
            OneOffError::Invalid(format!(
                "speech rate {asked} is outside {MIN_SPEED}..={MAX_SPEED}"
            ))
        })
    }
}

/// Says `text` (already checked) in `language` with `voice`, waiting for the cores behind live
/// conversations' clauses.
pub async fn synthesize(
    backends: &Backends,
    text: String,
    language: String,
    voice: Option<String>,
    speed: f32,
) -> Result<Speech, OneOffError> {
    let bank = Arc::clone(&backends.tts);
    let cancel = CancellationToken::new();
    let guard = cancel.clone().drop_guard();
    let synth = backends
        .cpu
        .run(Priority::LaterClause, &cancel, move || {
            let engine = match &voice {
                Some(name) => bank.named(name, &language),
                None => bank.for_language(&language),
            }?;
            let audio = engine.synthesize(&text, speed)?;
            Ok::<_, TtsError>(Speech {
                audio,
                sample_rate: engine.sample_rate(),
                voice: engine.name().to_string(),
            })
        })
        .await
        .map(|(synth, _)| synth)
        .map_err(|e| OneOffError::Internal(format!("TTS task failed: {e}")))?;
    drop(guard);
    synth.map_err(|e| match e {
        TtsError::UnknownVoice { .. } | TtsError::UnknownLanguage { .. } | TtsError::EmptyText => {
            OneOffError::Invalid(e.to_string())
        }
        other => OneOffError::Internal(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_are_served_codes() {
        let served = vec!["hi".to_string(), "en".to_string()];
        assert_eq!(languages(&served, &[]).unwrap(), served);
        assert_eq!(
            languages(&served, &["en-IN".into(), "EN".into()]).unwrap(),
            vec!["en".to_string()]
        );
        let e = languages(&served, &["xx".repeat(100)]).unwrap_err();
        assert!(matches!(e, OneOffError::Invalid(_)));
        assert!(e.to_string().len() < 150, "{e}");
    }
}
