//! Audio plumbing shared by every transport: sample conversion, resampling to the pipeline
//! rate, and WAV files. Everything after ingest works on mono `f32` at [`PIPELINE_RATE`].

pub mod g711;
pub mod opus;
pub mod pcm;
pub mod resample;
pub mod wav;

/// The one sample rate every stage after ingest sees (Whisper and Silero both want 16 kHz).
pub const PIPELINE_RATE: u32 = 16_000;

/// Root-mean-square level of a block of samples; 0.0 for an empty block.
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}
