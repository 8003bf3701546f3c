//! Silero VAD v6 (ONNX) through ONNX Runtime. One session is shared by every stream; each
//! stream keeps its own recurrent state and the last 64 (16 kHz) or 32 (8 kHz) samples, which
//! must precede every frame or the probabilities degrade.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;

use super::{VadError, VadFactory, VoiceActivity};

const STATE_LEN: usize = 2 * 128;

/// The loaded model, shared (one ONNX session behind a mutex: a frame takes well under 1 ms).
pub struct SileroModel {
    session: Mutex<Session>,
}

impl SileroModel {
    pub fn load(env: &ort::environment::Environment, path: &Path) -> Result<Arc<Self>, VadError> {
        if !path.is_file() {
            return Err(VadError::Missing(path.to_path_buf()));
        }
        let load = |e: ort::Error| VadError::Load {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        let session = Session::builder(env)
            .map_err(load)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| load(e.into()))?
            .with_intra_threads(1)
            .map_err(|e| load(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| load(e.into()))?
            .commit_from_file(path)
            .map_err(load)?;
        Ok(Arc::new(Self {
            session: Mutex::new(session),
        }))
    }
}

impl VadFactory for Arc<SileroModel> {
    fn create(&self, sample_rate: u32) -> Result<Box<dyn VoiceActivity>, VadError> {
        let (frame, context) = match sample_rate {
            16_000 => (512, 64),
            8_000 => (256, 32),
            other => return Err(VadError::SampleRate(other)),
        };
        Ok(Box::new(SileroStream {
            model: Arc::clone(self),
            sample_rate,
            frame,
            state: vec![0.0; STATE_LEN],
            input: vec![0.0; context + frame],
            context,
        }))
    }
}

/// One stream's detector.
pub struct SileroStream {
    model: Arc<SileroModel>,
    sample_rate: u32,
    frame: usize,
    context: usize,
    state: Vec<f32>,
    /// `context` samples carried over from the previous frame, then the current frame.
    input: Vec<f32>,
}

impl VoiceActivity for SileroStream {
    fn frame_samples(&self) -> usize {
        self.frame
    }

    fn speech_probability(&mut self, frame: &[f32]) -> Result<f32, VadError> {
        if frame.len() != self.frame {
            return Err(VadError::FrameSize {
                expected: self.frame,
                got: frame.len(),
            });
        }
        self.input[self.context..].copy_from_slice(frame);
        let inf = |e: ort::Error| VadError::Inference(e.to_string());
        let input =
            Tensor::from_array(([1usize, self.input.len()], self.input.clone())).map_err(inf)?;
        let state = Tensor::from_array(([2usize, 1, 128], self.state.clone())).map_err(inf)?;
        let sr = Tensor::from_array(((), vec![i64::from(self.sample_rate)])).map_err(inf)?;
        let prob = {
            // A poisoned lock only means another stream panicked mid-call; the session itself
            // holds no per-call state, so it is still usable.
            let mut session = self.model.session.lock().unwrap_or_else(|p| p.into_inner());
            let outputs = session
                .run(ort::inputs!["input" => input, "state" => state, "sr" => sr])
                .map_err(inf)?;
            let (_, p) = outputs["output"].try_extract_tensor::<f32>().map_err(inf)?;
            let (_, s) = outputs["stateN"].try_extract_tensor::<f32>().map_err(inf)?;
            if s.len() == STATE_LEN {
                self.state.copy_from_slice(s);
            }
            p.first().copied().unwrap_or(0.0)
        };
        // Keep the tail of this frame as the next frame's context.
        let tail_start = self.input.len() - self.context;
        self.input.copy_within(tail_start.., 0);
        Ok(prob)
    }

    fn reset(&mut self) {
        self.state.iter_mut().for_each(|s| *s = 0.0);
        self.input.iter_mut().for_each(|s| *s = 0.0);
    }
}
