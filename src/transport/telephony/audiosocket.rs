//! Asterisk AudioSocket (`AudioSocket(uuid,host:port)` in the dialplan): a TCP stream of frames,
//! each a 3-byte header — kind, then payload length as 16-bit big-endian — and the payload.
//! Kinds: 0x00 hang-up, 0x01 the call's UUID (16 bytes), 0x03 a DTMF digit (1 ASCII byte),
//! 0x10 audio (signed linear 16-bit little-endian, 8 kHz mono; 20 ms = 320 bytes), 0xff error
//! (optional code). Newer Asterisk versions add 0x11–0x18 for slin at other rates: refused
//! with a clear error, since the dialplan can ask for 8 kHz.

use super::frames::WireError;

pub const KIND_HANGUP: u8 = 0x00;
pub const KIND_UUID: u8 = 0x01;
pub const KIND_DTMF: u8 = 0x03;
pub const KIND_AUDIO: u8 = 0x10;
pub const KIND_ERROR: u8 = 0xff;
pub const HEADER: usize = 3;
/// The sample rate of kind 0x10.
pub const RATE: u32 = 8_000;
/// One 20 ms frame of 8 kHz slin.
pub const FRAME_BYTES: usize = 320;
pub const FRAME_MS: u64 = 20;
/// Longest audio payload accepted (1 s); Asterisk sends 20 ms frames.
pub const MAX_AUDIO_PAYLOAD: usize = 16_000;

/// Error codes vaak sends in a 0xff frame before it closes a call.
pub const ERROR_PROTOCOL: u8 = 0x01;
pub const ERROR_BUSY: u8 = 0x02;
pub const ERROR_INTERNAL: u8 = 0x04;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hangup,
    Uuid([u8; 16]),
    Dtmf(char),
    /// slin16 little-endian at 8 kHz.
    Audio(Vec<u8>),
    Error(Option<u8>),
}

/// Parses the frame at the start of `buf`: `Ok(None)` until the whole frame is there, else the
/// frame and the bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, WireError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let kind = buf[0];
    let len = u16::from_be_bytes([buf[1], buf[2]]) as usize;
    // Refuse an impossible length at once rather than waiting for 64 kB that will never be valid.
    let limit = match kind {
        KIND_UUID => 16,
        KIND_DTMF => 1,
        KIND_AUDIO => MAX_AUDIO_PAYLOAD,
        _ => usize::from(u16::MAX),
    };
    if len > limit {
        return Err(WireError::Frame(format!(
            "kind {kind:#04x} with a {len}-byte payload (at most {limit})"
        )));
    }
    if buf.len() < HEADER + len {
        return Ok(None);
    }
    let body = &buf[HEADER..HEADER + len];
    let frame = match kind {
        KIND_HANGUP => Frame::Hangup,
        KIND_UUID => {
            let uuid: [u8; 16] = body
                .try_into()
                .map_err(|_| WireError::Frame(format!("UUID of {len} bytes, not 16")))?;
            Frame::Uuid(uuid)
        }
        KIND_DTMF => {
            let c = body.first().map(|&b| char::from(b)).unwrap_or('?');
            Frame::Dtmf(super::frames::digit(&c.to_string())?)
        }
        KIND_AUDIO => {
            if len % 2 != 0 {
                return Err(WireError::Frame(format!(
                    "audio payload of {len} bytes is not whole 16-bit samples"
                )));
            }
            Frame::Audio(body.to_vec())
        }
        0x11..=0x18 => {
            return Err(WireError::Format(format!(
                "AudioSocket audio kind {kind:#04x} (slin at a rate other than 8 kHz) is not \
                 supported: use 8 kHz signed linear (kind 0x10)"
            )))
        }
        KIND_ERROR => Frame::Error(body.first().copied()),
        other => return Err(WireError::Frame(format!("unknown kind {other:#04x}"))),
    };
    Ok(Some((frame, HEADER + len)))
}

pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    // Callers send at most one 20 ms frame or a one-byte code: far below 64 kB.
    let len = payload.len().min(usize::from(u16::MAX)) as u16;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(kind);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload[..usize::from(len)]);
    out
}

/// The UUID in its canonical 8-4-4-4-12 form.
pub fn uuid_string(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_parse_and_wait_for_more() {
        let mut buf = encode(KIND_UUID, &[7; 16]);
        buf.extend(encode(KIND_AUDIO, &[1; FRAME_BYTES]));
        buf.extend(encode(KIND_DTMF, b"5"));
        buf.extend([0, 0, 0]);
        let (f, n) = parse(&buf).unwrap().unwrap();
        assert_eq!((f, n), (Frame::Uuid([7; 16]), 19));
        let (f, m) = parse(&buf[n..]).unwrap().unwrap();
        assert_eq!((f, m), (Frame::Audio(vec![1; FRAME_BYTES]), 323));
        assert_eq!(parse(&buf[n..n + 100]), Ok(None));
        assert_eq!(parse(&buf[n + m..]).unwrap().unwrap().0, Frame::Dtmf('5'));
        assert_eq!(parse(&buf[n + m + 4..]).unwrap().unwrap().0, Frame::Hangup);
        assert_eq!(
            uuid_string(&[0xab; 16]),
            "abababab-abab-abab-abab-abababababab"
        );
    }

    #[test]
    fn bad_frames_are_errors() {
        assert!(parse(&encode(KIND_AUDIO, &[0; 3])).is_err());
        assert!(parse(&encode(KIND_UUID, &[0; 4])).is_err());
        assert!(parse(&encode(KIND_DTMF, b"x")).is_err());
        assert!(matches!(
            parse(&encode(0x12, &[0; 640])),
            Err(WireError::Format(_))
        ));
        assert!(parse(&encode(0x42, &[])).is_err());
        // A header announcing more audio than allowed fails before the payload arrives.
        assert!(parse(&[KIND_AUDIO, 0xff, 0xff]).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic_and_frames_round_trip(
            bytes in proptest::collection::vec(any::<u8>(), 0..700),
            audio in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut rest = &bytes[..];
            while let Ok(Some((_, n))) = parse(rest) {
                prop_assert!(n >= HEADER && n <= rest.len());
                rest = &rest[n..];
            }
            let even = &audio[..audio.len() / 2 * 2];
            let f = encode(KIND_AUDIO, even);
            prop_assert_eq!(parse(&f), Ok(Some((Frame::Audio(even.to_vec()), f.len()))));
        }
    }
}
