//! Process-wide counters and latency summaries: stage latency, dropped audio, stale messages,
//! interruptions, calls. Cheap to update from any task; read by benchmarks and served by
//! `vaak serve` as Prometheus text at `GET /metrics` ([`Metrics::render_prometheus`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency samples kept per series (a ring: the most recent ones).
const WINDOW: usize = 2_048;

#[derive(Default)]
pub struct Metrics {
    pub audio_chunks_dropped: AtomicU64,
    pub stale_messages_dropped: AtomicU64,
    pub interruptions: AtomicU64,
    pub turns_completed: AtomicU64,
    pub turns_failed: AtomicU64,
    /// Prefills of a turn still being spoken into the LLM worker's cache.
    pub llm_prefills: AtomicU64,
    /// Turns answered with "please say that again" (a recogniser loop, a foreign script).
    pub turns_unclear: AtomicU64,
    /// Reply clauses withheld for being in the wrong script or for reading the user's words
    /// back; replies asked for again after saying nothing worth hearing; replies replaced by
    /// the fixed sentence after a second such miss.
    pub reply_clauses_wrong_script: AtomicU64,
    pub reply_clauses_echoed: AtomicU64,
    pub replies_regenerated: AtomicU64,
    pub replies_fallback: AtomicU64,
    /// Replies started at a short pause / abandoned because the user went on.
    pub speculative_started: AtomicU64,
    pub speculative_abandoned: AtomicU64,
    /// Turns whose words at a pause sounded finished (their end came sooner) / unfinished
    /// (their end waited longer).
    pub turn_ends_sooner: AtomicU64,
    pub turn_ends_later: AtomicU64,
    /// Short speech over a reply that did not interrupt it.
    pub backchannels: AtomicU64,
    /// Speech over a reply of a session with barge-in off: not heard (the reply plays out).
    pub speech_over_reply_ignored: AtomicU64,
    /// Streaming recognition passes run, skipped (every decode slot busy: a partial is never
    /// queued) and failed (their audio stays for the next pass).
    pub asr_passes: AtomicU64,
    pub asr_passes_skipped: AtomicU64,
    pub asr_pass_failures: AtomicU64,
    /// Jobs the CPU scheduler dropped after waiting past their deadline (partials, prefills).
    pub cpu_jobs_shed: AtomicU64,
    pub language_switches: AtomicU64,
    /// Turns kept in the session's language although detection said otherwise (hysteresis).
    pub language_holds: AtomicU64,
    /// Turns in a language mixed with English (Hinglish and its kin).
    pub code_switched_turns: AtomicU64,
    /// Exchanges the session store could not save when asked (kept in memory, saved later).
    pub history_saves_failed: AtomicU64,
    pub sessions_opened: AtomicU64,
    pub sessions_refused: AtomicU64,
    /// Phone calls: keypad presses, hand-offs to the provider's next step (a human), calls
    /// closed for a protocol error, refused callers who heard the busy prompt.
    pub dtmf_digits: AtomicU64,
    pub call_handoffs: AtomicU64,
    pub call_protocol_errors: AtomicU64,
    pub busy_prompts: AtomicU64,
    /// Browser calls: answered, refused at signalling, and the caller's lost audio packets
    /// (recovered from the next packet's FEC, or concealed).
    pub webrtc_calls: AtomicU64,
    pub webrtc_refused: AtomicU64,
    pub webrtc_fec_recovered: AtomicU64,
    pub webrtc_concealed: AtomicU64,
    latencies: Mutex<BTreeMap<&'static str, Series>>,
    /// Conversations refused at admission, by (transport, reason).
    refusals: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Requests to the OpenAI-compatible endpoints, by (endpoint, HTTP status).
    api_requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

#[derive(Default)]
struct Series {
    values: Vec<f64>,
    next: usize,
    count: u64,
}

/// p50/p95/p99 of one series, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

impl Metrics {
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts a conversation refused at admission.
    pub fn refused(&self, transport: &'static str, reason: &'static str) {
        let mut r = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        *r.entry((transport, reason)).or_default() += 1;
    }

    /// Counts a request to an OpenAI-compatible endpoint and the status it was answered with.
    pub fn api_request(&self, endpoint: &'static str, status: u16) {
        let mut r = self.api_requests.lock().unwrap_or_else(|p| p.into_inner());
        *r.entry((endpoint, status)).or_default() += 1;
    }

    /// Refusals so far of `transport` for `reason`.
    pub fn refusals(&self, transport: &'static str, reason: &'static str) -> u64 {
        let r = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        r.get(&(transport, reason)).copied().unwrap_or(0)
    }

    pub fn observe(&self, series: &'static str, d: Duration) {
        let mut map = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.entry(series).or_default();
        let v = d.as_secs_f64() * 1000.0;
        if s.values.len() < WINDOW {
            s.values.push(v);
        } else {
            s.values[s.next] = v;
        }
        s.next = (s.next + 1) % WINDOW;
        s.count += 1;
    }

    pub fn summary(&self, series: &str) -> Option<Summary> {
        let map = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.get(series)?;
        Some(summarize(&s.values, s.count))
    }

    pub fn series(&self) -> Vec<&'static str> {
        let map = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        map.keys().copied().collect()
    }

    pub fn counter(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Every counter: name, help text, value.
    fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        let c = Self::counter;
        vec![
            (
                "audio_chunks_dropped",
                "Realtime audio chunks dropped at a full input",
                c(&self.audio_chunks_dropped),
            ),
            (
                "stale_messages_dropped",
                "Messages of cancelled turns dropped on arrival",
                c(&self.stale_messages_dropped),
            ),
            (
                "interruptions",
                "Replies interrupted by the user",
                c(&self.interruptions),
            ),
            (
                "turns_completed",
                "Turns answered to the end",
                c(&self.turns_completed),
            ),
            (
                "turns_failed",
                "Turns that failed in a stage",
                c(&self.turns_failed),
            ),
            (
                "llm_prefills",
                "Prefills of a turn still being spoken into the LLM cache",
                c(&self.llm_prefills),
            ),
            (
                "turns_unclear",
                "Turns answered with a request to repeat (the transcript was too broken)",
                c(&self.turns_unclear),
            ),
            (
                "reply_clauses_wrong_script",
                "Reply clauses withheld before TTS for being in the wrong script",
                c(&self.reply_clauses_wrong_script),
            ),
            (
                "reply_clauses_echoed",
                "Reply clauses withheld before TTS for reading the user's words back",
                c(&self.reply_clauses_echoed),
            ),
            (
                "replies_regenerated",
                "Replies asked for again after saying nothing worth hearing",
                c(&self.replies_regenerated),
            ),
            (
                "replies_fallback",
                "Replies replaced by a fixed sentence after a second miss",
                c(&self.replies_fallback),
            ),
            (
                "speculative_started",
                "Replies started at a short pause",
                c(&self.speculative_started),
            ),
            (
                "speculative_abandoned",
                "Speculative replies abandoned because the user went on",
                c(&self.speculative_abandoned),
            ),
            (
                "turn_ends_sooner",
                "Pauses whose words sounded finished: the turn ended after turn.finished_pause_ms",
                c(&self.turn_ends_sooner),
            ),
            (
                "turn_ends_later",
                "Pauses whose words trailed off: the turn waited turn.unfinished_pause_ms",
                c(&self.turn_ends_later),
            ),
            (
                "backchannels",
                "Short speech over a reply that did not interrupt it",
                c(&self.backchannels),
            ),
            (
                "speech_over_reply_ignored",
                "Speech over a reply with barge-in off, not heard so the reply plays out",
                c(&self.speech_over_reply_ignored),
            ),
            (
                "asr_passes",
                "Streaming recognition passes run while users speak",
                c(&self.asr_passes),
            ),
            (
                "asr_passes_skipped",
                "Streaming recognition passes skipped because every decode slot was busy",
                c(&self.asr_passes_skipped),
            ),
            (
                "asr_pass_failures",
                "Streaming recognition passes that failed (the audio stays for the next)",
                c(&self.asr_pass_failures),
            ),
            (
                "cpu_jobs_shed",
                "Partial passes and prefills shed after waiting past their deadline for the CPU",
                c(&self.cpu_jobs_shed),
            ),
            (
                "language_switches",
                "Turns in another language than the turn before",
                c(&self.language_switches),
            ),
            (
                "language_holds",
                "Turns kept in the session's language although detection said otherwise",
                c(&self.language_holds),
            ),
            (
                "code_switched_turns",
                "Turns in a language mixed with English (Hinglish)",
                c(&self.code_switched_turns),
            ),
            (
                "history_saves_failed",
                "Exchanges the session store could not save when asked (kept in memory, saved when it answers)",
                c(&self.history_saves_failed),
            ),
            (
                "sessions_opened",
                "Sessions opened (gRPC streams, browser calls and phone calls)",
                c(&self.sessions_opened),
            ),
            (
                "sessions_refused",
                "Sessions refused at the max_sessions limit",
                c(&self.sessions_refused),
            ),
            (
                "dtmf_digits",
                "Keypad presses on phone calls",
                c(&self.dtmf_digits),
            ),
            (
                "call_handoffs",
                "Calls handed to the provider's next step by the hand-off key",
                c(&self.call_handoffs),
            ),
            (
                "call_protocol_errors",
                "Calls closed for a protocol or format error",
                c(&self.call_protocol_errors),
            ),
            (
                "busy_prompts",
                "Calls refused for want of room whose caller heard the busy prompt",
                c(&self.busy_prompts),
            ),
            (
                "webrtc_calls",
                "Browser calls answered",
                c(&self.webrtc_calls),
            ),
            (
                "webrtc_refused",
                "Browser call offers refused (auth, bad SDP, limits)",
                c(&self.webrtc_refused),
            ),
            (
                "webrtc_fec_recovered",
                "Lost caller audio frames rebuilt from the next packet's Opus FEC",
                c(&self.webrtc_fec_recovered),
            ),
            (
                "webrtc_concealed",
                "Lost caller audio frames filled by Opus packet-loss concealment",
                c(&self.webrtc_concealed),
            ),
        ]
    }

    /// Prometheus text exposition: `vaak_<counter>_total` counters and, per latency series,
    /// a `vaak_<series>_ms` summary (p50/p95/p99 over the most recent samples, and a count).
    pub fn render_prometheus(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for (name, help, value) in self.counters() {
            let _ = writeln!(out, "# HELP vaak_{name}_total {help}.");
            let _ = writeln!(out, "# TYPE vaak_{name}_total counter");
            let _ = writeln!(out, "vaak_{name}_total {value}");
        }
        let refusals = self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !refusals.is_empty() {
            let name = "vaak_sessions_refused_by_total";
            let _ = writeln!(out, "# HELP {name} Conversations refused at admission.");
            let _ = writeln!(out, "# TYPE {name} counter");
            for ((transport, reason), n) in refusals {
                let _ = writeln!(
                    out,
                    "{name}{{transport=\"{transport}\",reason=\"{reason}\"}} {n}"
                );
            }
        }
        let api = self
            .api_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !api.is_empty() {
            let name = "vaak_api_requests_total";
            let _ = writeln!(
                out,
                "# HELP {name} Requests to the OpenAI-compatible endpoints, by answer."
            );
            let _ = writeln!(out, "# TYPE {name} counter");
            for ((endpoint, status), n) in api {
                let _ = writeln!(
                    out,
                    "{name}{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
                );
            }
        }
        for series in self.series() {
            let Some(s) = self.summary(series) else {
                continue;
            };
            let name: String = series
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let _ = writeln!(
                out,
                "# HELP vaak_{name}_ms Latency of {series}, milliseconds."
            );
            let _ = writeln!(out, "# TYPE vaak_{name}_ms summary");
            for (q, v) in [("0.5", s.p50_ms), ("0.95", s.p95_ms), ("0.99", s.p99_ms)] {
                let _ = writeln!(out, "vaak_{name}_ms{{quantile=\"{q}\"}} {v:.1}");
            }
            let _ = writeln!(out, "vaak_{name}_ms_count {}", s.count);
        }
        out
    }
}

/// Nearest-rank percentile summary of `values` (milliseconds).
pub fn summarize(values: &[f64], count: u64) -> Summary {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    };
    Summary {
        count,
        p50_ms: pct(50.0),
        p95_ms: pct(95.0),
        p99_ms: pct(99.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarize(&v, 100);
        assert_eq!((s.p50_ms, s.p95_ms, s.p99_ms), (50.0, 95.0, 99.0));
        assert!(summarize(&[], 0).p50_ms.is_nan());
    }

    #[test]
    fn prometheus_text_has_counters_and_summaries() {
        let m = Metrics::default();
        Metrics::incr(&m.call_handoffs);
        m.observe("asr", Duration::from_millis(40));
        let text = m.render_prometheus();
        assert!(
            text.contains("# TYPE vaak_call_handoffs_total counter\nvaak_call_handoffs_total 1\n")
        );
        assert!(text.contains("vaak_asr_ms{quantile=\"0.95\"} 40.0\n"));
        assert!(text.contains("vaak_asr_ms_count 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(
                name.starts_with("vaak_") && value.parse::<f64>().is_ok(),
                "{line}"
            );
        }
    }

    #[test]
    fn observe_keeps_a_window() {
        let m = Metrics::default();
        for i in 0..(WINDOW + 10) {
            m.observe("x", Duration::from_millis(i as u64));
        }
        let s = m.summary("x").unwrap();
        assert_eq!(s.count, (WINDOW + 10) as u64);
        assert!(s.p50_ms > 10.0);
    }
}
