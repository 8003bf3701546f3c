//! One phone call = one session, whatever the provider: the stream's start, admission, the
//! session, then the call loop, which feeds the pipeline what the reader (`reader.rs`) decoded
//! and turns the pipeline's events into audio and control for the writer (`writer.rs`); the
//! call's [`End`] (`end.rs`) says how it finished.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::frames::{Codec, Inbound, MediaFormat, StartInfo};
use super::Provider;
use crate::flow::{Ingest, PipelineEvent, TurnId};
use crate::metrics::Metrics;
use crate::session::service::{OpenRequest, OpenSession, SessionService};
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
    let mut decoder = match InputDecoder::new(wire_format(start.format)) {
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
    let writer = Writer::spawn(&svc, conn, setup.provider, &start, turns);
    let end = call_loop(
        &svc,
        &mut session,
        &mut reader,
        &writer,
        &mut decoder,
        start.format,
    )
    .await;
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

async fn call_loop(
    svc: &SessionService,
    session: &mut OpenSession,
    reader: &mut Reader,
    writer: &Writer,
    decoder: &mut InputDecoder,
    format: MediaFormat,
) -> End {
    let cfg = &svc.backends.config;
    let idle = Duration::from_secs(cfg.server.idle_timeout_s);
    let session_deadline = Instant::now() + Duration::from_secs(cfg.server.max_session_s);
    let mut idle_deadline = Instant::now() + idle;
    let shutdown = svc.shutdown_token().clone();
    let input = session.pipeline.input.clone();
    let turns = Arc::clone(&session.pipeline.turns);
    let handoff = cfg.telephony.handoff_digit.chars().next();
    let dtmf_wait = Duration::from_millis(cfg.telephony.dtmf_turn_ms);
    let mut encoder = OutputEncoder::new(wire_format(format));
    let mut pending: Option<Ingest> = None;
    let mut digits = String::new();
    let mut digits_deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return End::ShuttingDown,
            _ = session.cancel.cancelled() => {
                return End::Finished("the session was continued elsewhere or deleted".into())
            }
            _ = tokio::time::sleep_until(session_deadline) => {
                return End::Finished(format!(
                    "the call reached its maximum length of {} s", cfg.server.max_session_s))
            }
            _ = tokio::time::sleep_until(idle_deadline), if pending.is_none() => {
                return End::Protocol(format!(
                    "no message from the provider for {} s", cfg.server.idle_timeout_s))
            }
            _ = sleep_until_opt(digits_deadline), if pending.is_none() => {
                digits_deadline = None;
                pending = Some(keypad_turn(&mut digits));
            }
            permit = input.reserve(), if pending.is_some() => {
                let Ok(permit) = permit else { return End::Internal("the pipeline stopped".into()) };
                if let Some(msg) = pending.take() {
                    permit.send(msg);
                }
            }
            msg = reader.next(), if pending.is_none() => {
                idle_deadline = Instant::now() + idle;
                match msg {
                    Ok(None) | Ok(Some(Inbound::Stop)) => return End::HungUp,
                    Ok(Some(Inbound::Connected)) | Ok(Some(Inbound::Cleared)) => {}
                    Ok(Some(Inbound::Start(_))) => {
                        return End::Protocol("a second `start` in one stream".into())
                    }
                    Ok(Some(Inbound::Media(bytes))) => {
                        if bytes.len() > cfg.server.max_message_bytes {
                            return End::Protocol(format!(
                                "media of {} bytes exceeds the limit of {} bytes",
                                bytes.len(), cfg.server.max_message_bytes));
                        }
                        match decoder.decode(&bytes) {
                            Ok(pcm) if pcm.is_empty() => {}
                            Ok(pcm) => pending = Some(Ingest::Audio(pcm)),
                            Err(s) => return End::Protocol(s.to_string()),
                        }
                    }
                    Ok(Some(Inbound::Dtmf(d))) => {
                        Metrics::incr(&svc.metrics.dtmf_digits);
                        // Digits may be a PIN or an OTP: counted, never logged.
                        // The hand-off key counts only as the first key: inside a number
                        // being typed ("1 0 2") it is a digit.
                        if Some(d) == handoff && digits.is_empty() {
                            Metrics::incr(&svc.metrics.call_handoffs);
                            return End::Handoff;
                        }
                        if d == '#' {
                            if !digits.is_empty() {
                                digits_deadline = None;
                                pending = Some(keypad_turn(&mut digits));
                            }
                        } else if digits.len() < 32 {
                            digits.push(d);
                            digits_deadline = Some(Instant::now() + dtmf_wait);
                        }
                    }
                    Ok(Some(Inbound::Played(name))) => {
                        if let Some((turn, ms)) = parse_mark(&name) {
                            turns.report_played(TurnId(turn), ms);
                        }
                    }
                    Err(e) => return End::from_wire(e),
                }
            }
            ev = session.pipeline.events.recv() => {
                let Some(ev) = ev else { return End::Finished("the session ended".into()) };
                if !forward(ev, writer, &mut encoder).await {
                    return End::HungUp;
                }
            }
        }
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

/// Pipeline event → writer. False once the writer is gone.
async fn forward(ev: PipelineEvent, writer: &Writer, encoder: &mut OutputEncoder) -> bool {
    match ev {
        PipelineEvent::ReplyAudio {
            turn,
            samples,
            sample_rate,
            ..
        } => {
            if turn.0 <= writer.cleared.load(Ordering::Acquire) {
                return true;
            }
            match encoder.encode(&samples, sample_rate) {
                Ok((bytes, n)) if n > 0 => writer
                    .data
                    .send(Out::Audio {
                        turn: turn.0,
                        bytes,
                    })
                    .await
                    .is_ok(),
                Ok(_) => true,
                Err(s) => {
                    warn!(error = %s, "cannot encode reply audio");
                    true
                }
            }
        }
        PipelineEvent::TurnCompleted { turn, .. } => {
            if let Ok((bytes, n)) = encoder.flush() {
                if n > 0
                    && turn.0 > writer.cleared.load(Ordering::Acquire)
                    && writer
                        .data
                        .send(Out::Audio {
                            turn: turn.0,
                            bytes,
                        })
                        .await
                        .is_err()
                {
                    return false;
                }
            }
            writer
                .data
                .send(Out::EndOfReply { turn: turn.0 })
                .await
                .is_ok()
        }
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
            writer.cleared.fetch_max(turn.0, Ordering::AcqRel);
            encoder.reset();
            writer
                .control
                .send(Control::Clear { turn: turn.0 })
                .await
                .is_ok()
        }
        PipelineEvent::TurnFailed { stage, .. } => {
            warn!(stage, "turn failed");
            true
        }
        _ => true,
    }
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
