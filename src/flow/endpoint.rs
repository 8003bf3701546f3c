//! Endpointing: speech probabilities per frame in, utterances out — when speech is confirmed,
//! where a short pause lets a reply start speculatively, where an utterance ends (silence,
//! length cap, end of input), with its pre-roll and padding. Pure and model-independent (unit
//! tested with scripted probabilities); the VAD stage runs it on the detector's output, and the
//! hot-path benchmarks time it.

use std::collections::VecDeque;

use crate::audio::PIPELINE_RATE;
use crate::config::VadConfig;

/// What one frame did to the endpointer.
#[derive(Debug, PartialEq)]
pub enum Endpoint {
    /// Speech confirmed (lasted `min_speech_ms`).
    SpeechStarted,
    /// An utterance ended (silence, length cap, or end of input), with its audio.
    Utterance(Vec<f32>),
    /// A short pause (`pause_ms`) in confirmed speech, with the audio so far: a reply may start
    /// speculatively.
    Pause(Vec<f32>),
    /// Speech went on after a [`Endpoint::Pause`].
    Resumed,
}

/// Probability → utterance state machine, independent of the model (unit-tested with scripted
/// probabilities).
pub struct Endpointer {
    cfg: VadConfig,
    frame: usize,
    /// Pre-roll kept while silent (speech_pad_ms).
    preroll: VecDeque<f32>,
    preroll_max: usize,
    utterance: Vec<f32>,
    /// Frames of speech seen since the candidate started.
    speech_frames: usize,
    /// Consecutive non-speech frames at the tail of `utterance`.
    silence_frames: usize,
    confirmed: bool,
    in_speech: bool,
    /// Silence frames that make a [`Endpoint::Pause`]; 0 = never.
    pause_frames: usize,
    paused: bool,
    /// Silence frames that end the utterance in progress, when its words said how long to wait
    /// ([`Endpointer::end_after`]); cleared when speech resumes.
    end_frames: Option<usize>,
}

impl Endpointer {
    pub fn new(cfg: VadConfig, frame: usize) -> Self {
        let preroll_max = ms_to_samples(cfg.speech_pad_ms);
        Self {
            cfg,
            frame,
            preroll: VecDeque::with_capacity(preroll_max + frame),
            preroll_max,
            utterance: Vec::new(),
            speech_frames: 0,
            silence_frames: 0,
            confirmed: false,
            in_speech: false,
            pause_frames: 0,
            paused: false,
            end_frames: None,
        }
    }

    /// Also report pauses of `ms` in confirmed speech (0 = off).
    pub fn with_pause(mut self, ms: u32) -> Self {
        self.pause_frames = if ms == 0 { 0 } else { self.frames_for(ms) };
        self
    }

    /// Voiced time of the utterance in progress (frames above the threshold; 0 when silent).
    pub fn speech_ms(&self) -> u32 {
        if !self.in_speech {
            return 0;
        }
        (self.speech_frames as u64 * self.frame as u64 * 1000 / u64::from(PIPELINE_RATE)) as u32
    }

    /// For the utterance in progress, from its words so far: it ends after `ms` of silence
    /// instead of `min_silence_ms` (until speech resumes). Ignored outside confirmed speech.
    pub fn end_after(&mut self, ms: u32) {
        if self.in_confirmed_speech() {
            self.end_frames = Some(self.frames_for(ms));
        }
    }

    fn frames_for(&self, ms: u32) -> usize {
        (ms_to_samples(ms) / self.frame).max(1)
    }

    pub fn push(&mut self, frame: &[f32], prob: f32) -> Option<Endpoint> {
        if !self.in_speech {
            if prob >= self.cfg.threshold {
                self.in_speech = true;
                self.utterance.clear();
                self.utterance.extend(self.preroll.drain(..));
                self.utterance.extend_from_slice(frame);
                self.speech_frames = 1;
                self.silence_frames = 0;
                self.confirmed = false;
                return self.confirm_if_long_enough();
            }
            self.preroll.extend(frame.iter().copied());
            while self.preroll.len() > self.preroll_max {
                self.preroll.pop_front();
            }
            return None;
        }

        self.utterance.extend_from_slice(frame);
        let mut resumed = false;
        if prob < self.cfg.neg_threshold {
            self.silence_frames += 1;
        } else {
            self.silence_frames = 0;
            if prob >= self.cfg.threshold {
                self.speech_frames += 1;
                resumed = std::mem::take(&mut self.paused);
                self.end_frames = None;
            }
        }
        if !self.confirmed {
            // A candidate that falls silent before min_speech is noise: forget it.
            if self.silence_frames >= self.frames_for(self.cfg.min_silence_ms) {
                self.reset_to_silence();
                return None;
            }
            return self.confirm_if_long_enough();
        }
        let end = self
            .end_frames
            .unwrap_or_else(|| self.frames_for(self.cfg.min_silence_ms));
        if self.silence_frames >= end {
            return Some(Endpoint::Utterance(self.take_utterance()));
        }
        if self.utterance.len() >= ms_to_samples(self.cfg.max_utterance_ms) {
            return Some(Endpoint::Utterance(self.take_utterance()));
        }
        if resumed {
            return Some(Endpoint::Resumed);
        }
        if self.pause_frames > 0 && !self.paused && self.silence_frames == self.pause_frames {
            self.paused = true;
            return Some(Endpoint::Pause(self.trimmed_copy()));
        }
        None
    }

    /// The utterance so far without trailing silence beyond the padding.
    fn trimmed_copy(&self) -> Vec<f32> {
        let trailing = self.silence_frames * self.frame;
        let cut = trailing - self.preroll_max.min(trailing);
        self.utterance[..self.utterance.len().saturating_sub(cut)].to_vec()
    }

    fn confirm_if_long_enough(&mut self) -> Option<Endpoint> {
        if !self.confirmed && self.speech_frames >= self.frames_for(self.cfg.min_speech_ms) {
            self.confirmed = true;
            return Some(Endpoint::SpeechStarted);
        }
        None
    }

    /// End of input: a confirmed utterance in progress is complete.
    pub fn finish(&mut self) -> Option<Vec<f32>> {
        let out = (self.in_speech && self.confirmed).then(|| self.take_utterance());
        self.reset_to_silence();
        out
    }

    pub fn in_confirmed_speech(&self) -> bool {
        self.in_speech && self.confirmed
    }

    /// The audio of the confirmed utterance in progress (empty otherwise).
    pub fn utterance(&self) -> &[f32] {
        if self.in_confirmed_speech() {
            &self.utterance
        } else {
            &[]
        }
    }

    /// Non-speech samples at the end of the utterance in progress.
    pub fn trailing_silence(&self) -> usize {
        self.silence_frames * self.frame
    }

    /// Cuts trailing silence beyond the padding and returns the utterance.
    fn take_utterance(&mut self) -> Vec<f32> {
        let trailing = self.silence_frames * self.frame;
        let keep_tail = self.preroll_max.min(trailing);
        let cut = trailing - keep_tail;
        let len = self.utterance.len().saturating_sub(cut);
        let mut utt = std::mem::take(&mut self.utterance);
        utt.truncate(len);
        self.reset_to_silence();
        utt
    }

    fn reset_to_silence(&mut self) {
        self.paused = false;
        self.end_frames = None;
        self.in_speech = false;
        self.confirmed = false;
        self.speech_frames = 0;
        self.silence_frames = 0;
        self.utterance.clear();
        self.preroll.clear();
    }
}

fn ms_to_samples(ms: u32) -> usize {
    (u64::from(ms) * u64::from(PIPELINE_RATE) / 1000) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> VadConfig {
        VadConfig {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech_ms: 96,
            min_silence_ms: 320,
            speech_pad_ms: 64,
            max_utterance_ms: 2_000,
        }
    }

    /// Feeds a script of probabilities (one 32 ms frame each) and collects events.
    fn run_script(probs: &[f32]) -> (Vec<Endpoint>, Endpointer) {
        let mut ep = Endpointer::new(cfg(), 512);
        let mut evs = Vec::new();
        for (i, &p) in probs.iter().enumerate() {
            let frame = vec![i as f32; 512];
            evs.extend(ep.push(&frame, p));
        }
        (evs, ep)
    }

    #[test]
    fn speech_then_silence_makes_one_padded_utterance() {
        let mut probs = vec![0.0; 5];
        probs.extend([0.9; 10]);
        probs.extend([0.1; 12]);
        let (evs, _) = run_script(&probs);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0], Endpoint::SpeechStarted);
        let Endpoint::Utterance(u) = &evs[1] else {
            panic!()
        };
        // 2 frames pre-roll (64 ms) + 10 speech + 2 frames of trailing pad.
        assert_eq!(u.len(), (2 + 10 + 2) * 512);
        assert_eq!(u[0], 3.0, "pre-roll starts two frames before speech");
    }

    /// Frames of silence after 10 frames of speech until the utterance ends, with `end_after`
    /// called once `told_at` frames of silence have passed.
    fn silence_until_end(end_after_ms: Option<u32>, told_at: usize) -> Option<usize> {
        let mut ep = Endpointer::new(cfg(), 512);
        for _ in 0..10 {
            ep.push(&[0.0; 512], 0.9);
        }
        for n in 1..=40 {
            if n == told_at + 1 {
                if let Some(ms) = end_after_ms {
                    ep.end_after(ms);
                }
            }
            if let Some(Endpoint::Utterance(_)) = ep.push(&[0.0; 512], 0.1) {
                return Some(n);
            }
        }
        None
    }

    #[test]
    fn the_words_so_far_shorten_or_lengthen_the_end_of_the_turn() {
        // min_silence 320 ms = 10 frames of 32 ms.
        assert_eq!(silence_until_end(None, 0), Some(10));
        // A finished question: 160 ms once known (told after 3 frames of silence) …
        assert_eq!(silence_until_end(Some(160), 3), Some(5));
        // … or at once if the silence is already longer when it becomes known.
        assert_eq!(silence_until_end(Some(160), 7), Some(8));
        // An unfinished one waits 640 ms.
        assert_eq!(silence_until_end(Some(640), 3), Some(20));
        // Speech that resumes clears it: the next pause waits the usual time again.
        let mut ep = Endpointer::new(cfg(), 512);
        for _ in 0..10 {
            ep.push(&[0.0; 512], 0.9);
        }
        ep.push(&[0.0; 512], 0.1);
        ep.end_after(64);
        ep.push(&[0.0; 512], 0.9);
        let ended =
            (1..=40).find(|_| matches!(ep.push(&[0.0; 512], 0.1), Some(Endpoint::Utterance(_))));
        assert_eq!(ended, Some(10));
        // Outside speech it is ignored.
        let mut idle = Endpointer::new(cfg(), 512);
        idle.end_after(64);
        assert_eq!(idle.end_frames, None);
    }

    #[test]
    fn blips_shorter_than_min_speech_are_ignored() {
        let mut probs = vec![0.9, 0.9];
        probs.extend([0.0; 20]);
        let (evs, mut ep) = run_script(&probs);
        assert!(evs.is_empty());
        assert!(ep.finish().is_none());
    }

    #[test]
    fn pauses_shorter_than_min_silence_do_not_split() {
        let mut probs = vec![0.9; 6];
        probs.extend([0.1; 5]);
        probs.extend([0.9; 6]);
        probs.extend([0.1; 12]);
        let (evs, _) = run_script(&probs);
        let utts = evs
            .iter()
            .filter(|e| matches!(e, Endpoint::Utterance(_)))
            .count();
        assert_eq!(utts, 1);
    }

    #[test]
    fn long_speech_is_cut_at_max_length_and_end_of_input_flushes() {
        let probs = vec![0.9; 100];
        let (evs, mut ep) = run_script(&probs);
        let cuts: Vec<usize> = evs
            .iter()
            .filter_map(|e| match e {
                Endpoint::Utterance(u) => Some(u.len()),
                _ => None,
            })
            .collect();
        assert!(!cuts.is_empty());
        assert!(cuts.iter().all(|&n| n <= 32_000 + 512));
        // The rest is still in progress: end of input hands it out if it was confirmed.
        let rest = ep.finish();
        assert!(rest.is_some() || ep.in_confirmed_speech());
    }
}
