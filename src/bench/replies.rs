//! `vaak eval replies`: whether the configured model and prompt answer sensibly in each
//! language. Typed questions (`../shared/eval/replies/questions.tsv`) go through the path a
//! live session's reply takes — the session's prompt (system prompt, language cue), the clause
//! splitter and the script guard of [`crate::backend::llm::spoken`] — and each reply is scored:
//! right (contains an expected answer), in the language's script, an echo of the question. With
//! `--speak` each reply is also synthesised by the language's voice and transcribed back by the
//! embedded recogniser (round-trip intelligibility: CER against the reply).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::eval::score;
use super::BenchError;
use crate::backend::asr::LanguageHint;
use crate::backend::llm::spoken::{speak, ClauseSink, ReplySpec};
use crate::backend::llm::ChatRequest;
use crate::backend::Backends;
use crate::conversation::Conversation;
use crate::metrics::summarize;
use crate::text::normalize::normalize_for_scoring;
use crate::text::reply_guard::clause_fits;

/// One typed question and the answers that count as right.
#[derive(Debug, Clone)]
pub struct Question {
    pub language: String,
    pub question: String,
    pub expect_any: Vec<String>,
}

/// Reads `language<TAB>question<TAB>answer|answer…` lines (the first line is the header).
pub fn read_questions(path: &Path) -> Result<Vec<Question>, BenchError> {
    let err = |detail: String| BenchError::Manifest {
        path: path.to_path_buf(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [language, question, expect] = cols[..] else {
            return Err(err(format!(
                "line {}: expected 3 tab-separated columns, found {}",
                i + 1,
                cols.len()
            )));
        };
        let expect_any: Vec<String> = expect
            .split('|')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if expect_any.is_empty() || question.trim().is_empty() {
            return Err(err(format!(
                "line {}: a question needs text and at least one expected answer",
                i + 1
            )));
        }
        out.push(Question {
            language: language.trim().to_string(),
            question: question.trim().to_string(),
            expect_any,
        });
    }
    Ok(out)
}

/// The reply contains one of the expected answers (after NFC, case folding and punctuation).
pub fn is_right(reply: &str, expect_any: &[String]) -> bool {
    let r = normalize_for_scoring(reply);
    expect_any.iter().any(|e| {
        let e = normalize_for_scoring(e);
        !e.is_empty() && r.contains(&e)
    })
}

/// The reply reads the question back (its normalised words appear in the reply in order).
pub fn echoes(question: &str, reply: &str) -> bool {
    let q = normalize_for_scoring(question);
    q.split(' ').count() >= 2 && normalize_for_scoring(reply).contains(&q)
}

/// One question's reply and its scores.
#[derive(Debug, Clone, Serialize)]
pub struct ReplyResult {
    pub model: String,
    pub language: String,
    pub question: String,
    pub reply: String,
    pub right: bool,
    pub in_script: bool,
    pub echo: bool,
    pub chars: usize,
    pub first_token_ms: Option<f64>,
    pub total_ms: f64,
    /// Generated tokens per second after the first (when the server reports usage).
    pub decode_tps: Option<f64>,
    /// Clauses withheld before they were spoken (wrong script, the question read back).
    pub withheld: u32,
    pub regenerated: bool,
    pub fallback: bool,
    pub failure: Option<String>,
    /// `--speak`: the voice, what the recogniser heard of its audio, and the CER of that
    /// against the reply.
    pub voice: Option<String>,
    pub heard: Option<String>,
    pub roundtrip_cer: Option<f64>,
}

/// Collects a reply's clauses and when its first token came.
struct Timed {
    started: Instant,
    first_token: Option<Duration>,
}

impl ClauseSink for Timed {
    fn first_token(&mut self) {
        self.first_token
            .get_or_insert_with(|| self.started.elapsed());
    }
    async fn clause(&mut self, _text: String) -> bool {
        true
    }
}

/// Asks every question as the first turn of a fresh conversation (one session key, so the
/// system prompt stays cached as in a live session), in order. `label` names the model.
pub async fn ask_all(backends: &Backends, questions: &[Question], label: &str) -> Vec<ReplyResult> {
    let cfg = &backends.config.llm;
    let mut out = Vec::with_capacity(questions.len());
    for q in questions {
        let conversation = Conversation::new(cfg.system_prompt.clone(), cfg.history_turns);
        let req = ChatRequest {
            messages: conversation.messages_for(&q.question, &q.language, false),
            max_tokens: cfg.max_tokens,
            temperature: cfg.temperature,
            session_key: Some("eval-replies".to_string()),
        };
        let spec = ReplySpec {
            user_text: &q.question,
            language: &q.language,
            mixed: false,
            first_token_timeout: Duration::from_millis(cfg.first_token_timeout_ms),
            idle_timeout: Duration::from_millis(cfg.idle_timeout_ms),
        };
        let mut sink = Timed {
            started: Instant::now(),
            first_token: None,
        };
        let spoken = speak(
            backends.llm.as_ref(),
            req,
            &spec,
            &CancellationToken::new(),
            &mut sink,
        )
        .await;
        let total = sink.started.elapsed();
        let decode_tps = sink
            .first_token
            .and_then(|first| super::decode_rate(spoken.usage.as_ref(), first, total));
        let reply = spoken.text;
        out.push(ReplyResult {
            model: label.to_string(),
            language: q.language.clone(),
            question: q.question.clone(),
            right: is_right(&reply, &q.expect_any),
            in_script: !reply.trim().is_empty() && clause_fits(&reply, &q.language, false),
            echo: echoes(&q.question, &reply),
            chars: reply.chars().count(),
            first_token_ms: sink.first_token.map(|d| d.as_secs_f64() * 1000.0),
            total_ms: total.as_secs_f64() * 1000.0,
            decode_tps,
            withheld: spoken.wrong_script + spoken.echoed,
            regenerated: spoken.regenerated,
            fallback: spoken.fallback,
            failure: spoken.failure.map(|e| e.to_string()),
            reply,
            voice: None,
            heard: None,
            roundtrip_cer: None,
        });
    }
    out
}

/// Silence before and after a reply's audio when it is transcribed back.
const LEAD_MS: u32 = 300;
const TAIL_MS: u32 = 600;

/// Says each reply with its language's voice and transcribes the audio back (language fixed):
/// fills `voice`, `heard` and `roundtrip_cer`. Blocking; call it off the async runtime.
pub fn speak_back(backends: &Backends, results: &mut [ReplyResult]) -> Result<(), BenchError> {
    for r in results.iter_mut().filter(|r| !r.reply.trim().is_empty()) {
        let (voice, heard) = say_and_hear(backends, &r.language, &r.reply)?;
        let (_, _, edits, chars) = score(&r.reply, &heard);
        r.voice = Some(voice);
        r.roundtrip_cer = (chars > 0).then(|| edits as f64 / chars as f64);
        r.heard = Some(heard);
    }
    Ok(())
}

/// `text` said by `language`'s voice and heard by the recogniser (language fixed): the voice's
/// name and what was heard. Blocking.
pub fn say_and_hear(
    backends: &Backends,
    language: &str,
    text: &str,
) -> Result<(String, String), BenchError> {
    let stage = |e: &dyn std::fmt::Display| BenchError::Stage(e.to_string());
    let voice = backends.tts.for_language(language).map_err(|e| stage(&e))?;
    let audio = voice.synthesize(text, 1.0).map_err(|e| stage(&e))?;
    let pcm = crate::audio::resample::resample_all(
        &audio,
        voice.sample_rate(),
        crate::audio::PIPELINE_RATE,
    )
    .map_err(|e| stage(&e))?;
    // Heard as a turn is: with the pauses around it that the VAD keeps (audio that stops dead
    // makes Whisper repeat the sentence).
    let pad = |ms: u32| vec![0.0f32; (crate::audio::PIPELINE_RATE / 1000 * ms) as usize];
    let pcm: Vec<f32> = [pad(LEAD_MS), pcm, pad(TAIL_MS)].concat();
    let heard = backends
        .asr
        .transcribe(
            &pcm,
            &LanguageHint::Fixed(language.to_string()),
            &CancellationToken::new(),
        )
        .map_err(|e| stage(&e))?;
    Ok((voice.name().to_string(), heard.text))
}

/// Per model and language: shares and medians over its questions.
#[derive(Debug, Clone, Serialize)]
pub struct LangRow {
    pub model: String,
    pub language: String,
    pub questions: usize,
    pub right: f64,
    pub in_script: f64,
    pub echo: f64,
    pub withheld: u32,
    pub regenerated: usize,
    pub fallback: usize,
    pub failed: usize,
    pub median_chars: f64,
    pub first_token_p50_ms: Option<f64>,
    pub total_p50_ms: f64,
    pub decode_tps_p50: Option<f64>,
    pub voice: Option<String>,
    pub roundtrip_cer: Option<f64>,
}

fn median(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| summarize(values, values.len() as u64).p50_ms)
}

/// Rows per (model, language), in the order they first appear, then one "all" row per model.
pub fn table(results: &[ReplyResult]) -> Vec<LangRow> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in results {
        let k = (r.model.clone(), r.language.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut models: Vec<String> = keys.iter().map(|(m, _)| m.clone()).collect();
    models.dedup();
    for m in models {
        keys.push((m, "all".to_string()));
    }
    keys.into_iter()
        .map(|(model, language)| {
            let rs: Vec<&ReplyResult> = results
                .iter()
                .filter(|r| r.model == model && (language == "all" || r.language == language))
                .collect();
            let n = rs.len().max(1) as f64;
            let share = |f: fn(&ReplyResult) -> bool| rs.iter().filter(|r| f(r)).count() as f64 / n;
            let collect = |f: fn(&ReplyResult) -> Option<f64>| -> Vec<f64> {
                rs.iter().filter_map(|r| f(r)).collect()
            };
            // Over all the row's replies: character edits ÷ reply characters.
            let (edits, chars) = rs
                .iter()
                .filter_map(|r| Some(score(&r.reply, r.heard.as_deref()?)))
                .fold((0, 0), |(e, c), (_, _, de, dc)| (e + de, c + dc));
            let voices: Vec<&str> = rs.iter().filter_map(|r| r.voice.as_deref()).collect();
            LangRow {
                questions: rs.len(),
                right: share(|r| r.right),
                in_script: share(|r| r.in_script),
                echo: share(|r| r.echo),
                withheld: rs.iter().map(|r| r.withheld).sum(),
                regenerated: rs.iter().filter(|r| r.regenerated).count(),
                fallback: rs.iter().filter(|r| r.fallback).count(),
                failed: rs.iter().filter(|r| r.failure.is_some()).count(),
                median_chars: median(&collect(|r| Some(r.chars as f64))).unwrap_or(0.0),
                first_token_p50_ms: median(&collect(|r| r.first_token_ms)),
                total_p50_ms: median(&collect(|r| Some(r.total_ms))).unwrap_or(0.0),
                decode_tps_p50: median(&collect(|r| r.decode_tps)),
                voice: match voices.first() {
                    Some(v) if voices.iter().all(|x| x == v) => Some(v.to_string()),
                    Some(_) => Some("mixed".to_string()),
                    None => None,
                },
                roundtrip_cer: (chars > 0).then(|| edits as f64 / chars as f64),
                model,
                language,
            }
        })
        .collect()
}

/// The table as text: one line per (model, language).
pub fn render(rows: &[LangRow]) -> String {
    let opt = |v: Option<f64>, prec: usize| match v {
        Some(v) => format!("{v:.prec$}"),
        None => "-".to_string(),
    };
    let speak = rows.iter().any(|r| r.roundtrip_cer.is_some());
    let mut s = format!(
        "{:<22} {:<4} {:>3} {:>6} {:>7} {:>5} {:>5} {:>5} {:>6} {:>8} {:>8} {:>6}",
        "model",
        "lang",
        "n",
        "right",
        "script",
        "echo",
        "regen",
        "fallb",
        "chars",
        "first_ms",
        "total_ms",
        "tok/s"
    );
    if speak {
        s.push_str(&format!(" {:<22} {:>6}", "voice", "rt_cer"));
    }
    s.push('\n');
    for r in rows {
        s.push_str(&format!(
            "{:<22} {:<4} {:>3} {:>5.0}% {:>6.0}% {:>4.0}% {:>5} {:>5} {:>5} {:>6.0} {:>8} {:>8.0} {:>6}",
            r.model,
            r.language,
            r.questions,
            r.right * 100.0,
            r.in_script * 100.0,
            r.echo * 100.0,
            r.withheld,
            r.regenerated,
            r.fallback,
            r.median_chars,
            opt(r.first_token_p50_ms, 0),
            r.total_p50_ms,
            opt(r.decode_tps_p50, 1),
        ));
        if speak {
            s.push_str(&format!(
                " {:<22} {:>6}",
                r.voice.as_deref().unwrap_or("-"),
                opt(r.roundtrip_cer.map(|c| c * 100.0), 1)
            ));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn right_answers_match_after_normalisation() {
        let hi = ["दिल्ली".to_string(), "Delhi".to_string()];
        assert!(is_right("भारत की राजधानी नई दिल्ली है।", &hi));
        assert!(is_right("It is NEW DELHI.", &hi));
        assert!(!is_right("भारत की राजधानी मुंबई है।", &hi));
        assert!(is_right("There are 7 days.", &["seven".into(), "7".into()]));
    }

    #[test]
    fn echoes_are_the_question_read_back() {
        assert!(echoes(
            "भारत की राजधानी क्या है?",
            "भारत की राजधानी क्या है? भारत की राजधानी दिल्ली है।"
        ));
        assert!(!echoes(
            "भारत की राजधानी क्या है?",
            "भारत की राजधानी दिल्ली है।"
        ));
        assert!(!echoes("Hi?", "Hi! How can I help?"), "one word is no echo");
    }

    #[test]
    fn questions_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.tsv");
        std::fs::write(
            &p,
            "language\tquestion\texpect_any\nen\tWhat do bees make?\thoney\n\n",
        )
        .unwrap();
        let q = read_questions(&p).unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].expect_any, ["honey"]);
        std::fs::write(&p, "language\tquestion\texpect_any\nen\tno answer\n").unwrap();
        let e = read_questions(&p).unwrap_err().to_string();
        assert!(e.contains("q.tsv") && e.contains("line 2"), "{e}");
        assert!(read_questions(&dir.path().join("missing.tsv")).is_err());
    }

    fn result(language: &str, right: bool, first: Option<f64>) -> ReplyResult {
        ReplyResult {
            model: "m".into(),
            language: language.into(),
            question: "q".into(),
            reply: "r".into(),
            right,
            in_script: true,
            echo: false,
            chars: 10,
            first_token_ms: first,
            total_ms: 100.0,
            decode_tps: None,
            withheld: 0,
            regenerated: false,
            fallback: false,
            failure: None,
            voice: None,
            heard: None,
            roundtrip_cer: None,
        }
    }

    #[test]
    fn table_has_a_row_per_language_and_one_for_all() {
        let rows = table(&[
            result("hi", true, Some(100.0)),
            result("hi", false, Some(300.0)),
            result("en", true, None),
        ]);
        let names: Vec<&str> = rows.iter().map(|r| r.language.as_str()).collect();
        assert_eq!(names, ["hi", "en", "all"]);
        assert_eq!(rows[0].right, 0.5);
        assert_eq!(rows[1].first_token_p50_ms, None);
        assert!((rows[2].right - 2.0 / 3.0).abs() < 1e-9);
        assert!(render(&rows).lines().count() == 4);
    }

    proptest! {
        #[test]
        fn a_reply_quoting_the_answer_is_right(pre in "\\PC{0,20}", post in "\\PC{0,20}") {
            let reply = format!("{pre} honey {post}");
            prop_assert!(is_right(&reply, &["Honey".to_string()]));
        }
    }
}
