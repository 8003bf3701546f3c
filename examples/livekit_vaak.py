"""LiveKit Agents with vaak as its speech recogniser and voice.

The `livekit-plugins-openai` STT and TTS talk to vaak's OpenAI-compatible endpoints: point
`base_url` at vaak and use the model names `whisper-1` / `tts-1` (or vaak's `vaak-asr` /
`vaak-tts`); OpenAI's voice names (`alloy`, ...) mean the voice of the language the text is in.
In an agent, pass them to the session as usual:

    session = AgentSession(
        vad=inference.VAD(model="silero"),
        stt=openai.STT(model="whisper-1", language="hi", base_url=VAAK, api_key=KEY),
        tts=openai.TTS(model="tts-1", voice="alloy", response_format="pcm",
                       base_url=VAAK, api_key=KEY),
        llm=...,
    )

This script runs such an `AgentSession` (VAD turn detection, interruptions by the VAD) with
no LiveKit server and no room: the session's audio input is a WAV file played in 20 ms frames at
the pace of a room track, then silence, and its audio output keeps what the session plays (and
reports each segment played out when it is flushed, as a sink must). There is no LLM: the agent
answers every user turn it completes with a fixed sentence (`session.say`). Under the session,
the agents' own `stt.StreamAdapter` has Silero VAD cut the audio into stretches of speech, each
sent to vaak's `/v1/audio/transcriptions`, and the reply is cut into sentences, each streamed
from vaak's `/v1/audio/speech`. It prints what the session heard and writes what it said to a
WAV file.

Run it against a running `vaak serve` (its `[server] http_listen`, e.g. 127.0.0.1:8080):

    pip install livekit-agents livekit-plugins-openai  # or: eval "$(scripts/py-frameworks-env.sh)"
    python examples/livekit_vaak.py --base-url http://127.0.0.1:8080/v1 \\
        --wav question.wav --language en --say "Good morning. How can I help?" --out reply.wav

`--api-key` (or OPENAI_API_KEY) is needed when vaak has `api_keys` configured. The WAV must be
16-bit PCM mono.
"""

import argparse
import asyncio
import json
import os
import time
import wave
from collections.abc import AsyncIterable

from livekit import rtc
from livekit.agents import Agent, AgentSession, ModelSettings, inference, llm, stt
from livekit.agents.voice import SpeechHandle, io
from livekit.agents.voice.events import (
    CloseEvent,
    ErrorEvent,
    UserInputTranscribedEvent,
    UserStateChangedEvent,
)
from livekit.plugins import openai

CHUNK_MS = 20  # what a room track delivers per audio frame
TAIL_S = 30.0  # most silence the input plays after the WAV before it ends
PENDING_TURN_S = 10.0  # longest wait for the reply to a turn the user ended


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


class WavInput(io.AudioInput):
    """The session's microphone: the WAV in 20 ms frames at the pace a room track delivers
    them, then silence (so the VAD hears the turn end) until the session closes."""

    def __init__(self, pcm: bytes, rate: int) -> None:
        super().__init__(label="vaak-wav-input")
        self._pcm, self._rate = pcm, rate
        self._step = rate * CHUNK_MS // 1000
        self._speech = -(-len(pcm) // 2 // self._step)  # frames of WAV, the last one padded
        self._total = self._speech + int(TAIL_S * 1000 / CHUNK_MS)
        self._sent = 0
        self._t0: float | None = None
        self.wav_done_at: float | None = None  # when the last frame of the WAV went out
        self.exhausted = False

    async def __anext__(self) -> rtc.AudioFrame:
        if self._sent >= self._total:
            self.exhausted = True
            raise StopAsyncIteration
        if self._t0 is None:
            self._t0 = time.monotonic()
        # Real time, without drift: frame i is due i * 20 ms after the first.
        delay = self._t0 + self._sent * CHUNK_MS / 1000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._sent < self._speech:
            chunk = self._pcm[self._sent * self._step * 2 : (self._sent + 1) * self._step * 2]
            chunk += bytes(self._step * 2 - len(chunk))
        else:
            chunk = bytes(self._step * 2)
        self._sent += 1
        if self._sent == self._speech:
            self.wav_done_at = time.monotonic()
        return rtc.AudioFrame(chunk, self._rate, 1, self._step)


class WavOutput(io.AudioOutput):
    """The session's speaker: keeps the frames the session plays, at `rate` (the session
    resamples to it). A segment (what the session captures between two flushes) counts as
    played out when it is flushed; a cleared one as interrupted where it stopped."""

    def __init__(self, rate: int) -> None:
        super().__init__(
            label="vaak-wav-output",
            capabilities=io.AudioOutputCapabilities(pause=False),
            sample_rate=rate,
        )
        self.audio = bytearray()
        self._segment_s: float | None = None  # None: no segment being captured

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._segment_s is None:
            self._segment_s = 0.0
            self.on_playback_started(created_at=time.time())
        self.audio += frame.data.tobytes()
        self._segment_s += frame.samples_per_channel / frame.sample_rate

    def _finish(self, *, interrupted: bool) -> None:
        if self._segment_s is not None:
            played, self._segment_s = self._segment_s, None
            self.on_playback_finished(playback_position=played, interrupted=interrupted)

    def flush(self) -> None:
        super().flush()
        self._finish(interrupted=False)

    def clear_buffer(self) -> None:
        self._finish(interrupted=True)


class FixedReplyAgent(Agent):
    """An agent without an LLM: it answers every turn the user completes with `reply`. Its
    STT node is the default one (Silero VAD + the non-streaming recogniser, through the
    agents' `stt.StreamAdapter`), watched to know when the user is quiet and heard."""

    def __init__(self, reply: str) -> None:
        super().__init__(instructions="Answer every user turn with a fixed sentence.")
        self.reply = reply
        self.turns: list[str] = []
        self.replies: list[SpeechHandle] = []
        self.last_turn_at = 0.0
        self.segments_started = 0  # stretches of speech the STT node's VAD cut
        self.segments_ended = 0

    async def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterable[stt.SpeechEvent | str]:
        async for ev in Agent.default.stt_node(self, audio, model_settings):
            if isinstance(ev, stt.SpeechEvent):
                if ev.type == stt.SpeechEventType.START_OF_SPEECH:
                    self.segments_started += 1
                elif ev.type == stt.SpeechEventType.END_OF_SPEECH:
                    self.segments_ended += 1
            yield ev

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        self.turns.append(new_message.text_content or "")
        self.last_turn_at = time.monotonic()
        self.replies.append(self.session.say(self.reply))
        # No LLM is set, so the session generates nothing more for this turn.


async def converse(
    *, base_url: str, api_key: str, wav: str, language: str, say: str, out: str
) -> dict:
    """Hears `wav`, speaks `say` to `out`; returns what it heard and where the reply went."""
    pcm, rate = read_wav(wav)
    recogniser = openai.STT(
        model="whisper-1", language=language, base_url=base_url, api_key=api_key
    )
    voice = openai.TTS(
        model="tts-1", voice="alloy", response_format="pcm", base_url=base_url, api_key=api_key
    )
    # A pause of 0.8 s ends a stretch of speech (the VAD's default, 0.25 s, cuts sentences).
    vad = inference.VAD(model="silero", min_silence_duration=0.8)
    session = AgentSession(
        stt=recogniser,
        tts=voice,
        vad=vad,
        turn_handling={
            "turn_detection": "vad",
            # The user's turn ends 1.5 s after the VAD's end of speech, so a pause for breath
            # (or a VAD running late on a busy machine) does not cut a sentence in two.
            "endpointing": {"min_delay": 1.5},
            # Barge-in by the VAD (the "adaptive" detector is a LiveKit Cloud service); a file
            # cannot pause, so an interrupted reply stays interrupted.
            "interruption": {"mode": "vad", "resume_false_interruption": False},
        },
        # A file is no loudspeaker: nothing echoes back into the input to wait out.
        aec_warmup_duration=None,
        user_away_timeout=None,
        # converse() closes the session once every transcript is in: nothing to wait for.
        session_close_transcript_timeout=0.2,
    )
    mic, speaker = WavInput(pcm, rate), WavOutput(voice.sample_rate)
    agent = FixedReplyAgent(say)
    finals: list[UserInputTranscribedEvent] = []
    errors: list[str] = []
    seen = {"recognised": 0, "last_final_at": 0.0, "user_speaking": False, "unanswered": False}

    @recogniser.on("metrics_collected")
    def _recognised(_) -> None:  # one per answered /v1/audio/transcriptions request
        seen["recognised"] += 1

    @session.on("user_input_transcribed")
    def _heard(ev: UserInputTranscribedEvent) -> None:
        if ev.is_final and ev.transcript.strip():
            finals.append(ev)
            seen["last_final_at"] = time.monotonic()

    @session.on("user_state_changed")
    def _user(ev: UserStateChangedEvent) -> None:
        seen["user_speaking"] = ev.new_state == "speaking"

    @session.on("error")
    def _error(ev: ErrorEvent) -> None:
        if not getattr(ev.error, "recoverable", False):
            errors.append(repr(ev.error))

    @session.on("close")
    def _closed(ev: CloseEvent) -> None:
        if ev.error is not None:
            errors.append(repr(ev.error))

    def finished() -> bool:
        """The WAV has played, the user is quiet, every stretch of their speech has been
        transcribed, every transcript is in a turn the agent answered, and every answer has
        played out."""
        if errors or mic.exhausted:
            return True
        if mic.wav_done_at is None or time.monotonic() - mic.wav_done_at < 1.0:
            return False
        if seen["user_speaking"] or agent.segments_started > agent.segments_ended:
            return False
        if seen["recognised"] < agent.segments_ended:
            return False  # a transcription is in flight
        if seen["last_final_at"] > agent.last_turn_at:  # heard, but in no turn yet
            if time.monotonic() - seen["last_final_at"] < PENDING_TURN_S:
                return False
            seen["unanswered"] = True
        return all(h.done() for h in agent.replies)

    session.input.audio = mic
    session.output.audio = speaker
    try:
        await session.start(agent=agent)  # no room: the session's I/O is set above
        while not finished():
            await asyncio.sleep(0.1)
    finally:
        await session.aclose()
        await recogniser.aclose()
        await voice.aclose()
    out_rate = speaker.sample_rate
    audio = bytes(speaker.audio)
    write_wav(out, audio, out_rate)
    return {
        "transcript": " ".join(ev.transcript.strip() for ev in finals).strip(),
        "turns": len(agent.turns),
        "language": str(finals[0].language) if finals and finals[0].language else None,
        "replies": len(agent.replies),
        "stt_requests": seen["recognised"],
        "unanswered_transcript": seen["unanswered"],  # gave up waiting for its turn
        "audio_bytes": len(audio),
        "audio_s": round(len(audio) / 2 / out_rate, 3),
        "sample_rate": out_rate,
        "wav": out,
        "errors": errors,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8080/v1", help="vaak's /v1 URL")
    p.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "none"))
    p.add_argument("--wav", required=True, help="the user's speech: 16-bit mono WAV")
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
