//! The session's language, with hysteresis: one doubtful utterance (a short "ok", a clip the
//! acoustic model mistakes for a neighbouring language) does not switch the conversation, but a
//! confident one, a transcript in another script, or two doubtful ones in a row do. The ASR stage
//! asks it which language to hold while decoding; the language-id stage reports each decision.

use std::sync::Mutex;

use crate::backend::asr::LanguageHint;

/// Why the turn's language is what it is (reported in events and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The first decision of the session.
    First,
    /// Same language as before.
    Same,
    /// A different language, confidently detected (or its script left no doubt).
    Confident,
    /// A different language for the second turn in a row.
    Repeated,
    /// A different language, but not sure enough: the session's language is kept.
    Held,
    /// Not sure enough on the first turn: the session's preferred language was taken.
    Preferred,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::First => "first",
            Reason::Same => "same",
            Reason::Confident => "confident",
            Reason::Repeated => "repeated",
            Reason::Held => "held",
            Reason::Preferred => "preferred",
        }
    }
}

/// One turn's language decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The language to answer in.
    pub language: String,
    /// The language before, when this decision switched it.
    pub switched_from: Option<String>,
    pub reason: Reason,
}

#[derive(Debug, Default)]
struct State {
    current: Option<String>,
    /// A different language seen once, not yet switched to.
    pending: Option<String>,
}

/// The session's language and its switching rule.
#[derive(Debug)]
pub struct LanguageTrack {
    state: Mutex<State>,
    /// A detection at least this sure switches at once.
    switch_confidence: f32,
    /// The user's stated language, used while detection is unsure.
    preferred: Option<String>,
}

impl LanguageTrack {
    pub fn new(switch_confidence: f32, preferred: Option<String>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            switch_confidence,
            preferred,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The language the session is in (after its first turn).
    pub fn current(&self) -> Option<String> {
        self.lock().current.clone()
    }

    /// How the recogniser should choose among `allowed`: detect, but keep decoding in the
    /// session's language unless another is detected with `switch_confidence`.
    pub fn asr_hint(&self, allowed: &[String]) -> LanguageHint {
        if let [one] = allowed {
            return LanguageHint::Fixed(one.clone());
        }
        let s = self.lock();
        let held = s
            .current
            .clone()
            .or_else(|| self.preferred.clone())
            .filter(|l| allowed.contains(l));
        match held {
            Some(current) => LanguageHint::Prefer {
                allowed: allowed.to_vec(),
                current,
                pending: s.pending.clone(),
                switch_prob: self.switch_confidence,
            },
            None => LanguageHint::DetectAmong(allowed.to_vec()),
        }
    }

    /// Decides a turn's language from the detected `candidate` and its `confidence`;
    /// `decisive` says the transcript's script alone names the candidate (Telugu letters).
    pub fn decide(&self, candidate: &str, confidence: f32, decisive: bool) -> Decision {
        let mut s = self.lock();
        let sure = decisive || confidence >= self.switch_confidence;
        let Some(current) = s.current.clone() else {
            let (language, reason) = match &self.preferred {
                Some(p) if !sure && p != candidate => (p.clone(), Reason::Preferred),
                _ => (candidate.to_string(), Reason::First),
            };
            s.current = Some(language.clone());
            return Decision {
                language,
                switched_from: None,
                reason,
            };
        };
        if current == candidate {
            s.pending = None;
            return Decision {
                language: current,
                switched_from: None,
                reason: Reason::Same,
            };
        }
        let reason = if sure {
            Reason::Confident
        } else if s.pending.as_deref() == Some(candidate) {
            Reason::Repeated
        } else {
            s.pending = Some(candidate.to_string());
            return Decision {
                language: current,
                switched_from: None,
                reason: Reason::Held,
            };
        };
        s.pending = None;
        s.current = Some(candidate.to_string());
        Decision {
            language: candidate.to_string(),
            switched_from: Some(current),
            reason,
        }
    }

    /// The recogniser kept the session's language although it heard `detected`: the turn stays
    /// in the current language and `detected` becomes pending (a second time switches).
    pub fn hold(&self, detected: &str) -> Decision {
        let mut s = self.lock();
        let language = s.current.clone().or_else(|| self.preferred.clone());
        let language = language.unwrap_or_else(|| detected.to_string());
        if language != detected {
            s.pending = Some(detected.to_string());
        }
        s.current = Some(language.clone());
        Decision {
            language,
            switched_from: None,
            reason: Reason::Held,
        }
    }

    /// A typed turn or a fixed-language session: the language is given.
    pub fn set(&self, language: &str) -> Option<String> {
        let mut s = self.lock();
        s.pending = None;
        let before = s.current.replace(language.to_string());
        before.filter(|b| b != language)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn langs() -> Vec<String> {
        vec!["hi".into(), "te".into(), "en".into()]
    }

    #[test]
    fn one_doubtful_turn_does_not_switch_two_do() {
        let t = LanguageTrack::new(0.8, None);
        assert_eq!(t.decide("hi", 0.6, false).reason, Reason::First);
        let held = t.decide("en", 0.55, false);
        assert_eq!((held.language.as_str(), held.reason), ("hi", Reason::Held));
        // Back to Hindi: the pending English is forgotten.
        assert_eq!(t.decide("hi", 0.7, false).reason, Reason::Same);
        assert_eq!(t.decide("en", 0.55, false).reason, Reason::Held);
        let switched = t.decide("en", 0.6, false);
        assert_eq!(switched.reason, Reason::Repeated);
        assert_eq!(switched.switched_from.as_deref(), Some("hi"));
        assert_eq!(t.current().as_deref(), Some("en"));
    }

    #[test]
    fn confident_or_decisive_turns_switch_at_once() {
        let t = LanguageTrack::new(0.8, None);
        t.decide("hi", 0.9, false);
        let d = t.decide("te", 0.85, false);
        assert_eq!((d.language.as_str(), d.reason), ("te", Reason::Confident));
        let d = t.decide("hi", 0.3, true);
        assert_eq!((d.language.as_str(), d.reason), ("hi", Reason::Confident));
    }

    #[test]
    fn preference_breaks_an_unsure_first_turn() {
        let t = LanguageTrack::new(0.8, Some("te".into()));
        assert_eq!(
            t.asr_hint(&langs()),
            LanguageHint::Prefer {
                allowed: langs(),
                current: "te".into(),
                pending: None,
                switch_prob: 0.8
            }
        );
        let d = t.decide("hi", 0.5, false);
        assert_eq!((d.language.as_str(), d.reason), ("te", Reason::Preferred));
        let t = LanguageTrack::new(0.8, Some("te".into()));
        assert_eq!(t.decide("hi", 0.95, false).language, "hi");
    }

    #[test]
    fn hints() {
        let t = LanguageTrack::new(0.8, None);
        assert_eq!(
            t.asr_hint(&langs()),
            LanguageHint::DetectAmong(langs()),
            "nothing to hold yet"
        );
        assert_eq!(
            t.asr_hint(&["ta".to_string()]),
            LanguageHint::Fixed("ta".into())
        );
        t.decide("en", 0.9, false);
        assert!(
            matches!(t.asr_hint(&langs()), LanguageHint::Prefer { current, .. } if current == "en")
        );
        // Held once by the recogniser: the next detection of that language is not held.
        assert_eq!(t.hold("te").language, "en");
        let hint = t.asr_hint(&langs());
        assert_eq!(hint.choose("te", 0.5), ("te".to_string(), false));
        assert_eq!(hint.choose("hi", 0.5), ("en".to_string(), true));
        assert_eq!(hint.choose("hi", 0.9), ("hi".to_string(), false));
        assert_eq!(t.set("hi").as_deref(), Some("en"));
        assert_eq!(t.set("hi"), None);
    }
}
