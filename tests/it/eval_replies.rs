//! `vaak eval replies` on the real default models: typed questions through a session's reply
//! path, scored, and (`--speak`) said by the language's voice and heard back by the recogniser.
//! A bad questions file is a clear error.

use std::path::Path;
use std::process::Output;

use super::common::*;

/// `vaak eval replies --questions <questions> <extra…>`.
fn eval_replies(questions: &Path, extra: &[&str]) -> Output {
    let q = questions.to_str().expect("utf-8 path");
    let args: Vec<&str> = ["eval", "replies", "--questions", q]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    run(&args)
}

#[test]
fn english_questions_are_answered_scored_and_heard_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let questions = dir.path().join("questions.tsv");
    std::fs::write(
        &questions,
        "language\tquestion\texpect_any\n\
         en\tWhat do bees make?\thoney\n\
         en\tHow many days are there in a week?\tseven|7\n\
         hi\tभारत की राजधानी क्या है?\tदिल्ली|Delhi\n",
    )
    .expect("write questions");
    let out = eval_replies(&questions, &["--languages", "en", "--speak", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let replies = doc["replies"].as_array().expect("replies");
    assert_eq!(
        replies.len(),
        2,
        "--languages en keeps the English questions only"
    );
    for r in replies {
        let reply = r["reply"].as_str().expect("reply text");
        assert!(!reply.trim().is_empty(), "{r}");
        assert_eq!(r["in_script"], true, "{r}");
        assert_eq!(r["echo"], false, "{r}");
        assert!(r["first_token_ms"].as_f64().is_some_and(|t| t > 0.0), "{r}");
        assert!(r["roundtrip_cer"].as_f64().is_some(), "{r}");
        assert!(
            r["heard"].as_str().is_some_and(|h| !h.trim().is_empty()),
            "{r}"
        );
        assert!(
            r["voice"].as_str().is_some_and(|v| v.starts_with("kokoro")),
            "{r}"
        );
    }
    // Both questions are ones the default model answers (honey; seven days).
    let rows = doc["rows"].as_array().expect("rows");
    let en = rows.iter().find(|r| r["language"] == "en").expect("en row");
    assert_eq!(en["right"].as_f64(), Some(1.0), "{en}");
    // Kokoro's English, heard back by Whisper base: most characters survive (a short reply
    // like "Bees make honey." loses a third to one misheard word, so the bound is loose).
    let cer = en["roundtrip_cer"].as_f64().expect("round-trip CER");
    assert!(cer < 0.5, "round-trip CER {cer}");
    assert!(rows.iter().any(|r| r["language"] == "all"));
}

#[test]
fn a_broken_questions_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let questions = dir.path().join("q.tsv");
    std::fs::write(
        &questions,
        "language\tquestion\texpect_any\nen\tno answers given\n",
    )
    .expect("write");
    let out = eval_replies(&questions, &[]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("q.tsv") && e.contains("line 2"), "{e}");
    std::fs::write(
        &questions,
        "language\tquestion\texpect_any\nen\tHi?\thello\n",
    )
    .expect("write");
    let out = eval_replies(&questions, &["--llm", "/nonexistent/model.gguf"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no such GGUF file"),
        "{}",
        stderr(&out)
    );
}

/// What each default voice says is heard back as words of its language, in its script — not
/// merely as sound (a tone would pass a loudness check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_default_voice_is_heard_back_as_words_in_its_script() {
    use vaak::bench::replies::say_and_hear;
    use vaak::text::script::{Script, ScriptStats};
    let config = std::sync::Arc::new(vaak::config::Config::default());
    let (backends, tracker, shutdown) = load_backends(config).await;
    let backends = std::sync::Arc::new(backends);
    // (language, text, its script, the most CER that still means "heard"): Whisper base hears
    // English nearly perfectly and Hindi and Telugu poorly (README: eval asr).
    let cases = [
        (
            "en",
            "Hello! The weather is lovely today, isn't it?",
            Script::Latin,
            0.2,
        ),
        (
            "hi",
            "नमस्ते, आज मौसम बहुत अच्छा है। आप कैसे हैं?",
            Script::Devanagari,
            0.7,
        ),
        ("te", "నమస్కారం, ఈ రోజు వాతావరణం చాలా బాగుంది.", Script::Telugu, 0.95),
    ];
    for (lang, text, script, max_cer) in cases {
        let b = std::sync::Arc::clone(&backends);
        let (voice, heard) = tokio::task::spawn_blocking(move || say_and_hear(&b, lang, text))
            .await
            .expect("join")
            .expect("said and heard");
        let share = ScriptStats::of(&heard).share(script);
        let (_, _, edits, chars) = vaak::bench::eval::score(text, &heard);
        let cer = edits as f64 / chars as f64;
        eprintln!("{lang} {voice}: {heard:?} (script share {share:.2}, CER {cer:.2})");
        assert!(share >= 0.8, "{lang} by {voice} heard as {heard:?}");
        assert!(
            cer <= max_cer,
            "{lang} by {voice}: CER {cer:.2} ({heard:?})"
        );
    }
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
}
