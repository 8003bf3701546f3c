"""Pipecat with vaak as its speech recogniser and voice.

Pipecat's own OpenAI services talk to vaak's OpenAI-compatible endpoints: point `base_url` at
vaak and use the model names `whisper-1` / `tts-1` (or vaak's `vaak-asr` / `vaak-tts`); OpenAI's
voice names (`alloy`, ...) mean the voice of the language the text is written in. This script
runs a real Pipecat pipeline over a WAV file instead of a microphone:

    WAV frames -> Silero VAD -> OpenAISTTService (vaak) -> Reply -> OpenAITTSService (vaak) -> Sink

The VAD cuts the user's speech into turns, the STT service sends each turn to vaak's
`/v1/audio/transcriptions`, `Reply` answers the first transcript with a fixed sentence (where a
real bot would put its LLM), and the TTS service streams that sentence from vaak's
`/v1/audio/speech`. The sink keeps the transcript and writes the reply to a WAV file.

Run it against a running `vaak serve` (its `[server] http_listen`, e.g. 127.0.0.1:8080):

    pip install 'pipecat-ai[openai]'         # or: eval "$(scripts/py-frameworks-env.sh)"
    python examples/pipecat_vaak.py --base-url http://127.0.0.1:8080/v1 \\
        --wav question.wav --language hi --say "नमस्ते, मैं आपकी मदद करूँगा।" --out reply.wav

`--api-key` (or OPENAI_API_KEY) is needed when vaak has `api_keys` configured. The WAV must be
16-bit PCM mono at 16 kHz (what Silero VAD takes).
"""

import argparse
import asyncio
import json
import os
import wave

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.transcriptions.language import Language
from pipecat.workers.runner import WorkerRunner

CHUNK_MS = 20  # what a transport delivers per audio frame


class Reply(FrameProcessor):
    """Answers the user's first transcript with `text` (where a bot's LLM would be)."""

    def __init__(self, text: str):
        super().__init__()
        self._text = text
        self._replied = False

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame) and not self._replied:
            self._replied = True
            await self.push_frame(TTSSpeakFrame(self._text))


class Sink(FrameProcessor):
    """The end of the pipeline: keeps transcripts, the reply's audio, and errors."""

    def __init__(self):
        super().__init__()
        self.transcripts: list[str] = []
        self.language: str | None = None
        self.audio = bytearray()
        self.sample_rate = 24000
        self.errors: list[str] = []
        self.reply_done = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            self.transcripts.append(frame.text)
            self.language = getattr(frame.result, "language", None)
        elif isinstance(frame, TTSAudioRawFrame):
            self.audio += frame.audio
            self.sample_rate = frame.sample_rate
        elif isinstance(frame, TTSStoppedFrame):
            self.reply_done.set()
        elif isinstance(frame, ErrorFrame):
            self.errors.append(frame.error)
            self.reply_done.set()
        await self.push_frame(frame, direction)


class Errors(FrameProcessor):
    """The head of the pipeline: services push their errors upstream, to here."""

    def __init__(self, sink: Sink):
        super().__init__()
        self._sink = sink

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, ErrorFrame) and direction == FrameDirection.UPSTREAM:
            self._sink.errors.append(frame.error)
            self._sink.reply_done.set()
        await self.push_frame(frame, direction)


def read_wav(path: str) -> tuple[bytes, int]:
    with wave.open(path, "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise SystemExit(f"{path}: need 16-bit PCM mono")
        return w.readframes(w.getnframes()), w.getframerate()


def write_wav(path: str, pcm: bytes, rate: int) -> None:
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


async def converse(
    *,
    base_url: str,
    api_key: str | None,
    wav: str,
    language: str,
    say: str,
    out: str,
    timeout_s: float = 120.0,
) -> dict:
    """Runs the pipeline over `wav`; returns what it heard and where the reply went."""
    pcm, rate = read_wav(wav)
    stt = OpenAISTTService(
        api_key=api_key,
        base_url=base_url,
        # Asks for `verbose_json`, whose `language` says what vaak heard.
        include_prob_metrics=True,
        settings=OpenAISTTService.Settings(model="whisper-1", language=Language(language)),
    )
    tts = OpenAITTSService(
        api_key=api_key,
        base_url=base_url,
        settings=OpenAITTSService.Settings(model="tts-1", voice="alloy"),
    )
    sink = Sink()
    pipeline = Pipeline(
        [
            Errors(sink),
            # A pause of 0.8 s ends the user's turn (Pipecat's default, 0.2 s, cuts sentences).
            VADProcessor(vad_analyzer=SileroVADAnalyzer(params=VADParams(stop_secs=0.8))),
            stt,
            Reply(say),
            tts,
            sink,
        ]
    )
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=rate, audio_out_sample_rate=24000),
        idle_timeout_secs=None,
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker, _frame):
        started.set()

    async def feed():
        await started.wait()
        # The WAV as a transport would deliver it, then a second of silence to end the turn.
        step = rate * 2 * CHUNK_MS // 1000
        padded = pcm + bytes(rate * 2)
        for i in range(0, len(padded), step):
            chunk = padded[i : i + step]
            await worker.queue_frame(InputAudioRawFrame(chunk, rate, 1))
            await asyncio.sleep(0)
        try:
            await asyncio.wait_for(sink.reply_done.wait(), timeout_s)
        except TimeoutError:
            sink.errors.append(f"no reply within {timeout_s} s")
        # A graceful end: the STT service transcribes any turn still queued first.
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), feed())

    write_wav(out, bytes(sink.audio), sink.sample_rate)
    return {
        "transcript": " ".join(t.strip() for t in sink.transcripts).strip(),
        "turns": len(sink.transcripts),
        "language": sink.language,
        "audio_bytes": len(sink.audio),
        "audio_s": round(len(sink.audio) / 2 / sink.sample_rate, 3),
        "sample_rate": sink.sample_rate,
        "wav": out,
        "errors": sink.errors,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8080/v1", help="vaak's /v1 URL")
    p.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "none"))
    p.add_argument("--wav", required=True, help="the user's speech: 16 kHz 16-bit mono WAV")
    p.add_argument("--language", default="en", help="ISO code of the speech, e.g. hi, en")
    p.add_argument("--say", default="Thank you. I heard you.", help="the reply to speak")
    p.add_argument("--out", default="reply.wav", help="where the spoken reply goes")
    a = p.parse_args()
    result = asyncio.run(
        converse(
            base_url=a.base_url,
            api_key=a.api_key,
            wav=a.wav,
            language=a.language,
            say=a.say,
            out=a.out,
        )
    )
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
