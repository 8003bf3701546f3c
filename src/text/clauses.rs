//! Splits streaming LLM text into clauses so TTS can start on the first one while the model
//! is still writing. Knows Latin punctuation, the danda `।`, double danda `॥`, the Urdu full
//! stop `۔` and the Arabic-script question mark `؟`, and does not split numbers like `1,00,000`
//! or `3.5`.

/// Characters that end a clause when followed by whitespace or the end of the text.
const LATIN_BOUNDARIES: &[char] = &[',', '.', '?', '!', ';', ':'];
/// Characters that always end a clause (no digit can follow them inside a number).
const SCRIPT_BOUNDARIES: &[char] = &['।', '॥', '۔', '؟', '、', '\n'];
/// A clause longer than this many characters is cut at its last space, so a model that writes
/// no punctuation still streams.
pub const MAX_CLAUSE_CHARS: usize = 160;

/// The first clause of a reply is cut sooner (at a space past this many characters) when the
/// model writes no punctuation: the first audio is what the user waits for.
pub const MAX_FIRST_CLAUSE_CHARS: usize = 28;

/// … and sooner still in the Indic and other non-Latin scripts, about three words: the model
/// spends a token or more per character there (byte-level BPE), so 28 characters took it
/// 1–1.5 s to write at 19 tokens/s on two cores.
pub const MAX_FIRST_CLAUSE_CHARS_NON_LATIN: usize = 14;

/// Accumulates streamed text and hands out complete clauses.
#[derive(Debug, Default)]
pub struct ClauseSplitter {
    buf: String,
    emitted: usize,
}

impl ClauseSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    fn max_chars(&self) -> usize {
        if self.emitted > 0 {
            return MAX_CLAUSE_CHARS;
        }
        let first_letter = self.buf.chars().find(|c| c.is_alphabetic());
        if first_letter.is_some_and(|c| !c.is_ascii()) {
            MAX_FIRST_CLAUSE_CHARS_NON_LATIN
        } else {
            MAX_FIRST_CLAUSE_CHARS
        }
    }

    /// Adds a delta; returns the clauses it completed (trimmed, non-empty).
    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.buf.push_str(delta);
        let mut out = Vec::new();
        while let Some(end) = self.find_boundary() {
            let clause: String = self.buf[..end].trim().to_string();
            self.buf.drain(..end);
            if has_speakable(&clause) {
                self.emitted += 1;
                out.push(clause);
            }
        }
        out
    }

    /// Returns whatever is left at the end of the stream.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        let rest = rest.trim();
        has_speakable(rest).then(|| rest.to_string())
    }

    /// Byte index just past the first clause boundary, if the buffer holds a complete clause.
    fn find_boundary(&self) -> Option<usize> {
        let mut chars = self.buf.char_indices().peekable();
        let mut prev: Option<char> = None;
        let mut n_chars = 0;
        while let Some((i, c)) = chars.next() {
            let end = i + c.len_utf8();
            if SCRIPT_BOUNDARIES.contains(&c) {
                return Some(end);
            }
            if LATIN_BOUNDARIES.contains(&c) {
                match chars.peek() {
                    // Not yet known what follows: wait for more text.
                    None => return None,
                    Some(&(_, next)) if next.is_whitespace() => {
                        // "Dr. " or "e.g. " are still boundaries; good enough for speech.
                        return Some(end);
                    }
                    Some(&(_, next))
                        if next.is_ascii_digit() && prev.is_some_and(|p| p.is_numeric()) => {}
                    Some(_) => {}
                }
            }
            prev = Some(c);
            n_chars += 1;
            if n_chars >= self.max_chars() {
                let last_space = self.buf[..end]
                    .char_indices()
                    .rev()
                    .find(|(_, c)| c.is_whitespace());
                if let Some((space, ws)) = last_space {
                    if space > 0 {
                        return Some(space + ws.len_utf8());
                    }
                }
                // No space at all (a model stuck on one "word"): cut anyway, so speech never
                // waits for the whole reply.
                if n_chars >= 2 * self.max_chars() {
                    return Some(end);
                }
            }
        }
        None
    }
}

fn has_speakable(s: &str) -> bool {
    s.chars().any(|c| c.is_alphanumeric())
}

/// Splits a complete text into clauses (the non-streaming form of [`ClauseSplitter`]).
pub fn split_clauses(text: &str) -> Vec<String> {
    let mut s = ClauseSplitter::new();
    let mut out = s.push(text);
    out.extend(s.finish());
    out
}

/// Removes what a TTS voice should not read out: markdown emphasis, headings, code ticks.
pub fn speakable(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '*' | '#' | '`' | '_' | '~' | '|' | '\u{FFFD}'))
        .filter(|c| !is_emoji(*c))
        .collect()
}

fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F300..=0x1FAFF | 0x2600..=0x27BF | 0xFE0F)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn markdown_and_emoji_are_not_spoken() {
        assert_eq!(speakable("**Namaste** 🙏 `code`"), "Namaste  code");
        assert_eq!(speakable("नमस्ते।"), "नमस्ते।");
    }

    #[test]
    fn text_without_spaces_or_punctuation_is_still_cut() {
        let mut s = ClauseSplitter::new();
        let first = s.push(&"న్".repeat(100));
        assert_eq!(first.len(), 1);
        assert_eq!(
            first[0].chars().count(),
            2 * MAX_FIRST_CLAUSE_CHARS_NON_LATIN
        );
    }

    #[test]
    fn the_first_clause_is_a_few_words_in_indic_scripts() {
        let mut s = ClauseSplitter::new();
        let first = s.push("मैं आपकी मदद कर सकता हूँ आज आप कहाँ जाना चाहते हैं ");
        assert_eq!(first, vec!["मैं आपकी मदद"]);
        // Later clauses wait for punctuation (or the long limit) as before.
        assert!(s.push("और कब ").is_empty());
        // English keeps the longer first clause: its words cost a token or two each.
        let mut s = ClauseSplitter::new();
        let first = s.push("I can help you with that today and tell you more ");
        assert_eq!(first, vec!["I can help you with that"]);
    }

    #[test]
    fn splits_latin_and_indic_punctuation() {
        assert_eq!(
            split_clauses("Hello there, how are you? I am fine."),
            vec!["Hello there,", "how are you?", "I am fine."]
        );
        assert_eq!(
            split_clauses("नमस्ते। आप कैसे हैं? मैं ठीक हूँ॥"),
            vec!["नमस्ते।", "आप कैसे हैं?", "मैं ठीक हूँ॥"]
        );
        assert_eq!(
            split_clauses("آپ کیسے ہیں؟ میں ٹھیک ہوں۔"),
            vec!["آپ کیسے ہیں؟", "میں ٹھیک ہوں۔"]
        );
    }

    #[test]
    fn numbers_are_not_split() {
        assert_eq!(
            split_clauses("Yes. It costs 1,00,000 rupees or 3.5 lakh."),
            vec!["Yes.", "It costs 1,00,000 rupees or 3.5 lakh."]
        );
    }

    #[test]
    fn streaming_waits_for_the_character_after_a_comma() {
        let mut s = ClauseSplitter::new();
        assert!(s.push("Yes,").is_empty());
        assert_eq!(s.push(" of course"), vec!["Yes,"]);
        assert_eq!(s.push("!").len(), 0);
        assert_eq!(s.finish().as_deref(), Some("of course!"));
    }

    #[test]
    fn punctuation_only_is_dropped() {
        assert!(split_clauses(" ... ,, !").is_empty());
    }

    #[test]
    fn long_unpunctuated_text_is_cut_at_a_space() {
        let text = "word ".repeat(100);
        let clauses = split_clauses(&text);
        assert!(clauses.len() > 1);
        assert!(clauses
            .iter()
            .all(|c| c.chars().count() <= MAX_CLAUSE_CHARS));
    }

    proptest! {
        #[test]
        fn no_panic_and_no_letters_lost(text in "\\PC{0,300}", cut in 0usize..300) {
            // Feeding in two arbitrary pieces yields the same letters as the input.
            let cut = text.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(text.len());
            let mut s = ClauseSplitter::new();
            let mut clauses = s.push(&text[..cut]);
            clauses.extend(s.push(&text[cut..]));
            clauses.extend(s.finish());
            let letters = |t: &str| t.chars().filter(|c| c.is_alphanumeric()).collect::<String>();
            prop_assert_eq!(letters(&clauses.concat()), letters(&text));
        }
    }
}
