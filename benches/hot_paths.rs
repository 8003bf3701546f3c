//! Micro-benchmarks of the per-chunk hot paths that run on the async runtime (no models):
//! resampling a 20 ms transport chunk, endpointing a 32 ms frame, clause splitting a streamed
//! token, redacting a transcript, normalising a reply clause for speech, splitting a mixed-script
//! clause into voice runs. Prints p50/p95 per operation (`cargo bench --bench hot_paths`).

use std::hint::black_box;
use std::time::Instant;

use vaak::audio::resample::StreamResampler;
use vaak::config::VadConfig;
use vaak::flow::endpoint::Endpointer;
use vaak::metrics::summarize;
use vaak::text::clauses::ClauseSplitter;
use vaak::text::codeswitch::script_runs;
use vaak::text::redact::redact;
use vaak::text::speech::normalize_for_speech;

fn measure(name: &str, iters: usize, mut f: impl FnMut(usize)) {
    for i in 0..iters / 10 {
        f(i);
    }
    let mut times = Vec::with_capacity(iters);
    for i in 0..iters {
        let t = Instant::now();
        f(i);
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let s = summarize(&times, iters as u64);
    // summarize() works in whatever unit it is given: microseconds here.
    println!(
        "{name:<44} p50 {:>8.2} µs   p95 {:>8.2} µs",
        s.p50_ms, s.p95_ms
    );
}

fn main() {
    let chunk: Vec<f32> = (0..960).map(|i| (i as f32 * 0.01).sin() * 0.3).collect();
    let mut r48 = StreamResampler::new(48_000, 16_000).expect("48k->16k");
    let mut out = Vec::with_capacity(1024);
    measure("resample 20 ms chunk 48 kHz -> 16 kHz", 20_000, |_| {
        out.clear();
        r48.push(black_box(&chunk), &mut out).expect("resample");
    });
    let c8: Vec<f32> = chunk[..160].to_vec();
    let mut r8 = StreamResampler::new(8_000, 16_000).expect("8k->16k");
    measure("resample 20 ms chunk 8 kHz -> 16 kHz", 20_000, |_| {
        out.clear();
        r8.push(black_box(&c8), &mut out).expect("resample");
    });

    let mut ep = Endpointer::new(VadConfig::default(), 512);
    let frame = vec![0.1f32; 512];
    measure("endpointer, one 32 ms frame", 50_000, |i| {
        let p = if (i / 40) % 2 == 0 { 0.9 } else { 0.1 };
        black_box(ep.push(&frame, p));
    });

    let tokens: Vec<&str> =
        "नमस्ते, मैं आपकी क्या मदद कर सकता हूँ? आज मौसम अच्छा है। Let me check that, one moment."
            .split_inclusive(' ')
            .collect();
    let mut splitter = ClauseSplitter::new();
    measure("clause splitter, one streamed token", 50_000, |i| {
        black_box(splitter.push(tokens[i % tokens.len()]));
    });

    let text = "my number is +91 98765 43210 and PAN ABCDE1234F, call me after 5 pm";
    measure("redact a transcript line", 20_000, |_| {
        black_box(redact(black_box(text)));
    });

    let clause = "आपका बिल ₹1,299.50 है, 15/08/2024 तक 18% ब्याज के साथ भरें।";
    measure("normalise a Hindi clause for speech", 20_000, |_| {
        black_box(normalize_for_speech(black_box(clause), "hi"));
    });
    let clause = "Your OTP is 048213; ₹2,50,000 is due on 26/01/2025 at 10:45.";
    measure("normalise an English clause for speech", 20_000, |_| {
        black_box(normalize_for_speech(black_box(clause), "en"));
    });
    let mixed = "आपकी meeting कल 3 बजे है, please समय पर आइए।";
    measure("split a Hinglish clause into script runs", 50_000, |_| {
        black_box(script_runs(black_box(mixed), "hi"));
    });
}
