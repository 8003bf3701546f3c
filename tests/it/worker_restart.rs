//! The LLM worker is a supervised process: killing it mid-reply fails only the reply in flight;
//! the supervisor restarts it (on a new port) and the next request is answered. A worker that
//! hangs (stopped with SIGSTOP mid-reply) is found by its health check, killed and restarted
//! the same way, instead of holding every session's replies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::common::load_backends;
use vaak::backend::llm::{ChatMessage, ChatRequest, LlmEvent, Role};
use vaak::config::Config;

/// Pid of our child process named `name`.
fn child_named(name: &str) -> Option<u32> {
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let comm = stat
            .split('(')
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().nth(1));
        if comm == name && ppid == Some(&me.to_string()) {
            return Some(pid);
        }
    }
    None
}

fn request(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(Role::User, text)],
        max_tokens: 48,
        temperature: 0.0,
        session_key: Some("restart-test".into()),
    }
}

/// Reads `stream` to its end: the text and whether it ended with an error.
async fn read_all(stream: &mut vaak::backend::llm::LlmStream) -> (String, bool) {
    let mut text = String::new();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(LlmEvent::Delta(d)) => text.push_str(&d),
            Ok(_) => {}
            Err(_) => return (text, true),
        }
    }
    (text, false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_worker_is_killed_by_its_health_check_and_comes_back() {
    const HUNG_AFTER_MS: u64 = 3_000;
    let mut config = Config::default();
    config.llm.worker.hung_after_ms = HUNG_AFTER_MS;
    let (backends, tracker, shutdown) = load_backends(Arc::new(config)).await;
    let worker = backends.worker.clone().expect("embedded worker");
    let first_url = worker.ready(Duration::from_secs(180)).await.unwrap();
    let pid = child_named("vaak-llm").expect("worker is our child");

    let mut stream = backends
        .llm
        .stream_chat(request("Count from one to fifty in words."))
        .await
        .unwrap();
    let first = stream.next().await.expect("a first event");
    assert!(matches!(first, Ok(LlmEvent::Delta(_))), "{first:?}");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
    let stopped = Instant::now();
    let (_, failed) = tokio::time::timeout(Duration::from_secs(60), read_all(&mut stream))
        .await
        .expect("the reply in flight ends once the hung worker is killed");
    let waited = stopped.elapsed();
    assert!(
        failed,
        "the reply in flight ends with an error, not silently"
    );
    assert!(
        waited < Duration::from_millis(HUNG_AFTER_MS * 3),
        "the hung worker was killed {waited:?} after it stopped (hung_after {HUNG_AFTER_MS} ms)"
    );

    // Restarted: a new process on a new port answers the next request. (The reply fails as
    // soon as the process is killed; the supervisor may not have withdrawn its address yet.)
    tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let url = worker.ready(Duration::from_secs(120)).await.unwrap();
            if url != first_url {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a new worker process on a new port within 120 s");
    let mut stream = backends
        .llm
        .stream_chat(request("Say hello."))
        .await
        .expect("answered after restart");
    let (reply, failed) = read_all(&mut stream).await;
    assert!(!failed && !reply.trim().is_empty(), "{reply:?}");
    eprintln!(
        "hung worker killed {:.1} s after SIGSTOP, answering again {:.1} s after it",
        waited.as_secs_f32(),
        stopped.elapsed().as_secs_f32()
    );
    shutdown.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(15), tracker.wait())
        .await
        .expect("supervisor stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_costs_one_reply_and_comes_back() {
    let config = Arc::new(Config::default());
    let (backends, tracker, shutdown) = load_backends(Arc::clone(&config)).await;
    let worker = backends.worker.clone().expect("embedded worker");
    let first_url = worker.ready(Duration::from_secs(180)).await.unwrap();
    let pid = child_named("vaak-llm").expect("worker is our child");

    // A reply is streaming when the worker dies: that reply fails.
    let mut stream = backends
        .llm
        .stream_chat(request("Count from one to fifty in words."))
        .await
        .unwrap();
    let first = stream.next().await.expect("a first event");
    assert!(matches!(first, Ok(LlmEvent::Delta(_))), "{first:?}");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    let mut failed = false;
    while let Some(ev) = stream.next().await {
        if ev.is_err() {
            failed = true;
            break;
        }
    }
    assert!(
        failed,
        "the reply in flight must end with an error, not silently"
    );

    // The supervisor restarts it; the next request is answered by the new process.
    let started = Instant::now();
    let mut reply = String::new();
    let mut stream = backends
        .llm
        .stream_chat(request("Say hello."))
        .await
        .expect("answered after restart");
    while let Some(ev) = stream.next().await {
        if let LlmEvent::Delta(d) = ev.expect("clean stream after restart") {
            reply.push_str(&d);
        }
    }
    assert!(!reply.trim().is_empty());
    let second_url = worker.ready(Duration::from_secs(1)).await.unwrap();
    assert_ne!(first_url, second_url, "a new worker process on a new port");
    assert_ne!(child_named("vaak-llm"), Some(pid));
    eprintln!(
        "worker back and answering {:.1} s after the kill",
        started.elapsed().as_secs_f32()
    );

    shutdown.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(15), tracker.wait())
        .await
        .expect("supervisor stops");
}
