//! The one CPU scheduler seen from a session, on scripted fake backends with paused time: a
//! first clause waiting for the cores goes before another session's partial pass that queued
//! earlier, and a new conversation is refused while the open ones keep the cores saturated
//! (counted per transport), and admitted again once the load has passed.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fakes::{backends_with_voices, speak};
use vaak::backend::fake::{ScriptedAsr, ScriptedLlm, ToneBank};
use vaak::flow::{PipelineEvent, SessionSettings};
use vaak::metrics::Metrics;
use vaak::pipeline;
use vaak::scheduler::{Priority, LOAD_WINDOW};
use vaak::session::service::{OpenError, SessionService};

fn fake_backends(voices: Arc<ToneBank>) -> Arc<vaak::backend::Backends> {
    let llm = Arc::new(ScriptedLlm::new(
        "Sure, it is on the way.",
        Duration::from_millis(800),
        Duration::from_millis(10),
    ));
    let asr = Arc::new(ScriptedAsr::new(&[("where is my order", "en")]));
    backends_with_voices(llm, asr, voices)
}

#[tokio::test(start_paused = true)]
async fn a_waiting_first_clause_goes_before_an_earlier_partial_pass() {
    let voices = Arc::new(ToneBank::default());
    let backends = fake_backends(Arc::clone(&voices));
    let cpu = backends.cpu.clone();
    assert_eq!(cpu.slots(), 1);
    let tracker = TaskTracker::new();
    let mut p = pipeline::spawn(
        Arc::clone(&backends),
        SessionSettings::new("sched", vec!["en".into()]),
        100,
        Arc::new(Metrics::default()),
        &tracker,
        CancellationToken::new(),
    );
    let input = p.input.clone();
    drop(p.input);
    let feeder = tokio::spawn(async move { speak(&input, 600, 800).await });

    // The final transcript is out; the LLM takes 800 ms to its first token.
    loop {
        match p.events.recv().await.expect("events") {
            PipelineEvent::Transcript { is_final: true, .. } => break,
            _ => continue,
        }
    }
    // Another session's long job holds the cores, and its partial pass queues behind it.
    let none = CancellationToken::new();
    let held = cpu
        .acquire(Priority::Transcript, &none)
        .await
        .expect("slot");
    let spoken_before_partial = {
        let (cpu, voices) = (cpu.clone(), Arc::clone(&voices));
        tokio::spawn(async move {
            let probe = move || voices.spoken.lock().unwrap().len();
            let token = CancellationToken::new();
            cpu.run(Priority::Partial, &token, probe).await
        })
    };
    // Wait (bounded) until the reply's first clause queues behind the partial pass too.
    for _ in 0..100 {
        if cpu.queued() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cpu.queued(), 2, "the first clause never queued");
    drop(held);
    let (spoken, waited) = spoken_before_partial.await.unwrap().expect("partial ran");
    assert_eq!(
        spoken, 1,
        "the first clause was voiced before the partial pass ran"
    );
    assert!(waited > Duration::ZERO);

    feeder.await.unwrap();
    let mut completed = None;
    while let Some(e) = p.events.recv().await {
        if let PipelineEvent::TurnCompleted { timings, .. } = e {
            completed = Some(timings);
        }
    }
    // The clause's wait for the cores is in the turn's timings.
    let timings = completed.expect("turn completed");
    assert!(timings.cpu_wait > Duration::ZERO, "{timings:?}");
    tracker.close();
    tracker.wait().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_conversation_is_refused_while_the_cores_are_saturated() {
    let backends = fake_backends(Arc::new(ToneBank::default()));
    let metrics = Arc::new(Metrics::default());
    let svc = SessionService::new(
        Arc::clone(&backends),
        Arc::clone(&metrics),
        None,
        TaskTracker::new(),
        CancellationToken::new(),
    );
    // A lone caller is admitted whatever the load.
    let none = CancellationToken::new();
    let held = backends
        .cpu
        .acquire(Priority::Transcript, &none)
        .await
        .unwrap();
    tokio::time::sleep(3 * LOAD_WINDOW).await;
    let first = svc
        .admit("grpc", "default")
        .expect("the first caller is admitted");
    // With one conversation open and the cores saturated for seconds, the next is refused.
    match svc.admit("webrtc", "default") {
        Err(OpenError::Overloaded { retry_after, .. }) => {
            assert!(retry_after > Duration::ZERO)
        }
        Err(e) => panic!("refused for the wrong reason: {e}"),
        Ok(_) => panic!("admitted past capacity"),
    }
    assert_eq!(metrics.refusals("webrtc", "overload"), 1);
    assert_eq!(metrics.refusals("grpc", "overload"), 0);
    assert!(metrics
        .render_prometheus()
        .contains("vaak_sessions_refused_by_total{transport=\"webrtc\",reason=\"overload\"} 1"));
    // The load passes: callers are admitted again.
    drop(held);
    tokio::time::sleep(3 * LOAD_WINDOW).await;
    let second = svc
        .admit("webrtc", "default")
        .expect("admitted once the load has passed");
    drop((first, second));
}
