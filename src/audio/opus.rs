//! Opus for WebRTC calls (libopus, built from the `opus` crate's bundled source): 20 ms mono
//! frames. The encoder takes 48 kHz and is set for speech on a lossy path (VoIP mode, in-band
//! FEC, a planned loss rate); the decoder outputs any Opus rate directly (the pipeline's
//! 16 kHz: libopus's own resampling is far cheaper than a separate FFT resampler) and turns a
//! lost packet into audio: the next packet's FEC copy when it has one, else packet-loss
//! concealment, so the VAD never hears a hole where the network dropped speech.

use opus::{Application, Bitrate, Channels};

/// Opus's clock and the rate of every frame here.
pub const OPUS_RATE: u32 = 48_000;
/// Samples in one 20 ms frame at [`OPUS_RATE`].
pub const FRAME_SAMPLES: usize = 960;
/// The frame length in milliseconds.
pub const FRAME_MS: u64 = 20;
/// Largest encoded frame (RFC 6716 allows 1275 bytes per frame).
const MAX_PACKET: usize = 1_500;
/// Longest packet decoded (120 ms at 48 kHz).
const MAX_DECODED: usize = 5_760;

#[derive(Debug, thiserror::Error)]
pub enum OpusError {
    #[error("opus encoder setup: {0}")]
    Setup(String),
    #[error("opus encode: {0}")]
    Encode(String),
    #[error("corrupt opus packet: {0}")]
    Decode(String),
}

/// Reply audio → Opus packets.
pub struct OpusEncoder {
    inner: opus::Encoder,
}

impl OpusEncoder {
    /// `complexity` 0..=10, `bitrate` in bits/s, `loss_perc` the loss FEC is planned for.
    pub fn new(complexity: i32, bitrate: i32, loss_perc: i32) -> Result<Self, OpusError> {
        let setup = |e: opus::Error| OpusError::Setup(e.to_string());
        let mut inner =
            opus::Encoder::new(OPUS_RATE, Channels::Mono, Application::Voip).map_err(setup)?;
        inner.set_complexity(complexity).map_err(setup)?;
        inner.set_bitrate(Bitrate::Bits(bitrate)).map_err(setup)?;
        inner.set_inband_fec(true).map_err(setup)?;
        inner.set_packet_loss_perc(loss_perc).map_err(setup)?;
        Ok(Self { inner })
    }

    /// One 20 ms frame ([`FRAME_SAMPLES`] samples) → one packet.
    pub fn encode(&mut self, frame: &[f32]) -> Result<Vec<u8>, OpusError> {
        if frame.len() != FRAME_SAMPLES {
            return Err(OpusError::Encode(format!(
                "a frame holds {FRAME_SAMPLES} samples, not {}",
                frame.len()
            )));
        }
        self.inner
            .encode_vec_float(frame, MAX_PACKET)
            .map_err(|e| OpusError::Encode(e.to_string()))
    }

    pub fn complexity(&mut self) -> Option<i32> {
        self.inner.get_complexity().ok()
    }

    pub fn inband_fec(&mut self) -> Option<bool> {
        self.inner.get_inband_fec().ok()
    }
}

/// Opus packets → mono samples at the decoder's rate, with loss recovery.
pub struct OpusDecoder {
    inner: opus::Decoder,
    buf: Vec<f32>,
    /// Samples in 20 ms at the output rate.
    frame: usize,
}

impl OpusDecoder {
    /// `rate`: 8000, 12000, 16000, 24000 or 48000.
    pub fn new(rate: u32) -> Result<Self, OpusError> {
        Ok(Self {
            inner: opus::Decoder::new(rate, Channels::Mono)
                .map_err(|e| OpusError::Setup(e.to_string()))?,
            buf: vec![0.0; MAX_DECODED],
            frame: (rate / 50) as usize,
        })
    }

    /// Decodes one received packet.
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[f32], OpusError> {
        if packet.is_empty() {
            return Err(OpusError::Decode("empty packet".into()));
        }
        let n = self
            .inner
            .decode_float(packet, &mut self.buf, false)
            .map_err(|e| OpusError::Decode(e.to_string()))?;
        Ok(&self.buf[..n])
    }

    /// Audio for the frame lost just before `next`: its in-band FEC copy when `next` carries
    /// one, else concealment. Always one 20 ms frame.
    pub fn recover(&mut self, next: Option<&[u8]>) -> &[f32] {
        let frame = self.frame;
        let out = &mut self.buf[..frame];
        let n = match next {
            Some(p) if !p.is_empty() => self.inner.decode_float(p, out, true),
            // An empty packet asks libopus for concealment.
            _ => self.inner.decode_float(&[], out, false),
        };
        match n {
            Ok(n) => &self.buf[..n],
            Err(_) => {
                // A frame the decoder cannot even conceal becomes silence of the same length.
                self.buf[..frame].fill(0.0);
                &self.buf[..frame]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frames: usize) -> Vec<f32> {
        (0..frames * FRAME_SAMPLES)
            .map(|i| (i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 48_000.0).sin() * 0.3)
            .collect()
    }

    #[test]
    fn speech_settings_round_trip() {
        let mut enc = OpusEncoder::new(5, 32_000, 10).unwrap();
        assert_eq!(enc.complexity(), Some(5));
        assert_eq!(enc.inband_fec(), Some(true));
        let mut dec = OpusDecoder::new(OPUS_RATE).unwrap();
        let input = tone(25);
        let mut out = Vec::new();
        for f in input.chunks(FRAME_SAMPLES) {
            let p = enc.encode(f).unwrap();
            assert!(p.len() < 200, "{} bytes for 20 ms at 32 kb/s", p.len());
            out.extend_from_slice(dec.decode(&p).unwrap());
        }
        assert_eq!(out.len(), input.len());
        let level = crate::audio::rms(&out[FRAME_SAMPLES * 5..]);
        assert!((0.15..0.3).contains(&level), "decoded level {level}");
    }

    #[test]
    fn lost_frames_are_recovered_not_dropped() {
        let mut enc = OpusEncoder::new(5, 32_000, 20).unwrap();
        let mut dec = OpusDecoder::new(16_000).unwrap();
        let packets: Vec<Vec<u8>> = tone(30)
            .chunks(FRAME_SAMPLES)
            .map(|f| enc.encode(f).unwrap())
            .collect();
        let mut out = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            if i % 5 == 4 {
                continue; // lost
            }
            if i % 5 == 0 && i > 0 {
                // The frame before this one was lost: FEC from this packet.
                let fec = dec.recover(Some(p)).to_vec();
                assert_eq!(fec.len(), 320);
                assert!(crate::audio::rms(&fec) > 0.05, "FEC frame is audible");
                out.extend(fec);
            }
            out.extend_from_slice(dec.decode(p).unwrap());
        }
        // Concealment without any packet still gives a whole frame.
        assert_eq!(dec.recover(None).len(), 320);
        // 16 kHz straight from the decoder: 320 samples per 20 ms.
        assert_eq!(out.len(), (packets.len() - 1) * 320);
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut enc = OpusEncoder::new(5, 32_000, 10).unwrap();
        assert!(enc.encode(&[0.0; 100]).is_err());
        let mut dec = OpusDecoder::new(OPUS_RATE).unwrap();
        assert!(dec.decode(&[]).is_err());
        assert!(OpusDecoder::new(44_100).is_err());
        // TOC byte of a 2-frame code-3 packet with an impossible frame count.
        assert!(dec.decode(&[0x03, 0x00]).is_err());
    }
}
