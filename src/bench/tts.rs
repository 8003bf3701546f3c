//! `vaak bench tts`: how long each configured voice takes to say phrases of growing length, so
//! the first-clause length and the ONNX thread count can be chosen by measurement. Prints, per
//! language and phrase, the audio length and the synthesis time p50/p95 over repeats.

use std::time::Instant;

use crate::backend::tts::Voices;
use crate::metrics::summarize;

/// Phrases from a greeting to a long sentence, per language that has them.
fn phrases(language: &str) -> &'static [&'static str] {
    match language {
        "hi" => &[
            "जी हाँ,",
            "नमस्ते, बताइए।",
            "भारत की राजधानी नई दिल्ली है।",
            "भारत की राजधानी नई दिल्ली है, जो यमुना नदी के किनारे बसी है।",
            "भारत की राजधानी नई दिल्ली है, जो यमुना नदी के किनारे बसी है और जहाँ संसद, \
             राष्ट्रपति भवन और इंडिया गेट जैसे प्रसिद्ध स्थान हैं।",
        ],
        "te" => &[
            "అవును,",
            "నమస్కారం, చెప్పండి.",
            "భారతదేశ రాజధాని న్యూఢిల్లీ.",
            "భారతదేశ రాజధాని న్యూఢిల్లీ, ఇది యమునా నది ఒడ్డున ఉంది.",
        ],
        _ => &[
            "Yes,",
            "Hello, go ahead.",
            "The capital of India is New Delhi.",
            "The capital of India is New Delhi, which lies on the banks of the Yamuna river.",
            "The capital of India is New Delhi, which lies on the banks of the Yamuna river and \
             is home to Parliament, the President's house and India Gate.",
        ],
    }
}

/// One phrase's measurements.
#[derive(Debug, Clone)]
pub struct TtsRow {
    pub language: String,
    pub voice: String,
    pub chars: usize,
    pub audio_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

/// Says every phrase of every language `repeats` times (after one unmeasured warm-up).
/// Blocking: call it off the async runtime.
pub fn bench_tts(
    voices: &Voices,
    languages: &[String],
    repeats: usize,
) -> Result<Vec<TtsRow>, String> {
    let mut rows = Vec::new();
    for language in languages {
        let voice = voices.for_language(language).map_err(|e| e.to_string())?;
        let speed = voices.default_speed();
        for phrase in phrases(language) {
            let mut audio_s = 0.0;
            let mut times = Vec::with_capacity(repeats);
            voice.synthesize(phrase, speed).map_err(|e| e.to_string())?;
            for _ in 0..repeats.max(1) {
                let t = Instant::now();
                let audio = voice.synthesize(phrase, speed).map_err(|e| e.to_string())?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                audio_s = audio.len() as f64 / f64::from(voice.sample_rate());
            }
            let s = summarize(&times, times.len() as u64);
            rows.push(TtsRow {
                language: language.clone(),
                voice: voice.name().to_string(),
                chars: phrase.chars().count(),
                audio_s,
                p50_ms: s.p50_ms,
                p95_ms: s.p95_ms,
            });
        }
    }
    Ok(rows)
}

/// A table of the rows, with the real-time factor (synthesis time per second of audio).
pub fn render(rows: &[TtsRow], threads: usize) -> String {
    let mut out = format!(
        "TTS, {threads} ONNX thread(s)\n\
         | language | voice | chars | audio s | synth ms p50 / p95 | RTF |\n|---|---|---|---|---|---|\n"
    );
    for r in rows {
        let rtf = r.p50_ms / 1000.0 / r.audio_s.max(1e-3);
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.0} / {:.0} | {:.2} |\n",
            r.language, r.voice, r.chars, r.audio_s, r.p50_ms, r.p95_ms, rtf
        ));
    }
    out
}
