//! Kokoro-82M v1.0 (int8 ONNX, 24 kHz): the neural voice for Hindi and English.
//!
//! Text goes through espeak-ng (IPA with tied multi-letter phonemes), then through the mapping
//! the voices were trained with (misaki's espeak rules: `d^ʒ` → `ʤ`, `a^ɪ` → `I` …), then each
//! IPA character becomes an id from `vocab.json`. The model takes `tokens` int64 `[1, T+2]` (id 0
//! at both ends, T ≤ 510 per chunk; longer input is split at word boundaries), `style` f32
//! `[1, 256]` = row T of the voice pack `[510, 1, 256]`, and `speed` f32 `[1]`. One
//! [`KokoroModel`] (session + vocab) is shared by every [`KokoroVoice`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::session::Session;
use ort::value::{Tensor, ValueType};

use super::espeak::phonemize_tied;
use super::{effective_speed, sanitize_audio, TtsEngine, TtsError};
use crate::backend::device::Device;
use crate::backend::onnx::OnnxRuntime;

/// Kokoro's output sample rate.
pub const KOKORO_SAMPLE_RATE: u32 = 24_000;
/// Most phoneme tokens (without the two pads) per model call.
pub const MAX_PHONEME_TOKENS: usize = 510;
/// Width of one style vector in a voice pack.
pub const STYLE_DIM: usize = 256;

/// Names of the model's inputs and output, checked at load.
#[derive(Debug)]
struct Signature {
    tokens: String,
    style: String,
    speed: String,
    audio: String,
}

/// The Kokoro ONNX session and its phoneme vocabulary, shared by all Kokoro voices.
pub struct KokoroModel {
    /// `Session::run` needs `&mut`; one clause at a time per model.
    session: Mutex<Session>,
    signature: Signature,
    vocab: HashMap<char, i64>,
    path: PathBuf,
    device: Device,
}

impl std::fmt::Debug for KokoroModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KokoroModel")
            .field("path", &self.path)
            .field("signature", &self.signature)
            .field("vocab_len", &self.vocab.len())
            .finish()
    }
}

/// Opens an ONNX model file on the runtime's planned device with `threads` intra-op threads
/// (no spinning), naming the file on failure. Returns where it runs.
pub(crate) fn load_session(
    runtime: &OnnxRuntime,
    path: &Path,
    threads: usize,
) -> Result<(Session, Device), TtsError> {
    if !path.is_file() {
        return Err(TtsError::model_load(path, "file not found"));
    }
    runtime
        .session(path, |b| {
            b.with_intra_threads(threads)?
                .with_inter_threads(1)?
                // Idle ORT threads spin by default; on a small box shared with ASR and the LLM
                // worker that burns the cores the other stages need.
                .with_intra_op_spinning(false)
                .map_err(ort::Error::from)
        })
        .map_err(|e| TtsError::model_load(path, e))
}

/// The name of the session input among `candidates` (first match), or a load error.
pub(crate) fn input_name(
    session: &Session,
    path: &Path,
    candidates: &[&str],
) -> Result<String, TtsError> {
    session
        .inputs()
        .iter()
        .map(|i| i.name())
        .find(|n| candidates.contains(n))
        .map(str::to_string)
        .ok_or_else(|| {
            let have: Vec<String> = session
                .inputs()
                .iter()
                .map(|i| format!("{} {}", i.name(), i.dtype()))
                .collect();
            TtsError::model_load(
                path,
                format!(
                    "model has no input named {}; inputs: {}",
                    candidates.join(" or "),
                    have.join(", ")
                ),
            )
        })
}

/// The first output's name, after checking that it is an f32 tensor.
pub(crate) fn f32_output(session: &Session, path: &Path) -> Result<String, TtsError> {
    let out = session
        .outputs()
        .first()
        .ok_or_else(|| TtsError::model_load(path, "model has no outputs"))?;
    match out.dtype() {
        ValueType::Tensor {
            ty: ort::value::TensorElementType::Float32,
            ..
        } => Ok(out.name().to_string()),
        other => Err(TtsError::model_load(
            path,
            format!("output {} is {other}, expected f32 audio", out.name()),
        )),
    }
}

impl KokoroModel {
    /// Where the model runs.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Loads the ONNX model and `vocab.json`.
    pub fn load(
        runtime: &OnnxRuntime,
        model: &Path,
        vocab: &Path,
        threads: usize,
    ) -> Result<Self, TtsError> {
        let vocab = load_vocab(vocab)?;
        let (session, device) = load_session(runtime, model, threads)?;
        let signature = Signature {
            tokens: input_name(&session, model, &["tokens", "input_ids"])?,
            style: input_name(&session, model, &["style", "ref_s"])?,
            speed: input_name(&session, model, &["speed"])?,
            audio: f32_output(&session, model)?,
        };
        tracing::info!(path = %model.display(), threads, %device, "Kokoro model loaded");
        Ok(KokoroModel {
            session: Mutex::new(session),
            signature,
            vocab,
            path: model.to_path_buf(),
            device,
        })
    }

    /// Runs one chunk (≤ [`MAX_PHONEME_TOKENS`] ids, no pads) with `style` (256 floats).
    fn infer(
        &self,
        engine: &str,
        ids: &[i64],
        style: &[f32],
        speed: f32,
    ) -> Result<Vec<f32>, TtsError> {
        let err = |e: ort::Error| TtsError::inference(engine, e);
        let mut padded = Vec::with_capacity(ids.len() + 2);
        padded.push(0);
        padded.extend_from_slice(ids);
        padded.push(0);
        let tokens = Tensor::from_array(([1usize, padded.len()], padded)).map_err(err)?;
        let style = Tensor::from_array(([1usize, STYLE_DIM], style.to_vec())).map_err(err)?;
        let speed = Tensor::from_array(([1usize], vec![speed])).map_err(err)?;
        let sig = &self.signature;
        // A poisoned lock only means another clause panicked mid-call; the session itself holds
        // no per-call state, so it is still usable.
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(ort::inputs![
                sig.tokens.as_str() => tokens,
                sig.style.as_str() => style,
                sig.speed.as_str() => speed,
            ])
            .map_err(err)?;
        let audio = outputs
            .get(&sig.audio)
            .ok_or_else(|| TtsError::inference(engine, "model returned no audio output"))?;
        let (_, samples) = audio.try_extract_tensor::<f32>().map_err(err)?;
        Ok(samples.to_vec())
    }
}

fn load_vocab(path: &Path) -> Result<HashMap<char, i64>, TtsError> {
    #[derive(serde::Deserialize)]
    struct VocabFile {
        vocab: HashMap<String, i64>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| TtsError::model_load(path, e))?;
    let file: VocabFile = serde_json::from_str(&text).map_err(|e| TtsError::model_load(path, e))?;
    let mut vocab = HashMap::with_capacity(file.vocab.len());
    for (symbol, id) in file.vocab {
        let mut chars = symbol.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => {
                vocab.insert(c, id);
            }
            _ => tracing::warn!(symbol, "Kokoro vocab entry is not one character; ignored"),
        }
    }
    if vocab.is_empty() {
        return Err(TtsError::model_load(path, "vocab is empty"));
    }
    Ok(vocab)
}

/// The espeak-ng voice for a Kokoro voice name, from its first letter (Kokoro's language code).
pub fn default_espeak_voice(voice: &str) -> Result<&'static str, TtsError> {
    Ok(match voice.chars().next() {
        Some('a') => "en-us",
        Some('b') => "en-gb",
        Some('h') => "hi",
        Some('e') => "es",
        Some('f') => "fr-fr",
        Some('i') => "it",
        Some('p') => "pt-br",
        Some('j') => "ja",
        Some('z') => "cmn",
        _ => {
            return Err(TtsError::Config(format!(
                "cannot tell the language of Kokoro voice `{voice}`; set espeak_voice"
            )))
        }
    })
}

/// How espeak's IPA is turned into the phoneme set a voice was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PhonemeSet {
    AmericanEnglish,
    BritishEnglish,
    /// misaki's `EspeakG2P` rules, used for Hindi and the other non-English languages.
    Other,
}

impl PhonemeSet {
    fn for_espeak_voice(voice: &str) -> Self {
        let v = voice.to_ascii_lowercase();
        if v == "en" || v.starts_with("en-gb") || v.starts_with("en-uk") {
            PhonemeSet::BritishEnglish
        } else if v.starts_with("en") {
            PhonemeSet::AmericanEnglish
        } else {
            PhonemeSet::Other
        }
    }
}

/// espeak-to-Kokoro replacements for English, longest first.
const ENGLISH_MAP: &[(&str, &str)] = &[
    ("ʔˌn\u{329}", "tn"),
    ("ʔn\u{329}", "tn"),
    ("a^ɪ", "I"),
    ("a^ʊ", "W"),
    ("d^ʒ", "ʤ"),
    ("e^ɪ", "A"),
    ("t^ʃ", "ʧ"),
    ("ɔ^ɪ", "Y"),
    ("ə^l", "ᵊl"),
    ("ʔn", "tn"),
    ("ʲo", "jo"),
    ("ʲə", "jə"),
    ("ʔ", "t"),
    ("e", "A"),
    ("ʲ", ""),
    ("ɚ", "əɹ"),
    ("r", "ɹ"),
    ("x", "k"),
    ("ç", "k"),
    ("ɐ", "ə"),
    ("ɬ", "l"),
    ("\u{303}", ""),
];

/// espeak-to-Kokoro replacements for the other languages (ties turned into Kokoro's letters).
const OTHER_MAP: &[(&str, &str)] = &[
    ("a^ɪ", "I"),
    ("a^ʊ", "W"),
    ("d^z", "ʣ"),
    ("d^ʒ", "ʤ"),
    ("e^ɪ", "A"),
    ("o^ʊ", "O"),
    ("ə^ʊ", "Q"),
    ("s^s", "S"),
    ("t^s", "ʦ"),
    ("t^ʃ", "ʧ"),
    ("ɔ^ɪ", "Y"),
];

/// Tied espeak IPA → Kokoro phonemes.
fn to_kokoro_phonemes(tied: &str, set: PhonemeSet) -> String {
    let mut ps = tied.to_string();
    match set {
        PhonemeSet::Other => {
            for (from, to) in OTHER_MAP {
                ps = ps.replace(from, to);
            }
            ps.retain(|c| c != '^' && c != '-');
        }
        PhonemeSet::AmericanEnglish | PhonemeSet::BritishEnglish => {
            for (from, to) in ENGLISH_MAP {
                ps = ps.replace(from, to);
            }
            // A syllabic consonant (`n̩`) becomes schwa + consonant.
            let mut out = String::with_capacity(ps.len());
            let mut chars = ps.chars().peekable();
            while let Some(c) = chars.next() {
                if chars.peek() == Some(&'\u{329}') && !c.is_whitespace() {
                    chars.next();
                    out.push('ᵊ');
                    out.push(c);
                } else if c != '\u{329}' {
                    out.push(c);
                }
            }
            ps = out;
            if set == PhonemeSet::BritishEnglish {
                ps = ps
                    .replace("e^ə", "ɛː")
                    .replace("iə", "ɪə")
                    .replace("ə^ʊ", "Q");
            } else {
                ps = ps
                    .replace("o^ʊ", "O")
                    .replace("ɜːɹ", "ɜɹ")
                    .replace("ɜː", "ɜɹ")
                    .replace("ɪə", "iə")
                    .replace('ː', "");
            }
            ps = ps.replace('o', "ɔ");
            ps.retain(|c| c != '^');
        }
    }
    ps
}

/// `s` without leading and trailing space tokens.
fn trim(mut s: &[(char, i64)]) -> &[(char, i64)] {
    while let [(' ', _), rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., (' ', _)] = s {
        s = rest;
    }
    s
}

/// Kokoro phonemes → token chunks of at most [`MAX_PHONEME_TOKENS`] ids (characters missing from
/// the vocabulary dropped, no pads). Long input is cut at a space, preferably one after a
/// punctuation mark, else at a hard limit; no chunk is empty, none starts or ends with a space.
pub(crate) fn token_chunks(phonemes: &str, vocab: &HashMap<char, i64>) -> Vec<Vec<i64>> {
    let toks: Vec<(char, i64)> = phonemes
        .chars()
        .filter_map(|c| vocab.get(&c).map(|&id| (c, id)))
        .collect();
    let mut chunks = Vec::new();
    let mut rest = trim(&toks);
    while !rest.is_empty() {
        if rest.len() <= MAX_PHONEME_TOKENS {
            chunks.push(rest.iter().map(|&(_, id)| id).collect());
            break;
        }
        // A space at index i cuts as rest[..i] + rest[i..]; i ≤ MAX keeps the chunk in bounds.
        let window = &rest[..=MAX_PHONEME_TOKENS];
        let is_space = |i: usize| window[i].0 == ' ';
        let after_mark = (MAX_PHONEME_TOKENS / 2..=MAX_PHONEME_TOKENS)
            .rev()
            .find(|&i| {
                is_space(i)
                    && matches!(
                        window[i - 1].0,
                        '.' | '!' | '?' | ',' | ';' | ':' | '—' | '…'
                    )
            });
        let cut = after_mark
            .or_else(|| (1..=MAX_PHONEME_TOKENS).rev().find(|&i| is_space(i)))
            .unwrap_or(MAX_PHONEME_TOKENS);
        let chunk = trim(&rest[..cut]);
        if !chunk.is_empty() {
            chunks.push(chunk.iter().map(|&(_, id)| id).collect());
        }
        rest = trim(&rest[cut..]);
    }
    chunks
}

/// One Kokoro voice pack over the shared model.
pub struct KokoroVoice {
    model: Arc<KokoroModel>,
    name: String,
    /// Style rows, `STYLE_DIM` floats each.
    styles: Vec<f32>,
    espeak_voice: String,
    phoneme_set: PhonemeSet,
}

impl std::fmt::Debug for KokoroVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KokoroVoice")
            .field("name", &self.name)
            .field("espeak_voice", &self.espeak_voice)
            .field("rows", &(self.styles.len() / STYLE_DIM))
            .finish()
    }
}

/// Voice names (`*.bin` stems) in `dir`, sorted.
pub(crate) fn available_voices(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "bin").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    names
}

impl KokoroVoice {
    /// Loads `<voices_dir>/<voice>.bin` (raw little-endian f32 `[rows, 1, 256]`) and checks that
    /// espeak-ng has `espeak_voice`.
    pub fn load(
        model: Arc<KokoroModel>,
        voices_dir: &Path,
        voice: &str,
        espeak_voice: &str,
    ) -> Result<Self, TtsError> {
        let path = voices_dir.join(format!("{voice}.bin"));
        if !path.is_file() {
            let available = available_voices(voices_dir);
            return Err(TtsError::UnknownVoice {
                engine: "kokoro",
                voice: voice.to_string(),
                available: if available.is_empty() {
                    format!("none (no *.bin in {})", voices_dir.display())
                } else {
                    available.join(", ")
                },
            });
        }
        let bytes = std::fs::read(&path).map_err(|e| TtsError::model_load(&path, e))?;
        let row_bytes = STYLE_DIM * 4;
        if bytes.is_empty() || bytes.len() % row_bytes != 0 {
            return Err(TtsError::model_load(
                &path,
                format!(
                    "{} bytes is not a whole number of {STYLE_DIM}-float style rows",
                    bytes.len()
                ),
            ));
        }
        let styles: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if styles.iter().any(|v| !v.is_finite()) {
            return Err(TtsError::model_load(
                &path,
                "voice pack holds non-finite values",
            ));
        }
        super::espeak::check_voice(espeak_voice)?;
        Ok(KokoroVoice {
            model,
            name: format!("kokoro:{voice}"),
            styles,
            espeak_voice: espeak_voice.to_string(),
            phoneme_set: PhonemeSet::for_espeak_voice(espeak_voice),
        })
    }

    /// Style vector for a chunk of `tokens` phoneme tokens: row `tokens`, capped at the last row.
    fn style_for(&self, tokens: usize) -> &[f32] {
        let rows = self.styles.len() / STYLE_DIM;
        let row = tokens.min(rows.saturating_sub(1));
        &self.styles[row * STYLE_DIM..(row + 1) * STYLE_DIM]
    }

    /// The Kokoro phonemes for `text` (exposed for diagnostics and tests).
    pub fn phonemes(&self, text: &str) -> Result<String, TtsError> {
        Ok(to_kokoro_phonemes(
            &phonemize_tied(text, &self.espeak_voice)?,
            self.phoneme_set,
        ))
    }
}

impl TtsEngine for KokoroVoice {
    fn name(&self) -> &str {
        &self.name
    }

    fn sample_rate(&self) -> u32 {
        KOKORO_SAMPLE_RATE
    }

    fn synthesize(&self, text: &str, speed: f32) -> Result<Vec<f32>, TtsError> {
        if text.trim().is_empty() {
            return Err(TtsError::EmptyText);
        }
        let phonemes = self.phonemes(text)?;
        if !phonemes.chars().any(char::is_alphabetic) {
            // Only punctuation: nothing to say (the model would still emit a short noise).
            return Ok(Vec::new());
        }
        let speed = effective_speed(speed);
        let mut audio = Vec::new();
        for chunk in token_chunks(&phonemes, &self.model.vocab) {
            let style = self.style_for(chunk.len());
            audio.extend(self.model.infer(&self.name, &chunk, style, speed)?);
        }
        sanitize_audio(&mut audio);
        Ok(audio)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use proptest::prelude::*;

    fn vocab() -> HashMap<char, i64> {
        load_vocab(&kokoro_assets().kokoro_vocab).unwrap()
    }

    #[test]
    fn english_mapping_follows_misaki() {
        let ps = to_kokoro_phonemes(
            "həlˈo^ʊ d^ʒˈʌd^ʒ t^ʃˈɜːt^ʃ ma^ɪ",
            PhonemeSet::AmericanEnglish,
        );
        assert_eq!(ps, "həlˈO ʤˈʌʤ ʧˈɜɹʧ mI");
        let ps = to_kokoro_phonemes("bʌtn\u{329}", PhonemeSet::AmericanEnglish);
        assert_eq!(ps, "bʌtᵊn");
    }

    #[test]
    fn hindi_mapping_unties_and_keeps_the_rest() {
        let ps = to_kokoro_phonemes("nəmˈʌsteː, d^ʒˈiː ʈʰˈiːk hũ.", PhonemeSet::Other);
        assert_eq!(ps, "nəmˈʌsteː, ʤˈiː ʈʰˈiːk hũ.");
    }

    #[test]
    fn chunks_respect_the_limit_and_word_boundaries() {
        let v = vocab();
        let word = "nəmˈʌsteː";
        let text = vec![word; 200].join(" ");
        let chunks = token_chunks(&text, &v);
        assert!(chunks.len() > 1);
        let space = v[&' '];
        for c in &chunks {
            assert!(c.len() <= MAX_PHONEME_TOKENS && !c.is_empty());
            assert_ne!(c.first(), Some(&space));
            assert_ne!(c.last(), Some(&space));
            // Cut at word boundaries: every chunk is whole words.
            assert_eq!((c.len() + 1) % (word.chars().count() + 1), 0, "{}", c.len());
        }
        // A single endless "word" is cut hard.
        let chunks = token_chunks(&"a".repeat(1200), &v);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![510, 510, 180]
        );
        assert!(token_chunks("", &v).is_empty());
        assert!(token_chunks("  \u{1F600} ", &v).is_empty());
    }

    proptest! {
        #[test]
        fn token_builder_never_exceeds_510(text in "\\PC{0,1500}", ascii in "[a-z ,.ˈː]{0,2000}") {
            let v = vocab();
            for t in [&text, &ascii] {
                let chunks = token_chunks(t, &v);
                for c in &chunks {
                    prop_assert!(!c.is_empty() && c.len() <= MAX_PHONEME_TOKENS);
                }
                let kept: usize = t.chars().filter(|c| v.contains_key(c) && *c != ' ').count();
                let non_space: usize = chunks.iter().flatten().filter(|&&id| id != v[&' ']).count();
                prop_assert_eq!(kept, non_space, "no phoneme lost or invented");
            }
        }
    }

    #[test]
    fn style_row_is_token_count_capped() {
        let model = Arc::new(
            KokoroModel::load(
                ort_env(),
                &kokoro_assets().kokoro_model,
                &kokoro_assets().kokoro_vocab,
                1,
            )
            .unwrap(),
        );
        let voice =
            KokoroVoice::load(model, &kokoro_assets().kokoro_voices_dir, "hf_alpha", "hi").unwrap();
        assert_eq!(voice.styles.len(), 510 * STYLE_DIM);
        assert_eq!(
            voice.style_for(3).as_ptr(),
            voice.styles[3 * STYLE_DIM..].as_ptr()
        );
        assert_eq!(
            voice.style_for(510).as_ptr(),
            voice.styles[509 * STYLE_DIM..].as_ptr()
        );
    }

    fn speak(lang: &str, text: &str, wav: &str) -> Vec<f32> {
        let engine = shared_voices().for_language(lang).unwrap();
        let audio = engine.synthesize(text, 1.0).unwrap();
        assert_speech(&audio, KOKORO_SAMPLE_RATE, 0.5, engine.name());
        write_wav(wav, &audio, KOKORO_SAMPLE_RATE);
        audio
    }

    /// What Whisper (the fetched base model, as the daemon loads it) hears in `audio`, decoded
    /// in `lang`: a voice that made noise instead of words gives nothing to read.
    fn heard(audio: &[f32], lang: &str) -> String {
        use crate::backend::asr::{Asr, LanguageHint};
        let path = std::env::var_os("VAAK_TEST_WHISPER_GGML")
            .map(std::path::PathBuf::from)
            .expect("set VAAK_TEST_WHISPER_GGML (scripts/test.sh does)");
        let config = crate::config::Config::default();
        let asr = crate::backend::asr::whisper::WhisperAsr::load(
            &path,
            crate::backend::whisper_options(&config, &crate::backend::device::Plan::cpu()),
        )
        .unwrap();
        let pcm = crate::audio::resample::resample_all(audio, KOKORO_SAMPLE_RATE, 16_000).unwrap();
        let hint = LanguageHint::Fixed(lang.to_string());
        let cancel = tokio_util::sync::CancellationToken::new();
        asr.transcribe(&pcm, &hint, &cancel).unwrap().text
    }

    #[test]
    fn kokoro_speaks_hindi() {
        let audio = speak("hi", "नमस्ते, आज मौसम बहुत अच्छा है। आप कैसे हैं?", "kokoro_hi.wav");
        let text = heard(&audio, "hi");
        let devanagari = text
            .chars()
            .filter(|c| ('\u{0900}'..='\u{097F}').contains(c) && c.is_alphabetic())
            .count();
        // Whisper base is weak on Hindi, but Hindi speech comes back as Devanagari words (a
        // tone or a hum comes back empty or as a loop, which the recogniser cleans away).
        assert!(
            devanagari >= 8 && text.split_whitespace().count() >= 3,
            "Kokoro's Hindi was heard as {text:?}"
        );
    }

    #[test]
    fn kokoro_speaks_english() {
        let audio = speak(
            "en",
            "Hello! The weather is lovely today, isn't it?",
            "kokoro_en.wav",
        );
        let text = heard(&audio, "en").to_lowercase();
        assert!(
            text.contains("weather") && text.contains("today"),
            "Kokoro's English was heard as {text:?}"
        );
    }

    #[test]
    fn kokoro_handles_long_input_in_chunks() {
        let sentence = "यह एक लंबा वाक्य है जिसे कई टुकड़ों में बाँटना पड़ेगा, ";
        let text = sentence.repeat(12);
        let phonemes = super::super::espeak::phonemize(&text, "hi").unwrap();
        assert!(
            phonemes.chars().count() > MAX_PHONEME_TOKENS + 50,
            "needs two chunks"
        );
        let engine = shared_voices().for_language("hi").unwrap();
        let audio = engine.synthesize(&text, 2.0).unwrap();
        assert_speech(&audio, KOKORO_SAMPLE_RATE, 5.0, "long hindi");
    }

    #[test]
    fn kokoro_nothing_speakable_and_empty() {
        let engine = shared_voices().for_language("en").unwrap();
        assert!(matches!(
            engine.synthesize(" ", 1.0),
            Err(TtsError::EmptyText)
        ));
        assert!(engine.synthesize("…!", 1.0).unwrap().is_empty());
    }
}
