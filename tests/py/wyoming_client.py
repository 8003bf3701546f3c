"""vaak's Wyoming server driven by the `wyoming` package (PyPI), as Home Assistant drives a
speech service: describe/info, transcribe (Hindi and English clips streamed in chunks),
synthesize (Hindi and English, written to WAV files), a whole turn for the agent (transcript →
handled → the answer spoken), and bad input: a client that disconnects mid-audio, a malformed
event, an unknown voice. Prints one JSON object with what each step saw."""

import argparse
import asyncio
import json
import sys
import time
import wave

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice


async def until(client, want, limit=300):
    """Events until one of the types `want` (or an error) arrives."""
    seen = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        ev = await asyncio.wait_for(client.read_event(), deadline - time.monotonic())
        if ev is None:
            return None, seen
        seen.append(ev)
        if ev.type in want or Error.is_type(ev.type):
            return ev, seen
    return None, seen


async def transcribe(host, port, path, language):
    with wave.open(path, "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        frames = w.readframes(w.getnframes())
    async with AsyncTcpClient(host, port) as c:
        await c.write_event(Transcribe(language=language).event())
        await c.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        step = 1024 * width * channels
        for i in range(0, len(frames), step):
            await c.write_event(AudioChunk(rate=rate, width=width, channels=channels,
                                           audio=frames[i:i + step]).event())
        await c.write_event(AudioStop().event())
        ev, _ = await until(c, {"transcript"})
        if ev is None or Error.is_type(ev.type):
            return {"error": ev.data if ev else "no answer"}
        t = Transcript.from_event(ev)
        return {"text": t.text, "language": t.language}


async def collect_audio(c, path):
    """audio-start, chunks, audio-stop → a WAV file; the first chunk's delay."""
    t0 = time.monotonic()
    first = None
    ev, _ = await until(c, {"audio-start"})
    if ev is None or Error.is_type(ev.type):
        return {"error": ev.data if ev else "no audio-start"}
    start = AudioStart.from_event(ev)
    pcm = b""
    while True:
        ev = await asyncio.wait_for(c.read_event(), 300)
        if ev is None:
            return {"error": "closed mid-audio"}
        if AudioChunk.is_type(ev.type):
            if first is None:
                first = time.monotonic() - t0
            pcm += AudioChunk.from_event(ev).audio
        elif AudioStop.is_type(ev.type):
            break
    with wave.open(path, "wb") as w:
        w.setnchannels(start.channels)
        w.setsampwidth(start.width)
        w.setframerate(start.rate)
        w.writeframes(pcm)
    return {"path": path, "rate": start.rate, "seconds": len(pcm) / 2 / start.rate,
            "first_chunk_s": first}


async def synthesize(host, port, text, voice, path):
    async with AsyncTcpClient(host, port) as c:
        await c.write_event(Synthesize(text=text, voice=voice).event())
        return await collect_audio(c, path)


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--hi-clip", required=True)
    p.add_argument("--en-clip", required=True)
    p.add_argument("--out-dir", required=True)
    a = p.parse_args()
    h, port = a.host, a.port
    out = {}

    async with AsyncTcpClient(h, port) as c:
        await c.write_event(Describe().event())
        ev, _ = await until(c, {"info"})
        info = Info.from_event(ev)
        out["info"] = {
            "asr_languages": info.asr[0].models[0].languages if info.asr else [],
            "voices": [v.name for v in info.tts[0].voices] if info.tts else [],
            "handle": [m.name for m in info.handle[0].models] if info.handle else [],
        }

    out["hi"] = await transcribe(h, port, a.hi_clip, "hi")
    out["en"] = await transcribe(h, port, a.en_clip, None)
    out["speak_hi"] = await synthesize(h, port, "नमस्ते। आज मौसम बहुत अच्छा है।",
                                       SynthesizeVoice(language="hi"), f"{a.out_dir}/hi.wav")
    out["speak_en"] = await synthesize(h, port, "Good morning. The train leaves at ten.",
                                       None, f"{a.out_dir}/en.wav")
    out["bad_voice"] = await synthesize(h, port, "hello", SynthesizeVoice(name="nobody"),
                                        f"{a.out_dir}/x.wav")

    async with AsyncTcpClient(h, port) as c:
        await c.write_event(Transcript(text="What is the capital of India?",
                                       language="en").event())
        ev, _ = await until(c, {"handled", "not-handled"})
        if ev is not None and Handled.is_type(ev.type):
            out["turn"] = {"answer": Handled.from_event(ev).text}
            out["turn"]["spoken"] = await collect_audio(c, f"{a.out_dir}/answer.wav")
        else:
            out["turn"] = {"error": ev.data if ev else "no answer"}

    # A client that goes away mid-audio, then one that sends garbage: each loses only itself.
    async with AsyncTcpClient(h, port) as c:
        await c.write_event(Transcribe(language="en").event())
        await c.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        await c.write_event(AudioChunk(rate=16000, width=2, channels=1,
                                       audio=b"\0" * 3200).event())
    r, w = await asyncio.open_connection(h, port)
    w.write(b"this is not an event\n")
    await w.drain()
    line = await asyncio.wait_for(r.readline(), 30)
    header = json.loads(line)
    data = json.loads(await r.readexactly(header.get("data_length", 0))) if header.get(
        "data_length") else header.get("data", {})
    closed = await asyncio.wait_for(r.read(1), 30) == b""
    w.close()
    out["garbage"] = {"type": header.get("type"), "data": data, "closed": closed}
    async with AsyncTcpClient(h, port) as c:
        await c.write_event(Describe().event())
        ev, _ = await until(c, {"info"})
        out["still_serving"] = ev is not None and Info.is_type(ev.type)
    out["ok"] = True
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
