//! Wire audio for every transport: a caller's audio (PCM16 at 8/16/24/48 kHz, or G.711 μ-law
//! at 8 kHz) decoded and resampled to the pipeline rate, and reply audio resampled and encoded
//! in the format the session asked for (gRPC's `AudioFormat`, a phone line's μ-law or slin).
//! Errors are [`CodecError`]: each transport says them its own way (a gRPC status, a close
//! frame).

use crate::audio::resample::{StreamResampler, ToRate};
use crate::audio::{g711, pcm, PIPELINE_RATE};
use crate::proto::{AudioEncoding, AudioFormat};

/// Sample rates accepted for PCM16.
pub const PCM_RATES: [u32; 4] = [8_000, 16_000, 24_000, 48_000];
/// At most this much audio per message.
pub const MAX_CHUNK_MS: u64 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The caller's format or audio is wrong (its to fix).
    #[error("{0}")]
    Invalid(String),
    /// The converter failed.
    #[error("{0}")]
    Internal(String),
}

impl CodecError {
    fn resampler(e: impl std::fmt::Display) -> Self {
        CodecError::Internal(format!("resampler: {e}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Pcm16,
    Mulaw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireFormat {
    pub encoding: Encoding,
    pub rate: u32,
}

impl WireFormat {
    /// Validates a format from the API; `None` means `default`.
    pub fn parse(f: Option<&AudioFormat>, default: WireFormat) -> Result<Self, CodecError> {
        let Some(f) = f else { return Ok(default) };
        let encoding = match AudioEncoding::try_from(f.encoding) {
            Ok(AudioEncoding::Pcm16) | Ok(AudioEncoding::Unspecified) => Encoding::Pcm16,
            Ok(AudioEncoding::Mulaw) => Encoding::Mulaw,
            Err(_) => {
                return Err(CodecError::Invalid(format!(
                    "unknown audio encoding {}; use PCM16 or MULAW",
                    f.encoding
                )))
            }
        };
        let rate = match (encoding, f.sample_rate) {
            (Encoding::Mulaw, 0 | 8_000) => 8_000,
            (Encoding::Mulaw, r) => {
                return Err(CodecError::Invalid(format!(
                    "MULAW audio must be 8000 Hz, not {r}"
                )))
            }
            (Encoding::Pcm16, 0) => default.rate,
            (Encoding::Pcm16, r) if PCM_RATES.contains(&r) => r,
            (Encoding::Pcm16, r) => {
                return Err(CodecError::Invalid(format!(
                    "unsupported sample rate {r} Hz; PCM16 takes 8000, 16000, 24000 or 48000"
                )))
            }
        };
        Ok(Self { encoding, rate })
    }

    pub fn bytes_per_sample(self) -> usize {
        match self.encoding {
            Encoding::Pcm16 => 2,
            Encoding::Mulaw => 1,
        }
    }

    pub fn to_proto(self) -> AudioFormat {
        AudioFormat {
            encoding: match self.encoding {
                Encoding::Pcm16 => AudioEncoding::Pcm16 as i32,
                Encoding::Mulaw => AudioEncoding::Mulaw as i32,
            },
            sample_rate: self.rate,
        }
    }
}

pub const DEFAULT_INPUT: WireFormat = WireFormat {
    encoding: Encoding::Pcm16,
    rate: PIPELINE_RATE,
};

/// Client audio → pipeline audio.
pub struct InputDecoder {
    format: WireFormat,
    resampler: Option<StreamResampler>,
}

impl InputDecoder {
    pub fn new(format: WireFormat) -> Result<Self, CodecError> {
        let resampler = if format.rate == PIPELINE_RATE {
            None
        } else {
            Some(StreamResampler::new(format.rate, PIPELINE_RATE).map_err(CodecError::resampler)?)
        };
        Ok(Self { format, resampler })
    }

    /// Decodes one chunk. Errors are the client's: odd PCM16 byte counts, over-long chunks.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Vec<f32>, CodecError> {
        let bps = self.format.bytes_per_sample();
        if bytes.len() % bps != 0 {
            return Err(CodecError::Invalid(format!(
                "audio chunk of {} bytes is not whole 16-bit samples",
                bytes.len()
            )));
        }
        let samples = (bytes.len() / bps) as u64;
        if samples * 1000 > MAX_CHUNK_MS * u64::from(self.format.rate) {
            return Err(CodecError::Invalid(format!(
                "audio chunk of {} ms is longer than {MAX_CHUNK_MS} ms; send 20-200 ms chunks",
                samples * 1000 / u64::from(self.format.rate)
            )));
        }
        let decoded: Vec<f32> = match self.format.encoding {
            Encoding::Pcm16 => bytes
                .chunks_exact(2)
                .map(|b| pcm::i16_to_f32(i16::from_le_bytes([b[0], b[1]])))
                .collect(),
            Encoding::Mulaw => g711::decode_ulaw(bytes),
        };
        match &mut self.resampler {
            None => Ok(decoded),
            Some(r) => {
                let mut out = Vec::with_capacity(
                    decoded.len() * PIPELINE_RATE as usize / self.format.rate as usize + 64,
                );
                r.push(&decoded, &mut out).map_err(CodecError::resampler)?;
                Ok(out)
            }
        }
    }
}

/// Reply audio (any voice's rate) → the session's output format, one turn at a time.
pub struct OutputEncoder {
    format: WireFormat,
    resampler: ToRate,
}

impl OutputEncoder {
    pub fn new(format: WireFormat) -> Self {
        Self {
            format,
            resampler: ToRate::new(format.rate),
        }
    }

    pub fn format(&self) -> WireFormat {
        self.format
    }

    /// Encodes a chunk at `rate`; returns the bytes and the number of samples they hold.
    pub fn encode(&mut self, samples: &[f32], rate: u32) -> Result<(Vec<u8>, usize), CodecError> {
        let mut out = Vec::new();
        self.resampler
            .push(samples, rate, &mut out)
            .map_err(CodecError::resampler)?;
        Ok((self.pack(&out), out.len()))
    }

    /// End of a turn's audio: what the resampler still holds (empty if none).
    pub fn flush(&mut self) -> Result<(Vec<u8>, usize), CodecError> {
        let mut out = Vec::new();
        self.resampler
            .finish(&mut out)
            .map_err(CodecError::resampler)?;
        Ok((self.pack(&out), out.len()))
    }

    /// A turn was cut off: forget what the resampler holds.
    pub fn reset(&mut self) {
        self.resampler.reset();
    }

    fn pack(&self, audio: &[f32]) -> Vec<u8> {
        match self.format.encoding {
            Encoding::Pcm16 => audio
                .iter()
                .flat_map(|&s| pcm::f32_to_i16(s).to_le_bytes())
                .collect(),
            Encoding::Mulaw => g711::encode_ulaw(audio),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_validated() {
        let f = |encoding: AudioEncoding, rate| AudioFormat {
            encoding: encoding as i32,
            sample_rate: rate,
        };
        assert_eq!(
            WireFormat::parse(None, DEFAULT_INPUT).unwrap(),
            DEFAULT_INPUT
        );
        let m = WireFormat::parse(Some(&f(AudioEncoding::Mulaw, 0)), DEFAULT_INPUT).unwrap();
        assert_eq!((m.encoding, m.rate), (Encoding::Mulaw, 8_000));
        for bad in [
            f(AudioEncoding::Mulaw, 16_000),
            f(AudioEncoding::Pcm16, 11_025),
            AudioFormat {
                encoding: 9,
                sample_rate: 16_000,
            },
        ] {
            let e = WireFormat::parse(Some(&bad), DEFAULT_INPUT).unwrap_err();
            assert!(matches!(e, CodecError::Invalid(_)), "{bad:?}");
        }
    }

    #[test]
    fn input_is_decoded_and_resampled() {
        let fmt = WireFormat {
            encoding: Encoding::Pcm16,
            rate: 48_000,
        };
        let mut d = InputDecoder::new(fmt).unwrap();
        let tone: Vec<u8> = (0..4_800)
            .flat_map(|i| (((i as f32 * 0.05).sin() * 8_000.0) as i16).to_le_bytes())
            .collect();
        let mut total = 0;
        for _ in 0..10 {
            total += d.decode(&tone).unwrap().len();
        }
        // 1 s at 48 kHz → about 1 s at 16 kHz (minus the resampler's latency).
        assert!((14_000..=16_000).contains(&total), "{total}");
        assert!(matches!(
            d.decode(&[1, 2, 3]).unwrap_err(),
            CodecError::Invalid(_)
        ));
        let too_long = vec![0u8; 2 * 48_000 * 2];
        assert!(matches!(
            d.decode(&too_long).unwrap_err(),
            CodecError::Invalid(_)
        ));
    }

    #[test]
    fn output_is_resampled_and_encoded() {
        let mut e = OutputEncoder::new(WireFormat {
            encoding: Encoding::Mulaw,
            rate: 8_000,
        });
        let audio = vec![0.25f32; 24_000];
        let (bytes, n) = e.encode(&audio, 24_000).unwrap();
        let (rest, m) = e.flush().unwrap();
        assert_eq!(bytes.len(), n);
        let total = n + m;
        assert!((7_800..=8_200).contains(&total), "{total}");
        assert_eq!(rest.len(), m);
    }
}
