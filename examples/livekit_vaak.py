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

This script needs no LiveKit server and no room: it drives the two plugins over a WAV file
exactly the way an `AgentSession` does for a recogniser and a voice that do not stream, i.e.
through the agents' adapters: `stt.StreamAdapter` (Silero VAD cuts the audio into turns, each
turn goes to vaak's `/v1/audio/transcriptions`) and `tts.StreamAdapter` (the reply is cut into
sentences, each streamed from vaak's `/v1/audio/speech`). It prints the transcript and writes
the spoken reply to a WAV file.

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
import wave

from livekit import rtc
from livekit.agents import inference, stt, tts
from livekit.plugins import openai

CHUNK_MS = 20  # what a room track delivers per audio frame


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


async def listen(recogniser: stt.STT, pcm: bytes, rate: int) -> list[stt.SpeechData]:
    """The user's turns in `pcm`, as an AgentSession hears them (VAD + non-streaming STT)."""
    # A pause of 0.8 s ends the user's turn (the VAD's default, 0.25 s, cuts sentences).
    vad = inference.VAD(model="silero", min_silence_duration=0.8)
    adapter = stt.StreamAdapter(stt=recogniser, vad=vad)
    stream = adapter.stream()
    step = rate * CHUNK_MS // 1000
    # The speech, then a second of silence so the VAD sees the turn end.
    padded = pcm + bytes(rate * 2)

    async def feed():
        for i in range(0, len(padded) // 2, step):
            chunk = padded[i * 2 : (i + step) * 2]
            stream.push_frame(rtc.AudioFrame(chunk, rate, 1, len(chunk) // 2))
            await asyncio.sleep(0)
        stream.end_input()

    feeder = asyncio.create_task(feed())
    heard = []
    async for ev in stream:
        if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT and ev.alternatives:
            heard.append(ev.alternatives[0])
    await feeder
    await stream.aclose()
    return heard


async def speak(voice: tts.TTS, text: str) -> tuple[bytes, int]:
    """`text` spoken as an AgentSession speaks a reply (sentence by sentence)."""
    adapter = tts.StreamAdapter(tts=voice)
    stream = adapter.stream()
    stream.push_text(text)
    stream.end_input()
    audio, rate = bytearray(), voice.sample_rate
    async for ev in stream:
        audio += ev.frame.data.tobytes()
        rate = ev.frame.sample_rate
    await stream.aclose()
    return bytes(audio), rate


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
    try:
        heard = await listen(recogniser, pcm, rate)
        audio, out_rate = await speak(voice, say)
    finally:
        await recogniser.aclose()
        await voice.aclose()
    write_wav(out, audio, out_rate)
    return {
        "transcript": " ".join(h.text.strip() for h in heard).strip(),
        "turns": len(heard),
        "language": str(heard[0].language) if heard else None,
        "audio_bytes": len(audio),
        "audio_s": round(len(audio) / 2 / out_rate, 3),
        "sample_rate": out_rate,
        "wav": out,
        "errors": [],
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
