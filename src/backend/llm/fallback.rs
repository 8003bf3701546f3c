//! Retries, time-outs and fallback for an LLM that can fail on its own — a remote
//! OpenAI-compatible server — as one wrapper around any two [`Llm`]s, so no backend carries its
//! own copy. With the embedded worker as the fallback, a dead or hung server costs one slow
//! turn, not the conversation.
//!
//! What happens to a request:
//! - **Before the primary's first event** nothing has been said, so everything is recoverable.
//!   A refused connection, HTTP 408/429/5xx or a stream that breaks before its first event is
//!   re-sent up to `retries` times. A primary that opens no stream within `open_timeout`, or
//!   gives no first event within `first_token_timeout` of being asked, is hung: it is not asked
//!   again. Whatever the failure, the request then goes to the fallback.
//! - **After the first event** the reply belongs to the primary. If it dies or stalls for
//!   `idle_timeout` mid-reply, the stream ends with that error: the turn keeps what was already
//!   said. (Handing a half-spoken sentence to a different model to finish would need it to
//!   continue someone else's words, which small models do badly; a clean stop is better.)
//! - **Any primary failure marks it down for `cooldown`**: meanwhile requests go straight to the
//!   fallback, so a dead server costs one turn, not one time-out per turn. When the cool-down
//!   ends, the next request probes the primary (requests that arrive while the probe is
//!   waiting keep using the fallback); a first event marks it up again.
//! - **Without a fallback** the wrapper still retries and enforces the time-outs, and always
//!   asks the primary.
//!
//! The future returned by `stream_chat` resolves once the primary has produced its first event
//! (the stream starts with it) or the fallback's stream is open, so a caller's own first-token
//! deadline covers the fallback alone.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{ChatRequest, Llm, LlmError, LlmEvent, LlmStream};
use crate::config::LlmConfig;

/// How long a failed primary is left alone before it is probed again.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);
/// Pause before the first re-send; doubles with each further one.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Limits applied to the primary.
#[derive(Debug, Clone)]
pub struct FallbackPolicy {
    /// Re-sends after a recoverable failure before the first event.
    pub retries: u32,
    /// Longest wait for the primary to open its stream (response headers).
    pub open_timeout: Duration,
    /// Longest wait for the primary's first event, counted from asking it (open included).
    pub first_token_timeout: Duration,
    /// Longest gap between two events mid-reply.
    pub idle_timeout: Duration,
    /// How long a failed primary is skipped (only when there is a fallback).
    pub cooldown: Duration,
    /// Pause before the first re-send (doubles each time).
    pub retry_backoff: Duration,
}

impl FallbackPolicy {
    /// The policy for a remote server from the LLM config.
    pub fn for_remote(llm: &LlmConfig, has_fallback: bool) -> Self {
        let first = Duration::from_millis(llm.first_token_timeout_ms);
        let idle = Duration::from_millis(llm.idle_timeout_ms);
        Self {
            retries: llm.openai.retries,
            open_timeout: Duration::from_millis(llm.connect_timeout_ms),
            // With somewhere else to go, a silent server gets half of the turn's first-token
            // budget, so that the fallback still answers in reasonable time.
            first_token_timeout: if has_fallback { first / 2 } else { first },
            // A little under the LLM stage's own idle deadline, so that a stall is seen here
            // (and the primary marked down) before the stage drops the stream.
            idle_timeout: idle - idle / 10,
            cooldown: DEFAULT_COOLDOWN,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
        }
    }
}

/// A primary [`Llm`] with retries and time-outs, and an optional fallback (see the module docs).
pub struct FallbackLlm {
    primary: Arc<dyn Llm>,
    fallback: Option<Arc<dyn Llm>>,
    policy: FallbackPolicy,
    health: Arc<Health>,
    fallbacks: AtomicU64,
}

impl FallbackLlm {
    pub fn new(
        primary: Arc<dyn Llm>,
        fallback: Option<Arc<dyn Llm>>,
        policy: FallbackPolicy,
    ) -> Self {
        Self {
            primary,
            fallback,
            policy,
            health: Arc::new(Health::default()),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Requests answered (or attempted) by the fallback so far.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// False while the primary is cooling down after a failure.
    pub fn primary_healthy(&self) -> bool {
        self.health.is_up()
    }

    async fn ask(&self, req: ChatRequest) -> Result<LlmStream, LlmError> {
        let Some(fallback) = &self.fallback else {
            return self.open_primary(req).await;
        };
        match self.health.claim(self.policy.cooldown) {
            Claim::Up | Claim::Probe => match self.open_primary(req.clone()).await {
                Ok(stream) => return Ok(stream),
                Err(e) => warn!(
                    error = %Brief(&e),
                    cooldown_s = self.policy.cooldown.as_secs(),
                    "primary LLM failed before its first token; answering with the fallback"
                ),
            },
            Claim::Down => debug!("primary LLM cooling down; answering with the fallback"),
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        fallback.stream_chat(req).await
    }

    /// Opens the primary, re-sending after recoverable failures; marks it up or down.
    async fn open_primary(&self, req: ChatRequest) -> Result<LlmStream, LlmError> {
        let p = &self.policy;
        let mut backoff = p.retry_backoff;
        let mut attempt = 0;
        loop {
            match self.attempt(req.clone()).await {
                Ok(stream) => {
                    if self.health.up() {
                        info!("primary LLM answers again");
                    }
                    return Ok(watch_reply(
                        stream,
                        Arc::clone(&self.health),
                        p.idle_timeout,
                        p.cooldown,
                    ));
                }
                Err(Failure {
                    error,
                    retryable: true,
                }) if attempt < p.retries => {
                    attempt += 1;
                    warn!(
                        attempt,
                        of = p.retries,
                        error = %Brief(&error),
                        "re-sending to the primary LLM"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                Err(Failure { error, .. }) => {
                    self.health.down(p.cooldown);
                    return Err(error);
                }
            }
        }
    }

    /// One try at the primary: its stream, starting with the first event already received.
    async fn attempt(&self, req: ChatRequest) -> Result<LlmStream, Failure> {
        let p = &self.policy;
        let deadline = Instant::now() + p.first_token_timeout;
        let open_limit = p.open_timeout.min(p.first_token_timeout);
        let mut stream = match tokio::time::timeout(open_limit, self.primary.stream_chat(req)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(Failure::classify(e)),
            Err(_) => {
                return Err(Failure::hung(LlmError::Stream(format!(
                    "no response within {open_limit:?}"
                ))))
            }
        };
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(first))) => Ok(futures::stream::once(async { Ok(first) })
                .chain(stream)
                .boxed()),
            Ok(Some(Err(e))) => Err(Failure::classify(e)),
            Ok(None) => Err(Failure {
                error: LlmError::Stream("stream ended before its first event".into()),
                retryable: true,
            }),
            Err(_) => Err(Failure::hung(LlmError::FirstTokenTimeout(
                p.first_token_timeout,
            ))),
        }
    }
}

impl Llm for FallbackLlm {
    fn fallbacks(&self) -> u64 {
        FallbackLlm::fallbacks(self)
    }

    fn stream_chat(&self, req: ChatRequest) -> BoxFuture<'_, Result<LlmStream, LlmError>> {
        self.ask(req).boxed()
    }

    /// Only the primary is asked: a prefill is a head start, never worth a fallback.
    fn prefill(&self, req: ChatRequest) -> BoxFuture<'_, Result<bool, LlmError>> {
        self.primary.prefill(req)
    }

    /// As the primary: the worker behind a remote server answers only while it is down.
    fn on_local_cores(&self) -> bool {
        self.primary.on_local_cores()
    }
}

/// A failure before the first event, and whether re-sending may help.
struct Failure {
    error: LlmError,
    retryable: bool,
}

impl Failure {
    fn classify(error: LlmError) -> Self {
        let retryable = match &error {
            LlmError::Unreachable { .. } | LlmError::WorkerDown | LlmError::Stream(_) => true,
            LlmError::Http { status, .. } => matches!(status, 408 | 429 | 500..=599),
            LlmError::FirstTokenTimeout(_) | LlmError::StreamStalled(_) => false,
        };
        Self { error, retryable }
    }

    /// A server that does not answer in time is not asked again.
    fn hung(error: LlmError) -> Self {
        Self {
            error,
            retryable: false,
        }
    }
}

/// Passes the primary's reply through; a mid-reply error or stall ends it and marks the
/// primary down.
fn watch_reply(
    stream: LlmStream,
    health: Arc<Health>,
    idle: Duration,
    cooldown: Duration,
) -> LlmStream {
    futures::stream::unfold(Some(stream), move |state| {
        let health = Arc::clone(&health);
        async move {
            let mut stream = state?;
            match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(Ok(LlmEvent::Done(usage)))) => Some((Ok(LlmEvent::Done(usage)), None)),
                Ok(Some(Ok(event))) => Some((Ok(event), Some(stream))),
                Ok(Some(Err(e))) => {
                    health.down(cooldown);
                    warn!(
                        error = %Brief(&e),
                        "primary LLM failed mid-reply; the next turns use the fallback"
                    );
                    Some((Err(e), None))
                }
                Ok(None) => None,
                Err(_) => {
                    health.down(cooldown);
                    warn!(
                        idle_ms = idle.as_millis() as u64,
                        "primary LLM stalled mid-reply; the next turns use the fallback"
                    );
                    Some((Err(LlmError::StreamStalled(idle)), None))
                }
            }
        }
    })
    .boxed()
}

/// Whether the primary may be asked: `down_until` is `None` while it is up.
#[derive(Default)]
struct Health {
    down_until: Mutex<Option<Instant>>,
}

enum Claim {
    Up,
    /// The cool-down is over: this request probes the primary.
    Probe,
    Down,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // The guarded value is a plain `Option<Instant>`: a panic elsewhere cannot leave it
        // half-written, so a poisoned lock is still usable.
        self.down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn claim(&self, cooldown: Duration) -> Claim {
        let mut until = self.lock();
        match *until {
            None => Claim::Up,
            Some(t) if Instant::now() >= t => {
                // Others keep using the fallback until this probe has an answer.
                *until = Some(Instant::now() + cooldown);
                info!("probing the primary LLM after its cool-down");
                Claim::Probe
            }
            Some(_) => Claim::Down,
        }
    }

    /// Marks the primary up; true if it was down.
    fn up(&self) -> bool {
        self.lock().take().is_some()
    }

    fn down(&self, cooldown: Duration) {
        *self.lock() = Some(Instant::now() + cooldown);
    }

    fn is_up(&self) -> bool {
        self.lock().is_none()
    }
}

/// An error for the log, without the server's response body (which may quote the prompt).
struct Brief<'a>(&'a LlmError);

impl fmt::Display for Brief<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            LlmError::Http { status, .. } => write!(f, "HTTP {status}"),
            other => other.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::backend::fake::ScriptedLlm;
    use crate::backend::llm::{ChatMessage, Role};

    /// What the scripted primary does with one request.
    #[derive(Clone, Copy)]
    enum Act {
        Refuse,
        Http(u16),
        /// Opens its stream, then never sends anything.
        Hang,
        /// Sends `n` words, then the connection breaks.
        DieAfter(usize),
        /// Sends one word, then goes silent.
        StallAfterOne,
        Answer,
    }

    /// A primary that follows a script, one act per request (the last one repeats).
    struct Primary {
        acts: Mutex<VecDeque<Act>>,
        calls: AtomicUsize,
    }

    impl Primary {
        fn new(acts: &[Act]) -> Arc<Self> {
            Arc::new(Self {
                acts: Mutex::new(acts.iter().copied().collect()),
                calls: AtomicUsize::new(0),
            })
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl Llm for Primary {
        fn stream_chat(&self, _req: ChatRequest) -> BoxFuture<'_, Result<LlmStream, LlmError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let act = {
                let mut acts = self.acts.lock().unwrap();
                if acts.len() > 1 {
                    acts.pop_front().unwrap()
                } else {
                    *acts.front().unwrap()
                }
            };
            let word = |w: &str| Ok(LlmEvent::Delta(w.to_string()));
            async move {
                match act {
                    Act::Refuse => Err(LlmError::Unreachable {
                        endpoint: "primary".into(),
                        detail: "connection refused".into(),
                    }),
                    Act::Http(status) => Err(LlmError::Http {
                        status,
                        body: "secret prompt text".into(),
                    }),
                    Act::Hang => Ok(futures::stream::pending().boxed()),
                    Act::DieAfter(n) => {
                        let words: Vec<_> = (0..n).map(|_| word("primary ")).collect();
                        Ok(futures::stream::iter(words)
                            .chain(futures::stream::once(async {
                                Err(LlmError::Stream("connection reset".into()))
                            }))
                            .boxed())
                    }
                    Act::StallAfterOne => {
                        Ok(futures::stream::once(async move { word("primary ") })
                            .chain(futures::stream::pending())
                            .boxed())
                    }
                    Act::Answer => Ok(futures::stream::iter(vec![
                        word("primary "),
                        word("answer"),
                        Ok(LlmEvent::Done(None)),
                    ])
                    .boxed()),
                }
            }
            .boxed()
        }
    }

    fn policy() -> FallbackPolicy {
        FallbackPolicy {
            retries: 2,
            open_timeout: Duration::from_secs(1),
            first_token_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(3),
            cooldown: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(100),
        }
    }

    fn fallback() -> Arc<ScriptedLlm> {
        Arc::new(ScriptedLlm::new(
            "fallback answer",
            Duration::from_millis(50),
            Duration::from_millis(10),
        ))
    }

    fn request() -> ChatRequest {
        ChatRequest {
            messages: vec![ChatMessage::new(Role::User, "hello")],
            max_tokens: 16,
            temperature: 0.0,
            session_key: None,
        }
    }

    /// The text of a whole reply, and the error that ended it, if any.
    async fn reply(llm: &FallbackLlm) -> (String, Option<LlmError>) {
        let mut stream = match llm.stream_chat(request()).await {
            Ok(s) => s,
            Err(e) => return (String::new(), Some(e)),
        };
        let mut text = String::new();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(LlmEvent::Delta(d)) => text.push_str(&d),
                Ok(LlmEvent::Done(_)) => {}
                Err(e) => return (text, Some(e)),
            }
        }
        (text, None)
    }

    /// The text of a reply that must end cleanly.
    async fn clean_reply(llm: &FallbackLlm) -> String {
        let (text, err) = reply(llm).await;
        assert!(err.is_none(), "{err:?}");
        text
    }

    fn with_fallback(primary: &Arc<Primary>, fb: &Arc<ScriptedLlm>) -> FallbackLlm {
        FallbackLlm::new(
            Arc::clone(primary) as Arc<dyn Llm>,
            Some(Arc::clone(fb) as Arc<dyn Llm>),
            policy(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn healthy_primary_answers() {
        let (primary, fb) = (Primary::new(&[Act::Answer]), fallback());
        let llm = with_fallback(&primary, &fb);
        assert_eq!(clean_reply(&llm).await, "primary answer");
        assert_eq!(llm.fallbacks(), 0);
        assert!(fb.requests.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn refused_primary_is_retried_then_fallback_answers() {
        let (primary, fb) = (Primary::new(&[Act::Refuse]), fallback());
        let llm = with_fallback(&primary, &fb);
        let t = Instant::now();
        assert_eq!(clean_reply(&llm).await, "fallback answer");
        assert_eq!(primary.calls(), 3, "one try and two retries");
        assert_eq!(llm.fallbacks(), 1);
        assert!(!llm.primary_healthy());
        // Back-off 100 ms + 200 ms, then the fallback's 50 + 10 ms.
        assert!(
            t.elapsed() < Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_can_recover_the_primary() {
        let (primary, fb) = (Primary::new(&[Act::Http(503), Act::Answer]), fallback());
        let llm = with_fallback(&primary, &fb);
        assert_eq!(clean_reply(&llm).await, "primary answer");
        assert_eq!(primary.calls(), 2);
        assert_eq!(llm.fallbacks(), 0);
        assert!(llm.primary_healthy());
    }

    #[tokio::test(start_paused = true)]
    async fn client_errors_are_not_retried() {
        let (primary, fb) = (Primary::new(&[Act::Http(400), Act::Answer]), fallback());
        let llm = with_fallback(&primary, &fb);
        assert_eq!(clean_reply(&llm).await, "fallback answer");
        assert_eq!(primary.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn hung_primary_is_abandoned_after_the_first_token_timeout() {
        let (primary, fb) = (Primary::new(&[Act::Hang]), fallback());
        let llm = with_fallback(&primary, &fb);
        let t = Instant::now();
        assert_eq!(clean_reply(&llm).await, "fallback answer");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_millis(2_200),
            "{took:?}"
        );
        assert_eq!(primary.calls(), 1, "a hung server is not asked twice");
        assert_eq!(llm.fallbacks(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn primary_dying_mid_reply_ends_the_turn_and_the_next_goes_to_the_fallback() {
        let (primary, fb) = (Primary::new(&[Act::DieAfter(2), Act::Answer]), fallback());
        let llm = with_fallback(&primary, &fb);
        let (text, err) = reply(&llm).await;
        assert_eq!(text, "primary primary ", "what was said is kept");
        assert!(matches!(err, Some(LlmError::Stream(_))), "{err:?}");
        assert_eq!(llm.fallbacks(), 0, "no fallback within a started reply");
        assert!(!llm.primary_healthy());

        let t = Instant::now();
        assert_eq!(clean_reply(&llm).await, "fallback answer");
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "no waiting on the dead primary"
        );
        assert_eq!(primary.calls(), 1, "the primary is cooling down");
        assert_eq!(llm.fallbacks(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn primary_stalling_mid_reply_ends_the_turn_with_a_stall() {
        let (primary, fb) = (Primary::new(&[Act::StallAfterOne]), fallback());
        let llm = with_fallback(&primary, &fb);
        let (text, err) = reply(&llm).await;
        assert_eq!(text, "primary ");
        assert!(matches!(err, Some(LlmError::StreamStalled(_))), "{err:?}");
        assert!(!llm.primary_healthy());
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_cooldown_the_primary_is_probed_again() {
        let (primary, fb) = (
            Primary::new(&[Act::Refuse, Act::Refuse, Act::Refuse, Act::Answer]),
            fallback(),
        );
        let llm = with_fallback(&primary, &fb);
        assert_eq!(clean_reply(&llm).await, "fallback answer");
        assert_eq!(primary.calls(), 3);

        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(clean_reply(&llm).await, "fallback answer");
        assert_eq!(primary.calls(), 3, "still cooling down");

        tokio::time::advance(Duration::from_secs(21)).await;
        assert_eq!(clean_reply(&llm).await, "primary answer");
        assert_eq!(primary.calls(), 4, "probed once, and it answered");
        assert!(llm.primary_healthy());
        assert_eq!(clean_reply(&llm).await, "primary answer");
        assert_eq!(llm.fallbacks(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_restarts_the_cooldown() {
        let (primary, fb) = (Primary::new(&[Act::Hang]), fallback());
        let llm = with_fallback(&primary, &fb);
        reply(&llm).await;
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(clean_reply(&llm).await, "fallback answer");
        assert_eq!(primary.calls(), 2, "probed");
        assert_eq!(clean_reply(&llm).await, "fallback answer");
        assert_eq!(primary.calls(), 2, "cooling down again");
        assert_eq!(llm.fallbacks(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_fallback_the_primary_error_surfaces_after_retries() {
        let primary = Primary::new(&[Act::Refuse]);
        let llm = FallbackLlm::new(Arc::clone(&primary) as Arc<dyn Llm>, None, policy());
        let (_, err) = reply(&llm).await;
        assert!(matches!(err, Some(LlmError::Unreachable { .. })), "{err:?}");
        assert_eq!(primary.calls(), 3);
        // Nothing else to ask: the primary is asked again right away.
        reply(&llm).await;
        assert_eq!(primary.calls(), 6);
    }

    #[test]
    fn logged_errors_leave_out_the_response_body() {
        let e = LlmError::Http {
            status: 500,
            body: "secret prompt text".into(),
        };
        assert_eq!(Brief(&e).to_string(), "HTTP 500");
    }

    #[test]
    fn remote_policy_follows_the_config() {
        let mut cfg = LlmConfig {
            first_token_timeout_ms: 20_000,
            idle_timeout_ms: 10_000,
            ..LlmConfig::default()
        };
        cfg.openai.retries = 3;
        let p = FallbackPolicy::for_remote(&cfg, true);
        assert_eq!(p.retries, 3);
        assert_eq!(p.first_token_timeout, Duration::from_secs(10));
        assert_eq!(p.idle_timeout, Duration::from_secs(9));
        let p = FallbackPolicy::for_remote(&cfg, false);
        assert_eq!(p.first_token_timeout, Duration::from_secs(20));
    }
}
