//! `vaak bench soak`: how many mostly-listening conversations one box holds. N gRPC sessions
//! stream quiet room noise in real time (as open microphones do between questions) while one
//! more asks eval questions now and then; over the window the daemon's CPU time and resident
//! memory are sampled from `/proc`. Per level it prints the sessions held to the end, those
//! refused or dropped, CPU per listening session (% of one core), resident memory per session
//! and its slope over the window, and the questions answered with their p50/p95 latency.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use super::latency::{self, ChildDaemon, LatencyError, CHUNK_MS};
use super::Clip;
use crate::audio::{pcm, PIPELINE_RATE};
use crate::metrics::summarize;
use crate::proto::{self, client_message::Msg, vaak_client::VaakClient};

/// Level of the room noise the listeners stream (well under the VAD's speech threshold).
const NOISE_AMPLITUDE: f32 = 0.003;
/// Resident memory is sampled this often.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Listeners open this long before the measured window starts (connections settle).
const SETTLE: Duration = Duration::from_secs(3);

/// One level's result.
#[derive(Debug, Clone)]
pub struct SoakLevel {
    pub listeners: usize,
    /// Listeners still streaming when the window ended.
    pub held: usize,
    /// Listeners refused at admission or dropped (with the first reason seen).
    pub lost: usize,
    pub lost_reason: Option<String>,
    pub window_s: f64,
    /// The daemon's CPU over the window, per listener, % of one core (the questions' turns
    /// included: they are what the listeners' share of the box has to leave room for).
    pub cpu_per_listener_pct: f64,
    pub rss_idle_mib: f64,
    pub rss_end_mib: f64,
    /// Growth of resident memory over the window, MiB per minute (least squares).
    pub rss_slope_mib_per_min: f64,
    pub asked: usize,
    pub answered: usize,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
}

impl SoakLevel {
    /// Resident memory each listener costs, MiB.
    pub fn rss_per_listener_mib(&self) -> f64 {
        (self.rss_end_mib - self.rss_idle_mib) / self.listeners.max(1) as f64
    }

    pub fn render(&self) -> String {
        let lat = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        format!(
            "{:>5} listeners: held {:>4}, lost {:>3}{} | CPU {:.2} % of a core each | RSS {:.0} → {:.0} MiB ({:.2} MiB each, slope {:+.2} MiB/min) | questions {}/{} answered, p50 {} ms, p95 {} ms | {:.0} s\n",
            self.listeners,
            self.held,
            self.lost,
            self.lost_reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            self.cpu_per_listener_pct,
            self.rss_idle_mib,
            self.rss_end_mib,
            self.rss_per_listener_mib(),
            self.rss_slope_mib_per_min,
            self.answered,
            self.asked,
            lat(self.latency_p50_ms),
            lat(self.latency_p95_ms),
            self.window_s,
        )
    }
}

/// `VmRSS` of `pid`, MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time of `pid` so far (user + system), seconds.
fn cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks / hz)
}

/// Least-squares slope of `(t_s, mib)` samples, MiB per minute.
fn slope_per_min(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mt, mv) = samples
        .iter()
        .fold((0.0, 0.0), |(a, b), (t, v)| (a + t / n, b + v / n));
    let (num, den) = samples.iter().fold((0.0, 0.0), |(num, den), (t, v)| {
        (num + (t - mt) * (v - mv), den + (t - mt) * (t - mt))
    });
    if den == 0.0 {
        0.0
    } else {
        num / den * 60.0
    }
}

/// One listening session: quiet noise in real time until `until`; `Err` if it was refused or
/// dropped on the way.
async fn listen(addr: String, until: Instant, seed: u32) -> Result<(), String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut client = VaakClient::new(channel);
    let (tx, rx) = mpsc::channel::<proto::ClientMessage>(8);
    let config = proto::ClientMessage {
        msg: Some(Msg::Config(proto::SessionConfig::default())),
    };
    tx.send(config).await.map_err(|_| "stream closed")?;
    let mut events = client
        .converse(tonic::Request::new(ReceiverStream::new(rx)))
        .await
        .map_err(|s| format!("{:?}", s.code()))?
        .into_inner();
    let samples = (PIPELINE_RATE as u64 * CHUNK_MS / 1000) as usize;
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(CHUNK_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    loop {
        tokio::select! {
            biased;
            ev = events.message() => match ev {
                Ok(Some(_)) => {}
                Ok(None) => return Err("the stream ended".into()),
                Err(s) => return Err(format!("{:?}", s.code())),
            },
            _ = tick.tick() => {
                if Instant::now() >= until {
                    return Ok(());
                }
                let chunk: Vec<u8> = (0..samples)
                    .flat_map(|_| {
                        // xorshift: cheap, deterministic room noise.
                        state ^= state << 13;
                        state ^= state >> 17;
                        state ^= state << 5;
                        let s = (state as f32 / u32::MAX as f32 * 2.0 - 1.0) * NOISE_AMPLITUDE;
                        pcm::f32_to_i16(s).to_le_bytes()
                    })
                    .collect();
                let audio = proto::ClientMessage { msg: Some(Msg::Audio(chunk)) };
                if tx.send(audio).await.is_err() {
                    return Err("the stream closed".into());
                }
            }
        }
    }
}

/// Holds `listeners` listening sessions for at least `window` while one more session asks
/// `questions` (played one after another, each answered before the next).
pub async fn run_level(
    daemon: &ChildDaemon,
    listeners: usize,
    window: Duration,
    questions: &[Clip],
) -> Result<SoakLevel, LatencyError> {
    let pid = daemon
        .pid()
        .ok_or_else(|| LatencyError::Daemon("the daemon is gone".into()))?;
    let rss_idle = rss_mib(pid).unwrap_or(0.0);
    let until = Instant::now() + SETTLE + window;
    let handles: Vec<_> = (0..listeners)
        .map(|i| tokio::spawn(listen(daemon.addr.clone(), until, i as u32 + 1)))
        .collect();
    tokio::time::sleep(SETTLE).await;
    let started = Instant::now();
    let cpu_start = cpu_s(pid).unwrap_or(0.0);
    let sampling = async {
        let mut rss = Vec::new();
        while Instant::now() < until {
            if let Some(m) = rss_mib(pid) {
                rss.push((started.elapsed().as_secs_f64(), m));
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        rss
    };
    let asking = async {
        if questions.is_empty() {
            return Ok(Vec::new());
        }
        latency::run(&daemon.addr, None, questions, 1, latency::Transport::Grpc)
            .await
            .map(|r| r.samples)
    };
    let (asked, rss) = tokio::join!(asking, sampling);
    let cpu = cpu_s(pid).unwrap_or(0.0) - cpu_start;
    let window_s = started.elapsed().as_secs_f64();
    let rss_end = rss_mib(pid).unwrap_or(0.0);
    let (mut held, mut lost, mut lost_reason) = (0, 0, None);
    for h in handles {
        match h.await {
            Ok(Ok(())) => held += 1,
            Ok(Err(e)) => {
                lost += 1;
                lost_reason.get_or_insert(e);
            }
            Err(e) => {
                lost += 1;
                lost_reason.get_or_insert(e.to_string());
            }
        }
    }
    let samples = asked?;
    let latencies: Vec<f64> = samples.iter().filter_map(|s| s.latency_ms).collect();
    let summary = (!latencies.is_empty()).then(|| summarize(&latencies, latencies.len() as u64));
    Ok(SoakLevel {
        listeners,
        held,
        lost,
        lost_reason,
        window_s,
        cpu_per_listener_pct: 100.0 * cpu / window_s.max(1e-3) / listeners.max(1) as f64,
        rss_idle_mib: rss_idle,
        rss_end_mib: rss_end,
        rss_slope_mib_per_min: slope_per_min(&rss),
        asked: samples.len(),
        answered: latencies.len(),
        latency_p50_ms: summary.as_ref().map(|s| s.p50_ms),
        latency_p95_ms: summary.as_ref().map(|s| s.p95_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_noise() {
        let line: Vec<(f64, f64)> = (0..60)
            .map(|t| (t as f64, 100.0 + t as f64 / 60.0))
            .collect();
        assert!((slope_per_min(&line) - 1.0).abs() < 1e-9);
        assert_eq!(slope_per_min(&[(0.0, 5.0)]), 0.0);
        let flat: Vec<(f64, f64)> = (0..10).map(|t| (t as f64, 7.0)).collect();
        assert_eq!(slope_per_min(&flat), 0.0);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        assert!(rss_mib(me).is_some_and(|m| m > 0.0));
        assert!(cpu_s(me).is_some_and(|c| c >= 0.0));
    }
}
