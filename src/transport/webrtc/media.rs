//! A call's audio, without the network: the caller's Opus packets → pipeline audio (lost
//! packets recovered by FEC or concealed, late ones dropped), and reply audio → 20 ms frames in
//! order (a barge-in drops the cut turn's frames at once).

use std::collections::VecDeque;

use crate::audio::opus::{OpusDecoder, OpusError, FRAME_SAMPLES};
use crate::audio::PIPELINE_RATE;

/// Longest run of lost packets filled with concealed audio (200 ms). Beyond it the stream is
/// treated as resumed: nothing is inserted for the rest, so an outage is neither speech nor a
/// silence that could end the user's turn.
pub const MAX_CONCEALED_FRAMES: u16 = 10;

/// What one received packet did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PacketReport {
    /// Lost frames rebuilt from this packet's in-band FEC.
    pub fec_recovered: u32,
    /// Lost frames filled by concealment.
    pub concealed: u32,
    /// The packet came after a later one (or twice) and was dropped.
    pub late: bool,
}

/// The caller's audio track: RTP sequence numbers and Opus payloads in, samples at the
/// pipeline's rate out (decoded at 16 kHz by libopus itself).
pub struct InboundAudio {
    decoder: OpusDecoder,
    last_seq: Option<u16>,
}

impl InboundAudio {
    pub fn new() -> Result<Self, OpusError> {
        Ok(Self {
            decoder: OpusDecoder::new(PIPELINE_RATE)?,
            last_seq: None,
        })
    }

    /// One RTP packet. Appends its audio (and any recovered before it) to `out`; a corrupt
    /// payload is an error for this packet only.
    pub fn packet(
        &mut self,
        seq: u16,
        payload: &[u8],
        out: &mut Vec<f32>,
    ) -> Result<PacketReport, OpusError> {
        let mut report = PacketReport::default();
        let gap = match self.last_seq {
            None => 0,
            Some(last) => {
                let d = seq.wrapping_sub(last.wrapping_add(1));
                // More than half the sequence space ahead means behind.
                if d >= 0x8000 {
                    report.late = true;
                    return Ok(report);
                }
                d
            }
        };
        self.last_seq = Some(seq);
        // A padding-only packet (browsers send them to probe bandwidth) holds its sequence
        // number but no audio: nothing was lost and nothing is decoded.
        if payload.is_empty() {
            return Ok(report);
        }
        if gap > 0 {
            let filled = gap.min(MAX_CONCEALED_FRAMES);
            for _ in 1..filled {
                out.extend_from_slice(self.decoder.recover(None));
                report.concealed += 1;
            }
            // The frame just before this packet may ride in it as FEC.
            out.extend_from_slice(self.decoder.recover(Some(payload)));
            report.fec_recovered += 1;
        }
        out.extend_from_slice(self.decoder.decode(payload)?);
        Ok(report)
    }
}

/// Reply audio (48 kHz) waiting to be sent, tagged with its turn.
struct Chunk {
    turn: u64,
    samples: Vec<f32>,
    pos: usize,
}

/// The reply queue of a call, taken 20 ms at a time by the paced writer.
#[derive(Default)]
pub struct ReplyQueue {
    chunks: VecDeque<Chunk>,
    queued: usize,
    /// Per turn: milliseconds of its reply sent so far (what the page has been given to play).
    sent: (u64, u64),
}

impl ReplyQueue {
    pub fn push(&mut self, turn: u64, samples: Vec<f32>) {
        if samples.is_empty() {
            return;
        }
        self.queued += samples.len();
        self.chunks.push_back(Chunk {
            turn,
            samples,
            pos: 0,
        });
    }

    /// Samples waiting.
    pub fn len(&self) -> usize {
        self.queued
    }

    pub fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Barge-in: everything of `turn` and earlier goes.
    pub fn clear(&mut self, turn: u64) {
        self.chunks.retain(|c| c.turn > turn);
        self.queued = self.chunks.iter().map(|c| c.samples.len() - c.pos).sum();
    }

    /// The next 20 ms frame, silence-padded, and the turn whose audio it holds with how many
    /// milliseconds of that turn have then been sent; `None` (and silence) when nothing waits.
    pub fn next_frame(&mut self, frame: &mut [f32; FRAME_SAMPLES]) -> Option<(u64, u64)> {
        frame.fill(0.0);
        let mut filled = 0;
        let mut turn = None;
        while filled < FRAME_SAMPLES {
            let Some(c) = self.chunks.front_mut() else {
                break;
            };
            let n = (c.samples.len() - c.pos).min(FRAME_SAMPLES - filled);
            frame[filled..filled + n].copy_from_slice(&c.samples[c.pos..c.pos + n]);
            c.pos += n;
            filled += n;
            self.queued -= n;
            turn = Some(c.turn);
            if c.pos == c.samples.len() {
                self.chunks.pop_front();
            }
        }
        let turn = turn?;
        if self.sent.0 != turn {
            self.sent = (turn, 0);
        }
        self.sent.1 += crate::audio::opus::FRAME_MS;
        Some(self.sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::opus::OpusEncoder;
    use proptest::prelude::*;

    fn packets(n: usize) -> Vec<Vec<u8>> {
        let mut enc = OpusEncoder::new(5, 32_000, 10).unwrap();
        (0..n)
            .map(|k| {
                let f: Vec<f32> = (0..FRAME_SAMPLES)
                    .map(|i| {
                        let t = (k * FRAME_SAMPLES + i) as f32 / 48_000.0;
                        (t * 2.0 * std::f32::consts::PI * 300.0).sin() * 0.3
                    })
                    .collect();
                enc.encode(&f).unwrap()
            })
            .collect()
    }

    #[test]
    fn losses_are_filled_and_late_packets_dropped() {
        let p = packets(40);
        let mut a = InboundAudio::new().unwrap();
        let mut out = Vec::new();
        let mut total = PacketReport::default();
        let seq0: u16 = 65_530; // wraps during the test
        for (i, pkt) in p.iter().enumerate() {
            if i == 7 || i == 20 || i == 21 || i == 22 {
                continue;
            }
            let r = a
                .packet(seq0.wrapping_add(i as u16), pkt, &mut out)
                .unwrap();
            total.fec_recovered += r.fec_recovered;
            total.concealed += r.concealed;
        }
        assert_eq!((total.fec_recovered, total.concealed), (2, 2));
        // A duplicate and an old packet are dropped.
        assert!(
            a.packet(seq0.wrapping_add(39), &p[39], &mut out)
                .unwrap()
                .late
        );
        assert!(
            a.packet(seq0.wrapping_add(30), &p[30], &mut out)
                .unwrap()
                .late
        );
        // Every 20 ms frame of the 40 is there, at 16 kHz.
        assert_eq!(out.len(), 40 * 320);
    }

    #[test]
    fn padding_packets_are_not_losses() {
        let p = packets(3);
        let mut a = InboundAudio::new().unwrap();
        let mut out = Vec::new();
        a.packet(1, &p[0], &mut out).unwrap();
        assert_eq!(a.packet(2, &[], &mut out).unwrap(), PacketReport::default());
        assert_eq!(
            a.packet(3, &p[1], &mut out).unwrap(),
            PacketReport::default()
        );
        assert_eq!(out.len(), 2 * 320);
    }

    #[test]
    fn an_outage_is_concealed_only_briefly() {
        let p = packets(3);
        let mut a = InboundAudio::new().unwrap();
        let mut out = Vec::new();
        a.packet(100, &p[0], &mut out).unwrap();
        let r = a.packet(600, &p[1], &mut out).unwrap();
        assert_eq!(
            r.concealed + r.fec_recovered,
            u32::from(MAX_CONCEALED_FRAMES)
        );
        // A corrupt payload is an error for its packet; the next one decodes.
        assert!(a.packet(601, &[0x03, 0x00], &mut out).is_err());
        assert!(a.packet(602, &p[2], &mut out).is_ok());
    }

    #[test]
    fn reply_frames_follow_turns_and_clear() {
        let mut q = ReplyQueue::default();
        let mut f = [0.0f32; FRAME_SAMPLES];
        assert_eq!(q.next_frame(&mut f), None);
        q.push(1, vec![0.5; FRAME_SAMPLES * 2 + 100]);
        assert_eq!(q.next_frame(&mut f), Some((1, 20)));
        assert_eq!(q.next_frame(&mut f), Some((1, 40)));
        q.push(2, vec![0.25; FRAME_SAMPLES]);
        // The last 100 samples of turn 1, then turn 2's start, in one frame.
        assert_eq!(q.next_frame(&mut f), Some((2, 20)));
        assert_eq!((f[0], f[100]), (0.5, 0.25));
        q.push(2, vec![0.25; FRAME_SAMPLES * 10]);
        q.push(3, vec![0.1; FRAME_SAMPLES]);
        q.clear(2);
        assert_eq!(q.len(), FRAME_SAMPLES);
        assert_eq!(q.next_frame(&mut f), Some((3, 20)));
        assert!(q.is_empty());
        assert_eq!(q.next_frame(&mut f), None);
        assert!(f.iter().all(|&s| s == 0.0));
    }

    proptest! {
        #[test]
        fn queue_accounting_holds(ops in proptest::collection::vec((0u8..3, 1u64..5, 0usize..3000), 1..60)) {
            let mut q = ReplyQueue::default();
            let mut f = [0.0f32; FRAME_SAMPLES];
            let mut expect = 0usize;
            for (op, turn, n) in ops {
                match op {
                    0 => { q.push(turn, vec![0.1; n]); expect += n; }
                    1 => { q.next_frame(&mut f); expect = expect.saturating_sub(FRAME_SAMPLES); }
                    _ => { q.clear(turn); expect = q.len(); }
                }
                prop_assert_eq!(q.len(), expect);
            }
        }
    }
}
