//! Piper VITS voices (`*.onnx` + `*.onnx.json`): the English alternative and any voice a user adds.
//!
//! Piper voices exist for more languages than the defaults cover (hi_IN, te_IN, ml_IN …), so
//! better voices are a config change. The text becomes espeak-ng IPA (voice from the JSON's
//! `espeak.voice`), decomposed into code points and mapped through the JSON's `phoneme_id_map`
//! as Piper does: `^` (BOS), each phoneme followed by `_` (pad), `$` (EOS). Inputs: `input`
//! `[1,N]` i64, `input_lengths` `[1]`, `scales` `[3]` = noise_scale, length_scale / speed,
//! noise_w, and `sid` `[1]` for multi-speaker voices.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;

use super::espeak::{check_voice, phonemize};
use super::kokoro::{f32_output, input_name, load_session};
use super::{effective_speed, sanitize_audio, TtsEngine, TtsError};
use crate::backend::device::Device;
use crate::backend::onnx::OnnxRuntime;

#[derive(Debug, Deserialize)]
struct PiperJson {
    audio: AudioSection,
    #[serde(default)]
    espeak: Option<EspeakSection>,
    #[serde(default)]
    inference: InferenceSection,
    #[serde(default)]
    phoneme_type: Option<String>,
    #[serde(default)]
    phoneme_map: HashMap<String, Vec<String>>,
    phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default = "one")]
    num_speakers: i64,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Deserialize)]
struct AudioSection {
    sample_rate: u32,
}

#[derive(Debug, Deserialize)]
struct EspeakSection {
    voice: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
struct InferenceSection {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

impl Default for InferenceSection {
    /// Piper's own defaults.
    fn default() -> Self {
        InferenceSection {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
        }
    }
}

/// Input names found in the model.
#[derive(Debug)]
struct Signature {
    input: String,
    lengths: String,
    scales: String,
    sid: Option<String>,
    audio: String,
}

/// One Piper model file and its config; shared by every language/speaker that uses it.
pub struct PiperModel {
    session: Mutex<Session>,
    signature: Signature,
    /// Model file name without `.onnx`, e.g. `en_US-joe-medium`.
    stem: String,
    sample_rate: u32,
    espeak_voice: Option<String>,
    /// Phonemes are the text's own characters (`phoneme_type: "text"`), not espeak IPA.
    text_phonemes: bool,
    scales: InferenceSection,
    num_speakers: i64,
    id_map: HashMap<char, Vec<i64>>,
    phoneme_map: HashMap<char, Vec<char>>,
    bos: Vec<i64>,
    eos: Vec<i64>,
    pad: Vec<i64>,
    device: Device,
}

impl std::fmt::Debug for PiperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperModel")
            .field("stem", &self.stem)
            .field("sample_rate", &self.sample_rate)
            .field("espeak_voice", &self.espeak_voice)
            .field("num_speakers", &self.num_speakers)
            .field("signature", &self.signature)
            .finish()
    }
}

fn single_char(s: &str) -> Option<char> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

/// Canonical decomposition (NFD) of the precomposed letters espeak-ng's IPA can contain; Piper
/// decomposes phonemes before the id lookup, and its maps hold the combining marks.
fn decompose(c: char, out: &mut Vec<char>) {
    let (base, mark) = match c {
        'ç' => ('c', '\u{327}'),
        'ã' => ('a', '\u{303}'),
        'ẽ' => ('e', '\u{303}'),
        'ĩ' => ('i', '\u{303}'),
        'õ' => ('o', '\u{303}'),
        'ũ' => ('u', '\u{303}'),
        'ỹ' => ('y', '\u{303}'),
        'ñ' => ('n', '\u{303}'),
        'é' => ('e', '\u{301}'),
        'á' => ('a', '\u{301}'),
        'í' => ('i', '\u{301}'),
        'ó' => ('o', '\u{301}'),
        'ú' => ('u', '\u{301}'),
        _ => {
            out.push(c);
            return;
        }
    };
    out.push(base);
    out.push(mark);
}

impl PiperModel {
    /// Where the model runs.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Loads the ONNX model and its JSON config.
    pub fn load(
        runtime: &OnnxRuntime,
        model: &Path,
        config: &Path,
        threads: usize,
    ) -> Result<Self, TtsError> {
        let text = std::fs::read_to_string(config).map_err(|e| TtsError::model_load(config, e))?;
        let json: PiperJson =
            serde_json::from_str(&text).map_err(|e| TtsError::model_load(config, e))?;
        let mut id_map = HashMap::with_capacity(json.phoneme_id_map.len());
        for (symbol, ids) in &json.phoneme_id_map {
            match single_char(symbol) {
                Some(c) => {
                    id_map.insert(c, ids.clone());
                }
                None => tracing::warn!(
                    symbol,
                    "Piper phoneme_id_map entry is not one character; ignored"
                ),
            }
        }
        let special = |c: char, what: &str| {
            id_map.get(&c).cloned().ok_or_else(|| {
                TtsError::model_load(config, format!("phoneme_id_map lacks `{c}` ({what})"))
            })
        };
        let (bos, eos, pad) = (
            special('^', "BOS")?,
            special('$', "EOS")?,
            special('_', "pad")?,
        );
        let phoneme_map = json
            .phoneme_map
            .iter()
            .filter_map(|(from, to)| {
                Some((
                    single_char(from)?,
                    to.iter().filter_map(|t| single_char(t)).collect(),
                ))
            })
            .collect();
        if json.audio.sample_rate == 0 {
            return Err(TtsError::model_load(config, "audio.sample_rate is 0"));
        }
        let text_phonemes = json.phoneme_type.as_deref() == Some("text");
        let espeak_voice = json.espeak.map(|e| e.voice);

        let (session, device) = load_session(runtime, model, threads)?;
        let signature = Signature {
            input: input_name(&session, model, &["input"])?,
            lengths: input_name(&session, model, &["input_lengths"])?,
            scales: input_name(&session, model, &["scales"])?,
            sid: input_name(&session, model, &["sid"]).ok(),
            audio: f32_output(&session, model)?,
        };
        if json.num_speakers > 1 && signature.sid.is_none() {
            return Err(TtsError::model_load(
                model,
                "config says multi-speaker but the model has no `sid` input",
            ));
        }
        let file_name = model
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("piper");
        let stem = file_name
            .strip_suffix(".onnx")
            .unwrap_or(file_name)
            .to_string();
        tracing::info!(path = %model.display(), sample_rate = json.audio.sample_rate, "Piper model loaded");
        Ok(PiperModel {
            session: Mutex::new(session),
            signature,
            stem,
            sample_rate: json.audio.sample_rate,
            espeak_voice,
            text_phonemes,
            scales: json.inference,
            num_speakers: json.num_speakers.max(1),
            id_map,
            phoneme_map,
            bos,
            eos,
            pad,
            device,
        })
    }

    /// Phonemes → ids as piper-phonemize does: BOS, pad, then each phoneme followed by pad, EOS.
    /// Characters the map lacks are dropped.
    fn phoneme_ids(&self, phonemes: &str) -> Vec<i64> {
        let mut chars = Vec::with_capacity(phonemes.len());
        for c in phonemes.chars() {
            match self.phoneme_map.get(&c) {
                Some(mapped) => mapped.iter().for_each(|&m| decompose(m, &mut chars)),
                None => decompose(c, &mut chars),
            }
        }
        let mut ids = Vec::with_capacity(chars.len() * 2 + 3);
        ids.extend_from_slice(&self.bos);
        ids.extend_from_slice(&self.pad);
        for c in chars {
            if let Some(id) = self.id_map.get(&c) {
                ids.extend_from_slice(id);
                ids.extend_from_slice(&self.pad);
            }
        }
        ids.extend_from_slice(&self.eos);
        ids
    }

    fn infer(
        &self,
        engine: &str,
        ids: Vec<i64>,
        speaker: i64,
        speed: f32,
    ) -> Result<Vec<f32>, TtsError> {
        let err = |e: ort::Error| TtsError::inference(engine, e);
        let n = ids.len();
        let input = Tensor::from_array(([1usize, n], ids)).map_err(err)?;
        let lengths = Tensor::from_array(([1usize], vec![n as i64])).map_err(err)?;
        let s = self.scales;
        let scales = Tensor::from_array((
            [3usize],
            vec![s.noise_scale, s.length_scale / speed, s.noise_w],
        ))
        .map_err(err)?;
        let sig = &self.signature;
        let mut inputs = ort::inputs![
            sig.input.as_str() => input,
            sig.lengths.as_str() => lengths,
            sig.scales.as_str() => scales,
        ];
        if let Some(sid) = &sig.sid {
            let sid_value = Tensor::from_array(([1usize], vec![speaker])).map_err(err)?;
            inputs.push((sid.as_str().into(), sid_value.into()));
        }
        // A poisoned lock only means another call panicked; the session keeps no per-call state.
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(inputs).map_err(err)?;
        let audio = outputs
            .get(&sig.audio)
            .ok_or_else(|| TtsError::inference(engine, "model returned no audio output"))?;
        let (_, samples) = audio.try_extract_tensor::<f32>().map_err(err)?;
        Ok(samples.to_vec())
    }
}

/// A speaker of a [`PiperModel`].
#[derive(Debug)]
pub struct PiperVoice {
    model: Arc<PiperModel>,
    name: String,
    speaker: i64,
    espeak_voice: String,
}

impl PiperVoice {
    /// `speaker` defaults to 0; `espeak_voice` to the model JSON's `espeak.voice`.
    pub fn new(
        model: Arc<PiperModel>,
        speaker: Option<i64>,
        espeak_voice: Option<&str>,
    ) -> Result<Self, TtsError> {
        let speaker = speaker.unwrap_or(0);
        if !(0..model.num_speakers).contains(&speaker) {
            return Err(TtsError::UnknownVoice {
                engine: "piper",
                voice: format!("{} speaker {speaker}", model.stem),
                available: format!("speakers 0..{}", model.num_speakers - 1),
            });
        }
        let espeak_voice = match (espeak_voice, &model.espeak_voice) {
            (Some(v), _) => v.to_string(),
            (None, Some(v)) => v.clone(),
            (None, None) if model.text_phonemes => String::new(),
            (None, None) => {
                return Err(TtsError::Config(format!(
                    "Piper voice {} names no espeak voice; set espeak_voice",
                    model.stem
                )))
            }
        };
        if !model.text_phonemes {
            check_voice(&espeak_voice)?;
        }
        let name = if model.num_speakers > 1 {
            format!("piper:{}#{speaker}", model.stem)
        } else {
            format!("piper:{}", model.stem)
        };
        Ok(PiperVoice {
            model,
            name,
            speaker,
            espeak_voice,
        })
    }
}

impl TtsEngine for PiperVoice {
    fn name(&self) -> &str {
        &self.name
    }

    fn sample_rate(&self) -> u32 {
        self.model.sample_rate
    }

    fn synthesize(&self, text: &str, speed: f32) -> Result<Vec<f32>, TtsError> {
        if text.trim().is_empty() {
            return Err(TtsError::EmptyText);
        }
        let phonemes = if self.model.text_phonemes {
            text.trim().to_string()
        } else {
            phonemize(text, &self.espeak_voice)?
        };
        if !phonemes.chars().any(char::is_alphabetic) {
            return Ok(Vec::new());
        }
        let ids = self.model.phoneme_ids(&phonemes);
        let mut audio = self
            .model
            .infer(&self.name, ids, self.speaker, effective_speed(speed))?;
        sanitize_audio(&mut audio);
        Ok(audio)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::config::piper_config_path;

    fn joe() -> Arc<PiperModel> {
        let model = piper_model();
        Arc::new(PiperModel::load(ort_env(), &model, &piper_config_path(&model), 2).unwrap())
    }

    #[test]
    fn piper_joe_speaks_english() {
        let voice = PiperVoice::new(joe(), None, None).unwrap();
        assert_eq!(voice.name(), "piper:en_US-joe-medium");
        assert_eq!(voice.sample_rate(), 22_050);
        let audio = voice
            .synthesize("Hello! This is Joe, speaking through Piper.", 1.0)
            .unwrap();
        assert_speech(&audio, 22_050, 0.5, "piper joe");
        write_wav("piper_en.wav", &audio, 22_050);
        let fast = voice
            .synthesize("Hello! This is Joe, speaking through Piper.", 2.0)
            .unwrap();
        assert!(
            fast.len() * 10 < audio.len() * 8,
            "speed shortens: {} vs {}",
            fast.len(),
            audio.len()
        );
    }

    /// A GPU planned but the loaded ONNX Runtime (the CPU wheel's, here) has no CUDA provider:
    /// the voice loads on the CPU and speaks.
    #[test]
    fn a_voice_planned_for_a_gpu_the_runtime_cannot_use_runs_on_the_cpu() {
        let gpu = crate::backend::device::Gpu {
            index: 0,
            name: "NVIDIA L4".into(),
        };
        let runtime = OnnxRuntime::load(&ort_dylib(), Some(gpu)).unwrap();
        let model = piper_model();
        let loaded = PiperModel::load(&runtime, &model, &piper_config_path(&model), 1).unwrap();
        assert_eq!(loaded.device(), &Device::Cpu);
        let voice = PiperVoice::new(Arc::new(loaded), None, None).unwrap();
        let audio = voice.synthesize("Still speaking.", 1.0).unwrap();
        assert_speech(&audio, 22_050, 0.3, "piper on the CPU after the GPU failed");
    }

    #[test]
    fn phoneme_ids_follow_piper_layout() {
        let model = joe();
        let id = |c: char| model.id_map[&c][0];
        let ids = model.phoneme_ids("hə");
        assert_eq!(
            ids,
            vec![
                id('^'),
                id('_'),
                id('h'),
                id('_'),
                id('ə'),
                id('_'),
                id('$')
            ]
        );
        // Precomposed ç is looked up decomposed; unknown characters are dropped.
        let ids = model.phoneme_ids("ç\u{1F600}");
        assert_eq!(
            ids,
            vec![
                id('^'),
                id('_'),
                id('c'),
                id('_'),
                id('\u{327}'),
                id('_'),
                id('$')
            ]
        );
    }

    #[test]
    fn bad_speaker_and_missing_files() {
        let model = joe();
        assert!(matches!(
            PiperVoice::new(model, Some(3), None),
            Err(TtsError::UnknownVoice { .. })
        ));
        let missing = Path::new("/nonexistent/voice.onnx");
        let err = PiperModel::load(ort_env(), missing, &piper_config_path(missing), 1).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/voice.onnx.json"),
            "{err}"
        );
    }
}
