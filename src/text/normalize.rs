//! Normalisation for comparing transcripts (as the eval README prescribes): Unicode NFC,
//! punctuation (including the danda `।` and `॥`) removed, whitespace collapsed, Latin
//! lower-cased. Combining vowel signs of Indic scripts are letters here, not punctuation.

use unicode_normalization::UnicodeNormalization;

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '।' | '॥'
                | '،'
                | '۔'
                | '؟'
                | '“'
                | '”'
                | '‘'
                | '’'
                | '«'
                | '»'
                | '¿'
                | '¡'
                | '·'
        )
        || ('\u{2000}'..='\u{206F}').contains(&c)
}

/// Text ready for WER/CER scoring.
pub fn normalize_for_scoring(text: &str) -> String {
    let nfc: String = text.nfc().collect();
    let cleaned: String = nfc
        .chars()
        .map(|c| if is_punctuation(c) { ' ' } else { c })
        .flat_map(char::to_lowercase)
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn drops_punctuation_keeps_vowel_signs() {
        assert_eq!(
            normalize_for_scoring("And so, my fellow Americans!"),
            "and so my fellow americans"
        );
        assert_eq!(normalize_for_scoring("किताब पढ़िए।  ठीक॥"), "किताब पढ़िए ठीक");
        assert_eq!(normalize_for_scoring("మీరు  ఎలా?"), "మీరు ఎలా");
    }

    proptest! {
        #[test]
        fn idempotent(text in "\\PC{0,80}") {
            let once = normalize_for_scoring(&text);
            prop_assert_eq!(normalize_for_scoring(&once), once.clone());
        }
    }
}
