//! `vaak eval asr`: speech recognition accuracy on eval manifests, per language — WER, CER,
//! spoken language identification, the share of transcripts in the language's script, and the
//! real-time factor. Transcripts and references are normalised as `../shared/eval/README.md`
//! prescribes ([`normalize_for_scoring`]). `--channel phone` passes every clip through a phone
//! line first (8 kHz, G.711 μ-law, back to the pipeline rate), as telephony callers sound.
//! `--mode streaming` feeds each clip in 20 ms chunks through the daemon's own streaming state
//! ([`crate::backend::asr::streaming`]), so its figures are what a live session gets; the CPU
//! column is the process's CPU time per second of speech.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::Clip;
use crate::audio::resample::resample_all;
use crate::audio::wav::read_mono;
use crate::audio::{g711, PIPELINE_RATE};
use crate::backend::asr::streaming::{stream_file, StreamConfig};
use crate::backend::asr::{Asr, LanguageHint};
use crate::flow::language::LanguageTrack;
use crate::flow::language_id as lang_id;
use crate::text::normalize::normalize_for_scoring;
use crate::text::script::{Script, ScriptStats};

/// Clips at least this long count towards the long-clip LID figure.
pub const LONG_CLIP_S: f32 = 3.0;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {detail}")]
    Clip { path: PathBuf, detail: String },
    #[error("ASR failed on {path}: {detail}")]
    Asr { path: PathBuf, detail: String },
}

/// What the audio went through before recognition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The clip as recorded (16 kHz).
    Wideband,
    /// A phone line: 8 kHz, μ-law, then back to the pipeline rate.
    Phone,
}

impl Channel {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "wideband" | "16k" => Some(Channel::Wideband),
            "phone" | "8k" => Some(Channel::Phone),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Channel::Wideband => "16 kHz",
            Channel::Phone => "8 kHz μ-law",
        }
    }

    fn apply(self, audio: &[f32]) -> Result<Vec<f32>, String> {
        match self {
            Channel::Wideband => Ok(audio.to_vec()),
            Channel::Phone => {
                let narrow =
                    resample_all(audio, PIPELINE_RATE, 8_000).map_err(|e| e.to_string())?;
                let line = g711::decode_ulaw(&g711::encode_ulaw(&narrow));
                resample_all(&line, 8_000, PIPELINE_RATE).map_err(|e| e.to_string())
            }
        }
    }
}

/// Chunk length `--mode streaming` feeds, as a live transport does.
pub const STREAM_CHUNK_MS: u32 = 20;

/// How each clip is recognised.
#[derive(Debug, Clone)]
pub enum Mode {
    /// One decode of the whole clip.
    Whole,
    /// Streamed through the daemon's streaming state with these settings.
    Streaming(StreamConfig),
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Whole => "whole",
            Mode::Streaming(_) => "streaming",
        }
    }
}

/// CPU time of this process so far (user + system), in seconds.
pub fn process_cpu_s() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Whether clips are recognised alone or as turns of a conversation (with the session's
/// language hysteresis, as the daemon runs them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// Each clip alone: LID is Whisper's spoken-language detection.
    None,
    /// The clips of each language, in order, as one conversation in that language: LID is the
    /// turn's language decision.
    PerLanguage,
    /// All clips as one conversation, languages taken in turn (hi, te, en, hi, …): what
    /// hysteresis costs when every turn switches language.
    Interleaved,
}

impl Session {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Session::None),
            "per-language" => Some(Session::PerLanguage),
            "interleaved" => Some(Session::Interleaved),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Session::None => "none",
            Session::PerLanguage => "per-language",
            Session::Interleaved => "interleaved",
        }
    }
}

/// Clips in the order a session mode takes them: per language, or round-robin.
fn session_order(clips: &[Clip], session: Session) -> Vec<&Clip> {
    let mut by: BTreeMap<&str, Vec<&Clip>> = BTreeMap::new();
    for c in clips {
        by.entry(c.language.as_str()).or_default().push(c);
    }
    match session {
        Session::None | Session::PerLanguage => by.into_values().flatten().collect(),
        Session::Interleaved => {
            let longest = by.values().map(Vec::len).max().unwrap_or(0);
            (0..longest)
                .flat_map(|i| by.values().filter_map(move |v| v.get(i).copied()))
                .collect()
        }
    }
}

/// One clip's result.
#[derive(Debug, Clone)]
pub struct ClipResult {
    pub path: PathBuf,
    pub language: String,
    pub duration_s: f32,
    pub reference: String,
    pub hypothesis: String,
    pub detected: String,
    pub word_edits: usize,
    pub words: usize,
    pub char_edits: usize,
    pub chars: usize,
    pub right_script: bool,
    pub elapsed_s: f32,
    /// CPU time the recognition took (all threads).
    pub cpu_s: f32,
}

/// Levenshtein distance between two sequences.
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(x != y);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// (word edits, reference words, character edits, reference characters) of normalised texts.
pub fn score(reference: &str, hypothesis: &str) -> (usize, usize, usize, usize) {
    let (r, h) = (
        normalize_for_scoring(reference),
        normalize_for_scoring(hypothesis),
    );
    let (rw, hw): (Vec<&str>, Vec<&str>) = (r.split(' ').collect(), h.split(' ').collect());
    let rw: Vec<&str> = rw.into_iter().filter(|w| !w.is_empty()).collect();
    let hw: Vec<&str> = hw.into_iter().filter(|w| !w.is_empty()).collect();
    let (rc, hc): (Vec<char>, Vec<char>) = (r.chars().collect(), h.chars().collect());
    (
        edit_distance(&rw, &hw),
        rw.len(),
        edit_distance(&rc, &hc),
        rc.len(),
    )
}

/// Recognises every clip (language detected among `languages`, as a live session does); in a
/// session mode, with the session's language hysteresis (`switch_confidence`).
#[allow(clippy::too_many_arguments)]
pub fn run(
    asr: &dyn Asr,
    clips: &[Clip],
    languages: &[String],
    channel: Channel,
    session: Session,
    mode: &Mode,
    switch_confidence: f32,
    mut progress: impl FnMut(&ClipResult),
) -> Result<Vec<ClipResult>, EvalError> {
    let cancel = CancellationToken::new();
    let mut out = Vec::new();
    let mut tracks: BTreeMap<String, LanguageTrack> = BTreeMap::new();
    for clip in session_order(clips, session) {
        let track_key = match session {
            Session::PerLanguage => clip.language.as_str(),
            _ => "",
        };
        let track = tracks
            .entry(track_key.to_string())
            .or_insert_with(|| LanguageTrack::new(switch_confidence, None));
        let hint = match session {
            Session::None => LanguageHint::DetectAmong(languages.to_vec()),
            _ => track.asr_hint(languages),
        };
        let err = |detail: String| EvalError::Clip {
            path: clip.path.clone(),
            detail,
        };
        let (mono, rate) = read_mono(&clip.path).map_err(|e| err(e.to_string()))?;
        let audio = resample_all(&mono, rate, PIPELINE_RATE).map_err(|e| err(e.to_string()))?;
        let audio = channel.apply(&audio).map_err(err)?;
        let cpu = process_cpu_s();
        let t = match mode {
            Mode::Whole => asr.transcribe(&audio, &hint, &cancel),
            Mode::Streaming(cfg) => stream_file(
                asr,
                cfg.clone(),
                &audio,
                hint,
                STREAM_CHUNK_MS,
                &cancel,
                |_, _| {},
            ),
        }
        .map_err(|e| EvalError::Asr {
            path: clip.path.clone(),
            detail: e.to_string(),
        })?;
        let cpu_s = (process_cpu_s() - cpu) as f32;
        let (word_edits, words, char_edits, chars) = score(&clip.text, &t.text);
        let decided = match session {
            Session::None => t.language.clone(),
            _ => {
                let (detected, confidence) = lang_id::detected(
                    &t.language,
                    t.language_prob,
                    &t.candidates,
                    t.held,
                    &t.text,
                    languages,
                );
                lang_id::turn_language(track, &detected, confidence, t.held, &t.text, languages)
                    .language
            }
        };
        let right_script = match Script::of_language(&clip.language) {
            Some(want) => ScriptStats::of(&t.text)
                .dominant()
                .is_some_and(|(s, _)| s == want),
            None => false,
        };
        let r = ClipResult {
            path: clip.path.clone(),
            language: clip.language.clone(),
            duration_s: t.audio_s,
            reference: clip.text.clone(),
            hypothesis: t.text,
            detected: decided,
            word_edits,
            words,
            char_edits,
            chars,
            right_script,
            elapsed_s: t.elapsed_s,
            cpu_s,
        };
        progress(&r);
        out.push(r);
    }
    Ok(out)
}

/// One language's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct LanguageRow {
    pub language: String,
    pub clips: usize,
    pub wer: f64,
    pub cer: f64,
    pub lid: f64,
    /// LID over clips of at least [`LONG_CLIP_S`] (`None` if there are none).
    pub lid_long: Option<f64>,
    pub right_script: f64,
    pub rtf: f64,
    /// CPU seconds per second of audio (1.0 = one core busy while the user speaks).
    pub cpu_per_s: f64,
}

fn audio_s(rs: &[&ClipResult]) -> f64 {
    rs.iter()
        .map(|r| f64::from(r.duration_s))
        .sum::<f64>()
        .max(1e-9)
}

pub fn table(results: &[ClipResult]) -> Vec<LanguageRow> {
    let mut by: BTreeMap<&str, Vec<&ClipResult>> = BTreeMap::new();
    for r in results {
        by.entry(r.language.as_str()).or_default().push(r);
    }
    by.into_iter()
        .map(|(language, rs)| {
            let n = rs.len() as f64;
            let sum = |f: &dyn Fn(&ClipResult) -> usize| rs.iter().map(|r| f(r)).sum::<usize>();
            let long: Vec<&&ClipResult> =
                rs.iter().filter(|r| r.duration_s >= LONG_CLIP_S).collect();
            let correct = |r: &ClipResult| r.detected == r.language;
            LanguageRow {
                language: language.to_string(),
                clips: rs.len(),
                wer: sum(&|r| r.word_edits) as f64 / sum(&|r| r.words).max(1) as f64,
                cer: sum(&|r| r.char_edits) as f64 / sum(&|r| r.chars).max(1) as f64,
                lid: rs.iter().filter(|r| correct(r)).count() as f64 / n,
                lid_long: (!long.is_empty())
                    .then(|| long.iter().filter(|r| correct(r)).count() as f64 / long.len() as f64),
                right_script: rs.iter().filter(|r| r.right_script).count() as f64 / n,
                rtf: rs.iter().map(|r| f64::from(r.elapsed_s)).sum::<f64>() / audio_s(&rs),
                cpu_per_s: rs.iter().map(|r| f64::from(r.cpu_s)).sum::<f64>() / audio_s(&rs),
            }
        })
        .collect()
}

pub fn render(rows: &[LanguageRow], channel: Channel, session: Session, mode: &Mode) -> String {
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let mut out = format!(
        "mode: {}, channel: {}, session: {}\n{:<5} {:>5} {:>7} {:>7} {:>7} {:>9} {:>7} {:>6} {:>6}\n",
        mode.name(),
        channel.name(),
        session.name(),
        "lang",
        "clips",
        "WER",
        "CER",
        "LID",
        "LID ≥3 s",
        "script",
        "RTF",
        "CPU/s"
    );
    for r in rows {
        out += &format!(
            "{:<5} {:>5} {:>7} {:>7} {:>7} {:>9} {:>7} {:>6.3} {:>6.2}\n",
            r.language,
            r.clips,
            pct(r.wer),
            pct(r.cer),
            pct(r.lid),
            r.lid_long.map(pct).unwrap_or_else(|| "-".into()),
            pct(r.right_script),
            r.rtf,
            r.cpu_per_s
        );
    }
    out
}

/// Streaming against whole-utterance decoding, per language: the difference in WER and CER
/// (percentage points; positive = streaming is worse).
pub fn render_comparison(whole: &[LanguageRow], streaming: &[LanguageRow]) -> String {
    let mut out = format!(
        "streaming − whole (points)\n{:<5} {:>8} {:>8} {:>10}\n",
        "lang", "ΔWER", "ΔCER", "ΔCPU/s"
    );
    for w in whole {
        if let Some(s) = streaming.iter().find(|s| s.language == w.language) {
            out += &format!(
                "{:<5} {:>+8.1} {:>+8.1} {:>+10.2}\n",
                w.language,
                100.0 * (s.wer - w.wer),
                100.0 * (s.cer - w.cer),
                s.cpu_per_s - w.cpu_per_s
            );
        }
    }
    out
}

pub fn to_json(
    rows: &[LanguageRow],
    channel: Channel,
    session: Session,
    mode: &Mode,
) -> serde_json::Value {
    serde_json::json!({
        "mode": mode.name(),
        "channel": channel.name(),
        "session": session.name(),
        "languages": rows.iter().map(|r| serde_json::json!({
            "language": r.language,
            "clips": r.clips,
            "wer": r.wer,
            "cer": r.cer,
            "lid": r.lid,
            "lid_long": r.lid_long,
            "right_script": r.right_script,
            "rtf": r.rtf,
            "cpu_per_s": r.cpu_per_s,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn session_orders() {
        let clip = |l: &str, i: usize| Clip {
            path: format!("{l}{i}.wav").into(),
            language: l.into(),
            duration_s: 1.0,
            text: String::new(),
        };
        let clips = vec![clip("hi", 0), clip("hi", 1), clip("te", 0), clip("en", 0)];
        let names = |s| {
            session_order(&clips, s)
                .iter()
                .map(|c| c.path.display().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(Session::PerLanguage),
            ["en0.wav", "hi0.wav", "hi1.wav", "te0.wav"]
        );
        assert_eq!(
            names(Session::Interleaved),
            ["en0.wav", "hi0.wav", "te0.wav", "hi1.wav"]
        );
        assert_eq!(Session::parse("interleaved"), Some(Session::Interleaved));
        assert_eq!(Session::parse("sometimes"), None);
    }

    #[test]
    fn scores_count_edits_after_normalisation() {
        assert_eq!(
            score("And so, my fellow Americans!", "and so my fellow americans"),
            (0, 5, 0, 26)
        );
        assert_eq!(score("a b c", "a x c d").0, 2);
        let (we, w, ce, c) = score("किताब पढ़िए।", "किताब पढ़ो");
        assert_eq!((we, w), (1, 2));
        assert!(ce > 0 && ce < c);
        assert_eq!(score("", "something").1, 0);
    }

    #[test]
    fn table_aggregates_per_language() {
        let r = |lang: &str, det: &str, d: f32, we: usize, script: bool| ClipResult {
            path: PathBuf::new(),
            language: lang.into(),
            duration_s: d,
            reference: String::new(),
            hypothesis: String::new(),
            detected: det.into(),
            word_edits: we,
            words: 10,
            char_edits: we,
            chars: 50,
            right_script: script,
            elapsed_s: d / 4.0,
            cpu_s: d / 2.0,
        };
        let rows = table(&[
            r("hi", "hi", 4.0, 2, true),
            r("hi", "ur", 2.0, 10, false),
            r("te", "te", 5.0, 5, true),
        ]);
        assert_eq!(rows.len(), 2);
        let hi = &rows[0];
        assert_eq!((hi.language.as_str(), hi.clips), ("hi", 2));
        assert!((hi.wer - 0.6).abs() < 1e-9 && (hi.lid - 0.5).abs() < 1e-9);
        assert_eq!(hi.lid_long, Some(1.0));
        assert!((hi.right_script - 0.5).abs() < 1e-9 && (hi.rtf - 0.25).abs() < 1e-9);
        assert!((hi.cpu_per_s - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_phone_line_keeps_the_length_and_loses_the_top_band() {
        let tone = |f: f32| -> Vec<f32> {
            (0..16_000)
                .map(|i| (i as f32 * f * std::f32::consts::TAU / 16_000.0).sin() * 0.5)
                .collect()
        };
        let low = Channel::Phone.apply(&tone(440.0)).unwrap();
        let high = Channel::Phone.apply(&tone(6_000.0)).unwrap();
        assert!((low.len() as i64 - 16_000).abs() < 64);
        assert!(crate::audio::rms(&low) > 0.3);
        assert!(crate::audio::rms(&high) < 0.05);
    }

    proptest! {
        #[test]
        fn edit_distance_is_a_metric(a in "[abc]{0,12}", b in "[abc]{0,12}") {
            let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            let d = edit_distance(&a, &b);
            prop_assert_eq!(d, edit_distance(&b, &a));
            prop_assert!(d <= a.len().max(b.len()));
            prop_assert!(d >= a.len().abs_diff(b.len()));
            prop_assert_eq!(edit_distance(&a, &a), 0);
        }
    }
}
