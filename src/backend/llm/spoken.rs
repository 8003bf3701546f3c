//! A chat model's reply made ready to be spoken: the token stream (under first-token and idle
//! deadlines) cut into clauses as it arrives, each cleaned for a voice and checked before anyone
//! hears it. A clause that reads the user's words (or the system prompt) back is not spoken; a later clause in the
//! wrong script ends the reply there. A reply that said nothing worth hearing (its first clause
//! in the wrong script, or only the user's words) is asked for once more with a reminder; a
//! second miss is replaced by a fixed sentence in the right language. A live session's LLM
//! stage and `vaak eval replies` both answer through [`speak`], so the eval measures what users
//! hear.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{with_deadlines, ChatRequest, Llm, LlmError, LlmEvent, Role, Usage};
use crate::text::clauses::{speakable, ClauseSplitter};
use crate::text::phrases::cannot_answer;
use crate::text::reply_guard::{
    clause_fits, echo, recital, script_reminder, ReadBack, ECHO_REMINDER,
};

/// Where the checked clauses of a reply go.
pub trait ClauseSink: Send {
    /// The model's first token of an attempt arrived.
    fn first_token(&mut self);
    /// One clause to speak. `false`: nobody listens any more; the reply stops.
    fn clause(&mut self, text: String) -> impl Future<Output = bool> + Send;
}

/// The turn a reply answers: what the user said, in which language and register, and the
/// deadlines of the stream.
#[derive(Debug, Clone)]
pub struct ReplySpec<'a> {
    /// The user's words (a clause that reads them back is not spoken).
    pub user_text: &'a str,
    pub language: &'a str,
    /// The user mixes the language with English: Latin words are expected.
    pub mixed: bool,
    pub first_token_timeout: Duration,
    pub idle_timeout: Duration,
}

/// What became of a reply.
#[derive(Debug, Default)]
pub struct Spoken {
    /// The clauses handed to the sink, joined by spaces.
    pub text: String,
    pub failure: Option<LlmError>,
    /// Of the attempt that was spoken.
    pub usage: Option<Usage>,
    /// Clauses withheld for their script, and for reading the user's words back (over both
    /// attempts).
    pub wrong_script: u32,
    pub echoed: u32,
    /// The model was asked again because its first attempt said nothing that could be spoken.
    pub regenerated: bool,
    /// The fixed sentence was spoken instead of the model's words.
    pub fallback: bool,
    /// The sink stopped listening (or `cancel` fired): nothing more should be sent.
    pub stopped: bool,
}

/// Why an attempt said nothing worth hearing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Miss {
    WrongScript,
    Echo,
}

enum Attempt {
    Finished,
    /// Nothing was spoken: the first clause was in the wrong script, or every clause read the
    /// user's words back.
    Missed(Miss),
}

/// Streams the model's reply to `req` into `sink`, clause by clause, with the checks described
/// in the module doc. Stops at once when `cancel` fires.
pub async fn speak(
    llm: &dyn Llm,
    req: ChatRequest,
    spec: &ReplySpec<'_>,
    cancel: &CancellationToken,
    sink: &mut impl ClauseSink,
) -> Spoken {
    let mut out = Spoken::default();
    let mut req = req;
    // The instructions the model was given: a clause reciting them is not an answer.
    let prompt = req
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for attempt in 0..2 {
        let checks = Checks {
            spec,
            prompt: &prompt,
        };
        match one_attempt(llm, req.clone(), &checks, cancel, sink, &mut out).await {
            Attempt::Finished => return out,
            Attempt::Missed(why) if attempt == 0 => {
                out.regenerated = true;
                remind(&mut req, spec, why);
            }
            Attempt::Missed(_) => {}
        }
    }
    out.fallback = true;
    let sentence = cannot_answer(spec.language).to_string();
    out.text = sentence.clone();
    out.stopped = !sink.clause(sentence).await;
    out
}

/// Adds a reminder to the user's last message (the cached prompt before it stays).
fn remind(req: &mut ChatRequest, spec: &ReplySpec<'_>, why: Miss) {
    let reminder = match why {
        Miss::WrongScript => script_reminder(spec.language, spec.mixed),
        Miss::Echo => ECHO_REMINDER.to_string(),
    };
    if let Some(last) = req.messages.iter_mut().rev().find(|m| m.role == Role::User) {
        last.content.push_str("\n\n");
        last.content.push_str(&reminder);
    }
}

/// What each clause is checked against.
struct Checks<'a> {
    spec: &'a ReplySpec<'a>,
    /// The system messages of the request.
    prompt: &'a str,
}

async fn one_attempt(
    llm: &dyn Llm,
    req: ChatRequest,
    checks: &Checks<'_>,
    cancel: &CancellationToken,
    sink: &mut impl ClauseSink,
    out: &mut Spoken,
) -> Attempt {
    let opened = tokio::select! {
        biased;
        _ = cancel.cancelled() => None,
        r = llm.stream_chat(req) => Some(r),
    };
    let stream = match opened {
        None => {
            out.stopped = true;
            return Attempt::Finished;
        }
        Some(Err(e)) => {
            out.failure = Some(e);
            return Attempt::Finished;
        }
        Some(Ok(s)) => s,
    };
    let spec = checks.spec;
    let mut stream = with_deadlines(stream, spec.first_token_timeout, spec.idle_timeout);
    let mut splitter = ClauseSplitter::new();
    let mut first = true;
    let echoed_before = out.echoed;
    // A clause cut short (no sentence end) that so far only repeats the user's words: judged
    // with what follows ("The national animal of" + "India is the tiger." is an answer).
    let mut held: Option<String> = None;
    loop {
        let ev = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                out.stopped = true;
                return Attempt::Finished;
            }
            ev = stream.next() => ev,
        };
        let clauses = match ev {
            Some(Ok(LlmEvent::Delta(d))) => {
                if first {
                    first = false;
                    sink.first_token();
                }
                splitter.push(&d)
            }
            Some(Ok(LlmEvent::Done(usage))) => {
                out.usage = usage;
                break;
            }
            Some(Err(e)) => {
                out.failure = Some(e);
                break;
            }
            None => break,
        };
        for c in clauses {
            match hand_out(&c, &mut held, checks, sink, out).await {
                Handed::Spoken | Handed::Skipped => {}
                Handed::WrongStart => return Attempt::Missed(Miss::WrongScript),
                Handed::Stop => return Attempt::Finished,
            }
        }
    }
    if let Some(rest) = splitter.finish() {
        if let Handed::WrongStart = hand_out(&rest, &mut held, checks, sink, out).await {
            return Attempt::Missed(Miss::WrongScript);
        }
    }
    if held.take().is_some() {
        out.echoed += 1; // the reply ended inside the user's words
    }
    // Only the user's words, read back: as good as no answer.
    if out.text.is_empty() && out.echoed > echoed_before && out.failure.is_none() {
        return Attempt::Missed(Miss::Echo);
    }
    Attempt::Finished
}

enum Handed {
    Spoken,
    /// Not spoken (the user's words read back); the reply goes on.
    Skipped,
    WrongStart,
    /// The reply ends here (wrong script after a spoken start, or the sink stopped).
    Stop,
}

async fn hand_out(
    clause: &str,
    held: &mut Option<String>,
    checks: &Checks<'_>,
    sink: &mut impl ClauseSink,
    out: &mut Spoken,
) -> Handed {
    let spec = checks.spec;
    let text = speakable(clause);
    if text.trim().is_empty() {
        return Handed::Skipped;
    }
    if !clause_fits(&text, spec.language, spec.mixed) {
        out.wrong_script += 1;
        return match out.text.is_empty() {
            true => Handed::WrongStart,
            false => Handed::Stop,
        };
    }
    let text = match held.take() {
        Some(h) => format!("{h} {}", text.trim()),
        None => text,
    };
    // The user's words first, then the instructions: either read back is not an answer.
    let found = match echo(&text, spec.user_text) {
        ReadBack::No => recital(&text, checks.prompt),
        found => found,
    };
    match found {
        ReadBack::No => {}
        ReadBack::Fragment => {
            *held = Some(text);
            return Handed::Skipped;
        }
        ReadBack::Whole => {
            out.echoed += 1;
            return Handed::Skipped;
        }
    }
    if !out.text.is_empty() {
        out.text.push(' ');
    }
    out.text.push_str(text.trim());
    if sink.clause(text).await {
        Handed::Spoken
    } else {
        out.stopped = true;
        Handed::Stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::llm::{ChatMessage, LlmStream};
    use futures::future::BoxFuture;
    use std::sync::Mutex;

    /// Answers each request with the next scripted reply, in two-character deltas.
    struct Scripted {
        replies: Mutex<Vec<&'static str>>,
        asked: Mutex<Vec<ChatRequest>>,
    }

    impl Scripted {
        fn new(replies: &[&'static str]) -> Self {
            Self {
                replies: Mutex::new(replies.iter().rev().copied().collect()),
                asked: Mutex::new(Vec::new()),
            }
        }
    }

    impl Llm for Scripted {
        fn stream_chat(&self, req: ChatRequest) -> BoxFuture<'_, Result<LlmStream, LlmError>> {
            self.asked.lock().unwrap().push(req);
            let reply = self.replies.lock().unwrap().pop().unwrap_or("");
            let chars: Vec<char> = reply.chars().collect();
            let mut events: Vec<Result<LlmEvent, LlmError>> = chars
                .chunks(2)
                .map(|c| Ok(LlmEvent::Delta(c.iter().collect())))
                .collect();
            events.push(Ok(LlmEvent::Done(None)));
            Box::pin(async move { Ok(futures::stream::iter(events).boxed()) })
        }
    }

    #[derive(Default)]
    struct Collect {
        clauses: Vec<String>,
        first_tokens: usize,
        accept: Option<usize>,
    }

    impl ClauseSink for Collect {
        fn first_token(&mut self) {
            self.first_tokens += 1;
        }
        async fn clause(&mut self, text: String) -> bool {
            self.clauses.push(text);
            self.accept.is_none_or(|n| self.clauses.len() < n)
        }
    }

    fn spec(language: &str) -> ReplySpec<'_> {
        ReplySpec {
            user_text: "भारत की राजधानी क्या है?",
            language,
            mixed: false,
            first_token_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
        }
    }

    fn req() -> ChatRequest {
        ChatRequest {
            messages: vec![ChatMessage::new(Role::User, "भारत की राजधानी क्या है?")],
            max_tokens: 64,
            temperature: 0.0,
            session_key: None,
        }
    }

    async fn run(llm: &Scripted, language: &str, sink: &mut Collect) -> Spoken {
        speak(llm, req(), &spec(language), &CancellationToken::new(), sink).await
    }

    #[tokio::test]
    async fn a_reply_in_the_right_script_is_spoken_clause_by_clause() {
        let llm = Scripted::new(&["राजधानी दिल्ली है। वह **बहुत** बड़ा शहर है।"]);
        let mut sink = Collect::default();
        let out = run(&llm, "hi", &mut sink).await;
        assert_eq!(sink.clauses, ["राजधानी दिल्ली है।", "वह बहुत बड़ा शहर है।"]);
        assert_eq!(out.text, "राजधानी दिल्ली है। वह बहुत बड़ा शहर है।");
        assert!(!out.regenerated && !out.fallback && out.wrong_script == 0);
        assert_eq!(sink.first_tokens, 1);
    }

    #[tokio::test]
    async fn a_wrong_script_start_is_asked_again_with_a_reminder() {
        let llm = Scripted::new(&["The capital of India is New Delhi.", "राजधानी दिल्ली है।"]);
        let mut sink = Collect::default();
        let out = run(&llm, "hi", &mut sink).await;
        assert_eq!(sink.clauses, ["राजधानी दिल्ली है।"]);
        assert!(out.regenerated && !out.fallback);
        assert_eq!(out.wrong_script, 1);
        let asked = llm.asked.lock().unwrap();
        let last = &asked[1].messages.last().unwrap().content;
        assert!(
            last.ends_with("(Reply in Hindi, written in Devanagari script.)"),
            "{last}"
        );
    }

    #[tokio::test]
    async fn two_wrong_starts_give_the_fixed_sentence() {
        let llm = Scripted::new(&["The capital is Delhi.", "北京是中国的首都，我很高兴。"]);
        let mut sink = Collect::default();
        let out = run(&llm, "te", &mut sink).await;
        assert_eq!(sink.clauses, [cannot_answer("te")]);
        assert!(out.regenerated && out.fallback);
        assert_eq!(out.wrong_script, 2);
    }

    #[tokio::test]
    async fn the_users_words_read_back_are_not_spoken() {
        let llm = Scripted::new(&[
            "भारत की राजधानी क्या है? राजधानी दिल्ली है।",
            "भारत की राजधानी क्या है?",
            "भारत की राजधानी क्या है?",
        ]);
        let mut sink = Collect::default();
        let out = run(&llm, "hi", &mut sink).await;
        assert_eq!(sink.clauses, ["राजधानी दिल्ली है।"]);
        assert_eq!((out.echoed, out.regenerated), (1, false));
        // Nothing but the question, twice: the fixed sentence, after one reminder.
        let mut sink = Collect::default();
        let out = run(&llm, "hi", &mut sink).await;
        assert_eq!(sink.clauses, [cannot_answer("hi")]);
        assert!(out.regenerated && out.fallback);
        assert_eq!(out.echoed, 2);
        let asked = llm.asked.lock().unwrap();
        let last = &asked[2].messages.last().unwrap().content;
        assert!(last.ends_with(ECHO_REMINDER), "{last}");
    }

    #[tokio::test]
    async fn an_answer_that_starts_with_the_questions_words_is_spoken_whole() {
        let llm = Scripted::new(&["The national animal of India is the Bengal tiger."]);
        let spec = ReplySpec {
            user_text: "What is the national animal of India?",
            ..spec("en")
        };
        let mut sink = Collect::default();
        let out = speak(&llm, req(), &spec, &CancellationToken::new(), &mut sink).await;
        // The splitter cuts the first clause short, inside the question's words; held and
        // judged with what follows, it is part of the answer.
        assert_eq!(
            sink.clauses.join(" "),
            "The national animal of India is the Bengal tiger."
        );
        assert_eq!((out.echoed, out.regenerated), (0, false));
        // The same in Hindi, whose first clause is cut after a word or two ("भारत की").
        let llm = Scripted::new(&["भारत की राजधानी नई दिल्ली है। वह बड़ा शहर है।"]);
        let mut sink = Collect::default();
        let out = run(&llm, "hi", &mut sink).await;
        assert_eq!(
            sink.clauses,
            ["भारत की राजधानी नई दिल्ली है।", "वह बड़ा शहर है।"]
        );
        assert_eq!((out.echoed, out.regenerated), (0, false));
    }

    #[tokio::test]
    async fn the_system_prompt_recited_is_not_spoken() {
        let llm = Scripted::new(&["No lists, no markdown, no emoji. Delhi is the capital."]);
        let mut req = req();
        req.messages.insert(
            0,
            ChatMessage::new(
                Role::System,
                "You are vaak, a voice assistant. Answer in one or two short sentences. \
                 No lists, no markdown, no emoji.",
            ),
        );
        let mut sink = Collect::default();
        let out = speak(&llm, req, &spec("en"), &CancellationToken::new(), &mut sink).await;
        assert_eq!(sink.clauses, ["Delhi is the capital."]);
        assert_eq!((out.echoed, out.regenerated), (1, false));
    }

    #[tokio::test]
    async fn a_later_clause_in_the_wrong_script_ends_the_reply() {
        let llm = Scripted::new(&["భారతదేశ రాజధాని ఢిల్లీ. 北京是中国的首都，我很高兴。 ఇంకా ఏమైనా?"]);
        let mut sink = Collect::default();
        let out = run(&llm, "te", &mut sink).await;
        // The first clause is cut short in Indic scripts (text::clauses), so the sentence comes
        // as two clauses.
        assert_eq!(sink.clauses, ["భారతదేశ", "రాజధాని ఢిల్లీ."]);
        assert!(!out.regenerated && !out.fallback);
        assert_eq!(out.wrong_script, 1);
    }

    #[tokio::test]
    async fn a_sink_that_stops_ends_the_reply() {
        let llm = Scripted::new(&["One. Two. Three."]);
        let mut sink = Collect {
            accept: Some(1),
            ..Default::default()
        };
        let out = run(&llm, "en", &mut sink).await;
        assert_eq!(sink.clauses, ["One."]);
        assert!(out.stopped);
    }

    #[tokio::test]
    async fn cancelled_before_the_model_answers_speaks_nothing() {
        let llm = Scripted::new(&["One. Two."]);
        let mut sink = Collect::default();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let out = speak(&llm, req(), &spec("en"), &cancel, &mut sink).await;
        assert!(sink.clauses.is_empty() && out.stopped);
    }
}
