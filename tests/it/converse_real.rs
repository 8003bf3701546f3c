//! `vaak converse` end to end on the real default models and the eval recordings: English,
//! Hindi and Telugu turns, resampled inputs, and a 10-minute file in bounded memory.

use std::path::Path;
use std::time::Duration;

use super::common::*;
use vaak::text::normalize::normalize_for_scoring;

fn turn0(report: &serde_json::Value) -> &serde_json::Value {
    let turns = report["turns"].as_array().expect("turns");
    assert!(!turns.is_empty(), "no turns in {report}");
    &turns[0]
}

fn assert_reply_audio(path: &Path) -> (Vec<i16>, u32) {
    let (samples, rate) = read_pcm16(path);
    let secs = samples.len() as f64 / f64::from(rate);
    assert!(secs > 0.5, "reply only {secs:.2} s");
    assert!(
        rms_i16(&samples) > 0.01,
        "reply is silent (rms {})",
        rms_i16(&samples)
    );
    (samples, rate)
}

#[test]
fn english_jfk_turn_end_to_end() {
    let eval = eval_dir();
    let dir = tempfile::tempdir().unwrap();
    let reply = dir.path().join("reply.wav");
    let r = converse_json(&eval.join("en/jfk.wav"), &reply, &[]);
    let t = turn0(&r);
    assert_eq!(t["language"], "en");
    let reference = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
    assert_eq!(
        normalize_for_scoring(t["transcript"].as_str().unwrap()),
        normalize_for_scoring(reference)
    );
    assert!(!t["reply_text"].as_str().unwrap().trim().is_empty());
    assert!(t["timings_s"]["end_to_first_audio"].as_f64().unwrap() > 0.0);
    assert_reply_audio(&reply);
    let back = transcribe(&reply, &[]);
    assert_eq!(back["language"], "en", "reply heard as {back}");
    assert!(
        back["text"]
            .as_str()
            .unwrap()
            .chars()
            .filter(|c| c.is_alphabetic())
            .count()
            > 3
    );
}

#[test]
fn hindi_turns_answer_in_hindi_with_kokoro() {
    let eval = eval_dir();
    for clip in ["hi/4734_088.wav", "hi/0215_025.wav"] {
        let dir = tempfile::tempdir().unwrap();
        let reply = dir.path().join("reply.wav");
        let r = converse_json(&eval.join(clip), &reply, &[]);
        let t = turn0(&r);
        assert_eq!(t["language"], "hi", "{clip}: {t}");
        let text = t["transcript"].as_str().unwrap();
        assert!(
            is_script(text, 0x0900, 0x097F),
            "{clip}: transcript not Devanagari: {text}"
        );
        assert!(
            t["voice"].as_str().unwrap().starts_with("kokoro:h"),
            "{clip}: voice {}",
            t["voice"]
        );
        assert_reply_audio(&reply);
        // The reply is Hindi speech: Whisper writes it back in Devanagari. (Its spoken-language
        // detection alone is not asked: on a reply that echoes a garbled transcript, Whisper
        // base has heard Kokoro's Hindi as Gujarati.)
        let back = transcribe(&reply, &["--language", "hi"]);
        let heard = back["text"].as_str().unwrap();
        assert!(
            is_script(heard, 0x0900, 0x097F)
                && heard.chars().filter(|c| c.is_alphabetic()).count() > 3,
            "{clip}: reply heard as {back}"
        );
    }
}

#[test]
fn telugu_turn_answers_with_the_telugu_voice() {
    let eval = eval_dir();
    let dir = tempfile::tempdir().unwrap();
    let reply = dir.path().join("reply.wav");
    let r = converse_json(&eval.join("te/common_voice_te_42974000.wav"), &reply, &[]);
    let t = turn0(&r);
    assert_eq!(t["language"], "te", "{t}");
    let text = t["transcript"].as_str().unwrap();
    assert!(
        is_script(text, 0x0C00, 0x0C7F),
        "transcript not in Telugu script: {text}"
    );
    assert!(
        t["voice"].as_str().unwrap().contains("te"),
        "voice {}",
        t["voice"]
    );
    assert_reply_audio(&reply);
}

#[test]
fn eight_khz_stereo_and_48_khz_inputs_are_resampled() {
    let eval = eval_dir();
    let (jfk, rate) = read_f32(&eval.join("en/jfk.wav"));
    assert_eq!(rate, 16_000);
    let dir = tempfile::tempdir().unwrap();
    for (name, to, ch, bits) in [
        ("8k-stereo.wav", 8_000u32, 2u16, 16u16),
        ("48k-float.wav", 48_000, 1, 32),
    ] {
        let x = vaak::audio::resample::resample_all(&jfk, 16_000, to).unwrap();
        let input = dir.path().join(name);
        write_wav(&input, &x, to, ch, bits);
        let reply = dir.path().join(format!("reply-{name}"));
        let r = converse_json(&input, &reply, &[]);
        let t = turn0(&r);
        assert_eq!(r["input"]["sample_rate"], to);
        assert_eq!(t["language"], "en", "{name}: {t}");
        let heard = normalize_for_scoring(t["transcript"].as_str().unwrap());
        assert!(
            heard.contains("what your country can do for you"),
            "{name}: {heard}"
        );
        assert_reply_audio(&reply);
    }
}

/// Peak resident memory (VmHWM, kB) of a child, polled until it exits.
fn run_and_peak_rss(args: &[&str]) -> (std::process::Output, u64) {
    let mut child = vaak()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(kb) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak = peak.max(kb);
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().unwrap(), peak)
}

#[test]
fn ten_minute_file_is_processed_in_bounded_memory() {
    let eval = eval_dir();
    let (jfk, _) = read_f32(&eval.join("en/jfk.wav"));
    let dir = tempfile::tempdir().unwrap();
    // 48 kHz stereo 16-bit: 10 minutes is 115 MB on disk; loading it whole as f32 would add
    // hundreds of MB. The speech comes first, then near-silence.
    let long = dir.path().join("ten-minutes.wav");
    {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 48_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let speech = vaak::audio::resample::resample_all(&jfk, 16_000, 48_000).unwrap();
        let mut w = hound::WavWriter::create(&long, spec).unwrap();
        let total = 48_000 * 600;
        let mut noise = 12345u32;
        for i in 0..total {
            let s = if i < speech.len() {
                (speech[i] * 32767.0) as i16
            } else {
                noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                ((noise >> 16) % 21) as i16 - 10
            };
            w.write_sample(s).unwrap();
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }
    // Greedy decoding: both runs get the same reply, so the same TTS work.
    let greedy = dir.path().join("greedy.toml");
    std::fs::write(&greedy, "[llm]\ntemperature = 0.0\n").unwrap();
    let greedy = greedy.to_str().unwrap();
    let reply_short = dir.path().join("short.wav");
    let (o_short, peak_short) = run_and_peak_rss(&[
        "--config",
        greedy,
        "converse",
        eval.join("en/jfk.wav").to_str().unwrap(),
        "--out",
        reply_short.to_str().unwrap(),
        "--json",
    ]);
    assert!(o_short.status.success(), "{}", stderr(&o_short));
    let reply_long = dir.path().join("long.wav");
    let (o_long, peak_long) = run_and_peak_rss(&[
        "--config",
        greedy,
        "converse",
        long.to_str().unwrap(),
        "--out",
        reply_long.to_str().unwrap(),
        "--json",
    ]);
    assert!(o_long.status.success(), "{}", stderr(&o_long));
    let r: serde_json::Value = serde_json::from_slice(&o_long.stdout).unwrap();
    assert!((r["input"]["duration_s"].as_f64().unwrap() - 600.0).abs() < 0.1);
    assert_eq!(turn0(&r)["language"], "en");
    eprintln!("peak RSS: 11 s clip {peak_short} kB, 10 min file {peak_long} kB");
    assert!(
        peak_long < peak_short + 100 * 1024,
        "memory grew with input length: {peak_short} kB -> {peak_long} kB"
    );
}
