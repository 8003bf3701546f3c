//! Streaming sample-rate conversion (FFT-based, band-limited) from any transport rate to the
//! pipeline rate and back. Chunks of any size go in; the output is delay-compensated so that
//! `n` input samples become `round(n * out / in)` output samples once [`StreamResampler::finish`]
//! has flushed the tail.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

/// Input frames per FFT block: ~21 ms at 48 kHz, small enough for realtime ingest.
const CHUNK_FRAMES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    #[error("unsupported sample rate conversion {from} Hz -> {to} Hz: {reason}")]
    Unsupported { from: u32, to: u32, reason: String },
    #[error("resampling failed: {0}")]
    Process(String),
}

/// A mono streaming resampler. Passes samples through untouched when the rates match.
pub struct StreamResampler {
    from: u32,
    to: u32,
    inner: Option<Fft<f32>>,
    pending: Vec<f32>,
    scratch: Vec<f32>,
    delay_left: usize,
    consumed: u64,
    produced: u64,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        if from == 0 || to == 0 {
            return Err(ResampleError::Unsupported {
                from,
                to,
                reason: "sample rate must be positive".into(),
            });
        }
        let inner = if from == to {
            None
        } else {
            let fft = Fft::<f32>::new(
                from as usize,
                to as usize,
                CHUNK_FRAMES,
                1,
                FixedSync::Input,
            )
            .map_err(|e| ResampleError::Unsupported {
                from,
                to,
                reason: e.to_string(),
            })?;
            Some(fft)
        };
        let delay_left = inner.as_ref().map_or(0, |r| r.output_delay());
        let scratch = vec![0.0; inner.as_ref().map_or(0, |r| r.output_frames_max())];
        Ok(Self {
            from,
            to,
            inner,
            pending: Vec::with_capacity(CHUNK_FRAMES),
            scratch,
            delay_left,
            consumed: 0,
            produced: 0,
        })
    }

    pub fn input_rate(&self) -> u32 {
        self.from
    }

    pub fn output_rate(&self) -> u32 {
        self.to
    }

    /// Feeds `input`, appending every output sample that is ready to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), ResampleError> {
        self.consumed += input.len() as u64;
        if self.inner.is_none() {
            out.extend_from_slice(input);
            self.produced += input.len() as u64;
            return Ok(());
        }
        self.pending.extend_from_slice(input);
        while self.pending.len() >= self.next_input_frames() {
            let need = self.next_input_frames();
            self.run_block(need, None, out)?;
            self.pending.drain(..need);
        }
        Ok(())
    }

    /// Flushes the resampler's tail so that the total output matches the total input.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        if self.inner.is_none() {
            return Ok(());
        }
        let expected =
            (self.consumed as f64 * f64::from(self.to) / f64::from(self.from)).round() as u64;
        // Feed the partial block, then silence until the delayed samples have come out.
        let mut guard = 0;
        while self.produced < expected && guard < 64 {
            let partial = self.pending.len();
            let need = self.next_input_frames();
            self.pending.resize(need, 0.0);
            self.run_block(need, Some(partial), out)?;
            self.pending.clear();
            guard += 1;
        }
        if self.produced > expected {
            let extra = (self.produced - expected) as usize;
            out.truncate(out.len().saturating_sub(extra));
            self.produced = expected;
        }
        Ok(())
    }

    fn next_input_frames(&self) -> usize {
        self.inner.as_ref().map_or(1, |r| r.input_frames_next())
    }

    fn run_block(
        &mut self,
        frames: usize,
        partial: Option<usize>,
        out: &mut Vec<f32>,
    ) -> Result<(), ResampleError> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let capacity = self.scratch.len();
        let input = InterleavedSlice::new(&self.pending[..frames], 1, frames)
            .map_err(|e| ResampleError::Process(e.to_string()))?;
        let mut output = InterleavedSlice::new_mut(&mut self.scratch, 1, capacity)
            .map_err(|e| ResampleError::Process(e.to_string()))?;
        let indexing = Indexing {
            partial_len: partial,
            ..Indexing::default()
        };
        let (_, written) = inner
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| ResampleError::Process(e.to_string()))?;
        let skip = self.delay_left.min(written);
        self.delay_left -= skip;
        out.extend_from_slice(&self.scratch[skip..written]);
        self.produced += (written - skip) as u64;
        Ok(())
    }
}

/// Audio → one fixed rate, whatever rate each chunk comes at (voices differ: Kokoro 24 kHz,
/// Piper 22.05 kHz; a reopened microphone may too): the resampler is rebuilt when the source
/// rate changes. The one rate converter of reply audio (gRPC, WebRTC, converse, the kiosk's
/// speaker) and of the kiosk's microphone.
pub struct ToRate {
    to: u32,
    current: Option<(u32, StreamResampler)>,
}

impl ToRate {
    pub fn new(to: u32) -> Self {
        Self { to, current: None }
    }

    pub fn rate(&self) -> u32 {
        self.to
    }

    /// Appends `samples` (at `rate`) converted to the target rate to `out`.
    pub fn push(
        &mut self,
        samples: &[f32],
        rate: u32,
        out: &mut Vec<f32>,
    ) -> Result<(), ResampleError> {
        if rate == self.to {
            out.extend_from_slice(samples);
            return Ok(());
        }
        if self.current.as_ref().map(|(r, _)| *r) != Some(rate) {
            self.current = Some((rate, StreamResampler::new(rate, self.to)?));
        }
        match &mut self.current {
            Some((_, r)) => r.push(samples, out),
            None => Ok(()),
        }
    }

    /// `samples` (at `rate`) at the target rate, in a new buffer.
    pub fn convert(&mut self, samples: &[f32], rate: u32) -> Result<Vec<f32>, ResampleError> {
        let ratio = f64::from(self.to) / f64::from(rate.max(1));
        let mut out = Vec::with_capacity((samples.len() as f64 * ratio) as usize + 16);
        self.push(samples, rate, &mut out)?;
        Ok(out)
    }

    /// End of a reply: what the resampler still holds goes to `out`.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        match self.current.take() {
            Some((_, mut r)) => r.finish(out),
            None => Ok(()),
        }
    }

    /// A reply was cut off: forget what the resampler holds.
    pub fn reset(&mut self) {
        self.current = None;
    }
}

/// Resamples a whole clip in one call (tests, benchmarks and short buffers).
pub fn resample_all(input: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ResampleError> {
    let mut r = StreamResampler::new(from, to)?;
    let mut out = Vec::with_capacity(
        (input.len() as u64 * u64::from(to) / u64::from(from.max(1))) as usize + 16,
    );
    r.push(input, &mut out)?;
    r.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sine(freq: f32, rate: u32, secs: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    /// Estimates the dominant frequency by counting zero crossings.
    fn zero_crossing_freq(x: &[f32], rate: u32) -> f32 {
        let crossings = x
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        crossings as f32 / 2.0 / (x.len() as f32 / rate as f32)
    }

    #[test]
    fn downsampling_keeps_pitch_and_length() {
        for from in [8_000u32, 22_050, 24_000, 44_100, 48_000] {
            let x = sine(440.0, from, 1.0);
            let y = resample_all(&x, from, 16_000).unwrap();
            assert_eq!(y.len(), 16_000, "{from} Hz");
            let f = zero_crossing_freq(&y[1000..15_000], 16_000);
            assert!((f - 440.0).abs() < 5.0, "{from} Hz -> pitch {f}");
            let level = crate::audio::rms(&y[1000..15_000]);
            assert!((level - 0.3535).abs() < 0.02, "{from} Hz -> rms {level}");
        }
    }

    #[test]
    fn chunked_equals_whole() {
        let x = sine(300.0, 48_000, 0.7);
        let whole = resample_all(&x, 48_000, 16_000).unwrap();
        let mut r = StreamResampler::new(48_000, 16_000).unwrap();
        let mut out = Vec::new();
        for c in x.chunks(777) {
            r.push(c, &mut out).unwrap();
        }
        r.finish(&mut out).unwrap();
        assert_eq!(out.len(), whole.len());
        let max_diff = out
            .iter()
            .zip(&whole)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff < 1e-4, "max diff {max_diff}");
    }

    #[test]
    fn same_rate_is_identity() {
        let x = sine(100.0, 16_000, 0.1);
        assert_eq!(resample_all(&x, 16_000, 16_000).unwrap(), x);
    }

    #[test]
    fn zero_rate_is_an_error() {
        assert!(StreamResampler::new(0, 16_000).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn output_length_tracks_ratio(len in 0usize..5000, from in prop::sample::select(vec![8_000u32, 11_025, 16_000, 32_000, 44_100, 48_000])) {
            let x: Vec<f32> = (0..len).map(|i| ((i % 17) as f32 / 17.0) - 0.5).collect();
            let y = resample_all(&x, from, 16_000).unwrap();
            let expected = (len as f64 * 16_000.0 / f64::from(from)).round() as usize;
            prop_assert_eq!(y.len(), expected);
            prop_assert!(y.iter().all(|s| s.is_finite()));
        }
    }
}
