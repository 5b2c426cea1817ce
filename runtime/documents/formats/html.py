"""HTML (.html, .htm): text nodes and the alt, title and placeholder attributes are translated (and
the content of <meta name="description"> and og:title/og:description, which search results and link
previews show); every byte of markup is kept as it was read.

Block elements (p, li, td, h1-h6, div, br, ...) delimit paragraphs; inline elements (b, i, em, a,
span, ...) become styled runs of their block's paragraph, so they follow the words. Not translated:
script, style, code, pre, kbd, samp, textarea, svg, math, elements marked translate="no" or class
"notranslate" (and everything inside them), comments, other attributes. Translated text is escaped
minimally (&, <, >, and the quote in attributes); a character the file wrote as a reference (&nbsp;,
&copy;) is written the same way again.
"""

from __future__ import annotations

import html
import re

from ..base import DocumentFormat, Run
from .text import Builder, Rendering, Slot, decode, keep_urls, merge, nest

INLINE = frozenset(
    "a abbr acronym b bdi bdo big cite data del dfn em font i img input ins label mark q rp rt ruby"
    " s small span strike strong sub sup time tt u wbr".split()
)
# never translated, with everything inside
SKIP = frozenset("script style code pre kbd samp var textarea svg math template xmp".split())
VOID = frozenset(
    "area base br col embed hr img input link meta param source track wbr keygen".split()
)
RAW_TEXT = frozenset("script style textarea title xmp iframe noembed noframes".split())
ATTRIBUTES = frozenset({"alt", "title", "placeholder"})
META_NAMES = frozenset({"description", "og:title", "og:description"})

_TOKEN = re.compile(
    r"<!--.*?(?:-->|\Z)|<!\[CDATA\[.*?(?:\]\]>|\Z)|<![^>]*>?|<\?[^>]*>?"
    r"|</[A-Za-z][^\s/>]*[^>]*>|<[A-Za-z][^\s/>]*(?:[^>\"']|\"[^\"]*\"|'[^']*')*>",
    re.S,
)
_ATTR = re.compile(r"""([^\s"'>/=]+)(?:(\s*=\s*)("[^"]*"|'[^']*'|[^\s>]+))?""")
_REF = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?")
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def declared_charset(data: bytes) -> str | None:
    m = _CHARSET.search(data[:4096])
    return m.group(1).decode("ascii") if m else None


class Tag:
    """A start tag: its text with each translated attribute value as a paragraph index."""

    def __init__(self, pieces: list):
        self.pieces = pieces

    def write(self, r: Rendering) -> str:
        return "".join(r.piece(p) for p in self.pieces)


class Raw:
    """Markup kept as it is (a code element, a stray end tag) that may hold tags."""

    def __init__(self, pieces: list):
        self.pieces = pieces

    def write(self, r: Rendering) -> str:
        return "".join(r.piece(p) for p in self.pieces)


class _AttrSlot(Slot):
    def __init__(self, original: str, entities: dict[str, str]):
        self.original, self.entities = original, entities

    def write(self, runs, doc):
        text = "".join(r.text for r in runs)
        quote = self.original[:1] if self.original[:1] in "\"'" else ""
        if not quote and (not text or re.search(r"[\s\"'=<>`]", text)):
            quote = '"'
        table = {**_ESCAPES, quote: html.escape(quote)} if quote else _ESCAPES
        return quote + "".join(self.entities.get(c) or table.get(c, c) for c in text) + quote


class _HtmlSlot(Slot):
    """A paragraph: its original pieces (text as read, Tag and Raw objects), and how runs are
    written back (wrappers are ("tag", Tag, end tag) triples; a Raw run stands for markup)."""

    def __init__(self, pieces: list, entities: dict[str, str]):
        self.pieces, self.entities = pieces, entities

    def unchanged(self, doc):
        return "".join(doc.piece(p) for p in self.pieces)

    def write(self, runs, doc):
        def text(run: Run) -> str:
            if isinstance(run.style, tuple) and run.style and isinstance(run.style[-1], Raw):
                return run.style[-1].write(doc)
            return "".join(self.entities.get(c) or _ESCAPES.get(c, c) for c in run.text)

        def wrappers(run: Run) -> tuple:
            style = run.style or ()
            return style[:-1] if style and isinstance(style[-1], Raw) else style

        return nest(runs, wrappers, lambda w: w[1].write(doc), lambda w: w[2], text)


class HtmlWalker:
    """Reads HTML source into a Builder: markup as verbatim pieces, text as paragraphs."""

    def __init__(self, b: Builder):
        self.b = b
        self.entities: dict[str, str] = {}
        self.items: list = []  # the open paragraph: ("text", raw) / ("open"|"close"|"raw", ...)
        self.skip: list[str] = []  # the skipped element being read, its depth
        self.skip_pieces: list = []
        self.skip_inline = False

    def feed(self, src: str) -> None:
        pos = 0
        while pos < len(src):
            m = _TOKEN.search(src, pos)
            if not m:
                self.text(src[pos:])
                break
            if m.start() > pos:
                self.text(src[pos : m.start()])
            pos = m.end()
            token = m.group()
            if token.startswith("</"):
                self.end_tag(token, token[2:].split(">")[0].strip().lower())
            elif token[1:2].isalpha():
                name = re.match(r"<([^\s/>]+)", token).group(1).lower()
                self.start_tag(token, name)
                if name in RAW_TEXT and not token.endswith("/>"):
                    end = re.compile(rf"</{re.escape(name)}[\s/>]", re.I).search(src, pos)
                    stop = end.start() if end else len(src)
                    if stop > pos:
                        self.text(src[pos:stop], raw_text=name not in ("title",))
                    pos = stop
            else:
                self.markup(token)
        if self.skip:  # a skipped element never closed: kept up to the end
            self._skipped()
        self.flush()

    # ---- events

    def text(self, raw: str, raw_text: bool = False) -> None:
        if self.skip:
            self.skip_pieces.append(raw)
        elif raw_text:
            self.flush()
            self.b.literal(raw)
        else:
            for ref in _REF.findall(raw):
                char = html.unescape(ref)
                if len(char) == 1 and char not in _ESCAPES and ref.endswith(";"):
                    self.entities.setdefault(char, ref)
            self.items.append(("text", raw))

    def markup(self, raw: str) -> None:
        """A comment, doctype or processing instruction: kept, inside the paragraph if any."""
        if self.skip:
            self.skip_pieces.append(raw)
        elif self.items:
            self.items.append(("raw", Raw([raw]), ""))
        else:
            self.b.literal(raw)

    def start_tag(self, raw: str, name: str) -> None:
        void = name in VOID or raw.endswith("/>")
        if self.skip:
            self.skip_pieces.append(raw)
            if name == self.skip[0] and not void:
                self.skip[1] += 1
            return
        attrs = {a.lower(): v for a, _, v in _ATTR.findall(raw[len(name) + 1 : -1])}
        value = {k: html.unescape(v.strip("\"'")) for k, v in attrs.items()}
        if (
            name in SKIP
            or value.get("translate", "").lower() == "no"
            or ("notranslate" in value.get("class", "").split())
        ):
            if void:
                self.markup(raw) if name in INLINE else self._block(raw)
                return
            self.skip, self.skip_pieces = [name, 1], [raw]
            self.skip_inline = name in INLINE or name in ("code", "kbd", "samp", "var")
            if not self.skip_inline:
                self.flush()
            return
        tag = self._tag(raw, name, value)
        if name not in INLINE:
            self._block(tag)
        elif void:
            self.items.append(("raw", Raw([tag]), value.get("alt", "")))
        else:
            self.items.append(("open", tag, name))

    def end_tag(self, raw: str, name: str) -> None:
        if self.skip:
            self.skip_pieces.append(raw)
            if name == self.skip[0]:
                self.skip[1] -= 1
                if not self.skip[1]:
                    self._skipped()
            return
        if name in INLINE:
            self.items.append(("close", raw, name))
        else:
            self._block(raw)

    # ---- pieces

    def _tag(self, raw: str, name: str, value: dict[str, str]):
        """The start tag, with its translatable attribute values as paragraphs."""
        translate = set(ATTRIBUTES)
        if name == "meta" and (value.get("name") or value.get("property", "")).lower() in (
            META_NAMES
        ):
            translate.add("content")
        pieces: list = []
        start = 0
        for m in _ATTR.finditer(raw, len(name) + 1, len(raw) - 1):
            if m.group(1).lower() not in translate or not m.group(3):
                continue
            val = m.group(3)
            text = html.unescape(val.strip("\"'") if val[:1] in "\"'" else val)
            slot = _AttrSlot(val, self.entities)
            i = self.b.paragraph([Run(text)], slot, place=False)
            if i is not None:
                pieces += [raw[start : m.start(3)], i]
                start = m.end(3)
        pieces.append(raw[start:])
        return Tag(pieces) if len(pieces) > 1 else raw

    def _skipped(self) -> None:
        raw = Raw(self.skip_pieces)
        self.skip, self.skip_pieces = [], []
        if self.skip_inline and self.items:
            text = html.unescape("".join(p for p in raw.pieces if isinstance(p, str)))
            self.items.append(("raw", raw, re.sub(r"<[^>]*>", "", text)))
        else:
            self._block(raw)

    def _block(self, piece) -> None:
        self.flush()
        self.b.pieces.append(piece) if not isinstance(piece, str) else self.b.literal(piece)

    def flush(self) -> None:
        """The open paragraph, its unmatched tags and outer whitespace left outside it."""
        items, self.items = self.items, []
        if not items:
            return
        matched = _matched(items)
        lo, hi = 0, len(items)
        while lo < hi and (lo not in matched and items[lo][0] in ("open", "close")):
            lo += 1
        while hi > lo and (hi - 1 not in matched and items[hi - 1][0] in ("open", "close")):
            hi -= 1
        for item in items[:lo]:
            self._out(item)
        body = items[lo:hi]
        lead, trail = "", ""
        if body and body[0][0] == "text":
            lead = body[0][1][: len(body[0][1]) - len(body[0][1].lstrip())]
            body[0] = ("text", body[0][1][len(lead) :])
        if body and body[-1][0] == "text":
            trail = body[-1][1][len(body[-1][1].rstrip()) :]
            body[-1] = ("text", body[-1][1][: len(body[-1][1]) - len(trail)])
        self.b.literal(lead)
        self._paragraph(body, {k - lo: v - lo for k, v in matched.items()})
        self.b.literal(trail)
        for item in items[hi:]:
            self._out(item)

    def _out(self, item) -> None:
        kind, value = item[0], item[1]
        if kind == "text" or (kind == "close"):
            self.b.literal(value)
        else:
            self.b.pieces.append(value) if not isinstance(value, str) else self.b.literal(value)

    def _paragraph(self, items: list, matched: dict[int, int]) -> None:
        runs: list[Run] = []
        stack: list[tuple] = []
        original: list = []
        for k, item in enumerate(items):
            kind = item[0]
            original.append(item[1])
            if kind == "text":
                text = re.sub(r"\s*\n\s*", " ", html.unescape(item[1]))
                runs += keep_urls(text, tuple(stack) or None)
            elif kind == "open" and k in matched:
                stack.append(("tag", _as_tag(item[1]), items[matched[k]][1]))
            elif kind == "close" and k in matched:
                stack.pop()
            else:  # markup kept as it is where it stands: a void element, code, a stray tag
                raw = item[1] if isinstance(item[1], Raw) else Raw([item[1]])
                label = item[2] if kind == "raw" else ""
                runs.append(Run(label or " ", (*stack, raw), keep=True))
        original = [
            p.pieces[0] if isinstance(p, Raw) and len(p.pieces) == 1 else p for p in original
        ]
        slot = _HtmlSlot(original, self.entities)
        i = self.b.paragraph(merge(runs), slot, place=False)
        self.b.pieces.extend(original if i is None else [i])


def _unwrap(piece):
    return piece.pieces[0] if isinstance(piece, Raw) and len(piece.pieces) == 1 else piece


def _as_tag(piece) -> Tag:
    return piece if isinstance(piece, Tag) else Tag([piece])


def _matched(items: list) -> dict[int, int]:
    """Open item index <-> its close item index, both ways, for the inline tags closed inside."""
    matched: dict[int, int] = {}
    open_: list[tuple[int, str]] = []
    for k, item in enumerate(items):
        if item[0] == "open":
            open_.append((k, item[2]))
        elif item[0] == "close":
            names = [n for _, n in open_]
            if item[2] in names:
                at = len(names) - 1 - names[::-1].index(item[2])
                del open_[at + 1 :]  # tags left open inside it stay unmatched
                j, _ = open_.pop()
                matched[j], matched[k] = k, j
    return matched


class HtmlFormat(DocumentFormat):
    name = "html"
    extensions = (".html", ".htm")
    media_type = "text/html; charset=utf-8"

    def parse(self, data: bytes):
        text, codec = decode(data, "HTML", declared_charset)
        b = Builder()
        HtmlWalker(b).feed(text)
        return b.document(codec)
