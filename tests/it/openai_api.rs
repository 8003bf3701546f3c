//! vaak's OpenAI-compatible speech endpoints, driven by the official `openai` Python client
//! (PyPI) against a real daemon with the real models: a Hindi clip transcribed in Devanagari,
//! an English one in `verbose_json` with its language and duration, Hindi and English speech
//! synthesised as a stream and heard back by vaak's own recogniser, the model list, and each
//! error a client meets in OpenAI's shape with the right status.

use std::path::Path;

use serde_json::Value;

use super::common::{first_clip, is_script, transcribe};
use super::grpc_api::{run_python, Daemon, Outcome, Run};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/openai_client.py");
const KEY_ENV: &str = "VAAK_TEST_OPENAI_KEY";
const KEY: &str = "openai-key-0123456789abcdef";
/// A second tenant's key, limited to 6 requests a minute (a burst of one).
const LIMITED_ENV: &str = "VAAK_TEST_OPENAI_LIMITED_KEY";
const LIMITED: &str = "limited-key-0123456789abcdef";

fn error_status(run: &Run, step: &str) -> (u64, String) {
    let s = &run.json[step];
    (
        s["error_status"].as_u64().unwrap_or(0),
        s.pointer("/error_body/message")
            .or_else(|| s.pointer("/error_body/error/message"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    )
}

fn transcripts(run: &Run) -> Outcome {
    let hi = run.s("/hi_json/text");
    check!(
        is_script(hi, 0x900, 0x97f),
        "the Hindi clip was not transcribed in Devanagari: {}",
        run.json["hi_json"]
    );
    let v = &run.json["en_verbose"];
    check!(
        v["text"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("americans")
            && v["language"] == "english"
            && v["duration"].as_f64().unwrap_or(0.0) > 5.0
            && v["segments"].as_u64() == Some(1),
        "verbose_json: {v}"
    );
    check!(
        run.s("/en_text/text").to_lowercase().contains("country"),
        "text: {}",
        run.json["en_text"]
    );
    let ids = run.json.pointer("/models/ids").cloned().unwrap_or_default();
    check!(
        ["vaak-asr", "vaak-tts", "whisper-1", "tts-1"]
            .iter()
            .all(|m| ids.as_array().is_some_and(|a| a.iter().any(|x| x == m))),
        "models: {ids}"
    );
    Ok(())
}

/// The streamed speech, heard back by vaak: the WAV as it came, the PCM given a header.
fn speech(run: &Run, dir: &Path) -> Outcome {
    let en = &run.json["speech_en_wav"];
    check!(
        en["bytes"].as_u64().unwrap_or(0) > 44 + 24_000,
        "en wav: {en}"
    );
    let wav = Path::new(en["path"].as_str().unwrap_or("")).to_path_buf();
    // The streamed header has open-ended sizes: give it the real ones for the reader.
    let bytes = std::fs::read(&wav).map_err(|e| format!("{e}"))?;
    let fixed = dir.join("en-fixed.wav");
    write_pcm_wav(&fixed, &bytes[44..]);
    let heard = transcribe(&fixed, &["--language", "en"]);
    let text = heard["text"].as_str().unwrap_or("").to_lowercase();
    check!(
        text.contains("chennai") || text.contains("train"),
        "Whisper heard {text:?} in vaak's English speech"
    );
    let hi = &run.json["speech_hi_pcm"];
    check!(hi["bytes"].as_u64().unwrap_or(0) > 24_000, "hi pcm: {hi}");
    let pcm = std::fs::read(hi["path"].as_str().unwrap_or("")).map_err(|e| format!("{e}"))?;
    let hi_wav = dir.join("hi.wav");
    write_pcm_wav(&hi_wav, &pcm);
    let heard = transcribe(&hi_wav, &["--language", "hi"]);
    let text = heard["text"].as_str().unwrap_or("");
    check!(
        is_script(text, 0x900, 0x97f) && text.contains("नमस्ते"),
        "Whisper heard {text:?} in vaak's Hindi speech"
    );
    eprintln!(
        "[openai] first speech bytes after {:.2} s (en), {:.2} s (hi); voices {} / {}",
        en["first_bytes_s"].as_f64().unwrap_or(f64::NAN),
        hi["first_bytes_s"].as_f64().unwrap_or(f64::NAN),
        en["voice"],
        hi["voice"]
    );
    Ok(())
}

fn write_pcm_wav(path: &Path, pcm: &[u8]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 24_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in pcm.chunks_exact(2) {
        w.write_sample(i16::from_le_bytes([s[0], s[1]])).unwrap();
    }
    w.finalize().unwrap();
}

fn errors(run: &Run) -> Outcome {
    check!(
        run.json["rate_first"]["bytes"].as_u64().unwrap_or(0) > 0,
        "the limited key's first request: {}",
        run.json["rate_first"]
    );
    for (step, status, says) in [
        ("bad_key", 401, ""),
        ("bad_key_upload", 401, ""),
        ("bad_model", 404, "gpt-9"),
        ("bad_format", 400, "mp3"),
        ("bad_voice", 400, "no-such-voice"),
        ("bad_language", 400, "xx"),
        ("not_wav", 400, "WAV"),
        ("empty_file", 400, "WAV"),
        ("too_large", 413, ""),
        ("not_multipart", 400, "multipart"),
        ("too_long", 400, "2000"),
        ("rate_limited", 429, "too many requests"),
    ] {
        let (got, message) = error_status(run, step);
        check!(
            got == status && message.contains(says),
            "{step}: expected HTTP {status} naming {says:?}, got {}",
            run.json[step]
        );
    }
    Ok(())
}

#[test]
fn openai_clients_transcribe_and_speak() {
    let d = Daemon::start(
        "openai",
        &format!(
            "api_keys = [{{ tenant = \"acme\", key_env = \"{KEY_ENV}\" }}, \
             {{ tenant = \"small\", key_env = \"{LIMITED_ENV}\", requests_per_minute = 6 }}]"
        ),
        "[pipeline]\nlanguages = [\"hi\", \"en\"]\n",
        &[(KEY_ENV, KEY), (LIMITED_ENV, LIMITED)],
    );
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://{}/v1", d.http);
    let run = run_python(
        SCRIPT,
        &[
            "--base-url",
            &base,
            "--key",
            KEY,
            "--limited-key",
            LIMITED,
            "--hi-clip",
            &first_clip("hi"),
            "--en-clip",
            &first_clip("en"),
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
        600,
    );
    eprintln!("[openai] client: {}", run.json);
    let results = vec![
        (
            "client ran",
            if run.ok() { Ok(()) } else { Err(run.show()) },
        ),
        ("transcriptions and models", transcripts(&run)),
        ("speech heard back", speech(&run, dir.path())),
        ("errors in OpenAI's shape", errors(&run)),
        (
            "counted in /metrics",
            d.metrics_hold(&[
                // Two in English and Hindi, and the limited tenant's first.
                "vaak_api_requests_total{endpoint=\"speech\",status=\"200\"} 3",
                "vaak_api_requests_total{endpoint=\"speech\",status=\"429\"} 1",
                "vaak_sessions_refused_by_total{transport=\"openai\",reason=\"rate_limit\"} 1",
                "vaak_api_requests_total{endpoint=\"transcriptions\",status=\"413\"} 1",
                "vaak_api_requests_total{endpoint=\"models\",status=\"401\"} 1",
            ]),
        ),
    ];
    d.finish(results);
}
