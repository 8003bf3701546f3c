"""`VaakClient`: a conversation, a transcription or a synthesis in one call each."""

import array
import os
import sys
import time
import wave

import grpc

from . import events
from .v1 import vaak_pb2 as pb2
from .v1 import vaak_pb2_grpc as pb2_grpc

# The input rates the daemon accepts for PCM16 (proto AudioFormat).
PCM16_RATES = (8000, 16000, 24000, 48000)
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024),
                    ("grpc.max_send_message_length", 64 * 1024 * 1024)]


class VaakError(Exception):
    """A call failed: `code` is the gRPC status name (e.g. "INVALID_ARGUMENT"), `details` why."""

    def __init__(self, code, details):
        super().__init__("%s: %s" % (code, details))
        self.code = code
        self.details = details


def read_wav(path):
    """(PCM16 mono bytes, sample rate) of a 16-bit WAV; stereo is averaged to mono."""
    with wave.open(os.fspath(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError("%s: %d-bit samples; vaak takes 16-bit PCM" % (path, 8 * w.getsampwidth()))
        channels, rate = w.getnchannels(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if channels > 1:
        a = array.array("h", raw)
        if sys.byteorder != "little":
            a.byteswap()
        mono = array.array("h", (sum(a[i:i + channels]) // channels
                                 for i in range(0, len(a) - channels + 1, channels)))
        if sys.byteorder != "little":
            mono.byteswap()
        raw = mono.tobytes()
    return raw, rate


def _rpc_error(e):
    try:
        return VaakError(e.code().name, e.details())
    except Exception:  # noqa: BLE001 - not a call error: keep its text
        return VaakError("UNKNOWN", str(e))


class VaakClient:
    """A connection to `vaak serve`'s gRPC listener.

    `api_key` is sent as `authorization: Bearer ...`; `root_certificates` (PEM bytes) turns on
    TLS; `channel` hands over a ready-made `grpc.Channel` instead. Every call raises
    `VaakError` on a gRPC failure.
    """

    def __init__(self, target="127.0.0.1:50051", *, api_key=None, root_certificates=None,
                 channel=None, connect_timeout_s=10.0, timeout_s=60.0):
        if channel is not None:
            # A channel made by the caller (its own options); the client owns it from now on.
            self._channel = channel
        elif root_certificates is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(target, creds, options=_CHANNEL_OPTIONS)
        else:
            self._channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        try:
            grpc.channel_ready_future(self._channel).result(timeout=connect_timeout_s)
        except grpc.FutureTimeoutError:
            self._channel.close()
            raise VaakError("UNAVAILABLE", "cannot connect to %s within %.1f s"
                            % (target, connect_timeout_s)) from None
        self.stub = pb2_grpc.VaakStub(self._channel)
        self._metadata = [("authorization", "Bearer " + api_key)] if api_key else []
        self.timeout_s = timeout_s

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _unary(self, method, request, timeout_s):
        try:
            return method(request, metadata=self._metadata,
                          timeout=timeout_s if timeout_s is not None else self.timeout_s)
        except grpc.RpcError as e:
            raise _rpc_error(e) from None

    # ---- one-shot calls ------------------------------------------------------------------

    def transcribe(self, audio, *, sample_rate=16000, languages=(), timeout_s=None):
        """Recognise a WAV file (path) or PCM16 mono bytes at `sample_rate`."""
        if isinstance(audio, (str, os.PathLike)):
            audio, sample_rate = read_wav(audio)
        r = self._unary(self.stub.Transcribe, pb2.TranscribeRequest(
            audio=bytes(audio),
            format=pb2.AudioFormat(encoding=pb2.PCM16, sample_rate=sample_rate),
            languages=list(languages)), timeout_s)
        return events.Transcription(
            text=r.text, language=r.language, confidence=r.confidence,
            candidates=[events.LanguageScore(c.language, c.probability) for c in r.candidates],
            audio_s=r.audio_s, compute_s=r.compute_s)

    def synthesize(self, text, *, language="", voice="", sample_rate=0, speech_rate=0.0,
                   timeout_s=None):
        """Speak `text` (PCM16 at `sample_rate`, 0 = the voice's own rate)."""
        fmt = pb2.AudioFormat(encoding=pb2.PCM16, sample_rate=sample_rate) if sample_rate else None
        r = self._unary(self.stub.Synthesize, pb2.SynthesizeRequest(
            text=text, language=language, voice=voice, output_format=fmt,
            speech_rate=speech_rate), timeout_s)
        return events.Speech(audio=r.audio, sample_rate=r.sample_rate, voice=r.voice,
                             audio_s=r.audio_s)

    def list_voices(self, timeout_s=None):
        r = self._unary(self.stub.ListVoices, pb2.ListVoicesRequest(), timeout_s)
        return [events.Voice(v.name, v.language, v.sample_rate, v.is_default) for v in r.voices]

    def list_languages(self, timeout_s=None):
        r = self._unary(self.stub.ListLanguages, pb2.ListLanguagesRequest(), timeout_s)
        return [events.Language(l.code, l.name, l.voice) for l in r.languages]

    def delete_session(self, session_id, timeout_s=None):
        """Erase a session's stored history; True if there was one."""
        r = self._unary(self.stub.DeleteSession,
                        pb2.DeleteSessionRequest(session_id=session_id), timeout_s)
        return r.deleted

    # ---- a conversation ------------------------------------------------------------------

    def converse(self, audio=None, *, sample_rate=16000, texts=(), languages=(), voices=None,
                 preferred_language="", session_id="", text_only=False, barge_in=None,
                 speech_rate=0.0, output_sample_rate=0, chunk_ms=20, realtime=None,
                 timeout_s=None):
        """One Converse stream; yields typed events (see `vaak.events`) as they arrive.

        `audio` is a WAV path (sent in `chunk_ms` chunks at real time, as a microphone would)
        or an iterable of PCM16 mono byte chunks at `sample_rate` (a live microphone: sent as
        they come). `texts` are typed turns, sent after the audio. When the input ends the
        stream is half-closed: vaak finishes the utterance in progress, answers every turn, and
        ends the stream. Leaving the loop early cancels the call.
        """
        if isinstance(audio, (str, os.PathLike)):
            pcm, sample_rate = read_wav(audio)
            step = sample_rate * 2 * chunk_ms // 1000
            chunks = [pcm[i:i + step] for i in range(0, len(pcm), step)]
            realtime = True if realtime is None else realtime
        else:
            chunks = audio if audio is not None else ()
            realtime = False if realtime is None else realtime
        if sample_rate not in PCM16_RATES:
            raise ValueError("sample rate %d Hz: vaak takes PCM16 at %s Hz"
                             % (sample_rate, ", ".join(map(str, PCM16_RATES))))
        config = pb2.SessionConfig(
            session_id=session_id, languages=list(languages), voices=dict(voices or {}),
            input_format=pb2.AudioFormat(encoding=pb2.PCM16, sample_rate=sample_rate),
            text_only=text_only, speech_rate=speech_rate, preferred_language=preferred_language)
        if output_sample_rate:
            config.output_format.CopyFrom(
                pb2.AudioFormat(encoding=pb2.PCM16, sample_rate=output_sample_rate))
        if barge_in is not None:
            config.barge_in = barge_in

        def requests():
            yield pb2.ClientMessage(config=config)
            start = time.monotonic()
            sent_s = 0.0
            for chunk in chunks:
                if realtime:
                    ahead = start + sent_s - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                    sent_s += len(chunk) / (2.0 * sample_rate)
                yield pb2.ClientMessage(audio=bytes(chunk))
            for text in texts:
                yield pb2.ClientMessage(text=text)

        call = self.stub.Converse(requests(), metadata=self._metadata,
                                  timeout=timeout_s if timeout_s is not None else None)
        try:
            for server_event in call:
                event = events.from_proto(server_event)
                if event is not None:
                    yield event
        except grpc.RpcError as e:
            raise _rpc_error(e) from None
        finally:
            call.cancel()
