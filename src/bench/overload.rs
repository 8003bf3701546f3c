//! `vaak bench overload`: an open-loop load generator. Conversations of one spoken question
//! arrive at a fixed rate whatever happens to the ones before (as callers do), so past capacity
//! the daemon must refuse some. Reports what a production operator asks of admission: how many
//! were admitted and refused (with which status and retry hint), whether every admitted
//! question was answered, and the latency the admitted ones kept.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::latency::{one_question, LatencyError, TurnSample};
use super::Clip;
use crate::metrics::{summarize, Summary};

/// What one arrival got.
#[derive(Debug)]
pub enum Outcome {
    Answered(TurnSample),
    /// Admitted, but no reply audio (a failed or unanswered turn).
    Unanswered(String),
    Refused {
        code: String,
        retry_after_ms: Option<u64>,
    },
    /// The connection or the stream failed outside admission.
    Failed(String),
}

pub struct OverloadReport {
    pub rate_per_s: f64,
    pub seconds: u64,
    pub outcomes: Vec<Outcome>,
}

impl OverloadReport {
    fn latencies(&self) -> Vec<f64> {
        self.outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Answered(t) => t.latency_ms,
                _ => None,
            })
            .collect()
    }

    pub fn latency(&self) -> Summary {
        let l = self.latencies();
        summarize(&l, l.len() as u64)
    }

    pub fn render(&self) -> String {
        let count = |f: fn(&Outcome) -> bool| self.outcomes.iter().filter(|o| f(o)).count();
        let answered = count(|o| matches!(o, Outcome::Answered(_)));
        let unanswered = count(|o| matches!(o, Outcome::Unanswered(_)));
        let failed = count(|o| matches!(o, Outcome::Failed(_)));
        let mut refused: BTreeMap<&str, (usize, Vec<f64>)> = BTreeMap::new();
        for o in &self.outcomes {
            if let Outcome::Refused {
                code,
                retry_after_ms,
            } = o
            {
                let e = refused.entry(code.as_str()).or_default();
                e.0 += 1;
                e.1.extend(retry_after_ms.map(|ms| ms as f64));
            }
        }
        let l = self.latency();
        let mut out = format!(
            "offered {} conversations at {:.2}/s for {} s: answered {answered}, admitted but \
             unanswered {unanswered}, refused {}, failed {failed}\n",
            self.outcomes.len(),
            self.rate_per_s,
            self.seconds,
            refused.values().map(|(n, _)| n).sum::<usize>(),
        );
        out += &format!(
            "  answered: end of speech → first reply audio p50 {:.0} ms, p95 {:.0} ms\n",
            l.p50_ms, l.p95_ms
        );
        for (code, (n, hints)) in &refused {
            let h = summarize(hints, hints.len() as u64);
            out += &format!(
                "  refused {code}: {n}, retry hint given to {} (p50 {:.0} ms)\n",
                hints.len(),
                h.p50_ms
            );
        }
        for o in &self.outcomes {
            if let Outcome::Unanswered(why) | Outcome::Failed(why) = o {
                out += &format!("  ! {why}\n");
            }
        }
        out
    }
}

/// Offers `rate_per_s` one-question conversations a second for `seconds` (clips round-robin),
/// then waits for every one to end.
pub async fn run(
    addr: &str,
    api_key: Option<String>,
    clips: &[Clip],
    rate_per_s: f64,
    seconds: u64,
) -> OverloadReport {
    let n = (rate_per_s * seconds as f64).round().max(1.0) as usize;
    let gap = Duration::from_secs_f64(1.0 / rate_per_s.max(0.001));
    let started = Instant::now();
    let mut arrivals = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until((started + gap * i as u32).into()).await;
        let (addr, key, clip) = (
            addr.to_string(),
            api_key.clone(),
            clips[i % clips.len()].clone(),
        );
        arrivals.push(tokio::spawn(async move {
            match one_question(&addr, key, &clip).await {
                Ok(t) if t.latency_ms.is_some() => Outcome::Answered(t),
                Ok(t) => Outcome::Unanswered(format!(
                    "{}: {}",
                    t.clip,
                    t.error.unwrap_or_else(|| "no reply audio".into())
                )),
                Err(LatencyError::Refused {
                    code,
                    retry_after_ms,
                    ..
                }) => Outcome::Refused {
                    code,
                    retry_after_ms,
                },
                Err(e) => Outcome::Failed(e.to_string()),
            }
        }));
    }
    let mut outcomes = Vec::with_capacity(n);
    for a in arrivals {
        outcomes.push(a.await.unwrap_or_else(|e| Outcome::Failed(e.to_string())));
    }
    OverloadReport {
        rate_per_s,
        seconds,
        outcomes,
    }
}
