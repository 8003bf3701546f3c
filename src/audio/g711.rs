//! G.711 μ-law and A-law (ITU-T G.711), the 8 kHz codecs of telephony: gRPC clients may send
//! μ-law, and phone integrations speak nothing else. Encoders follow the reference algorithm
//! (segment search with bias 0x84 for μ-law, 0x55 inversion for A-law); decoders are the
//! standard's expansion, checked against its table values in the tests.

/// μ-law byte → linear 16-bit sample.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    // magnitude ≤ 32124, so it fits in i16 either way.
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Segment end points of the reference encoders (Sun's g711.c).
const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

fn search(value: i32, table: &[i32; 8]) -> usize {
    table.iter().position(|&end| value <= end).unwrap_or(8)
}

/// Linear 16-bit sample → μ-law byte (the reference algorithm on the 14-bit sample).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84 >> 2;
    const CLIP: i32 = 8159;
    let mut pcm = i32::from(sample) >> 2;
    let mask: u8 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    let pcm = pcm.min(CLIP) + BIAS;
    let seg = search(pcm, &SEG_UEND);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let uval = ((seg as i32) << 4) | ((pcm >> (seg + 1)) & 0x0F);
    (uval as u8) ^ mask
}

/// A-law byte → linear 16-bit sample.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let sign = a & 0x80;
    let exponent = i32::from((a >> 4) & 0x07);
    let mantissa = i32::from(a & 0x0F);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    // magnitude ≤ 32256.
    if sign != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// Linear 16-bit sample → A-law byte (the reference algorithm on the 13-bit sample).
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask: u8 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = search(pcm, &SEG_AEND);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mut aval = (seg as i32) << 4;
    aval |= if seg < 2 {
        (pcm >> 1) & 0x0F
    } else {
        (pcm >> seg) & 0x0F
    };
    (aval as u8) ^ mask
}

/// Decodes μ-law bytes to samples in [-1, 1].
pub fn decode_ulaw(bytes: &[u8]) -> Vec<f32> {
    bytes
        .iter()
        .map(|&b| super::pcm::i16_to_f32(ulaw_to_linear(b)))
        .collect()
}

/// Encodes samples in [-1, 1] to μ-law bytes.
pub fn encode_ulaw(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .map(|&s| linear_to_ulaw(super::pcm::f32_to_i16(s)))
        .collect()
}

/// Decodes A-law bytes to samples in [-1, 1].
pub fn decode_alaw(bytes: &[u8]) -> Vec<f32> {
    bytes
        .iter()
        .map(|&b| super::pcm::i16_to_f32(alaw_to_linear(b)))
        .collect()
}

/// Encodes samples in [-1, 1] to A-law bytes.
pub fn encode_alaw(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .map(|&s| linear_to_alaw(super::pcm::f32_to_i16(s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ulaw_matches_the_standard_table() {
        // Values from ITU-T G.711 Table 2a / the reference decoder (Sun's g711.c, and what
        // Python's audioop.ulaw2lin gives).
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0xF0), 120);
        assert_eq!(ulaw_to_linear(0x70), -120);
        assert_eq!(ulaw_to_linear(0xEF), 132);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7E);
        assert_eq!(linear_to_ulaw(32767), 0x80);
        assert_eq!(linear_to_ulaw(-32768), 0x00);
    }

    #[test]
    fn alaw_matches_the_standard_table() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(32767), 0xAA);
        assert_eq!(linear_to_alaw(-32768), 0x2A);
    }

    /// sha256 of the reference codecs' output over every input, from Python's `audioop`
    /// (`lin2ulaw`/`lin2alaw` of all i16 little-endian −32768..=32767, `ulaw2lin`/`alaw2lin` of
    /// bytes 0..=255).
    #[test]
    fn every_sample_and_code_matches_the_reference() {
        use sha2::{Digest, Sha256};
        let hash = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
        let all = i16::MIN..=i16::MAX;
        let mu: Vec<u8> = all.clone().map(linear_to_ulaw).collect();
        let a: Vec<u8> = all.map(linear_to_alaw).collect();
        assert_eq!(
            hash(&mu),
            "81d633c9e6972a18c74a58720b96cb8ca0bdd096d4060b646dd708c3b846019a"
        );
        assert_eq!(
            hash(&a),
            "38488f6fd710f4686360edc4d38639f96c491595ef93f8eb8d62d5e07ca6ce7b"
        );
        let dmu: Vec<u8> = (0..=255u8)
            .flat_map(|b| ulaw_to_linear(b).to_le_bytes())
            .collect();
        let da: Vec<u8> = (0..=255u8)
            .flat_map(|b| alaw_to_linear(b).to_le_bytes())
            .collect();
        assert_eq!(
            hash(&dmu),
            "3dab54339e520bb2c924826e3b72a917a2b612e9fd12fc867500f1d983a75827"
        );
        assert_eq!(
            hash(&da),
            "e04788d110e58ff8c70c93b8480190d973e3b67876b6119abbaec766cc75c174"
        );
    }

    #[test]
    fn every_code_round_trips() {
        for b in 0..=255u8 {
            let u = linear_to_ulaw(ulaw_to_linear(b));
            // 0x7F and 0xFF both mean zero.
            assert!(
                u == b || ulaw_to_linear(u) == ulaw_to_linear(b),
                "mu {b:#x}"
            );
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "A {b:#x}");
        }
    }

    proptest! {
        #[test]
        fn quantisation_error_is_within_the_segment_step(s in any::<i16>()) {
            let mu = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            let x = i32::from(s);
            // Step size doubles per segment: error ≤ half a step ≤ 1/32 of the magnitude + 16.
            let bound = x.abs() / 16 + 36;
            prop_assert!((mu - x).abs() <= bound, "mu {} -> {}", x, mu);
            prop_assert!((a - x).abs() <= bound, "A {} -> {}", x, a);
        }

        #[test]
        fn buffers_round_trip_to_a_fixed_point(x in proptest::collection::vec(-1.0f32..1.0, 0..400)) {
            // A phone line applied twice is the line applied once, for both laws.
            let u = encode_ulaw(&x);
            prop_assert_eq!(decode_ulaw(&u).len(), x.len());
            prop_assert_eq!(encode_ulaw(&decode_ulaw(&u)), u.clone());
            let a = encode_alaw(&x);
            prop_assert_eq!(encode_alaw(&decode_alaw(&a)), a);
        }

        #[test]
        fn codecs_preserve_sign_and_order(a in any::<i16>(), b in any::<i16>()) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(ulaw_to_linear(linear_to_ulaw(lo)) <= ulaw_to_linear(linear_to_ulaw(hi)));
            prop_assert!(alaw_to_linear(linear_to_alaw(lo)) <= alaw_to_linear(linear_to_alaw(hi)));
        }
    }
}
