"""vaak's Python client: `VaakClient` for conversations, transcription and synthesis over gRPC.

The generated stubs are `vaak.v1.vaak_pb2` / `vaak.v1.vaak_pb2_grpc` (built from the
repository's proto when the package is installed).
"""

from .client import PCM16_RATES, VaakClient, VaakError, read_wav
from .events import (Backchannel, Error, Interrupted, Language, LanguageChanged,
                     LanguageDecision, LanguageScore, ReplyAudio, ReplyText, SessionStarted,
                     Speech, SpeechStarted, SpeechStopped, Transcript, Transcription,
                     TurnCompleted, TurnContinued, Voice)

__all__ = [
    "PCM16_RATES", "VaakClient", "VaakError", "read_wav", "Backchannel", "Error", "Interrupted",
    "Language", "LanguageChanged", "LanguageDecision", "LanguageScore", "ReplyAudio",
    "ReplyText", "SessionStarted", "Speech", "SpeechStarted", "SpeechStopped", "Transcript",
    "Transcription", "TurnCompleted", "TurnContinued", "Voice",
]
