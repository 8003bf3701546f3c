//! Voice activity detection backends: per-frame speech probability. The endpointing logic that
//! turns probabilities into utterances lives in `stages::vad`, independent of the model.

pub mod silero;

/// Per-session detector state (model weights are shared; the recurrent state is not).
pub trait VoiceActivity: Send {
    /// Samples per frame the detector wants (at its sample rate).
    fn frame_samples(&self) -> usize;
    /// Speech probability of one frame of exactly `frame_samples()` samples.
    fn speech_probability(&mut self, frame: &[f32]) -> Result<f32, VadError>;
    /// Forgets the recurrent state (start of a new stream).
    fn reset(&mut self);
}

/// Creates per-session detectors from a model loaded once.
pub trait VadFactory: Send + Sync {
    fn create(&self, sample_rate: u32) -> Result<Box<dyn VoiceActivity>, VadError>;
}

#[derive(Debug, thiserror::Error)]
pub enum VadError {
    #[error("VAD model not found at {0}: run `vaak models fetch`")]
    Missing(std::path::PathBuf),
    #[error("cannot load the VAD model {path}: {detail}")]
    Load {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("VAD supports 8000 or 16000 Hz, not {0}")]
    SampleRate(u32),
    #[error("VAD frame must be {expected} samples, got {got}")]
    FrameSize { expected: usize, got: usize },
    #[error("VAD inference failed: {0}")]
    Inference(String),
}
