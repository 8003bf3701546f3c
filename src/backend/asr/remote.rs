//! A remote OpenAI-compatible speech recogniser (`POST /v1/audio/transcriptions`: OpenAI,
//! whisper.cpp's server, vLLM, an Indic ASR service behind the same API), used for the languages
//! the config gives it. The utterance goes up as a 16 kHz mono WAV in a multipart form with
//! `model`, `language` and `response_format=json`; the answer's `text` comes back.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Asr, AsrError, LanguageHint, Transcription};
use crate::audio::wav::mono_i16_bytes;
use crate::audio::PIPELINE_RATE;
use crate::backend::request_failure;

/// The multipart boundary (no WAV or field value contains it: field values are validated
/// language codes and the model name, and the WAV part has its length fixed by the form).
const BOUNDARY: &str = "vaak-asr-4f1c9e2b7d";

/// Where and how to reach the remote recogniser.
#[derive(Debug, Clone)]
pub struct RemoteAsrOptions {
    pub url: String,
    pub model: String,
    /// Bearer token (from the environment variable the config names).
    pub api_key: Option<String>,
    pub timeout: Duration,
}

pub struct RemoteAsr {
    opts: RemoteAsrOptions,
    client: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct Reply {
    text: String,
}

impl RemoteAsr {
    pub fn new(opts: RemoteAsrOptions) -> Result<Self, AsrError> {
        let client = reqwest::Client::builder()
            .connect_timeout(opts.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| AsrError::Failed(format!("remote ASR client: {e}")))?;
        Ok(Self { opts, client })
    }

    async fn request(&self, pcm: &[f32], language: &str) -> Result<String, AsrError> {
        let body = multipart_body(
            &self.opts.model,
            language,
            &mono_i16_bytes(pcm, PIPELINE_RATE),
        );
        let mut req = self
            .client
            .post(&self.opts.url)
            .timeout(self.opts.timeout)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body);
        if let Some(key) = &self.opts.api_key {
            req = req.bearer_auth(key);
        }
        let fail = |what: String| AsrError::Failed(format!("remote ASR {}: {what}", self.opts.url));
        let resp = req
            .send()
            .await
            .map_err(|e| fail(request_failure(&e, self.opts.timeout, None)))?;
        let status = resp.status();
        if !status.is_success() {
            // The body may echo the audio's words: not logged, only the status.
            return Err(fail(format!("HTTP {status}")));
        }
        // The time limit covers the body too: a server that sends its headers and then
        // dribbles (or stalls) is given up on like one that never answers.
        let body = resp
            .bytes()
            .await
            .map_err(|e| fail(request_failure(&e, self.opts.timeout, Some("answer"))))?;
        let reply: Reply = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("answer is not {{\"text\": …}} JSON ({e})")))?;
        Ok(reply.text)
    }
}

impl Asr for RemoteAsr {
    fn transcribe(
        &self,
        pcm: &[f32],
        hint: &LanguageHint,
        cancel: &CancellationToken,
    ) -> Result<Transcription, AsrError> {
        let LanguageHint::Fixed(language) = hint else {
            // The router detects the language with the embedded model first.
            return Err(AsrError::Failed(
                "the remote recogniser needs the language decided first".into(),
            ));
        };
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| AsrError::Failed("remote ASR needs the async runtime".into()))?;
        let started = std::time::Instant::now();
        let text = handle.block_on(async {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => Err(AsrError::Cancelled),
                r = self.request(pcm, language) => r,
            }
        })?;
        Ok(Transcription {
            text: super::whisper::clean_transcript(&text),
            language: language.clone(),
            language_prob: 1.0,
            candidates: vec![(language.clone(), 1.0)],
            held: false,
            audio_s: pcm.len() as f32 / PIPELINE_RATE as f32,
            elapsed_s: started.elapsed().as_secs_f32(),
        })
    }
}

/// The `multipart/form-data` body OpenAI's transcription endpoint takes.
fn multipart_body(model: &str, language: &str, wav: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(wav.len() + 512);
    for (name, value) in [
        ("model", model),
        ("language", language),
        ("response_format", "json"),
    ] {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"utterance.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(wav);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_a_16k_wav() {
        let wav = mono_i16_bytes(&[0.0, 1.0, -1.0], PIPELINE_RATE);
        let r = hound::WavReader::new(std::io::Cursor::new(wav)).expect("reads back");
        assert_eq!((r.spec().sample_rate, r.spec().channels), (16_000, 1));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn multipart_has_every_field() {
        let body =
            String::from_utf8_lossy(&multipart_body("whisper-1", "ta", b"RIFFxx")).into_owned();
        for part in [
            "name=\"model\"\r\n\r\nwhisper-1\r\n",
            "name=\"language\"\r\n\r\nta\r\n",
            "name=\"response_format\"\r\n\r\njson\r\n",
            "filename=\"utterance.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFFxx\r\n",
        ] {
            assert!(body.contains(part), "{part:?} missing from {body:?}");
        }
        assert!(body.ends_with(&format!("--{BOUNDARY}--\r\n")));
    }
}
