//! A phone caller refused for want of room hears why before the line closes — "all our lines
//! are busy right now, please call again in a few minutes", in the call's language — as an IVR
//! would say it, instead of a dropped call. Each language's prompt is synthesized once and kept
//! (a burst of refused calls costs the cores nothing more; a daemon's first phone call has its
//! language's prompt made, before the box is full), and a refused caller waits at most [`PROMPT_WAIT`] for a prompt still
//! being made: then the call closes without it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::call::{self, CallSetup};
use super::end::End;
use super::frames::{Inbound, StartInfo};
use super::reader::Reader;
use super::writer::{parse_mark, Connection, Out, Writer};
use crate::flow::TurnControl;
use crate::metrics::Metrics;
use crate::session::service::{OpenRequest, SessionService};
use crate::text::phrases::lines_busy;
use crate::transport::codec::OutputEncoder;
use crate::transport::oneoff::{synthesize, Speech};

/// The longest a refused caller waits for a prompt that is still being synthesized.
pub const PROMPT_WAIT: Duration = Duration::from_secs(5);

/// A prompt being made (`None`), made (`Some(Some)`) or failed (`Some(None)`: made again when
/// next asked for).
type Made = watch::Receiver<Option<Option<Arc<Speech>>>>;

/// The busy prompts of one daemon, by language.
#[derive(Default)]
pub struct BusyPrompts {
    made: Mutex<HashMap<String, Made>>,
}

impl BusyPrompts {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Made>> {
        // Only clones and inserts happen under the lock: a panic cannot leave it half-changed.
        self.made.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The prompt in `language`, if it is made or can be within `wait`.
    pub async fn get(
        &self,
        svc: &Arc<SessionService>,
        language: &str,
        wait: Duration,
    ) -> Option<Arc<Speech>> {
        let mut made = self.make(svc, language);
        if let Ok(Ok(prompt)) = tokio::time::timeout(wait, made.wait_for(Option::is_some)).await {
            return prompt.clone().flatten();
        }
        None
    }

    /// Starts making `language`'s prompt unless it is made or being made (a synthesis owned by
    /// the service's tracker, so shutdown waits for it).
    pub fn make(&self, svc: &Arc<SessionService>, language: &str) -> Made {
        let mut made = self.lock();
        if let Some(m) = made.get(language) {
            if !matches!(*m.borrow(), Some(None)) {
                return m.clone();
            }
        }
        let (tx, rx) = watch::channel(None);
        made.insert(language.to_string(), rx.clone());
        let (owner, language) = (Arc::clone(svc), language.to_string());
        svc.tracker().spawn(async move {
            let backends = &owner.backends;
            let speed = backends.config.tts.default_speed;
            let text = lines_busy(&language).to_string();
            let prompt = match synthesize(backends, text, language.clone(), None, speed).await {
                Ok(speech) => {
                    let seconds = speech.audio.len() as f32 / speech.sample_rate.max(1) as f32;
                    info!(%language, voice = %speech.voice, seconds, "busy prompt ready");
                    Some(Arc::new(speech))
                }
                Err(e) => {
                    warn!(%language, error = %e, "no busy prompt: refused callers hear none");
                    None
                }
            };
            let _ = tx.send(Some(prompt));
        });
        rx
    }
}

/// A started call refused for want of room: the caller hears the busy prompt (when there is
/// one within [`PROMPT_WAIT`]) through the call's own writer, then the line closes with `end`
/// (1013 / AudioSocket's busy error) once the provider says it played, the caller hangs up, the
/// prompt's length has passed, or the daemon shuts down.
pub(super) async fn refuse(
    svc: &Arc<SessionService>,
    setup: &CallSetup,
    start: &StartInfo,
    conn: Connection,
    reader: &mut Reader,
    language: &str,
    end: End,
) {
    let Some(prompt) = setup.prompts.get(svc, language, PROMPT_WAIT).await else {
        return call::refuse(svc, conn, reader, end).await;
    };
    let mut encoder = OutputEncoder::new(call::wire_format(start.format));
    let encoded = encoder
        .encode(&prompt.audio, prompt.sample_rate)
        .and_then(|(mut bytes, _)| {
            bytes.extend(encoder.flush()?.0);
            Ok(bytes)
        });
    let Ok(bytes) = encoded else {
        return call::refuse(svc, conn, reader, end).await;
    };
    let per_ms = start.format.bytes_per_ms().max(1);
    let prompt_ms = (bytes.len() / per_ms) as u64;
    let turns = Arc::new(TurnControl::new(CancellationToken::new()));
    let writer = Writer::spawn(svc, conn, setup.provider, start, turns);
    let played_by = Instant::now() + Duration::from_millis(prompt_ms) + PLAYED_MARGIN;
    let sent = async {
        for piece in bytes.chunks(per_ms * CHUNK_MS) {
            let audio = Out::Audio {
                turn: PROMPT_TURN,
                bytes: piece.to_vec(),
            };
            if writer.data.send(audio).await.is_err() {
                return;
            }
        }
        let _ = writer
            .data
            .send(Out::EndOfReply { turn: PROMPT_TURN })
            .await;
    };
    let until = async {
        sent.await;
        played_or_gone(reader, prompt_ms).await
    };
    // `acknowledged`: the provider's mark came back (AudioSocket has none: the deadline ends it).
    let shutdown = svc.shutdown_token().clone();
    let acknowledged = tokio::select! {
        biased;
        _ = shutdown.cancelled() => false,
        done = tokio::time::timeout_at(played_by, until) => done.is_ok(),
    };
    Metrics::incr(&svc.metrics.busy_prompts);
    info!(%language, prompt_ms, acknowledged, "refused caller heard the busy prompt");
    call::log_end(svc, &end);
    writer.close(end).await;
    reader.drain().await;
}

/// The prompt's only turn.
const PROMPT_TURN: u64 = 1;
/// The prompt goes to the writer in pieces of this many milliseconds.
const CHUNK_MS: usize = 200;
/// How long after the prompt's own length the provider may take to play it.
const PLAYED_MARGIN: Duration = Duration::from_millis(1_500);

/// Reads the caller's side until the provider has played `prompt_ms` of audio (its mark or
/// checkpoint) or the caller is gone. AudioSocket has no marks: its writer paces the audio, so
/// this waits for the deadline around it.
async fn played_or_gone(reader: &mut Reader, prompt_ms: u64) {
    loop {
        match reader.next().await {
            Ok(Some(Inbound::Played(name))) => {
                if parse_mark(&name).is_some_and(|(_, ms)| ms + 5 >= prompt_ms) {
                    return;
                }
            }
            Ok(Some(Inbound::Stop)) | Ok(None) | Err(_) => return,
            Ok(Some(_)) => {}
        }
    }
}

/// The call's language for the prompt: the caller's IVR choice, else the first of the call's
/// languages, else the telephony default — the first of these that vaak `served`.
pub(super) fn prompt_language(served: &[String], req: &OpenRequest, defaults: &[String]) -> String {
    req.preferred_language
        .iter()
        .chain(&req.languages)
        .chain(defaults)
        .find(|l| served.contains(l))
        .or_else(|| served.first())
        .cloned()
        .unwrap_or_else(|| "en".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(preferred: Option<&str>, languages: &[&str]) -> OpenRequest {
        OpenRequest {
            tenant: "t".into(),
            session_id: None,
            languages: languages.iter().map(|l| l.to_string()).collect(),
            voices: Default::default(),
            text_only: false,
            speech_rate: 0.0,
            barge_in: true,
            playback_acks: true,
            narrowband: true,
            preferred_language: preferred.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn the_prompt_speaks_the_callers_served_language() {
        let served: Vec<String> = ["en", "hi", "te"].map(String::from).to_vec();
        let defaults: Vec<String> = vec!["te".into()];
        let pick = |r: &OpenRequest| prompt_language(&served, r, &defaults);
        assert_eq!(pick(&req(Some("hi"), &["en"])), "hi");
        assert_eq!(pick(&req(Some("xx"), &["ta", "en"])), "en");
        assert_eq!(pick(&req(None, &["ta"])), "te");
        assert_eq!(prompt_language(&served, &req(None, &["ta"]), &[]), "en");
    }
}
