//! `vaak kiosk` on virtual audio devices: a private PulseAudio server (started by the test, as
//! `scripts/setup.sh` installs it) with a pipe source as the microphone and a null sink as the
//! speaker; cpal reaches it through ALSA's pulse plugin. An eval clip is played into the
//! microphone in real time; the reply must reach the speaker (recorded from its monitor). The
//! kiosk runs in a network namespace of its own with only loopback, and every `connect` it makes
//! is traced: none may leave the machine. Killing the sound server mid-run must be reported and
//! survived: the kiosk reopens its devices once the server is back.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::common::{busiest_processes, eval_dir};

const RATE: u32 = 16_000;
/// 20 ms of audio per write into the microphone's fifo.
const CHUNK: usize = (RATE / 50) as usize;

/// A private PulseAudio server with a virtual microphone and speaker.
struct VirtualAudio {
    dir: PathBuf,
    server: Option<Child>,
}

impl VirtualAudio {
    fn start(dir: &Path) -> Self {
        let mut va = Self {
            dir: dir.to_path_buf(),
            server: None,
        };
        va.launch();
        va
    }

    fn env(&self) -> Vec<(String, String)> {
        let d = self.dir.display();
        [
            ("HOME", format!("{d}")),
            ("XDG_RUNTIME_DIR", format!("{d}")),
            ("PULSE_RUNTIME_PATH", format!("{d}/run")),
            ("PULSE_STATE_PATH", format!("{d}/state")),
            ("PULSE_CONFIG_PATH", format!("{d}/config")),
            ("PULSE_SERVER", format!("unix:{d}/native")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn fifo(&self) -> PathBuf {
        self.dir.join("mic.fifo")
    }

    /// Starts the server (again) and waits until it answers.
    fn launch(&mut self) {
        let d = &self.dir;
        for sub in ["run", "state", "config"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let _ = std::fs::remove_file(d.join("native"));
        let _ = std::fs::remove_file(self.fifo());
        std::fs::write(
            d.join("init.pa"),
            format!(
                ".fail\nload-module module-native-protocol-unix auth-anonymous=1 \
                 auth-cookie-enabled=0 socket={0}/native\n\
                 load-module module-null-sink sink_name=speaker rate={RATE} channels=1 format=s16le\n\
                 load-module module-pipe-source source_name=mic file={0}/mic.fifo format=s16le \
                 rate={RATE} channels=1\nset-default-sink speaker\nset-default-source mic\n",
                d.display()
            ),
        )
        .unwrap();
        // ALSA's default device through the pulse plugin, whatever the system config says.
        std::fs::write(
            d.join(".asoundrc"),
            "pcm.!default { type pulse }\nctl.!default { type pulse }\n",
        )
        .unwrap();
        let log = std::fs::File::create(d.join("pulse.log")).unwrap();
        let server = Command::new("pulseaudio")
            .envs(self.env())
            .args(["-n", "-F"])
            .arg(d.join("init.pa"))
            .args([
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "--use-pid-file=no",
                "--disable-shm=yes",
                "--log-target=stderr",
                "--log-level=warning",
            ])
            .stderr(log)
            .spawn()
            .expect("pulseaudio (scripts/setup.sh installs it)");
        self.server = Some(server);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ok = d.join("native").exists()
                && Command::new("pactl")
                    .envs(self.env())
                    .arg("info")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
            if ok && self.fifo().exists() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pulseaudio did not start: {}",
                std::fs::read_to_string(d.join("pulse.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

impl Drop for VirtualAudio {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes the microphone in real time: queued clips, silence in between (a pipe source gives
/// nothing at all without a writer). Returns when `stop` is set; reopens the fifo if the server
/// restarts.
fn feed(fifo: PathBuf, queue: Arc<Mutex<Vec<i16>>>, stop: Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::Ordering;
    let mut out: Option<std::fs::File> = None;
    let start = Instant::now();
    let mut written = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if out.is_none() {
            // Non-blocking: a server that stops reading (or is gone) must not hang the test.
            use std::os::unix::fs::OpenOptionsExt;
            out = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
                .ok();
            if out.is_none() {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        }
        let chunk: Vec<i16> = {
            let mut q = queue.lock().unwrap();
            let n = q.len().min(CHUNK);
            let mut c: Vec<i16> = q.drain(..n).collect();
            c.resize(CHUNK, 0);
            c
        };
        let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
        match out.as_mut().map(|f| f.write(&bytes)) {
            // A full pipe: the server is behind; this chunk is dropped.
            Some(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            // The server went away: reopen when it is back.
            Some(Err(_)) => out = None,
            _ => {}
        }
        written += 1;
        let due = start + Duration::from_millis(20 * written);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

fn read_clip(path: &Path) -> Vec<i16> {
    let mut r = hound::WavReader::open(path).unwrap();
    assert_eq!((r.spec().sample_rate, r.spec().channels), (RATE, 1));
    r.samples::<i16>().map(|s| s.unwrap()).collect()
}

/// RMS of each 100 ms window of a raw s16le recording.
fn windows(raw: &[u8]) -> Vec<f32> {
    let samples: Vec<f32> = raw
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    samples
        .chunks(RATE as usize / 10)
        .map(|w| (w.iter().map(|s| s * s).sum::<f32>() / w.len() as f32).sqrt())
        .collect()
}

/// The kiosk's process tree (unshare → strace → vaak → its LLM worker), stopped however the
/// test ends, a failed assertion included: a kiosk left running would hold a model and the
/// cores for the tests after it.
struct KioskProcess(Child);

impl KioskProcess {
    /// Every process below `pid`, parents first.
    fn descendants(pid: u32) -> Vec<i32> {
        let mut out = Vec::new();
        let mut todo = vec![pid.to_string()];
        while let Some(p) = todo.pop() {
            let children = Command::new("pgrep").args(["-P", &p]).output();
            for c in children
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
                .split_whitespace()
            {
                if let Ok(n) = c.parse::<i32>() {
                    out.push(n);
                    todo.push(c.to_string());
                }
            }
        }
        out
    }
}

impl std::ops::Deref for KioskProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KioskProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KioskProcess {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_some() {
            return;
        }
        let tree = Self::descendants(self.0.id());
        // SIGTERM first (vaak stops its worker), then SIGKILL whatever is left.
        for &pid in &tree {
            // SAFETY: kill(2) on processes this test started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.0.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        for &pid in &tree {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines the kiosk printed, collected as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            eprintln!("kiosk> {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a printed line containing `what`; returns it and everything seen meanwhile.
fn wait_for(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    what: &str,
    within: Duration,
    log: &Path,
) -> String {
    let deadline = Instant::now() + within;
    if let Some(l) = seen.iter().find(|l| l.contains(what)) {
        return l.clone();
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(what) {
                    return line;
                }
            }
            Err(_) => panic!(
                "no `{what}` within {within:?}; the kiosk printed:\n{}\n--- busiest processes:\n{}\n\
                 --- its log:\n{}",
                seen.join("\n"),
                busiest_processes(),
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }
}

#[test]
fn kiosk_answers_through_virtual_devices_offline_and_survives_a_lost_device() {
    let tmp = tempfile::tempdir().unwrap();
    let mut audio = VirtualAudio::start(tmp.path());
    let queue = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let (fifo, q, s) = (audio.fifo(), Arc::clone(&queue), Arc::clone(&stop));
        std::thread::spawn(move || feed(fifo, q, s))
    };
    let recording = tmp.path().join("speaker.raw");
    let mut recorder = Command::new("parec")
        .envs(audio.env())
        .args([
            "-d",
            "speaker.monitor",
            "--raw",
            "--format=s16le",
            "--channels=1",
            "--latency-msec=20",
        ])
        .arg(format!("--rate={RATE}"))
        .stdout(std::fs::File::create(&recording).unwrap())
        .spawn()
        .expect("parec");

    let cfg = tmp.path().join("kiosk.toml");
    std::fs::write(
        &cfg,
        "[pipeline]\nlanguages = [\"en\"]\n[llm]\nmax_tokens = 32\n\
         [kiosk]\ngreeting_idle_s = 0\ndevice_retry_ms = 500\n\
         [kiosk.greetings]\nen = \"Hello! I am vaak.\"\n",
    )
    .unwrap();
    let trace = tmp.path().join("connect.trace");
    // Its own network namespace, with loopback only (the LLM worker is a local process).
    let mut kiosk = KioskProcess(
        Command::new("unshare")
        .args(["--net", "sh", "-c"])
        .arg(r#"ip link set lo up && exec strace -f -qq -e trace=connect -e signal=none -o "$0" "$@""#)
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_vaak"))
        .args(["--config", cfg.to_str().unwrap(), "kiosk"])
        .envs(audio.env())
        .env("VAAK_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(tmp.path().join("kiosk.log")).unwrap())
        .spawn()
        .expect("unshare + strace (scripts/setup.sh installs strace)"),
    );
    let lines = lines_of(&mut kiosk);
    let mut seen = Vec::new();
    let log = tmp.path().join("kiosk.log");
    let kiosk_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for(
        &lines,
        &mut seen,
        "[listening",
        Duration::from_secs(180),
        &log,
    );
    wait_for(
        &lines,
        &mut seen,
        "vaak: Hello! I am vaak.",
        Duration::from_secs(10),
        &log,
    );
    // Let the greeting play out before the user speaks (half duplex mutes the mic meanwhile):
    // the speaker must have played audio and then been quiet for a second.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rms = windows(&std::fs::read(&recording).unwrap_or_default());
        let played = rms.iter().any(|r| *r > 0.01);
        let quiet_after = rms.iter().rev().take_while(|r| **r <= 0.01).count();
        if played && quiet_after >= 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the greeting never played out: {rms:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let greeting_end = windows(&std::fs::read(&recording).unwrap()).len();
    // The clip's first sentence ("And so, my fellow Americans"), then silence: one turn.
    let mut clip = read_clip(&eval_dir().join("en/jfk.wav"));
    clip.truncate(RATE as usize * 3);
    let clip_s = clip.len() as f32 / RATE as f32;
    let spoke_at = Instant::now();
    queue.lock().unwrap().extend(clip);
    let heard = wait_for(
        &lines,
        &mut seen,
        "you (en):",
        Duration::from_secs(120),
        &log,
    );
    assert!(
        heard.to_lowercase().contains("americans"),
        "{heard}\n{}",
        kiosk_log()
    );
    wait_for(&lines, &mut seen, "vaak:", Duration::from_secs(120), &log);
    let timing = wait_for(
        &lines,
        &mut seen,
        "from the end of speech to the speaker",
        Duration::from_secs(120),
        &log,
    );
    eprintln!(
        "{timing} (clip {clip_s:.1} s, {:.1} s after it started)",
        spoke_at.elapsed().as_secs_f32()
    );
    // The reply plays out (audible, then a second of quiet) before the sound server dies: the
    // recorder is a client of that server and stops with it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let rms = loop {
        let rms = windows(&std::fs::read(&recording).unwrap_or_default());
        let reply = &rms[greeting_end.min(rms.len())..];
        let loud = reply.iter().filter(|r| **r > 0.01).count();
        let quiet_after = reply.iter().rev().take_while(|r| **r <= 0.01).count();
        if loud > 0 && quiet_after >= 10 {
            break rms;
        }
        assert!(
            Instant::now() < deadline,
            "the reply never played out: {rms:?}\n{}",
            kiosk_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // The speaker played the greeting and the reply: each clearly audible for a while.
    let loud = |w: &[f32]| w.iter().filter(|r| **r > 0.01).count();
    let (greeting, reply) = rms.split_at(greeting_end);
    assert!(
        loud(greeting) >= 5 && loud(reply) >= 5,
        "audible 100 ms windows: greeting {}, reply {} of {} recorded",
        loud(greeting),
        loud(reply),
        rms.len()
    );

    // The sound server dies: reported, retried, and the devices come back with it.
    audio.kill();
    wait_for(
        &lines,
        &mut seen,
        "[audio device problem",
        Duration::from_secs(20),
        &log,
    );
    audio.launch();
    let reopened = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n = seen.iter().filter(|l| l.starts_with("[listening")).count();
            if n >= 2 {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            if let Ok(l) = lines.recv_timeout(Duration::from_millis(200)) {
                seen.push(l);
            }
        }
    };
    assert!(
        reopened,
        "devices not reopened; printed:\n{}",
        seen.join("\n")
    );
    assert!(
        kiosk.try_wait().unwrap().is_none(),
        "the kiosk kept running"
    );

    // SIGTERM to the kiosk process (unshare and sh exec'd strace, whose child it is).
    let pid = Command::new("pgrep")
        .args(["-P", &kiosk.id().to_string(), "-x", "vaak"])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
    assert!(!pid.is_empty(), "the kiosk process is found under strace");
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = kiosk.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the kiosk did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "kiosk exit {status:?}; log:\n{}",
        kiosk_log()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = recorder.kill();
    let _ = recorder.wait();
    feeder.join().unwrap();

    // Nothing left the machine: every IP connect went to loopback.
    let trace = std::fs::read_to_string(&trace).unwrap();
    let outside: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("sa_family=AF_INET"))
        .filter(|l| !l.contains("\"127.0.0.1\"") && !l.contains("\"::1\""))
        .collect();
    assert!(
        outside.is_empty(),
        "connections off the machine:\n{}",
        outside.join("\n")
    );
    assert!(
        trace.contains("AF_UNIX"),
        "the sound server was reached over its unix socket"
    );
}
