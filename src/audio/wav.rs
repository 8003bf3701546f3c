//! WAV files in and out: a streaming reader that turns any PCM/float WAV (any rate, any channel
//! count) into mono `f32` chunks, and a 16-bit PCM writer for replies.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::pcm;

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a WAV file (expected a RIFF/WAVE header)")]
    NotWav { path: PathBuf },
    #[error("{path}: the WAV header is truncated or corrupt ({detail})")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: unsupported WAV encoding ({detail}); use 8/16/24/32-bit integer PCM or 32-bit float")]
    Unsupported { path: PathBuf, detail: String },
    #[error("{path} contains no audio samples")]
    Empty { path: PathBuf },
    #[error("cannot write {path}: {detail}")]
    Write { path: PathBuf, detail: String },
}

/// What a WAV file declares about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    pub sample_rate: u32,
    pub channels: u16,
    pub bits_per_sample: u16,
    pub is_float: bool,
    /// Frames (samples per channel) the header announces.
    pub frames: u32,
}

impl WavInfo {
    pub fn duration_s(&self) -> f64 {
        f64::from(self.frames) / f64::from(self.sample_rate.max(1))
    }
}

/// Streams a WAV file (or an upload held in memory) as mono `f32` chunks without decoding it
/// whole.
pub struct WavSource<R: std::io::Read = BufReader<File>> {
    path: PathBuf,
    info: WavInfo,
    reader: hound::WavReader<R>,
    truncated: bool,
}

impl WavSource {
    pub fn open(path: &Path) -> Result<Self, WavError> {
        let file = File::open(path).map_err(|source| WavError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(path, BufReader::new(file))
    }
}

impl<R: std::io::Read> WavSource<R> {
    /// A WAV read from `reader`; `path` names it in errors.
    pub fn from_reader(path: &Path, reader: R) -> Result<Self, WavError> {
        let reader = hound::WavReader::new(reader).map_err(|e| classify(path, e))?;
        let spec = reader.spec();
        let info = WavInfo {
            sample_rate: spec.sample_rate,
            channels: spec.channels,
            bits_per_sample: spec.bits_per_sample,
            is_float: spec.sample_format == hound::SampleFormat::Float,
            frames: reader.duration(),
        };
        let unsupported = |detail: String| WavError::Unsupported {
            path: path.to_path_buf(),
            detail,
        };
        if info.channels == 0 {
            return Err(unsupported("0 channels".into()));
        }
        if !(4_000..=192_000).contains(&info.sample_rate) {
            return Err(unsupported(format!(
                "sample rate {} Hz is outside 4 kHz..192 kHz",
                info.sample_rate
            )));
        }
        if info.is_float && info.bits_per_sample != 32 {
            return Err(unsupported(format!("{}-bit float", info.bits_per_sample)));
        }
        if info.frames == 0 {
            return Err(WavError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            info,
            reader,
            truncated: false,
        })
    }

    pub fn info(&self) -> WavInfo {
        self.info
    }

    /// True once a read hit the end of the file before the length the header announced.
    pub fn was_truncated(&self) -> bool {
        self.truncated
    }

    /// Reads up to `max_frames` frames, down-mixed to mono. `Ok(None)` at the end.
    pub fn read_chunk(&mut self, max_frames: usize) -> Result<Option<Vec<f32>>, WavError> {
        let channels = usize::from(self.info.channels);
        let want = max_frames.max(1) * channels;
        let mut interleaved = Vec::with_capacity(want);
        if self.info.is_float {
            for s in self.reader.samples::<f32>().take(want) {
                match s {
                    // Float WAV's full scale is ±1: louder is clipped (as a player does),
                    // and NaN/∞ — a corrupt file — is silence, so no stage ever sees either.
                    Ok(v) => interleaved.push(if v.is_finite() {
                        v.clamp(-1.0, 1.0)
                    } else {
                        0.0
                    }),
                    Err(e) => {
                        self.note_short_read(e)?;
                        break;
                    }
                }
            }
        } else {
            let bits = self.info.bits_per_sample;
            for s in self.reader.samples::<i32>().take(want) {
                match s {
                    Ok(v) => interleaved.push(pcm::int_to_f32(v, bits)),
                    Err(e) => {
                        self.note_short_read(e)?;
                        break;
                    }
                }
            }
        }
        if interleaved.is_empty() {
            return Ok(None);
        }
        Ok(Some(pcm::downmix(&interleaved, channels)))
    }

    /// A data chunk shorter than its header says is common (recorders killed mid-write):
    /// keep what was read, remember it, and end the stream. Anything else is an error.
    fn note_short_read(&mut self, e: hound::Error) -> Result<(), WavError> {
        match e {
            hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.truncated = true;
                Ok(())
            }
            // hound's own wording for a sample cut off by the end of the file.
            hound::Error::IoError(io) if io.to_string().contains("enough bytes") => {
                self.truncated = true;
                Ok(())
            }
            other => Err(classify(&self.path, other)),
        }
    }
}

fn classify(path: &Path, e: hound::Error) -> WavError {
    let path = path.to_path_buf();
    match e {
        hound::Error::FormatError(msg) if msg.contains("RIFF") || msg.contains("WAVE") => {
            WavError::NotWav { path }
        }
        hound::Error::FormatError(msg) => WavError::Corrupt {
            path,
            detail: msg.to_string(),
        },
        hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            WavError::Corrupt {
                path,
                detail: "file ends inside the header".into(),
            }
        }
        hound::Error::IoError(io) => WavError::Corrupt {
            path,
            detail: io.to_string(),
        },
        hound::Error::Unsupported => WavError::Unsupported {
            path,
            detail: "compressed or extensible format hound cannot decode".into(),
        },
        hound::Error::InvalidSampleFormat => WavError::Unsupported {
            path,
            detail: "invalid sample format".into(),
        },
        other => WavError::Corrupt {
            path,
            detail: other.to_string(),
        },
    }
}

/// Reads a whole WAV file as mono `f32` (for short clips: tests, benchmarks, evaluation).
pub fn read_mono(path: &Path) -> Result<(Vec<f32>, u32), WavError> {
    read_all(WavSource::open(path)?)
}

/// Decodes a whole WAV held in memory (an upload) as mono `f32`; `name` labels it in errors.
pub fn decode_mono(name: &str, bytes: &[u8]) -> Result<(Vec<f32>, u32), WavError> {
    read_all(WavSource::from_reader(
        Path::new(name),
        std::io::Cursor::new(bytes),
    )?)
}

fn read_all<R: std::io::Read>(mut src: WavSource<R>) -> Result<(Vec<f32>, u32), WavError> {
    let rate = src.info().sample_rate;
    // The header's frame count is only a claim: reserve no more than a minute at 48 kHz.
    let mut all = Vec::with_capacity((src.info().frames as usize).min(48_000 * 60));
    while let Some(chunk) = src.read_chunk(16_384)? {
        all.extend_from_slice(&chunk);
    }
    Ok((all, rate))
}

const MONO_I16: hound::WavSpec = hound::WavSpec {
    channels: 1,
    sample_rate: 16_000,
    bits_per_sample: 16,
    sample_format: hound::SampleFormat::Int,
};

fn write_samples<W: std::io::Write + std::io::Seek>(
    mut w: hound::WavWriter<W>,
    samples: &[f32],
) -> Result<(), hound::Error> {
    for &s in samples {
        w.write_sample(pcm::f32_to_i16(s))?;
    }
    w.finalize()
}

/// Writes mono `f32` samples as 16-bit PCM.
pub fn write_mono_i16(path: &Path, samples: &[f32], sample_rate: u32) -> Result<(), WavError> {
    let err = |e: hound::Error| WavError::Write {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let spec = hound::WavSpec {
        sample_rate,
        ..MONO_I16
    };
    write_samples(hound::WavWriter::create(path, spec).map_err(err)?, samples).map_err(err)
}

/// Mono `f32` samples as the bytes of a 16-bit PCM WAV file (to upload).
pub fn mono_i16_bytes(samples: &[f32], sample_rate: u32) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    let spec = hound::WavSpec {
        sample_rate,
        ..MONO_I16
    };
    // Writing to memory cannot fail: hound's only errors here would be I/O errors of a Vec.
    let written = hound::WavWriter::new(&mut buf, spec).and_then(|w| write_samples(w, samples));
    debug_assert!(written.is_ok());
    buf.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, spec: hound::WavSpec, n: usize) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..n * usize::from(spec.channels) {
            w.write_sample(((i % 100) as i16 - 50) * 100).unwrap();
        }
        w.finalize().unwrap();
    }

    fn spec(rate: u32, ch: u16) -> hound::WavSpec {
        hound::WavSpec {
            channels: ch,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        }
    }

    #[test]
    fn stereo_is_downmixed_and_streamed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.wav");
        write(&p, spec(8_000, 2), 10_000);
        let mut src = WavSource::open(&p).unwrap();
        assert_eq!(src.info().channels, 2);
        let mut total = 0;
        while let Some(c) = src.read_chunk(3_000).unwrap() {
            assert!(c.len() <= 3_000);
            total += c.len();
        }
        assert_eq!(total, 10_000);
    }

    #[test]
    fn float_samples_past_full_scale_are_clipped_and_nan_is_silence() {
        // Found by the wav_file fuzz target: a float sample of 1.4e22 (and two of them
        // averaged into ∞ by the stereo down-mix) went on to the stages.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16_000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for v in [
            1.4e22f32,
            3e38,
            -7.5,
            f32::NAN,
            0.5,
            -0.25,
            f32::INFINITY,
            0.0,
        ] {
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
        let mut src = WavSource::open(&p).unwrap();
        let mono = src.read_chunk(16).unwrap().unwrap();
        assert_eq!(mono, [1.0, -0.5, 0.125, 0.0]);
    }

    #[test]
    fn bad_files_have_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("t.wav");
        std::fs::write(&text, b"hello, this is not audio at all").unwrap();
        assert!(matches!(
            WavSource::open(&text),
            Err(WavError::NotWav { .. })
        ));

        let good = dir.path().join("g.wav");
        write(&good, spec(16_000, 1), 1_000);
        let bytes = std::fs::read(&good).unwrap();
        let trunc = dir.path().join("h.wav");
        std::fs::write(&trunc, &bytes[..30]).unwrap();
        let e = WavSource::open(&trunc).err().unwrap();
        assert!(
            matches!(e, WavError::Corrupt { .. } | WavError::NotWav { .. }),
            "{e}"
        );

        let empty = dir.path().join("e.wav");
        write(&empty, spec(16_000, 1), 0);
        assert!(matches!(
            WavSource::open(&empty),
            Err(WavError::Empty { .. })
        ));

        let missing = dir.path().join("nope.wav");
        assert!(matches!(
            WavSource::open(&missing),
            Err(WavError::Open { .. })
        ));
    }

    #[test]
    fn truncated_data_keeps_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("g.wav");
        write(&good, spec(16_000, 1), 4_000);
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("c.wav");
        std::fs::write(&cut, &bytes[..44 + 2 * 1_000]).unwrap();
        let mut src = WavSource::open(&cut).unwrap();
        let mut n = 0;
        while let Some(c) = src.read_chunk(512).unwrap() {
            n += c.len();
        }
        assert_eq!(n, 1_000);
        assert!(src.was_truncated());
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.wav");
        let x: Vec<f32> = (0..800).map(|i| (i as f32 / 800.0) - 0.5).collect();
        write_mono_i16(&p, &x, 24_000).unwrap();
        let (y, rate) = read_mono(&p).unwrap();
        assert_eq!(rate, 24_000);
        assert_eq!(y.len(), x.len());
        assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 1e-4));
    }
}
