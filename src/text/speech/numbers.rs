//! Numbers as words, in Indian grouping (thousand, lakh, crore) for every language with a
//! lexicon: cardinals, digit-by-digit readings, decimals, ordinals, money, clock times, dates.

use super::lexicon::{Lexicon, Scale};

const THOUSAND: u64 = 1_000;
const LAKH: u64 = 100_000;
const CRORE: u64 = 10_000_000;

/// `n` in words: 1,23,45,678 → "one crore twenty-three lakh forty-five thousand six hundred and
/// seventy-eight" / "एक करोड़ तेईस लाख पैंतालीस हज़ार छह सौ अठहत्तर".
pub fn cardinal(lex: &Lexicon, n: u64) -> String {
    compose(lex, n, false)
}

/// `n` counting a noun that follows (rupees, paise): "one" is the attributive one (Tamil
/// ஒரு ரூபாய்) and, where the language wants it, the number takes its joined form (Telugu
/// ఐదు వందల రూపాయలు).
pub fn counting(lex: &Lexicon, n: u64) -> String {
    if n == 1 {
        lex.one_before_noun.to_string()
    } else {
        compose(lex, n, lex.oblique_before_noun)
    }
}

/// `followed`: more words come after the number, so its last part takes the joined form.
fn compose(lex: &Lexicon, n: u64, followed: bool) -> String {
    if n < 1000 {
        return below_1000(lex, n, followed);
    }
    let groups = [
        (n / CRORE, &lex.crore),
        ((n / LAKH) % 100, &lex.lakh),
        ((n / THOUSAND) % 100, &lex.thousand),
    ];
    let rest = n % 1000;
    let mut parts: Vec<String> = Vec::new();
    for (i, &(m, scale)) in groups.iter().enumerate() {
        if m == 0 {
            continue;
        }
        let more = rest != 0 || groups[i + 1..].iter().any(|&(g, _)| g != 0) || followed;
        parts.push(scaled(lex, m, scale, more));
    }
    if rest != 0 {
        parts.push(below_1000(lex, rest, followed));
    }
    parts.join(" ")
}

fn scaled(lex: &Lexicon, m: u64, scale: &Scale, more: bool) -> String {
    if m == 1 {
        return (if more { scale.one_joined } else { scale.one }).to_string();
    }
    let word = if more { scale.many_joined } else { scale.many };
    format!("{} {word}", cardinal(lex, m))
}

fn below_1000(lex: &Lexicon, n: u64, followed: bool) -> String {
    debug_assert!(n < 1000);
    if n < 100 {
        return lex.below_100[n as usize].to_string();
    }
    let (h, r) = ((n / 100) as usize, (n % 100) as usize);
    if r == 0 && followed {
        lex.hundreds_joined[h].to_string()
    } else if r == 0 {
        lex.hundreds[h].to_string()
    } else {
        format!("{} {}", lex.hundreds_joined[h], lex.below_100[r])
    }
}

/// Each digit as a word ("nine eight seven …"), in groups separated by commas (short pauses).
pub fn digits(lex: &Lexicon, digits: &[u8], group: usize) -> String {
    let words: Vec<&str> = digits
        .iter()
        .map(|&d| lex.below_100[usize::from(d.min(9))])
        .collect();
    words
        .chunks(group.max(1))
        .map(|g| g.join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `whole.fraction`: the whole part as a number, the digits after the point one by one.
pub fn decimal(lex: &Lexicon, whole: u64, fraction: &[u8]) -> String {
    if fraction.is_empty() {
        return cardinal(lex, whole);
    }
    format!(
        "{} {} {}",
        cardinal(lex, whole),
        lex.point,
        digits(lex, fraction, usize::MAX)
    )
}

/// An amount of rupees and paise.
pub fn money(lex: &Lexicon, rupees: u64, paise: u64) -> String {
    let rupee_word = if rupees == 1 {
        lex.rupee_one
    } else {
        lex.rupee_many
    };
    let mut out = String::new();
    if rupees != 0 || paise == 0 {
        out = format!("{} {rupee_word}", counting(lex, rupees));
    }
    if paise != 0 {
        let paisa_word = if paise == 1 {
            lex.paisa_one
        } else {
            lex.paisa_many
        };
        if !out.is_empty() && !lex.money_and.is_empty() {
            out.push(' ');
            out.push_str(lex.money_and);
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&format!("{} {paisa_word}", counting(lex, paise)));
    }
    out
}

/// An ordinal written as digits and `suffix` (one of the lexicon's `ordinal_suffixes`).
pub fn ordinal(lex: &Lexicon, n: u64, suffix: &str) -> String {
    if lex.lang == "en" {
        return english_ordinal(&cardinal(lex, n));
    }
    if let Some(&(_, _, word)) = lex
        .ordinal_irregular
        .iter()
        .find(|&&(k, s, _)| k == n && (s.is_empty() || s == suffix))
    {
        return word.to_string();
    }
    let ending = lex
        .ordinal_spoken
        .iter()
        .find(|&&(s, _)| s == suffix)
        .map_or(suffix, |&(_, e)| e);
    format!("{}{ending}", cardinal(lex, n))
}

/// "twenty-one" → "twenty-first": English changes only the last word.
fn english_ordinal(cardinal: &str) -> String {
    let cut = cardinal.rfind([' ', '-']).map_or(0, |i| i + 1);
    let (head, last) = cardinal.split_at(cut);
    let last = match last {
        "one" => "first".to_string(),
        "two" => "second".to_string(),
        "three" => "third".to_string(),
        "five" => "fifth".to_string(),
        "eight" => "eighth".to_string(),
        "nine" => "ninth".to_string(),
        "twelve" => "twelfth".to_string(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    };
    format!("{head}{last}")
}

/// A clock time; `None` when it is not one (hour > 23 or minute > 59).
pub fn time(lex: &Lexicon, hour: u64, minute: u64) -> Option<String> {
    if hour > 23 || minute > 59 {
        return None;
    }
    let h = cardinal(lex, hour);
    Some(if minute == 0 {
        lex.time_h.replace("{h}", &h)
    } else {
        let m = if lex.lang == "en" && minute < 10 {
            format!("oh {}", cardinal(lex, minute))
        } else {
            cardinal(lex, minute)
        };
        lex.time_hm.replace("{h}", &h).replace("{m}", &m)
    })
}

/// A day-month-year date (the order used across India); `None` when it is not a date.
pub fn date(lex: &Lexicon, day: u64, month: u64, year: u64) -> Option<String> {
    if !(1..=31).contains(&day) || !(1..=12).contains(&month) {
        return None;
    }
    let year_words = if lex.lang == "en" {
        english_year(lex, year)
    } else {
        year_in_hundreds(lex, year).unwrap_or_else(|| cardinal(lex, year))
    };
    Some(
        lex.date
            .replace("{d}", &cardinal(lex, day))
            .replace("{month}", lex.months[(month - 1) as usize])
            .replace("{y}", &year_words),
    )
}

/// Hindi, Urdu, Punjabi and Gujarati read 1950 as "nineteen hundred fifty" (उन्नीस सौ पचास):
/// languages whose hundred is "one" + a word. The others say the number.
fn year_in_hundreds(lex: &Lexicon, year: u64) -> Option<String> {
    let mut words = lex.hundreds[1].split(' ');
    let (Some(_one), Some(hundred), None) = (words.next(), words.next(), words.next()) else {
        return None;
    };
    if !(1100..2000).contains(&year) {
        return None;
    }
    let (high, low) = (year / 100, year % 100);
    let head = format!("{} {hundred}", lex.below_100[high as usize]);
    Some(match low {
        0 => head,
        _ => format!("{head} {}", lex.below_100[low as usize]),
    })
}

/// 1999 → "nineteen ninety-nine", 1905 → "nineteen oh five"; from 2000 on Indian English
/// says the number ("two thousand twenty-four").
fn english_year(lex: &Lexicon, year: u64) -> String {
    if (1100..2000).contains(&year) && year % 100 != 0 {
        let (hi, lo) = (year / 100, year % 100);
        let lo = if lo < 10 {
            format!("oh {}", cardinal(lex, lo))
        } else {
            cardinal(lex, lo)
        };
        format!("{} {lo}", cardinal(lex, hi))
    } else if (1100..2000).contains(&year) {
        format!("{} hundred", cardinal(lex, year / 100))
    } else {
        cardinal(lex, year)
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexicon::lexicon;
    use super::*;

    fn en() -> &'static Lexicon {
        lexicon("en").expect("en lexicon")
    }

    #[test]
    fn english_in_indian_grouping() {
        let cases = [
            (0, "zero"),
            (21, "twenty-one"),
            (105, "one hundred and five"),
            (1_000, "one thousand"),
            (100_000, "one lakh"),
            (
                12_345_678,
                "one crore twenty-three lakh forty-five thousand six hundred and seventy-eight",
            ),
            (1_000_000_000, "one hundred crore"),
        ];
        for (n, want) in cases {
            assert_eq!(cardinal(en(), n), want, "{n}");
        }
    }

    #[test]
    fn english_ordinals_years_and_times() {
        assert_eq!(ordinal(en(), 21, "st"), "twenty-first");
        assert_eq!(ordinal(en(), 12, "th"), "twelfth");
        assert_eq!(ordinal(en(), 40, "th"), "fortieth");
        assert_eq!(ordinal(en(), 100, "th"), "one hundredth");
        assert_eq!(english_year(en(), 1999), "nineteen ninety-nine");
        assert_eq!(english_year(en(), 1905), "nineteen oh five");
        assert_eq!(english_year(en(), 2024), "two thousand twenty-four");
        assert_eq!(time(en(), 9, 5).as_deref(), Some("nine oh five"));
        assert_eq!(time(en(), 24, 0), None);
        assert_eq!(date(en(), 31, 13, 2024), None);
    }

    #[test]
    fn money_with_and_without_paise() {
        assert_eq!(money(en(), 1, 0), "one rupee");
        assert_eq!(
            money(en(), 150, 50),
            "one hundred and fifty rupees and fifty paise"
        );
        assert_eq!(money(en(), 0, 75), "seventy-five paise");
    }
}
