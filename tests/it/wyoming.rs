//! vaak's Wyoming server driven by the `wyoming` package from PyPI, as Home Assistant drives a
//! speech service, against a real daemon with the real models: describe/info, Hindi and
//! English clips transcribed, Hindi and English speech synthesised and heard back by vaak's
//! recogniser, a whole turn for the agent (transcript → handled → spoken answer), and bad input
//! (a client gone mid-audio, a malformed event, an unknown voice) costing only that client.

use std::path::Path;

use super::common::{first_clip, is_script, log_field, transcribe};
use super::grpc_api::{run_python, Daemon, Outcome, Run};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/wyoming_client.py");

fn described_and_transcribed(run: &Run) -> Outcome {
    let info = &run.json["info"];
    check!(
        info["asr_languages"] == serde_json::json!(["hi", "en"])
            && info["voices"].as_array().is_some_and(|v| !v.is_empty())
            && info["handle"] == serde_json::json!(["vaak"]),
        "info: {info}"
    );
    check!(
        is_script(run.s("/hi/text"), 0x900, 0x97f) && run.s("/hi/language") == "hi",
        "Hindi transcript: {}",
        run.json["hi"]
    );
    check!(
        run.s("/en/text").to_lowercase().contains("americans") && run.s("/en/language") == "en",
        "English transcript (language detected): {}",
        run.json["en"]
    );
    Ok(())
}

fn heard(path: &str, language: &str) -> String {
    let t = transcribe(Path::new(path), &["--language", language]);
    t["text"].as_str().unwrap_or("").to_string()
}

fn spoken(run: &Run) -> Outcome {
    let hi = heard(run.s("/speak_hi/path"), "hi");
    check!(
        hi.contains("नमस्ते"),
        "Whisper heard {hi:?} in vaak's Hindi speech: {}",
        run.json["speak_hi"]
    );
    let en = heard(run.s("/speak_en/path"), "en").to_lowercase();
    check!(
        en.contains("train") || en.contains("morning"),
        "Whisper heard {en:?} in vaak's English speech: {}",
        run.json["speak_en"]
    );
    let answer = run.s("/turn/answer").to_lowercase();
    check!(
        answer.contains("delhi"),
        "the agent answered {:?}",
        run.json["turn"]
    );
    let said = heard(run.s("/turn/spoken/path"), "en").to_lowercase();
    check!(
        said.contains("delhi"),
        "Whisper heard {said:?} in the spoken answer {answer:?}"
    );
    eprintln!(
        "[wyoming] first speech chunk after {:.2} s (hi), {:.2} s (en); answer {answer:?}",
        run.json["speak_hi"]["first_chunk_s"]
            .as_f64()
            .unwrap_or(f64::NAN),
        run.json["speak_en"]["first_chunk_s"]
            .as_f64()
            .unwrap_or(f64::NAN),
    );
    Ok(())
}

fn bad_input(run: &Run) -> Outcome {
    check!(
        run.s("/bad_voice/error/text").contains("nobody"),
        "unknown voice: {}",
        run.json["bad_voice"]
    );
    let g = &run.json["garbage"];
    check!(
        g["type"] == "error" && g["closed"] == true,
        "a malformed event: {g}"
    );
    check!(
        run.json["still_serving"] == true,
        "vaak stopped serving after bad clients"
    );
    Ok(())
}

#[test]
fn home_assistant_talks_to_vaak_over_wyoming() {
    let d = Daemon::start(
        "wyoming",
        "",
        "[pipeline]\nlanguages = [\"hi\", \"en\"]\n[llm]\nmax_tokens = 48\n\
         [wyoming]\nbind = \"127.0.0.1:0\"\n",
        &[],
    );
    let ready = d
        .lines()
        .into_iter()
        .find(|l| l.contains("vaak ready"))
        .unwrap_or_default();
    let addr = log_field(&ready, "wyoming").expect("the ready line names wyoming=ADDR");
    let port = addr.rsplit(':').next().unwrap_or_default().to_string();
    let dir = tempfile::tempdir().unwrap();
    let run = run_python(
        SCRIPT,
        &[
            "--port",
            &port,
            "--hi-clip",
            &first_clip("hi"),
            "--en-clip",
            &first_clip("en"),
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
        600,
    );
    eprintln!("[wyoming] client: {}", run.json);
    let results = vec![
        (
            "client ran",
            if run.ok() { Ok(()) } else { Err(run.show()) },
        ),
        ("described and transcribed", described_and_transcribed(&run)),
        ("spoken and answered", spoken(&run)),
        ("bad clients cost only themselves", bad_input(&run)),
        (
            "counted in /metrics",
            d.metrics_hold(&[
                "vaak_api_requests_total{endpoint=\"wyoming_transcribe\",status=\"200\"} 2",
                "vaak_api_requests_total{endpoint=\"wyoming_synthesize\",status=\"200\"} 2",
                "vaak_api_requests_total{endpoint=\"wyoming_synthesize\",status=\"400\"} 1",
                "vaak_api_requests_total{endpoint=\"wyoming_handle\",status=\"200\"} 1",
                "vaak_api_requests_total{endpoint=\"wyoming\",status=\"400\"} 1",
            ]),
        ),
    ];
    d.finish(results);
}
