//! Live turn-taking on scripted fake backends with paused time: speculative starts at short
//! pauses (held until the pause proves final, abandoned if the user goes on), a user who keeps
//! talking before being answered makes one turn, backchannels do not interrupt, barge-in needs
//! `turn.barge_in_min_ms` of speech, and the history keeps only what was heard.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fakes::{backends, speak};
use vaak::backend::fake::{ScriptedAsr, ScriptedLlm};
use vaak::flow::{Ingest, PipelineEvent, SessionSettings};
use vaak::metrics::Metrics;
use vaak::pipeline::{self, SessionPipeline};

struct Live {
    p: SessionPipeline,
    metrics: Arc<Metrics>,
    tracker: TaskTracker,
    _shutdown: CancellationToken,
}

fn live(llm: Arc<ScriptedLlm>, asr: Arc<ScriptedAsr>) -> Live {
    live_with(
        llm,
        asr,
        SessionSettings::live("live-test", vec!["en".into(), "hi".into()]),
    )
}

fn live_with(llm: Arc<ScriptedLlm>, asr: Arc<ScriptedAsr>, settings: SessionSettings) -> Live {
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::default());
    let p = pipeline::spawn(
        backends(llm, asr),
        settings,
        100,
        metrics.clone(),
        &tracker,
        shutdown.clone(),
    );
    Live {
        p,
        metrics,
        tracker,
        _shutdown: shutdown,
    }
}

/// Collects events until `stop` matches one (or 60 s of paused time pass).
async fn collect(
    events: &mut mpsc::Receiver<PipelineEvent>,
    stop: impl Fn(&PipelineEvent) -> bool,
) -> Vec<PipelineEvent> {
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
        let done = stop(&e);
        out.push(e);
        if done {
            break;
        }
    }
    out
}

fn completed(e: &PipelineEvent, n: u64) -> bool {
    matches!(e, PipelineEvent::TurnCompleted { turn, .. } if turn.0 == n)
}

fn count(events: &[PipelineEvent], f: impl Fn(&PipelineEvent) -> bool) -> usize {
    events.iter().filter(|e| f(e)).count()
}

#[tokio::test(start_paused = true)]
async fn a_short_pause_starts_the_reply_early_but_holds_it_until_the_turn_ends() {
    let llm = Arc::new(ScriptedLlm::new(
        "Sure, it is noon.",
        Duration::from_millis(100),
        Duration::from_millis(20),
    ));
    let asr = Arc::new(ScriptedAsr::new(&[("what time is it", "en")]));
    let mut s = live(llm.clone(), asr);
    let input = s.p.input.clone();
    let feeder = tokio::spawn(async move { speak(&input, 800, 3_000).await });
    let events = collect(&mut s.p.events, |e| completed(e, 1)).await;
    feeder.abort();
    // The LLM was asked during the pause, before the end of the turn was confirmed…
    assert_eq!(Metrics::counter(&s.metrics.speculative_started), 1);
    assert_eq!(Metrics::counter(&s.metrics.speculative_abandoned), 0);
    assert_eq!(llm.requests.lock().unwrap().len(), 1);
    // …but nothing of the reply reached the transport before the end of speech was reported.
    let stopped = events
        .iter()
        .position(|e| matches!(e, PipelineEvent::SpeechStopped { .. }))
        .expect("speech_stopped");
    let first_audio = events
        .iter()
        .position(|e| matches!(e, PipelineEvent::ReplyAudio { .. }))
        .expect("reply audio");
    assert!(stopped < first_audio);
    // The speculative transcript is partial; a final one precedes the reply.
    let finals: Vec<bool> = events
        .iter()
        .filter_map(|e| match e {
            PipelineEvent::Transcript { is_final, .. } => Some(*is_final),
            _ => None,
        })
        .collect();
    assert_eq!(finals, [false, true]);
    // The reply was ready early: first audio within a frame or two of the confirmation.
    let Some(PipelineEvent::TurnCompleted { timings, .. }) = events.last() else {
        panic!("no turn_completed")
    };
    let e2e = timings.end_to_first_audio.unwrap();
    assert!(e2e <= Duration::from_millis(450), "{e2e:?}");
    s.tracker.close();
}

/// The words are decided during the pause but the reply is ready only after the end of the
/// turn was confirmed: the final transcript still goes out, once, before the reply audio.
#[tokio::test(start_paused = true)]
async fn a_reply_ready_after_the_confirmation_still_gets_one_final_transcript() {
    let llm = Arc::new(ScriptedLlm::new(
        "Sure, it is noon.",
        Duration::from_millis(1_500),
        Duration::from_millis(20),
    ));
    let asr = Arc::new(ScriptedAsr::new(&[("what time is it", "en")]));
    let mut s = live(llm.clone(), asr);
    let input = s.p.input.clone();
    let feeder = tokio::spawn(async move { speak(&input, 800, 3_000).await });
    let events = collect(&mut s.p.events, |e| completed(e, 1)).await;
    feeder.abort();
    assert_eq!(Metrics::counter(&s.metrics.speculative_started), 1);
    let stopped = events
        .iter()
        .position(|e| matches!(e, PipelineEvent::SpeechStopped { .. }))
        .expect("speech_stopped");
    let finals: Vec<(usize, bool)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            PipelineEvent::Transcript { is_final, .. } => Some((i, *is_final)),
            _ => None,
        })
        .collect();
    // A partial one at the pause, then the final one after the confirmation.
    assert_eq!(finals.len(), 2, "{finals:?}");
    assert!(
        !finals[0].1 && finals[1].1 && finals[1].0 > stopped,
        "{finals:?}"
    );
    let first_audio = events
        .iter()
        .position(|e| matches!(e, PipelineEvent::ReplyAudio { .. }))
        .expect("reply audio");
    assert!(finals[1].0 < first_audio);
    s.tracker.close();
}

#[tokio::test(start_paused = true)]
async fn going_on_after_a_pause_abandons_the_early_reply_and_makes_one_turn() {
    let llm = Arc::new(ScriptedLlm::new(
        "Paneer tikka is a good choice.",
        Duration::from_millis(1_500),
        Duration::from_millis(20),
    ));
    let asr = Arc::new(ScriptedAsr::new(&[
        ("suggest a", "en"),
        ("suggest a dinner", "en"),
        ("suggest a dinner for tonight", "en"),
    ]));
    let mut s = live(llm.clone(), asr.clone());
    let input = s.p.input.clone();
    let feeder = tokio::spawn(async move {
        speak(&input, 700, 300).await; // short pause: speculative start, then abandoned
        speak(&input, 700, 700).await; // a turn ends (700 ms > min_silence)…
        speak(&input, 700, 3_000).await; // …but the user goes on before any answer
    });
    let events = collect(&mut s.p.events, |e| {
        matches!(e, PipelineEvent::TurnCompleted { .. })
    })
    .await;
    feeder.abort();
    assert!(Metrics::counter(&s.metrics.speculative_abandoned) >= 1);
    assert_eq!(
        count(&events, |e| matches!(e, PipelineEvent::Interrupted { .. })),
        0,
        "continuing a question is not an interruption"
    );
    assert_eq!(
        count(&events, |e| matches!(
            e,
            PipelineEvent::TurnCompleted { .. }
        )),
        1
    );
    // The last recognition saw all the speech (the earlier audio was carried into the turn).
    let Some(PipelineEvent::TurnCompleted { turn, .. }) = events.last() else {
        panic!()
    };
    let user = s.p.memory.exchanges();
    assert_eq!(user.len(), 1, "one exchange in the history");
    assert_eq!(user[0].user, "suggest a dinner for tonight");
    assert!(turn.0 >= 3);
    s.tracker.close();
}

/// A long reply (1 s of audio per word) the user can talk over.
fn long_reply() -> Arc<ScriptedLlm> {
    let words: String = (1..=12)
        .map(|i| format!("Sentence {i} is here. "))
        .collect();
    Arc::new(ScriptedLlm::new(
        &words,
        Duration::from_millis(100),
        Duration::from_millis(10),
    ))
}

#[tokio::test(start_paused = true)]
async fn a_backchannel_does_not_interrupt_the_reply() {
    let asr = Arc::new(ScriptedAsr::new(&[
        ("tell me a story", "en"),
        ("haan", "hi"),
    ]));
    let mut s = live(long_reply(), asr);
    let input = s.p.input.clone();
    let feeder = tokio::spawn(async move {
        speak(&input, 800, 2_500).await;
        // Reply audio is playing (paced in real time): a short "haan" over it.
        speak(&input, 400, 60_000).await;
    });
    let events = collect(&mut s.p.events, |e| completed(e, 1)).await;
    feeder.abort();
    assert_eq!(
        count(&events, |e| matches!(e, PipelineEvent::Backchannel { .. })),
        1
    );
    assert_eq!(
        count(&events, |e| matches!(e, PipelineEvent::Interrupted { .. })),
        0
    );
    assert!(
        events.iter().any(|e| completed(e, 1)),
        "the reply went on to its end"
    );
    assert_eq!(Metrics::counter(&s.metrics.backchannels), 1);
    let h = s.p.memory.exchanges();
    assert_eq!(h.len(), 1);
    assert!(!h[0].interrupted);
    s.tracker.close();
}

#[tokio::test(start_paused = true)]
async fn barge_in_needs_sustained_speech_and_history_keeps_what_was_heard() {
    let asr = Arc::new(ScriptedAsr::new(&[
        ("tell me a story", "en"),
        ("no wait, what is the weather", "en"),
    ]));
    let llm = long_reply();
    let mut s = live(llm.clone(), asr);
    let input = s.p.input.clone();
    let feeder = tokio::spawn(async move {
        speak(&input, 800, 3_000).await;
        // ~2.5 s of reply heard, then the user talks over it for 1.5 s.
        speak(&input, 1_500, 60_000).await;
    });
    let events = collect(&mut s.p.events, |e| completed(e, 2)).await;
    feeder.abort();
    let Some(PipelineEvent::Interrupted {
        turn,
        played_s,
        kept_text,
    }) = events
        .iter()
        .find(|e| matches!(e, PipelineEvent::Interrupted { .. }))
        .cloned()
    else {
        panic!("no interruption")
    };
    assert_eq!(turn.0, 1);
    // Reply audio is paced in real time: what was handed out ≈ what was heard (≤ lead ahead),
    // and the interruption came barge_in_min_ms (600 ms) into the user's speech.
    assert!((2.0..=6.0).contains(&played_s), "played {played_s}");
    assert!(!kept_text.is_empty());
    let full: String = llm.reply.trim().to_string();
    assert!(kept_text.len() < full.len(), "kept {kept_text:?}");
    assert!(
        full.starts_with(&kept_text),
        "kept text is a prefix of the reply"
    );
    let h = s.p.memory.exchanges();
    assert_eq!(h.len(), 2, "{h:?}");
    assert!(h[0].interrupted);
    assert_eq!(h[0].assistant, kept_text);
    // The next turn's request carried the cut reply, marked interrupted.
    let req = llm.requests.lock().unwrap().last().cloned().unwrap();
    assert!(req
        .messages
        .iter()
        .any(|m| m.content.contains(&kept_text) && m.content.contains("interrupted")));
    s.tracker.close();
}

/// With barge-in off the reply plays out whole, however the user talks over it (long speech,
/// speech with short pauses that would start a speculative reply); that speech is not a turn,
/// and the reply's turn ends with exactly one `TurnCompleted`.
#[tokio::test(start_paused = true)]
async fn with_barge_in_off_speech_over_a_reply_lets_it_play_out() {
    let asr = Arc::new(ScriptedAsr::new(&[
        ("tell me a story", "en"),
        ("stop stop stop", "en"),
        ("what is the weather", "en"),
    ]));
    let llm = long_reply();
    let settings = SessionSettings {
        barge_in: false,
        ..SessionSettings::live("live-test", vec!["en".into()])
    };
    let mut s = live_with(llm.clone(), asr, settings);
    let input = s.p.input.clone();
    let feeder = tokio::spawn(async move {
        speak(&input, 800, 3_000).await;
        // Over the reply: 1.5 s of speech, a short pause, 1.5 s more, then silence.
        speak(&input, 1_500, 200).await;
        speak(&input, 1_500, 90_000).await;
    });
    let events = collect(&mut s.p.events, |e| completed(e, 1)).await;
    feeder.abort();
    assert_eq!(
        count(&events, |e| matches!(e, PipelineEvent::Interrupted { .. })),
        0,
        "{events:?}"
    );
    let spoken: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            PipelineEvent::ReplyText { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(spoken.join(" ").trim(), llm.reply.trim(), "the whole reply");
    assert!(
        s.metrics
            .speech_over_reply_ignored
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    // Nothing else was answered: the talk over the reply was not a turn.
    let more = collect(&mut s.p.events, |_| false).await;
    assert_eq!(
        count(&more, |e| matches!(e, PipelineEvent::TurnCompleted { .. })),
        0,
        "{more:?}"
    );
    assert_eq!(s.p.memory.exchanges().len(), 1);
    assert!(!s.p.memory.exchanges()[0].interrupted);
    s.tracker.close();
}

#[tokio::test(start_paused = true)]
async fn a_typed_turn_and_an_explicit_interrupt() {
    let asr = Arc::new(ScriptedAsr::new(&[("unused", "en")]));
    let mut s = live(long_reply(), asr);
    s.p.input
        .send(Ingest::Text("नमस्ते, एक कहानी सुनाइए".into()))
        .await
        .unwrap();
    // Wait until the reply is playing, then interrupt like a client's Control.INTERRUPT.
    let mut seen = Vec::new();
    while let Some(e) = s.p.events.recv().await {
        let audio = matches!(e, PipelineEvent::ReplyAudio { .. });
        seen.push(e);
        if audio {
            break;
        }
    }
    let Some(PipelineEvent::Transcript { language, .. }) = seen
        .iter()
        .find(|e| matches!(e, PipelineEvent::Transcript { .. }))
    else {
        panic!("no transcript for the typed turn")
    };
    assert_eq!(
        language, "hi",
        "the typed turn's language comes from its script"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let info = s.p.interrupt().await.expect("a reply was playing");
    assert_eq!(info.turn.0, 1);
    assert!(info.played_s > 0.5 && info.played_s < 3.0, "{info:?}");
    assert!(s.p.interrupt().await.is_none(), "nothing left to interrupt");
    s.tracker.close();
}

/// A session whose user asks to book a ticket, answered "Okay.".
fn booking() -> (Arc<ScriptedLlm>, Live) {
    let llm = Arc::new(ScriptedLlm::new(
        "Okay.",
        Duration::from_millis(100),
        Duration::from_millis(10),
    ));
    let asr = Arc::new(ScriptedAsr::new(&[(
        "I would like to book a ticket to Chennai",
        "en",
    )]));
    (Arc::clone(&llm), live(llm, asr))
}

#[tokio::test(start_paused = true)]
async fn long_speech_gets_partial_transcripts_and_one_answer() {
    let (llm, mut s) = booking();
    let input = s.p.input.clone();
    let feeder = tokio::spawn(async move { speak(&input, 6_000, 3_000).await });
    let events = collect(&mut s.p.events, |e| {
        completed(e, 1) || completed(e, 2) || completed(e, 3) || completed(e, 4)
    })
    .await;
    feeder.abort();
    let stopped = events
        .iter()
        .position(|e| matches!(e, PipelineEvent::SpeechStopped { .. }))
        .expect("speech_stopped");
    let partials = events[..stopped]
        .iter()
        .filter(|e| {
            matches!(
                e,
                PipelineEvent::Transcript {
                    is_final: false,
                    ..
                }
            )
        })
        .count();
    assert!(partials >= 1, "no partial transcript during 6 s of speech");
    assert_eq!(
        count(&events, |e| matches!(
            e,
            PipelineEvent::TurnCompleted { .. }
        )),
        1
    );
    assert_eq!(
        llm.requests.lock().unwrap().len(),
        1,
        "partials are not answered"
    );
    s.tracker.close();
}

/// Silence after the end of speech until the turn ended (`speech_stopped`), for a user whose
/// words the recogniser hears as `text`; and the turn-end counters.
async fn silence_until_turn_end(text: &str, language: &str) -> (Duration, u64, u64) {
    let llm = Arc::new(ScriptedLlm::new(
        "Okay.",
        Duration::from_millis(100),
        Duration::from_millis(20),
    ));
    let asr = Arc::new(ScriptedAsr::new(&[(text, language)]));
    let mut s = live(llm, asr);
    let input = s.p.input.clone();
    let speech_end = tokio::time::Instant::now() + Duration::from_millis(800);
    let feeder = tokio::spawn(async move { speak(&input, 800, 3_000).await });
    let mut stopped = None;
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(60), s.p.events.recv()).await {
        if matches!(e, PipelineEvent::SpeechStopped { .. }) {
            stopped = Some(tokio::time::Instant::now() - speech_end);
            break;
        }
    }
    feeder.abort();
    s.tracker.close();
    let m = &s.metrics;
    (
        stopped.expect("speech_stopped"),
        Metrics::counter(&m.turn_ends_sooner),
        Metrics::counter(&m.turn_ends_later),
    )
}

/// The words heard at the pause set how long it must last: a finished question ends the turn
/// after `turn.finished_pause_ms` (300 ms), words that trail off wait `turn.unfinished_pause_ms`
/// (1 s), anything else the usual `vad.min_silence_ms` (500 ms).
#[tokio::test(start_paused = true)]
async fn a_finished_question_ends_the_turn_sooner_a_trailing_and_waits() {
    let (finished, sooner, later) = silence_until_turn_end("What time is it?", "en").await;
    assert_eq!((sooner, later), (1, 0));
    let (unsure, sooner, later) = silence_until_turn_end("what time is it", "en").await;
    assert_eq!((sooner, later), (0, 0));
    let (trailing, sooner, later) = silence_until_turn_end("मुझे दिल्ली जाना है और", "hi").await;
    assert_eq!((sooner, later), (0, 1));
    let ms = |d: Duration| d.as_millis();
    assert!(
        ms(finished) < 450 && (450..650).contains(&ms(unsure)) && ms(trailing) >= 950,
        "turn ends after {} / {} / {} ms of silence (finished / unsure / trailing)",
        ms(finished),
        ms(unsure),
        ms(trailing)
    );
    eprintln!(
        "turn ended after {} / {} / {} ms of silence (finished / unsure / trailing)",
        ms(finished),
        ms(unsure),
        ms(trailing)
    );
}

/// From the first partial transcript, while the user still speaks and before any word is
/// committed, the conversation so far (the history and the language's greeting) is prefilled:
/// the turn's own request then only adds the user's words.
#[tokio::test(start_paused = true)]
async fn the_history_is_prefilled_from_the_first_partial_before_any_word_is_committed() {
    let (llm, mut s) = booking();
    let input = s.p.input.clone();
    let feeder = tokio::spawn(async move { speak(&input, 3_000, 3_000).await });
    collect(&mut s.p.events, |e| completed(e, 1) || completed(e, 2)).await;
    feeder.abort();
    s.tracker.close();
    let prefills = llm.prefills.lock().unwrap().clone();
    let requests = llm.requests.lock().unwrap().clone();
    assert!(
        !prefills.is_empty(),
        "nothing was prefilled while the user spoke"
    );
    assert_eq!(requests.len(), 1);
    let first = &prefills[0].messages;
    let last = first.last().expect("a prompt");
    assert!(
        last.content.is_empty(),
        "the first prefill came before any committed word, with an empty user message: {last:?}"
    );
    // Everything before the user's message is what the turn's request starts with.
    let request = &requests[0].messages;
    let shared = first.len() - 1;
    assert_eq!(
        &request[..shared]
            .iter()
            .map(|m| &m.content)
            .collect::<Vec<_>>(),
        &first[..shared]
            .iter()
            .map(|m| &m.content)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        request.last().map(|m| m.content.as_str()),
        Some("I would like to book a ticket to Chennai")
    );
}
