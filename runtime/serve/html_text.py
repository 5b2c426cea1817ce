"""format=html: the text nodes of a document are translated, its markup is kept verbatim."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser


class _HtmlPieces(HTMLParser):
    """Split a document into markup kept verbatim and text nodes to translate (script and style
    contents, comments, doctype and processing instructions stay as they are)."""

    RAW = {"script", "style"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.pieces: list[tuple[str, str]] = []  # ("markup", raw) or ("text", unescaped text)
        self._raw_depth = 0

    def handle_starttag(self, tag, attrs):
        self.pieces.append(("markup", self.get_starttag_text()))
        if tag in self.RAW:
            self._raw_depth += 1

    def handle_startendtag(self, tag, attrs):
        self.pieces.append(("markup", self.get_starttag_text()))

    def handle_endtag(self, tag):
        if tag in self.RAW and self._raw_depth:
            self._raw_depth -= 1
        self.pieces.append(("markup", f"</{tag}>"))

    def handle_data(self, data):
        self.pieces.append(("markup" if self._raw_depth else "text", data))

    def handle_comment(self, data):
        self.pieces.append(("markup", f"<!--{data}-->"))

    def handle_decl(self, decl):
        self.pieces.append(("markup", f"<!{decl}>"))

    def handle_pi(self, data):
        self.pieces.append(("markup", f"<?{data}>"))

    def unknown_decl(self, data):
        self.pieces.append(("markup", f"<![{data}]>"))


def html_pieces(document: str) -> list[tuple[str, str]]:
    parser = _HtmlPieces()
    parser.feed(document)
    parser.close()
    return parser.pieces


def html_join(pieces: list[tuple[str, str]], translated: dict[int, str]) -> str:
    """Markup as it was; each translated text node re-escaped, its surrounding whitespace kept."""
    out = []
    for i, (kind, value) in enumerate(pieces):
        if kind == "markup" or i not in translated:
            out.append(value if kind == "markup" else html.escape(value, quote=False))
            continue
        lead = value[: len(value) - len(value.lstrip())]
        trail = value[len(value.rstrip()) :]
        out.append(lead + html.escape(translated[i], quote=False) + trail)
    return "".join(out)


async def translate_documents(
    documents: list[str], translate: Callable[[list[str]], Awaitable[list]]
) -> list[str]:
    """Each document with its non-blank text nodes translated, all of them in one call to
    `translate` (texts -> TranslationResults)."""
    docs = [html_pieces(d) for d in documents]
    nodes = [
        (d, i)
        for d, pieces in enumerate(docs)
        for i, (kind, v) in enumerate(pieces)
        if kind == "text" and v.strip()
    ]
    results = await translate([docs[d][i][1].strip() for d, i in nodes]) if nodes else []
    done: list[dict[int, str]] = [{} for _ in docs]
    for (d, i), r in zip(nodes, results):
        done[d][i] = r.text
    return [html_join(pieces, done[d]) for d, pieces in enumerate(docs)]
