//! One streaming pass with whisper.cpp's low-level calls instead of `full()`: the window is
//! encoded once, the spoken language is read from the first decoder step over that same
//! encoding (no second encoder pass), and the committed words inside the window are forced as
//! the decoder's prefix, so a pass only generates what follows them. Greedy decoding with
//! whisper's own rules: special and timestamp tokens never sampled, no blank or end-of-text as
//! the first token, foreign scripts suppressed, a token budget and a repetition stop.

use std::time::Instant;

use tokio_util::sync::CancellationToken;
use whisper_rs::WhisperState;

use super::{clean_transcript, max_tokens_for, native_script_prompt, ranked, WhisperAsr};
use crate::audio::PIPELINE_RATE;
use crate::backend::asr::{AsrError, Detected, LanguageHint, Transcription, WindowRequest};

/// Prompt tokens kept before the task tokens (whisper allows half the text context, 224).
const MAX_PROMPT_TOKENS: usize = 128;
/// Whisper's text context: prompt, task tokens, prefix and new tokens together.
const TEXT_CTX: usize = 448;
/// A run of up to this many tokens repeated [`SHORT_REPEATS`] times at the end ends a pass.
const SHORT_LOOP: usize = 6;
const SHORT_REPEATS: usize = 3;
/// The last this many tokens seen before in the pass (prefix included) end it: Whisper's phrase
/// loops go back to the window's start (Devanagari costs about a token per letter, so a
/// phrase is dozens of tokens and rarely repeats exactly).
const ECHO_TOKENS: usize = 12;
/// Whisper's byte-level " " token: never the first token of a pass (suppress_blank).
const BLANK_TOKEN: i32 = 220;

fn failed(what: &str, e: impl std::fmt::Display) -> AsrError {
    AsrError::Failed(format!("{what}: {e}"))
}

impl WhisperAsr {
    /// A streaming pass on a pooled state (see [`crate::backend::asr::Asr::transcribe_window`]).
    pub(super) fn window_pass(
        &self,
        state: &mut WhisperState,
        req: &WindowRequest<'_>,
        cancel: &CancellationToken,
    ) -> Result<Transcription, AsrError> {
        let started = Instant::now();
        let threads = self.opts.threads.max(1);
        let pcm = req.pcm;
        // `full` limited to 100 ms computes the mel and sets the trimmed audio context, then
        // returns before encoding (see `detect_on`).
        let mut prime = self.base_params(self.audio_ctx_for(pcm.len()));
        prime.set_language(Some("en"));
        prime.set_duration_ms(100);
        state
            .full(prime, pcm)
            .map_err(|e| failed("mel spectrogram", e))?;
        if cancel.is_cancelled() {
            return Err(AsrError::Cancelled);
        }
        state.encode(0, threads).map_err(|e| failed("encoder", e))?;
        if cancel.is_cancelled() {
            return Err(AsrError::Cancelled);
        }
        let encoded = started.elapsed();

        let (language, language_prob, candidates) = match req.hint {
            LanguageHint::Fixed(code) => {
                if whisper_rs::get_lang_id(code).is_none() {
                    return Err(AsrError::UnsupportedLanguage(code.clone()));
                }
                (code.clone(), 1.0, vec![(code.clone(), 1.0)])
            }
            LanguageHint::DetectAmong(allowed) | LanguageHint::Prefer { allowed, .. } => {
                self.detect_from_encoding(state, allowed)?
            }
        };
        let detected: Detected = (language, language_prob, candidates);
        let (mut language, mut language_prob, mut held) = req.hint.choose_among(&detected);
        let mut prefix = req.prefix;
        let (mut fed, forced, mut new) = self.decode_in(state, req, &language, prefix, cancel)?;
        // The session's language was held, but whisper hears next to nothing in it: the
        // speech is in another language. Decode the same encoding in the detected one (a
        // garbled or empty turn would also hide the new language from the session).
        if held && req.context.is_empty() {
            let heard = forced + new.len();
            if heard_little(heard, pcm.len()) {
                let (detected_language, detected_prob, _) = &detected;
                let (f, _, n) = self.decode_in(state, req, detected_language, "", cancel)?;
                if n.len() > heard {
                    tracing::debug!(language = %detected_language, held = %language, "held language heard little");
                    (fed, new, prefix) = (f, n, "");
                    language = detected_language.clone();
                    language_prob = *detected_prob;
                    held = false;
                }
            }
        }
        tracing::debug!(
            audio_ms = pcm.len() * 1000 / PIPELINE_RATE as usize,
            encode_ms = encoded.as_millis() as u64,
            decode_ms = (started.elapsed() - encoded).as_millis() as u64,
            fed,
            new = new.len(),
            "window pass"
        );

        let mut bytes = prefix.trim().as_bytes().to_vec();
        bytes.push(b' ');
        for id in &new {
            bytes.extend_from_slice(self.ctx.token_to_bytes(*id).unwrap_or_default());
        }
        Ok(Transcription {
            text: clean_transcript(&String::from_utf8_lossy(&bytes)),
            language,
            language_prob,
            candidates: detected.2,
            held,
            audio_s: pcm.len() as f32 / PIPELINE_RATE as f32,
            elapsed_s: started.elapsed().as_secs_f32(),
        })
    }

    /// Decodes the state's encoding in `language`: the prompt, the task tokens and the forced
    /// `prefix`, then new tokens greedily. Returns (tokens fed, of them the prefix's, new
    /// tokens).
    fn decode_in(
        &self,
        state: &mut WhisperState,
        req: &WindowRequest<'_>,
        language: &str,
        prefix: &str,
        cancel: &CancellationToken,
    ) -> Result<(usize, usize, Vec<i32>), AsrError> {
        let lang_id = whisper_rs::get_lang_id(language)
            .ok_or_else(|| AsrError::UnsupportedLanguage(language.to_string()))?;
        let prefix = self.tokens_of(&lead_space(prefix))?;
        let mut tokens = self.prompt_tokens(language, req.context)?;
        tokens.extend([
            self.ctx.token_sot(),
            self.ctx.token_lang(lang_id),
            self.ctx.token_transcribe(),
            self.ctx.token_not(),
        ]);
        tokens.extend_from_slice(&prefix);
        let budget = (max_tokens_for(req.pcm.len()) as usize)
            .saturating_sub(prefix.len())
            .max(8)
            .min(TEXT_CTX.saturating_sub(tokens.len() + 1));
        let new = self.greedy(state, &tokens, budget, language, prefix.len(), cancel)?;
        Ok((tokens.len(), prefix.len(), new))
    }

    /// Spoken-language detection on the state's current encoding: one decoder step after
    /// `<|startoftranscript|>`, the language tokens' logits restricted to `allowed`.
    fn detect_from_encoding(
        &self,
        state: &mut WhisperState,
        allowed: &[String],
    ) -> Result<Detected, AsrError> {
        let threads = self.opts.threads.max(1);
        state
            .decode(&[self.ctx.token_sot()], 0, threads)
            .map_err(|e| failed("language detection", e))?;
        let logits = state
            .get_logits()
            .map_err(|e| failed("language detection", e))?;
        let mut scored: Vec<(String, f32)> = allowed
            .iter()
            .filter_map(|code| {
                let id = whisper_rs::get_lang_id(code)?;
                let token = self.ctx.token_lang(id) as usize;
                Some((code.clone(), logits.get(token).copied()?))
            })
            .collect();
        let max = scored
            .iter()
            .map(|(_, l)| *l)
            .fold(f32::NEG_INFINITY, f32::max);
        // A softmax over the allowed languages' logits.
        scored.iter_mut().for_each(|(_, l)| *l = (*l - max).exp());
        ranked(allowed, scored)
    }

    /// `<|startofprev|>` and the prompt: the language's script phrase, then the committed text
    /// before the window (its last [`MAX_PROMPT_TOKENS`] tokens). Nothing if both are empty.
    fn prompt_tokens(&self, language: &str, context: &str) -> Result<Vec<i32>, AsrError> {
        let mut text = String::new();
        if self.opts.native_script_prompt {
            text.push_str(native_script_prompt(language).unwrap_or_default());
        }
        if !context.trim().is_empty() {
            text.push(' ');
            text.push_str(context.trim());
        }
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let t = self.tokens_of(&lead_space(&text))?;
        let mut tokens = vec![self.ctx.token_prev()];
        tokens.extend_from_slice(&t[t.len().saturating_sub(MAX_PROMPT_TOKENS)..]);
        Ok(tokens)
    }

    fn tokens_of(&self, text: &str) -> Result<Vec<i32>, AsrError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        // whisper.cpp reports a too-small buffer as a negative count that whisper-rs does not
        // check: give it room for one token per byte, the most any text can need.
        self.ctx
            .tokenize(text, text.len() + 8)
            .map_err(|e| failed("tokenizer", e))
    }

    /// Feeds `context` (prompt, task tokens, forced prefix) and generates at most `budget`
    /// tokens greedily. Returns the new tokens.
    fn greedy(
        &self,
        state: &mut WhisperState,
        context: &[i32],
        budget: usize,
        language: &str,
        prefix_len: usize,
        cancel: &CancellationToken,
    ) -> Result<Vec<i32>, AsrError> {
        let fresh = prefix_len == 0;
        let threads = self.opts.threads.max(1);
        let eot = self.ctx.token_eot();
        let foreign = if self.opts.suppress_foreign_scripts {
            self.foreign_tokens(language)
        } else {
            None
        };
        // whisper.cpp keeps only the last row of a batch's logits and returns the first: feed
        // all but the last token as one batch, then the last alone.
        let (head, last) = context.split_at(context.len() - 1);
        if !head.is_empty() {
            state
                .decode(head, 0, threads)
                .map_err(|e| failed("decoder", e))?;
        }
        state
            .decode(last, head.len(), threads)
            .map_err(|e| failed("decoder", e))?;
        let mut n_past = context.len();
        let mut out: Vec<i32> = Vec::new();
        let forced = context.len() - prefix_len;
        while out.len() < budget {
            if cancel.is_cancelled() {
                return Err(AsrError::Cancelled);
            }
            let logits = state.get_logits().map_err(|e| failed("decoder", e))?;
            let first = out.is_empty() && fresh;
            let next = best_token(logits, eot, first, foreign.as_deref().map(Vec::as_slice));
            if next == eot {
                break;
            }
            out.push(next);
            if let Some((n, repeats)) = token_loop(&out) {
                out.truncate(out.len() - n * (repeats - 1));
                break;
            }
            if echoes(&context[forced..], &out) {
                out.truncate(out.len() - ECHO_TOKENS);
                break;
            }
            state
                .decode(&[next], n_past, threads)
                .map_err(|e| failed("decoder", e))?;
            n_past += 1;
        }
        Ok(out)
    }
}

/// Fewer tokens than this per second of audio: next to nothing was heard (English runs at
/// about three tokens a second, Indic scripts at several times that).
const HEARD_LITTLE_PER_S: f32 = 1.0;

/// `tokens` over `samples` of audio is next to nothing (a second or more of it).
fn heard_little(tokens: usize, samples: usize) -> bool {
    let secs = samples as f32 / PIPELINE_RATE as f32;
    secs >= 1.0 && (tokens as f32) < secs * HEARD_LITTLE_PER_S
}

/// Whisper's words start with a space.
fn lead_space(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        String::new()
    } else {
        format!(" {t}")
    }
}

/// The most likely token that may be sampled: no special or timestamp token (every id above
/// end-of-text), no blank or end-of-text first, nothing in `suppressed`.
fn best_token(logits: &[f32], eot: i32, first: bool, suppressed: Option<&[i32]>) -> i32 {
    let mut masked: Option<Vec<f32>> = None;
    if let Some(ids) = suppressed {
        let mut l = logits.to_vec();
        for &id in ids {
            if let Some(x) = l.get_mut(id as usize) {
                *x = f32::NEG_INFINITY;
            }
        }
        masked = Some(l);
    }
    let logits = masked.as_deref().unwrap_or(logits);
    let mut best = (eot, f32::NEG_INFINITY);
    for (id, &l) in logits.iter().enumerate().take(eot as usize + 1) {
        let id = id as i32;
        if first && (id == eot || id == BLANK_TOKEN) {
            continue;
        }
        if l > best.1 {
            best = (id, l);
        }
    }
    best.0
}

/// A short token loop at the end of `tokens`: its length and how often it repeats.
fn token_loop(tokens: &[i32]) -> Option<(usize, usize)> {
    (1..=SHORT_LOOP).find_map(|n| {
        let need = n * SHORT_REPEATS;
        (tokens.len() >= need && {
            let tail = &tokens[tokens.len() - need..];
            tail.chunks(n).all(|c| c == &tail[..n])
        })
        .then_some((n, SHORT_REPEATS))
    })
}

/// The last [`ECHO_TOKENS`] of `new` already stand in `prefix` + `new` before them.
fn echoes(prefix: &[i32], new: &[i32]) -> bool {
    if new.len() < ECHO_TOKENS {
        return false;
    }
    let tail = &new[new.len() - ECHO_TOKENS..];
    let all: Vec<i32> = prefix.iter().chain(new).copied().collect();
    let before = &all[..all.len() - ECHO_TOKENS];
    before.windows(ECHO_TOKENS).any(|w| w == tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specials_blank_and_suppressed_tokens_are_never_chosen() {
        let eot = 10;
        let mut logits = vec![0.0; 20];
        logits[15] = 9.0; // a timestamp/special token above end-of-text
        logits[eot as usize] = 5.0;
        logits[3] = 1.0;
        assert_eq!(best_token(&logits, eot, false, None), eot);
        assert_eq!(best_token(&logits, eot, true, None), 3);
        assert_eq!(best_token(&logits, eot, true, Some(&[3])), 0);
    }

    #[test]
    fn loops_are_found_at_the_end_only() {
        assert_eq!(token_loop(&[1, 2, 3, 3, 3]), Some((1, 3)));
        assert_eq!(token_loop(&[9, 1, 2, 1, 2, 1, 2]), Some((2, 3)));
        assert_eq!(token_loop(&[1, 2, 1, 2, 3]), None);
        assert_eq!(token_loop(&[]), None);
        let phrase: Vec<i32> = (10..30).collect();
        let again: Vec<i32> = phrase.iter().chain(&phrase[..12]).copied().collect();
        assert!(echoes(&[], &again));
        assert!(echoes(&phrase, &phrase[..12]), "the prefix counts");
        assert!(!echoes(&[1, 2], &phrase));
        assert_eq!(lead_space("  नमस्ते "), " नमस्ते");
        assert!(heard_little(1, 3 * 16_000), "one token in 3 s");
        assert!(!heard_little(4, 3 * 16_000));
        assert!(!heard_little(0, 8_000), "half a second proves nothing");
        assert_eq!(lead_space(" "), "");
    }
}
