"""Plain text (.txt), and what the text-based formats share: decoding that remembers the encoding,
BOM and line endings, a document made of verbatim pieces and paragraph slots, and nested runs.

Paragraphs of a .txt file: blank lines separate blocks. A block whose lines look hard-wrapped
(every line but the last fills most of the width, as in Project Gutenberg books) is one paragraph,
rewrapped to the original width once translated, because its sentences run across lines. Any other
block is a line per paragraph: lists, verses, addresses, tables and one-sentence-per-line files keep
their lines, and joining lines that were meant apart would merge unrelated sentences.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from ..base import DocumentError, DocumentFormat, Paragraph, ParsedDocument, Run

_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_EOL = re.compile(r"\r\n|\n|\r")
# URLs and e-mail addresses inside text stay as they are (issue 29, deliverable 4).
_KEEP = re.compile(
    r"(?:https?|ftp)://[^\s<>\"']+|www\.[^\s<>\"']+\.[^\s<>\"']+"
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}"
)
_URL_TRAIL = ".,;:!?)]}'\""


@dataclass(frozen=True)
class Codec:
    """How a file's text was stored: written back the same way."""

    encoding: str = "utf-8"
    bom: bytes = b""

    def encode(self, text: str) -> bytes:
        # a declared legacy charset cannot hold every translated character: HTML takes &#N; there
        errors = "strict" if self.encoding.startswith("utf") else "xmlcharrefreplace"
        return self.bom + text.encode(self.encoding, errors=errors)


def decode(
    data: bytes, what: str, declared: Callable[[bytes], str | None] | None = None
) -> tuple[str, Codec]:
    """A file's text and codec: a BOM's encoding, else UTF-8, else the charset `declared` finds;
    DocumentError naming the first bad byte otherwise."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding), Codec(encoding, bom)
            except UnicodeDecodeError as e:
                raise _bad_bytes(data, e, len(bom), what, encoding) from None
    try:
        return data.decode("utf-8"), Codec()
    except UnicodeDecodeError as e:
        charset = declared(data) if declared else None
        if charset:
            try:
                return data.decode(charset), Codec(charset)
            except (LookupError, UnicodeDecodeError):
                pass
        raise _bad_bytes(data, e, 0, what, "UTF-8") from None


def _bad_bytes(data: bytes, e: UnicodeDecodeError, skip: int, what: str, encoding: str):
    pos = e.start + skip
    line = data.count(b"\n", 0, pos) + 1
    return DocumentError(
        f"{what} file is not valid {encoding}: byte {pos} (line {line}) is "
        f"{data[pos : pos + 1].hex()}; save it as UTF-8"
    )


def split_lines(text: str) -> list[tuple[str, str]]:
    """(line, its line ending) pairs; the last ending is '' when the text does not end with one."""
    out, start = [], 0
    for m in _EOL.finditer(text):
        out.append((text[start : m.start()], m.group()))
        start = m.end()
    if start < len(text):
        out.append((text[start:], ""))
    return out


def keep_urls(text: str, style: Hashable = None) -> list[Run]:
    """Runs of `text`, with URLs and e-mail addresses as keep=True runs."""
    runs, start = [], 0
    for m in _KEEP.finditer(text):
        end = m.end()
        while end > m.start() and text[end - 1] in _URL_TRAIL:
            end -= 1
        if start < m.start():
            runs.append(Run(text[start : m.start()], style))
        runs.append(Run(text[m.start() : end], style, keep=True))
        start = end
    if start < len(text):
        runs.append(Run(text[start:], style))
    return runs


def merge(runs: list[Run]) -> list[Run]:
    """Adjacent runs with the same style and keep flag joined; empty ones dropped."""
    out: list[Run] = []
    for r in runs:
        if not r.text:
            continue
        if out and out[-1].style == r.style and out[-1].keep == r.keep and not r.keep:
            out[-1] = Run(out[-1].text + r.text, r.style)
        else:
            out.append(r)
    return out


def nest(
    runs: Sequence[Run],
    wrappers: Callable[[Run], tuple],
    opening: Callable[[Hashable], str],
    closing: Callable[[Hashable], str],
    text: Callable[[Run], str],
) -> str:
    """Runs written with their wrappers (outermost first) opened and closed only where they change,
    so that `**a [b](u) c**` read as three runs is written back as it was."""
    out: list[str] = []
    stack: tuple = ()
    for run in runs:
        want = wrappers(run)
        common = 0
        while common < min(len(stack), len(want)) and stack[common] == want[common]:
            common += 1
        out.extend(closing(w) for w in reversed(stack[common:]))
        out.extend(opening(w) for w in want[common:])
        stack = want
        out.append(text(run))
    out.extend(closing(w) for w in reversed(stack))
    return "".join(out)


def rewrap(text: str, lines: int, eol: str, measure: Callable[[str], int] = len) -> str:
    """`text` broken at spaces into at most `lines` lines of balanced length (`measure`: a word's
    visible width)."""
    words = text.split()
    if lines <= 1 or len(words) <= 1:
        return text
    lines = min(lines, len(words))
    widths = [measure(w) for w in words]

    def width(i: int, j: int) -> int:  # words i..j-1 on one line
        return sum(widths[i:j]) + (j - i - 1)

    # best[k][j]: the smallest longest line for words[:j] in k lines
    inf = float("inf")
    best = [[inf] * (len(words) + 1) for _ in range(lines + 1)]
    cut = [[0] * (len(words) + 1) for _ in range(lines + 1)]
    best[0][0] = 0
    for k in range(1, lines + 1):
        for j in range(1, len(words) + 1):
            for i in range(k - 1, j):
                cost = max(best[k - 1][i], width(i, j))
                if cost < best[k][j]:
                    best[k][j], cut[k][j] = cost, i
    out, j = [], len(words)
    for k in range(lines, 0, -1):
        i = cut[k][j]
        out.append(" ".join(words[i:j]))
        j = i
    return eol.join(reversed(out))


def fill(text: str, width: int, eol: str) -> str:
    """`text` broken at spaces into lines of at most `width` characters (longer words alone)."""
    out: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        out.append(line)
    return eol.join(out)


class Slot:
    """How one paragraph is written back; `original` is its source text, used as it is when the
    translation gave back the paragraph's own runs."""

    original: str = ""

    def unchanged(self, doc: Rendering) -> str:
        return self.original

    def write(self, runs: list[Run], doc: Rendering) -> str:
        return "".join(r.text for r in runs)


class Rendering:
    """One render() call: paragraphs written on demand (an HTML tag's title is written before the
    paragraph that holds the tag)."""

    def __init__(self, paragraphs: list[Paragraph], translated: list[list[Run]], extra: object):
        if len(translated) != len(paragraphs):
            raise ValueError(f"{len(translated)} translated paragraphs for {len(paragraphs)}")
        self.paragraphs, self.translated, self.extra = paragraphs, translated, extra
        self._done: dict[int, str] = {}

    def paragraph(self, i: int) -> str:
        if i not in self._done:
            p, runs = self.paragraphs[i], list(self.translated[i])
            slot: Slot = p.ref
            self._done[i] = slot.unchanged(self) if runs == p.runs else slot.write(runs, self)
        return self._done[i]

    def piece(self, piece) -> str:
        if isinstance(piece, str):
            return piece
        if isinstance(piece, int):
            return self.paragraph(piece)
        return piece.write(self)


class TextDocument(ParsedDocument):
    """A text document: verbatim strings, paragraph indices and pieces with a write(rendering)
    method, in file order."""

    def __init__(self, pieces: list, paragraphs: list[Paragraph], codec: Codec, extra=None):
        self.pieces, self.paragraphs, self.codec, self.extra = pieces, paragraphs, codec, extra

    def render_text(self, translated: list[list[Run]]) -> str:
        r = Rendering(self.paragraphs, translated, self.extra)
        return "".join(r.piece(p) for p in self.pieces)

    def render(self, translated: list[list[Run]]) -> bytes:
        return self.codec.encode(self.render_text(translated))


class Builder:
    """Collects a document's pieces and paragraphs in file order."""

    def __init__(self):
        self.pieces: list = []
        self.paragraphs: list[Paragraph] = []

    def literal(self, text: str) -> None:
        if text:
            if self.pieces and isinstance(self.pieces[-1], str):
                self.pieces[-1] += text
            else:
                self.pieces.append(text)

    def paragraph(self, runs: list[Run], slot: Slot, *, place: bool = True) -> int | None:
        """Add a paragraph (placed in the pieces unless place=False); one with nothing to
        translate is written verbatim instead and gives None."""
        if not any(r.text.strip() and not r.keep for r in runs):
            if place:
                self.literal(slot.original)
            return None
        p = Paragraph(runs, ref=slot)
        self.paragraphs.append(p)
        if place:
            self.pieces.append(len(self.paragraphs) - 1)
        return len(self.paragraphs) - 1

    def document(self, codec: Codec, extra=None) -> TextDocument:
        return TextDocument(self.pieces, self.paragraphs, codec, extra)


class _TxtSlot(Slot):
    def __init__(self, original: str, width: int, eol: str):
        self.original, self.width, self.eol = original, width, eol

    def write(self, runs, doc):
        text = "".join(r.text for r in runs)
        if not self.width:
            return text
        lead = text[: len(text) - len(text.lstrip())]
        return lead + fill(text, self.width - len(lead), self.eol)


def _looks_wrapped(lines: list[str]) -> bool:
    """Hard-wrapped prose: two lines or more, every line but the last at least 60% of the longest
    (40 columns or more), none starting like a list item."""
    if len(lines) < 2:
        return False
    longest = max(len(line.rstrip()) for line in lines)
    if longest < 40 or any(re.match(r"\s*([-*+•]|\d+[.)])\s", line) for line in lines):
        return False
    return all(len(line.rstrip()) >= 0.6 * longest for line in lines[:-1])


def _txt_block(b: Builder, block: list[tuple[str, str]]) -> None:
    bodies = [line for line, _ in block]
    if _looks_wrapped(bodies):
        indent = bodies[0][: len(bodies[0]) - len(bodies[0].lstrip())]
        original = "".join(line + eol for line, eol in block[:-1]) + block[-1][0]
        joined = indent + " ".join(line.strip() for line in bodies)
        width = max(len(line.rstrip()) for line in bodies)
        b.paragraph(keep_urls(joined), _TxtSlot(original, width, block[0][1]))
        b.literal(block[-1][1])
        return
    for line, eol in block:
        b.paragraph(keep_urls(line), _TxtSlot(line, 0, eol))
        b.literal(eol)


def parse_text(text: str) -> Builder:
    b, block = Builder(), []
    for line, eol in split_lines(text):
        if line.strip():
            block.append((line, eol))
            continue
        if block:
            _txt_block(b, block)
            block = []
        b.literal(line + eol)
    if block:
        _txt_block(b, block)
    return b


class TextFormat(DocumentFormat):
    name = "txt"
    extensions = (".txt",)
    media_type = "text/plain; charset=utf-8"

    def parse(self, data: bytes) -> TextDocument:
        text, codec = decode(data, "text")
        return parse_text(text).document(codec)
