#!/usr/bin/env python3
"""Generate src/text/speech/lexicon_data.rs from the reviewed tables in assets/lexicon/*.toml.

    python3 scripts/gen_lexicon.py            # validate, check golden.tsv, write the Rust file
    python3 scripts/gen_lexicon.py --check    # validate and fail if the Rust file is out of date
    python3 scripts/gen_lexicon.py --print LANG N [N ...]   # print cardinals as the runtime says them

Python 3.11+ standard library only (tomllib); no network. Exits non-zero with a message naming
the file and field on any violation:
  - every string NFC-normalised, no U+200B (nor U+200C/U+200D/U+FEFF);
  - every word only in its language's script block, plus spaces, hyphens and apostrophes (and
    ASCII letters for `en`); written forms (abbreviations, ordinal suffixes) may also use '.';
  - array lengths (100 / 10 / 12), no empty required strings, placeholders in the patterns;
  - golden.tsv: every row's expected words equal what the composition below produces.

The composition mirrors src/text/speech/numbers.rs::cardinal exactly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEX_DIR = os.path.join(ROOT, "assets", "lexicon")
OUT = os.path.join(ROOT, "src", "text", "speech", "lexicon_data.rs")
GOLDEN = os.path.join(LEX_DIR, "golden.tsv")

LANGS = ["en", "hi", "bn", "ta", "te", "mr", "gu", "kn", "ml", "pa", "ur", "or"]
# Unicode block of each language's script (inclusive).
SCRIPT = {
    "hi": (0x0900, 0x097F, "Devanagari"),
    "mr": (0x0900, 0x097F, "Devanagari"),
    "bn": (0x0980, 0x09FF, "Bengali"),
    "pa": (0x0A00, 0x0A7F, "Gurmukhi"),
    "gu": (0x0A80, 0x0AFF, "Gujarati"),
    "or": (0x0B00, 0x0B7F, "Odia"),
    "ta": (0x0B80, 0x0BFF, "Tamil"),
    "te": (0x0C00, 0x0C7F, "Telugu"),
    "kn": (0x0C80, 0x0CFF, "Kannada"),
    "ml": (0x0D00, 0x0D7F, "Malayalam"),
    "ur": (0x0600, 0x06FF, "Arabic"),
}
FORBIDDEN = {"\u200b": "ZERO WIDTH SPACE", "\u200c": "ZERO WIDTH NON-JOINER",
             "\u200d": "ZERO WIDTH JOINER", "\ufeff": "BYTE ORDER MARK"}
SCALES = ("thousand", "lakh", "crore")
SCALE_FIELDS = ("one", "one_joined", "many", "many_joined")
SIMPLE = ("one_before_noun", "minus", "point", "percent", "rupee_one", "rupee_many", "paisa_one", "paisa_many")


class LexError(Exception):
    pass


# ---------------------------------------------------------------- validation


def check_text(lang: str, where: str, s: object, *, written: bool = False, empty_ok: bool = False,
               pattern: bool = False) -> str:
    """Validate one string; `written` allows '.', `pattern` allows {placeholders} and ','."""
    if not isinstance(s, str):
        raise LexError(f"{lang}.toml: {where}: expected a string, got {s!r}")
    if not s.strip():
        if empty_ok and s == "":
            return s
        raise LexError(f"{lang}.toml: {where}: empty string")
    if s != s.strip() or "  " in s:
        raise LexError(f"{lang}.toml: {where}: leading/trailing or double spaces in {s!r}")
    if unicodedata.normalize("NFC", s) != s:
        raise LexError(f"{lang}.toml: {where}: {s!r} is not NFC-normalised")
    for ch, name in FORBIDDEN.items():
        if ch in s:
            raise LexError(f"{lang}.toml: {where}: {s!r} contains {name} (U+{ord(ch):04X})")
    body = s
    if pattern:
        for ph in ("{h}", "{m}", "{d}", "{month}", "{y}"):
            body = body.replace(ph, "")
    for ch in body:
        if ch in " -'":
            continue
        if written and ch == ".":
            continue
        if pattern and ch in ",":
            continue
        cp = ord(ch)
        if lang == "en":
            if ("a" <= ch <= "z") or ("A" <= ch <= "Z"):
                continue
            raise LexError(f"{lang}.toml: {where}: {s!r} has {ch!r} (U+{cp:04X}); en allows ASCII letters only")
        lo, hi, name = SCRIPT[lang]
        if not lo <= cp <= hi:
            raise LexError(
                f"{lang}.toml: {where}: {s!r} has {ch!r} (U+{cp:04X} {unicodedata.name(ch, '?')}), "
                f"outside the {name} block U+{lo:04X}-U+{hi:04X}")
    return s


def check_array(lang: str, where: str, xs: object, n: int | None) -> list:
    if not isinstance(xs, list):
        raise LexError(f"{lang}.toml: {where}: expected an array")
    if n is not None and len(xs) != n:
        raise LexError(f"{lang}.toml: {where}: expected {n} entries, found {len(xs)}")
    return xs


def load(lang: str) -> dict:
    path = os.path.join(LEX_DIR, f"{lang}.toml")
    try:
        with open(path, "rb") as f:
            t = tomllib.load(f)
    except FileNotFoundError:
        raise LexError(f"missing {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise LexError(f"{lang}.toml: TOML error: {e}") from None
    if t.get("lang") != lang:
        raise LexError(f"{lang}.toml: lang = {t.get('lang')!r}, expected {lang!r}")
    known = {"lang", "below_100", "hundreds", "hundreds_joined", *SCALES, *SIMPLE,
             "rupee_abbreviations", "money_and", "oblique_before_noun", "ordinal_suffixes", "ordinal_irregular",
             "ordinal_spoken", "ordinal_sandhi", "months", "time_hm", "time_h", "date", "abbreviations"}
    unknown = set(t) - known
    if unknown:
        raise LexError(f"{lang}.toml: unknown keys {sorted(unknown)}")

    for i, w in enumerate(check_array(lang, "below_100", t.get("below_100"), 100)):
        check_text(lang, f"below_100[{i}]", w)
    for key in ("hundreds", "hundreds_joined"):
        xs = check_array(lang, key, t.get(key), 10)
        if xs[0] != "":
            raise LexError(f"{lang}.toml: {key}[0] must be \"\"")
        for i in range(1, 10):
            check_text(lang, f"{key}[{i}]", xs[i])
    for sc in SCALES:
        d = t.get(sc)
        if not isinstance(d, dict) or set(d) != set(SCALE_FIELDS):
            raise LexError(f"{lang}.toml: {sc} must be a table with exactly {', '.join(SCALE_FIELDS)}")
        for k in SCALE_FIELDS:
            check_text(lang, f"{sc}.{k}", d[k])
    for k in SIMPLE:
        check_text(lang, k, t.get(k))
    check_text(lang, "money_and", t.get("money_and"), empty_ok=True)
    if not isinstance(t.get("oblique_before_noun"), bool):
        raise LexError(f"{lang}.toml: oblique_before_noun must be true or false")
    for i, a in enumerate(check_array(lang, "rupee_abbreviations", t.get("rupee_abbreviations"), None)):
        check_text(lang, f"rupee_abbreviations[{i}]", a, written=True)

    sfx = check_array(lang, "ordinal_suffixes", t.get("ordinal_suffixes"), None)
    if not sfx:
        raise LexError(f"{lang}.toml: ordinal_suffixes is empty")
    for i, s in enumerate(sfx):
        check_text(lang, f"ordinal_suffixes[{i}]", s, written=True)
    if len(set(sfx)) != len(sfx):
        raise LexError(f"{lang}.toml: ordinal_suffixes has duplicates")
    for i, e in enumerate(check_array(lang, "ordinal_irregular", t.get("ordinal_irregular"), None)):
        if not (isinstance(e, list) and len(e) == 3 and isinstance(e[0], int) and e[0] >= 0):
            raise LexError(f"{lang}.toml: ordinal_irregular[{i}] must be [n, suffix, word]")
        check_text(lang, f"ordinal_irregular[{i}] suffix", e[1], written=True, empty_ok=True)
        if e[1] and e[1] not in sfx:
            raise LexError(f"{lang}.toml: ordinal_irregular[{i}]: suffix {e[1]!r} not in ordinal_suffixes")
        check_text(lang, f"ordinal_irregular[{i}] word", e[2])
    spoken = {}
    for i, e in enumerate(check_array(lang, "ordinal_spoken", t.get("ordinal_spoken"), None)):
        if not (isinstance(e, list) and len(e) == 2):
            raise LexError(f"{lang}.toml: ordinal_spoken[{i}] must be [suffix, ending]")
        check_text(lang, f"ordinal_spoken[{i}] suffix", e[0], written=True)
        if e[0] not in sfx:
            raise LexError(f"{lang}.toml: ordinal_spoken[{i}]: suffix {e[0]!r} not in ordinal_suffixes")
        check_text(lang, f"ordinal_spoken[{i}] ending", e[1])
        spoken[e[0]] = e[1]
    for i, e in enumerate(check_array(lang, "ordinal_sandhi", t.get("ordinal_sandhi", []), None)):
        if not (isinstance(e, list) and len(e) == 3):
            raise LexError(f"{lang}.toml: ordinal_sandhi[{i}] must be [ending, final, replacement]")
        if e[0] not in spoken.values():
            raise LexError(f"{lang}.toml: ordinal_sandhi[{i}]: ending {e[0]!r} is not in ordinal_spoken")
        check_text(lang, f"ordinal_sandhi[{i}] final", e[1])
        check_text(lang, f"ordinal_sandhi[{i}] replacement", e[2])
    if lang == "en" and (t["ordinal_irregular"] or t["ordinal_spoken"] or t.get("ordinal_sandhi")):
        raise LexError("en.toml: English ordinals are done in code; leave ordinal_irregular/spoken/sandhi empty")

    for i, m in enumerate(check_array(lang, "months", t.get("months"), 12)):
        check_text(lang, f"months[{i}]", m)
    for key, need in (("time_hm", ("{h}", "{m}")), ("time_h", ("{h}",)), ("date", ("{d}", "{month}", "{y}"))):
        p = check_text(lang, key, t.get(key), pattern=True)
        for ph in need:
            if p.count(ph) != 1:
                raise LexError(f"{lang}.toml: {key} {p!r} must contain {ph} exactly once")
    seen = set()
    for i, e in enumerate(check_array(lang, "abbreviations", t.get("abbreviations"), None)):
        if not (isinstance(e, list) and len(e) == 2):
            raise LexError(f"{lang}.toml: abbreviations[{i}] must be [written, spoken]")
        check_text(lang, f"abbreviations[{i}] written", e[0], written=True)
        check_text(lang, f"abbreviations[{i}] spoken", e[1])
        if e[0] in seen:
            raise LexError(f"{lang}.toml: abbreviations: {e[0]!r} listed twice")
        seen.add(e[0])
    return t


# ---------------------------------------------------------------- composition (mirror of numbers.rs)


def below_1000(t: dict, n: int) -> str:
    if n < 100:
        return t["below_100"][n]
    h, r = divmod(n, 100)
    return t["hundreds"][h] if r == 0 else f"{t['hundreds_joined'][h]} {t['below_100'][r]}"


def cardinal(t: dict, n: int) -> str:
    if n < 1000:
        return below_1000(t, n)
    groups = [(n // 10**7, t["crore"]), ((n // 10**5) % 100, t["lakh"]), ((n // 1000) % 100, t["thousand"])]
    rest = n % 1000
    parts = []
    for i, (m, sc) in enumerate(groups):
        if m == 0:
            continue
        more = rest != 0 or any(g != 0 for g, _ in groups[i + 1:])
        if m == 1:
            parts.append(sc["one_joined"] if more else sc["one"])
        else:
            parts.append(f"{cardinal(t, m)} {sc['many_joined'] if more else sc['many']}")
    if rest:
        parts.append(below_1000(t, rest))
    return " ".join(parts)


def expand_ordinals(lang: str, t: dict) -> list[tuple[int, str, str]]:
    """Explicit irregulars, then sandhi-derived words for 1..=100 (explicit entries win)."""
    out = [tuple(e) for e in t["ordinal_irregular"]]
    have = {(n, s) for n, s, _ in out}
    rules = t.get("ordinal_sandhi", [])
    if not rules:
        return out
    for suffix, ending in t["ordinal_spoken"]:
        for n in range(1, 101):
            if (n, suffix) in have or (n, "") in have:
                continue
            word = cardinal(t, n)
            for end, final, repl in rules:
                if end == ending and word.endswith(final):
                    derived = word[: -len(final)] + repl
                    check_text(lang, f"ordinal_sandhi result for {n}{suffix}", derived)
                    out.append((n, suffix, derived))
                    break
    return out


# ---------------------------------------------------------------- Rust output


def rs(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rs_list(xs: list[str]) -> str:
    return "[" + ", ".join(rs(x) for x in xs) + "]"


def emit(tables: dict[str, dict]) -> str:
    o = ["//! Generated by scripts/gen_lexicon.py from assets/lexicon/*.toml — do not edit by hand.", "",
         "use super::lexicon::{Lexicon, Scale};", ""]
    for lang in LANGS:
        t = tables[lang]
        o.append(f"/// `{lang}`: see assets/lexicon/{lang}.toml for sources and review notes.")
        o.append(f"pub static {lang.upper()}: Lexicon = Lexicon {{")
        o.append(f"    lang: {rs(lang)},")
        o.append(f"    below_100: {rs_list(t['below_100'])},")
        o.append(f"    hundreds: {rs_list(t['hundreds'])},")
        o.append(f"    hundreds_joined: {rs_list(t['hundreds_joined'])},")
        for sc in SCALES:
            d = t[sc]
            o.append(f"    {sc}: Scale {{ " + ", ".join(f"{k}: {rs(d[k])}" for k in SCALE_FIELDS) + " },")
        for k in SIMPLE:
            o.append(f"    {k}: {rs(t[k])},")
        o.append(f"    rupee_abbreviations: &{rs_list(t['rupee_abbreviations'])},")
        o.append(f"    money_and: {rs(t['money_and'])},")
        o.append(f"    oblique_before_noun: {'true' if t['oblique_before_noun'] else 'false'},")
        sfx = sorted(t["ordinal_suffixes"], key=len, reverse=True)  # stable: longest first
        o.append(f"    ordinal_suffixes: &{rs_list(sfx)},")
        irr = expand_ordinals(lang, t)
        o.append("    ordinal_irregular: &[" + ", ".join(f"({n}, {rs(s)}, {rs(w)})" for n, s, w in irr) + "],")
        o.append("    ordinal_spoken: &[" + ", ".join(f"({rs(a)}, {rs(b)})" for a, b in t["ordinal_spoken"]) + "],")
        o.append(f"    months: {rs_list(t['months'])},")
        for k in ("time_hm", "time_h", "date"):
            o.append(f"    {k}: {rs(t[k])},")
        o.append("    abbreviations: &[" + ", ".join(f"({rs(a)}, {rs(b)})" for a, b in t["abbreviations"]) + "],")
        o.append("};")
        o.append("")
    o.append("/// Every lexicon, in the order of `assets/lexicon/`.")
    o.append(f"pub static ALL: [&Lexicon; {len(LANGS)}] = [" + ", ".join(f"&{l.upper()}" for l in LANGS) + "];")
    return "\n".join(o) + "\n"


def rustfmt(src: str) -> str:
    """Format with rustfmt when it is installed, so the file passes `cargo fmt --check`."""
    exe = shutil.which("rustfmt")
    if not exe:
        print("gen_lexicon: rustfmt not found; writing unformatted output", file=sys.stderr)
        return src
    r = subprocess.run([exe, "--edition", "2021", "--emit", "stdout", "--quiet"], input=src.encode(),
                       capture_output=True, check=False)
    if r.returncode != 0:
        raise LexError("rustfmt failed:\n" + r.stderr.decode(errors="replace"))
    return r.stdout.decode()


# ---------------------------------------------------------------- golden


def check_golden(tables: dict[str, dict]) -> int:
    if not os.path.exists(GOLDEN):
        raise LexError(f"missing {GOLDEN}")
    rows = 0
    counts = {l: 0 for l in LANGS}
    with open(GOLDEN, encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#") or line.startswith("lang\t"):
                continue
            cols = line.split("\t")
            if len(cols) != 4:
                raise LexError(f"golden.tsv:{ln}: expected 4 tab-separated columns, found {len(cols)}")
            lang, num, want, _note = cols
            if lang not in tables:
                raise LexError(f"golden.tsv:{ln}: unknown language {lang!r}")
            if unicodedata.normalize("NFC", want) != want:
                raise LexError(f"golden.tsv:{ln}: expected text is not NFC")
            got = cardinal(tables[lang], int(num))
            if got != want:
                raise LexError(f"golden.tsv:{ln}: {lang} {num}: table gives {got!r}, golden says {want!r}")
            rows += 1
            counts[lang] += 1
    short = [l for l, c in counts.items() if c < 12]
    if short:
        raise LexError(f"golden.tsv: fewer than 12 rows for {', '.join(short)}")
    return rows


def main(argv: list[str]) -> int:
    try:
        tables = {lang: load(lang) for lang in LANGS}
        if argv[:1] == ["--print"]:
            t = tables[argv[1]]
            for n in argv[2:]:
                print(f"{argv[1]}\t{n}\t{cardinal(t, int(n))}")
            return 0
        rows = check_golden(tables)
        src = rustfmt(emit(tables))
        if argv[:1] == ["--check"]:
            with open(OUT, encoding="utf-8") as f:
                if f.read() != src:
                    raise LexError(f"{os.path.relpath(OUT, ROOT)} is out of date; run scripts/gen_lexicon.py")
            print(f"gen_lexicon: {len(tables)} lexicons valid, {rows} golden rows match, output up to date")
            return 0
        with open(OUT, "w", encoding="utf-8") as f:
            f.write(src)
        print(f"gen_lexicon: {len(tables)} lexicons valid, {rows} golden rows match; wrote {os.path.relpath(OUT, ROOT)}")
        return 0
    except LexError as e:
        print(f"gen_lexicon: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
