//! libespeak-ng, called in-process through a small hand-written FFI.
//!
//! espeak-ng serves twice: as the phonemizer (text → IPA) for the neural voices (Kokoro, Piper),
//! and as the speech engine for the Indian languages that have no neural voice. It is called as a
//! library, never a process per sentence. libespeak-ng keeps global state and is not thread-safe,
//! so every call goes through one process-wide mutex, the library is initialised exactly once,
//! and each synthesis call collects its samples in a buffer of its own (passed as `user_data`).

use crate::text::speech::digit_value;
use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, c_short, c_uint, c_void, CStr, CString};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::{effective_speed, TtsEngine, TtsError};

// ---- FFI (speak_lib.h, espeak-ng 1.51) ----

const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
const ESPEAK_INITIALIZE_DONT_EXIT: c_int = 0x8000;
const ESPEAK_CHARS_UTF8: c_int = 1;
const ESPEAK_PHONEMES_IPA: c_int = 0x02;
const ESPEAK_PHONEMES_TIE: c_int = 0x80;
const ESPEAK_RATE: c_int = 1;
const POS_CHARACTER: c_int = 1;
const EE_OK: c_int = 0;

/// `espeak_EVENT`; only `user_data` of the first event is read.
#[repr(C)]
struct EspeakEvent {
    kind: c_int,
    unique_identifier: c_uint,
    text_position: c_int,
    length: c_int,
    audio_position: c_int,
    sample: c_int,
    user_data: *mut c_void,
    id: EventId,
}

#[repr(C)]
union EventId {
    number: c_int,
    name: *const c_char,
    string: [c_char; 8],
}

/// `espeak_VOICE`, as `espeak_ListVoices` returns it.
#[repr(C)]
struct EspeakVoice {
    name: *const c_char,
    /// Pairs of (priority byte, NUL-terminated language), ended by a zero priority byte.
    languages: *const c_char,
    identifier: *const c_char,
    gender: u8,
    age: u8,
    variant: u8,
    xx1: u8,
    score: c_int,
    spare: *mut c_void,
}

type SynthCallback = unsafe extern "C" fn(*mut c_short, c_int, *mut EspeakEvent) -> c_int;

#[link(name = "espeak-ng")]
unsafe extern "C" {
    fn espeak_Initialize(
        output: c_int,
        buflength: c_int,
        path: *const c_char,
        options: c_int,
    ) -> c_int;
    fn espeak_SetSynthCallback(callback: Option<SynthCallback>);
    fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    fn espeak_SetParameter(parameter: c_int, value: c_int, relative: c_int) -> c_int;
    fn espeak_Synth(
        text: *const c_void,
        size: usize,
        position: c_uint,
        position_type: c_int,
        end_position: c_uint,
        flags: c_uint,
        unique_identifier: *mut c_uint,
        user_data: *mut c_void,
    ) -> c_int;
    fn espeak_ListVoices(voice_spec: *mut EspeakVoice) -> *const *const EspeakVoice;
    fn espeak_TextToPhonemes(
        textptr: *mut *const c_void,
        textmode: c_int,
        phonememode: c_int,
    ) -> *const c_char;
}

/// Receives audio blocks during `espeak_Synth` (synchronous mode: on the calling thread, while
/// the global lock is held). `user_data` is the `Vec<i16>` of the call in progress.
unsafe extern "C" fn synth_callback(
    wav: *mut c_short,
    numsamples: c_int,
    events: *mut EspeakEvent,
) -> c_int {
    if events.is_null() || wav.is_null() || numsamples <= 0 {
        return 0;
    }
    // SAFETY: espeak always passes an event list whose entries (including the terminator) carry
    // the `user_data` given to espeak_Synth, which is `&mut Vec<i16>` alive for the whole call.
    let sink = unsafe { (*events).user_data }.cast::<Vec<i16>>();
    if sink.is_null() {
        return 0;
    }
    // SAFETY: `wav` holds `numsamples` samples for the duration of this callback.
    let block = unsafe { std::slice::from_raw_parts(wav, numsamples as usize) };
    // SAFETY: see above; nothing else touches the buffer during the call.
    unsafe { (*sink).extend_from_slice(block) };
    0
}

// ---- the one global instance ----

struct Espeak {
    sample_rate: u32,
    /// Every name espeak-ng's voices answer to (language codes, voice names, file names),
    /// lowercase; `espeak_SetVoiceByName` silently falls back to a default for unknown names.
    known_voices: BTreeSet<String>,
    /// Voice currently selected inside libespeak-ng (selecting reloads dictionaries).
    voice: Option<String>,
}

static ESPEAK: OnceLock<Result<Mutex<Espeak>, String>> = OnceLock::new();

/// Locks libespeak-ng, initialising it on first use.
fn lock() -> Result<MutexGuard<'static, Espeak>, TtsError> {
    let cell = ESPEAK.get_or_init(|| {
        // SAFETY: called once (OnceLock), before any other espeak call (they all go through here).
        let rate = unsafe {
            espeak_Initialize(
                AUDIO_OUTPUT_SYNCHRONOUS,
                0,
                std::ptr::null(),
                ESPEAK_INITIALIZE_DONT_EXIT,
            )
        };
        if rate <= 0 {
            return Err(format!(
                "espeak_Initialize failed ({rate}); is espeak-ng-data installed (Debian espeak-ng)?"
            ));
        }
        // SAFETY: a plain function pointer with the signature speak_lib.h declares.
        unsafe { espeak_SetSynthCallback(Some(synth_callback)) };
        let known_voices = list_voices();
        if known_voices.is_empty() {
            return Err("espeak-ng lists no voices; is espeak-ng-data installed?".to_string());
        }
        Ok(Mutex::new(Espeak {
            sample_rate: rate as u32,
            known_voices,
            voice: None,
        }))
    });
    match cell {
        Ok(mutex) => Ok(mutex.lock().unwrap_or_else(|poisoned| {
            // A panic while locked leaves no Rust state half-updated except the voice cache,
            // which is reset so the next call selects its voice again.
            let mut guard = poisoned.into_inner();
            guard.voice = None;
            guard
        })),
        Err(e) => Err(TtsError::Phonemizer(e.clone())),
    }
}

/// Copies a C string espeak owns (NULL → empty).
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
unsafe fn c_str(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// All names the installed voices answer to, lowercase. Called once, during initialisation.
fn list_voices() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    // SAFETY: NULL asks for every voice; espeak returns a NULL-terminated array it owns, valid
    // until the next ListVoices call, read at once under initialisation (no other espeak call
    // can run: they all wait for the OnceLock).
    let mut list = unsafe { espeak_ListVoices(std::ptr::null_mut()) };
    if list.is_null() {
        return names;
    }
    // SAFETY (loop): every element up to the NULL terminator points to a valid espeak_VOICE
    // whose strings follow the layout documented in speak_lib.h.
    unsafe {
        while !(*list).is_null() {
            let v = &**list;
            names.insert(c_str(v.name).to_lowercase());
            let id = c_str(v.identifier).to_lowercase();
            if let Some(file) = id.rsplit('/').next() {
                names.insert(file.to_string());
            }
            names.insert(id);
            let mut p = v.languages;
            while !p.is_null() && *p != 0 {
                let lang = CStr::from_ptr(p.add(1));
                p = p.add(2 + lang.to_bytes().len());
                names.insert(lang.to_string_lossy().to_lowercase());
            }
            list = list.add(1);
        }
    }
    names.remove("");
    names
}

impl Espeak {
    fn select_voice(&mut self, voice: &str) -> Result<(), TtsError> {
        if self.voice.as_deref() == Some(voice) {
            return Ok(());
        }
        let unknown = || TtsError::UnknownVoice {
            engine: "espeak",
            voice: voice.to_string(),
            available: format!(
                "{} (see `espeak-ng --voices`; a `+variant` suffix is allowed)",
                self.known_voices
                    .iter()
                    .filter(|v| !v.contains('/'))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        };
        let base = voice.split('+').next().unwrap_or_default().to_lowercase();
        if !self.known_voices.contains(&base) {
            return Err(unknown());
        }
        let name = CString::new(voice).map_err(|_| unknown())?;
        // SAFETY: `name` is a valid NUL-terminated string; the global lock is held.
        let rc = unsafe { espeak_SetVoiceByName(name.as_ptr()) };
        if rc != EE_OK {
            self.voice = None;
            return Err(unknown());
        }
        self.voice = Some(voice.to_string());
        Ok(())
    }

    /// Raw espeak IPA for `text` (all its clauses, space-separated), optionally with `^` tying
    /// the letters of multi-letter phonemes (`t^ʃ`). Language-switch flags like `(en)` removed.
    fn text_to_phonemes(&mut self, text: &str, voice: &str, tie: bool) -> Result<String, TtsError> {
        self.select_voice(voice)?;
        let text = sanitize(text, voice);
        let c_text =
            CString::new(text.as_str()).map_err(|e| TtsError::Phonemizer(e.to_string()))?;
        let mode = if tie {
            ESPEAK_PHONEMES_IPA | ESPEAK_PHONEMES_TIE | (('^' as c_int) << 8)
        } else {
            ESPEAK_PHONEMES_IPA
        };
        let mut out = String::new();
        let mut ptr: *const c_void = c_text.as_ptr().cast();
        // espeak advances `ptr` by at least one clause per call; the bound only guards against
        // a library bug looping forever.
        for _ in 0..=text.len() + 1 {
            if ptr.is_null() {
                break;
            }
            // SAFETY: `ptr` points into `c_text` (alive and NUL-terminated) or was set by espeak;
            // the global lock is held.
            let phonemes = unsafe { espeak_TextToPhonemes(&mut ptr, ESPEAK_CHARS_UTF8, mode) };
            if !phonemes.is_null() {
                // SAFETY: espeak returns a NUL-terminated string in its own static buffer,
                // valid until the next call; it is copied at once.
                let clause = unsafe { CStr::from_ptr(phonemes) }.to_string_lossy();
                out.push_str(&clause);
                out.push(' ');
            }
        }
        Ok(clean_espeak_ipa(&out))
    }

    fn synth(&mut self, text: &str, voice: &str, speed: f32) -> Result<Vec<i16>, TtsError> {
        self.select_voice(voice)?;
        let rate = (175.0 * effective_speed(speed)).round() as c_int;
        // SAFETY: plain integer parameters; the global lock is held.
        unsafe { espeak_SetParameter(ESPEAK_RATE, rate.clamp(80, 450), 0) };
        let text = sanitize(text, voice);
        let c_text = CString::new(text).map_err(|e| TtsError::inference("espeak", e))?;
        let mut samples: Vec<i16> = Vec::new();
        // SAFETY: `c_text` is NUL-terminated and outlives the call; `samples` is the per-call
        // sink the callback appends to, alive and otherwise untouched until espeak_Synth returns
        // (synchronous mode); the global lock is held.
        let rc = unsafe {
            espeak_Synth(
                c_text.as_ptr().cast(),
                c_text.as_bytes_with_nul().len(),
                0,
                POS_CHARACTER,
                0,
                ESPEAK_CHARS_UTF8 as c_uint,
                std::ptr::null_mut(),
                (&mut samples as *mut Vec<i16>).cast(),
            )
        };
        if rc != EE_OK {
            return Err(TtsError::inference(
                "espeak",
                format!("espeak_Synth returned {rc}"),
            ));
        }
        Ok(samples)
    }
}

/// Strips language-switch flags (`(en)`, `(^h^i)`), stray newlines and repeated spaces.
fn clean_espeak_ipa(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut in_flag = false;
    for c in raw.chars() {
        match c {
            '(' => in_flag = true,
            ')' if in_flag => {
                in_flag = false;
            }
            _ if in_flag => {}
            c if c.is_whitespace() => {
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c => out.push(c),
        }
    }
    out.trim_end().to_string()
}

/// Checks that espeak-ng has `voice` (used at build time so a typo fails early).
pub fn check_voice(voice: &str) -> Result<(), TtsError> {
    lock()?.select_voice(voice)
}

/// espeak-ng's output sample rate (22,050 Hz for 1.51).
pub fn sample_rate() -> Result<u32, TtsError> {
    Ok(lock()?.sample_rate)
}

// ---- phonemizer ----

/// One piece of input text: words for espeak, or a punctuation mark to keep.
#[derive(Debug, PartialEq)]
enum Piece {
    Words(String),
    Mark {
        mark: String,
        space_before: bool,
        space_after: bool,
    },
}

/// The punctuation the phonemes keep (Kokoro's and Piper's vocabularies know these), with the
/// Indic/Arabic-script marks mapped to their Latin equivalents.
fn mark_for(c: char) -> Option<char> {
    Some(match c {
        ',' | '.' | '!' | '?' | ';' | ':' | '—' | '…' | '"' | '(' | ')' | '“' | '”' | '«' | '»'
        | '¡' | '¿' => c,
        '।' | '॥' => '.',
        '؟' => '?',
        '،' => ',',
        '؛' => ';',
        '–' => '—',
        _ => return None,
    })
}

/// Splits text at punctuation, as phonemizer's `preserve_punctuation` does, so the marks can be
/// re-inserted around the phonemes (espeak drops them). `.`, `,` and `:` between digits stay
/// in the words (`3.5`, `1,000`, `10:30`) for espeak to read.
fn split_punctuation(text: &str) -> Vec<Piece> {
    let chars: Vec<char> = text.chars().collect();
    let mut pieces = Vec::new();
    let mut words = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let numeric_sep = matches!(c, '.' | ',' | ':')
            && i > 0
            && chars[i - 1].is_numeric()
            && chars.get(i + 1).is_some_and(|n| n.is_numeric());
        match mark_for(c) {
            Some(_) if !numeric_sep => {
                let space_before =
                    words.ends_with(char::is_whitespace) || (i > 0 && chars[i - 1].is_whitespace());
                if !words.trim().is_empty() {
                    pieces.push(Piece::Words(std::mem::take(&mut words)));
                } else {
                    words.clear();
                }
                let mut mark = String::new();
                while let Some(m) = chars.get(i).and_then(|&c| mark_for(c)) {
                    mark.push(m);
                    i += 1;
                }
                let space_after = chars.get(i).is_some_and(|c| c.is_whitespace());
                pieces.push(Piece::Mark {
                    mark,
                    space_before,
                    space_after,
                });
                continue;
            }
            _ => words.push(c),
        }
        i += 1;
    }
    if !words.trim().is_empty() {
        pieces.push(Piece::Words(words));
    }
    pieces
}

/// Text → IPA with punctuation kept, as one string; `tie` joins multi-letter phonemes with `^`.
fn phonemize_pieces(text: &str, voice: &str, tie: bool) -> Result<String, TtsError> {
    let pieces = split_punctuation(text);
    let mut out = String::new();
    let mut espeak = lock()?;
    for piece in pieces {
        match piece {
            Piece::Words(words) => {
                let ipa = espeak.text_to_phonemes(&words, voice, tie)?;
                if ipa.is_empty() {
                    continue;
                }
                // Words always follow a mark (or start the text); the mark carried the space.
                out.push_str(&ipa);
            }
            Piece::Mark {
                mark,
                space_before,
                space_after,
            } => {
                if space_before && !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
                out.push_str(&mark);
                if space_after {
                    out.push(' ');
                }
            }
        }
    }
    Ok(out.trim().to_string())
}

/// Text → espeak-ng IPA (stress marks kept, punctuation re-inserted, language-switch flags
/// removed), as Piper and Kokoro expect. `espeak_voice` is an espeak-ng voice name (`hi`,
/// `en-us`, `te` …).
/// What reaches libespeak-ng. espeak-ng 1.51 (Debian 12) crashes the whole process on some
/// input — seen with fuzzing: `*<` or `=.५` in the Hindi voice, emoji, math symbols, stray
/// vowel signs, scripts mixed in one word. So only the voice's own script (letters, and marks
/// that follow a letter), Latin letters, digits (Indic digits as ASCII) and `. , ? ! ; : '`
/// pass; everything else becomes a space. 4,300 random strings over 12 voices ran clean.
pub fn sanitize(text: &str, voice: &str) -> String {
    use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
    let lang = voice.split(['-', '_']).next().unwrap_or_default();
    let block = crate::text::script::Script::of_language(lang).and_then(|s| s.block());
    let mut out = String::with_capacity(text.len());
    let mut after_letter = false;
    for c in text.chars() {
        let c = match c {
            '।' | '॥' | '۔' => '.',
            '؟' => '?',
            '،' => ',',
            '؛' => ';',
            other => other,
        };
        let group = c.general_category_group();
        if group == GeneralCategoryGroup::Number {
            if let Some(d) = digit_value(c) {
                out.push(char::from(b'0' + d));
                after_letter = false;
                continue;
            }
        }
        let cp = c as u32;
        let in_script = c.is_ascii_alphabetic()
            || (0xC0..=0x24F).contains(&cp)
            || block.is_some_and(|(lo, hi)| (lo..=hi).contains(&cp));
        match group {
            GeneralCategoryGroup::Letter if in_script => {
                out.push(c);
                after_letter = true;
            }
            GeneralCategoryGroup::Mark if in_script => {
                if after_letter {
                    out.push(c);
                }
            }
            _ if matches!(c, '.' | ',' | '?' | '!' | ';' | ':' | '\'') => {
                out.push(c);
                after_letter = false;
            }
            _ => {
                out.push(' ');
                after_letter = false;
            }
        }
    }
    out
}

pub fn phonemize(text: &str, espeak_voice: &str) -> Result<String, TtsError> {
    phonemize_pieces(text, espeak_voice, false)
}

/// Like [`phonemize`], with the letters of each multi-letter phoneme tied by `^` (`d^ʒ`,
/// `a^ɪ`), which Kokoro's phoneme mapping needs.
pub fn phonemize_tied(text: &str, espeak_voice: &str) -> Result<String, TtsError> {
    phonemize_pieces(text, espeak_voice, true)
}

// ---- the engine ----

/// espeak-ng's formant synthesiser as a [`TtsEngine`] (22,050 Hz): robotic, but present for
/// every Indian language and very fast.
#[derive(Debug)]
pub struct EspeakEngine {
    voice: String,
    name: String,
    sample_rate: u32,
}

impl EspeakEngine {
    /// An engine for espeak-ng voice `voice`; fails if espeak-ng lacks it.
    pub fn new(voice: &str) -> Result<Self, TtsError> {
        check_voice(voice)?;
        Ok(EspeakEngine {
            voice: voice.to_string(),
            name: format!("espeak:{voice}"),
            sample_rate: sample_rate()?,
        })
    }
}

impl TtsEngine for EspeakEngine {
    fn name(&self) -> &str {
        &self.name
    }

    fn light(&self) -> bool {
        true
    }

    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn synthesize(&self, text: &str, speed: f32) -> Result<Vec<f32>, TtsError> {
        if text.trim().is_empty() {
            return Err(TtsError::EmptyText);
        }
        let samples = lock()?.synth(text, &self.voice, speed)?;
        Ok(samples
            .into_iter()
            .map(|s| f32::from(s) / 32768.0)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn hindi_ipa_has_expected_phonemes() {
        let ipa = phonemize("नमस्ते, आप कैसे हैं?", "hi").unwrap();
        assert!(ipa.starts_with("nəm"), "{ipa}");
        assert!(
            ipa.contains(", ") && ipa.ends_with('?'),
            "punctuation kept: {ipa}"
        );
        assert!(ipa.contains('ˈ'), "stress marks kept: {ipa}");
        assert!(ipa.contains('ː'), "long vowels: {ipa}");
        let ipa = phonemize("मैं ठीक हूँ। धन्यवाद", "hi").unwrap();
        assert!(ipa.contains("ʈʰ"), "aspirated retroflex: {ipa}");
        assert!(ipa.contains('\u{303}'), "nasal vowel: {ipa}");
        assert!(ipa.contains(". "), "danda becomes a full stop: {ipa}");
    }

    #[test]
    fn english_ipa_has_expected_phonemes() {
        let ipa = phonemize("Hello there, how are you today?", "en-us").unwrap();
        assert!(ipa.starts_with("həlˈoʊ"), "{ipa}");
        assert!(ipa.contains("ðˈɛɹ, "), "{ipa}");
        assert!(ipa.ends_with("tədˈeɪ?"), "{ipa}");
        let tied = phonemize_tied("Judge the church.", "en-us").unwrap();
        assert!(
            tied.contains("d^ʒ") && tied.contains("t^ʃ") && tied.ends_with('.'),
            "{tied}"
        );
    }

    #[test]
    fn language_switch_flags_are_removed() {
        let ipa = phonemize("धन्यवाद computer", "hi").unwrap();
        assert!(!ipa.contains('(') && !ipa.contains(')'), "{ipa}");
        assert!(ipa.contains("kəmpjˈuː"), "{ipa}");
    }

    #[test]
    fn numbers_keep_their_separators() {
        let ipa = phonemize("It costs 3.5 rupees.", "en-us").unwrap();
        assert!(ipa.contains("pɔɪnt"), "3.5 read as a decimal: {ipa}");
    }

    #[test]
    fn punctuation_splitting() {
        let p = split_punctuation("He said \"hi\", then left…");
        assert_eq!(
            p,
            vec![
                Piece::Words("He said ".into()),
                Piece::Mark {
                    mark: "\"".into(),
                    space_before: true,
                    space_after: false
                },
                Piece::Words("hi".into()),
                Piece::Mark {
                    mark: "\",".into(),
                    space_before: false,
                    space_after: true
                },
                Piece::Words(" then left".into()),
                Piece::Mark {
                    mark: "…".into(),
                    space_before: false,
                    space_after: false
                },
            ]
        );
        assert!(split_punctuation("").is_empty());
        assert_eq!(split_punctuation("1,000").len(), 1);
    }

    #[test]
    fn espeak_speaks_telugu_and_tamil() {
        let te = EspeakEngine::new("te").unwrap();
        assert_eq!(te.sample_rate(), 22_050);
        let audio = te.synthesize("నమస్కారం, మీరు ఎలా ఉన్నారు?", 1.0).unwrap();
        assert_speech(&audio, 22_050, 0.5, "espeak te");
        write_wav("espeak_te.wav", &audio, 22_050);
        let ta = EspeakEngine::new("ta").unwrap();
        let audio = ta.synthesize("வணக்கம், நீங்கள் எப்படி இருக்கிறீர்கள்?", 1.0).unwrap();
        assert_speech(&audio, 22_050, 0.5, "espeak ta");
        write_wav("espeak_ta.wav", &audio, 22_050);
    }

    #[test]
    fn espeak_speed_changes_duration() {
        let e = EspeakEngine::new("en-us").unwrap();
        let normal = e
            .synthesize("This sentence is spoken at two speeds.", 1.0)
            .unwrap();
        let fast = e
            .synthesize("This sentence is spoken at two speeds.", 2.0)
            .unwrap();
        assert!(
            fast.len() * 10 < normal.len() * 8,
            "{} vs {}",
            fast.len(),
            normal.len()
        );
    }

    #[test]
    fn espeak_is_safe_across_threads() {
        let handles: Vec<_> = ["te", "ta", "kn", "bn"]
            .into_iter()
            .map(|v| {
                std::thread::spawn(move || {
                    let e = EspeakEngine::new(v).unwrap();
                    for _ in 0..3 {
                        let a = e.synthesize("123", 1.0).unwrap();
                        assert!(!a.is_empty());
                        phonemize("namaste 42", v).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }

    #[test]
    fn unknown_voice_and_empty_text() {
        assert!(matches!(
            EspeakEngine::new("no-such-voice"),
            Err(TtsError::UnknownVoice { .. })
        ));
        assert!(matches!(
            phonemize("hello", "no-such-voice"),
            Err(TtsError::UnknownVoice { .. })
        ));
        let e = EspeakEngine::new("hi").unwrap();
        assert!(matches!(
            e.synthesize("  \n", 1.0),
            Err(TtsError::EmptyText)
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn sanitized_text_never_crashes_espeak(text in "[ -~\u{900}-\u{97f}\u{c00}-\u{c7f}\u{600}-\u{6ff}\u{2000}-\u{2bff}\u{1f300}-\u{1f6ff}]{0,60}") {
            for voice in ["hi", "te", "ur", "en-us"] {
                let ipa = phonemize(&text, voice).unwrap();
                proptest::prop_assert!(!ipa.contains('\0'));
            }
        }

        #[test]
        fn phonemize_never_panics(text in "\\PC{0,40}") {
            let ipa = phonemize(&text, "hi").unwrap();
            proptest::prop_assert!(!ipa.contains('\0'));
        }
    }
}
