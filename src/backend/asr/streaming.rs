//! Streaming recognition of one utterance, the LocalAgreement-2 policy of Macháček et al.
//! ("Turning Whisper into Real-Time Transcription System", 2023): while the user speaks, the
//! recogniser re-decodes the uncommitted window every `pass_every` of new speech; the words two
//! consecutive passes agree on are committed (they never change again) and go to the next pass
//! as a forced prefix. A pass that ended in a pause anchors a cut: once a later pass agrees with
//! every word of it, the audio before the pause leaves the window and its words become the
//! decoder's prompt, so a pass costs a bounded amount whatever the utterance's length (a window
//! that finds no pause is cut at its quietest point). The language is decided on the first pass
//! with enough speech and then held. At the end of speech only what no pass has covered is left
//! to decode: the last pass at the pause is usually the final transcript already.
//!
//! Pure logic, no threads: [`StreamState::plan`] says which pass to run, the caller runs it
//! ([`run_pass`], blocking) and hands the result to [`StreamState::apply`]. The ASR stage runs
//! passes on the blocking pool; `vaak eval asr --mode streaming` and `vaak transcribe --stream`
//! run the same state inline.

use tokio_util::sync::CancellationToken;

use super::{Asr, AsrError, LanguageHint, Transcription, WindowRequest};
use crate::audio::PIPELINE_RATE;

/// A language detected with less than this is detected again on the next pass (until the
/// window holds [`LID_SETTLE_MS`] of audio).
pub const LID_SETTLE_PROB: f32 = 0.95;
/// Detection stops changing its mind once the audio is this long (Whisper's language
/// detection was seen to misjudge Hindi on shorter windows).
pub const LID_SETTLE_MS: u32 = 6_000;
/// A forced cut keeps at least this much audio on either side.
const CUT_MARGIN_MS: u32 = 1_000;
/// A cut that never finds agreement is taken anyway once the window is this many times
/// `max_window_ms` long (bounded cost beats waiting for agreement forever).
const FORCE_FACTOR: usize = 2;

/// When and how passes run (from `config::AsrConfig` and the VAD's padding).
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// A pass every this much new speech (0 = none: only decisions).
    pub pass_every_ms: u32,
    /// No pass before the window holds this much audio (decisions excepted).
    pub first_pass_ms: u32,
    /// The language is decided on a pass over at least this much audio.
    pub lid_ms: u32,
    /// A window longer than this with no pause to cut at is cut at its quietest point.
    pub max_window_ms: u32,
    /// Trailing silence kept with the speech; a pass runs when a pause reaches it.
    pub pad_ms: u32,
    /// The recogniser continues a forced prefix ([`Asr::streams`]): windows are trimmed.
    /// Otherwise every pass re-decodes the whole utterance.
    pub streams: bool,
    /// Threads a pass keeps busy: cadence passes are spaced so that a session's passes use at
    /// most one core on average (a pass of 600 ms on 2 threads waits 1.2 s for the next).
    pub pass_threads: usize,
}

impl StreamConfig {
    /// The configured streaming (`[asr]`) with the VAD's padding `pad_ms`; `streams` says
    /// whether the recogniser continues a prefix ([`Asr::streams`]).
    pub fn from_config(asr: &crate::config::AsrConfig, pad_ms: u32, streams: bool) -> Self {
        Self {
            pass_every_ms: asr.pass_every_ms,
            first_pass_ms: asr.pass_every_ms,
            lid_ms: crate::config::ASR_LID_MS,
            max_window_ms: asr.max_window_ms,
            pad_ms,
            streams,
            pass_threads: asr.threads.max(1),
        }
    }
}

fn samples(ms: u32) -> usize {
    (u64::from(ms) * u64::from(PIPELINE_RATE) / 1000) as usize
}

/// What kind of pass a plan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    /// Steady cadence while the user speaks.
    Cadence,
    /// The speech paused: the pass covers all of it (and anchors a cut there).
    Pause,
    /// The window is too long: decode up to its quietest point, to cut there.
    Cut,
    /// A transcript is wanted now (speculative pause, end of speech).
    Decision,
}

/// One planned pass: its request and where its audio lies.
#[derive(Debug, Clone)]
pub struct PassPlan {
    pub kind: PassKind,
    pub pcm: Vec<f32>,
    pub hint: LanguageHint,
    pub context: String,
    pub prefix: String,
    /// Absolute sample at which the pass's audio ends (a pause pass's padding may not have
    /// been heard yet: it is silence).
    pub end: usize,
    /// Where the window may be cut once a later pass agrees with this one's words.
    cut: usize,
    /// Committed words inside the window the pass was given.
    committed: usize,
}

impl PassPlan {
    pub fn request(&self) -> WindowRequest<'_> {
        WindowRequest {
            pcm: &self.pcm,
            hint: &self.hint,
            context: &self.context,
            prefix: &self.prefix,
        }
    }
}

/// Runs a planned pass (blocking): a streaming recogniser continues the prefix over the window,
/// any other transcribes the whole utterance.
pub fn run_pass(
    asr: &dyn Asr,
    plan: &PassPlan,
    cancel: &CancellationToken,
) -> Result<Transcription, AsrError> {
    if asr.streams() {
        asr.transcribe_window(&plan.request(), cancel)
    } else {
        asr.transcribe(&plan.pcm, &plan.hint, cancel)
    }
}

/// The stream's language: decided on a pass with enough audio, then held.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamLanguage {
    pub code: String,
    pub prob: f32,
    pub candidates: Vec<(String, f32)>,
    /// The session's language was held although detection preferred another.
    pub held: bool,
    settled: bool,
}

#[derive(Debug, Clone)]
struct Anchor {
    /// Absolute sample of the cut.
    cut: usize,
    /// Every word of the window's audio before the cut, as that pass heard it.
    words: Vec<String>,
}

/// The streaming state of one utterance (or of a turn the user continued).
#[derive(Debug)]
pub struct StreamState {
    cfg: StreamConfig,
    /// The session's language hint when the stream started.
    session_hint: LanguageHint,
    /// Audio of the window, from absolute sample `trimmed` to `total`.
    window: Vec<f32>,
    trimmed: usize,
    total: usize,
    /// Non-speech at the end of the audio so far.
    trailing_silence: usize,
    /// Committed words of audio that left the window.
    context: Vec<String>,
    /// Committed words inside the window.
    committed: Vec<String>,
    /// The last full pass's words after `committed`.
    tentative: Vec<String>,
    anchor: Option<Anchor>,
    /// Absolute end of the last pass that covered the whole window (0 = none yet).
    last_end: usize,
    /// Absolute end of the last pass tried (a failed one is retried at the next cadence).
    last_try: usize,
    language: Option<StreamLanguage>,
    passes: u32,
    failures: u32,
    /// Compute time of the passes so far, in seconds.
    pub compute_s: f32,
    /// Wall time of the last pass, in seconds.
    last_pass_s: f32,
}

impl StreamState {
    /// The speech went on after a pause: a pass started for that pause is not worth finishing.
    pub fn speaking(&self) -> bool {
        self.trailing_silence == 0
    }
}

impl StreamState {
    pub fn new(cfg: StreamConfig, session_hint: LanguageHint) -> Self {
        let language = match &session_hint {
            LanguageHint::Fixed(code) => Some(StreamLanguage {
                code: code.clone(),
                prob: 1.0,
                candidates: vec![(code.clone(), 1.0)],
                held: false,
                settled: true,
            }),
            _ => None,
        };
        Self {
            cfg,
            session_hint,
            window: Vec::new(),
            trimmed: 0,
            total: 0,
            trailing_silence: 0,
            context: Vec::new(),
            committed: Vec::new(),
            tentative: Vec::new(),
            anchor: None,
            last_end: 0,
            last_try: 0,
            language,
            passes: 0,
            failures: 0,
            compute_s: 0.0,
            last_pass_s: 0.0,
        }
    }

    /// More audio of the utterance, with the length of non-speech now at its end.
    pub fn push(&mut self, pcm: &[f32], trailing_silence: usize) {
        self.window.extend_from_slice(pcm);
        self.total += pcm.len();
        self.trailing_silence = trailing_silence.min(self.total - self.trimmed);
    }

    /// Absolute end of the speech plus its padding (longer silence is not decoded).
    pub fn speech_end(&self) -> usize {
        let extra = self
            .trailing_silence
            .saturating_sub(samples(self.cfg.pad_ms));
        self.total - extra
    }

    /// Seconds of audio the stream has heard.
    pub fn audio_s(&self) -> f32 {
        self.speech_end() as f32 / PIPELINE_RATE as f32
    }

    /// Samples of audio inside the window (what a pass over all of it decodes).
    pub fn window_len(&self) -> usize {
        self.speech_end() - self.trimmed
    }

    /// The pass to run now, if one is due. `decision`: a transcript is wanted now.
    pub fn plan(&self, decision: bool) -> Option<PassPlan> {
        let end = self.speech_end();
        if decision {
            return (!self.is_current()).then(|| self.full_plan(PassKind::Decision, end));
        }
        let window = end - self.trimmed;
        let last = self.last_end.max(self.last_try);
        // With no language to go on yet, the first pass waits for enough speech to detect it
        // (a second of Hindi was seen detected as English or Tamil).
        let first = if matches!(self.session_hint, LanguageHint::DetectAmong(_)) {
            self.cfg.first_pass_ms.max(self.cfg.lid_ms)
        } else {
            self.cfg.first_pass_ms
        };
        if end <= last || window < samples(first) {
            return None;
        }
        if self.cfg.streams && self.anchor.is_none() && window > samples(self.cfg.max_window_ms) {
            if let Some(cut) = self.quietest_point(window) {
                return Some(self.plan_to(PassKind::Cut, cut));
            }
        }
        if let Some(projected) = self.pause_end() {
            return Some(self.full_plan(PassKind::Pause, projected));
        }
        let spacing = (self.last_pass_s * self.cfg.pass_threads as f32 * 1000.0) as u32;
        let every = self.cfg.pass_every_ms.max(spacing);
        (self.cfg.pass_every_ms > 0 && end - last >= samples(every))
            .then(|| self.full_plan(PassKind::Cadence, end))
    }

    /// The speech paused and no pass has covered it: where a pause pass would end. At a pause
    /// the pass starts at once, with the padding the turn would end with filled in (the
    /// decision at the end of the turn then finds it done). A recogniser that cannot stream
    /// would re-decode everything: it waits for the decision instead.
    fn pause_end(&self) -> Option<usize> {
        let projected = self.total - self.trailing_silence + samples(self.cfg.pad_ms);
        (self.cfg.streams
            && self.trailing_silence >= samples(self.cfg.pad_ms / 2).max(1)
            && projected > self.last_end.max(self.last_try))
        .then_some(projected)
    }

    fn full_plan(&self, kind: PassKind, end: usize) -> PassPlan {
        self.plan_to(kind, end)
    }

    fn plan_to(&self, kind: PassKind, end: usize) -> PassPlan {
        let hint = match &self.language {
            Some(l) if l.settled => LanguageHint::Fixed(l.code.clone()),
            _ => self.session_hint.clone(),
        };
        let (context, prefix) = if self.cfg.streams {
            (self.context.join(" "), self.committed.join(" "))
        } else {
            (String::new(), String::new())
        };
        let have = (end - self.trimmed).min(self.window.len());
        let mut pcm = self.window[..have].to_vec();
        pcm.resize(end - self.trimmed, 0.0);
        // A pause's cut lies inside the silence heard so far, never in speech that follows.
        let stop = self.total - self.trailing_silence;
        let cut = if kind == PassKind::Pause {
            stop + self.trailing_silence / 2
        } else {
            end
        };
        PassPlan {
            kind,
            pcm,
            hint,
            context,
            prefix,
            end,
            cut,
            committed: if self.cfg.streams {
                self.committed.len()
            } else {
                self.context.len() + self.committed.len()
            },
        }
    }

    /// The quietest 20 ms of the window, at least [`CUT_MARGIN_MS`] from either end.
    fn quietest_point(&self, window: usize) -> Option<usize> {
        let frame = samples(20);
        let margin = samples(CUT_MARGIN_MS);
        (margin..window.saturating_sub(margin))
            .step_by(frame)
            .map(|i| {
                (
                    i,
                    crate::audio::rms(&self.window[i..(i + frame).min(window)]),
                )
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| self.trimmed + i + frame / 2)
    }

    /// The last pass covered all the speech: its text is the transcript.
    pub fn is_current(&self) -> bool {
        self.last_end > 0 && self.last_end == self.speech_end()
    }

    /// `plan` failed or was aborted: its audio stays in the window for the next pass, which
    /// comes at the next cadence (a decision retries at once).
    pub fn failed(&mut self, plan: &PassPlan) {
        self.failures += 1;
        self.last_try = self.last_try.max(plan.end);
    }

    /// (passes applied, passes failed).
    pub fn pass_counts(&self) -> (u32, u32) {
        (self.passes, self.failures)
    }

    /// Takes a finished pass's result.
    pub fn apply(&mut self, plan: &PassPlan, t: Transcription) {
        self.passes += 1;
        self.compute_s += t.elapsed_s;
        self.last_pass_s = t.elapsed_s;
        self.learn_language(plan, &t);
        let words: Vec<String> = t.text.split_whitespace().map(str::to_string).collect();
        // A pass that changed language may have decoded without the old words as its prefix.
        let prefix: Vec<String> = plan.prefix.split_whitespace().map(str::to_string).collect();
        let kept_prefix = common_prefix(&words, &prefix) == prefix.len();
        let skip = if kept_prefix { plan.committed } else { 0 };
        let new: Vec<String> = words.get(skip..).unwrap_or_default().to_vec();
        if plan.kind == PassKind::Cut {
            let whole: Vec<String> = self.committed.iter().cloned().chain(new).collect();
            self.anchor = Some(Anchor {
                cut: plan.cut,
                words: whole,
            });
            if self.window_len() > FORCE_FACTOR * samples(self.cfg.max_window_ms) {
                // Agreement never came: take the cut as heard rather than grow without end.
                self.take_anchor(None, false);
            }
            return;
        }
        let agreed = common_prefix(&new, &self.tentative);
        self.committed.extend_from_slice(&new[..agreed]);
        self.tentative = new[agreed..].to_vec();
        self.last_end = plan.end;
        if !self.cfg.streams {
            return;
        }
        // The window keeps all its audio until the language is settled: detection on the
        // whole utterance is what decides it.
        let settled = self.language.as_ref().is_some_and(|l| l.settled);
        if let Some(anchor) = self.anchor.take().filter(|_| settled) {
            if anchor.cut < plan.end {
                let whole: Vec<String> = self
                    .committed
                    .iter()
                    .chain(&self.tentative)
                    .cloned()
                    .collect();
                if common_prefix(&whole, &anchor.words) == anchor.words.len() {
                    self.take_anchor(Some(anchor), true);
                }
            } else {
                self.anchor = Some(anchor);
            }
        }
        if plan.kind == PassKind::Pause && self.anchor.is_none() {
            self.anchor = Some(Anchor {
                cut: plan.cut,
                words: self
                    .committed
                    .iter()
                    .chain(&self.tentative)
                    .cloned()
                    .collect(),
            });
        }
    }

    /// Cuts the window at the anchor (`None`: the pending one): its words are committed and
    /// leave the window with its audio. `agreed`: the last full pass began with those words
    /// (its tentative words up to the cut are the anchor's); otherwise they are dropped.
    fn take_anchor(&mut self, anchor: Option<Anchor>, agreed: bool) {
        let Some(anchor) = anchor.or_else(|| self.anchor.take()) else {
            return;
        };
        let n = anchor.words.len();
        if self.committed.len() < n {
            let have = self.committed.len();
            let more = n - have;
            self.committed.extend_from_slice(&anchor.words[have..]);
            if agreed {
                self.tentative.drain(..more.min(self.tentative.len()));
            } else {
                self.tentative.clear();
            }
        }
        let cut = anchor.cut.clamp(self.trimmed, self.total);
        self.window.drain(..cut - self.trimmed);
        self.trimmed = cut;
        self.context.extend(self.committed.drain(..n));
        if self.last_end < cut {
            self.last_end = 0;
        }
    }

    fn learn_language(&mut self, plan: &PassPlan, t: &Transcription) {
        if matches!(plan.hint, LanguageHint::Fixed(_)) && self.language.is_some() {
            return;
        }
        if let LanguageHint::Prefer {
            allowed, current, ..
        } = &plan.hint
        {
            if !t.held && t.language != *current {
                // The recogniser heard the speech in another language than the session's:
                // the rest of the stream detects freely rather than holding it again.
                self.session_hint = LanguageHint::DetectAmong(allowed.clone());
            }
        }
        let long = plan.pcm.len() >= samples(self.cfg.lid_ms);
        let settled = (long && t.language_prob >= LID_SETTLE_PROB)
            || plan.pcm.len() >= samples(LID_SETTLE_MS);
        let changed = self.language.as_ref().is_some_and(|l| l.code != t.language);
        if changed && self.context.is_empty() {
            // Words decoded in another language are not worth agreeing with.
            self.committed.clear();
            self.tentative.clear();
            self.anchor = None;
        }
        self.language = Some(StreamLanguage {
            code: t.language.clone(),
            prob: t.language_prob,
            candidates: t.candidates.clone(),
            held: t.held,
            settled,
        });
    }

    pub fn language(&self) -> Option<&StreamLanguage> {
        self.language.as_ref()
    }

    /// Committed words, then the last pass's tentative ones.
    pub fn text(&self) -> String {
        self.context
            .iter()
            .chain(&self.committed)
            .chain(&self.tentative)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The committed words only (they never change within the stream).
    pub fn committed_text(&self) -> String {
        self.context
            .iter()
            .chain(&self.committed)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The transcript of the stream as it stands.
    pub fn transcription(&self) -> Transcription {
        let l = self.language.clone().unwrap_or_else(|| StreamLanguage {
            code: String::new(),
            prob: 0.0,
            candidates: Vec::new(),
            held: false,
            settled: false,
        });
        Transcription {
            text: self.text(),
            language: l.code,
            language_prob: l.prob,
            candidates: l.candidates,
            held: l.held,
            audio_s: self.audio_s(),
            elapsed_s: self.compute_s,
        }
    }
}

/// Words compared without case or surrounding punctuation (passes differ in both).
fn same_word(a: &str, b: &str) -> bool {
    let norm = |w: &str| {
        w.trim_matches(|c: char| !c.is_alphanumeric() && !crate::text::script::is_mark(c))
            .to_lowercase()
    };
    norm(a) == norm(b)
}

/// Length of the common prefix of two word lists.
fn common_prefix(a: &[String], b: &[String]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| same_word(x, y)).count()
}

/// Streams `pcm` through a [`StreamState`] in chunks of `chunk_ms`, running each due pass
/// inline (as if every pass finished before more audio came), then decides at the end. The
/// same state and plans the daemon uses; `on_pass` sees the state after every pass (at the
/// audio position, in seconds). Pauses are found by level (chunks under a tenth of the clip's
/// loud level), where the daemon uses its VAD.
pub fn stream_file(
    asr: &dyn Asr,
    cfg: StreamConfig,
    pcm: &[f32],
    hint: LanguageHint,
    chunk_ms: u32,
    cancel: &CancellationToken,
    mut on_pass: impl FnMut(f32, &StreamState),
) -> Result<Transcription, AsrError> {
    let chunk = samples(chunk_ms).max(1);
    let floor = loud_level(pcm) * QUIET_SHARE;
    let mut state = StreamState::new(cfg, hint);
    let mut last_error = None;
    let mut silence = 0;
    for piece in pcm.chunks(chunk) {
        silence = if crate::audio::rms(piece) < floor {
            silence + piece.len()
        } else {
            0
        };
        state.push(piece, silence);
        if let Some(plan) = state.plan(false) {
            match run_pass(asr, &plan, cancel) {
                Ok(t) => state.apply(&plan, t),
                Err(AsrError::Cancelled) => return Err(AsrError::Cancelled),
                Err(e) => {
                    state.failed(&plan);
                    last_error = Some(e);
                    continue;
                }
            }
            on_pass(state.total as f32 / PIPELINE_RATE as f32, &state);
        }
    }
    if let Some(plan) = state.plan(true) {
        match run_pass(asr, &plan, cancel) {
            Ok(t) => state.apply(&plan, t),
            Err(e) => return Err(last_error.unwrap_or(e)),
        }
        on_pass(state.total as f32 / PIPELINE_RATE as f32, &state);
    }
    Ok(state.transcription())
}

/// A chunk under this share of the clip's loud level is a pause (files only).
const QUIET_SHARE: f32 = 0.1;

/// The clip's loud level: the 95th percentile of its 20 ms levels.
fn loud_level(pcm: &[f32]) -> f32 {
    let mut levels: Vec<f32> = pcm.chunks(samples(20)).map(crate::audio::rms).collect();
    levels.sort_by(f32::total_cmp);
    levels.get(levels.len() * 95 / 100).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg(streams: bool) -> StreamConfig {
        StreamConfig {
            pass_every_ms: 1_000,
            first_pass_ms: 1_000,
            lid_ms: 1_500,
            max_window_ms: 8_000,
            pad_ms: 200,
            streams,
            pass_threads: 2,
        }
    }

    fn result(text: &str) -> Transcription {
        Transcription {
            text: text.into(),
            language: "hi".into(),
            language_prob: 0.97,
            candidates: vec![("hi".into(), 0.97)],
            held: false,
            audio_s: 0.0,
            elapsed_s: 0.1,
        }
    }

    /// A session that already speaks Hindi (its first pass needs no language detection).
    fn hint() -> LanguageHint {
        LanguageHint::Prefer {
            allowed: vec!["hi".into(), "en".into()],
            current: "hi".into(),
            pending: None,
            switch_prob: 0.8,
        }
    }

    /// The text a pass would return for `plan`: prefix, then `continuation`.
    fn continue_with(plan: &PassPlan, continuation: &str) -> Transcription {
        result(&format!("{} {continuation}", plan.prefix))
    }

    #[test]
    fn cadence_first_pass_and_pause() {
        let mut s = StreamState::new(cfg(true), hint());
        s.push(&vec![0.1; 8_000], 0);
        assert!(s.plan(false).is_none(), "no pass before 1 s of audio");
        s.push(&vec![0.1; 8_000], 0);
        let p = s.plan(false).expect("a pass at 1 s");
        assert_eq!(p.kind, PassKind::Cadence);
        assert_eq!(p.hint, hint());
        s.apply(&p, continue_with(&p, "मेरा नाम"));
        assert!(s.plan(false).is_none(), "nothing new since the pass");
        assert!(s.is_current());
        s.push(&vec![0.0; 3_200], 3_200);
        let p = s.plan(false).expect("a pass at the pause");
        assert_eq!(p.kind, PassKind::Pause);
        assert_eq!(p.end, 19_200);
        s.apply(&p, continue_with(&p, "मेरा नाम राम है"));
        // The two passes agree on two words; the language is settled (1.2 s < 1.5 s: no).
        assert_eq!(s.committed_text(), "मेरा नाम");
        assert_eq!(s.text(), "मेरा नाम राम है");
        // Longer silence is not decoded again: the pause pass is the transcript.
        s.push(&vec![0.0; 8_000], 11_200);
        assert!(s.is_current());
        assert!(s.plan(true).is_none());
        assert!(s.plan(false).is_none());
    }

    #[test]
    fn speech_in_another_language_stops_the_hold() {
        let mut s = StreamState::new(cfg(true), hint());
        // Hindi, but not sure enough to settle the language.
        let unsure = |plan: &PassPlan, words: &str| Transcription {
            language_prob: 0.7,
            ..continue_with(plan, words)
        };
        s.push(&vec![0.1; 16_000], 0);
        let p = s.plan(false).unwrap();
        s.apply(&p, unsure(&p, "मेरा नाम"));
        s.push(&vec![0.1; 16_000], 0);
        let p = s.plan(false).unwrap();
        assert_eq!((p.hint.clone(), p.prefix.as_str()), (hint(), ""));
        s.apply(&p, unsure(&p, "मेरा घर"));
        assert_eq!(s.committed_text(), "मेरा");
        // The recogniser heard English although Hindi was held: it decoded without the
        // Hindi prefix, and the stream detects freely from now on.
        s.push(&vec![0.1; 16_000], 0);
        let p = s.plan(false).unwrap();
        assert_eq!(p.prefix, "मेरा");
        let english = Transcription {
            language: "en".into(),
            language_prob: 0.6,
            ..result("my name is")
        };
        s.apply(&p, english);
        assert_eq!(
            s.text(),
            "my name is",
            "every word of the switched pass counts"
        );
        s.push(&vec![0.1; 16_000], 0);
        let p = s.plan(false).unwrap();
        assert_eq!(
            p.hint,
            LanguageHint::DetectAmong(vec!["hi".into(), "en".into()])
        );
    }

    #[test]
    fn an_agreed_pause_leaves_the_window_and_becomes_the_prompt() {
        let mut s = StreamState::new(cfg(true), hint());
        s.push(&vec![0.1; 24_000], 0);
        let p = s.plan(false).unwrap();
        s.apply(&p, continue_with(&p, "one two three"));
        s.push(&vec![0.0; 3_200], 3_200);
        let pause = s.plan(false).unwrap();
        assert_eq!(pause.kind, PassKind::Pause);
        s.apply(&pause, continue_with(&pause, "one two three four"));
        assert_eq!(s.committed_text(), "one two three");
        // Speech resumes: the next pass agrees with every word before the pause.
        s.push(&vec![0.1; 16_000], 0);
        let p = s.plan(false).unwrap();
        assert_eq!(p.prefix, "one two three");
        s.apply(&p, continue_with(&p, "four five"));
        // Cut in the middle of the 200 ms pause heard.
        assert_eq!(s.trimmed, 25_600);
        assert_eq!(s.context, ["one", "two", "three", "four"]);
        assert_eq!(s.text(), "one two three four five");
        let p = {
            s.push(&vec![0.1; 16_000], 0);
            s.plan(false).unwrap()
        };
        assert_eq!(p.context, "one two three four");
        assert_eq!(p.prefix, "");
        assert_eq!(p.pcm.len(), 33_600, "the window starts in the pause");
        assert_eq!(p.hint, LanguageHint::Fixed("hi".into()), "language held");
    }

    #[test]
    fn a_pause_pass_starts_early_with_its_padding_filled_in() {
        let mut s = StreamState::new(cfg(true), hint());
        s.push(&vec![0.1; 24_000], 0);
        let p = s.plan(false).unwrap();
        s.apply(&p, continue_with(&p, "ek do"));
        // 100 ms into a pause: the pass covers the speech and the 200 ms of padding.
        s.push(&vec![0.0; 1_600], 1_600);
        let p = s.plan(false).expect("a pause pass");
        assert_eq!(
            (p.kind, p.end, p.pcm.len()),
            (PassKind::Pause, 27_200, 27_200)
        );
        assert!(p.pcm[25_600..].iter().all(|&x| x == 0.0));
        s.apply(&p, continue_with(&p, "ek do teen"));
        assert!(!s.is_current(), "the padding is not heard yet");
        s.push(&vec![0.0; 3_200], 4_800);
        assert!(s.is_current(), "the end of the turn finds the pass done");
        assert!(s.plan(true).is_none());
    }

    #[test]
    fn a_disagreeing_pass_does_not_cut() {
        let mut s = StreamState::new(cfg(true), hint());
        s.push(&vec![0.1; 24_000], 0);
        let p = s.plan(false).unwrap();
        s.apply(&p, continue_with(&p, "one two"));
        s.push(&vec![0.0; 3_200], 3_200);
        let p = s.plan(false).unwrap();
        s.apply(&p, continue_with(&p, "one too"));
        s.push(&vec![0.1; 16_000], 0);
        let p = s.plan(false).unwrap();
        s.apply(&p, continue_with(&p, "won too three"));
        assert_eq!(s.trimmed, 0);
        assert_eq!(s.committed_text(), "one");
    }

    #[test]
    fn a_long_window_without_pauses_is_cut_at_its_quietest_point() {
        let mut s = StreamState::new(cfg(true), hint());
        let mut audio = vec![0.2f32; 16_000 * 9];
        audio[16_000 * 4..16_000 * 4 + 320].fill(0.001);
        s.push(&audio, 0);
        let p = s.plan(false).unwrap();
        assert_eq!(p.kind, PassKind::Cut);
        assert_eq!(p.end, 16_000 * 4 + 160);
        s.apply(&p, continue_with(&p, "a b c"));
        let p = s.plan(false).unwrap();
        assert_eq!(p.kind, PassKind::Cadence);
        s.apply(&p, continue_with(&p, "a b c d"));
        assert_eq!(s.trimmed, 16_000 * 4 + 160);
        assert_eq!(s.text(), "a b c d");
    }

    #[test]
    fn non_streaming_recognisers_redecode_everything() {
        let mut s = StreamState::new(cfg(false), hint());
        s.push(&vec![0.1; 16_000 * 9], 0);
        let p = s.plan(false).unwrap();
        assert_eq!((p.kind, p.pcm.len()), (PassKind::Cadence, 16_000 * 9));
        s.apply(&p, result("hello there"));
        s.push(&vec![0.1; 16_000], 0);
        let p = s.plan(false).unwrap();
        assert!(p.prefix.is_empty() && p.context.is_empty());
        s.apply(&p, result("hello there friend"));
        assert_eq!(s.committed_text(), "hello there");
        assert_eq!(s.text(), "hello there friend");
        assert_eq!(s.trimmed, 0);
    }

    #[test]
    fn a_first_turn_waits_for_enough_speech_to_detect_its_language() {
        let detect = LanguageHint::DetectAmong(vec!["hi".into(), "en".into()]);
        let mut s = StreamState::new(cfg(true), detect.clone());
        s.push(&vec![0.1; 16_000], 0);
        assert!(s.plan(false).is_none());
        s.push(&vec![0.1; 8_000], 0);
        assert_eq!(s.plan(false).unwrap().hint, detect);
    }

    #[test]
    fn a_fixed_language_is_never_detected() {
        let s = {
            let mut s = StreamState::new(cfg(true), LanguageHint::Fixed("te".into()));
            s.push(&vec![0.1; 16_000], 0);
            s
        };
        assert_eq!(s.plan(true).unwrap().hint, LanguageHint::Fixed("te".into()));
        assert_eq!(s.language().unwrap().code, "te");
    }

    /// A recogniser that hears the first `n` words of a sentence in `n` half-seconds, with
    /// noise on the last word (what a real one does at the window's edge).
    struct Growing(Vec<&'static str>);
    impl Asr for Growing {
        fn transcribe(
            &self,
            pcm: &[f32],
            _: &LanguageHint,
            _: &CancellationToken,
        ) -> Result<Transcription, AsrError> {
            let n = (pcm.len() / 8_000).min(self.0.len());
            let mut words: Vec<String> = self.0[..n].iter().map(|w| w.to_string()).collect();
            if let Some(last) = words.last_mut() {
                if pcm.len() % 8_000 < 4_000 {
                    last.push('~');
                }
            }
            Ok(result(&words.join(" ")))
        }
    }

    #[test]
    fn a_file_streams_to_the_same_words_as_a_whole_decode() {
        let asr = Growing(vec!["the", "quick", "brown", "fox", "jumps"]);
        let mut pcm = vec![0.3f32; 8_000 * 5 + 1_000];
        pcm.extend(vec![0.0f32; 16_000]);
        let mut partials = Vec::new();
        let t = stream_file(
            &asr,
            cfg(false),
            &pcm,
            hint(),
            20,
            &CancellationToken::new(),
            |at, s| partials.push((at, s.text())),
        )
        .unwrap();
        assert_eq!(t.text, "the quick brown fox jumps");
        assert!(partials.len() >= 2, "{partials:?}");
        assert!(partials.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    proptest! {
        /// Whatever the passes say, committed words only grow within a stream, and the same
        /// passes over the same audio commit the same words.
        #[test]
        fn committed_words_only_grow(
            passes in proptest::collection::vec(
                proptest::collection::vec(0usize..4, 0..8), 1..12),
            pauses in proptest::collection::vec(any::<bool>(), 12),
        ) {
            let vocab = ["ek", "do", "teen", "char"];
            let run = || {
                let mut s = StreamState::new(cfg(true), hint());
                let mut history = Vec::new();
                for (i, words) in passes.iter().enumerate() {
                    let pause = pauses[i % pauses.len()];
                    s.push(&vec![0.1; 16_000], 0);
                    if pause {
                        s.push(&vec![0.0; 4_000], 4_000);
                    }
                    let Some(plan) = s.plan(false) else { continue };
                    let text: Vec<&str> = words.iter().map(|&w| vocab[w]).collect();
                    let t = continue_with(&plan, &text.join(" "));
                    s.apply(&plan, t);
                    history.push(s.committed_text());
                }
                history
            };
            let history = run();
            for w in history.windows(2) {
                prop_assert!(w[1].starts_with(&w[0]), "{:?} then {:?}", w[0], w[1]);
            }
            prop_assert_eq!(history, run());
        }
    }
}
