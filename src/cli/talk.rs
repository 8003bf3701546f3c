//! `vaak converse`, `vaak transcribe` and `vaak kiosk`: one person talking to vaak here.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};

use tokio_util::sync::CancellationToken;

use super::{load_recognisers, parse_set, runtime, store_for, with_backends};
use vaak::config::Config;
use vaak::converse::{converse, ConverseRequest};
use vaak::metrics::Metrics;
use vaak::models;

pub(crate) fn converse_cmd(
    config: Config,
    input: &Path,
    out: &Path,
    language: Option<String>,
    rate: f32,
    min_silence_ms: u32,
    json: bool,
) -> Result<()> {
    let languages = match language {
        Some(l) => {
            if !config.pipeline.languages.contains(&l) {
                bail!(
                    "unknown language `{l}`: configured languages are {}",
                    config.pipeline.languages.join(", ")
                );
            }
            vec![l]
        }
        None => config.pipeline.languages.clone(),
    };
    // Check the input before loading any model: bad files fail fast.
    vaak::audio::wav::WavSource::open(input)?;
    let rt = runtime()?;
    rt.block_on(async {
        let report = with_backends(config, |backends, shutdown, tracker| async move {
            let stop = shutdown.clone();
            // Owned by the tracker like every other task; aborted once the turn is done.
            let ctrl_c = tracker.spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    stop.cancel();
                }
            });
            let report = converse(
                backends,
                ConverseRequest {
                    input,
                    output: out,
                    languages,
                    speech_rate: rate,
                    min_silence_ms,
                },
                Arc::new(Metrics::default()),
                shutdown,
            )
            .await;
            ctrl_c.abort();
            Ok(report?)
        })
        .await?;
        if json {
            println!("{}", vaak::converse::report_json(&report, out));
        } else {
            print!("{}", vaak::converse::report_text(&report, out));
        }
        Ok(())
    })
}

pub(crate) fn kiosk_cmd(mut config: Config, list_devices: bool, push_to_talk: bool) -> Result<()> {
    use vaak::transport::kiosk;
    if list_devices {
        let (inputs, outputs) = kiosk::devices::list();
        println!("input devices:\n  {}", inputs.join("\n  "));
        println!("output devices:\n  {}", outputs.join("\n  "));
        return Ok(());
    }
    if push_to_talk {
        config.kiosk.wake = vaak::config::Wake::PushToTalk;
    }
    kiosk::check_offline(&config)?;
    // Every model must be here already: the kiosk fetches nothing (this names a missing one).
    let store = store_for(&config);
    let resolved = models::resolve(&store, parse_set(&config.models.set)?)?;
    let config = Arc::new(config);
    let rt = runtime()?;
    rt.block_on(async {
        let tracker = tokio_util::task::TaskTracker::new();
        let shutdown = CancellationToken::new();
        let (cfg, t, s) = (Arc::clone(&config), tracker.clone(), shutdown.clone());
        let loaded = tokio::task::spawn_blocking(move || {
            vaak::backend::Backends::load(cfg, &resolved, &t, s)
        })
        .await?;
        let result = async {
            let backends = Arc::new(loaded?.0);
            if let Some(w) = &backends.worker {
                w.ready(vaak::backend::llm::worker::STARTUP_TIMEOUT)
                    .await
                    .map_err(|e| kiosk::KioskError::Worker(e.to_string()))?;
            }
            kiosk::run(Arc::clone(&config), backends, CancellationToken::new()).await;
            anyhow::Ok(())
        }
        .await;
        shutdown.cancel();
        tracker.close();
        let _ = tokio::time::timeout(vaak::daemon::DRAIN_DEADLINE, tracker.wait()).await;
        result
    })
}

pub(crate) fn transcribe_cmd(
    config: &Config,
    input: &Path,
    language: Option<String>,
    stream: bool,
) -> Result<()> {
    use vaak::backend::asr::streaming::{stream_file, StreamConfig};
    use vaak::backend::asr::LanguageHint;
    let (pcm, rate) = vaak::audio::wav::read_mono(input)?;
    let pcm = vaak::audio::resample::resample_all(&pcm, rate, vaak::audio::PIPELINE_RATE)?;
    // A remote recogniser (asr.remote) makes its requests on this runtime.
    let rt = tokio::runtime::Runtime::new()?;
    let _rt = rt.enter();
    let asr = load_recognisers(config)?;
    let hint = match language {
        Some(l) => LanguageHint::Fixed(l),
        None => LanguageHint::DetectAmong(config.pipeline.languages.clone()),
    };
    let cancel = CancellationToken::new();
    let t = if stream {
        let mut spent = 0.0f32;
        let cfg = StreamConfig::from_config(&config.asr, config.vad.speech_pad_ms, asr.streams());
        stream_file(
            asr.as_ref(),
            cfg,
            &pcm,
            hint,
            vaak::bench::eval::STREAM_CHUNK_MS,
            &cancel,
            |at, s| {
                let committed = s.committed_text();
                let text = s.text();
                let tentative = text[committed.len().min(text.len())..].trim();
                let window_s = s.window_len() as f32 / vaak::audio::PIPELINE_RATE as f32;
                let pass_ms = (s.compute_s - std::mem::replace(&mut spent, s.compute_s)) * 1000.0;
                println!(
                    "[{at:6.2} s] {committed} ‖ {tentative}   ({window_s:.1} s window, {pass_ms:.0} ms)"
                );
            },
        )?
    } else {
        asr.transcribe(&pcm, &hint, &cancel)?
    };
    println!(
        "{}",
        serde_json::json!({
            // As the recognition endpoints return it: a decoder loop cut to one phrase.
            "text": vaak::text::reply_guard::without_loops(&t.text),
            "language": t.language,
            "language_prob": t.language_prob,
            "candidates": t.candidates,
            "audio_s": t.audio_s,
            "elapsed_s": t.elapsed_s,
        })
    );
    Ok(())
}

/// `vaak serve`: the daemon, until SIGTERM/SIGINT.
pub(crate) fn serve_cmd(config: Config) -> Result<()> {
    let resolved = models::resolve(&store_for(&config), parse_set(&config.models.set)?)?;
    runtime()?.block_on(vaak::daemon::serve(
        Arc::new(config),
        resolved,
        CancellationToken::new(),
    ))?;
    Ok(())
}
