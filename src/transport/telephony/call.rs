//! One phone call = one session, whatever the provider: the stream's start, admission, the
//! session, then the call kernel (`transport::call`) with this file's [`Line`]: what the reader
//! (`reader.rs`) decoded goes to the pipeline, and the pipeline's events become audio and
//! control for the writer (`writer.rs`); the call's [`End`] (`end.rs`) says how it finished.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::frames::{Codec, Inbound, MediaFormat, StartInfo, WireError};
use super::Provider;
use crate::flow::{Ingest, PipelineEvent, TurnControl, TurnId};
use crate::metrics::Metrics;
use crate::session::service::{AudioSource, OpenRequest, SessionService};
use crate::transport::call::{self, CallRules, Input, Overflow, Side};
use crate::transport::codec::{Encoding, InputDecoder, OutputEncoder, WireFormat};
use crate::transport::{language_list, sleep_until_opt};

use super::busy::{self, BusyPrompts};
use super::end::End;
use super::reader::{Reader, START_TIMEOUT};
use super::writer::*;

/// What a call needs besides its socket.
pub struct CallSetup {
    pub provider: Provider,
    pub tenant: String,
    /// Parameters from the connection URL (Exotel passes its custom parameters there); the
    /// `start` message's own parameters win.
    pub url_params: std::collections::BTreeMap<String, String>,
    /// What a caller refused for want of room hears.
    pub prompts: Arc<BusyPrompts>,
}

/// The session request of a call: its parameters may name a session to continue (e.g. a hash
/// of the caller's number, never the number) and its languages.
fn open_request(setup: &CallSetup, start: &StartInfo, default_languages: &[String]) -> OpenRequest {
    let mut params = setup.url_params.clone();
    params.extend(start.params.clone());
    let session_id = params.get("session_id").cloned().unwrap_or_else(|| {
        let id: String = start
            .call_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(48)
            .collect();
        format!("{}-{id}", setup.provider.name())
    });
    let languages = params
        .get("languages")
        .or_else(|| params.get("language"))
        .map(|l| language_list(l))
        .unwrap_or_else(|| default_languages.to_vec());
    OpenRequest {
        tenant: setup.tenant.clone(),
        session_id: Some(session_id),
        languages,
        voices: Default::default(),
        text_only: false,
        speech_rate: 0.0,
        barge_in: true,
        playback_acks: true,
        narrowband: start.format.rate == 8_000,
        // `preferred_language=te`: a caller's IVR choice ("press 2 for Telugu").
        preferred_language: params.get("preferred_language").cloned(),
        source: AudioSource::Live,
    }
}

pub(super) fn wire_format(f: MediaFormat) -> WireFormat {
    WireFormat {
        encoding: match f.codec {
            Codec::Mulaw => Encoding::Mulaw,
            Codec::Pcm16 => Encoding::Pcm16,
        },
        rate: f.rate,
    }
}

/// One call from connection to goodbye, whatever the provider: the stream's start,
/// admission, the session, the call loop, then the log line and the close (a close frame, or
/// AudioSocket's error frame).
pub async fn serve(
    svc: Arc<SessionService>,
    setup: CallSetup,
    mut reader: Reader,
    conn: Connection,
) {
    // The call says who it is before it is given a slot: a caller that dribbles its start
    // (or never sends one) is cut off at START_TIMEOUT without holding a conversation.
    let start = match await_start(&mut reader).await {
        Ok(s) => s,
        Err(end) => return refuse(&svc, conn, &mut reader, end).await,
    };
    let cfg = &svc.backends.config;
    let default_languages = cfg.telephony.default_languages(&cfg.pipeline);
    let req = open_request(&setup, &start, &default_languages);
    let prompt_language = busy::prompt_language(&cfg.pipeline.languages, &req, &default_languages);
    let slot = match svc.admit("telephony", &setup.tenant) {
        Ok(s) => s,
        Err(e) => {
            let end = End::Busy(e.to_string());
            let language = &prompt_language;
            return busy::refuse(&svc, &setup, &start, conn, &mut reader, language, end).await;
        }
    };
    // A daemon that takes phone calls has the busy prompt ready before it is overloaded.
    setup.prompts.make(&svc, &prompt_language);
    let decoder = match InputDecoder::new(wire_format(start.format)) {
        Ok(d) => d,
        Err(s) => return refuse(&svc, conn, &mut reader, End::Internal(s.to_string())).await,
    };
    let mut session = match svc.open(slot, req).await {
        Ok(s) => s,
        Err(e) => return refuse(&svc, conn, &mut reader, End::from_open(e)).await,
    };
    info!(
        session = %session.id,
        resumed = session.resumed,
        rate = start.format.rate,
        codec = ?start.format.codec,
        "call started"
    );
    let turns = Arc::clone(&session.pipeline.turns);
    let writer = Writer::spawn(&svc, conn, setup.provider, &start, Arc::clone(&turns));
    let tel = &cfg.telephony;
    let mut line = Line {
        svc: &svc,
        reader: &mut reader,
        writer: &writer,
        decoder,
        encoder: OutputEncoder::new(wire_format(start.format)),
        turns,
        handoff: tel.handoff_digit.chars().next(),
        dtmf_wait: Duration::from_millis(tel.dtmf_turn_ms),
        digits: String::new(),
        digits_deadline: None,
    };
    // A phone line is live audio: a pipeline that is behind loses chunks, counted.
    let rules = CallRules::remote(Overflow::DropAndCount, &cfg.server);
    let end = call::run(&svc, &mut session, &mut line, rules, &writer.cleared).await;
    let end = match end {
        call::End::Transport(end) => end,
        call::End::ShuttingDown => End::ShuttingDown,
        call::End::Idle(s) => End::Protocol(format!("no message from the provider for {s} s")),
        stopped @ call::End::PipelineStopped => {
            End::Internal(stopped.describe().unwrap_or_default())
        }
        call::End::Gone => End::HungUp,
        other => End::Finished(other.describe().unwrap_or_default()),
    };
    session.cancel.cancel();
    log_end(&svc, &end);
    writer.close(end).await;
    reader.drain().await;
}

/// Ends a call that never got a session.
pub(super) async fn refuse(svc: &SessionService, conn: Connection, reader: &mut Reader, end: End) {
    log_end(svc, &end);
    conn.close(&end).await;
    reader.drain().await;
}

/// A phone line's side of the call kernel: the provider's messages in (media decoded, keys
/// gathered into a typed turn, marks reported as played), reply audio and clears out through
/// the writer.
struct Line<'a> {
    svc: &'a SessionService,
    reader: &'a mut Reader,
    writer: &'a Writer,
    decoder: InputDecoder,
    encoder: OutputEncoder,
    turns: Arc<TurnControl>,
    handoff: Option<char>,
    dtmf_wait: Duration,
    digits: String,
    digits_deadline: Option<Instant>,
}

impl Side for Line<'_> {
    type End = End;

    async fn next(&mut self) -> Input<End> {
        tokio::select! {
            biased;
            _ = sleep_until_opt(self.digits_deadline) => {
                self.digits_deadline = None;
                Input::Ingest(keypad_turn(&mut self.digits))
            }
            msg = self.reader.next() => self.on_message(msg),
        }
    }

    async fn audio(&mut self, turn: TurnId, samples: Vec<f32>, rate: u32) -> Result<(), End> {
        match self.encoder.encode(&samples, rate) {
            Ok((bytes, n)) if n > 0 => {
                self.send(Out::Audio {
                    turn: turn.0,
                    bytes,
                })
                .await
            }
            Ok(_) => Ok(()),
            Err(s) => {
                warn!(error = %s, "cannot encode reply audio");
                Ok(())
            }
        }
    }

    async fn reply_done(&mut self, turn: TurnId, cleared: bool) -> Result<(), End> {
        if !cleared {
            if let Ok((bytes, n)) = self.encoder.flush() {
                if n > 0 {
                    self.send(Out::Audio {
                        turn: turn.0,
                        bytes,
                    })
                    .await?;
                }
            }
        }
        self.send(Out::EndOfReply { turn: turn.0 }).await
    }

    async fn clear(&mut self, turn: TurnId) -> Result<(), End> {
        self.encoder.reset();
        let clear = Control::Clear { turn: turn.0 };
        self.writer
            .control
            .send(clear)
            .await
            .map_err(|_| End::HungUp)
    }

    async fn event(&mut self, ev: PipelineEvent) -> Result<(), End> {
        match ev {
            PipelineEvent::Interrupted {
                turn,
                played_s,
                kept_text,
            } => {
                // The reply's words may repeat the caller's numbers: only their count is logged.
                info!(
                    turn = turn.0,
                    played_s,
                    kept_words = kept_text.split_whitespace().count(),
                    "barge-in: reply cleared"
                );
            }
            PipelineEvent::TurnFailed { stage, .. } => warn!(stage, "turn failed"),
            _ => {}
        }
        Ok(())
    }
}

impl Line<'_> {
    /// Reply audio to the writer; `Err` once it is gone (the caller hung up).
    async fn send(&self, out: Out) -> Result<(), End> {
        self.writer.data.send(out).await.map_err(|_| End::HungUp)
    }

    fn on_message(&mut self, msg: Result<Option<Inbound>, WireError>) -> Input<End> {
        let msg = match msg {
            Ok(None) => return Input::End(End::HungUp),
            Ok(Some(m)) => m,
            Err(e) => return Input::End(End::from_wire(e)),
        };
        let limit = self.svc.backends.config.server.max_message_bytes;
        match msg {
            Inbound::Stop => Input::End(End::HungUp),
            Inbound::Connected | Inbound::Cleared => Input::Nothing,
            Inbound::Start(_) => Input::End(End::Protocol("a second `start` in one stream".into())),
            Inbound::Media(bytes) if bytes.len() > limit => Input::End(End::Protocol(format!(
                "media of {} bytes exceeds the limit of {limit} bytes",
                bytes.len()
            ))),
            Inbound::Media(bytes) => match self.decoder.decode(&bytes) {
                Ok(pcm) if pcm.is_empty() => Input::Nothing,
                Ok(pcm) => Input::Ingest(Ingest::Audio(pcm)),
                Err(s) => Input::End(End::Protocol(s.to_string())),
            },
            Inbound::Dtmf(d) => self.on_key(d),
            Inbound::Played(name) => {
                if let Some((turn, ms)) = parse_mark(&name) {
                    self.turns.report_played(TurnId(turn), ms);
                }
                Input::Nothing
            }
        }
    }

    fn on_key(&mut self, d: char) -> Input<End> {
        Metrics::incr(&self.svc.metrics.dtmf_digits);
        // Digits may be a PIN or an OTP: counted, never logged. The hand-off key counts only
        // as the first key: inside a number being typed ("1 0 2") it is a digit.
        if Some(d) == self.handoff && self.digits.is_empty() {
            Metrics::incr(&self.svc.metrics.call_handoffs);
            return Input::End(End::Handoff);
        }
        if d == '#' {
            if !self.digits.is_empty() {
                self.digits_deadline = None;
                return Input::Ingest(keypad_turn(&mut self.digits));
            }
        } else if self.digits.len() < 32 {
            self.digits.push(d);
            self.digits_deadline = Some(Instant::now() + self.dtmf_wait);
        }
        Input::Nothing
    }
}

/// Keys pressed so far, as the user's typed turn.
fn keypad_turn(digits: &mut String) -> Ingest {
    let keys: Vec<String> = digits.chars().map(String::from).collect();
    // How many keys, never which.
    info!(keys = keys.len(), "keypad turn");
    digits.clear();
    Ingest::Text(format!("(keypad) {}", keys.join(" ")))
}

/// Waits for the call's `start` (skipping `connected`), bounded by [`START_TIMEOUT`].
async fn await_start(reader: &mut Reader) -> Result<StartInfo, End> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let msg = tokio::time::timeout_at(deadline, reader.next())
            .await
            .map_err(|_| {
                End::Protocol(format!(
                    "no start within {} s of connecting",
                    START_TIMEOUT.as_secs()
                ))
            })?;
        match msg {
            Ok(Some(Inbound::Start(s))) => return Ok(s),
            Ok(Some(Inbound::Connected)) => continue,
            Ok(None) | Ok(Some(Inbound::Stop)) => return Err(End::HungUp),
            Ok(Some(other)) => {
                return Err(End::Protocol(format!(
                    "`{}` before the stream's start",
                    inbound_name(&other)
                )))
            }
            Err(e) => return Err(End::from_wire(e)),
        }
    }
}

fn inbound_name(i: &Inbound) -> &'static str {
    match i {
        Inbound::Connected => "connected",
        Inbound::Start(_) => "start",
        Inbound::Media(_) => "media",
        Inbound::Dtmf(_) => "dtmf",
        Inbound::Played(_) => "mark",
        Inbound::Cleared => "clear",
        Inbound::Stop => "stop",
    }
}

/// Logs how a call ended and counts protocol errors.
pub(super) fn log_end(svc: &SessionService, end: &End) {
    if end.is_error() {
        if matches!(end, End::Protocol(_) | End::Unsupported(_)) {
            Metrics::incr(&svc.metrics.call_protocol_errors);
        }
        warn!(reason = ?end, "call closed with an error");
    } else {
        info!(reason = ?end, "call ended");
    }
}

#[cfg(test)]
mod tests {
    use super::super::audiosocket;
    use super::*;

    #[test]
    fn marks_round_trip() {
        assert_eq!(parse_mark(&mark_name(7, 1_240)), Some((7, 1_240)));
        assert_eq!(parse_mark("greeting"), None);
        assert_eq!(parse_mark("1:x"), None);
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let (code, reason) = End::Protocol("é".repeat(200)).close_frame();
        assert_eq!(code, 1007);
        assert!(reason.len() <= 123);
        assert_eq!(End::Busy("full".into()).close_frame().0, 1013);
        assert_eq!(End::Unsupported("rate".into()).close_frame().0, 1003);
        assert_eq!(End::HungUp.audiosocket_error(), None);
        assert_eq!(
            End::Protocol("x".into()).audiosocket_error(),
            Some(audiosocket::ERROR_PROTOCOL)
        );
    }

    #[test]
    fn call_parameters_choose_session_and_languages() {
        let setup = CallSetup {
            provider: Provider::Exotel,
            tenant: "exotel".into(),
            url_params: [("languages".to_string(), "hi,en".to_string())].into(),
            prompts: Default::default(),
        };
        let mut start = StartInfo {
            call_id: "CA 12/34".into(),
            stream_id: "s".into(),
            format: MediaFormat::PCM_8K,
            params: Default::default(),
        };
        let r = open_request(&setup, &start, &["te".to_string()]);
        assert_eq!(r.session_id.as_deref(), Some("exotel-CA1234"));
        assert_eq!(r.languages, vec!["hi", "en"]);
        assert!(r.narrowband && r.playback_acks && r.barge_in);
        start
            .params
            .insert("session_id".into(), "caller-3f2a".into());
        start.params.insert("language".into(), "te".into());
        let r = open_request(&setup, &start, &[]);
        assert_eq!(r.session_id.as_deref(), Some("caller-3f2a"));
        // The URL's `languages` is still there; `start` parameters win only key by key.
        assert_eq!(r.languages, vec!["hi", "en"]);
    }

    #[test]
    fn keypad_digits_become_one_turn() {
        let mut d = "123".to_string();
        let Ingest::Text(t) = keypad_turn(&mut d) else {
            panic!("not text")
        };
        assert_eq!(t, "(keypad) 1 2 3");
        assert!(d.is_empty());
    }
}
