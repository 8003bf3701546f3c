//! Mel filter bank, computed exactly as `librosa.filters.mel(sr, n_fft, n_mels)` does
//! (Slaney mel scale, Slaney area normalisation; float64 maths, stored as float32 the way
//! librosa stores it).
//!
//! Why it exists: whisper.cpp's ggml model file embeds the mel filters the model was trained
//! with (OpenAI's `mel_filters.npz` holds exactly these librosa values), and a CTranslate2
//! model does not carry them, so the converter in `ct2_ggml.rs` has to compute them itself,
//! bit for bit, without Python.

/// Hz → mel on the Slaney scale (linear below 1 kHz, logarithmic above), as librosa's
/// `hz_to_mel(htk=False)`.
fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

/// mel → Hz on the Slaney scale, as librosa's `mel_to_hz(htk=False)`.
fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// `np.linspace(start, stop, num)` with numpy's exact arithmetic (`i * step + start`, the
/// last sample forced to `stop`).
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// The mel filter bank as a row-major `n_mels × (n_fft / 2 + 1)` matrix of f32, identical to
/// `librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)` (fmin 0, fmax sr/2).
pub fn mel_filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let sr = f64::from(sample_rate);
    let n_bins = n_fft / 2 + 1;
    // np.fft.rfftfreq(n=n_fft, d=1/sr): k * (1 / (n * d)).
    let val = 1.0 / (n_fft as f64 * (1.0 / sr));
    let fft_freqs: Vec<f64> = (0..n_bins).map(|k| k as f64 * val).collect();
    let mels = linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2);
    let mel_f: Vec<f64> = mels.into_iter().map(mel_to_hz).collect();
    let fdiff: Vec<f64> = mel_f.windows(2).map(|w| w[1] - w[0]).collect();

    let mut out = Vec::with_capacity(n_mels * n_bins);
    for i in 0..n_mels {
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for &f in &fft_freqs {
            let lower = -(mel_f[i] - f) / fdiff[i];
            let upper = (mel_f[i + 2] - f) / fdiff[i + 1];
            // librosa stores the triangle in a float32 array, then scales it in float64
            // (`weights *= enorm`) and stores float32 again: round twice, as it does.
            // np.minimum / np.maximum keep the second operand on ties, so -0.0 survives
            // where it does in librosa (mel[0][0]).
            let m = if lower < upper { lower } else { upper };
            let w = (if 0.0 > m { 0.0 } else { m }) as f32;
            out.push((f64::from(w) * enorm) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// (mel row, fft bin, f32 bits) from librosa 0.11.0 / numpy 2.4.6:
    /// `librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)`.
    const LIBROSA_80: &[(usize, usize, u32)] = &[
        (0, 1, 0x3ccbaca4),
        (1, 1, 0x3b027873),
        (1, 2, 0x3cbb5d95),
        (26, 26, 0x3b597cf8),
        (44, 51, 0x3bf95242),
        (55, 75, 0x3b7dad73),
        (62, 101, 0x3ba8c8ed),
        (68, 125, 0x3b802788),
        (73, 149, 0x3ab87fde),
        (77, 173, 0x3a52eb9f),
        (79, 198, 0x3a6b476a),
        (79, 199, 0x39eb476a),
    ];

    fn sha256_f32(v: &[f32]) -> String {
        let mut h = Sha256::new();
        for x in v {
            h.update(x.to_le_bytes());
        }
        hex::encode(h.finalize())
    }

    #[test]
    fn matches_librosa_values() {
        let m = mel_filters(16000, 400, 80);
        assert_eq!(m.len(), 80 * 201);
        for &(i, j, bits) in LIBROSA_80 {
            assert_eq!(m[i * 201 + j].to_bits(), bits, "mel[{i}][{j}]");
        }
        assert_eq!(m[2], 0.0);
        assert_eq!(
            m[0].to_bits(),
            (-0.0f32).to_bits(),
            "librosa has -0.0 at [0][0]"
        );
        assert_eq!(m.iter().filter(|x| **x > 0.0).count(), 391);
    }

    #[test]
    fn whole_matrix_matches_librosa_bit_for_bit() {
        // sha256 of librosa's float32 matrix as little-endian bytes.
        assert_eq!(
            sha256_f32(&mel_filters(16000, 400, 80)),
            "4f2701b1d287d74a0dc9871026e9519d98cb76426615f2539b0d151a0ae4ec2e"
        );
        let m128 = mel_filters(16000, 400, 128);
        assert_eq!(m128[1].to_bits(), 1011530819);
        assert_eq!(
            sha256_f32(&m128),
            "2a5f9822897750e047c85dea37cc268d3be0ecfd23c28a5f10da129d99d05afe"
        );
    }

    #[test]
    fn slaney_scale_round_trips() {
        for hz in [0.0, 100.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
        assert_eq!(linspace(0.0, 1.0, 3), vec![0.0, 0.5, 1.0]);
    }
}
