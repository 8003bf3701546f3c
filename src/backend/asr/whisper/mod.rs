//! whisper.cpp through `whisper-rs`: the model is loaded once; decoding states are pooled so
//! concurrent sessions do not reallocate them. Three tricks make it fast and right for India:
//! the audio context is trimmed to the utterance (the encoder's cost follows it), language
//! detection is restricted to the configured languages, and the decoder is prompted in the
//! detected language's own script so Hindi comes out in Devanagari rather than Urdu script.
//! Streaming passes (`window`) decode with the low-level calls: one encoder pass per window,
//! the language from that same encoding, the committed words forced as prefix.

mod window;

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use super::{script_filter, Asr, AsrError, Detected, LanguageHint, Transcription, WindowRequest};
use crate::audio::PIPELINE_RATE;
use crate::text::script::Script;

/// Encoder positions per second of audio (Whisper: 100 mel frames/s, stride 2).
const AUDIO_CTX_PER_SECOND: f32 = 50.0;
/// Spoken-language detection looks at this much of the utterance (6 s; shorter windows were
/// seen to misjudge Hindi clips).
const LID_WINDOW_SAMPLES: usize = 6 * PIPELINE_RATE as usize;
/// Whisper cannot transcribe less than 100 ms.
const MIN_SAMPLES: usize = PIPELINE_RATE as usize / 10;

/// Decoder settings (from `config::AsrConfig`).
#[derive(Debug, Clone)]
pub struct WhisperOptions {
    /// CUDA's index of the GPU to decode on (a `--features cuda` build); `None` = the CPU.
    pub gpu: Option<u32>,
    pub threads: usize,
    /// Extra audio context beyond the utterance, in ms (trimming too tightly costs accuracy).
    pub audio_ctx_padding_ms: u32,
    /// 0 or 1 = greedy; >1 = beam search of that width.
    pub beam_size: u32,
    pub temperature_fallback: bool,
    pub native_script_prompt: bool,
    /// Give no probability to tokens of other scripts than the decided language's.
    pub suppress_foreign_scripts: bool,
}

/// whisper.cpp with a pool of decoding states.
pub struct WhisperAsr {
    ctx: WhisperContext,
    states: Mutex<Vec<WhisperState>>,
    opts: WhisperOptions,
    gate: DecodeGate,
    /// Token ids of foreign scripts, per script, computed on first use.
    foreign: Mutex<HashMap<Script, Arc<Vec<i32>>>>,
}

/// Limits concurrent decodes so that decodes × threads never exceeds the cores: whisper.cpp's
/// OpenMP workers spin at barriers, and two 2-thread decodes on 2 cores run ~70× slower than
/// one after the other (measured: 72.8 s against 2 × 1.07 s for a 2.8 s clip).
struct DecodeGate {
    free: Mutex<usize>,
    freed: std::sync::Condvar,
}

/// How often a decode waiting for the gate checks its cancellation token.
const GATE_POLL: std::time::Duration = std::time::Duration::from_millis(20);

impl DecodeGate {
    fn new(threads: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            free: Mutex::new((cores / threads.max(1)).max(1)),
            freed: std::sync::Condvar::new(),
        }
    }

    fn is_full(&self) -> bool {
        *self.free.lock().unwrap_or_else(|p| p.into_inner()) == 0
    }

    /// Waits for a slot (giving up if `cancel` fires); the slot is released when the guard drops.
    fn enter(&self, cancel: &CancellationToken) -> Result<GateGuard<'_>, AsrError> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            if cancel.is_cancelled() {
                return Err(AsrError::Cancelled);
            }
            free = self
                .freed
                .wait_timeout(free, GATE_POLL)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *free -= 1;
        Ok(GateGuard { gate: self })
    }
}

struct GateGuard<'a> {
    gate: &'a DecodeGate,
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        *self.gate.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.gate.freed.notify_one();
    }
}

impl WhisperAsr {
    pub fn load(path: &Path, opts: WhisperOptions) -> Result<Self, AsrError> {
        if !path.is_file() {
            return Err(AsrError::Missing(path.to_path_buf()));
        }
        whisper_rs::install_logging_hooks();
        let params = WhisperContextParameters {
            use_gpu: opts.gpu.is_some(),
            gpu_device: opts.gpu.map_or(0, |g| i32::try_from(g).unwrap_or(0)),
            ..WhisperContextParameters::default()
        };
        let ctx = WhisperContext::new_with_params(path, params).map_err(|e| AsrError::Load {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let asr = Self {
            ctx,
            states: Mutex::new(Vec::new()),
            gate: DecodeGate::new(opts.threads),
            opts,
            foreign: Mutex::new(HashMap::new()),
        };
        // Allocate one state up front so the first utterance does not pay for it.
        let first = asr.take_state()?;
        asr.give_back(first);
        Ok(asr)
    }

    fn take_state(&self) -> Result<WhisperState, AsrError> {
        let pooled = self.states.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(s) => Ok(s),
            None => self
                .ctx
                .create_state()
                .map_err(|e| AsrError::Failed(format!("cannot allocate a decoder state: {e}"))),
        }
    }

    fn give_back(&self, state: WhisperState) {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(state);
    }

    /// The tokens to suppress while decoding `language` (none for Latin-script languages).
    fn foreign_tokens(&self, language: &str) -> Option<Arc<Vec<i32>>> {
        let script = Script::of_language(language).filter(|s| *s != Script::Latin)?;
        let mut cache = self.foreign.lock().unwrap_or_else(|p| p.into_inner());
        let ids = cache.entry(script).or_insert_with(|| {
            let vocab = (0..self.ctx.n_vocab())
                .filter_map(|id| self.ctx.token_to_bytes(id).ok().map(|b| (id, b)));
            Arc::new(script_filter::foreign_tokens(vocab, script))
        });
        Some(Arc::clone(ids))
    }

    fn audio_ctx_for(&self, samples: usize) -> i32 {
        let secs =
            samples as f32 / PIPELINE_RATE as f32 + self.opts.audio_ctx_padding_ms as f32 / 1000.0;
        let max = self.ctx.n_audio_ctx();
        ((secs * AUDIO_CTX_PER_SECOND).ceil() as i32).clamp(64, max)
    }

    fn base_params(&self, audio_ctx: i32) -> FullParams<'static, 'static> {
        let strategy = if self.opts.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: self.opts.beam_size as i32,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut p = FullParams::new(strategy);
        p.set_n_threads(self.opts.threads.max(1) as i32);
        p.set_audio_ctx(audio_ctx);
        p.set_no_timestamps(true);
        p.set_single_segment(true);
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_special(false);
        p.set_print_timestamps(false);
        p.set_suppress_blank(true);
        p.set_no_context(true);
        if !self.opts.temperature_fallback {
            p.set_temperature_inc(0.0);
        }
        p
    }

    /// Detects the language among `allowed` on the state's current mel.
    fn detect(&self, state: &mut WhisperState, allowed: &[String]) -> Result<Detected, AsrError> {
        let (_, probs) = state
            .lang_detect(0, self.opts.threads.max(1))
            .map_err(|e| AsrError::Failed(format!("language detection: {e}")))?;
        let scored: Vec<(String, f32)> = allowed
            .iter()
            .filter_map(|code| {
                let id = whisper_rs::get_lang_id(code)?;
                Some((code.clone(), probs.get(id as usize).copied().unwrap_or(0.0)))
            })
            .collect();
        ranked(allowed, scored)
    }

    /// Spoken-language detection on the utterance's first seconds.
    fn detect_on(
        &self,
        state: &mut WhisperState,
        pcm: &[f32],
        allowed: &[String],
        cancel: &CancellationToken,
    ) -> Result<Detected, AsrError> {
        let started = Instant::now();
        // whisper.cpp sets a state's audio context only inside `full`, after its own
        // language detection. A `full` call limited to 100 ms computes the mel, stores
        // the trimmed context in the state and returns before decoding anything, so the
        // restricted detection below runs the encoder on the utterance only.
        // Detection only needs the first seconds: encoding just those costs a fraction
        // of the full utterance's encoder pass.
        let lid_ctx = self.audio_ctx_for(pcm.len().min(LID_WINDOW_SAMPLES));
        let mut prime = self.base_params(lid_ctx);
        prime.set_language(Some("en"));
        prime.set_duration_ms(100);
        state
            .full(prime, pcm)
            .map_err(|e| AsrError::Failed(format!("mel spectrogram: {e}")))?;
        if cancel.is_cancelled() {
            return Err(AsrError::Cancelled);
        }
        let primed = started.elapsed();
        let d = self.detect(state, allowed)?;
        tracing::debug!(
            prime_ms = primed.as_millis() as u64,
            detect_ms = (started.elapsed() - primed).as_millis() as u64,
            "language detected"
        );
        Ok(d)
    }

    fn run(
        &self,
        state: &mut WhisperState,
        pcm: &[f32],
        hint: &LanguageHint,
        cancel: &CancellationToken,
    ) -> Result<Transcription, AsrError> {
        let started = Instant::now();
        let audio_ctx = self.audio_ctx_for(pcm.len());

        let (language, language_prob, candidates) = match hint {
            LanguageHint::Fixed(code) => {
                if whisper_rs::get_lang_id(code).is_none() {
                    return Err(AsrError::UnsupportedLanguage(code.clone()));
                }
                (code.clone(), 1.0, vec![(code.clone(), 1.0)])
            }
            LanguageHint::DetectAmong(allowed) | LanguageHint::Prefer { allowed, .. } => {
                self.detect_on(state, pcm, allowed, cancel)?
            }
        };
        let detected = (language, language_prob, candidates);
        let (language, language_prob, held) = hint.choose_among(&detected);
        let candidates = detected.2;

        let mut params = self.base_params(audio_ctx);
        params.set_language(Some(whisper_lang_static(&language)?));
        // A trimmed audio context can send the greedy decoder into a repetition loop; no one
        // speaks more than this many tokens per second, so cap the output accordingly.
        params.set_max_tokens(max_tokens_for(pcm.len()));
        let prompt = if self.opts.native_script_prompt {
            native_script_prompt(&language)
        } else {
            None
        };
        if let Some(prompt) = prompt {
            params.set_initial_prompt(prompt);
        }
        // SAFETY: the callback only reads the token through `user_data`, which points at
        // `cancel`; `cancel` outlives `state.full`, the only call that can invoke it.
        unsafe {
            params.set_abort_callback(Some(abort_if_cancelled));
            params.set_abort_callback_user_data(cancel as *const CancellationToken as *mut c_void);
        }
        let foreign = if self.opts.suppress_foreign_scripts {
            self.foreign_tokens(&language)
        } else {
            None
        };
        if let Some(ids) = &foreign {
            // SAFETY: `user_data` points at the id list, which `foreign` keeps alive until
            // after `state.full` returns; the callback only reads it and writes logits within
            // the vocabulary (every id came from `0..n_vocab`).
            unsafe {
                params.set_filter_logits_callback(Some(suppress_tokens));
                params.set_filter_logits_callback_user_data(Arc::as_ptr(ids) as *mut c_void);
            }
        }
        let result = state.full(params, pcm);
        if cancel.is_cancelled() {
            return Err(AsrError::Cancelled);
        }
        result.map_err(|e| AsrError::Failed(e.to_string()))?;

        let mut text = String::new();
        for segment in state.as_iter() {
            let piece = segment
                .to_str_lossy()
                .map_err(|e| AsrError::Failed(e.to_string()))?;
            text.push_str(&piece);
        }
        Ok(Transcription {
            text: clean_transcript(&text),
            language,
            language_prob,
            candidates,
            held,
            audio_s: pcm.len() as f32 / PIPELINE_RATE as f32,
            elapsed_s: started.elapsed().as_secs_f32(),
        })
    }
}

/// Detection among `allowed` from each language's weight (a probability, or any non-negative
/// score): normalised to sum to 1, best first, the top three kept.
fn ranked(allowed: &[String], mut scored: Vec<(String, f32)>) -> Result<Detected, AsrError> {
    let total: f32 = scored.iter().map(|(_, p)| p).sum();
    if total > 0.0 {
        scored.iter_mut().for_each(|(_, p)| *p /= total);
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (best, prob) = scored
        .first()
        .cloned()
        .ok_or_else(|| AsrError::UnsupportedLanguage(allowed.join(",")))?;
    scored.truncate(3);
    Ok((best, prob, scored))
}

/// whisper.cpp's logits filter: the ids in `user_data` (a `Vec<i32>`) get no probability.
unsafe extern "C" fn suppress_tokens(
    _ctx: *mut whisper_rs::WhisperSysContext,
    _state: *mut whisper_rs::WhisperSysState,
    _tokens: *const whisper_rs::WhisperTokenData,
    _n_tokens: std::ffi::c_int,
    logits: *mut f32,
    user_data: *mut c_void,
) {
    if logits.is_null() || user_data.is_null() {
        return;
    }
    // SAFETY: set up in `run`: `user_data` is a live `Vec<i32>` of ids below n_vocab, and
    // `logits` holds n_vocab floats.
    let ids = unsafe { &*(user_data as *const Vec<i32>) };
    for &id in ids {
        unsafe { *logits.add(id as usize) = f32::NEG_INFINITY };
    }
}

/// Tidies decoder output: drops replacement characters (a multi-byte character cut by the token
/// cap) and Whisper's notes on sounds that are not speech ("[BLANK_AUDIO]", "(music)",
/// "*coughs*"), and collapses a word repeated more than twice in a row (a decoder loop) to two.
/// Noise alone so comes out empty: no speech, not a transcript.
pub fn clean_transcript(text: &str) -> String {
    let text = without_sound_notes(&text.replace('\u{FFFD}', ""));
    let mut out: Vec<&str> = Vec::new();
    for w in text.split_whitespace() {
        let n = out.len();
        if n >= 2 && out[n - 1] == w && out[n - 2] == w {
            continue;
        }
        out.push(w);
    }
    out.join(" ")
}

/// `text` without bracketed notes: any `[…]` span (Whisper writes no speech in square
/// brackets), and `(…)` or `*…*` spans of plain ASCII words ("(upbeat music)", "*cough*").
fn without_sound_notes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['[', '(', '*']) {
        let open = rest.as_bytes()[i] as char;
        let close = match open {
            '[' => ']',
            '(' => ')',
            _ => '*',
        };
        let body_and_rest = &rest[i + 1..];
        let note = body_and_rest.find(close).filter(|&j| {
            let body = &body_and_rest[..j];
            open == '['
                || (!body.trim().is_empty()
                    && body
                        .chars()
                        .all(|c| c.is_ascii_alphabetic() || c == ' ' || c == '-'))
        });
        match note {
            Some(j) => {
                out.push_str(&rest[..i]);
                rest = &body_and_rest[j + 1..];
            }
            None => {
                out.push_str(&rest[..=i]);
                rest = body_and_rest;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Upper bound on the tokens of an utterance: Indic scripts cost many byte-level BPE tokens
/// per word, so the allowance is generous (15 tokens/s plus 16), never above Whisper's 224.
fn max_tokens_for(samples: usize) -> i32 {
    let secs = samples as f32 / PIPELINE_RATE as f32;
    ((secs * 15.0) as i32 + 16).min(224)
}

unsafe extern "C" fn abort_if_cancelled(user_data: *mut c_void) -> bool {
    // SAFETY: set together with this callback to a `CancellationToken` that outlives the call.
    let token = unsafe { &*(user_data as *const CancellationToken) };
    token.is_cancelled()
}

/// whisper.cpp keeps the language pointer during `full`; its own table gives a `'static` one.
fn whisper_lang_static(code: &str) -> Result<&'static str, AsrError> {
    whisper_rs::get_lang_id(code)
        .and_then(whisper_rs::get_lang_str)
        .ok_or_else(|| AsrError::UnsupportedLanguage(code.to_string()))
}

/// A short phrase in the language's own script. Whisper continues in the script of its prompt,
/// which keeps Hindi in Devanagari (it otherwise often writes Urdu script) and so on.
pub fn native_script_prompt(lang: &str) -> Option<&'static str> {
    Some(match lang {
        "hi" => "नमस्ते, आप कैसे हैं? मैं ठीक हूँ।",
        "mr" => "नमस्कार, तुम्ही कसे आहात? मी ठीक आहे.",
        "ne" => "नमस्ते, तपाईंलाई कस्तो छ?",
        "bn" => "নমস্কার, আপনি কেমন আছেন? আমি ভালো আছি।",
        "as" => "নমস্কাৰ, আপুনি কেনে আছে?",
        "ta" => "வணக்கம், நீங்கள் எப்படி இருக்கிறீர்கள்?",
        "te" => "నమస్కారం, మీరు ఎలా ఉన్నారు? నేను బాగున్నాను.",
        "kn" => "ನಮಸ್ಕಾರ, ನೀವು ಹೇಗಿದ್ದೀರಿ?",
        "ml" => "നമസ്കാരം, സുഖമാണോ?",
        "gu" => "નમસ્તે, તમે કેમ છો?",
        "pa" => "ਸਤ ਸ੍ਰੀ ਅਕਾਲ, ਤੁਸੀਂ ਕਿਵੇਂ ਹੋ?",
        "ur" => "السلام علیکم، آپ کیسے ہیں؟",
        _ => return None,
    })
}

impl WhisperAsr {
    /// Runs `f` on a pooled decoding state, once a decode slot is free (or `cancel` fires).
    ///
    /// `f` runs on a thread of its own, never on the caller's: ggml's AMX kernels (Q8_0
    /// weights on CPUs with AMX) configure a thread's tile registers once and then assume
    /// they stay so, but ONNX Runtime's int8 kernels (Kokoro, on the same blocking-pool
    /// threads) load their own tile configuration. Whisper then decoded garbage ("-", "16")
    /// after the first replies of a session. A new thread per pass costs tens of microseconds.
    fn with_state<T: Send>(
        &self,
        pcm_16k: &[f32],
        cancel: &CancellationToken,
        f: impl FnOnce(&mut WhisperState) -> Result<T, AsrError> + Send,
    ) -> Result<T, AsrError> {
        if pcm_16k.len() < MIN_SAMPLES {
            return Err(AsrError::TooShort(
                pcm_16k.len() as f32 / PIPELINE_RATE as f32,
            ));
        }
        let _slot = self.gate.enter(cancel)?;
        let mut state = self.take_state()?;
        let joined = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("whisper".into())
                .spawn_scoped(scope, || f(&mut state))
                .map(|t| t.join())
        });
        match joined {
            Ok(Ok(result)) => {
                self.give_back(state);
                result
            }
            Ok(Err(_)) => Err(AsrError::Failed(
                "the decoding thread panicked (its state is dropped)".into(),
            )),
            Err(e) => {
                self.give_back(state);
                Err(AsrError::Failed(format!(
                    "cannot start a decoding thread: {e}"
                )))
            }
        }
    }
}

impl Asr for WhisperAsr {
    fn transcribe(
        &self,
        pcm_16k: &[f32],
        hint: &LanguageHint,
        cancel: &CancellationToken,
    ) -> Result<Transcription, AsrError> {
        self.with_state(pcm_16k, cancel, |state| {
            self.run(state, pcm_16k, hint, cancel)
        })
    }

    fn detect_language(
        &self,
        pcm_16k: &[f32],
        allowed: &[String],
        cancel: &CancellationToken,
    ) -> Result<Detected, AsrError> {
        self.with_state(pcm_16k, cancel, |state| {
            self.detect_on(state, pcm_16k, allowed, cancel)
        })
    }

    fn is_busy(&self) -> bool {
        self.gate.is_full()
    }

    fn streams(&self) -> bool {
        true
    }

    fn transcribe_window(
        &self,
        req: &WindowRequest<'_>,
        cancel: &CancellationToken,
    ) -> Result<Transcription, AsrError> {
        self.with_state(req.pcm, cancel, |state| {
            self.window_pass(state, req, cancel)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_and_broken_characters_are_cleaned() {
        assert_eq!(
            clean_transcript(" మీరు ను ను ను ను ను న\u{FFFD}"),
            "మీరు ను ను న"
        );
        assert_eq!(clean_transcript("ask not, ask what"), "ask not, ask what");
        assert_eq!(clean_transcript(" [BLANK_AUDIO]"), "");
        assert_eq!(clean_transcript("(upbeat music) *coughs*"), "");
        assert_eq!(
            clean_transcript("[Music] So, my fellow Americans (applause)"),
            "So, my fellow Americans"
        );
        // Brackets around speech and unmatched ones stay.
        assert_eq!(clean_transcript("(नमस्ते) 3 * 4"), "(नमस्ते) 3 * 4");
        assert_eq!(clean_transcript("a [b"), "a [b");
        assert_eq!(max_tokens_for(16_000 * 30), 224);
        assert_eq!(max_tokens_for(16_000), 31);
    }
}
