//! `vaak bench store`: what the session store costs a turn, for the store the config names
//! (the SQLite file, or a PostgreSQL shared by replicas): the time to write one exchange (each
//! turn's save) and to load a session's history (each resume), p50/p95 over many sessions.

use std::time::Instant;

use crate::config::SessionsConfig;
use crate::conversation::Exchange;
use crate::metrics::{summarize, Summary};
use crate::session::store::{self, StoreError};

/// Latency of the two calls a conversation makes.
#[derive(Debug)]
pub struct StoreBench {
    pub store: String,
    pub write: Summary,
    pub resume: Summary,
}

/// Writes `turns` exchanges spread over `sessions` sessions (a typical Hindi exchange each),
/// then loads every session once; every session is deleted afterwards.
pub fn bench_store(
    config: &SessionsConfig,
    sessions: usize,
    turns: usize,
) -> Result<StoreBench, StoreError> {
    let store = store::open(config)?;
    let exchange = Exchange {
        user: "नमस्ते, कल दिल्ली में मौसम कैसा रहेगा?".into(),
        assistant: "कल दिल्ली में धूप रहेगी और तापमान लगभग तीस डिग्री रहेगा।".into(),
        language: "hi".into(),
        interrupted: false,
        mixed: false,
    };
    let run = std::process::id();
    let id = |s: usize| format!("bench-{run}-{s}");
    let mut writes = Vec::with_capacity(turns);
    for t in 0..turns {
        let started = Instant::now();
        store.append("bench", &id(t % sessions.max(1)), &exchange, 64)?;
        writes.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mut loads = Vec::with_capacity(sessions);
    for s in 0..sessions {
        let started = Instant::now();
        store.load("bench", &id(s))?;
        loads.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    for s in 0..sessions {
        store.delete("bench", &id(s))?;
    }
    Ok(StoreBench {
        store: format!("{store:?}"),
        write: summarize(&writes, writes.len() as u64),
        resume: summarize(&loads, loads.len() as u64),
    })
}
