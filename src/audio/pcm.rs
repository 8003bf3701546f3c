//! PCM sample-format conversions: integer PCM ↔ `f32`, and channel down-mixing.

/// Converts a signed 16-bit sample to `f32` in [-1, 1).
pub fn i16_to_f32(s: i16) -> f32 {
    f32::from(s) / 32_768.0
}

/// Converts an `f32` sample to signed 16-bit, clamping out-of-range values (and NaN to 0).
pub fn f32_to_i16(s: f32) -> i16 {
    if s.is_nan() {
        return 0;
    }
    let scaled = (s * 32_768.0).round();
    scaled.clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

/// Converts a signed integer sample of `bits` width (8..=32) to `f32` in [-1, 1).
pub fn int_to_f32(s: i32, bits: u16) -> f32 {
    let full_scale = (1u64 << (bits.clamp(8, 32) - 1)) as f64;
    (f64::from(s) / full_scale) as f32
}

/// Averages interleaved frames of `channels` samples into mono. A trailing partial frame is
/// dropped. `channels == 1` returns the input unchanged.
pub fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return interleaved.to_vec();
    }
    interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn extremes_map_to_unit_range() {
        assert_eq!(i16_to_f32(i16::MIN), -1.0);
        assert!(i16_to_f32(i16::MAX) < 1.0);
        assert_eq!(f32_to_i16(1.5), i16::MAX);
        assert_eq!(f32_to_i16(-1.5), i16::MIN);
        assert_eq!(f32_to_i16(f32::NAN), 0);
        assert_eq!(int_to_f32(-(1 << 23), 24), -1.0);
    }

    #[test]
    fn downmix_averages_channels() {
        assert_eq!(downmix(&[1.0, 0.0, 0.5, 0.5, 9.0], 2), vec![0.5, 0.5]);
        assert_eq!(downmix(&[0.25, 0.5], 1), vec![0.25, 0.5]);
    }

    proptest! {
        #[test]
        fn i16_round_trips_exactly(s in any::<i16>()) {
            prop_assert_eq!(f32_to_i16(i16_to_f32(s)), s);
        }

        #[test]
        fn f32_to_i16_never_panics(s in any::<f32>()) {
            let _ = f32_to_i16(s);
        }

        #[test]
        fn downmix_length_is_frames(v in proptest::collection::vec(-1.0f32..1.0, 0..64), ch in 1usize..6) {
            prop_assert_eq!(downmix(&v, ch).len(), if ch == 1 { v.len() } else { v.len() / ch });
        }
    }
}
