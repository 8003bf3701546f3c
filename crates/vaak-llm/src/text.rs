//! Turning a stream of token byte pieces into safe text deltas.
//!
//! A token is a run of bytes, not a character: Devanagari or Telugu letters are three UTF-8
//! bytes and byte-level BPE vocabularies routinely split them across tokens. Streaming each
//! token's bytes as-is would put half a character into an SSE chunk. [`Utf8Stream`] holds back
//! an incomplete trailing sequence until the next piece completes it.
//!
//! Stop strings have the same problem one level up: a stop string may arrive split over
//! several tokens, and whatever might be its beginning must not be sent before we know.
//! [`StopMatcher`] holds back the longest suffix that is a prefix of some stop string.
//!
//! Neither needs a model, so both are unit-tested here.

/// Incremental UTF-8 decoder: feed bytes, get back only complete characters.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Appends `bytes` and returns every complete character now available. Invalid sequences
    /// become U+FFFD so that a broken token can never stall the stream.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(valid) => {
                    out.push_str(valid);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let good = start + e.valid_up_to();
                    // `valid_up_to` promises this range is valid UTF-8.
                    out.push_str(&String::from_utf8_lossy(&self.pending[start..good]));
                    match e.error_len() {
                        // Incomplete sequence at the end: keep it for the next piece.
                        None => {
                            start = good;
                            break;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start = good + bad;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }

    /// Ends the stream: whatever incomplete bytes remain become U+FFFD.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

/// Finds stop strings in streamed text without ever emitting part of one.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

/// What [`StopMatcher::push`] decided.
#[derive(Debug, PartialEq, Eq)]
pub struct StopOutcome {
    /// Text that is safe to send now.
    pub emit: String,
    /// A stop string was found; `emit` ends right before it and nothing more may be sent.
    pub stopped: bool,
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    /// Adds `text` and returns what can be sent.
    pub fn push(&mut self, text: &str) -> StopOutcome {
        if self.stops.is_empty() {
            return StopOutcome {
                emit: text.to_owned(),
                stopped: false,
            };
        }
        self.held.push_str(text);
        let first_stop = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = first_stop {
            let emit = self.held[..at].to_owned();
            self.held.clear();
            return StopOutcome {
                emit,
                stopped: true,
            };
        }
        let keep = self.partial_suffix_len();
        let cut = self.held.len() - keep;
        let emit = self.held[..cut].to_owned();
        self.held.drain(..cut);
        StopOutcome {
            emit,
            stopped: false,
        }
    }

    /// Releases held-back text at the end of generation (no stop string completed).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length in bytes of the longest suffix of `held` (starting on a char boundary) that is a
    /// proper prefix of some stop string.
    fn partial_suffix_len(&self) -> usize {
        let held = self.held.as_str();
        held.char_indices()
            .map(|(i, _)| &held[i..])
            .find(|suffix| {
                self.stops
                    .iter()
                    .any(|s| s.len() > suffix.len() && s.starts_with(suffix))
            })
            .map_or(0, str::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_passes_through() {
        let mut u = Utf8Stream::default();
        assert_eq!(u.push(b"hello"), "hello");
        assert_eq!(u.finish(), "");
    }

    #[test]
    fn devanagari_split_across_pieces_is_never_split_in_output() {
        // "नमस्ते" is 6 chars x 3 bytes; feed it one byte at a time.
        let text = "नमस्ते दुनिया";
        let mut u = Utf8Stream::default();
        let mut chunks = Vec::new();
        for b in text.as_bytes() {
            let s = u.push(&[*b]);
            if !s.is_empty() {
                chunks.push(s);
            }
        }
        assert_eq!(u.finish(), "");
        assert_eq!(chunks.concat(), text);
        // Every chunk is one whole character (a valid &str by construction).
        assert_eq!(chunks.len(), text.chars().count());
    }

    #[test]
    fn telugu_and_emoji_in_uneven_pieces() {
        let text = "నమస్కారం 🙏 ok";
        let bytes = text.as_bytes();
        let mut u = Utf8Stream::default();
        let mut out = String::new();
        for piece in bytes.chunks(5) {
            out.push_str(&u.push(piece));
        }
        out.push_str(&u.finish());
        assert_eq!(out, text);
    }

    #[test]
    fn invalid_bytes_become_replacement_and_do_not_stall() {
        let mut u = Utf8Stream::default();
        assert_eq!(u.push(&[b'a', 0xFF, b'b']), "a\u{FFFD}b");
        // A dangling lead byte at the very end is reported on finish.
        assert_eq!(u.push(&[0xE0, 0xA4]), "");
        assert_eq!(u.finish(), "\u{FFFD}");
    }

    #[test]
    fn stop_in_one_piece() {
        let mut m = StopMatcher::new(vec!["END".into()]);
        let o = m.push("abc END def");
        assert_eq!(
            o,
            StopOutcome {
                emit: "abc ".into(),
                stopped: true
            }
        );
    }

    #[test]
    fn stop_split_over_pieces_is_held_back() {
        let mut m = StopMatcher::new(vec!["\nUser:".into()]);
        assert_eq!(m.push("Hi there").emit, "Hi there");
        let o = m.push("\nUs");
        assert_eq!(o.emit, "");
        assert!(!o.stopped);
        let o = m.push("er: more");
        assert_eq!(o.emit, "");
        assert!(o.stopped);
    }

    #[test]
    fn false_alarm_is_released() {
        let mut m = StopMatcher::new(vec!["STOP".into()]);
        assert_eq!(m.push("ST").emit, "");
        assert_eq!(m.push("ART").emit, "START");
        assert_eq!(m.push("S").emit, "");
        assert_eq!(m.finish(), "S");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let mut m = StopMatcher::new(vec!["b".into(), "a".into()]);
        assert_eq!(m.push("xxaxb").emit, "xx");
    }

    #[test]
    fn devanagari_stop_string_and_danda() {
        let mut m = StopMatcher::new(vec!["।".into()]);
        let o = m.push("नमस्ते।");
        assert_eq!(o.emit, "नमस्ते");
        assert!(o.stopped);
    }

    #[test]
    fn no_stops_is_passthrough() {
        let mut m = StopMatcher::new(vec![String::new()]);
        assert_eq!(m.push("anything").emit, "anything");
        assert_eq!(m.finish(), "");
    }
}
