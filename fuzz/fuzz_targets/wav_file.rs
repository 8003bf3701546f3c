//! Any bytes as an uploaded WAV file: the reader opens it or says why not, and every chunk it
//! reads is mono audio in [-1, 1] that never adds up to more frames than the header announced.
//! It never panics and never allocates for a length the file does not hold.
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/audio/pcm.rs"]
mod pcm;
#[path = "../../src/audio/wav.rs"]
mod wav;

/// A frame count that can't be a short file's: the reader must not take the header's word.
const CHUNK_FRAMES: usize = 4_096;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("vaak-fuzz-wav-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("input.wav");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(mut source) = wav::WavSource::open(&path) else {
        return;
    };
    let declared = u64::from(source.info().frames);
    let mut frames = 0u64;
    while let Ok(Some(chunk)) = source.read_chunk(CHUNK_FRAMES) {
        assert!(chunk.len() <= CHUNK_FRAMES);
        assert!(chunk.iter().all(|s| s.is_finite() && (-1.0..=1.0).contains(s)));
        frames += chunk.len() as u64;
        assert!(frames <= declared, "read {frames} frames of {declared}");
    }
});
