//! Streaming recognition in the pipeline: on a scripted streaming recogniser with paused time
//! (partials grow while the user speaks, the final transcript follows the end of speech,
//! windows are trimmed at pauses, failed passes lose nothing, silence gives no partials), and on
//! the real Whisper with a Hindi recording streamed in real time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fakes::backends_with_asr;
use vaak::backend::asr::Asr;
use vaak::backend::fake::{ScriptedLlm, WordTones};
use vaak::flow::{Ingest, PipelineEvent, SessionSettings};
use vaak::metrics::Metrics;
use vaak::pipeline;

const WORDS: [&str; 8] = ["ek", "do", "teen", "char", "paanch", "chhe", "saat", "aath"];

struct Run {
    events: Vec<PipelineEvent>,
    metrics: Arc<Metrics>,
}

/// Streams `audio` (then 2 s of silence) in 20 ms chunks of paused real time through a live
/// session on `asr`, and collects events until the first turn completes or fails.
async fn stream(asr: Arc<dyn Asr>, audio: Vec<f32>) -> Run {
    let llm = Arc::new(ScriptedLlm::new(
        "Theek hai.",
        Duration::from_millis(50),
        Duration::from_millis(10),
    ));
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let metrics = Arc::new(Metrics::default());
    let p = pipeline::spawn(
        backends_with_asr(llm, asr),
        SessionSettings::live("stream-test", vec!["hi".into(), "en".into()]),
        100,
        metrics.clone(),
        &tracker,
        shutdown.clone(),
    );
    // The feeder holds the only sender: the input closes when the audio is over.
    let pipeline::SessionPipeline {
        input, mut events, ..
    } = p;
    let feeder = tokio::spawn(async move { feed(&input, audio).await });
    let mut seen = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
        let done = matches!(
            e,
            PipelineEvent::TurnCompleted { .. }
                | PipelineEvent::TurnFailed { .. }
                | PipelineEvent::NoSpeech
        );
        seen.push(e);
        if done {
            break;
        }
    }
    feeder.abort();
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    Run {
        events: seen,
        metrics,
    }
}

async fn feed(tx: &mpsc::Sender<Ingest>, mut audio: Vec<f32>) {
    audio.extend(std::iter::repeat_n(0.0, 32_000));
    for chunk in audio.chunks(320) {
        if tx.send(Ingest::Audio(chunk.to_vec())).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = tx.send(Ingest::EndOfInput).await;
}

/// (partial texts before the end of speech, the final transcript, its position, end of speech).
fn transcripts(events: &[PipelineEvent]) -> (Vec<String>, Option<String>, usize, usize) {
    let stopped = events
        .iter()
        .position(|e| matches!(e, PipelineEvent::SpeechStopped { .. }))
        .unwrap_or(usize::MAX);
    let mut partials = Vec::new();
    let mut last = None;
    let mut last_at = 0;
    for (i, e) in events.iter().enumerate() {
        if let PipelineEvent::Transcript { text, is_final, .. } = e {
            if *is_final {
                last = Some(text.clone());
                last_at = i;
            } else if i < stopped {
                partials.push(text.clone());
            }
        }
    }
    (partials, last, last_at, stopped)
}

fn words(indices: &[usize]) -> String {
    indices
        .iter()
        .map(|&i| WORDS[i])
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(start_paused = true)]
async fn partials_grow_while_speaking_and_the_final_follows_the_end() {
    let said = [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3];
    let asr = Arc::new(WordTones::new(&WORDS));
    let run = stream(asr.clone(), WordTones::speech(&said)).await;
    let (partials, last, last_at, stopped) = transcripts(&run.events);
    assert_eq!(last.as_deref(), Some(words(&said).as_str()), "{partials:?}");
    assert!(
        last_at > stopped,
        "the final transcript follows the end of speech"
    );
    // 5.5 s of speech: a partial about every second, each at least as long as the last, the
    // committed words never changing (only the word at the edge may).
    assert!(partials.len() >= 4, "{partials:?}");
    for w in partials.windows(2) {
        let (a, b): (Vec<&str>, Vec<&str>) = (w[0].split(' ').collect(), w[1].split(' ').collect());
        assert!(b.len() >= a.len(), "{partials:?}");
        assert_eq!(a[..a.len() - 1], b[..a.len() - 1], "{partials:?}");
    }
    // Passes are bounded by the cadence (one a second, plus pauses and the decision).
    let passes = asr.passes.load(Ordering::SeqCst);
    assert!((5..=12).contains(&passes), "{passes} passes");
    assert!(Metrics::counter(&run.metrics.asr_passes) as usize >= passes - 1);
}

#[tokio::test(start_paused = true)]
async fn the_window_is_cut_at_pauses_so_passes_stay_short() {
    // Three phrases of four words, 300 ms apart (a pause, not the end of the turn).
    let phrase = |w: &[usize]| {
        let mut a = WordTones::speech(w);
        a.extend(std::iter::repeat_n(0.0, 4_800));
        a
    };
    let mut audio = phrase(&[0, 1, 2, 3]);
    audio.extend(phrase(&[4, 5, 6, 7]));
    audio.extend(phrase(&[1, 3, 5, 7]));
    let total = audio.len();
    let asr = Arc::new(WordTones::new(&WORDS));
    let run = stream(asr.clone(), audio).await;
    let (_, last, _, _) = transcripts(&run.events);
    assert_eq!(
        last.as_deref(),
        Some(words(&[0, 1, 2, 3, 4, 5, 6, 7, 1, 3, 5, 7]).as_str())
    );
    let longest = asr.longest_window.load(Ordering::SeqCst);
    assert!(
        longest < total * 3 / 4,
        "a pass decoded {longest} of {total} samples: the window was never cut"
    );
}

#[tokio::test(start_paused = true)]
async fn a_turn_whose_passes_all_fail_reports_the_asr_error() {
    let asr = Arc::new(WordTones::new(&WORDS));
    asr.failing.store(true, Ordering::SeqCst);
    let run = stream(asr.clone(), WordTones::speech(&[0, 1, 2, 3])).await;
    let failed = run.events.iter().find_map(|e| match e {
        PipelineEvent::TurnFailed { stage, message, .. } => Some((*stage, message.clone())),
        _ => None,
    });
    let (stage, message) = failed.expect("turn_failed");
    assert_eq!(stage, "asr");
    assert!(message.contains("scripted failure"), "{message}");
    assert!(Metrics::counter(&run.metrics.asr_pass_failures) >= 1);
}

#[tokio::test(start_paused = true)]
async fn failed_passes_lose_no_audio() {
    let said = [3, 1, 4, 1, 5, 2, 6];
    let asr = Arc::new(WordTones::new(&WORDS));
    asr.failing.store(true, Ordering::SeqCst);
    let flip = {
        let asr = asr.clone();
        // The recogniser recovers after 2 s: the words heard before then are not lost.
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2_000)).await;
            asr.failing.store(false, Ordering::SeqCst);
        })
    };
    let run = stream(asr.clone(), WordTones::speech(&said)).await;
    flip.abort();
    let (_, last, _, _) = transcripts(&run.events);
    assert_eq!(last.as_deref(), Some(words(&said).as_str()));
    assert!(Metrics::counter(&run.metrics.asr_pass_failures) >= 1);
}

#[tokio::test(start_paused = true)]
async fn silence_and_noise_make_no_partials() {
    let asr = Arc::new(WordTones::new(&WORDS));
    // Quiet noise under the VAD's threshold, 3 s.
    let noise: Vec<f32> = (0..48_000)
        .map(|i| ((i * 7919 % 101) as f32 / 101.0 - 0.5) * 0.02)
        .collect();
    let run = stream(asr.clone(), noise).await;
    assert!(
        !run.events
            .iter()
            .any(|e| matches!(e, PipelineEvent::Transcript { .. })),
        "{:?}",
        run.events.len()
    );
    assert!(run
        .events
        .iter()
        .any(|e| matches!(e, PipelineEvent::NoSpeech)));
    assert_eq!(asr.passes.load(Ordering::SeqCst), 0);
}

/// An eval clip at the pipeline's 16 kHz.
fn eval_clip_16k(rel: &str) -> Vec<f32> {
    let (audio, rate) = super::common::read_f32(&super::common::eval_dir().join(rel));
    vaak::audio::resample::resample_all(&audio, rate, 16_000).unwrap()
}

/// A Hindi recording streamed in real time through a live session on the real models: partial
/// transcripts arrive while it plays, in Devanagari, their committed words only growing, and
/// the final transcript (which keeps every committed word) comes after the end of speech.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hindi_streams_in_real_time_on_whisper() {
    let audio = eval_clip_16k("hi/4734_088.wav");
    let config = Arc::new(vaak::config::Config::default());
    let (backends, owner, owner_stop) = super::common::load_backends(config).await;
    assert!(backends.asr.streams(), "the embedded Whisper streams");
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let p = pipeline::spawn(
        Arc::new(backends),
        SessionSettings::live("stream-real", vec!["hi".into()]),
        100,
        Arc::new(Metrics::default()),
        &tracker,
        shutdown.clone(),
    );
    let pipeline::SessionPipeline {
        input, mut events, ..
    } = p;
    let feeder = tokio::spawn(async move {
        let mut audio = audio;
        audio.extend(std::iter::repeat_n(0.0, 16_000 * 3));
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for chunk in audio.chunks(320) {
            tick.tick().await;
            if input.send(Ingest::Audio(chunk.to_vec())).await.is_err() {
                return;
            }
        }
        // An open microphone: silence until the test ends.
        loop {
            tick.tick().await;
            if input.send(Ingest::Audio(vec![0.0; 320])).await.is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(180), events.recv()).await {
        let done = matches!(
            e,
            PipelineEvent::TurnCompleted { .. } | PipelineEvent::TurnFailed { .. }
        );
        seen.push(e);
        if done {
            break;
        }
    }
    feeder.abort();
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    owner_stop.cancel();
    owner.close();
    owner.wait().await;

    let stopped = seen
        .iter()
        .position(|e| matches!(e, PipelineEvent::SpeechStopped { .. }))
        .expect("speech_stopped");
    let partials: Vec<(String, String)> = seen[..stopped]
        .iter()
        .filter_map(|e| match e {
            PipelineEvent::Transcript {
                text,
                stable,
                is_final: false,
                ..
            } => Some((stable.clone(), text.clone())),
            _ => None,
        })
        .collect();
    assert!(partials.len() >= 2, "partials while speaking: {partials:?}");
    for (stable, text) in &partials {
        assert!(text.starts_with(stable.as_str()), "{stable:?} / {text:?}");
        assert!(
            super::common::is_script(text, 0x900, 0x97F),
            "not Devanagari: {text}"
        );
    }
    for w in partials.windows(2) {
        assert!(w[1].0.starts_with(w[0].0.as_str()), "{partials:?}");
    }
    let (at, last) = seen
        .iter()
        .enumerate()
        .find_map(|(i, e)| match e {
            PipelineEvent::Transcript {
                text,
                is_final: true,
                ..
            } => Some((i, text.clone())),
            _ => None,
        })
        .expect("a final transcript");
    assert!(
        at > stopped,
        "the final transcript follows the end of speech"
    );
    let committed = &partials.last().expect("partials").0;
    assert!(
        last.starts_with(committed.as_str()),
        "{committed:?} / {last:?}"
    );
    assert!(super::common::is_script(&last, 0x900, 0x97F), "{last}");
}

/// Whisper keeps recognising after Kokoro spoke on the same thread. ggml's AMX kernels (Q8_0
/// weights) set a thread's tile registers once; ONNX Runtime's int8 kernels load their own, so
/// whisper running on a thread that had just synthesised a reply decoded "-" and "16" for
/// speech. Every decode now runs on a thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_hears_after_kokoro_spoke_on_the_same_thread() {
    let audio = eval_clip_16k("en/jfk.wav");
    let config = Arc::new(vaak::config::Config::default());
    let (backends, owner, owner_stop) = super::common::load_backends(config).await;
    let texts = std::thread::spawn(move || {
        let cancel = CancellationToken::new();
        let hint = vaak::backend::asr::LanguageHint::Fixed("en".into());
        let mut texts = Vec::new();
        for round in 0..3 {
            let t = backends.asr.transcribe(&audio, &hint, &cancel).unwrap();
            texts.push(t.text.to_lowercase());
            for (lang, words) in [("hi", "नमस्ते, आप कैसे हैं?"), ("en", "Hello, how are you?")]
            {
                let voice = backends.tts.for_language(lang).unwrap();
                let spoken = voice.synthesize(words, 1.0).unwrap();
                assert!(!spoken.is_empty(), "round {round}: {lang} reply");
            }
        }
        texts
    })
    .join()
    .expect("test thread");
    for t in &texts {
        assert!(t.contains("ask not what your country"), "{texts:?}");
    }
    owner_stop.cancel();
    owner.close();
    owner.wait().await;
}
