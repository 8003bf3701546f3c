//! `vaak kiosk`: one conversation through this machine's microphone and speaker, with no
//! network — for a kiosk in a government office or a village centre. The conversation opens
//! through the session service and runs in the call kernel like every other transport's: the
//! microphone feeds it, replies go to the speaker and captions to the terminal (`room.rs`). The
//! kiosk does not hear itself (half duplex, or echo suppression against the reply being played),
//! greets in its languages when idle, and survives an unplugged device.

pub mod devices;
mod room;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::audio::rms;
use crate::backend::Backends;
use crate::config::{Config, Duplex, LlmKind, Wake};
use crate::metrics::Metrics;
use crate::session::service::{AudioSource, OpenRequest, SessionService};
use crate::transport::call::{self, CallRules, Cleared, Overflow};
use devices::Devices;
use room::Room;

/// After the speaker falls silent, half duplex keeps the microphone muted this long (the
/// room's reverberation and the device's buffer).
pub const HALF_DUPLEX_TAIL: Duration = Duration::from_millis(300);
/// Echo suppression passes the microphone while the reply plays only when it is this many
/// times louder than the reply (≈ +10 dB): a person speaking up, not the reply's echo.
pub const ECHO_MARGIN: f32 = 3.0;
/// At most this many languages are greeted in (the first of `pipeline.languages`).
pub const GREETING_LANGUAGES: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum KioskError {
    /// The configuration needs a network (a remote LLM or recogniser).
    #[error("the kiosk runs without a network, but {0}")]
    NeedsNetwork(String),
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    #[error("the LLM worker did not start: {0}")]
    Worker(String),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Refuses configurations that would reach out over the network.
pub fn check_offline(config: &Config) -> Result<(), KioskError> {
    if config.llm.kind == LlmKind::Openai {
        return Err(KioskError::NeedsNetwork(
            "llm.kind = \"openai\" is a remote server: use the embedded worker".into(),
        ));
    }
    if config.asr.remote.is_some() {
        return Err(KioskError::NeedsNetwork(
            "[asr.remote] is a remote recogniser: remove it (asr.models work offline)".into(),
        ));
    }
    Ok(())
}

/// The built-in greeting of a language.
pub fn default_greeting(lang: &str) -> Option<&'static str> {
    Some(match lang {
        "en" => "Hello! I am vaak. How can I help you?",
        "hi" => "नमस्ते! मैं वाक हूँ। बोलिए, मैं आपकी क्या मदद करूँ?",
        "bn" => "নমস্কার! আমি বাক। বলুন, কীভাবে সাহায্য করতে পারি?",
        "ta" => "வணக்கம்! நான் வாக். சொல்லுங்கள், எப்படி உதவலாம்?",
        "te" => "నమస్కారం! నేను వాక్. చెప్పండి, ఎలా సహాయం చేయగలను?",
        "mr" => "नमस्कार! मी वाक. बोला, मी कशी मदत करू?",
        "gu" => "નમસ્તે! હું વાક છું. બોલો, હું કેવી રીતે મદદ કરું?",
        "kn" => "ನಮಸ್ಕಾರ! ನಾನು ವಾಕ್. ಹೇಳಿ, ಹೇಗೆ ಸಹಾಯ ಮಾಡಲಿ?",
        "ml" => "നമസ്കാരം! ഞാൻ വാക്. പറയൂ, എങ്ങനെ സഹായിക്കാം?",
        "pa" => "ਸਤ ਸ੍ਰੀ ਅਕਾਲ! ਮੈਂ ਵਾਕ ਹਾਂ। ਦੱਸੋ, ਮੈਂ ਕਿਵੇਂ ਮਦਦ ਕਰਾਂ?",
        "ur" => "السلام علیکم! میں واک ہوں۔ بتائیے، میں کیا مدد کروں؟",
        "or" => "ନମସ୍କାର! ମୁଁ ବାକ୍। କୁହନ୍ତୁ, ମୁଁ କିପରି ସାହାଯ୍ୟ କରିବି?",
        _ => return None,
    })
}

/// The greetings to speak, in order: (language, text).
pub fn greetings(config: &Config) -> Vec<(String, String)> {
    config
        .pipeline
        .languages
        .iter()
        .filter_map(|l| {
            let text = config
                .kiosk
                .greetings
                .get(l)
                .cloned()
                .or_else(|| default_greeting(l).map(str::to_string))?;
            Some((l.clone(), text))
        })
        .take(GREETING_LANGUAGES)
        .collect()
}

/// Decides what of the microphone reaches the pipeline.
#[derive(Debug)]
pub struct MicGate {
    duplex: Duplex,
    wake: Wake,
    /// Push-to-talk is switched on.
    pub talking: bool,
    muted_until: Option<Instant>,
}

impl MicGate {
    pub fn new(duplex: Duplex, wake: Wake) -> Self {
        Self {
            duplex,
            wake,
            talking: false,
            muted_until: None,
        }
    }

    /// `chunk` as the pipeline should get it: unchanged, or silence (kept, so the VAD's clock
    /// goes on and a turn in progress ends). `playing` = reply audio is queued or sounding;
    /// `reply_level` = RMS of what the speaker plays now.
    pub fn pass(&mut self, chunk: &mut [f32], playing: bool, reply_level: f32, now: Instant) {
        let open = match (self.wake, self.duplex) {
            (Wake::PushToTalk, _) if !self.talking => false,
            (_, Duplex::Half) => {
                if playing {
                    self.muted_until = Some(now + HALF_DUPLEX_TAIL);
                }
                self.muted_until.is_none_or(|t| now >= t)
            }
            (_, Duplex::EchoSuppression) => {
                !playing || rms(chunk) > ECHO_MARGIN * reply_level.max(1e-4)
            }
        };
        if !open {
            chunk.fill(0.0);
        }
    }
}

/// Runs the kiosk until `stop` is cancelled (or SIGINT/SIGTERM); returns after every task it
/// started has finished (or the deadline passed).
pub async fn run(config: Arc<Config>, backends: Arc<Backends>, stop: CancellationToken) {
    let cfg = &config.kiosk;
    let metrics = Arc::new(Metrics::default());
    let tracker = TaskTracker::new();
    let session_stop = stop.child_token();
    // The same door as the daemon's sessions, with no store: a kiosk keeps no conversation.
    let svc = SessionService::new(
        Arc::clone(&backends),
        Arc::clone(&metrics),
        None,
        tracker.clone(),
        session_stop.clone(),
    );
    let request = OpenRequest {
        tenant: KIOSK_TENANT.into(),
        languages: config.pipeline.languages.clone(),
        // Half duplex mutes the microphone while speaking: there is nothing to barge in with.
        barge_in: cfg.duplex == Duplex::EchoSuppression,
        source: AudioSource::Live,
        ..Default::default()
    };
    let opened = match svc.admit("kiosk", KIOSK_TENANT) {
        Ok(slot) => svc.open(slot, request).await,
        Err(e) => Err(e),
    };
    let mut session = match opened {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "the kiosk cannot open its conversation");
            println!("[cannot start: {e}]");
            return;
        }
    };
    let devices = Devices::start(
        &cfg.input_device,
        &cfg.output_device,
        Duration::from_millis(cfg.device_retry_ms.max(100)),
    );
    let (talk_tx, talk_rx) = mpsc::channel::<()>(4);
    if cfg.wake == Wake::PushToTalk {
        spawn_enter_reader(talk_tx);
        println!("[push to talk: press Enter to speak, Enter again when done]");
    }
    let mut room = Room::new(
        &config,
        Arc::clone(&backends),
        Arc::clone(&metrics),
        tracker.clone(),
        devices,
        talk_rx,
    );
    let rules = CallRules {
        // The microphone is live capture: a pipeline that is behind loses chunks, counted.
        overflow: Overflow::DropAndCount,
        idle: None,
        max_length: None,
    };
    let end = call::run(&svc, &mut session, &mut room, rules, &Cleared::default()).await;
    info!(reason = ?end, "kiosk conversation ended");
    session_stop.cancel();
    drop(session);
    let devices = room.into_devices();
    info!(
        capture_chunks_dropped = devices.dropped.load(Ordering::Relaxed),
        device_glitches = devices.glitches.load(Ordering::Relaxed),
        "kiosk devices closing"
    );
    devices_stop(devices).await;
    tracker.close();
    if tokio::time::timeout(crate::daemon::DRAIN_DEADLINE, tracker.wait())
        .await
        .is_err()
    {
        warn!("kiosk tasks still running at the shutdown deadline");
    }
    info!(
        dropped_capture = metrics.audio_chunks_dropped.load(Ordering::Relaxed),
        "kiosk stopped"
    );
}

/// The tenant of the kiosk's one conversation.
const KIOSK_TENANT: &str = "kiosk";

/// Stops the device thread off the runtime (it joins a thread).
async fn devices_stop(devices: Devices) {
    let _ = tokio::task::spawn_blocking(move || devices.stop()).await;
}

/// Each Enter on the terminal toggles push-to-talk (a blocking reader thread; it ends at EOF).
fn spawn_enter_reader(tx: mpsc::Sender<()>) {
    let _ = std::thread::Builder::new()
        .name("kiosk-keys".into())
        .spawn(move || {
            use std::io::BufRead;
            for line in std::io::stdin().lock().lines() {
                if line.is_err() || tx.blocking_send(()).is_err() {
                    break;
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_duplex_mutes_while_playing_and_for_a_tail() {
        let mut g = MicGate::new(Duplex::Half, Wake::Vad);
        let t0 = Instant::now();
        let mut chunk = vec![0.5f32; 160];
        g.pass(&mut chunk, false, 0.0, t0);
        assert_eq!(chunk[0], 0.5, "open while nothing plays");
        g.pass(&mut chunk, true, 0.2, t0);
        assert_eq!(chunk[0], 0.0, "muted while the reply plays");
        let mut chunk = vec![0.5f32; 160];
        g.pass(&mut chunk, false, 0.0, t0 + Duration::from_millis(100));
        assert_eq!(chunk[0], 0.0, "still muted in the tail");
        let mut chunk = vec![0.5f32; 160];
        g.pass(
            &mut chunk,
            false,
            0.0,
            t0 + HALF_DUPLEX_TAIL + Duration::from_millis(1),
        );
        assert_eq!(chunk[0], 0.5);
    }

    #[test]
    fn echo_suppression_lets_a_louder_voice_through() {
        let mut g = MicGate::new(Duplex::EchoSuppression, Wake::Vad);
        let now = Instant::now();
        let mut echo = vec![0.1f32; 160];
        g.pass(&mut echo, true, 0.1, now);
        assert!(
            echo.iter().all(|s| *s == 0.0),
            "the reply's echo is suppressed"
        );
        let mut voice = vec![0.5f32; 160];
        g.pass(&mut voice, true, 0.1, now);
        assert_eq!(voice[0], 0.5, "a person speaking up interrupts");
    }

    #[test]
    fn push_to_talk_listens_only_while_on() {
        let mut g = MicGate::new(Duplex::Half, Wake::PushToTalk);
        let now = Instant::now();
        let mut chunk = vec![0.5f32; 16];
        g.pass(&mut chunk, false, 0.0, now);
        assert_eq!(chunk[0], 0.0);
        g.talking = true;
        let mut chunk = vec![0.5f32; 16];
        g.pass(&mut chunk, false, 0.0, now);
        assert_eq!(chunk[0], 0.5);
    }

    #[test]
    fn offline_checks_and_greetings() {
        let mut c = Config::default();
        assert!(check_offline(&c).is_ok());
        c.llm.kind = LlmKind::Openai;
        assert!(check_offline(&c)
            .unwrap_err()
            .to_string()
            .contains("llm.kind"));
        let mut c = Config::default();
        c.pipeline.languages = vec![
            "te".into(),
            "xx".into(),
            "hi".into(),
            "en".into(),
            "ta".into(),
        ];
        c.kiosk.greetings.insert("hi".into(), "राम राम".into());
        let g = greetings(&c);
        let langs: Vec<&str> = g.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(langs, ["te", "hi", "en"]);
        assert_eq!(g[1].1, "राम राम");
        for l in crate::config::DEFAULT_LANGUAGES {
            assert!(default_greeting(l).is_some(), "{l}");
        }
    }
}
