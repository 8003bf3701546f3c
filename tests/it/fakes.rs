//! Shared pieces of the turn-taking tests on scripted fake backends: the backends themselves and
//! a "user" who speaks a loud tone into a pipeline in real (paused) time.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use vaak::backend::asr::Asr;
use vaak::backend::fake::{EnergyVad, ScriptedAsr, ScriptedLlm, ToneBank};
use vaak::backend::Backends;
use vaak::config::Config;
use vaak::flow::Ingest;
use vaak::scheduler::CpuScheduler;

/// Energy VAD, the scripted ASR and LLM, and a tone for every voice.
pub fn backends(llm: Arc<ScriptedLlm>, asr: Arc<ScriptedAsr>) -> Arc<Backends> {
    backends_with_voices(llm, asr, Arc::new(ToneBank::default()))
}

/// As [`backends`], with another recogniser (a streaming one).
pub fn backends_with_asr(llm: Arc<ScriptedLlm>, asr: Arc<dyn Asr>) -> Arc<Backends> {
    backends_with_voices(llm, asr, Arc::new(ToneBank::default()))
}

/// As [`backends`], with a tone bank whose log the test reads.
pub fn backends_with_voices(
    llm: Arc<ScriptedLlm>,
    asr: Arc<dyn Asr>,
    tts: Arc<ToneBank>,
) -> Arc<Backends> {
    Arc::new(Backends {
        config: Arc::new(Config::default()),
        vad: Arc::new(EnergyVad { threshold: 0.05 }),
        asr,
        llm,
        tts,
        worker: None,
        cpu: CpuScheduler::new(1),
        devices: vaak::backend::Devices::cpu(),
    })
}

/// 20 ms chunks: `speech_ms` of loud tone then `silence_ms` of silence, in real (paused) time.
/// Panics if the pipeline stops taking audio.
pub async fn speak(tx: &mpsc::Sender<Ingest>, speech_ms: u32, silence_ms: u32) {
    for i in 0..(speech_ms + silence_ms) / 20 {
        let loud = i * 20 < speech_ms;
        let chunk: Vec<f32> = (0..320)
            .map(|n| {
                if loud {
                    ((n as f32) * 0.3).sin() * 0.5
                } else {
                    0.0
                }
            })
            .collect();
        tx.send(Ingest::Audio(chunk))
            .await
            .expect("the pipeline takes audio");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
