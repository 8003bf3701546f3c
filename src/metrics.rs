//! Process-wide counters and latency summaries: stage latency, dropped audio, stale messages,
//! interruptions. Cheap to update from any task; read by `serve` logs and benchmarks.

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
    /// Replies started at a short pause / abandoned because the user went on.
    pub speculative_started: AtomicU64,
    pub speculative_abandoned: AtomicU64,
    /// Short speech over a reply that did not interrupt it.
    pub backchannels: AtomicU64,
    pub language_switches: AtomicU64,
    pub sessions_opened: AtomicU64,
    pub sessions_refused: AtomicU64,
    latencies: Mutex<BTreeMap<&'static str, Series>>,
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
