"""vaak under two voice frameworks, driven through the repository's own examples (so the
examples are what the test runs): `pipecat` runs examples/pipecat_vaak.py's Pipecat pipeline
(Silero VAD -> OpenAISTTService -> reply -> OpenAITTSService, by Pipecat's worker and runner)
and `livekit` runs examples/livekit_vaak.py (a LiveKit Agents `AgentSession` with Silero VAD,
livekit-plugins-openai STT and TTS and a fixed reply for an LLM, its audio input a WAV file and
its audio output a buffer: no LiveKit server, no room).

    frameworks_client.py pipecat|livekit --base-url http://127.0.0.1:PORT/v1 --api-key K \
        --wav CLIP.wav --language hi --say TEXT --out-dir DIR

Prints one JSON object: ok, the transcript, the language vaak reported, the user's turns (the
VAD's for Pipecat, the session's completed and answered ones for LiveKit), the reply's audio
(bytes, seconds, sample rate) and the WAV it was saved to (DIR/reply.wav).
Needs the venv of scripts/py-frameworks-env.sh."""

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import traceback

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples")
sys.path.insert(0, os.path.normpath(EXAMPLES))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("framework", choices=["pipecat", "livekit"])
    p.add_argument("--base-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--wav", required=True)
    p.add_argument("--language", required=True)
    p.add_argument("--say", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--timeout-s", type=float, default=240.0)
    a = p.parse_args()
    # Both frameworks log to stderr; keep it to what matters for a failure report.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if a.framework == "pipecat":
        from loguru import logger

        logger.remove()
        logger.add(sys.stderr, level="INFO")
        import pipecat_vaak as example
    else:
        import livekit_vaak as example

    out = {"framework": a.framework, "ok": False}
    t0 = time.monotonic()
    try:
        result = asyncio.run(
            asyncio.wait_for(
                example.converse(
                    base_url=a.base_url,
                    api_key=a.api_key,
                    wav=a.wav,
                    language=a.language,
                    say=a.say,
                    out=os.path.join(a.out_dir, "reply.wav"),
                ),
                a.timeout_s,
            )
        )
        out.update(result)
        out["ok"] = not result["errors"] and bool(result["transcript"])
    except BaseException as e:  # the test reports it
        out["exception"] = repr(e)
        out["traceback"] = traceback.format_exc()[-3000:]
    out["seconds"] = round(time.monotonic() - t0, 3)
    print(json.dumps(out, ensure_ascii=False), flush=True)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
