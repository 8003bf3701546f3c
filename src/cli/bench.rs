//! `vaak bench …`: stage timings, voice-to-voice latency, soak, overload, store and TTS.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{interleave, parse_set, runtime, store_for, with_backends};
use vaak::config::Config;
use vaak::models;

/// Which daemon `bench latency` measures, and how it reaches it.
pub(crate) struct LatencyTarget {
    /// A running daemon; `None` = start one.
    pub(crate) addr: Option<String>,
    pub(crate) api_key: Option<String>,
    pub(crate) transport: vaak::bench::latency::Transport,
}

pub(crate) fn bench_tts_cmd(
    mut config: Config,
    languages: &[String],
    repeats: usize,
    threads: Option<usize>,
) -> Result<()> {
    if let Some(t) = threads {
        config.tts.onnx_threads = t;
    }
    let resolved = models::resolve(&store_for(&config), parse_set(&config.models.set)?)?;
    let plan = vaak::backend::device::Plan::for_machine(&config.compute);
    let onnx = vaak::backend::onnx::OnnxRuntime::for_plan(
        &config.compute,
        &resolved.onnxruntime_lib,
        &plan,
    )?;
    let assets = vaak::backend::tts::TtsAssets::of(&resolved);
    let voices = vaak::backend::tts::Voices::build(&config.tts, &assets, &onnx)?;
    let rows =
        vaak::bench::tts::bench_tts(&voices, languages, repeats).map_err(anyhow::Error::msg)?;
    print!(
        "{}",
        vaak::bench::tts::render(&rows, config.tts.onnx_threads)
    );
    Ok(())
}

pub(crate) fn bench_latency_cmd(
    config: Config,
    manifests: &[PathBuf],
    clips: usize,
    sessions: &[usize],
    target: LatencyTarget,
    json: bool,
) -> Result<()> {
    use vaak::bench::latency;
    let LatencyTarget {
        addr,
        api_key,
        transport,
    } = target;
    let clips = interleave(manifests, clips)?;
    anyhow::ensure!(!clips.is_empty(), "the manifests list no clips");
    let rt = runtime()?;
    rt.block_on(async {
        let (addr, child) = match addr {
            Some(a) => (a, None),
            None => {
                eprintln!("starting vaak serve for the benchmark …");
                let d = latency::ChildDaemon::start(&config).await?;
                let addr = match transport {
                    latency::Transport::Grpc => d.addr.clone(),
                    latency::Transport::AudioSocket => d.audiosocket.clone().ok_or_else(|| {
                        anyhow::anyhow!("the daemon reported no AudioSocket address")
                    })?,
                };
                (addr, Some(d))
            }
        };
        let mut reports = Vec::new();
        for &n in sessions {
            eprintln!("{n} concurrent session(s), {} clips …", clips.len());
            let r = latency::run(&addr, api_key.clone(), &clips, n.max(1), transport).await?;
            if !json {
                print!("{}", r.render());
            }
            reports.push(r.to_json());
        }
        if json {
            println!("{}", serde_json::Value::Array(reports));
        }
        if let Some(d) = child {
            if let Some((daemon, worker)) = d.peak_rss_mib() {
                let worker = worker.map_or("no worker".into(), |w| format!("{w:.0} MiB"));
                eprintln!("peak RSS: daemon {daemon:.0} MiB, LLM worker {worker}");
            }
            d.stop().await;
        }
        Ok(())
    })
}

pub(crate) fn bench_soak_cmd(
    mut config: Config,
    sessions: &[usize],
    seconds: u64,
    manifests: &[PathBuf],
    questions: usize,
) -> Result<()> {
    use vaak::bench::{latency, soak};
    let clips = if questions == 0 {
        Vec::new()
    } else {
        interleave(manifests, questions)?
    };
    // Room for the largest level and its asking session; admission stays load-aware.
    let most = sessions.iter().copied().max().unwrap_or(1);
    config.server.max_sessions = config.server.max_sessions.max(most as u32 + 1);
    let rt = runtime()?;
    rt.block_on(async {
        eprintln!("starting vaak serve for the benchmark …");
        let d = latency::ChildDaemon::start(&config).await?;
        for &n in sessions {
            eprintln!(
                "{n} listening sessions for {seconds} s, {} questions …",
                clips.len()
            );
            let window = std::time::Duration::from_secs(seconds);
            let level = soak::run_level(&d, n, window, &clips).await?;
            print!("{}", level.render());
        }
        d.stop().await;
        Ok(())
    })
}

pub(crate) fn bench_cmd(config: Config, manifest: &Path, clips: usize) -> Result<()> {
    let all = vaak::bench::read_manifest(manifest)?;
    let languages = config.pipeline.languages.clone();
    let rt = runtime()?;
    let report = rt.block_on(with_backends(config, |backends, _, _| async {
        Ok(vaak::bench::bench_turn(backends, &all, clips, &languages).await?)
    }))?;
    print!("{}", report.render());
    Ok(())
}

pub(crate) fn bench_overload_cmd(
    config: Config,
    manifests: &[PathBuf],
    rate: f64,
    seconds: u64,
    addr: Option<String>,
    api_key: Option<String>,
) -> Result<()> {
    anyhow::ensure!(rate > 0.0 && rate.is_finite(), "--rate must be above 0");
    let clips = interleave(manifests, 64)?;
    anyhow::ensure!(!clips.is_empty(), "the manifests list no clips");
    runtime()?.block_on(async {
        let (addr, child) = match addr {
            Some(a) => (a, None),
            None => {
                eprintln!("starting vaak serve for the benchmark …");
                let d = vaak::bench::latency::ChildDaemon::start(&config).await?;
                (d.addr.clone(), Some(d))
            }
        };
        let r = vaak::bench::overload::run(&addr, api_key, &clips, rate, seconds).await;
        print!("{}", r.render());
        if let Some(d) = child {
            d.stop().await;
        }
        Ok(())
    })
}

pub(crate) fn bench_store_cmd(config: &Config, sessions: usize, turns: usize) -> Result<()> {
    let r = vaak::bench::store::bench_store(&config.sessions, sessions, turns)?;
    println!("{}", r.store);
    println!("| call | n | p50 ms | p95 ms |\n|---|---|---|---|");
    for (what, s) in [("turn write", &r.write), ("resume (load)", &r.resume)] {
        println!(
            "| {what} | {} | {:.2} | {:.2} |",
            s.count, s.p50_ms, s.p95_ms
        );
    }
    Ok(())
}
