"""Subtitles (.srt, .vtt): cue numbers, identifiers, timings, settings and the VTT header, NOTE,
STYLE and REGION blocks are kept as they are; each cue's text is one paragraph, its inline tags
(<i>, <b>, <c.class>, <v Speaker>, ...) styled runs. A translated multi-line cue is rewrapped to its
original number of lines, balanced, so it fits the screen as the original did."""

from __future__ import annotations

import html
import re

from ..base import DocumentError, DocumentFormat, Run
from .text import Builder, Slot, decode, merge, nest, rewrap, split_lines

_SRT_TIME = r"\d{1,2}:\d{2}:\d{2}[,.]\d{1,3}"
_VTT_TIME = r"(?:\d{1,}:)?\d{2}:\d{2}\.\d{3}"
_TAG = re.compile(r"<(/?)([A-Za-z0-9.:_-]*)([^>]*)>")
_RAW = ("raw",)  # style of a tag kept as it is (a karaoke timestamp, a stray end tag)
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _cue_runs(text: str) -> list[Run]:
    """A cue's text (lines joined by spaces) as runs; style = the open tags, outermost first, each
    (start tag, end tag or '' if never closed, position in the cue)."""
    found: list[tuple[str, list, bool]] = []  # (text, open tags, raw markup?)
    stack: list[list] = []  # [start tag, end tag, position, name]: end tag filled in when met
    start = 0
    for m in _TAG.finditer(text):
        found.append((text[start : m.start()], list(stack), False))
        start = m.end()
        closing, name = m.group(1), m.group(2).split(".")[0].lower()
        match = [k for k, w in enumerate(stack) if w[3] == name] if closing else []
        if match:
            stack[match[-1]][1] = m.group()
            del stack[match[-1] :]
        elif closing or re.fullmatch(r"[\d:.]+", m.group(2)):  # stray end tag, karaoke time
            found.append((m.group(), [], True))
        else:
            stack.append([m.group(), "", m.start(), name])
    found.append((text[start:], list(stack), False))
    runs = [
        Run(t, _RAW, keep=True)
        if raw
        else Run(html.unescape(t), tuple((w[0], w[1], w[2]) for w in tags) or None)
        for t, tags, raw in found
    ]
    return merge(runs)


def _escape(text: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in text)


class _CueSlot(Slot):
    def __init__(self, original: str, lines: int, eol: str):
        self.original, self.lines, self.eol = original, lines, eol

    def write(self, runs, doc):
        # break only at spaces outside tags: the text is wrapped with tags as zero-width words
        text = nest(
            runs,
            lambda r: () if r.style in (None, _RAW) else r.style,
            lambda w: w[0],
            lambda w: w[1],
            lambda r: r.text if r.style == _RAW else _escape(r.text),
        )
        return _wrap_outside_tags(text, self.lines, self.eol)


def _wrap_outside_tags(text: str, lines: int, eol: str) -> str:
    protected = _TAG.sub(lambda m: m.group().replace(" ", "\0"), text)
    wrapped = rewrap(" ".join(protected.split()), lines, eol, _visible_width)
    return wrapped.replace("\0", " ")


def _visible_width(word: str) -> int:
    return len(html.unescape(_TAG.sub("", word.replace("\0", " "))))


def _cue(b: Builder, text_lines: list[tuple[str, str]]) -> None:
    """A cue's text lines: one paragraph, then the last line's ending."""
    if not text_lines:
        return
    original = "".join(t + e for t, e in text_lines[:-1]) + text_lines[-1][0]
    joined = " ".join(t.strip() for t, _ in text_lines)
    b.paragraph(_cue_runs(joined), _CueSlot(original, len(text_lines), text_lines[0][1] or "\n"))
    b.literal(text_lines[-1][1])


def _blocks(text: str) -> list[tuple[int, list[tuple[str, str]], str]]:
    """(first line number, lines, blank lines after) for each block of non-blank lines."""
    out, block, first = [], [], 0
    blanks = ""
    lines = split_lines(text)
    for n, (line, eol) in enumerate(lines, 1):
        if line.strip():
            if not block:
                first = n
                if out:
                    out[-1] = (out[-1][0], out[-1][1], blanks)
                elif blanks:
                    out.append((0, [], blanks))
                blanks = ""
            block.append((line, eol))
        else:
            if block:
                out.append((first, block, ""))
                block = []
            blanks += line + eol
    if block:
        out.append((first, block, ""))
    if blanks:
        if out:
            out[-1] = (out[-1][0], out[-1][1], out[-1][2] + blanks)
        else:
            out.append((0, [], blanks))
    return out


def _check_times(timing: str, pattern: str, where: str) -> None:
    m = re.match(rf"\s*({pattern})\s*-->\s*({pattern})(\s.*)?$", timing)
    if not m:
        raise DocumentError(f"{where}: invalid timing line {timing.strip()!r}")
    for stamp in (m.group(1), m.group(2)):
        parts = re.split(r"[:,.]", stamp)
        if int(parts[-2]) > 59 or (len(parts) > 2 and int(parts[-3]) > 59):
            raise DocumentError(f"{where}: invalid timestamp {stamp!r}")


class SrtFormat(DocumentFormat):
    name = "srt"
    extensions = (".srt",)
    media_type = "application/x-subrip"

    def parse(self, data: bytes):
        text, codec = decode(data, "SubRip (.srt)")
        b = Builder()
        cue = 0
        for first, lines, blanks in _blocks(text):
            if lines:
                cue += 1
                where = f"cue {cue} (line {first})"
                number, timing = lines[0][0], lines[1][0] if len(lines) > 1 else ""
                if not number.strip().isdigit():
                    if "-->" in number:
                        raise DocumentError(f"{where}: the cue number is missing")
                    raise DocumentError(f"{where}: expected a cue number, found {number.strip()!r}")
                _check_times(timing, _SRT_TIME, f"cue {number.strip()} (line {first + 1})")
                b.literal("".join(t + e for t, e in lines[:2]))
                _cue(b, lines[2:])
            b.literal(blanks)
        if not b.pieces and text.strip():
            raise DocumentError("SubRip (.srt) file has no cues")
        return b.document(codec)


class VttFormat(DocumentFormat):
    name = "vtt"
    extensions = (".vtt",)
    media_type = "text/vtt; charset=utf-8"

    def parse(self, data: bytes):
        text, codec = decode(data, "WebVTT (.vtt)")
        if not re.match(r"WEBVTT(?:[ \t].*)?(?:\r\n|\n|\r|$)", text):
            raise DocumentError("WebVTT (.vtt) file does not start with 'WEBVTT' (line 1)")
        b = Builder()
        cue = 0
        for k, (first, lines, blanks) in enumerate(_blocks(text)):
            head = lines[0][0] if lines else ""
            if k == 0 or not lines or re.match(r"(NOTE|STYLE|REGION)(?:[ \t]|$)", head):
                b.literal("".join(t + e for t, e in lines) + blanks)
                continue
            cue += 1
            timed = 0 if "-->" in head else 1  # a cue identifier comes before its timing
            if timed >= len(lines) or "-->" not in lines[timed][0]:
                raise DocumentError(f"cue {cue} (line {first}): no timing line ('... --> ...')")
            _check_times(lines[timed][0], _VTT_TIME, f"cue {cue} (line {first + timed})")
            b.literal("".join(t + e for t, e in lines[: timed + 1]))
            _cue(b, lines[timed + 1 :])
            b.literal(blanks)
        return b.document(codec)
