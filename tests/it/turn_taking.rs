//! Turn-taking logic on scripted fake backends with paused time: event order of a turn,
//! barge-in cancelling a reply mid-stream, a failing LLM costing one turn only, and shutdown
//! reaching every stage task promptly.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fakes::{backends, backends_with_voices, speak};
use vaak::backend::fake::{ScriptedAsr, ScriptedLlm, ToneBank};
use vaak::backend::llm::Role;
use vaak::flow::{Ingest, PipelineEvent, SessionSettings};
use vaak::metrics::Metrics;
use vaak::pipeline;

fn settings(barge_in: bool) -> SessionSettings {
    SessionSettings {
        barge_in,
        ..SessionSettings::new("test", vec!["en".into(), "hi".into()])
    }
}

fn kind(e: &PipelineEvent) -> &'static str {
    match e {
        PipelineEvent::SpeechStarted => "speech_started",
        PipelineEvent::SpeechStopped { .. } => "speech_stopped",
        PipelineEvent::Transcript { .. } => "transcript",
        PipelineEvent::ReplyText { .. } => "reply_text",
        PipelineEvent::ReplyAudio { .. } => "reply_audio",
        PipelineEvent::TurnCompleted { .. } => "turn_completed",
        PipelineEvent::Interrupted { .. } => "interrupted",
        PipelineEvent::TurnFailed { .. } => "turn_failed",
        PipelineEvent::NoSpeech => "no_speech",
        PipelineEvent::LanguageChanged { .. } => "language_changed",
        PipelineEvent::LanguageDecided { .. } => "language_decided",
        PipelineEvent::Backchannel { .. } => "backchannel",
        PipelineEvent::TurnContinued { .. } => "turn_continued",
    }
}

#[tokio::test(start_paused = true)]
async fn one_turn_events_arrive_in_order() {
    let llm = Arc::new(ScriptedLlm::new(
        "Hello there, how can I help?",
        Duration::from_millis(300),
        Duration::from_millis(40),
    ));
    let asr = Arc::new(ScriptedAsr::new(&[("what time is it", "en")]));
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let mut p = pipeline::spawn(
        backends(llm.clone(), asr),
        settings(true),
        100,
        Arc::new(Metrics::default()),
        &tracker,
        shutdown.clone(),
    );
    speak(&p.input, 600, 800).await;
    drop(p.input);
    let mut kinds = Vec::new();
    let mut completed = None;
    while let Some(e) = p.events.recv().await {
        if let PipelineEvent::TurnCompleted {
            reply_text,
            timings,
            ..
        } = &e
        {
            completed = Some((reply_text.clone(), timings.clone()));
        }
        kinds.push(kind(&e));
    }
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "speech_started",
            "speech_stopped",
            "transcript",
            "language_decided",
            "reply_text",
            "reply_audio",
            "reply_text",
            "reply_audio",
            "turn_completed"
        ]
    );
    let (reply, timings) = completed.unwrap();
    assert_eq!(reply, "Hello there, how can I help?");
    // With paused time the scripted 300 ms first token shows up in the timings.
    let first_token = timings.llm_first_token.unwrap();
    assert!(first_token >= Duration::from_millis(300), "{first_token:?}");
    assert!(timings.end_to_first_audio.unwrap() >= first_token);
    // The LLM saw the system prompt, then the user's words (English needs no greeting).
    {
        let req = &llm.requests.lock().unwrap()[0];
        assert_eq!(req.messages[0].role, Role::System);
        let contents: Vec<&str> = req.messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(contents[1..], ["what time is it"]);
    }
    tracker.close();
    tracker.wait().await;
}

/// Every clause of a reply fails to synthesise: the words still arrive as captions, the turn
/// is reported failed once (one event, one count, not one per clause) and the next turn is
/// answered with audio.
#[tokio::test(start_paused = true)]
async fn a_voice_that_fails_every_clause_fails_the_turn_once() {
    let llm = Arc::new(ScriptedLlm::new(
        "One, two, three.",
        Duration::from_millis(50),
        Duration::from_millis(10),
    ));
    let asr = Arc::new(ScriptedAsr::new(&[("count to three", "en")]));
    let voices = Arc::new(ToneBank::default());
    voices.failing.store(true, Ordering::SeqCst);
    let metrics = Arc::new(Metrics::default());
    let tracker = TaskTracker::new();
    let mut p = pipeline::spawn(
        backends_with_voices(llm, asr, Arc::clone(&voices)),
        SessionSettings::new("tts-fail", vec!["en".into()]),
        100,
        Arc::clone(&metrics),
        &tracker,
        CancellationToken::new(),
    );
    let input = p.input.clone();
    drop(p.input);
    let feeder = {
        let voices = Arc::clone(&voices);
        tokio::spawn(async move {
            speak(&input, 600, 800).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            voices.failing.store(false, Ordering::SeqCst);
            speak(&input, 600, 800).await;
        })
    };
    let mut events = Vec::new();
    while let Some(e) = p.events.recv().await {
        events.push(e);
    }
    feeder.await.unwrap();
    let failed: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            PipelineEvent::TurnFailed { stage, .. } => Some(*stage),
            _ => None,
        })
        .collect();
    assert_eq!(failed, ["tts"]);
    assert_eq!(metrics.turns_failed.load(Ordering::Relaxed), 1);
    let captions = events
        .iter()
        .filter(|e| matches!(e, PipelineEvent::ReplyText { .. }))
        .count();
    assert!(captions >= 3, "every clause still reaches the user as text");
    // The second turn has its voice back.
    assert!(events
        .iter()
        .any(|e| matches!(e, PipelineEvent::ReplyAudio { .. })));
    tracker.close();
    tracker.wait().await;
}

#[tokio::test(start_paused = true)]
async fn barge_in_cancels_the_reply_and_the_next_turn_is_answered() {
    // A slow reply: 40 words at 200 ms each.
    let long: String = (1..=20)
        .map(|i| format!("This is sentence number {i}. "))
        .collect();
    let llm = Arc::new(ScriptedLlm::new(
        &long,
        Duration::from_millis(100),
        Duration::from_millis(200),
    ));
    let asr = Arc::new(ScriptedAsr::new(&[
        ("tell me a long story", "en"),
        ("stop, what is the weather", "en"),
    ]));
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::default());
    let mut p = pipeline::spawn(
        backends(llm.clone(), asr),
        settings(true),
        100,
        metrics.clone(),
        &tracker,
        shutdown.clone(),
    );
    let input = p.input.clone();
    drop(p.input);
    let feeder = tokio::spawn(async move {
        speak(&input, 600, 700).await;
        // The reply is streaming now; the user talks over it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        speak(&input, 600, 700).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let mut events = Vec::new();
    while let Some(e) = tokio::time::timeout(Duration::from_secs(40), p.events.recv())
        .await
        .ok()
        .flatten()
    {
        let done = matches!(&e, PipelineEvent::TurnCompleted { turn, .. } if turn.0 == 2);
        events.push(e);
        if done {
            break;
        }
    }
    feeder.abort();
    let interrupted = events
        .iter()
        .position(|e| matches!(e, PipelineEvent::Interrupted { turn, .. } if turn.0 == 1));
    assert!(
        interrupted.is_some(),
        "turn 1 was not reported interrupted: {:?}",
        events.iter().map(kind).collect::<Vec<_>>()
    );
    assert!(!events
        .iter()
        .any(|e| matches!(e, PipelineEvent::TurnCompleted { turn, .. } if turn.0 == 1)));
    // Nothing of turn 1 is sent after the interruption.
    let after = &events[interrupted.unwrap()..];
    assert!(!after
        .iter()
        .any(|e| matches!(e, PipelineEvent::ReplyAudio { turn, .. } if turn.0 == 1)));
    assert!(events
        .iter()
        .any(|e| matches!(e, PipelineEvent::TurnCompleted { turn, .. } if turn.0 == 2)));
    assert!(Metrics::counter(&metrics.interruptions) >= 1);
    // The second request carries the first exchange, marked as interrupted.
    {
        let reqs = llm.requests.lock().unwrap();
        assert_eq!(reqs.len(), 2);
        let history: Vec<&str> = reqs[1]
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        assert!(
            history.iter().any(|m| m.contains("interrupted")),
            "{history:?}"
        );
    }
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
}

#[tokio::test(start_paused = true)]
async fn llm_failure_costs_one_turn_not_the_session() {
    let llm = Arc::new(ScriptedLlm::new(
        "All good now.",
        Duration::from_millis(50),
        Duration::from_millis(10),
    ));
    llm.fail_first.store(1, std::sync::atomic::Ordering::SeqCst);
    let asr = Arc::new(ScriptedAsr::new(&[("first", "en"), ("second", "en")]));
    let tracker = TaskTracker::new();
    let mut p = pipeline::spawn(
        backends(llm, asr),
        settings(false),
        100,
        Arc::new(Metrics::default()),
        &tracker,
        CancellationToken::new(),
    );
    speak(&p.input, 600, 800).await;
    speak(&p.input, 600, 800).await;
    drop(p.input);
    let mut failed = 0;
    let mut completed = Vec::new();
    while let Some(e) = p.events.recv().await {
        match e {
            PipelineEvent::TurnFailed { stage, message, .. } => {
                assert_eq!(stage, "llm");
                assert!(message.contains("scripted failure"), "{message}");
                failed += 1;
            }
            PipelineEvent::TurnCompleted {
                turn, reply_text, ..
            } => completed.push((turn.0, reply_text)),
            _ => {}
        }
    }
    assert_eq!(failed, 1);
    assert_eq!(completed, vec![(2, "All good now.".to_string())]);
    tracker.close();
    tracker.wait().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_every_stage_promptly() {
    let llm = Arc::new(ScriptedLlm::new(
        &"slow ".repeat(500),
        Duration::from_millis(10),
        Duration::from_millis(500),
    ));
    let asr = Arc::new(ScriptedAsr::new(&[("go on forever", "en")]));
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let mut p = pipeline::spawn(
        backends(llm, asr),
        settings(true),
        100,
        Arc::new(Metrics::default()),
        &tracker,
        shutdown.clone(),
    );
    speak(&p.input, 600, 800).await;
    // Wait for the reply to start, then shut down with the input still open: with a reply
    // in flight (its 500 words take minutes), or the test would prove nothing.
    let mut reply_playing = false;
    while let Some(e) = p.events.recv().await {
        if matches!(e, PipelineEvent::ReplyAudio { .. }) {
            reply_playing = true;
            break;
        }
    }
    assert!(reply_playing, "the events ended before any reply audio");
    shutdown.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(1), tracker.wait())
        .await
        .expect("all stage tasks end within 1 s of shutdown");
    drop(p.input);
}

#[tokio::test(start_paused = true)]
async fn silence_only_reports_no_speech() {
    let llm = Arc::new(ScriptedLlm::new("x", Duration::ZERO, Duration::ZERO));
    let asr = Arc::new(ScriptedAsr::new(&[("x", "en")]));
    let tracker = TaskTracker::new();
    let mut p = pipeline::spawn(
        backends(llm, asr.clone()),
        settings(false),
        100,
        Arc::new(Metrics::default()),
        &tracker,
        CancellationToken::new(),
    );
    speak(&p.input, 0, 2000).await;
    p.input.send(Ingest::EndOfInput).await.unwrap();
    drop(p.input);
    let mut kinds = Vec::new();
    while let Some(e) = p.events.recv().await {
        kinds.push(kind(&e));
    }
    assert_eq!(kinds, ["no_speech"]);
    assert_eq!(asr.calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    tracker.close();
    tracker.wait().await;
}
