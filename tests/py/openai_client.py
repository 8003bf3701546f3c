"""vaak's OpenAI-compatible speech endpoints driven by the official `openai` Python client
(never a hand-rolled request): transcriptions (json, text, verbose_json), speech (wav and pcm,
streamed to a file), the model list, and the errors a client meets (bad key, unknown model,
unsupported format). Prints one JSON object with what each step saw."""

import argparse
import asyncio
import json
import sys
import time

import openai


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--limited-key", required=True, help="a key limited to a burst of one")
    p.add_argument("--hi-clip", required=True)
    p.add_argument("--en-clip", required=True)
    p.add_argument("--out-dir", required=True)
    a = p.parse_args()
    c = openai.OpenAI(base_url=a.base_url, api_key=a.key, max_retries=0, timeout=300)
    out = {}

    def step(name, fn):
        t0 = time.monotonic()
        try:
            out[name] = fn()
        except openai.APIStatusError as e:
            out[name] = {"error_status": e.status_code, "error_body": e.body}
        except Exception as e:  # the test reports it
            out[name] = {"exception": repr(e)}
        if isinstance(out[name], dict):
            out[name]["seconds"] = round(time.monotonic() - t0, 3)

    step("models", lambda: {"ids": [m.id for m in c.models.list()]})
    with open(a.hi_clip, "rb") as f:
        step("hi_json", lambda: {"text": c.audio.transcriptions.create(
            model="whisper-1", file=f, language="hi").text})
    with open(a.en_clip, "rb") as f:
        def verbose():
            v = c.audio.transcriptions.create(
                model="vaak-asr", file=f, response_format="verbose_json")
            return {"text": v.text, "language": v.language, "duration": v.duration,
                    "segments": len(v.segments or [])}
        step("en_verbose", verbose)
    with open(a.en_clip, "rb") as f:
        step("en_text", lambda: {"text": c.audio.transcriptions.create(
            model="whisper-1", file=f, response_format="text")})

    def speak(name, **kw):
        path = f"{a.out_dir}/{name}"
        t0 = time.monotonic()
        first = None
        n = 0
        with c.audio.speech.with_streaming_response.create(model="tts-1", **kw) as r:
            with open(path, "wb") as f:
                for chunk in r.iter_bytes():
                    if first is None and chunk:
                        first = time.monotonic() - t0
                    n += len(chunk)
                    f.write(chunk)
            voice = r.headers.get("x-vaak-voice")
        return {"path": path, "bytes": n, "first_bytes_s": first, "voice": voice}

    step("speech_en_wav", lambda: speak(
        "en.wav", voice="alloy", response_format="wav",
        input="Good morning. The train to Chennai leaves at ten. Please be on time."))
    step("speech_hi_pcm", lambda: speak(
        "hi.pcm", voice="alloy", response_format="pcm",
        input="नमस्ते। आज मौसम बहुत अच्छा है।"))

    bad = openai.OpenAI(base_url=a.base_url, api_key="not-the-key-0123456789", max_retries=0)
    step("bad_key", lambda: {"ids": [m.id for m in bad.models.list()]})
    # A wrong key on an upload (the async client, as Pipecat uses it): a 401, not a reset
    # connection, even though vaak refuses before it has read the file.
    async def bad_key_upload():
        async with openai.AsyncOpenAI(base_url=a.base_url, api_key="not-the-key-0123456789",
                                      max_retries=0) as client:
            with open(a.en_clip, "rb") as f:
                return {"text": (await client.audio.transcriptions.create(
                    model="whisper-1", file=f)).text}
    step("bad_key_upload", lambda: asyncio.run(bad_key_upload()))

    def said(**kw):
        return {"bytes": len(c.audio.speech.create(**kw).read())}

    step("bad_model", lambda: said(model="gpt-9", voice="alloy", input="hello"))
    step("bad_format", lambda: said(
        model="tts-1", voice="alloy", input="hello", response_format="mp3"))
    step("bad_voice", lambda: said(model="tts-1", voice="no-such-voice", input="hello"))
    with open(a.en_clip, "rb") as f:
        step("bad_language", lambda: {"text": c.audio.transcriptions.create(
            model="whisper-1", file=f, language="xx").text})
    step("not_wav", lambda: {"text": c.audio.transcriptions.create(
        model="whisper-1", file=("note.txt", b"this is not audio", "text/plain")).text})
    step("empty_file", lambda: {"text": c.audio.transcriptions.create(
        model="whisper-1", file=("empty.wav", b"", "audio/wav")).text})
    # An hour of 16 kHz audio: past the upload limit (413), refused before it is read whole.
    hour = b"RIFF" + b"\0" * (16_000 * 2 * 3600)
    step("too_large", lambda: {"text": c.audio.transcriptions.create(
        model="whisper-1", file=("hour.wav", hour, "audio/wav")).text})
    # The client's generic POST sends JSON: the wrong content type for a transcription.
    step("not_multipart", lambda: {"body": str(c.post(
        "/audio/transcriptions", body={"model": "whisper-1"}, cast_to=object))})
    step("too_long", lambda: said(model="tts-1", voice="alloy", input="a" * 2001))
    # Another tenant's key with a per-minute limit: its burst, then 429 (the first tenant's
    # requests above do not count against it).
    small = openai.OpenAI(base_url=a.base_url, api_key=a.limited_key, max_retries=0)
    step("rate_first", lambda: {"bytes": len(small.audio.speech.create(
        model="tts-1", voice="alloy", input="hello").read())})
    step("rate_limited", lambda: {"bytes": len(small.audio.speech.create(
        model="tts-1", voice="alloy", input="hello again").read())})
    out["ok"] = True
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
