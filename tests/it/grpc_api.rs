//! The gRPC API end to end, as outside clients use it: `vaak serve` on real models, driven by the
//! Python grpcio client (`tests/py/vaak_client.py`) and grpcurl (`tests/py/grpcurl_check.sh`) as
//! subprocesses. Four daemons, each shared by the scenarios its config allows (every start loads
//! the real models): conversations, unary calls and bad input; barge-in, backchannels and
//! resume; overload then SIGTERM; API keys over TLS. Every scenario of a daemon runs to its end
//! (most in parallel) and a failure names each failed scenario with the client's JSON and the
//! daemon's log tail. Every wait is bounded. `VAAK_TEST_SHOW_LOG=1` prints the daemons' logs.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::common::{eval_dir, is_script, log_field};

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/vaak_client.py");
const GRPCURL_CHECK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/grpcurl_check.sh");
const PY_ENV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/py-env.sh");
/// Loading the real models and starting the DAEMON_CONFIG worker.
const READY_WITHIN: Duration = Duration::from_secs(240);
/// The daemon's drain deadline (`daemon::DRAIN_DEADLINE`).
const DRAIN_S: f64 = 10.0;
/// Config shared by the test daemons. Replies are played at real time: a cap on their length
/// keeps the tests short. One ASR thread per decode: several daemons and sessions decode at once
/// on CI's 2 cores, and whisper.cpp's spinning worker threads slow down by ~70x when two 2-thread
/// decodes share 2 cores (two concurrent 1 s decodes take 73 s).
const DAEMON_CONFIG: &str = "[llm]\nmax_tokens = 32\n[asr]\nthreads = 1\n";

// ------------------------------------------------------------------------------------------
// The Python environment
// ------------------------------------------------------------------------------------------

pub(crate) struct PyEnv {
    pub(crate) python: String,
    grpcurl: String,
}

/// `$VAAK_PY` / `$VAAK_GRPCURL` (exported by scripts/test.sh), else what scripts/py-env.sh
/// prints (it builds the venv if needed).
pub(crate) fn py_env() -> &'static PyEnv {
    static ENV: OnceLock<PyEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let from_env = |k: &str| std::env::var(k).ok().filter(|p| Path::new(p).is_file());
        if let (Some(python), Some(grpcurl)) = (from_env("VAAK_PY"), from_env("VAAK_GRPCURL")) {
            return PyEnv { python, grpcurl };
        }
        let out = bounded(
            Command::new("bash").arg(PY_ENV),
            Duration::from_secs(900),
            "scripts/py-env.sh",
        );
        assert!(
            out.status.is_some_and(|s| s.success()),
            "scripts/py-env.sh failed (the gRPC tests need its Python venv and grpcurl):\n{}",
            out.stderr
        );
        let get = |k: &str| {
            out.stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string))
                .unwrap_or_else(|| panic!("scripts/py-env.sh printed no {k}=: {}", out.stdout))
        };
        PyEnv {
            python: get("VAAK_PY"),
            grpcurl: get("VAAK_GRPCURL"),
        }
    })
}

pub(crate) struct Finished {
    pub(crate) status: Option<ExitStatus>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) wall: Duration,
}

/// Runs `cmd` to completion, killing it after `limit`.
pub(crate) fn bounded(cmd: &mut Command, limit: Duration, what: &str) -> Finished {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        wall: started.elapsed(),
    }
}

/// One run of the Python client: its one JSON object and how it ended.
pub(crate) struct Run {
    pub(crate) argv: String,
    pub(crate) json: Value,
    pub(crate) exit: Option<i32>,
    pub(crate) stderr: String,
    pub(crate) wall: Duration,
}

impl Run {
    pub(crate) fn s(&self, ptr: &str) -> &str {
        self.json.pointer(ptr).and_then(Value::as_str).unwrap_or("")
    }
    pub(crate) fn f(&self, ptr: &str) -> f64 {
        self.json
            .pointer(ptr)
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
    }
    pub(crate) fn b(&self, ptr: &str) -> Option<bool> {
        self.json.pointer(ptr).and_then(Value::as_bool)
    }
    pub(crate) fn arr(&self, ptr: &str) -> Vec<Value> {
        self.json
            .pointer(ptr)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
    pub(crate) fn ok(&self) -> bool {
        self.exit == Some(0) && self.b("/ok") == Some(true)
    }
    fn code(&self) -> &str {
        self.s("/code")
    }
    /// What a failure message shows of this run.
    pub(crate) fn show(&self) -> String {
        let mut json = serde_json::to_string_pretty(&self.json).unwrap_or_default();
        if json.len() > 12_000 {
            let mut cut = 12_000;
            while !json.is_char_boundary(cut) {
                cut -= 1;
            }
            json.truncate(cut);
            json.push_str("\n… (truncated)");
        }
        let err: Vec<&str> = self.stderr.lines().rev().take(15).collect();
        let err: Vec<&str> = err.into_iter().rev().collect();
        format!(
            "$ {}\n  exit {:?} after {:.1} s\n  stdout JSON: {json}\n  stderr: {}",
            self.argv,
            self.exit,
            self.wall.as_secs_f64(),
            err.join("\n          ")
        )
    }
}

/// `vaak_client.py SUB --addr ADDR --timeout-s T ARGS…` (the client's own watchdog is T; this
/// side kills it 15 s later).
fn client(addr: &str, sub: &str, args: &[&str], timeout_s: u64) -> Run {
    let t = timeout_s.to_string();
    let mut argv = vec![sub, "--addr", addr, "--timeout-s", &t];
    argv.extend_from_slice(args);
    run_python(CLIENT, &argv, timeout_s)
}

/// Runs one of the Python clients of `tests/py` with the venv's interpreter, killing it 15 s
/// after its own watchdog (`timeout_s`); its one JSON object is the last JSON line it printed.
pub(crate) fn run_python(script: &str, argv: &[&str], timeout_s: u64) -> Run {
    let name = Path::new(script)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    run_json(
        Command::new(&py_env().python)
            .arg(script)
            .args(argv)
            .env("VAAK_EVAL_DIR", eval_dir()),
        &format!("{name} {}", argv.join(" ")),
        Duration::from_secs(timeout_s + 15),
    )
}

/// Runs a client that prints one JSON object (its last JSON line), killing it after `limit`.
pub(crate) fn run_json(cmd: &mut Command, argv: &str, limit: Duration) -> Run {
    let out = bounded(cmd, limit, argv);
    let json = out
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or(Value::Null);
    Run {
        argv: argv.to_string(),
        json,
        exit: out.status.and_then(|s| s.code()),
        stderr: out.stderr,
        wall: out.wall,
    }
}

pub(crate) type Outcome = Result<(), String>;

// ------------------------------------------------------------------------------------------
// The daemon
// ------------------------------------------------------------------------------------------

pub(crate) struct Daemon {
    name: &'static str,
    child: Child,
    addr: String,
    /// The HTTP listener (telephony WebSockets) and the AudioSocket listener.
    pub(crate) http: String,
    pub(crate) audiosocket: String,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    worker_pid: Option<i32>,
    started: Instant,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// `vaak serve` on 127.0.0.1:0 with `[server]` lines `server` and further sections `rest`;
    /// `env` is set for the daemon only. Returns once the ready line names the bound address.
    pub(crate) fn start(
        name: &'static str,
        server: &str,
        rest: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        Self::start_wrapped(name, server, rest, env, &[])
    }

    /// As [`Daemon::start`], run through `wrap` (a command that ends by exec'ing its arguments,
    /// e.g. into a network namespace), so the daemon keeps the wrapper's pid.
    pub(crate) fn start_wrapped(
        name: &'static str,
        server: &str,
        rest: &str,
        env: &[(&str, &str)],
        wrap: &[&str],
    ) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join(format!("{name}.toml"));
        // These daemons run several conversations at once on two cores on purpose (API
        // behaviour, not capacity): admission by `max_sessions` only, unless a test sets it.
        let admission = if server.contains("admit_max") {
            ""
        } else {
            "admit_max_busy = 1.0\nadmit_max_wait_ms = 600000\nadmit_max_talking = 1000\n"
        };
        std::fs::write(
            &cfg,
            format!(
                "[server]\ngrpc_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n{admission}{server}\n{rest}{}",
                if rest.contains("[telephony]") {
                    ""
                } else {
                    "\n[telephony]\naudiosocket_listen = \"127.0.0.1:0\"\n"
                }
            ),
        )
        .unwrap();
        let mut cmd = match wrap.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(env!("CARGO_BIN_EXE_vaak"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_vaak")),
        };
        cmd.env("VAAK_LOG", "info")
            .args(["--config", cfg.to_str().unwrap(), "serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().expect("start vaak serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut d = Daemon {
            name,
            child,
            addr: String::new(),
            http: String::new(),
            audiosocket: String::new(),
            log,
            reader: Some(reader),
            worker_pid: None,
            started,
            _dir: dir,
        };
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let ready = d.lines().into_iter().find(|l| l.contains("vaak ready"));
            if let Some(line) = ready {
                d.addr = log_field(&line, "grpc").expect("ready line names grpc=ADDR");
                d.http = log_field(&line, "http").unwrap_or_default();
                d.audiosocket = log_field(&line, "audiosocket").unwrap_or_default();
                break;
            }
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!(
                    "[{name}] vaak serve exited ({status}) before its ready line; log:\n{}",
                    d.tail(80)
                );
            }
            assert!(
                Instant::now() < deadline,
                "[{name}] no `vaak ready` line within {READY_WITHIN:?}; log:\n{}",
                d.tail(80)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d.worker_pid = d
            .lines()
            .iter()
            .find(|l| l.contains("DAEMON_CONFIG worker ready"))
            .and_then(|l| log_field(l, "pid"))
            .and_then(|p| p.parse().ok());
        eprintln!(
            "[{name}] ready on {} after {:.1} s",
            d.addr,
            started.elapsed().as_secs_f64()
        );
        d
    }

    /// The body of `GET http://<http listener><path>` (curl; empty if it failed).
    pub(crate) fn get(&self, path: &str) -> String {
        Command::new("curl")
            .args(["-s", "-m", "10", &format!("http://{}{path}", self.http)])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// `Err` naming the first of `lines` that `/metrics` does not hold.
    pub(crate) fn metrics_hold(&self, lines: &[&str]) -> Outcome {
        let text = self.get("/metrics");
        match lines.iter().find(|l| !text.contains(*l)) {
            Some(l) => Err(format!("no `{l}` in /metrics:\n{text}")),
            None => Ok(()),
        }
    }

    /// Whether `/metrics` holds `line` within `limit` (polled every 50 ms).
    pub(crate) fn wait_for_metric(&self, line: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.get("/metrics").contains(line) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub(crate) fn count(&self, pat: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(pat))
            .count()
    }

    /// Waits until `pat` has been logged `n` times.
    pub(crate) fn wait_for(&self, pat: &str, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.count(pat) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.count(pat) >= n
    }

    pub(crate) fn tail(&self, n: usize) -> String {
        let lines = self.lines();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub(crate) fn client(&self, sub: &str, args: &[&str], timeout_s: u64) -> Run {
        client(&self.addr, sub, args, timeout_s)
    }

    pub(crate) fn sigterm(&self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }

    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Panics listing every failed scenario, with the daemon's log tail; reports timings.
    pub(crate) fn finish(&self, results: Vec<(&str, Outcome)>) {
        let failed: Vec<String> = results
            .iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("=== {n}: {e}")))
            .collect();
        let panics: Vec<String> = self
            .lines()
            .into_iter()
            .filter(|l| l.contains("panicked"))
            .collect();
        eprintln!(
            "[{}] scenarios done after {:.1} s",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
        if std::env::var_os("VAAK_TEST_SHOW_LOG").is_some() {
            eprintln!("[{}] daemon log:\n{}", self.name, self.lines().join("\n"));
        }
        if !failed.is_empty() {
            // One short line per failure first: CI keeps the head and the tail of long output.
            for f in &failed {
                eprintln!(
                    "[{}] FAILED {}",
                    self.name,
                    f.chars().take(400).collect::<String>()
                );
            }
        }
        assert!(
            failed.is_empty() && panics.is_empty(),
            "[{}] {} of {} scenarios failed{}\n\n{}\n\n--- busiest processes ---\n{}\n\n\
             --- daemon log (last 80 lines) ---\n{}",
            self.name,
            failed.len(),
            results.len(),
            if panics.is_empty() {
                String::new()
            } else {
                format!("; the daemon panicked: {}", panics.join(" | "))
            },
            failed.join("\n\n"),
            super::common::busiest_processes(),
            self.tail(80)
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.sigterm();
            if self.wait_exit(Duration::from_secs(20)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
                if let Some(pid) = self.worker_pid {
                    // SAFETY: the daemon's own DAEMON_CONFIG worker, orphaned by the SIGKILL above.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// A named check run on its own thread.
type Scenario<'a> = (&'a str, Box<dyn FnOnce() -> Outcome + Send + 'a>);

/// Runs each scenario on its own thread and collects the outcomes (a panic is a failure too).
fn parallel<'a>(scenarios: Vec<Scenario<'a>>) -> Vec<(&'a str, Outcome)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = scenarios
            .into_iter()
            .map(|(name, f)| (name, s.spawn(f)))
            .collect();
        handles
            .into_iter()
            .map(|(name, h)| {
                let r = h.join().unwrap_or_else(|p| {
                    Err(format!(
                        "panicked: {}",
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    ))
                });
                (name, r)
            })
            .collect()
    })
}

// ------------------------------------------------------------------------------------------
// Helpers on the client's converse report
// ------------------------------------------------------------------------------------------

fn eval_clip(lang: &str, file: &str) -> String {
    let p: PathBuf = eval_dir().join(lang).join(file);
    assert!(p.is_file(), "eval clip {} is missing", p.display());
    p.to_str().unwrap().to_string()
}

fn strs(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

/// `want` appears in `kinds` in this order (other kinds may come between).
fn in_order(kinds: &[String], want: &[&str]) -> bool {
    let mut it = kinds.iter();
    want.iter().all(|w| it.any(|k| k == w))
}

fn latin(t: &str) -> bool {
    is_script(t, 0x41, 0x24F)
}

fn devanagari(t: &str) -> bool {
    is_script(t, 0x900, 0x97F)
}

/// Lower-case words of letters and digits only.
fn words(t: &str) -> Vec<String> {
    t.chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .to_lowercase()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The per-turn entry of the client's report for server turn `turn`.
fn by_turn(run: &Run, step: usize, turn: u64) -> Option<Value> {
    run.arr(&format!("/turns/{step}/by_turn"))
        .into_iter()
        .find(|t| t["turn"].as_u64() == Some(turn))
}

/// The checks every answered spoken turn passes: the events in order, the transcript's language
/// and script, a completed turn with audible reply audio, and no error events.
fn check_spoken_turn(run: &Run, lang: &str, out_rate: u64) -> Outcome {
    ensure!(run.ok(), run, "the conversation did not complete");
    let kinds = strs(&run.arr("/turns/0/events"));
    ensure!(
        in_order(
            &kinds,
            &[
                "speech_started",
                "speech_stopped",
                "transcript",
                "reply_text",
                "reply_audio",
                "turn_completed"
            ]
        ) && kinds.last().map(String::as_str) == Some("turn_completed"),
        run,
        "events out of order: {kinds:?}"
    );
    let text = run.s("/turns/0/transcript/text").to_string();
    ensure!(
        run.s("/turns/0/transcript/language") == lang,
        run,
        "transcript language is {:?}, want {lang}",
        run.s("/turns/0/transcript/language")
    );
    let script_ok = if lang == "hi" {
        devanagari(&text)
    } else {
        latin(&text)
    };
    ensure!(
        script_ok,
        run,
        "transcript {text:?} is not in the script of {lang}"
    );
    let completed = run.arr("/turns/0/turn_completed");
    ensure!(
        completed.len() == 1 && completed[0]["language"] == lang,
        run,
        "want one turn_completed in {lang}"
    );
    ensure!(
        run.f("/turns/0/reply_audio/seconds") > 0.5,
        run,
        "reply audio too short"
    );
    ensure!(
        run.f("/turns/0/reply_audio/rms_dbfs") > -40.0,
        run,
        "reply audio is (nearly) silent"
    );
    ensure!(
        run.f("/turns/0/reply_audio/sample_rate") as u64 == out_rate
            && run.f("/turns/0/reply_audio/offset_mismatches") == 0.0,
        run,
        "reply audio not at {out_rate} Hz or its offsets jump"
    );
    no_error_events(run)
}

fn no_error_events(run: &Run) -> Outcome {
    let mut errors = run.arr("/session_errors");
    for t in run.arr("/turns") {
        errors.extend(t["errors"].as_array().cloned().unwrap_or_default());
    }
    ensure!(errors.is_empty(), run, "error events: {errors:?}");
    Ok(())
}

/// A `raw` probe ends with `code` and a message containing `needle`.
fn expect_status(run: &Run, code: &str, needle: &str) -> Outcome {
    ensure!(
        run.exit == Some(0) && run.code() == code,
        run,
        "want status {code}, got {:?}",
        run.code()
    );
    ensure!(
        run.s("/details").contains(needle),
        run,
        "status message should mention {needle:?}"
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------
// 1, 2, 7: reflection, health, unary calls, spoken conversations, bad input
// ------------------------------------------------------------------------------------------

fn grpcurl_check(d: &Daemon) -> Outcome {
    let out = bounded(
        Command::new("bash")
            .arg(GRPCURL_CHECK)
            .arg(&d.addr)
            .env("VAAK_GRPCURL", &py_env().grpcurl),
        Duration::from_secs(120),
        "grpcurl_check.sh",
    );
    if !(out.status.is_some_and(|s| s.success()) && out.stdout.contains("grpcurl_check: OK")) {
        return Err(format!(
            "tests/py/grpcurl_check.sh {} failed ({:?}):\n{}\n{}",
            d.addr, out.status, out.stdout, out.stderr
        ));
    }
    // grpcurl speaks only reflection v1alpha: v1 through the Python client.
    let r = d.client("reflection", &[], 30);
    ensure!(r.ok(), r, "reflection failed");
    for ver in ["v1", "v1alpha"] {
        let names = strs(&r.arr(&format!("/{ver}")));
        ensure!(
            names.iter().any(|n| n == "vaak.v1.Vaak")
                && names.iter().any(|n| n == "grpc.health.v1.Health"),
            r,
            "reflection {ver} does not list vaak.v1.Vaak and grpc.health.v1.Health"
        );
    }
    Ok(())
}

fn unary_calls(d: &Daemon) -> Outcome {
    let clip = eval_clip("hi", "0215_025.wav");
    let r = d.client("unary", &["--wav", &clip], 150);
    ensure!(r.ok(), r, "unary calls failed");
    let langs: Vec<String> = r
        .arr("/list_languages/languages")
        .iter()
        .map(|l| l["code"].as_str().unwrap_or_default().to_string())
        .collect();
    ensure!(
        langs.contains(&"hi".into()) && langs.contains(&"te".into()),
        r,
        "ListLanguages lacks hi or te: {langs:?}"
    );
    let voices = r.arr("/list_voices/voices");
    ensure!(
        !voices.is_empty() && voices.iter().any(|v| v["language"] == "hi"),
        r,
        "ListVoices is empty or has no Hindi voice"
    );
    for lang in ["hi", "en"] {
        ensure!(
            r.f(&format!("/synthesize/{lang}/seconds")) > 0.3
                && r.f(&format!("/synthesize/{lang}/rms_dbfs")) > -40.0,
            r,
            "Synthesize({lang}) returned too little or silent audio"
        );
    }
    ensure!(
        r.s("/transcribe/language") == "hi" && devanagari(r.s("/transcribe/text")),
        r,
        "Transcribe of a Hindi clip: want language hi in Devanagari"
    );
    // The same clip as a conversation through the Python package's `VaakClient.converse`.
    let kinds: Vec<String> = r
        .arr("/converse/events")
        .iter()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    ensure!(
        [
            "SessionStarted",
            "SpeechStarted",
            "Transcript",
            "ReplyAudio",
            "TurnCompleted"
        ]
        .iter()
        .all(|k| kinds.iter().any(|have| have == k)),
        r,
        "VaakClient.converse: event kinds {kinds:?}"
    );
    ensure!(
        r.s("/converse/transcript/language") == "hi"
            && devanagari(r.s("/converse/transcript/text"))
            && !r.s("/converse/reply/text").is_empty()
            && r.f("/converse/reply_audio_s") > 0.3,
        r,
        "VaakClient.converse: want a Hindi transcript and a spoken reply"
    );
    Ok(())
}

fn converse_jfk(d: &Daemon) -> Outcome {
    let jfk = eval_clip("en", "jfk.wav");
    let saved = tempfile::tempdir().unwrap();
    let dir = saved.path().to_str().unwrap();
    let r = d.client(
        "converse",
        &[
            "--realtime",
            "--wav",
            &jfk,
            "--turn-timeout-s",
            "90",
            "--save-reply",
            dir,
        ],
        150,
    );
    ensure!(
        r.s("/output_format/encoding") == "PCM16" && r.f("/output_format/sample_rate") == 16000.0,
        r,
        "output format should default to the input's (PCM16 at 16 kHz)"
    );
    check_spoken_turn(&r, "en", 16_000)?;
    let text = r.s("/turns/0/transcript/text").to_lowercase();
    ensure!(
        text.contains("country") && text.contains("fellow"),
        r,
        "JFK transcript not recognisable: {text:?}"
    );
    // The reply audio is the reply's words, not merely loud: Whisper hears them in it.
    let wav = r.s("/turns/0/reply_audio/saved").to_string();
    let said = r.s("/turns/0/reply_text").to_string();
    let heard = super::common::heard_reply(Path::new(&wav), Some("en"), Some(&said));
    ensure!(heard.is_ok(), r, "{}", heard.unwrap_err());
    Ok(())
}

/// A Hindi clip (detected among en and hi) at `rate` Hz PCM16, or G.711 μ-law at 8 kHz; the
/// transcript must contain `word` (whisper-base reliably gets this one word of the clip).
fn converse_hindi(d: &Daemon, clip: &str, rate: u32, mulaw: bool, word: &str) -> Outcome {
    let clip = eval_clip("hi", clip);
    let rate_s = rate.to_string();
    let mut args = vec![
        "--realtime",
        "--wav",
        &clip,
        "--language",
        "en",
        "hi",
        "--turn-timeout-s",
        "90",
    ];
    if mulaw {
        args.push("--mulaw");
    } else {
        args.extend(["--input-rate", &rate_s]);
    }
    let r = d.client("converse", &args, 150);
    let enc = if mulaw { "MULAW" } else { "PCM16" };
    ensure!(
        r.s("/output_format/encoding") == enc && r.f("/output_format/sample_rate") as u32 == rate,
        r,
        "output format should default to the input's ({enc} at {rate} Hz)"
    );
    check_spoken_turn(&r, "hi", u64::from(rate))?;
    ensure!(
        r.s("/turns/0/transcript/text").contains(word),
        r,
        "the transcript should contain {word:?} (is the input decoded and resampled right?)"
    );
    Ok(())
}

fn bad_input(d: &Daemon) -> Outcome {
    // (args, code, part of the message)
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--first-message", "none", "--hold-s", "0.3"],
            "INVALID_ARGUMENT",
            "first message",
        ),
        (
            &["--first-message", "audio"],
            "INVALID_ARGUMENT",
            "SessionConfig",
        ),
        (
            &["--first-message", "text"],
            "INVALID_ARGUMENT",
            "SessionConfig",
        ),
        (
            &["--second-config"],
            "INVALID_ARGUMENT",
            "SessionConfig may only be the first",
        ),
        (
            &["--oversized-bytes", "1001"],
            "INVALID_ARGUMENT",
            "16-bit samples",
        ),
        (
            &["--oversized-bytes", "300000"],
            "RESOURCE_EXHAUSTED",
            "too large",
        ),
        (&["--input-rate", "11025"], "INVALID_ARGUMENT", "11025"),
        (
            &["--mulaw", "--input-rate", "16000"],
            "INVALID_ARGUMENT",
            "8000",
        ),
        (
            &["--voice", "en=kokoro:no_such_voice"],
            "INVALID_ARGUMENT",
            "no_such_voice",
        ),
        (&["--language", "xx"], "INVALID_ARGUMENT", "`xx`"),
    ];
    for (args, code, needle) in cases {
        let mut a = vec!["--hold-s", "5"];
        a.extend_from_slice(args);
        let r = d.client("raw", &a, 30);
        expect_status(&r, code, needle).map_err(|e| format!("probe {}: {e}", args.join(" ")))?;
    }
    Ok(())
}

/// Scenarios 1, 2 and 7 on one daemon: four spoken conversations over eval clips, two at a time
/// (JFK in English at PCM16 16 kHz with the language detected among all served; Hindi at
/// PCM16 16 kHz, G.711 μ-law 8 kHz and PCM16 48 kHz); meanwhile bad-input probes each end their
/// own stream with the documented code, then grpcurl (reflection, describe, health) and the
/// unary calls; health is SERVING at the end.
#[test]
fn grpc_unary_conversations_and_bad_input() {
    let d = Daemon::start(
        "api",
        "",
        &format!("{DAEMON_CONFIG}[sessions]\nin_memory = true\n"),
        &[],
    );
    let d = &d;
    let results = parallel(vec![
        (
            "JFK PCM16 16 kHz, then Hindi μ-law 8 kHz",
            Box::new(move || {
                converse_jfk(d)?;
                converse_hindi(d, "1041_003.wav", 8_000, true, "देवर")
            }),
        ),
        (
            "Hindi PCM16 16 kHz, then 48 kHz",
            Box::new(move || {
                converse_hindi(d, "4734_088.wav", 16_000, false, "कोरा")?;
                converse_hindi(d, "0215_025.wav", 48_000, false, "करो")
            }),
        ),
        (
            "bad input, then reflection and unary calls",
            Box::new(move || {
                bad_input(d)?;
                grpcurl_check(d)?;
                unary_calls(d)
            }),
        ),
    ]);
    let mut results = results;
    let h = d.client("health", &[], 20);
    results.push((
        "health SERVING at the end",
        if h.ok() { Ok(()) } else { Err(h.show()) },
    ));
    d.finish(results);
}

// ------------------------------------------------------------------------------------------
// 3, 4, 5: barge-in, backchannel, resume and delete
// ------------------------------------------------------------------------------------------

/// A prompt whose answer takes several seconds to say.
const STORY: &str = "Tell me a story about a clever tiger in five sentences.";

fn barge_in(d: &Daemon) -> Outcome {
    let clip = eval_clip("hi", "0867_096.wav");
    let r = d.client(
        "converse",
        &[
            "--language",
            "en",
            "hi",
            "--text",
            STORY,
            "--barge-in-wav",
            &clip,
            "--barge-in-after-ms",
            "1500",
            "--turn-timeout-s",
            "90",
        ],
        150,
    );
    ensure!(r.ok(), r, "the conversation did not complete");
    let intr = r.arr("/turns/0/interrupted");
    ensure!(
        intr.len() == 1 && intr[0]["turn"] == 1,
        r,
        "want exactly one `interrupted`, for turn 1"
    );
    let played = intr[0]["played_s"].as_f64().unwrap_or(0.0);
    let heard = by_turn(&r, 0, 1).and_then(|t| t["reply_audio_s"].as_f64());
    ensure!(
        played > 0.0 && heard.is_some_and(|h| played <= h + 0.5),
        r,
        "played_s {played} should be > 0 and at most the turn-1 audio received ({heard:?} s)"
    );
    let kept = words(intr[0]["kept_text"].as_str().unwrap_or_default());
    let said = words(
        by_turn(&r, 0, 1)
            .and_then(|t| t["reply_text"].as_str().map(str::to_string))
            .unwrap_or_default()
            .as_str(),
    );
    ensure!(
        !kept.is_empty() && said.starts_with(&kept),
        r,
        "kept_text {kept:?} is not a prefix of the turn-1 reply {said:?}"
    );
    ensure!(
        r.f("/turns/0/barge_in/reply_audio_chunks_after_interrupted") == 0.0,
        r,
        "reply audio of turn 1 arrived after `interrupted`"
    );
    let answered = r
        .arr("/turns/0/by_turn")
        .into_iter()
        .find(|t| t["turn"].as_u64().is_some_and(|n| n > 1) && t["completed"] == true);
    ensure!(
        answered.as_ref().is_some_and(|t| {
            t["transcript"]
                .as_str()
                .is_some_and(|s| !s.trim().is_empty())
                && t["reply_audio_s"].as_f64().is_some_and(|s| s > 0.5)
        }),
        r,
        "the barge-in speech was not answered (transcript, reply audio, turn_completed)"
    );
    no_error_events(&r)
}

fn backchannel(d: &Daemon, dir: &Path) -> Outcome {
    // "Okay." in the daemon's own English voice.
    let wav = dir.join("okay.wav");
    let wav = wav.to_str().unwrap();
    let s = d.client(
        "raw",
        &[
            "--rpc",
            "synthesize",
            "--language",
            "en",
            "--text",
            "Okay.",
            "--save-wav",
            wav,
        ],
        60,
    );
    ensure!(
        s.exit == Some(0) && s.code() == "OK" && Path::new(wav).is_file(),
        s,
        "Synthesize(\"Okay.\") failed"
    );
    let r = d.client(
        "converse",
        &[
            "--text",
            STORY,
            "--barge-in-wav",
            wav,
            "--barge-in-after-ms",
            "1000",
            "--turn-timeout-s",
            "90",
        ],
        150,
    );
    ensure!(r.ok(), r, "the conversation did not complete");
    let bc = r.arr("/turns/0/backchannels");
    let heard = words(
        bc.first()
            .and_then(|b| b["text"].as_str())
            .unwrap_or_default(),
    );
    ensure!(
        bc.len() == 1 && !heard.is_empty() && heard.iter().all(|w| w == "okay" || w == "ok"),
        r,
        "want one backchannel \"okay\" (Whisper's transcript of the TTS \"Okay.\"), got {bc:?}"
    );
    ensure!(
        r.arr("/turns/0/interrupted").is_empty(),
        r,
        "a backchannel interrupted the reply"
    );
    let t1 = by_turn(&r, 0, 1);
    ensure!(
        t1.as_ref().is_some_and(
            |t| t["completed"] == true && t["reply_audio_s"].as_f64().is_some_and(|s| s > 3.0)
        ),
        r,
        "turn 1's reply did not complete"
    );
    let kinds = strs(&r.arr("/event_kinds"));
    ensure!(
        in_order(&kinds, &["backchannel", "reply_audio", "turn_completed"]),
        r,
        "the reply did not go on after the backchannel: {kinds:?}"
    );
    no_error_events(&r)
}

fn resume_and_delete(d: &Daemon) -> Outcome {
    let id = format!("grpc-resume-{}", std::process::id());
    let talk = |text: &str| {
        d.client(
            "converse",
            &["--text-only", "--session-id", &id, "--text", text],
            90,
        )
    };
    let a = talk("My name is Ravi and I live in Pune.");
    ensure!(a.ok(), a, "first stream failed");
    ensure!(
        a.b("/resumed") == Some(false) && a.s("/session_id") == id,
        a,
        "a new session id should start a new session"
    );
    ensure!(
        a.arr("/turns/0/turn_completed").len() == 1,
        a,
        "the first turn did not complete"
    );
    let mut b = talk("What is my name?");
    ensure!(b.ok(), b, "resumed stream failed");
    ensure!(
        b.b("/resumed") == Some(true) && b.f("/history_turns") >= 1.0,
        b,
        "reconnecting with the same session id should resume it with its history"
    );
    if !b.s("/turns/0/reply_text").contains("Ravi") {
        // The 0.5 B model is not always sure: a second, plainer question.
        b = talk("Please tell me my name. Answer with just the name.");
        ensure!(b.ok() && b.b("/resumed") == Some(true), b, "resume failed");
    }
    ensure!(
        b.s("/turns/0/reply_text").contains("Ravi"),
        b,
        "the resumed session forgot the user's name"
    );
    let del = d.client("delete", &["--session-id", &id], 30);
    ensure!(
        del.ok() && del.b("/deleted") == Some(true),
        del,
        "DeleteSession failed"
    );
    let again = d.client("delete", &["--session-id", &id], 30);
    ensure!(
        again.exit == Some(1) && again.code() == "NOT_FOUND",
        again,
        "a second DeleteSession should be NOT_FOUND"
    );
    let c = talk("What is my name?");
    ensure!(c.ok(), c, "stream after delete failed");
    ensure!(
        c.b("/resumed") == Some(false) && c.f("/history_turns") == 0.0,
        c,
        "a deleted session must not resume"
    );
    ensure!(
        !c.s("/turns/0/reply_text").contains("Ravi"),
        c,
        "the deleted session's history leaked into the new one"
    );
    // Last, so that the checks above run whatever this finds: a typed conversation has no
    // error events (none of its turns failed; "no speech" does not apply to typed turns).
    for r in [&a, &b, &c] {
        no_error_events(r)?;
    }
    Ok(())
}

/// Scenarios 3, 4 and 5 on one daemon, in parallel: barge-in with a real Hindi clip over an
/// English reply (interrupted with what was heard, no more audio of that turn, the new speech
/// answered); "Okay." in the daemon's own voice over a reply (a backchannel, not an
/// interruption; the reply completes); a typed conversation resumed after a disconnect keeps
/// the user's name, and DeleteSession forgets it.
#[test]
fn grpc_barge_in_backchannel_resume_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        "turns",
        "",
        &format!("{DAEMON_CONFIG}[sessions]\nin_memory = true\n"),
        &[],
    );
    let (d, p) = (&d, dir.path());
    let results = parallel(vec![
        ("barge-in", Box::new(move || barge_in(d))),
        ("backchannel", Box::new(move || backchannel(d, p))),
        ("resume and delete", Box::new(move || resume_and_delete(d))),
    ]);
    d.finish(results);
}

/// Two conversations speak a Hindi clip at once; `settle` after both are open, a third
/// stream is tried (and held 3 s if admitted). Returns the third's run, and whether both
/// admitted ones completed their turn with no error event.
fn two_talk_then_a_third(d: &Daemon, settle: Duration) -> (Run, Outcome) {
    let clip = eval_clip("hi", "3847_003.wav");
    std::thread::scope(|s| {
        let talk = || {
            let args = ["--realtime", "--wav", &clip, "--language", "en", "hi"];
            d.client(
                "converse",
                &[&args[..], &["--turn-timeout-s", "90"]].concat(),
                150,
            )
        };
        let a = s.spawn(talk);
        let b = s.spawn(talk);
        let both_open = d.wait_for("session opened", 2, Duration::from_secs(30));
        std::thread::sleep(settle);
        let third = d.client("raw", &["--hold-s", "3"], 30);
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        let admitted = (|| -> Outcome {
            if !both_open {
                return Err("the two conversations were not both open within 30 s".into());
            }
            for r in [&a, &b] {
                ensure!(
                    r.ok() && r.arr("/turns/0/turn_completed").len() == 1,
                    r,
                    "an admitted conversation did not complete its turn"
                );
                no_error_events(r)?;
            }
            Ok(())
        })();
        (third, admitted)
    })
}

// ------------------------------------------------------------------------------------------
// Load-aware admission below max_sessions
// ------------------------------------------------------------------------------------------

/// Two conversations speak at once; a third, asked for while their recognition passes keep the
/// cores busy, is refused with RESOURCE_EXHAUSTED and `retry-after-ms` although `max_sessions`
/// has room, and the two admitted ones complete their turns. The busy limit is set near zero
/// here so that "the cores are loaded" is certain on any machine; the default limits and what
/// they admit on two cores are measured by `vaak bench latency`.
#[test]
fn grpc_load_aware_admission_refuses_past_capacity() {
    let daemon = Daemon::start(
        "admission",
        "admit_max_busy = 0.02\nretry_after_ms = 1500\n",
        &format!("{DAEMON_CONFIG}[sessions]\nin_memory = true\n"),
        &[],
    );
    let d = &daemon;
    // Their speech is being recognised while it streams in real time.
    let (third, admitted) = two_talk_then_a_third(d, Duration::from_secs(4));
    let outcome = admitted.and_then(|()| {
        ensure!(
            third.exit == Some(0)
                && third.code() == "RESOURCE_EXHAUSTED"
                && third.s("/details").contains("at capacity"),
            third,
            "a third stream while the cores are loaded should be refused as at capacity"
        );
        ensure!(
            third.s("/trailers/retry-after-ms") == "1500",
            third,
            "the refusal should carry the trailer retry-after-ms: 1500"
        );
        Ok(())
    });
    d.finish(vec![("load-aware admission", outcome)]);
}

// ------------------------------------------------------------------------------------------
// 6, 9: overload, then SIGTERM with an open stream
// ------------------------------------------------------------------------------------------

/// Scenario 6 then 9 on a daemon with `max_sessions = 2`: while two conversations stream, a
/// third is refused with RESOURCE_EXHAUSTED and a `retry-after-ms` trailer, and both admitted
/// ones complete their turn. Then, with one stream held open, SIGTERM: health turns
/// NOT_SERVING, a new Converse is UNAVAILABLE, the open stream ends within the drain deadline,
/// and the daemon exits 0 after logging `vaak stopped`.
#[test]
fn grpc_overload_then_sigterm_drain() {
    let mut daemon = Daemon::start(
        "limits",
        "max_sessions = 2\nretry_after_ms = 1500\n",
        &format!("{DAEMON_CONFIG}[sessions]\nin_memory = true\n"),
        &[],
    );
    let d = &daemon;
    let mut results: Vec<(&str, Outcome)> = Vec::new();
    let (third, admitted) = two_talk_then_a_third(d, Duration::ZERO);
    let overload = admitted.and_then(|()| {
        ensure!(
            third.exit == Some(0) && third.code() == "RESOURCE_EXHAUSTED",
            third,
            "a third stream over max_sessions = 2 should be RESOURCE_EXHAUSTED"
        );
        ensure!(
            third.s("/trailers/retry-after-ms") == "1500",
            third,
            "the refusal should carry the trailer retry-after-ms: 1500"
        );
        Ok(())
    });
    results.push(("overload", overload));

    // SIGTERM with one stream open (a session with no turn, held past the drain deadline).
    let drain = std::thread::scope(|s| {
        let opened = d.count("session opened");
        let held = s.spawn(|| d.client("raw", &["--hold-s", "40"], 60));
        if !d.wait_for("session opened", opened + 1, Duration::from_secs(30)) {
            let h = held.join().unwrap();
            return Err(format!("the held stream did not open\n{}", h.show()));
        }
        let t0 = Instant::now();
        d.sigterm();
        // Health turns NOT_SERVING at once (retry briefly: the signal is asynchronous).
        let mut health = d.client("health", &["--expect", "NOT_SERVING"], 10);
        while !health.ok() && t0.elapsed() < Duration::from_secs(4) {
            health = d.client("health", &["--expect", "NOT_SERVING"], 10);
        }
        let refused = d.client("raw", &["--hold-s", "2"], 15);
        let h = held.join().unwrap();
        let ended_after = t0.elapsed().as_secs_f64();
        eprintln!(
            "[limits] after SIGTERM: health {:?}, new stream {:?}, open stream ended with {:?} \
             after {ended_after:.1} s",
            health.json.pointer("/status"),
            refused.code(),
            h.code()
        );
        ensure!(
            health.ok(),
            health,
            "health should be NOT_SERVING after SIGTERM"
        );
        ensure!(
            refused.exit == Some(0) && refused.code() == "UNAVAILABLE",
            refused,
            "a new Converse while draining should be UNAVAILABLE"
        );
        ensure!(
            h.exit == Some(0) && matches!(h.code(), "UNAVAILABLE" | "OK"),
            h,
            "the open stream should end with UNAVAILABLE (or complete)"
        );
        ensure!(
            ended_after < DRAIN_S + 5.0,
            h,
            "the open stream ended {ended_after:.1} s after SIGTERM (drain deadline {DRAIN_S} s)"
        );
        Ok(())
    });
    results.push(("SIGTERM drain", drain));
    let exit = daemon.wait_exit(Duration::from_secs(30));
    let stopped = daemon.count("vaak stopped") == 1;
    eprintln!(
        "[limits] exit {exit:?}, {:.1} s after the daemon started",
        daemon.started.elapsed().as_secs_f64()
    );
    results.push((
        "clean exit",
        if exit.is_some_and(|s| s.success()) && stopped {
            Ok(())
        } else {
            Err(format!(
                "after SIGTERM: exit {exit:?} (want 0 within 30 s), `vaak stopped` logged: {stopped}"
            ))
        },
    ));
    daemon.finish(results);
}

// ------------------------------------------------------------------------------------------
// 8: API keys over TLS
// ------------------------------------------------------------------------------------------

/// Scenario 8: a daemon with two tenants' API keys (environment variables of the daemon only)
/// serving TLS with a certificate made here by `openssl`. Health answers without a key; a call
/// without a key or with a wrong one is UNAUTHENTICATED (unary and Converse); the right key over
/// TLS works (either header); a plaintext client cannot talk to the TLS port; a tenant cannot
/// delete another tenant's session.
#[test]
fn grpc_api_keys_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let gen = bounded(
        Command::new("openssl").args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
        "openssl (the `openssl` command-line tool is needed to make the test certificate)",
    );
    assert!(
        gen.status.is_some_and(|s| s.success()) && cert.is_file() && key.is_file(),
        "openssl could not make a self-signed certificate: {}",
        gen.stderr
    );
    let acme = "acme-key-7f3c9a1e5b2d4c6f";
    let bharat = "bharat-key-0a9b8c7d6e5f4a3b";
    let d = Daemon::start(
        "auth",
        &format!(
            "api_keys = [{{ tenant = \"acme\", key_env = \"VAAK_TEST_GRPC_KEY_ACME\" }}, \
             {{ tenant = \"bharat\", key_env = \"VAAK_TEST_GRPC_KEY_BHARAT\" }}]\n\
             tls = {{ cert = \"{}\", key = \"{}\" }}\n",
            cert.display(),
            key.display()
        ),
        &format!("{DAEMON_CONFIG}[sessions]\nin_memory = true\n"),
        &[
            ("VAAK_TEST_GRPC_KEY_ACME", acme),
            ("VAAK_TEST_GRPC_KEY_BHARAT", bharat),
        ],
    );
    assert!(
        d.lines()
            .iter()
            .any(|l| l.contains("vaak ready") && l.contains("tls=true") && l.contains("auth=true")),
        "ready line should say tls=true auth=true:\n{}",
        d.tail(20)
    );
    let ca = cert.to_str().unwrap();
    let tls = |sub: &str, args: &[&str]| {
        let mut a = vec!["--tls-ca", ca];
        a.extend_from_slice(args);
        d.client(sub, &a, 60)
    };
    let scenario = || -> Outcome {
        let h = tls("health", &[]);
        ensure!(h.ok(), h, "health over TLS without a key should be SERVING");
        let no_key = tls("raw", &["--rpc", "list-voices"]);
        expect_status(&no_key, "UNAUTHENTICATED", "missing API key")?;
        let wrong = tls(
            "raw",
            &[
                "--rpc",
                "list-voices",
                "--api-key",
                "wrong-key-0123456789abcdef",
            ],
        );
        expect_status(&wrong, "UNAUTHENTICATED", "invalid API key")?;
        let conv = tls("raw", &["--hold-s", "2"]);
        expect_status(&conv, "UNAUTHENTICATED", "API key")?;
        let ok = tls("raw", &["--rpc", "list-voices", "--api-key", acme]);
        ensure!(
            ok.exit == Some(0) && ok.code() == "OK" && ok.f("/response/voices") > 0.0,
            ok,
            "ListVoices with the right key over TLS should work"
        );
        let synth = tls(
            "raw",
            &[
                "--rpc",
                "synthesize",
                "--api-key",
                bharat,
                "--api-key-header",
                "x-api-key",
                "--language",
                "en",
                "--text",
                "Hello there.",
            ],
        );
        ensure!(
            synth.exit == Some(0) && synth.code() == "OK" && synth.f("/response/seconds") > 0.3,
            synth,
            "Synthesize with an x-api-key header over TLS should work"
        );
        let plain = d.client("health", &["--connect-timeout-s", "3"], 15);
        ensure!(
            !plain.ok(),
            plain,
            "a plaintext client must not get an answer from the TLS port"
        );
        // Sessions belong to their tenant.
        let id = format!("grpc-tls-{}", std::process::id());
        let c = tls(
            "converse",
            &[
                "--api-key",
                acme,
                "--text-only",
                "--session-id",
                &id,
                "--text",
                "Hello!",
            ],
        );
        ensure!(
            c.ok() && c.arr("/turns/0/turn_completed").len() == 1,
            c,
            "a typed turn over TLS with a key should complete"
        );
        let other = tls("delete", &["--api-key", bharat, "--session-id", &id]);
        ensure!(
            other.code() == "NOT_FOUND",
            other,
            "another tenant must not see (delete) acme's session"
        );
        let own = tls("delete", &["--api-key", acme, "--session-id", &id]);
        ensure!(
            own.ok() && own.b("/deleted") == Some(true),
            own,
            "the owner should delete its session"
        );
        Ok(())
    };
    // The HTTP listener speaks TLS with the same certificate (https://, wss:// for the phone
    // providers), with the same keys; plain HTTP gets no answer from it.
    let https = || -> Outcome {
        let port = d.http.rsplit(':').next().unwrap_or_default();
        let curl = |args: &[&str]| -> (String, String) {
            let o = Command::new("curl")
                .args(["-s", "-m", "10", "-w", "\n%{http_code}", "--cacert", ca])
                .args(args)
                .output()
                .expect("curl");
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
            (body.trim().to_string(), code.to_string())
        };
        let base = format!("https://localhost:{port}");
        let resolve = format!("localhost:{port}:127.0.0.1");
        let health = curl(&["--resolve", &resolve, &format!("{base}/healthz")]);
        if health != ("ok".to_string(), "200".to_string()) {
            return Err(format!("/healthz over TLS: {health:?}"));
        }
        let bearer = format!("authorization: Bearer {acme}");
        let models = curl(&[
            "--resolve",
            &resolve,
            "-H",
            &bearer,
            &format!("{base}/v1/models"),
        ]);
        if models.1 != "200" || !models.0.contains("vaak-asr") {
            return Err(format!("/v1/models over TLS with a key: {models:?}"));
        }
        let anon = curl(&["--resolve", &resolve, &format!("{base}/v1/models")]);
        if anon.1 != "401" {
            return Err(format!("/v1/models over TLS without a key: {anon:?}"));
        }
        let plain = curl(&[&format!("http://127.0.0.1:{port}/healthz")]);
        if plain.1 == "200" {
            return Err(format!(
                "plain HTTP was answered on the TLS port: {plain:?}"
            ));
        }
        Ok(())
    };
    d.finish(vec![("auth and TLS", scenario()), ("HTTPS", https())]);
}
