//! A remote OpenAI-compatible speech server (`[tts.remote]`) with the local voices as
//! fallback, tested against a real server process on loopback: another `vaak serve`, whose
//! `/v1/audio/speech` speaks. While it runs, Hindi and English are spoken by it (its request
//! counter moves, the voice is the remote one, Whisper hears the words); once it is gone the
//! local voice says the same clauses, the fallback is counted in `/metrics`, and a spoken turn
//! of a conversation still gets its audio.

use super::common::{is_script, transcribe};
use super::grpc_api::{Daemon, Outcome};

const REST: &str = "[llm]\nmax_tokens = 24\n[asr]\nthreads = 1\n";
const HINDI: &str = "नमस्ते, आज मौसम बहुत अच्छा है।";
const ENGLISH: &str = "Good morning. The train to Chennai leaves at ten.";

/// `Synthesize` on `d` in `lang`, saved as a WAV; (voice, seconds, what Whisper heard).
fn say(
    d: &Daemon,
    dir: &std::path::Path,
    lang: &str,
    text: &str,
    name: &str,
) -> Result<(String, f64, String), String> {
    let wav = dir.join(name);
    let r = d.client(
        "raw",
        &[
            "--rpc",
            "synthesize",
            "--language",
            lang,
            "--text",
            text,
            "--save-wav",
            wav.to_str().unwrap_or_default(),
        ],
        60,
    );
    ensure!(r.s("/code") == "OK", r, "Synthesize({lang}) failed");
    ensure!(
        r.f("/response/rms_dbfs") > -40.0,
        r,
        "Synthesize({lang}) returned silence"
    );
    let heard = transcribe(&wav, &["--language", lang]);
    Ok((
        r.s("/response/voice").to_string(),
        r.f("/response/seconds"),
        heard["text"].as_str().unwrap_or_default().to_lowercase(),
    ))
}

fn fallbacks_are(d: &Daemon, n: u32) -> Outcome {
    d.metrics_hold(&[&format!(
        "vaak_backend_fallbacks_total{{backend=\"tts\"}} {n}"
    )])
}

#[test]
fn a_remote_voice_speaks_and_the_local_voice_takes_over_when_it_fails() {
    let server = Daemon::start("tts-server", "", REST, &[]);
    let rest = format!(
        "{REST}[tts.remote]\nurl = \"http://{}/v1/audio/speech\"\nlanguages = [\"hi\", \"en\"]\ntimeout_ms = 5000\n",
        server.http
    );
    let d = Daemon::start("tts-remote", "", &rest, &[]);
    let dir = tempfile::tempdir().unwrap();
    let remote = (|| -> Outcome {
        for (lang, text) in [("hi", HINDI), ("en", ENGLISH)] {
            let (voice, seconds, heard) =
                say(&d, dir.path(), lang, text, &format!("{lang}-remote.wav"))?;
            check!(
                voice == "remote:alloy",
                "{lang}: voice {voice:?}, not the remote one"
            );
            check!(seconds > 1.0, "{lang}: only {seconds} s of speech");
            match lang {
                "hi" => check!(
                    is_script(&heard, 0x900, 0x97f),
                    "the remote Hindi was heard as {heard:?}"
                ),
                _ => check!(
                    heard.contains("chennai") || heard.contains("train"),
                    "the remote English was heard as {heard:?}"
                ),
            }
        }
        server.metrics_hold(&["vaak_api_requests_total{endpoint=\"speech\",status=\"200\"} 2"])?;
        fallbacks_are(&d, 0)
    })();
    // The server goes away: the same clauses in the local voices, each counted.
    server.finish(vec![]);
    drop(server);
    let local = (|| -> Outcome {
        let (voice, seconds, heard) = say(&d, dir.path(), "en", ENGLISH, "en-local.wav")?;
        check!(voice == "remote:alloy", "voice {voice:?}");
        check!(
            seconds > 1.0,
            "only {seconds} s of speech from the local voice"
        );
        check!(
            heard.contains("chennai") || heard.contains("train"),
            "the local English was heard as {heard:?}"
        );
        fallbacks_are(&d, 1)?;
        // A spoken turn of a conversation: its reply audio comes from the local voice too.
        let r = d.client(
            "converse",
            &["--text", "What is the capital of India?"],
            120,
        );
        ensure!(r.ok(), r, "the conversation failed with the server gone");
        ensure!(
            r.f("/turns/0/reply_audio/seconds") > 0.5,
            r,
            "the reply had no audio with the server gone"
        );
        Ok(())
    })();
    d.finish(vec![
        ("spoken by the remote server", remote),
        ("the local voice takes over", local),
    ]);
}
