//! The weight types vaak writes into whisper.cpp ggml files, and ggml's Q8_0 and Q4_0
//! quantizations.
//! Whisper's decoder is bound by memory bandwidth on a small CPU (every token reads all the
//! weights, the 51,865 × 512 token embedding included): Q8_0 halves those bytes, and whisper.cpp
//! multiplies Q8_0 with integer SIMD, so passes run about 1.6× faster at the same accuracy
//! (measured in the README's recognition section). Q4_0 halves the bytes again and runs 1.45×
//! faster than Q8_0, but costs Hindi 21 points of CER: offered, not the default.

use half::f16;
use serde::Deserialize;

/// ggml's quantization version (`GGML_QNT_VERSION`), stored in the file's `ftype` as
/// `version * 1000 + ftype`.
const GGML_QNT_VERSION: i32 = 2;
const GGML_QNT_VERSION_FACTOR: i32 = 1000;
/// Values per Q8_0 block (`QK8_0`): one f16 scale, then 32 signed bytes.
pub const Q8_0_BLOCK: usize = 32;
const Q8_0_BLOCK_BYTES: usize = 2 + Q8_0_BLOCK;
/// Values per Q4_0 block (`QK4_0`): one f16 scale, then 32 four-bit values in 16 bytes.
pub const Q4_0_BLOCK: usize = 32;
const Q4_0_BLOCK_BYTES: usize = 2 + Q4_0_BLOCK / 2;

/// How the large weight matrices are stored (conv kernels stay f16, vectors f32, as whisper.cpp
/// expects for every type).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightType {
    /// 16-bit floats, what OpenAI's own conversion writes.
    #[default]
    F16,
    /// ggml Q8_0: blocks of 32 bytes sharing one f16 scale.
    Q8_0,
    /// ggml Q4_0: blocks of 32 four-bit values sharing one f16 scale.
    Q4_0,
}

impl WeightType {
    /// The hparams `ftype` field whisper.cpp reads the matrices' type from.
    pub fn file_ftype(self) -> i32 {
        match self {
            Self::F16 => 1,
            // GGML_FTYPE_MOSTLY_Q8_0
            Self::Q8_0 => GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR + 7,
            // GGML_FTYPE_MOSTLY_Q4_0
            Self::Q4_0 => GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR + 2,
        }
    }

    /// How matrices of this type are quantized (`None` for f16, which is copied).
    pub fn quantizer(self) -> Option<Quantizer> {
        match self {
            Self::F16 => None,
            Self::Q8_0 => Some(Quantizer {
                ttype: GGML_TYPE_Q8_0,
                block: Q8_0_BLOCK,
                quantize: quantize_q8_0,
            }),
            Self::Q4_0 => Some(Quantizer {
                ttype: GGML_TYPE_Q4_0,
                block: Q4_0_BLOCK,
                quantize: quantize_q4_0,
            }),
        }
    }
}

/// A quantized `ggml_type`: its id, values per block, and the function that writes the blocks.
#[derive(Clone, Copy, Debug)]
pub struct Quantizer {
    pub ttype: i32,
    pub block: usize,
    pub quantize: fn(&[f32]) -> Vec<u8>,
}

impl std::str::FromStr for WeightType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f16" => Ok(Self::F16),
            "q8_0" => Ok(Self::Q8_0),
            "q4_0" => Ok(Self::Q4_0),
            other => Err(format!("unknown weight type {other:?} (f16, q8_0 or q4_0)")),
        }
    }
}

/// `ggml_type` ids of the tensor types a whisper ggml file may hold.
pub const GGML_TYPE_F32: i32 = 0;
pub const GGML_TYPE_F16: i32 = 1;
pub const GGML_TYPE_Q4_0: i32 = 2;
pub const GGML_TYPE_Q8_0: i32 = 8;

/// Bytes of `elements` values stored as ggml type `ttype` (None: a type vaak does not read).
pub fn tensor_bytes(ttype: i32, elements: usize) -> Option<usize> {
    match ttype {
        GGML_TYPE_F32 => Some(elements * 4),
        GGML_TYPE_F16 => Some(elements * 2),
        GGML_TYPE_Q8_0 if elements % Q8_0_BLOCK == 0 => {
            Some(elements / Q8_0_BLOCK * Q8_0_BLOCK_BYTES)
        }
        GGML_TYPE_Q4_0 if elements % Q4_0_BLOCK == 0 => {
            Some(elements / Q4_0_BLOCK * Q4_0_BLOCK_BYTES)
        }
        _ => None,
    }
}

/// Quantizes rows of `values` (a whole number of blocks) as ggml's reference
/// `quantize_row_q8_0` does: scale = max |x| / 127, each value rounded to the nearest step.
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / Q8_0_BLOCK * Q8_0_BLOCK_BYTES);
    for block in values.chunks(Q8_0_BLOCK) {
        let amax = block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        // `round` rounds half away from zero, like C's roundf; |x·id| ≤ 127 so the cast is exact.
        out.extend(block.iter().map(|x| (x * id).round() as i8 as u8));
    }
    out
}

/// Quantizes rows of `values` (a whole number of blocks) as ggml's reference
/// `quantize_row_q4_0` does: the block's value of largest magnitude maps to −8, scale = that
/// value / −8; value j of the block goes in the low nibble of byte j, value j + 16 in its high
/// nibble, each stored as round-down(x / scale + 8.5) capped at 15.
pub fn quantize_q4_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / Q4_0_BLOCK * Q4_0_BLOCK_BYTES);
    for block in values.chunks(Q4_0_BLOCK) {
        let max = block
            .iter()
            .fold(0.0f32, |m, &x| if x.abs() > m.abs() { x } else { m });
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        // x·id ≥ −8 (|x| ≤ |max|), so x·id + 8.5 ≥ 0.5 and the cast floors it, as C's does.
        let nibble = |x: f32| ((x * id + 8.5) as u8).min(15);
        let (lo, hi) = block.split_at(Q4_0_BLOCK / 2);
        out.extend(
            lo.iter()
                .zip(hi)
                .map(|(&a, &b)| nibble(a) | (nibble(b) << 4)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dequantize(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks(Q8_0_BLOCK_BYTES)
            .flat_map(|b| {
                let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                b[2..].iter().map(move |&q| q as i8 as f32 * d)
            })
            .collect()
    }

    #[test]
    fn blocks_hold_a_scale_and_32_bytes() {
        let mut v = vec![0.0f32; 64];
        v[0] = 127.0;
        v[1] = -63.5;
        v[2] = 2.5;
        let q = quantize_q8_0(&v);
        assert_eq!(q.len(), 2 * Q8_0_BLOCK_BYTES);
        assert_eq!(f16::from_le_bytes([q[0], q[1]]).to_f32(), 1.0);
        assert_eq!(
            (q[2] as i8, q[3] as i8, q[4] as i8),
            (127, -64, 3),
            "half rounds away from zero"
        );
        assert!(
            q[Q8_0_BLOCK_BYTES..].iter().all(|&b| b == 0),
            "a silent block is zero"
        );
        assert_eq!(tensor_bytes(GGML_TYPE_Q8_0, 64), Some(68));
        assert_eq!(tensor_bytes(GGML_TYPE_Q8_0, 40), None);
        assert_eq!(WeightType::Q8_0.file_ftype(), 2007);
        assert_eq!("q8_0".parse::<WeightType>(), Ok(WeightType::Q8_0));
        assert!("q4".parse::<WeightType>().is_err());
    }

    fn dequantize_q4_0(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks(Q4_0_BLOCK_BYTES)
            .flat_map(|b| {
                let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                let lo: Vec<f32> = b[2..]
                    .iter()
                    .map(|&q| ((q & 0x0F) as f32 - 8.0) * d)
                    .collect();
                let hi: Vec<f32> = b[2..]
                    .iter()
                    .map(|&q| ((q >> 4) as f32 - 8.0) * d)
                    .collect();
                lo.into_iter().chain(hi)
            })
            .collect()
    }

    #[test]
    fn q4_0_blocks_hold_a_scale_and_16_bytes_of_nibbles() {
        let mut v = vec![0.0f32; 64];
        v[0] = -8.0; // the largest magnitude: scale 1, stored as 0
        v[1] = 7.0;
        v[16] = 3.4;
        let q = quantize_q4_0(&v);
        assert_eq!(q.len(), 2 * Q4_0_BLOCK_BYTES);
        assert_eq!(f16::from_le_bytes([q[0], q[1]]).to_f32(), 1.0);
        // Byte 0: value 0 (−8 → 0) low, value 16 (3.4 → 11) high; byte 1: value 1 (7 → 15).
        assert_eq!((q[2], q[3]), (11 << 4, 15 | (8 << 4)));
        // A silent block: scale (−)0, every value stored as 8 (zero).
        let d = &q[Q4_0_BLOCK_BYTES..Q4_0_BLOCK_BYTES + 2];
        assert_eq!(f16::from_le_bytes([d[0], d[1]]).to_f32(), 0.0);
        assert!(q[Q4_0_BLOCK_BYTES + 2..].iter().all(|&b| b == 0x88));
        assert_eq!(tensor_bytes(GGML_TYPE_Q4_0, 64), Some(36));
        assert_eq!(WeightType::Q4_0.file_ftype(), 2002);
        assert_eq!("q4_0".parse::<WeightType>(), Ok(WeightType::Q4_0));
    }

    proptest! {
        /// Q4_0 values come back within one step (max/8) of their block's scale: half a step
        /// from rounding, and a whole one at the far end (+8 steps is stored as +7).
        #[test]
        fn q4_0_round_trip_error_is_within_a_step(v in proptest::collection::vec(-4.0f32..4.0, 32..=32 * 8)) {
            let n = v.len() / Q4_0_BLOCK * Q4_0_BLOCK;
            let v = &v[..n];
            let back = dequantize_q4_0(&quantize_q4_0(v));
            for (block, got) in v.chunks(Q4_0_BLOCK).zip(back.chunks(Q4_0_BLOCK)) {
                let amax = block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                let step = amax / 8.0;
                for (x, y) in block.iter().zip(got) {
                    prop_assert!((x - y).abs() <= step + amax * 2e-3 + 1e-6, "{x} vs {y}");
                }
            }
        }

        /// Every value comes back within half a step of its block's scale.
        #[test]
        fn round_trip_error_is_half_a_step(v in proptest::collection::vec(-4.0f32..4.0, 32..=32 * 8)) {
            let n = v.len() / Q8_0_BLOCK * Q8_0_BLOCK;
            let v = &v[..n];
            let back = dequantize(&quantize_q8_0(v));
            for (block, got) in v.chunks(Q8_0_BLOCK).zip(back.chunks(Q8_0_BLOCK)) {
                let amax = block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                let step = amax / 127.0;
                for (x, y) in block.iter().zip(got) {
                    // f16 rounding of the scale adds at most 2^-11 relative error per step.
                    prop_assert!((x - y).abs() <= step * 0.5 + amax * 1e-3 + 1e-6);
                }
            }
        }
    }
}
