//! The LLM can be a remote OpenAI-compatible server. These tests start a real one — llama.cpp's
//! `llama-server` (built by `scripts/llama-server.sh`, path in `$VAAK_TEST_LLAMA_SERVER`)
//! serving the small registry GGUF (`$VAAK_TEST_LLM_GGUF`) — stream from it, kill it mid-reply,
//! and check that the embedded `vaak-llm` worker takes over, as it does in the daemon.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::common::{free_port, load_backends};
use vaak::backend::llm::fallback::{FallbackLlm, FallbackPolicy};
use vaak::backend::llm::openai::{Endpoint, OpenAiClient};
use vaak::backend::llm::worker::{self, WorkerHandle, WorkerSpec};
use vaak::backend::llm::{ChatMessage, ChatRequest, Llm, LlmError, LlmEvent, LlmStream, Role};
use vaak::config::{Config, LlmKind};

/// A file named by an environment variable; a missing one fails the test (tests never skip).
fn required_file(var: &str, how: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("${var} is not set: {how}"));
    assert!(
        path.is_file(),
        "${var} = {} is not a file: {how}",
        path.display()
    );
    path
}

fn llama_server_bin() -> PathBuf {
    required_file(
        "VAAK_TEST_LLAMA_SERVER",
        "build llama.cpp's server with scripts/llama-server.sh and export its last output line \
         (scripts/test.sh does both)",
    )
}

fn small_gguf() -> PathBuf {
    required_file(
        "VAAK_TEST_LLM_GGUF",
        "run `vaak models fetch --set small` and point it at SmolLM2-135M-Instruct.Q4_1.gguf \
         (scripts/test.sh does both)",
    )
}

/// A running `llama-server` child; killed when dropped.
pub(crate) struct LlamaServer {
    child: Child,
    pub(crate) url: String,
    log: tempfile::NamedTempFile,
}

impl LlamaServer {
    pub(crate) async fn start() -> Self {
        let (bin, gguf) = (llama_server_bin(), small_gguf());
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("temp log file");
        let child = Command::new(&bin)
            .arg("--model")
            .arg(&gguf)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--ctx-size", "2048", "--parallel", "1", "--threads", "2"])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log file"))
            .stderr(log.reopen().expect("log file"))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        server.wait_healthy(Duration::from_secs(60)).await;
        server
    }

    /// Polls `/health` until it answers 200 (the model is loaded), within `limit`.
    async fn wait_healthy(&mut self, limit: Duration) {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!("llama-server exited ({status}):\n{}", self.log_tail());
            }
            let health = http
                .get(format!("{}/health", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                eprintln!(
                    "llama-server healthy at {} after {:.1} s",
                    self.url,
                    started.elapsed().as_secs_f32()
                );
                return;
            }
            assert!(
                started.elapsed() < limit,
                "llama-server not healthy within {limit:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn client(&self) -> OpenAiClient {
        OpenAiClient::new(
            Endpoint::Fixed(self.url.clone()),
            "smollm2-135m".into(),
            None,
            Duration::from_secs(2),
        )
        .expect("HTTP client")
    }
}

/// The embedded worker on the small GGUF, supervised as in the daemon.
async fn start_worker(tracker: &TaskTracker, shutdown: CancellationToken) -> WorkerHandle {
    let spec = WorkerSpec {
        binary: worker::locate_binary(None).expect("vaak-llm built with the workspace"),
        model: small_gguf(),
        threads: 2,
        ctx_size: 2048,
        max_slots: 1,
        hung_after: Duration::from_secs(20),
        gpu: None,
    };
    let handle = worker::supervise(spec, tracker, shutdown).expect("worker starts");
    handle
        .ready(Duration::from_secs(120))
        .await
        .expect("worker ready");
    handle
}

fn request(text: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::new(Role::User, text)],
        max_tokens,
        temperature: 0.0,
        session_key: Some("remote-llm-test".into()),
    }
}

/// The text of a whole reply and the error that ended it, if any.
async fn drain(mut stream: LlmStream) -> (String, Option<LlmError>, bool) {
    let (mut text, mut done) = (String::new(), false);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(LlmEvent::Delta(d)) => text.push_str(&d),
            Ok(LlmEvent::Done(_)) => done = true,
            Err(e) => return (text, Some(e), done),
        }
    }
    (text, None, done)
}

/// Counts the requests that reach an `Llm`.
struct Counted {
    inner: Arc<dyn Llm>,
    calls: AtomicUsize,
}

impl Llm for Counted {
    fn stream_chat(&self, req: ChatRequest) -> BoxFuture<'_, Result<LlmStream, LlmError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.stream_chat(req)
    }
}

fn test_policy() -> FallbackPolicy {
    FallbackPolicy {
        retries: 1,
        open_timeout: Duration::from_secs(2),
        first_token_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(5),
        cooldown: Duration::from_secs(30),
        retry_backoff: Duration::from_millis(100),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_server_streams_a_reply() {
    let started = Instant::now();
    let server = LlamaServer::start().await;
    let stream = server
        .client()
        .stream_chat(request("Say hello in one short sentence.", 32))
        .await
        .expect("llama-server accepts the request");
    let (text, err, done) = drain(stream).await;
    assert!(err.is_none(), "{err:?}");
    assert!(done, "the reply ends with [DONE]");
    assert!(!text.trim().is_empty(), "a real reply");
    eprintln!(
        "llama-server said {text:?}; {:.1} s in all",
        started.elapsed().as_secs_f32()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_llama_server_costs_one_reply_then_the_worker_answers() {
    let started = Instant::now();
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let (mut server, handle) = tokio::join!(
        LlamaServer::start(),
        start_worker(&tracker, shutdown.clone())
    );
    let primary = Arc::new(Counted {
        inner: Arc::new(server.client()),
        calls: AtomicUsize::new(0),
    });
    let fallback = OpenAiClient::new(
        Endpoint::Worker(handle.endpoint.clone()),
        "vaak-llm".into(),
        None,
        Duration::from_secs(10),
    )
    .expect("HTTP client");
    let llm = FallbackLlm::new(
        Arc::clone(&primary) as Arc<dyn Llm>,
        Some(Arc::new(fallback)),
        test_policy(),
    );

    // The server is streaming a reply when it is killed: the turn keeps what it said and ends
    // with an error.
    let mut stream = llm
        .stream_chat(request("Count from one to one hundred in words.", 400))
        .await
        .expect("llama-server answers while alive");
    let first = stream.next().await.expect("a first event");
    let Ok(LlmEvent::Delta(first)) = first else {
        panic!("expected text first, got {first:?}");
    };
    server.child.start_kill().expect("SIGKILL llama-server");
    server.child.wait().await.expect("llama-server reaped");
    let (rest, err, done) = drain(stream).await;
    assert!(!first.is_empty());
    assert!(
        err.is_some() && !done,
        "a reply cut by the server's death must end with an error; got {rest:?}, done={done}"
    );
    eprintln!("cut after {:?}: {err:?}", format!("{first}{rest}"));
    assert!(!llm.primary_healthy(), "the dead server is cooling down");
    assert_eq!(llm.fallbacks(), 0, "the reply in flight is not re-asked");

    // The next turn goes straight to the worker, without trying the dead server.
    let t = Instant::now();
    let stream = llm
        .stream_chat(request("Say hello.", 32))
        .await
        .expect("the worker answers");
    let (text, err, _) = drain(stream).await;
    assert!(err.is_none(), "{err:?}");
    assert!(!text.trim().is_empty());
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "fallback took {:?}",
        t.elapsed()
    );
    assert_eq!(primary.calls.load(Ordering::SeqCst), 1, "not re-tried");
    assert_eq!(llm.fallbacks(), 1);
    eprintln!(
        "worker answered {text:?} {:.1} s after the kill; {:.1} s in all",
        t.elapsed().as_secs_f32(),
        started.elapsed().as_secs_f32()
    );

    shutdown.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(15), tracker.wait())
        .await
        .expect("supervisor stops");
}

/// The daemon's own wiring (`Backends::load` with `llm.kind = "openai"`): a server nobody
/// listens on costs nothing but a refused connection; the embedded worker answers turn one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_falls_back_to_the_worker_on_the_first_turn() {
    let started = Instant::now();
    let mut config = Config::default();
    config.llm.kind = LlmKind::Openai;
    config.llm.openai.base_url = format!("http://127.0.0.1:{}", free_port());
    config.llm.openai.model = "nobody".into();
    config.llm.openai.retries = 1;
    config.llm.openai.fallback_to_worker = true;
    config.llm.worker.model = Some(small_gguf());
    config.llm.worker.ctx_size = 2048;
    config.llm.worker.max_slots = 1;
    let config = Arc::new(config);
    let (backends, tracker, shutdown) = load_backends(Arc::clone(&config)).await;
    backends
        .worker
        .as_ref()
        .expect("the fallback worker is started with a remote LLM")
        .ready(Duration::from_secs(120))
        .await
        .expect("worker ready");

    let t = Instant::now();
    let stream = backends
        .llm
        .stream_chat(request("Say hello.", 32))
        .await
        .expect("the fallback answers");
    let (text, err, done) = drain(stream).await;
    assert!(err.is_none(), "{err:?}");
    assert!(done && !text.trim().is_empty(), "{text:?}");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "first turn took {:?}",
        t.elapsed()
    );
    eprintln!(
        "worker answered {text:?} in {:.1} s; {:.1} s in all",
        t.elapsed().as_secs_f32(),
        started.elapsed().as_secs_f32()
    );

    shutdown.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(15), tracker.wait())
        .await
        .expect("supervisor stops");
}
