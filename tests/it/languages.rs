//! Languages on scripted fake backends with paused time: the session's language holds through
//! one doubtful turn and switches on the second (every decision an event and a metric), a
//! Hinglish turn asks the LLM for the same register, and mixed-script reply text reaches the
//! voices run by run, normalised for speech.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fakes::{backends_with_voices, speak};
use vaak::backend::asr::LanguageHint;
use vaak::backend::fake::{ScriptedAsr, ScriptedLlm, ToneBank};
use vaak::backend::llm::{ChatMessage, Role};
use vaak::conversation::{example_exchange, mixed_example_exchange};
use vaak::flow::{PipelineEvent, SessionSettings};
use vaak::metrics::Metrics;
use vaak::pipeline;

/// The user line of the last greeting cue in `messages` (the register replies are shown in).
fn cue_in_force(messages: &[ChatMessage]) -> Option<&str> {
    let langs = [
        "en", "hi", "te", "ta", "bn", "mr", "gu", "kn", "ml", "pa", "ur", "or",
    ];
    let cues: Vec<&str> = langs
        .iter()
        .filter_map(|l| example_exchange(l))
        .chain(mixed_example_exchange("hi"))
        .map(|(user, _)| user)
        .collect();
    messages
        .iter()
        .rev()
        .filter(|m| m.role == Role::User)
        .find_map(|m| cues.iter().copied().find(|c| *c == m.content))
}

/// Runs `turns` spoken turns (600 ms of speech each) through a pipeline; returns its events.
async fn converse(
    llm: Arc<ScriptedLlm>,
    asr: Arc<ScriptedAsr>,
    voices: Arc<ToneBank>,
    settings: SessionSettings,
    metrics: Arc<Metrics>,
    turns: usize,
) -> Vec<PipelineEvent> {
    converse_speaking(llm, asr, voices, settings, metrics, turns, 600).await
}

/// [`converse`] with `speech_ms` of speech per turn.
async fn converse_speaking(
    llm: Arc<ScriptedLlm>,
    asr: Arc<ScriptedAsr>,
    voices: Arc<ToneBank>,
    settings: SessionSettings,
    metrics: Arc<Metrics>,
    turns: usize,
    speech_ms: u32,
) -> Vec<PipelineEvent> {
    let tracker = TaskTracker::new();
    let mut p = pipeline::spawn(
        backends_with_voices(llm, asr, voices),
        settings,
        100,
        metrics,
        &tracker,
        CancellationToken::new(),
    );
    let input = p.input.clone();
    drop(p.input);
    let feeder = tokio::spawn(async move {
        for _ in 0..turns {
            speak(&input, speech_ms, 800).await;
            // Long enough for the scripted reply to finish before the next turn.
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    let mut events = Vec::new();
    while let Some(e) = p.events.recv().await {
        events.push(e);
    }
    feeder.await.expect("feeder");
    tracker.close();
    tracker.wait().await;
    events
}

fn languages() -> Vec<String> {
    vec!["en".into(), "hi".into(), "te".into()]
}

#[tokio::test(start_paused = true)]
async fn one_doubtful_turn_holds_the_language_two_switch_it() {
    let llm = Arc::new(ScriptedLlm::new(
        "Sure.",
        Duration::from_millis(50),
        Duration::from_millis(10),
    ));
    let asr = Arc::new(ScriptedAsr::with_probs(&[
        ("what time is it", "en", 0.95),
        // Detection leans Hindi, but not surely: the session stays in English…
        ("okay tell me", "hi", 0.55),
        // …until Hindi comes a second time in a row.
        ("aur kuch batao", "hi", 0.6),
    ]));
    let metrics = Arc::new(Metrics::default());
    let events = converse(
        llm.clone(),
        asr.clone(),
        Arc::new(ToneBank::default()),
        SessionSettings::new("lid", languages()),
        metrics.clone(),
        3,
    )
    .await;

    let decisions: Vec<(&str, &str, &str)> = events
        .iter()
        .filter_map(|e| match e {
            PipelineEvent::LanguageDecided {
                language,
                detected,
                reason,
                ..
            } => Some((language.as_str(), detected.as_str(), *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("en", "en", "first"),
            ("en", "hi", "held"),
            ("hi", "hi", "repeated")
        ]
    );
    let changes: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            PipelineEvent::LanguageChanged { from, to, .. } => Some((from.clone(), to.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(changes, [("en".to_string(), "hi".to_string())]);
    // The decoder was told to keep English on the second turn, and not to on the third.
    let seen = asr.seen.lock().unwrap().clone();
    assert_eq!(seen[0], LanguageHint::DetectAmong(languages()));
    assert!(
        matches!(&seen[1], LanguageHint::Prefer { current, pending: None, .. } if current == "en"),
        "{:?}",
        seen[1]
    );
    assert!(
        matches!(&seen[2], LanguageHint::Prefer { current, pending: Some(p), .. } if current == "en" && p == "hi"),
        "{:?}",
        seen[2]
    );
    // Replies: English, English (held), Hindi — romanised, so Hinglish — shown by the greeting
    // in force at each turn, after one system prompt that is the same for every turn.
    let requests = llm.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    let cues: Vec<Option<&str>> = requests.iter().map(|r| cue_in_force(&r.messages)).collect();
    // (English needs no greeting at the start of a conversation.)
    let hinglish = mixed_example_exchange("hi").unwrap().0;
    assert_eq!(cues, [None, None, Some(hinglish)]);
    assert!(requests
        .iter()
        .all(|r| r.messages[0] == requests[0].messages[0]));
    // Each turn's prompt extends the last one, so the worker's KV cache keeps it all.
    for pair in requests.windows(2) {
        let (a, b) = (&pair[0].messages, &pair[1].messages);
        assert_eq!(&b[..a.len()], &a[..], "turn prompts diverge");
    }
    assert_eq!(metrics.language_holds.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.language_switches.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn a_preferred_language_settles_an_unsure_first_turn() {
    let llm = Arc::new(ScriptedLlm::new(
        "సరే.",
        Duration::from_millis(50),
        Duration::from_millis(10),
    ));
    let asr = Arc::new(ScriptedAsr::with_probs(&[("ok", "en", 0.5)]));
    let settings = SessionSettings {
        preferred_language: Some("te".into()),
        ..SessionSettings::new("pref", languages())
    };
    let events = converse(
        llm,
        asr.clone(),
        Arc::new(ToneBank::default()),
        settings,
        Arc::new(Metrics::default()),
        1,
    )
    .await;
    let decided = events.iter().find_map(|e| match e {
        PipelineEvent::LanguageDecided {
            language, reason, ..
        } => Some((language.clone(), *reason)),
        _ => None,
    });
    // The decoder held Telugu (the preference) against an unsure English detection.
    assert_eq!(decided, Some(("te".to_string(), "held")));
    assert!(matches!(
        &asr.seen.lock().unwrap()[0],
        LanguageHint::Prefer { current, .. } if current == "te"
    ));
}

#[tokio::test(start_paused = true)]
async fn hinglish_gets_a_hinglish_reply_spoken_run_by_run() {
    let llm = Arc::new(ScriptedLlm::new(
        "आपकी meeting कल 3:30 बजे है, ₹500 की booking भी।",
        Duration::from_millis(50),
        Duration::from_millis(10),
    ));
    let asr = Arc::new(ScriptedAsr::new(&[("kal meri meeting kab hai", "hi")]));
    let voices = Arc::new(ToneBank::default());
    let metrics = Arc::new(Metrics::default());
    let events = converse(
        llm.clone(),
        asr,
        voices.clone(),
        SessionSettings::new("hinglish", languages()),
        metrics.clone(),
        1,
    )
    .await;
    let mixed = events.iter().find_map(|e| match e {
        PipelineEvent::LanguageDecided {
            language,
            mixed_with_english,
            ..
        } => Some((language.clone(), *mixed_with_english)),
        _ => None,
    });
    assert_eq!(mixed, Some(("hi".to_string(), true)));
    assert_eq!(metrics.code_switched_turns.load(Ordering::Relaxed), 1);
    {
        // The greeting just before the user's words is the Hinglish one.
        let req = &llm.requests.lock().unwrap()[0];
        let hinglish = mixed_example_exchange("hi").unwrap();
        assert_eq!(cue_in_force(&req.messages), Some(hinglish.0));
        let n = req.messages.len();
        assert_eq!(req.messages[n - 2].content, hinglish.1);
        assert_eq!(req.messages[n - 1].content, "kal meri meeting kab hai");
    }
    // Captions keep the written text; the voices got words, English words the English voice.
    let captions = captions(&events);
    assert!(
        captions.contains("3:30") && captions.contains("₹500"),
        "{captions}"
    );
    let spoken = voices.spoken.lock().unwrap().clone();
    let english: Vec<&str> = spoken
        .iter()
        .filter(|(l, _)| l == "en")
        .map(|(_, t)| t.trim())
        .collect();
    assert_eq!(english, ["meeting", "booking"], "{spoken:?}");
    let hindi: String = spoken
        .iter()
        .filter(|(l, _)| l == "hi")
        .map(|(_, t)| t.as_str())
        .collect();
    // "3:30 बजे" is read once: the reading already says बजकर … मिनट.
    assert!(hindi.contains("तीन बजकर तीस मिनट है"), "{hindi}");
    assert!(hindi.contains("पाँच सौ रुपए"), "{hindi}");
    assert!(!hindi.chars().any(|c| c.is_ascii_digit()), "{hindi}");
    let completed = events.iter().find_map(|e| match e {
        PipelineEvent::TurnCompleted { voice, .. } => Some(voice.clone()),
        _ => None,
    });
    assert!(
        completed
            .as_deref()
            .is_some_and(|v| v.contains("fake:tone:en")),
        "{completed:?}"
    );
}

/// The reply text the session's events carried (captions), joined.
fn captions(events: &[PipelineEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            PipelineEvent::ReplyText { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(start_paused = true)]
async fn a_reply_in_the_wrong_script_is_asked_again_then_replaced_before_anyone_hears_it() {
    // The model answers a Hindi question in English, twice.
    let llm = Arc::new(ScriptedLlm::new(
        "The capital of India is New Delhi.",
        Duration::from_millis(50),
        Duration::from_millis(10),
    ));
    let asr = Arc::new(ScriptedAsr::new(&[("भारत की राजधानी क्या है", "hi")]));
    let voices = Arc::new(ToneBank::default());
    let metrics = Arc::new(Metrics::default());
    let events = converse(
        llm.clone(),
        asr,
        voices.clone(),
        SessionSettings::new("wrong-script", languages()),
        metrics.clone(),
        1,
    )
    .await;
    let fallback = vaak::text::phrases::cannot_answer("hi");
    assert_eq!(captions(&events), fallback);
    let spoken = voices.spoken.lock().unwrap().clone();
    assert!(
        spoken
            .iter()
            .all(|(l, t)| l == "hi" && !t.contains("capital")),
        "{spoken:?}"
    );
    // Asked twice: the second time with the reminder at the end of the user's message.
    let requests = llm.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let last = &requests[1].messages.last().expect("user message").content;
    assert!(last.starts_with("भारत की राजधानी क्या है"), "{last}");
    assert!(last.contains("Devanagari"), "{last}");
    assert_eq!(metrics.replies_regenerated.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.replies_fallback.load(Ordering::Relaxed), 1);
    assert_eq!(
        metrics.reply_clauses_wrong_script.load(Ordering::Relaxed),
        2
    );
    assert_eq!(metrics.turns_completed.load(Ordering::Relaxed), 1);
    assert!(metrics
        .render_prometheus()
        .contains("vaak_replies_fallback_total 1"));
}

#[tokio::test(start_paused = true)]
async fn a_recogniser_loop_gets_please_say_that_again_not_an_answer() {
    let llm = Arc::new(ScriptedLlm::new(
        "धन्यवाद।",
        Duration::from_millis(50),
        Duration::from_millis(10),
    ));
    let asr = Arc::new(ScriptedAsr::new(&[(
        "धन्यवाद धन्यवाद धन्यवाद धन्यवाद धन्यवाद",
        "hi",
    )]));
    let metrics = Arc::new(Metrics::default());
    let events = converse(
        llm.clone(),
        asr,
        Arc::new(ToneBank::default()),
        SessionSettings::new("loop", languages()),
        metrics.clone(),
        1,
    )
    .await;
    assert_eq!(captions(&events), vaak::text::phrases::say_again("hi"));
    assert!(
        llm.requests.lock().unwrap().is_empty(),
        "the model was asked"
    );
    assert_eq!(metrics.turns_unclear.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.turns_completed.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn speech_with_no_word_made_out_gets_please_say_that_again_a_cough_gets_nothing() {
    let llm = Arc::new(ScriptedLlm::new(
        "धन्यवाद।",
        Duration::from_millis(50),
        Duration::from_millis(10),
    ));
    // A second and a half of speech the recogniser hears as music only.
    let asr = Arc::new(ScriptedAsr::new(&[("[संगीत]", "hi")]));
    let metrics = Arc::new(Metrics::default());
    let events = converse_speaking(
        llm.clone(),
        asr,
        Arc::new(ToneBank::default()),
        SessionSettings::new("unheard", languages()),
        metrics.clone(),
        1,
        1_500,
    )
    .await;
    assert_eq!(captions(&events), vaak::text::phrases::say_again("hi"));
    assert!(
        llm.requests.lock().unwrap().is_empty(),
        "the model was asked"
    );
    assert_eq!(metrics.turns_unclear.load(Ordering::Relaxed), 1);
    // A short burst with nothing in it passes in silence, as before (the turn fails quietly).
    let asr = Arc::new(ScriptedAsr::new(&[("[खाँसी]", "hi")]));
    let metrics = Arc::new(Metrics::default());
    let events = converse_speaking(
        llm.clone(),
        asr,
        Arc::new(ToneBank::default()),
        SessionSettings::new("cough", languages()),
        metrics.clone(),
        1,
        400,
    )
    .await;
    assert_eq!(captions(&events), "");
    assert_eq!(metrics.turns_unclear.load(Ordering::Relaxed), 0);
}
