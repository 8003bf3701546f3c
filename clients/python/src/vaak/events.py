"""Typed views of vaak's server events and one-shot results (plain dataclasses, no protobuf)."""

import wave
from dataclasses import dataclass, fields
from typing import Dict, List


@dataclass
class SessionStarted:
    session_id: str
    resumed: bool
    history_turns: int
    output_sample_rate: int


@dataclass
class SpeechStarted:
    pass


@dataclass
class SpeechStopped:
    turn: int
    audio_s: float


@dataclass
class Transcript:
    """What was heard: partials grow while the user speaks (`stable` is the committed part)."""
    turn: int
    text: str
    language: str
    confidence: float
    is_final: bool
    stable: str


@dataclass
class LanguageDecision:
    turn: int
    language: str
    detected: str
    confidence: float
    reason: str
    mixed_with_english: bool


@dataclass
class LanguageChanged:
    turn: int
    from_: str
    to: str


@dataclass
class ReplyText:
    """One clause of the reply, sent just before its audio (captions)."""
    turn: int
    text: str


@dataclass
class ReplyAudio:
    """PCM16 (or mu-law, as configured) reply audio; `offset_samples` within the turn's reply."""
    turn: int
    audio: bytes
    offset_samples: int
    sample_rate: int


@dataclass
class TurnCompleted:
    turn: int
    reply_text: str
    timings: Dict[str, float]
    voice: str
    language: str


@dataclass
class Interrupted:
    turn: int
    played_s: float
    kept_text: str


@dataclass
class TurnContinued:
    turn: int


@dataclass
class Backchannel:
    turn: int
    text: str


@dataclass
class Error:
    """A failure the session survives (`asr_failed`, `bad_audio`, ...); `turn` 0 = not one turn."""
    code: str
    message: str
    turn: int


# The proto's oneof field name -> its event type.
EVENT_TYPES = {
    "session_started": SessionStarted,
    "speech_started": SpeechStarted,
    "speech_stopped": SpeechStopped,
    "transcript": Transcript,
    "language_decision": LanguageDecision,
    "language_changed": LanguageChanged,
    "reply_text": ReplyText,
    "reply_audio": ReplyAudio,
    "turn_completed": TurnCompleted,
    "interrupted": Interrupted,
    "turn_continued": TurnContinued,
    "backchannel": Backchannel,
    "error": Error,
}

# Events after which a turn has nothing more to say.
TURN_ENDS = (TurnCompleted, Interrupted, TurnContinued, Backchannel)


def from_proto(server_event):
    """The typed event of one `vaak.v1.ServerEvent` (None for a kind this client does not know)."""
    kind = server_event.WhichOneof("event")
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        return None
    msg = getattr(server_event, kind)
    values = {}
    for f in fields(cls):
        if f.name == "timings":
            values["timings"] = {d.name: getattr(msg.timings, d.name)
                                 for d in msg.timings.DESCRIPTOR.fields}
        elif f.name == "output_sample_rate":
            values[f.name] = msg.output_format.sample_rate
        else:
            values[f.name] = getattr(msg, f.name.rstrip("_"))
    return cls(**values)


@dataclass
class LanguageScore:
    language: str
    probability: float


@dataclass
class Transcription:
    text: str
    language: str
    confidence: float
    candidates: List[LanguageScore]
    audio_s: float
    compute_s: float


@dataclass
class Speech:
    """Synthesized PCM16 mono audio."""
    audio: bytes
    sample_rate: int
    voice: str
    audio_s: float

    def save_wav(self, path):
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            w.writeframes(self.audio)


@dataclass
class Voice:
    name: str
    language: str
    sample_rate: int
    is_default: bool


@dataclass
class Language:
    code: str
    name: str
    voice: str

