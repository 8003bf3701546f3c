//! Helpers shared by the integration tests: where the eval clips and the binary are, running
//! `vaak` as a user would, and making test WAV files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `../shared/eval` (or `$VAAK_EVAL_DIR`); panics with a clear message if absent.
pub fn eval_dir() -> PathBuf {
    let dir = std::env::var_os("VAAK_EVAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/eval"));
    assert!(
        dir.join("en/jfk.wav").is_file(),
        "eval clips not found at {} (set VAAK_EVAL_DIR)",
        dir.display()
    );
    dir
}

pub fn vaak() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vaak"));
    c.env("VAAK_LOG", "warn");
    c
}

pub fn run(args: &[&str]) -> Output {
    let out = vaak().args(args).output().expect("run vaak");
    eprintln!(
        "$ vaak {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A command's success and its stdout + stderr; panics naming the program if it cannot start.
pub fn ran(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `program args` through [`ran`].
pub fn sh(program: &str, args: &[&str]) -> (bool, String) {
    ran(Command::new(program).args(args))
}

/// A local port nobody listens on, for a daemon that binds it later. Taken below the kernel's
/// ephemeral range (32768–60999), where neither `:0` binds nor the outgoing connections of other
/// processes can take it in between (seen: the container's gRPC port, found free by `:0`, was
/// in use by the time the daemon bound it). Test processes start at different points (pid).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(97) % COUNT;
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(FIRST + (start + n * 7) % COUNT).expect("below 32000");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT);
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `vaak converse --json` and returns the parsed report.
pub fn converse_json(input: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "converse",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "converse failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("converse --json prints JSON")
}

/// Runs `vaak transcribe` on a file.
pub fn transcribe(input: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["transcribe", input.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "transcribe failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("transcribe prints JSON")
}

/// Whether a reply's audio is speech, as Whisper hears it (decoded in `lang`; `None` detects):
/// at least three words, and, given what the reply said, at least half of its words heard (a
/// word counts when a heard word starts the same: Whisper may write "dialog" for "dialogue").
/// A tone, a hum or codec noise fails. Returns what was heard, or why it is not speech.
pub fn heard_reply(wav: &Path, lang: Option<&str>, said: Option<&str>) -> Result<String, String> {
    let extra: Vec<&str> = lang.map(|l| vec!["--language", l]).unwrap_or_default();
    let t = transcribe(wav, &extra);
    let heard = t["text"].as_str().unwrap_or("").to_lowercase();
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() >= 3)
            .map(|w| w.chars().take(5).collect())
            .collect()
    };
    let heard_words = words(&heard);
    if heard.split_whitespace().count() < 3 {
        return Err(format!("Whisper heard {heard:?} in the reply: not speech"));
    }
    if let Some(said) = said {
        let said_words = words(&said.to_lowercase());
        let hits = said_words
            .iter()
            .filter(|w| heard_words.contains(w))
            .count();
        if said_words.is_empty() || hits * 2 < said_words.len() {
            return Err(format!(
                "Whisper heard {heard:?} in the reply; it said {said:?} ({hits} of {} words heard)",
                said_words.len()
            ));
        }
    }
    Ok(heard)
}

/// Whether audio's loudness rises and falls as speech does: measured over 20 ms windows, a
/// good share are much quieter than the loud ones (the gaps between syllables and words) and
/// the level varies widely. A steady tone, a hum or broadband noise has neither.
pub fn syllabic_rhythm(samples: &[i16], rate: u32) -> Result<(), String> {
    let window = (rate as usize / 50).max(1);
    let levels: Vec<f64> = samples.chunks_exact(window).map(rms_i16).collect();
    if levels.len() < 25 {
        return Err(format!("only {} ms of audio", levels.len() * 20));
    }
    let mut sorted = levels.clone();
    sorted.sort_by(f64::total_cmp);
    let loud = sorted[sorted.len() * 9 / 10].max(1.0);
    let quiet = levels.iter().filter(|&&l| l < loud / 10.0).count() as f64 / levels.len() as f64;
    let mean = levels.iter().sum::<f64>() / levels.len() as f64;
    let sd = (levels.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / levels.len() as f64).sqrt();
    let variation = sd / mean.max(1e-9);
    if quiet >= 0.05 && variation >= 0.4 {
        Ok(())
    } else {
        Err(format!(
            "{:.0}% of 20 ms windows are 20 dB below the loud ones (speech: ≥ 5%), level \
             variation {variation:.2} (speech: ≥ 0.4)",
            quiet * 100.0
        ))
    }
}

/// Reads a WAV (must be 16-bit PCM mono) and returns (samples, rate).
pub fn read_pcm16(path: &Path) -> (Vec<i16>, u32) {
    let mut r = hound::WavReader::open(path).expect("valid WAV");
    let spec = r.spec();
    assert_eq!(spec.bits_per_sample, 16, "16-bit PCM");
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    assert_eq!(spec.channels, 1);
    let s: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    (s, spec.sample_rate)
}

pub fn rms_i16(s: &[i16]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    (s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / s.len() as f64).sqrt() / 32768.0
}

/// Writes `samples` (mono f32 at `rate`) as a WAV with `channels` identical channels.
pub fn write_wav(path: &Path, samples: &[f32], rate: u32, channels: u16, bits: u16) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if bits == 32 {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        for _ in 0..channels {
            if bits == 32 {
                w.write_sample(s).unwrap();
            } else {
                w.write_sample((s * 32767.0) as i16).unwrap();
            }
        }
    }
    w.finalize().unwrap();
}

pub fn read_f32(path: &Path) -> (Vec<f32>, u32) {
    vaak::audio::wav::read_mono(path).expect("readable wav")
}

pub fn is_script(text: &str, lo: u32, hi: u32) -> bool {
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let inside = letters
        .iter()
        .filter(|&&c| (lo..=hi).contains(&(c as u32)))
        .count();
    !letters.is_empty() && inside as f32 / letters.len() as f32 > 0.9
}

/// Value of `key=` in a plain-text tracing line (`… vaak ready grpc=127.0.0.1:5 …`).
pub fn log_field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    Some(
        line[start..]
            .split_whitespace()
            .next()?
            .trim_matches('"')
            .to_string(),
    )
}

/// The real backends of the default model set, loaded as `vaak serve` loads them (off the
/// runtime), with the tracker and token that own the worker supervisor.
pub async fn load_backends(
    config: std::sync::Arc<vaak::config::Config>,
) -> (
    vaak::backend::Backends,
    tokio_util::task::TaskTracker,
    tokio_util::sync::CancellationToken,
) {
    use vaak::models::{self, ModelSet, ModelStore};
    let resolved = models::resolve(&ModelStore::default_location(), ModelSet::Default)
        .expect("models fetched (scripts/test.sh does it)");
    let tracker = tokio_util::task::TaskTracker::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (t, s) = (tracker.clone(), shutdown.clone());
    let (backends, _) = tokio::task::spawn_blocking(move || {
        vaak::backend::Backends::load(config, &resolved, &t, s)
    })
    .await
    .expect("load task")
    .expect("backends load");
    (backends, tracker, shutdown)
}

/// The machine's busiest processes, for a failure message: a test that times out on a shared
/// two-core machine is often starved by a process another test left behind.
pub fn busiest_processes() -> String {
    Command::new("ps")
        .args(["-eo", "pid,ppid,pcpu,rss,etimes,comm", "--sort=-pcpu"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .take(8)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_else(|e| format!("(ps failed: {e})"))
}

/// `Err(message)` unless `cond` (a scenario's check in the daemon tests).
#[allow(unused_macros)]
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {{
        let holds: bool = $cond;
        if !holds {
            return Err(format!($($fmt)+));
        }
    }};
}

/// `Err` with the client's output unless `cond`.
#[allow(unused_macros)]
macro_rules! ensure {
    ($cond:expr, $run:expr, $($fmt:tt)+) => {
        let holds: bool = $cond;
        if !holds {
            return Err(format!("{}\n{}", format!($($fmt)+), $run.show()));
        }
    };
}

/// The first clip (by name) of a language's eval set.
pub fn first_clip(lang: &str) -> String {
    let mut wavs: Vec<_> = std::fs::read_dir(eval_dir().join(lang))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    wavs.sort();
    wavs[0].to_string_lossy().into_owned()
}

/// The value of the unlabelled series `name` in a `/metrics` text.
pub fn metric_value(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (series, value) = l.split_once(' ')?;
        (series == name).then(|| value.trim().parse().ok())?
    })
}
