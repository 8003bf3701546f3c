//! What vaak says in its own words, per language: the sentences no model writes (asking the
//! user to say it again, saying it cannot answer, telling a refused caller the lines are busy).
//! One sentence per served language, English for any other.

/// What vaak says to a transcript it cannot make sense of: "sorry, I didn't catch that, please
/// say it again", in `language` (English for a language it has no sentence for).
pub fn say_again(language: &str) -> &'static str {
    match language {
        "hi" => "माफ़ कीजिए, आपकी बात ठीक से सुनाई नहीं दी। कृपया फिर से कहिए।",
        "mr" => "माफ करा, तुमचे बोलणे नीट ऐकू आले नाही. कृपया पुन्हा सांगा.",
        "bn" => "দুঃখিত, আপনার কথা ঠিক শুনতে পাইনি। আবার বলবেন?",
        "ta" => "மன்னிக்கவும், நீங்கள் சொன்னது சரியாகக் கேட்கவில்லை. மீண்டும் சொல்லுங்கள்.",
        "te" => "క్షమించండి, మీరు చెప్పింది సరిగ్గా వినబడలేదు. దయచేసి మళ్ళీ చెప్పండి.",
        "kn" => "ಕ್ಷಮಿಸಿ, ನೀವು ಹೇಳಿದ್ದು ಸರಿಯಾಗಿ ಕೇಳಿಸಲಿಲ್ಲ. ದಯವಿಟ್ಟು ಮತ್ತೆ ಹೇಳಿ.",
        "ml" => "ക്ഷമിക്കണം, നിങ്ങൾ പറഞ്ഞത് ശരിയായി കേട്ടില്ല. ദയവായി വീണ്ടും പറയൂ.",
        "gu" => "માફ કરશો, તમે જે કહ્યું તે બરાબર સંભળાયું નહીં. કૃપા કરીને ફરીથી કહો.",
        "pa" => "ਮਾਫ਼ ਕਰਨਾ, ਤੁਹਾਡੀ ਗੱਲ ਠੀਕ ਤਰ੍ਹਾਂ ਸੁਣਾਈ ਨਹੀਂ ਦਿੱਤੀ। ਕਿਰਪਾ ਕਰਕੇ ਦੁਬਾਰਾ ਕਹੋ।",
        "ur" => "معاف کیجیے، آپ کی بات ٹھیک سے سنائی نہیں دی۔ براہ کرم دوبارہ کہیے۔",
        "or" => "କ୍ଷମା କରନ୍ତୁ, ଆପଣଙ୍କ କଥା ଠିକ୍ ଶୁଣିପାରିଲି ନାହିଁ। ଦୟାକରି ପୁଣି କୁହନ୍ତୁ।",
        _ => "Sorry, I didn't catch that. Could you say it again?",
    }
}

/// What vaak says when the model twice failed to answer in `language`'s script: "sorry, I
/// cannot answer that right now, please ask again".
pub fn cannot_answer(language: &str) -> &'static str {
    match language {
        "hi" => "माफ़ कीजिए, अभी इसका जवाब नहीं दे पा रहे हैं। कृपया फिर से पूछिए।",
        "mr" => "माफ करा, याचे उत्तर आत्ता देता येत नाही. कृपया पुन्हा विचारा.",
        "bn" => "দুঃখিত, এখন এর উত্তর দিতে পারছি না। আবার জিজ্ঞেস করুন।",
        "ta" => "மன்னிக்கவும், இப்போது இதற்குப் பதில் சொல்ல முடியவில்லை. மீண்டும் கேளுங்கள்.",
        "te" => "క్షమించండి, ఇప్పుడు దీనికి సమాధానం చెప్పలేను. దయచేసి మళ్ళీ అడగండి.",
        "kn" => "ಕ್ಷಮಿಸಿ, ಈಗ ಇದಕ್ಕೆ ಉತ್ತರ ಕೊಡಲು ಆಗುತ್ತಿಲ್ಲ. ದಯವಿಟ್ಟು ಮತ್ತೆ ಕೇಳಿ.",
        "ml" => "ക്ഷമിക്കണം, ഇപ്പോൾ ഇതിന് ഉത്തരം നൽകാൻ കഴിയുന്നില്ല. ദയവായി വീണ്ടും ചോദിക്കൂ.",
        "gu" => "માફ કરશો, અત્યારે આનો જવાબ આપી શકાતો નથી. કૃપા કરીને ફરીથી પૂછો.",
        "pa" => "ਮਾਫ਼ ਕਰਨਾ, ਹੁਣੇ ਇਸ ਦਾ ਜਵਾਬ ਨਹੀਂ ਦੇ ਸਕਦੇ। ਕਿਰਪਾ ਕਰਕੇ ਦੁਬਾਰਾ ਪੁੱਛੋ।",
        "ur" => "معاف کیجیے، ابھی اس کا جواب نہیں دے سکتے۔ براہ کرم دوبارہ پوچھیے۔",
        "or" => "କ୍ଷମା କରନ୍ତୁ, ଏବେ ଏହାର ଉତ୍ତର ଦେଇପାରୁନାହିଁ। ଦୟାକରି ପୁଣି ପଚାରନ୍ତୁ।",
        _ => "Sorry, I can't answer that right now. Please ask me again.",
    }
}

/// What a phone caller refused for want of room hears before the line closes: "all our lines
/// are busy right now, please call again in a few minutes".
pub fn lines_busy(language: &str) -> &'static str {
    match language {
        "hi" => "अभी हमारी सभी लाइनें व्यस्त हैं। कृपया कुछ मिनट बाद फिर से कॉल करें।",
        "mr" => "सध्या आमच्या सर्व लाईन्स व्यस्त आहेत. कृपया काही मिनिटांनी पुन्हा कॉल करा.",
        "bn" => "এই মুহূর্তে আমাদের সব লাইন ব্যস্ত। অনুগ্রহ করে কয়েক মিনিট পরে আবার কল করুন।",
        "ta" => "இப்போது எங்கள் எல்லா இணைப்புகளும் பிஸியாக உள்ளன. சில நிமிடங்கள் கழித்து மீண்டும் அழைக்கவும்.",
        "te" => "ప్రస్తుతం మా లైన్లన్నీ బిజీగా ఉన్నాయి. దయచేసి కొన్ని నిమిషాల తర్వాత మళ్ళీ కాల్ చేయండి.",
        "kn" => "ಈಗ ನಮ್ಮ ಎಲ್ಲಾ ಲೈನ್ಗಳು ಕಾರ್ಯನಿರತವಾಗಿವೆ. ದಯವಿಟ್ಟು ಕೆಲವು ನಿಮಿಷಗಳ ನಂತರ ಮತ್ತೆ ಕರೆ ಮಾಡಿ.",
        "ml" => "ഇപ്പോൾ ഞങ്ങളുടെ എല്ലാ ലൈനുകളും തിരക്കിലാണ്. ദയവായി കുറച്ച് മിനിറ്റുകൾക്ക് ശേഷം വീണ്ടും വിളിക്കൂ.",
        "gu" => "અત્યારે અમારી બધી લાઇનો વ્યસ્ત છે. કૃપા કરીને થોડી મિનિટો પછી ફરીથી કૉલ કરો.",
        "pa" => "ਇਸ ਵੇਲੇ ਸਾਡੀਆਂ ਸਾਰੀਆਂ ਲਾਈਨਾਂ ਰੁੱਝੀਆਂ ਹੋਈਆਂ ਹਨ। ਕਿਰਪਾ ਕਰਕੇ ਕੁਝ ਮਿੰਟਾਂ ਬਾਅਦ ਦੁਬਾਰਾ ਕਾਲ ਕਰੋ।",
        "ur" => "اس وقت ہماری تمام لائنیں مصروف ہیں۔ براہ کرم چند منٹ بعد دوبارہ کال کریں۔",
        "or" => "ଏବେ ଆମର ସମସ୍ତ ଲାଇନ ବ୍ୟସ୍ତ ଅଛି। ଦୟାକରି କିଛି ମିନିଟ ପରେ ପୁଣି କଲ କରନ୍ତୁ।",
        _ => "All our lines are busy right now. Please call again in a few minutes.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::reply_guard::{clause_fits, unclear_transcript};

    #[test]
    fn fixed_sentences_are_in_their_language() {
        for lang in [
            "hi", "mr", "bn", "ta", "te", "kn", "ml", "gu", "pa", "ur", "or", "en",
        ] {
            for s in [say_again(lang), cannot_answer(lang), lines_busy(lang)] {
                assert!(clause_fits(s, lang, false), "{lang}: {s}");
                assert!(unclear_transcript(s, lang).is_none(), "{lang}: {s}");
            }
        }
        assert_eq!(say_again("xx"), say_again("en"));
        assert_eq!(lines_busy("xx"), lines_busy("en"));
    }
}
