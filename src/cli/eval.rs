//! `vaak eval asr` and `vaak eval replies`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{load_recognisers, parse_set, runtime, store_for, with_backends};
use vaak::config::Config;
use vaak::models;

/// `vaak eval replies` options besides the questions.
pub(crate) struct RepliesOptions {
    pub(crate) languages: Vec<String>,
    pub(crate) llm: Vec<String>,
    pub(crate) speak: bool,
    pub(crate) json: bool,
}

/// The LLMs `vaak eval replies` compares: (label, GGUF to run; `None`: as configured).
pub(crate) fn reply_candidates(
    config: &Config,
    llm: &[String],
) -> Result<Vec<(String, Option<PathBuf>)>> {
    let stem = |p: &Path| {
        p.file_stem().map_or_else(
            || p.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        )
    };
    if llm.is_empty() {
        let label = match config.llm.kind {
            vaak::config::LlmKind::Openai => config.llm.openai.model.clone(),
            vaak::config::LlmKind::Worker => match &config.llm.worker.model {
                Some(p) => stem(p),
                None => stem(
                    &models::resolve(&store_for(config), parse_set(&config.models.set)?)?.llm_gguf,
                ),
            },
        };
        return Ok(vec![(label, None)]);
    }
    anyhow::ensure!(
        config.llm.kind == vaak::config::LlmKind::Worker,
        "--llm compares embedded models: the config's [llm] kind must be worker"
    );
    llm.iter()
        .map(|c| {
            let path = if c.ends_with(".gguf") {
                let p = PathBuf::from(c);
                anyhow::ensure!(p.is_file(), "{c}: no such GGUF file");
                p
            } else {
                models::resolve(&store_for(config), parse_set(c)?)
                    .with_context(|| format!("model set {c}: run `vaak models fetch --set {c}`"))?
                    .llm_gguf
            };
            Ok((stem(&path), Some(path)))
        })
        .collect()
}

pub(crate) fn eval_replies_cmd(config: Config, questions: &Path, o: &RepliesOptions) -> Result<()> {
    use vaak::bench::replies;
    let mut qs = replies::read_questions(questions)?;
    if !o.languages.is_empty() {
        qs.retain(|q| o.languages.contains(&q.language));
    }
    anyhow::ensure!(!qs.is_empty(), "no questions to ask");
    let candidates = reply_candidates(&config, &o.llm)?;
    let rt = runtime()?;
    let mut results = Vec::new();
    for (label, model) in candidates {
        let mut config = config.clone();
        if model.is_some() {
            config.llm.worker.model = model;
        }
        let answered = rt.block_on(with_backends(config, |backends, _, _| async {
            let mut answered = replies::ask_all(&backends, &qs, &label).await;
            if o.speak {
                answered = tokio::task::spawn_blocking(move || {
                    replies::speak_back(&backends, &mut answered).map(|()| answered)
                })
                .await??;
            }
            Ok(answered)
        }))?;
        results.extend(answered);
    }
    let rows = replies::table(&results);
    if o.json {
        let doc = serde_json::json!({ "rows": rows, "replies": results });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", replies::render(&rows));
    }
    Ok(())
}

/// `vaak eval asr` options besides the manifests.
pub(crate) struct EvalOptions {
    pub(crate) clips: usize,
    pub(crate) channel: String,
    pub(crate) session: String,
    pub(crate) mode: String,
    pub(crate) json: bool,
}

pub(crate) fn eval_asr_cmd(config: &Config, manifests: &[PathBuf], o: &EvalOptions) -> Result<()> {
    use vaak::backend::asr::streaming::StreamConfig;
    use vaak::bench::eval;
    let channel = eval::Channel::parse(&o.channel)
        .ok_or_else(|| anyhow::anyhow!("--channel must be wideband or phone, not {}", o.channel))?;
    let session = eval::Session::parse(&o.session).ok_or_else(|| {
        anyhow::anyhow!(
            "--session must be none, per-language or interleaved, not {}",
            o.session
        )
    })?;
    let mut all = Vec::new();
    for m in manifests {
        let list = vaak::bench::read_manifest(m)?;
        let n = if o.clips == 0 { list.len() } else { o.clips };
        all.extend(list.into_iter().take(n));
    }
    anyhow::ensure!(!all.is_empty(), "the manifests list no clips");
    // Per-language models and a remote recogniser apply here too: a better model for a
    // language is measured with the same config that serves it.
    let rt = tokio::runtime::Runtime::new()?;
    let _rt = rt.enter();
    let asr = load_recognisers(config)?;
    let stream_cfg =
        StreamConfig::from_config(&config.asr, config.vad.speech_pad_ms, asr.streams());
    let mut modes = Vec::new();
    for m in o.mode.split(',') {
        modes.push(match m.trim() {
            "whole" => eval::Mode::Whole,
            "streaming" => eval::Mode::Streaming(stream_cfg.clone()),
            other => anyhow::bail!(
                "--mode must be whole, streaming or both (whole,streaming), not {other}"
            ),
        });
    }
    // Per-language groups the clips by their reference language, which the session's language
    // hysteresis then benefits from: it is always reported beside the two groupings that do not.
    let sessions = match session {
        eval::Session::PerLanguage => vec![
            eval::Session::PerLanguage,
            eval::Session::None,
            eval::Session::Interleaved,
        ],
        one => vec![one],
    };
    let mut tables = Vec::new();
    for &session in &sessions {
        for mode in &modes {
            let total = all.len();
            let mut done = 0;
            let results = eval::run(
                asr.as_ref(),
                &all,
                &config.pipeline.languages,
                channel,
                session,
                mode,
                config.asr.switch_confidence,
                |r| {
                    done += 1;
                    eprintln!(
                        "[{} {} {done}/{total}] {} {} → {}: {} word errors of {}",
                        session.name(),
                        mode.name(),
                        r.language,
                        r.path
                            .file_name()
                            .map(|f| f.to_string_lossy())
                            .unwrap_or_default(),
                        r.detected,
                        r.word_edits,
                        r.words
                    );
                },
            )?;
            tables.push((session, mode, eval::table(&results)));
        }
    }
    if o.json {
        let all: Vec<serde_json::Value> = tables
            .iter()
            .map(|(session, mode, rows)| eval::to_json(rows, channel, *session, mode))
            .collect();
        match all.as_slice() {
            [one] => println!("{one}"),
            many => println!("{}", serde_json::Value::Array(many.to_vec())),
        }
        return Ok(());
    }
    if session == eval::Session::PerLanguage {
        println!(
            "per-language: the clips of each reference language form one conversation, so its \
             LID is helped by that grouping; none (each clip alone) and interleaved (the \
             language switches every turn) follow for comparison"
        );
    }
    for (session, mode, rows) in &tables {
        print!("{}", eval::render(rows, channel, *session, mode));
    }
    let whole_and_streaming: Vec<_> = tables.iter().map(|(_, m, rows)| (m, rows)).collect();
    if let [(eval::Mode::Whole, whole), (eval::Mode::Streaming(_), streaming)] =
        whole_and_streaming.as_slice()
    {
        print!("{}", eval::render_comparison(whole, streaming));
    }
    Ok(())
}
