//! Voice frameworks on vaak: a real Pipecat pipeline (Silero VAD → its `OpenAISTTService` →
//! a reply → its `OpenAITTSService`, run by Pipecat's own worker and runner) and a real LiveKit
//! Agents `AgentSession` (no LiveKit server or room: the WAV as its audio input, a buffer as its
//! output, `livekit.plugins.openai` STT and TTS, a fixed reply instead of an LLM), both with
//! `base_url` pointing at a real daemon's OpenAI-compatible endpoints. Each hears a Hindi eval clip (in
//! Devanagari) and the English one, and speaks a reply that vaak's recogniser hears back.
//!
//! The frameworks' packages live in their own venv (scripts/py-frameworks-env.sh), named by
//! `VAAK_FW_PY`; the test fails, never skips, without it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::common::{first_clip, is_script, transcribe};
use super::grpc_api::{run_json, Daemon, Outcome, Run};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/frameworks_client.py");
const KEY_ENV: &str = "VAAK_TEST_FW_KEY";
const KEY: &str = "frameworks-key-0123456789abcdef";
const HI_REPLY: &str = "नमस्ते। आज मौसम बहुत अच्छा है।";
const EN_REPLY: &str = "Good morning. The train to Chennai leaves at ten.";

/// The frameworks' venv python, from `VAAK_FW_PY` (scripts/test.sh exports it).
fn fw_python() -> String {
    let hint = "run `eval \"$(scripts/py-frameworks-env.sh)\"; export VAAK_FW_PY` first \
                (scripts/test.sh does): the Pipecat and LiveKit Agents tests need that venv";
    match std::env::var("VAAK_FW_PY") {
        Ok(p) if Path::new(&p).is_file() => p,
        Ok(p) => panic!("VAAK_FW_PY={p:?} is not a file; {hint}"),
        Err(_) => panic!("VAAK_FW_PY is not set; {hint}"),
    }
}

/// One run of the client: `framework` hears `lang`'s first eval clip and speaks `say`.
fn converse(py: &str, framework: &str, base: &str, lang: &str, say: &str, dir: &Path) -> Run {
    let out = dir.join(format!("{framework}-{lang}"));
    std::fs::create_dir_all(&out).unwrap();
    let clip = first_clip(lang);
    let args = [
        framework,
        "--base-url",
        base,
        "--api-key",
        KEY,
        "--wav",
        &clip,
        "--language",
        lang,
        "--say",
        say,
        "--out-dir",
        out.to_str().unwrap(),
    ];
    let run = run_json(
        Command::new(py).arg(SCRIPT).args(args),
        &format!("frameworks_client.py {}", args.join(" ")),
        Duration::from_secs(300),
    );
    eprintln!(
        "[frameworks] {framework} {lang} after {:.1} s: {}",
        run.wall.as_secs_f64(),
        run.json
    );
    run
}

/// What the framework heard, and the reply it got back, heard again by vaak's recogniser.
fn heard_and_said(run: &Run, lang: &str) -> Outcome {
    ensure!(run.ok(), run, "the client failed");
    let text = run.s("/transcript");
    let language = run.s("/language").to_lowercase();
    if lang == "hi" {
        ensure!(
            is_script(text, 0x900, 0x97f),
            run,
            "the Hindi clip was not transcribed in Devanagari: {text:?}"
        );
    } else {
        let t = text.to_lowercase();
        ensure!(
            t.contains("americans") && t.contains("country"),
            run,
            "the English clip was heard as {text:?}"
        );
    }
    ensure!(
        language.starts_with(lang),
        run,
        "vaak's language {language:?}, not {lang}"
    );
    ensure!(
        run.f("/audio_s") > 1.0 && run.f("/audio_bytes") > 48_000.0,
        run,
        "too little speech came back"
    );
    let wav = Path::new(run.s("/wav"));
    let back = transcribe(wav, &["--language", lang]);
    let back = back["text"].as_str().unwrap_or("").to_lowercase();
    let understood = if lang == "hi" {
        is_script(&back, 0x900, 0x97f) && back.contains("नमस्ते")
    } else {
        back.contains("chennai") || back.contains("train")
    };
    ensure!(
        understood,
        run,
        "Whisper heard {back:?} in the reply vaak spoke"
    );
    Ok(())
}

#[test]
fn pipecat_and_livekit_agents_use_vaak() {
    let py = fw_python();
    let d = Daemon::start(
        "frameworks",
        &format!("api_keys = [{{ tenant = \"acme\", key_env = \"{KEY_ENV}\" }}]"),
        "[pipeline]\nlanguages = [\"hi\", \"en\"]\n",
        &[(KEY_ENV, KEY)],
    );
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://{}/v1", d.http);
    let mut results = Vec::new();
    for (framework, lang, say, name) in [
        ("pipecat", "hi", HI_REPLY, "Pipecat pipeline, Hindi"),
        ("pipecat", "en", EN_REPLY, "Pipecat pipeline, English"),
        ("livekit", "hi", HI_REPLY, "LiveKit Agents, Hindi"),
        ("livekit", "en", EN_REPLY, "LiveKit Agents, English"),
    ] {
        let run = converse(&py, framework, &base, lang, say, dir.path());
        results.push((name, heard_and_said(&run, lang)));
    }
    d.finish(results);
}
