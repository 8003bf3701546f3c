//! Conversation memory of one session: the turns so far, trimmed to a budget, turned into the
//! chat messages the LLM sees. A reply cut short by barge-in is kept only as far as it was
//! played, and marked as interrupted. Below both the pipeline (which answers from it) and
//! `session` (whose stores keep it across reconnects).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::backend::llm::{ChatMessage, Role};
use crate::text::script::language_name;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub user: String,
    pub assistant: String,
    pub language: String,
    pub interrupted: bool,
    /// The user mixed the language with English (Hinglish): decided when the turn was heard,
    /// from the words and the recogniser's language candidates, so the prompt of every later
    /// turn shows this turn with the same greeting its own prompt had.
    #[serde(default)]
    pub mixed: bool,
}

impl Exchange {
    /// The assistant message as the LLM sees it: an interrupted reply says so.
    fn assistant_content(&self) -> Cow<'_, str> {
        if self.interrupted {
            Cow::Owned(format!("{} …(interrupted by the user)", self.assistant))
        } else {
            Cow::Borrowed(&self.assistant)
        }
    }

    /// Estimated prompt tokens of this exchange: both messages plus their chat-template markers.
    fn estimated_tokens(&self) -> usize {
        2 * MESSAGE_OVERHEAD_TOKENS
            + estimate_tokens(&self.user)
            + estimate_tokens(&self.assistant_content())
    }
}

/// Tokens a chat template adds around each message (`<|im_start|>user\n … <|im_end|>\n` in
/// Qwen, the header/eot tokens in Llama 3).
const MESSAGE_OVERHEAD_TOKENS: usize = 4;

/// A cheap estimate of how many tokens `text` costs a Qwen 2.5 / Llama 3 byte-level BPE
/// tokenizer, erring high so a history trimmed to a budget fits the context.
///
/// Counted per `char`, in quarter tokens:
/// - ASCII: 1/4 token (≈ 4 characters per token, the usual figure for English, digits and code);
/// - Devanagari, Arabic (Urdu), and non-ASCII Latin, Greek and Cyrillic: 1/2 token. These are
///   common enough on the web that both vocabularies hold many merges for them; measured Hindi
///   fertility is ≈ 0.4–0.7 tokens per character, so 1/2 is near the top of that;
/// - everything else (Bengali, Gurmukhi, Gujarati, Odia, Tamil, Telugu, Kannada, Malayalam, CJK,
///   emoji …): 1 token. These scripts have few merges and often split into the 3 UTF-8 bytes of
///   a character, so one token per character is a floor rather than an overestimate for some
///   text, but it is right for common syllables and keeps the estimate simple.
///
/// The sum is rounded up; the empty string costs 0. Exact counts would need the model's
/// tokenizer, which lives in the worker process.
pub fn estimate_tokens(text: &str) -> usize {
    let quarters: usize = text.chars().map(quarter_tokens).sum();
    quarters.div_ceil(4)
}

/// Quarter tokens one character costs; see [`estimate_tokens`].
fn quarter_tokens(c: char) -> usize {
    match c as u32 {
        0..=0x7F => 1,
        // Latin-1 supplement to Cyrillic supplement (accented Latin, IPA, Greek, Cyrillic),
        // Arabic, and Devanagari.
        0x80..=0x052F | 0x0600..=0x06FF | 0x0900..=0x097F => 2,
        _ => 4,
    }
}

#[derive(Debug, Clone)]
pub struct Conversation {
    system_prompt: String,
    exchanges: Vec<Exchange>,
    max_turns: usize,
    /// Estimated tokens the kept exchanges may cost; `None` is unlimited.
    token_budget: Option<usize>,
}

impl Conversation {
    pub fn new(system_prompt: impl Into<String>, max_turns: usize) -> Self {
        Self {
            system_prompt: system_prompt.into(),
            exchanges: Vec::new(),
            max_turns,
            token_budget: None,
        }
    }

    /// Also keep the history within about `tokens` estimated tokens (see [`estimate_tokens`]),
    /// dropping the oldest exchanges first. The newest exchange is always kept, however long.
    pub fn with_token_budget(mut self, tokens: usize) -> Self {
        self.token_budget = Some(tokens);
        self.trim();
        self
    }

    /// Adds a finished exchange. Past a limit the history is cut to half the turns (or two
    /// thirds of the token budget), not by one: cutting the oldest exchange changes the start
    /// of the prompt, so the LLM re-reads the whole history on the next turn (seconds on two
    /// cores); cut by one, every turn after the limit would pay that, cut deeper, one in
    /// several does.
    pub fn record(&mut self, exchange: Exchange) {
        self.exchanges.push(exchange);
        let over_turns = self.exchanges.len() > self.max_turns;
        let over_tokens = self
            .token_budget
            .is_some_and(|b| self.estimated_tokens() > b);
        if over_turns || over_tokens {
            self.trim_to(
                self.max_turns.div_ceil(2),
                self.token_budget.map(|b| b * 2 / 3),
            );
        }
    }

    /// Replaces the history (e.g. with one loaded from the session store), then applies the
    /// turn and token limits.
    pub fn restore(&mut self, exchanges: Vec<Exchange>) {
        self.exchanges = exchanges;
        self.trim();
    }

    /// Forgets the whole history.
    pub fn clear(&mut self) {
        self.exchanges.clear();
    }

    pub fn exchanges(&self) -> &[Exchange] {
        &self.exchanges
    }

    /// Drops the oldest exchanges beyond `max_turns` and the token budget.
    fn trim(&mut self) {
        self.trim_to(self.max_turns, self.token_budget);
    }

    fn estimated_tokens(&self) -> usize {
        self.exchanges.iter().map(Exchange::estimated_tokens).sum()
    }

    /// Drops the oldest exchanges beyond `turns`, then while the rest exceed `tokens`
    /// (keeping at least the newest one).
    fn trim_to(&mut self, turns: usize, tokens: Option<usize>) {
        let excess = self.exchanges.len().saturating_sub(turns);
        self.exchanges.drain(..excess);
        let Some(budget) = tokens else {
            return;
        };
        let mut total = self.estimated_tokens();
        let mut drop = 0;
        while total > budget && drop + 1 < self.exchanges.len() {
            total -= self.exchanges[drop].estimated_tokens();
            drop += 1;
        }
        self.exchanges.drain(..drop);
    }

    /// Messages for a new user turn in `language`.
    ///
    /// The prompt is built so that the worker's KV cache keeps every earlier token whatever
    /// language the user speaks: the system prompt is the same for all languages (unless a
    /// custom prompt asks for `{language}`), and where the user's language changes — at the
    /// first kept turn and at every switch, in the history as in the new turn — a short greeting
    /// exchange in that language is placed right before the user's message. Small models follow
    /// such an example far more reliably than an instruction (and do not read it back), and
    /// because each cue is derived from the stored exchange itself, turn N+1's prompt starts with
    /// all of turn N's: a switch costs only its new tokens.
    /// `mixed`: the user mixes the language with English (Hinglish), and so should the reply.
    pub fn messages_for(&self, user_text: &str, language: &str, mixed: bool) -> Vec<ChatMessage> {
        let system = if self.system_prompt.contains("{language}") {
            let register = if mixed && language != "en" {
                mixed_register(language)
            } else {
                language_name(language).to_string()
            };
            self.system_prompt.replace("{language}", &register)
        } else {
            self.system_prompt.clone()
        };
        let mut msgs = vec![ChatMessage::new(Role::System, system)];
        let mut cue_in_force = None;
        let mut push_user = |msgs: &mut Vec<ChatMessage>, text: &str, cue: Option<Cue>| {
            let opens_with_english = cue_in_force.is_none() && cue == Some(ENGLISH_CUE);
            if cue.is_some() && cue != cue_in_force && !opens_with_english {
                if let Some((user, assistant)) = cue {
                    msgs.push(ChatMessage::new(Role::User, user));
                    msgs.push(ChatMessage::new(Role::Assistant, assistant));
                }
                cue_in_force = cue;
            }
            msgs.push(ChatMessage::new(Role::User, text.to_string()));
        };
        for ex in &self.exchanges {
            push_user(&mut msgs, &ex.user, language_cue(&ex.language, ex.mixed));
            msgs.push(ChatMessage::new(
                Role::Assistant,
                ex.assistant_content().into_owned(),
            ));
        }
        push_user(&mut msgs, user_text, language_cue(language, mixed));
        msgs
    }
}

/// A greeting exchange (user, assistant) that shows the model the register to answer in.
type Cue = (&'static str, &'static str);

/// English needs no greeting to be answered in English (and a greeting before a request primes
/// the small model to answer it in a few words): this one is used only to switch back to
/// English after a stretch in another language.
const ENGLISH_CUE: Cue = (
    "Hi, who are you?",
    "Hi! I am vaak, your voice assistant. How can I help you?",
);

/// The greeting that opens a stretch of turns in `language` (mixed with English or not).
fn language_cue(language: &str, mixed: bool) -> Option<Cue> {
    match mixed {
        true => mixed_example_exchange(language).or_else(|| example_exchange(language)),
        false => example_exchange(language),
    }
}

/// How the system prompt names a language mixed with English, so that the reply keeps the
/// user's register and each word's script (each script is then spoken by its own voice).
pub fn mixed_register(lang: &str) -> String {
    let name = language_name(lang);
    let script = match crate::text::script::Script::of_language(lang) {
        Some(crate::text::script::Script::Devanagari) => "Devanagari",
        Some(crate::text::script::Script::Arabic) => "Urdu",
        _ => name,
    };
    let prefix = if lang == "hi" { "Hinglish: " } else { "" };
    format!(
        "{prefix}{name} mixed with English words, as the user speaks; write {name} words in \
         {script} script and English words in English letters"
    )
}

/// A greeting in Hinglish: Hindi in Devanagari with English words in Latin letters.
pub fn mixed_example_exchange(lang: &str) -> Option<(&'static str, &'static str)> {
    (lang == "hi").then_some((
        "Hi, aap kaun ho?",
        "Hi! मैं vaak हूँ, आपकी voice assistant. बताइए, मैं आपकी क्या help करूँ?",
    ))
}

/// A greeting exchange in the language itself, placed where a stretch of turns in that language
/// begins: small models answer in the language of the examples far more reliably than they
/// follow an instruction (and, unlike an instruction in the system prompt, they do not read it
/// back to the user).
pub fn example_exchange(lang: &str) -> Option<(&'static str, &'static str)> {
    Some(match lang {
        "en" => ENGLISH_CUE,
        "hi" => (
            "नमस्ते, आप कौन हैं?",
            "नमस्ते! मैं वाक, आपकी आवाज़ सहायक हूँ। बताइए, मैं आपकी क्या मदद करूँ?",
        ),
        "mr" => (
            "नमस्कार, तुम्ही कोण आहात?",
            "नमस्कार! मी वाक, तुमचा आवाज सहाय्यक. मी तुम्हाला कशी मदत करू?",
        ),
        "bn" => (
            "নমস্কার, আপনি কে?",
            "নমস্কার! আমি বাক, আপনার ভয়েস সহকারী। বলুন, কীভাবে সাহায্য করতে পারি?",
        ),
        "ta" => (
            "வணக்கம், நீங்கள் யார்?",
            "வணக்கம்! நான் வாக், உங்கள் குரல் உதவியாளர். நான் எப்படி உதவலாம்?",
        ),
        "te" => (
            "నమస్కారం, మీరు ఎవరు?",
            "నమస్కారం! నేను వాక్, మీ వాయిస్ అసిస్టెంట్. నేను మీకు ఎలా సహాయం చేయగలను?",
        ),
        "kn" => (
            "ನಮಸ್ಕಾರ, ನೀವು ಯಾರು?",
            "ನಮಸ್ಕಾರ! ನಾನು ವಾಕ್, ನಿಮ್ಮ ಧ್ವನಿ ಸಹಾಯಕ. ನಾನು ಹೇಗೆ ಸಹಾಯ ಮಾಡಲಿ?",
        ),
        "ml" => (
            "നമസ്കാരം, നിങ്ങൾ ആരാണ്?",
            "നമസ്കാരം! ഞാൻ വാക്, നിങ്ങളുടെ വോയ്സ് അസിസ്റ്റന്റ്. ഞാൻ എങ്ങനെ സഹായിക്കും?",
        ),
        "gu" => (
            "નમસ્તે, તમે કોણ છો?",
            "નમસ્તે! હું વાક, તમારો અવાજ સહાયક છું. હું તમને કેવી રીતે મદદ કરું?",
        ),
        "pa" => (
            "ਸਤ ਸ੍ਰੀ ਅਕਾਲ, ਤੁਸੀਂ ਕੌਣ ਹੋ?",
            "ਸਤ ਸ੍ਰੀ ਅਕਾਲ! ਮੈਂ ਵਾਕ ਹਾਂ, ਤੁਹਾਡਾ ਆਵਾਜ਼ ਸਹਾਇਕ। ਮੈਂ ਕਿਵੇਂ ਮਦਦ ਕਰਾਂ?",
        ),
        "ur" => (
            "السلام علیکم، آپ کون ہیں؟",
            "وعلیکم السلام! میں واک ہوں، آپ کا آواز معاون۔ میں آپ کی کیا مدد کروں؟",
        ),
        "or" => (
            "ନମସ୍କାର, ଆପଣ କିଏ?",
            "ନମସ୍କାର! ମୁଁ ବାକ୍, ଆପଣଙ୍କ ଭଏସ୍ ସହାୟକ। ମୁଁ କିପରି ସାହାଯ୍ୟ କରିବି?",
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_trimmed_and_prompt_is_localised() {
        let mut c = Conversation::new("Answer in {language}.", 2);
        for i in 0..3 {
            c.record(Exchange {
                user: format!("q{i}"),
                assistant: format!("a{i}"),
                language: "hi".into(),
                interrupted: i == 2,
                mixed: false,
            });
        }
        let m = c.messages_for("q3", "hi", false);
        assert_eq!(m[0].content, "Answer in Hindi.");
        // System, the Hindi example exchange, the one turn kept (past the limit of two the
        // history is cut to half), the new question.
        assert_eq!(m.len(), 1 + 2 + 2 + 1);
        assert!(m[1].content.starts_with("नमस्ते"));
        assert_eq!(m[3].content, "q2");
        assert!(m[4].content.contains("interrupted"));
        assert_eq!(m.last().unwrap().content, "q3");
    }

    #[test]
    fn past_the_turn_limit_the_history_is_cut_to_half() {
        let mut c = Conversation::new("", 8);
        let mut kept = Vec::new();
        for i in 0..14 {
            c.record(ex(&format!("q{i}"), "a"));
            kept.push(c.exchanges().len());
        }
        // Cut once at the ninth turn, then it grows again: the prompt's start changes once
        // in five turns, not at every turn past the limit.
        assert_eq!(kept, [1, 2, 3, 4, 5, 6, 7, 8, 4, 5, 6, 7, 8, 4]);
        assert_eq!(c.exchanges()[0].user, "q10");
    }

    proptest::proptest! {
        /// Turn N+1's prompt starts with turn N's prompt and reply, whatever languages the user
        /// switches between (while the history is within its limits): the worker's cache keeps
        /// every earlier token and a switch costs only the new ones.
        #[test]
        fn next_prompt_extends_the_last_one(langs in proptest::collection::vec(
            proptest::sample::select(vec!["hi", "te", "en", "ta", "ur"]), 1..8)) {
            let mut c = Conversation::new(crate::config::DEFAULT_SYSTEM_PROMPT, 20);
            let mut previous: Option<Vec<ChatMessage>> = None;
            for (i, lang) in langs.iter().enumerate() {
                let user = format!("question {i}");
                let now = c.messages_for(&user, lang, false);
                proptest::prop_assert_eq!(&now[0].content, crate::config::DEFAULT_SYSTEM_PROMPT);
                if let Some(before) = &previous {
                    proptest::prop_assert!(now.len() > before.len());
                    proptest::prop_assert_eq!(&now[..before.len()], &before[..]);
                }
                // Every stretch in a language other than the one before opens with its greeting
                // (English only when it follows another language).
                let cue = example_exchange(lang).expect("these languages have a cue");
                let first_other = langs.iter().position(|l| *l != "en");
                let switched = match first_other {
                    _ if i > 0 && langs[i - 1] == *lang => false,
                    Some(f) => *lang != "en" || i > f,
                    None => false,
                };
                let n = now.len();
                proptest::prop_assert_eq!(
                    switched,
                    n >= 3 && now[n - 3].content == cue.0 && now[n - 2].content == cue.1
                );
                let reply = format!("answer {i}");
                let mut with_reply = now.clone();
                with_reply.push(ChatMessage::new(Role::Assistant, reply.clone()));
                previous = Some(with_reply);
                c.record(Exchange {
                    user,
                    assistant: reply,
                    language: lang.to_string(),
                    interrupted: false,
                    mixed: false,
                });
            }
        }
    }

    #[test]
    fn a_turn_heard_as_mixed_keeps_its_greeting_in_later_prompts() {
        // Devanagari words only, but the recogniser heard English too: the language stage
        // decided Hinglish, and the history must show it so, or the next prompt would not
        // extend this turn's one.
        let mut c = Conversation::new(crate::config::DEFAULT_SYSTEM_PROMPT, 4);
        let first = c.messages_for("मेरी मीटिंग कब है", "hi", true);
        c.record(Exchange {
            user: "मेरी मीटिंग कब है".into(),
            assistant: "कल 3 बजे।".into(),
            language: "hi".into(),
            interrupted: false,
            mixed: true,
        });
        let next = c.messages_for("और कल?", "hi", true);
        assert_eq!(next[..first.len()], first[..]);
        assert_eq!(next.len(), first.len() + 2);
    }

    #[test]
    fn hinglish_gets_the_mixed_greeting() {
        let c = Conversation::new(crate::config::DEFAULT_SYSTEM_PROMPT, 4);
        let m = c.messages_for("kal ka weather kaisa hai", "hi", true);
        assert_eq!(m[1].content, mixed_example_exchange("hi").expect("hi").0);
        let plain = c.messages_for("कल मौसम कैसा है", "hi", false);
        assert_eq!(plain[1].content, example_exchange("hi").expect("hi").0);
    }

    fn ex(user: &str, assistant: &str) -> Exchange {
        Exchange {
            user: user.into(),
            assistant: assistant.into(),
            language: "en".into(),
            interrupted: false,
            mixed: false,
        }
    }

    #[test]
    fn token_estimate_table() {
        let cases: &[(&str, usize)] = &[
            ("", 0),
            ("a", 1),
            ("abcd", 1),
            ("abcde", 2),
            // 25 ASCII characters.
            ("Hello, how are you today?", 7),
            // 6 Devanagari characters at 1/2.
            ("नमस्ते", 3),
            // 3 ASCII + 1 Latin-1 = 5 quarters.
            ("café", 2),
            // 8 Telugu characters at 1.
            ("నమస్కారం", 8),
            // 3 ASCII + 1 emoji = 7 quarters.
            ("ok 👍", 2),
        ];
        for &(text, want) in cases {
            assert_eq!(estimate_tokens(text), want, "{text:?}");
        }
    }

    #[test]
    fn token_budget_drops_oldest_but_keeps_newest() {
        // Each exchange: 8 overhead + 10 + 10 tokens = 28.
        let forty = "x".repeat(40);
        let mut c = Conversation::new("", 10).with_token_budget(60);
        for _ in 0..2 {
            c.record(ex(&forty, &forty));
        }
        assert_eq!(c.exchanges().len(), 2);
        // A third goes over the budget: cut to two thirds of it (40), one exchange.
        c.record(ex(&forty, &forty));
        assert_eq!(c.exchanges().len(), 1);
        // One exchange alone over the budget is still kept.
        c.record(ex(&"y".repeat(1000), "z"));
        assert_eq!(c.exchanges().len(), 1);
        assert!(c.exchanges()[0].user.starts_with('y'));
    }

    #[test]
    fn budget_counts_the_interrupted_marker() {
        let plain = ex("q", "a");
        let cut = Exchange {
            interrupted: true,
            mixed: false,
            ..plain.clone()
        };
        assert!(cut.estimated_tokens() > plain.estimated_tokens());
    }

    #[test]
    fn restore_applies_both_limits_and_clear_empties() {
        let mut c = Conversation::new("", 3).with_token_budget(1_000);
        let many: Vec<_> = (0..5).map(|i| ex(&format!("q{i}"), "a")).collect();
        c.restore(many);
        let users: Vec<_> = c.exchanges().iter().map(|e| e.user.as_str()).collect();
        assert_eq!(users, ["q2", "q3", "q4"]);
        let mut tight = Conversation::new("", 3).with_token_budget(0);
        tight.restore(c.exchanges().to_vec());
        assert_eq!(tight.exchanges().len(), 1);
        assert_eq!(tight.exchanges()[0].user, "q4");
        c.clear();
        assert!(c.exchanges().is_empty());
    }

    #[test]
    fn exchange_round_trips_through_json() {
        let e = Exchange {
            user: "మీరు ఎవరు?".into(),
            assistant: "मैं वाक हूँ".into(),
            language: "te".into(),
            interrupted: true,
            mixed: false,
        };
        let json = serde_json::to_string(&e).expect("serialise");
        assert_eq!(serde_json::from_str::<Exchange>(&json).expect("parse"), e);
    }

    proptest::proptest! {
        #[test]
        fn token_estimate_is_bounded_and_additive(a in "\\PC*", b in "\\PC*") {
            let (ea, eb) = (estimate_tokens(&a), estimate_tokens(&b));
            let joined = estimate_tokens(&format!("{a}{b}"));
            proptest::prop_assert!(joined >= ea.max(eb));
            proptest::prop_assert!(joined <= ea + eb);
            let chars = a.chars().count();
            proptest::prop_assert!(ea <= chars);
            proptest::prop_assert!(ea >= chars.div_ceil(4));
        }
    }
}
