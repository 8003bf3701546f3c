//! Conversation memory of one session: the turns so far, trimmed to a budget, turned into the
//! chat messages the LLM sees. A reply cut short by barge-in is kept only as far as it was
//! played, and marked as interrupted.

use crate::backend::llm::{ChatMessage, Role};
use crate::config::language_name;

#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub user: String,
    pub assistant: String,
    pub language: String,
    pub interrupted: bool,
}

#[derive(Debug, Clone)]
pub struct Conversation {
    system_prompt: String,
    exchanges: Vec<Exchange>,
    max_turns: usize,
}

impl Conversation {
    pub fn new(system_prompt: impl Into<String>, max_turns: usize) -> Self {
        Self {
            system_prompt: system_prompt.into(),
            exchanges: Vec::new(),
            max_turns,
        }
    }

    pub fn record(&mut self, exchange: Exchange) {
        self.exchanges.push(exchange);
        let excess = self.exchanges.len().saturating_sub(self.max_turns);
        self.exchanges.drain(..excess);
    }

    pub fn exchanges(&self) -> &[Exchange] {
        &self.exchanges
    }

    /// Messages for a new user turn in `language`. The system prompt stays byte-identical for a
    /// language so the worker's KV cache reuses it across turns.
    pub fn messages_for(&self, user_text: &str, language: &str) -> Vec<ChatMessage> {
        let system = self
            .system_prompt
            .replace("{language}", language_name(language));
        let mut msgs = vec![ChatMessage::new(Role::System, system)];
        if let Some((user, assistant)) = example_exchange(language) {
            msgs.push(ChatMessage::new(Role::User, user));
            msgs.push(ChatMessage::new(Role::Assistant, assistant));
        }
        for ex in &self.exchanges {
            msgs.push(ChatMessage::new(Role::User, ex.user.clone()));
            let reply = if ex.interrupted {
                format!("{} …(interrupted by the user)", ex.assistant)
            } else {
                ex.assistant.clone()
            };
            msgs.push(ChatMessage::new(Role::Assistant, reply));
        }
        msgs.push(ChatMessage::new(Role::User, user_text.to_string()));
        msgs
    }
}

/// A greeting exchange in the language itself, placed before the real history: small models
/// answer in the language of the examples far more reliably than they follow an instruction
/// (and, unlike an instruction in the system prompt, they do not read it back to the user).
pub fn example_exchange(lang: &str) -> Option<(&'static str, &'static str)> {
    Some(match lang {
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
            });
        }
        let m = c.messages_for("q3", "hi");
        assert_eq!(m[0].content, "Answer in Hindi.");
        // System, the Hindi example exchange, two kept turns, the new question.
        assert_eq!(m.len(), 1 + 2 + 2 * 2 + 1);
        assert!(m[1].content.starts_with("नमस्ते"));
        assert_eq!(m[3].content, "q1");
        assert!(m[6].content.contains("interrupted"));
        assert_eq!(m.last().unwrap().content, "q3");
    }
}
