"""PCM helpers shared by the test clients (vaak_client.py, telephony_client.py): 16-bit PCM
<-> bytes, G.711 μ-law exactly as the Sun reference coder (and CPython's audioop, gone in 3.13),
levels, WAV in and out. Standard library only."""

import array
import math
import sys
import wave

_SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_mulaw_enc_table = None
_mulaw_dec_table = None


def write_wav(path, samples, rate):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16_to_bytes(samples))


def pcm16_from_bytes(b):
    a = array.array("h")
    a.frombytes(bytes(b[: len(b) // 2 * 2]))
    if sys.byteorder != "little":
        a.byteswap()
    return a


def pcm16_to_bytes(a):
    a = array.array("h", a)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def _mulaw_encode_one(s):
    """G.711 μ-law of one 16-bit sample (the Sun reference coder, as CPython's audioop)."""
    v = s >> 2
    if v < 0:
        v, mask = -v, 0x7F
    else:
        mask = 0xFF
    if v > 8159:
        v = 8159
    v += 0x84 >> 2
    seg = next((i for i, e in enumerate(_SEG_UEND) if v <= e), 8)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((v >> (seg + 1)) & 0xF)) ^ mask


def mulaw_encode(a):
    global _mulaw_enc_table
    if _mulaw_enc_table is None:
        _mulaw_enc_table = bytes(_mulaw_encode_one(v - 32768) for v in range(65536))
    t = _mulaw_enc_table
    return bytes(t[v + 32768] for v in a)


def mulaw_decode(b):
    global _mulaw_dec_table
    if _mulaw_dec_table is None:
        tab = []
        for u in range(256):
            u = ~u & 0xFF
            sign, exponent, mantissa = u & 0x80, (u >> 4) & 7, u & 0x0F
            s = (((mantissa << 3) + 0x84) << exponent) - 0x84
            tab.append(-s if sign else s)
        _mulaw_dec_table = tab
    t = _mulaw_dec_table
    return array.array("h", (t[x] for x in b))


def rms(a):
    if len(a) == 0:
        return 0.0
    return math.sqrt(sum(v * v for v in a) / len(a))


def dbfs(r):
    return round(20 * math.log10(r / 32768.0), 1) if r > 0 else None


def read_wav(path, error=ValueError):
    """Returns (samples as array('h'), sample_rate); mixes stereo down to mono. A file that is
    not a 16-bit PCM WAV raises `error` (each client passes its own failure type)."""
    try:
        w = wave.open(path, "rb")
    except (OSError, wave.Error, EOFError) as e:
        raise error("cannot read WAV %s: %s" % (path, e))
    with w:
        ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        raw = w.readframes(n)
    if width != 2:
        raise error("%s: only 16-bit PCM WAV is supported (sample width %d)" % (path, width))
    a = pcm16_from_bytes(raw)
    if ch > 1:
        a = array.array("h", (int(sum(a[i:i + ch]) / ch) for i in range(0, len(a) - ch + 1, ch)))
    return a, rate
