//! What a voice should say for a written reply: numbers in Indian grouping (lakh, crore), rupee
//! amounts with paise, percentages, ordinals, clock times, dates, phone numbers and OTPs digit
//! by digit, native digits of every Indian script, and common abbreviations — in Indian English
//! and eleven Indian languages. Captions keep the written text; only the voice gets this.

pub mod lexicon;
mod lexicon_data;
pub mod numbers;

use lexicon::Lexicon;

/// Numbers longer than this many digits are read digit by digit (account numbers, IDs).
const MAX_CARDINAL_DIGITS: usize = 15;
/// Words that, shortly before a number, mean it is a code to be read digit by digit.
const CODE_WORDS: &[&str] = &[
    "otp",
    "pin",
    "code",
    "ओटीपी",
    "कोड",
    "पिन",
    "ఓటీపీ",
    "ஓடிபி",
    "ಒಟಿಪಿ",
    "ഒടിപി",
    "ওটিপি",
];
/// How far back (in characters) a code word still makes a number a code.
const CODE_WORD_REACH: usize = 24;
/// Currency prefixes every language accepts.
const RUPEE_PREFIXES: &[&str] = &["₹", "Rs.", "Rs", "RS.", "RS", "rs.", "INR"];

/// The value of a decimal digit in any script (ASCII, Devanagari ०, Bengali ০, Tamil ௦,
/// Telugu ౦, Kannada ೦, Malayalam ൦, Gurmukhi ੦, Gujarati ૦, Odia ୦, Arabic-Indic ٠ and ۰).
pub fn digit_value(c: char) -> Option<u8> {
    if let Some(d) = c.to_digit(10) {
        return Some(d as u8);
    }
    const ZEROS: &[u32] = &[
        0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66, 0x0660, 0x06F0,
    ];
    let code = c as u32;
    ZEROS
        .iter()
        .find(|&&z| (z..z + 10).contains(&code))
        .map(|&z| (code - z) as u8)
}

/// The lexicon for a reply language (`en-IN` and `en` are both Indian English).
fn lexicon_for(lang: &str) -> Option<&'static Lexicon> {
    let base = lang.split(['-', '_']).next().unwrap_or(lang);
    lexicon::lexicon(&base.to_ascii_lowercase())
}

/// `text` as `lang`'s voice should say it. Languages without a lexicon get the text back.
pub fn normalize_for_speech(text: &str, lang: &str) -> String {
    match lexicon_for(lang) {
        Some(lex) => Reader::new(lex, text).read(),
        None => text.to_string(),
    }
}

/// A left-to-right pass over the text that replaces what it recognises.
struct Reader {
    lex: &'static Lexicon,
    chars: Vec<char>,
    at: usize,
    out: String,
}

/// A run of digits as parsed: its values and where it ends.
struct Digits {
    values: Vec<u8>,
    end: usize,
}

impl Reader {
    fn new(lex: &'static Lexicon, text: &str) -> Self {
        Self {
            lex,
            chars: text.chars().collect(),
            at: 0,
            out: String::with_capacity(text.len() * 2),
        }
    }

    fn read(mut self) -> String {
        while self.at < self.chars.len() {
            if self.at_word_start() && self.money().or_else(|| self.abbreviation()).is_some() {
                continue;
            }
            if self.digit(self.at).is_some() {
                self.number();
                continue;
            }
            let c = self.chars[self.at];
            self.out.push(c);
            self.at += 1;
        }
        self.out
    }

    fn digit(&self, i: usize) -> Option<u8> {
        self.chars.get(i).copied().and_then(digit_value)
    }

    /// Not inside a word ("5km" still starts the word "km").
    fn at_word_start(&self) -> bool {
        self.at == 0 || !self.chars[self.at - 1].is_alphabetic()
    }

    fn starts_with(&self, i: usize, s: &str) -> bool {
        (i..)
            .zip(s.chars())
            .all(|(j, c)| self.chars.get(j) == Some(&c))
    }

    /// Appends words, with a space between them and any letter or digit they touch.
    fn say(&mut self, words: &str) {
        if self.out.chars().last().is_some_and(char::is_alphanumeric) {
            self.out.push(' ');
        }
        self.out.push_str(words);
        if self.chars.get(self.at).is_some_and(|c| c.is_alphanumeric()) {
            self.out.push(' ');
        }
    }

    /// A run of digits at `i` (no separators).
    fn digits_at(&self, i: usize) -> Digits {
        let mut values = Vec::new();
        let mut end = i;
        while let Some(d) = self.digit(end) {
            values.push(d);
            end += 1;
        }
        Digits { values, end }
    }

    /// A number with optional grouping commas (1,00,000 or 100,000) at `i`: its digits and end.
    /// A comma after four or more digits, or before a group that is not two or three digits
    /// long, is punctuation ("5, 6" and "2024,").
    fn grouped_at(&self, i: usize) -> Digits {
        let mut run = self.digits_at(i);
        if run.values.len() > 3 {
            return run;
        }
        while self.chars.get(run.end) == Some(&',') {
            let next = self.digits_at(run.end + 1);
            if !matches!(next.values.len(), 2 | 3) {
                break;
            }
            run.values.extend(next.values);
            run.end = next.end;
        }
        run
    }

    /// `₹1,500.50`, `Rs. 20`, `INR 5 lakh`, `रु. 100` → rupees and paise.
    fn money(&mut self) -> Option<()> {
        let lex = self.lex;
        let prefix = RUPEE_PREFIXES
            .iter()
            .chain(lex.rupee_abbreviations.iter())
            .filter(|p| self.starts_with(self.at, p))
            .max_by_key(|p| p.chars().count())?;
        let mut i = self.at + prefix.chars().count();
        // "Rs" must be a word of its own ("Rsvp" is not money).
        if self.chars.get(i).is_some_and(|c| c.is_alphabetic()) {
            return None;
        }
        while self
            .chars
            .get(i)
            .is_some_and(|c| *c == ' ' || *c == '\u{a0}')
        {
            i += 1;
        }
        self.digit(i)?;
        let whole = self.grouped_at(i);
        if whole.values.len() > MAX_CARDINAL_DIGITS {
            return None;
        }
        let rupees = value(&whole.values);
        let mut end = whole.end;
        let fraction = match self.chars.get(end) {
            Some('.') => self.digits_at(end + 1),
            _ => Digits {
                values: Vec::new(),
                end,
            },
        };
        // "₹20 lakh", "₹1.5 crore", "₹5 करोड़": that many lakh (crore …) rupees.
        if let Some((scale, len)) = self.scale_word_at(fraction.end) {
            self.at = fraction.end + len;
            let amount = numbers::decimal(lex, rupees, &fraction.values);
            self.say(&format!("{amount} {scale} {}", lex.rupee_many));
            return Some(());
        }
        let mut paise = 0;
        if matches!(fraction.values.len(), 1 | 2) {
            paise = value(&fraction.values);
            if fraction.values.len() == 1 {
                paise *= 10;
            }
            end = fraction.end;
        }
        // "Rs. 500/-": the dash only says "no paise".
        if self.starts_with(end, "/-") {
            end += 2;
        }
        self.at = end;
        let words = numbers::money(lex, rupees, paise);
        self.say(&words);
        Some(())
    }

    fn abbreviation(&mut self) -> Option<()> {
        let (written, spoken) = self
            .lex
            .abbreviations
            .iter()
            .filter(|(w, _)| self.starts_with(self.at, w))
            .max_by_key(|(w, _)| w.chars().count())?;
        let end = self.at + written.chars().count();
        let ends_word =
            written.ends_with('.') || self.chars.get(end).is_none_or(|c| !c.is_alphanumeric());
        if !ends_word {
            return None;
        }
        self.at = end;
        self.say(spoken);
        Some(())
    }

    /// A number of any kind starting at a digit.
    fn number(&mut self) {
        let start = self.at;
        let words = self
            .date()
            .or_else(|| self.time())
            .or_else(|| self.phone())
            .unwrap_or_else(|| self.quantity());
        debug_assert!(self.at > start);
        let negative = self.out.ends_with('-')
            && self.out[..self.out.len() - 1]
                .chars()
                .last()
                .is_none_or(|c| c.is_whitespace() || c == '(');
        if negative {
            self.out.pop();
            let minus = format!("{} {words}", self.lex.minus);
            self.say(&minus);
        } else {
            self.say(&words);
        }
    }

    /// 15/08/2024, 15-8-24, 15.08.2024 (day first, as written in India).
    fn date(&mut self) -> Option<String> {
        let d = self.digits_at(self.at);
        let sep = *self.chars.get(d.end)?;
        if !matches!(sep, '/' | '-' | '.') || !(1..=2).contains(&d.values.len()) {
            return None;
        }
        let m = self.digits_at(d.end + 1);
        if !(1..=2).contains(&m.values.len()) || self.chars.get(m.end) != Some(&sep) {
            return None;
        }
        let y = self.digits_at(m.end + 1);
        if !matches!(y.values.len(), 2 | 4) {
            return None;
        }
        let mut year = value(&y.values);
        if y.values.len() == 2 {
            year += 2000;
        }
        let words = numbers::date(self.lex, value(&d.values), value(&m.values), year)?;
        self.at = y.end;
        Some(words)
    }

    /// 9:05, 14:30 (seconds, if written, are left out of the reading).
    fn time(&mut self) -> Option<String> {
        let h = self.digits_at(self.at);
        if !(1..=2).contains(&h.values.len()) || self.chars.get(h.end) != Some(&':') {
            return None;
        }
        let m = self.digits_at(h.end + 1);
        if m.values.len() != 2 {
            return None;
        }
        let words = numbers::time(self.lex, value(&h.values), value(&m.values))?;
        let mut end = m.end;
        if self.chars.get(end) == Some(&':') && self.digits_at(end + 1).values.len() == 2 {
            end = self.digits_at(end + 1).end;
        }
        // "3:30 बजे", "3:30 o'clock": the reading already says it.
        if let Some(word) = self.lex.time_h.rsplit(' ').next().filter(|w| *w != "{h}") {
            let next = end + 1;
            if self.chars.get(end) == Some(&' ')
                && self.starts_with(next, word)
                && self
                    .chars
                    .get(next + word.chars().count())
                    .is_none_or(|c| !c.is_alphanumeric())
            {
                end = next + word.chars().count();
            }
        }
        self.at = end;
        Some(words)
    }

    /// Indian mobile numbers (+91 98765 43210, 9876543210, 09876543210), landlines with an STD
    /// code (040-23456789) and codes: read digit by digit.
    fn phone(&mut self) -> Option<String> {
        let plus = self.out.ends_with('+');
        let mut all = Vec::new();
        let mut i = self.at;
        let mut end = i;
        let mut groups = 0;
        loop {
            let run = self.digits_at(i);
            if run.values.is_empty() {
                break;
            }
            all.extend(run.values);
            end = run.end;
            groups += 1;
            match (self.chars.get(end), self.digit(end + 1)) {
                (Some(' ' | '-'), Some(_)) if all.len() < 13 => i = end + 1,
                _ => break,
            }
        }
        let mobile = all.len() == 10 && matches!(all[0], 6..=9);
        let trunk = all.len() == 11 && all[0] == 0;
        let international = plus && (10..=13).contains(&all.len());
        if groups > 1 && !(mobile || trunk || international) {
            // "2 3 4" or "2024 में": not a phone number; only the first run is a number.
            return None;
        }
        if !(mobile || trunk || international) {
            return None;
        }
        if plus {
            // English says "plus nine one …"; the other languages just read the digits.
            self.out.pop();
            if self.lex.lang == "en" {
                self.out.push_str("plus");
            }
        }
        self.at = end;
        Some(numbers::digits(self.lex, &all, 5))
    }

    /// A plain number, decimal, percentage or ordinal; a code when it looks like one.
    fn quantity(&mut self) -> String {
        let lex = self.lex;
        let run = self.grouped_at(self.at);
        let mut end = run.end;
        let plain = run.end - self.at == run.values.len();
        let is_code = plain
            && (run.values.len() > MAX_CARDINAL_DIGITS
                || (run.values.len() >= 3 && run.values[0] == 0)
                || (run.values.len() >= 4 && self.after_code_word()));
        if is_code || run.values.len() > MAX_CARDINAL_DIGITS {
            self.at = end;
            return numbers::digits(lex, &run.values, 4);
        }
        let n = value(&run.values);
        // Decimal fraction.
        let mut fraction = Vec::new();
        if self.chars.get(end) == Some(&'.') {
            let frac = self.digits_at(end + 1);
            if !frac.values.is_empty() {
                fraction = frac.values;
                end = frac.end;
            }
        }
        let mut words = numbers::decimal(lex, n, &fraction);
        // Percentage, with or without a space before the sign.
        let mut j = end;
        if self.chars.get(j) == Some(&' ') {
            j += 1;
        }
        if self.chars.get(j) == Some(&'%') {
            words = format!("{words} {}", lex.percent);
            end = j + 1;
        } else if fraction.is_empty() && lex.lang != "en" && self.english_ordinal_at(end) {
            // "21st March" inside another language: the day's number.
            end += 2;
        } else if fraction.is_empty() {
            // Ordinal: digits with a written suffix and nothing of the word after it.
            if let Some(suffix) = lex
                .ordinal_suffixes
                .iter()
                .filter(|s| self.starts_with(end, s))
                .filter(|s| {
                    self.chars
                        .get(end + s.chars().count())
                        .is_none_or(|c| !c.is_alphanumeric())
                })
                .max_by_key(|s| s.chars().count())
            {
                words = numbers::ordinal(lex, n, suffix);
                end += suffix.chars().count();
            }
        }
        self.at = end;
        words
    }

    /// A space then a scale word (thousand, lakh, crore, in English or the language) at `i`:
    /// the language's word for it and how many characters were read.
    fn scale_word_at(&self, i: usize) -> Option<(&'static str, usize)> {
        if self.chars.get(i) != Some(&' ') {
            return None;
        }
        let lex = self.lex;
        let forms: [(&str, &'static str); 9] = [
            ("thousand", lex.thousand.many),
            ("lakhs", lex.lakh.many),
            ("lakh", lex.lakh.many),
            ("crores", lex.crore.many),
            ("crore", lex.crore.many),
            (lex.thousand.many, lex.thousand.many),
            (lex.lakh.many, lex.lakh.many),
            (lex.crore.many, lex.crore.many),
            ("cr", lex.crore.many),
        ];
        forms.iter().find_map(|&(written, spoken)| {
            let len = written.chars().count();
            (self.starts_with(i + 1, written)
                && self
                    .chars
                    .get(i + 1 + len)
                    .is_none_or(|c| !c.is_alphanumeric()))
            .then_some((spoken, 1 + len))
        })
    }

    /// An English ordinal suffix (st, nd, rd, th) ending a word at `i`.
    fn english_ordinal_at(&self, i: usize) -> bool {
        ["st", "nd", "rd", "th"]
            .iter()
            .any(|s| self.starts_with(i, s))
            && self.chars.get(i + 2).is_none_or(|c| !c.is_alphanumeric())
    }

    /// A code word (OTP, PIN, code …) just before the current position.
    fn after_code_word(&self) -> bool {
        let from = self.at.saturating_sub(CODE_WORD_REACH);
        let before: String = self.chars[from..self.at].iter().collect::<String>();
        let before = before.to_lowercase();
        CODE_WORDS.iter().any(|w| before.contains(w))
    }
}

/// The number a digit sequence spells (callers keep it under 16 digits).
fn value(digits: &[u8]) -> u64 {
    digits.iter().fold(0u64, |a, &d| {
        a.saturating_mul(10).saturating_add(u64::from(d))
    })
}

#[cfg(test)]
mod tests;
