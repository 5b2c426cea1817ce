"""Markdown (.md, .markdown): headings, paragraphs, list items, blockquotes and table cells are
translated; front matter (YAML --- or TOML +++), fenced and indented code, reference definitions,
link targets, autolinks, URLs and code spans are not; HTML blocks go through the HTML reader (their
text is translated, their tags are not). Emphasis, strong, strikethrough and links are styled runs
whose style is the delimiters (a link's is "[" and "](target)"), so they follow the words.

A small line-based reader rather than a Markdown library: libraries give a tree without the source
bytes, and every byte outside the translated text must come back as it was. A paragraph that spans
several lines is written back on one line once translated (Markdown renders a line break inside a
paragraph as a space, and breaking lines could start a list or a heading by accident).
"""

from __future__ import annotations

import re
import string

from ..base import DocumentFormat, Run
from .html import HtmlWalker
from .text import Builder, Slot, decode, keep_urls, merge, nest, split_lines

_FENCE = re.compile(r"[ \t]*(`{3,}|~{3,})")
_ATX = re.compile(r"( {0,3}#{1,6}[ \t]+)(.*?)((?:[ \t]+#+)?[ \t]*)$")
_RULE = re.compile(r" {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,}|=+[ \t]*|#{1,6})$")
_ITEM = re.compile(r"[ \t]*(?:[-+*]|\d{1,9}[.)])(?:[ \t]+\[[ xX]\])?(?:[ \t]+|$)")
_QUOTE = re.compile(r"(?: {0,3}>[ \t]?)*")
_REFDEF = re.compile(r" {0,3}\[([^\]]+)\]:[ \t]*\S")
_HTML_BLOCK = re.compile(r" {0,3}<(?:/?[A-Za-z][A-Za-z0-9-]*(?:[\s/>]|$)|!--|\?|![A-Z])")
_HTML_END = {
    "script": re.compile(r"</script>", re.I),
    "pre": re.compile(r"</pre>", re.I),
    "style": re.compile(r"</style>", re.I),
    "textarea": re.compile(r"</textarea>", re.I),
    "!--": re.compile(r"-->"),
}
_DELIM_ROW = re.compile(r"[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_AUTOLINK = re.compile(r"<(?:[A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*|[^\s@<>]+@[^\s@<>]+)>")
_INLINE_HTML = re.compile(r"<!--.*?-->|</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>", re.S)
_PUNCT = set(string.punctuation)


class _MdSlot(Slot):
    """A paragraph, heading, item or cell: runs written with their delimiters, on one line."""

    def __init__(self, original: str, cell: bool = False):
        self.original, self.cell = original, cell

    def write(self, runs, doc):
        def text(run: Run) -> str:
            out = " ".join(run.text.splitlines()) if "\n" in run.text else run.text
            return re.sub(r"(?<!\\)\|", r"\\|", out) if self.cell and not run.keep else out

        return nest(runs, lambda r: r.style or (), lambda w: w[0], lambda w: w[1], text)


class _Inline:
    """Inline Markdown into runs; style = the wrappers around a run, outermost first, each
    (opening delimiter, closing delimiter, position)."""

    def __init__(self, refs: set[str]):
        self.refs = refs

    def runs(self, s: str, stack: tuple = (), base: int = 0) -> list[Run]:
        runs: list[Run] = []
        buf: list[str] = []

        def text() -> None:
            if buf:
                runs.extend(keep_urls("".join(buf), stack or None))
                buf.clear()

        i = 0
        while i < len(s):
            c = s[i]
            if c == "\\" and s[i + 1 : i + 2] in _PUNCT and i + 1 < len(s):
                buf.append(s[i : i + 2])
                i += 2
                continue
            found = None
            if c == "`":
                found = self._code(s, i, stack, base)
            elif c == "<":
                found = self._angle(s, i, stack, base)
            elif c == "[" or (c == "!" and s[i + 1 : i + 2] == "["):
                found = self._link(s, i, stack, base)
            elif c in "*_~":
                found = self._emphasis(s, i, stack, base)
            if found is None:
                n = _run_length(s, i) if c in "`*_~" else 1
                buf.append(s[i : i + n])
                i += n
                continue
            text()
            new_runs, i = found
            runs.extend(new_runs)
        text()
        return runs

    def _code(self, s, i, stack, base):
        n = _run_length(s, i)
        j = i + n
        while True:
            j = s.find("`" * n, j)
            if j < 0:
                return None
            if _run_length(s, j) == n:
                break
            j += _run_length(s, j)
        wrapper = ("`" * n, "`" * n, base + i)
        return [Run(s[i + n : j], (*stack, wrapper), keep=True)], j + n

    def _angle(self, s, i, stack, base):
        m = _AUTOLINK.match(s, i)
        if m:
            return [Run(m.group()[1:-1], (*stack, ("<", ">", base + i)), keep=True)], m.end()
        m = _INLINE_HTML.match(s, i)
        if m:
            return [Run(m.group(), stack or None, keep=True)], m.end()
        return None

    def _link(self, s, i, stack, base):
        start = i + (2 if s[i] == "!" else 1)
        close = _matching(s, start - 1, "[", "]")
        if close is None:
            return None
        label = s[start:close]
        if label.startswith("^"):  # a footnote reference
            return [Run(s[i : close + 1], stack or None, keep=True)], close + 1
        end = None
        if s[close + 1 : close + 2] == "(":
            end = _matching(s, close + 1, "(", ")")
        elif s[close + 1 : close + 2] == "[":
            end = _matching(s, close + 1, "[", "]")
        elif label.strip().lower() in self.refs:  # [label] is its own target: kept
            return [Run(s[i : close + 1], stack or None, keep=True)], close + 1
        if end is None:
            return None
        wrapper = (s[i:start], s[close : end + 1], base + i)
        return self.runs(label, (*stack, wrapper), base + start), end + 1

    def _emphasis(self, s, i, stack, base):
        c, n = s[i], _run_length(s, i)
        if n > (2 if c == "~" else 3) or i + n >= len(s) or s[i + n].isspace():
            return None
        if c == "_" and i > 0 and s[i - 1].isalnum():
            return None
        j = i + n + 1
        while True:
            j = s.find(c * n, j)
            if j < 0:
                return None
            after = s[j + n : j + n + 1]
            if (
                _run_length(s, j) == n
                and s[j - 1] != c
                and not s[j - 1].isspace()
                and not (c == "_" and after.isalnum())
            ):
                break
            j += _run_length(s, j)
        wrapper = (c * n, c * n, base + i)
        return self.runs(s[i + n : j], (*stack, wrapper), base + i + n), j + n


def _run_length(s: str, i: int) -> int:
    n = 1
    while i + n < len(s) and s[i + n] == s[i]:
        n += 1
    return n


def _matching(s: str, i: int, opening: str, closing: str) -> int | None:
    """The index of the bracket closing the one at i (backslash escapes and code spans skipped)."""
    depth, j = 0, i
    while j < len(s):
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == "`":
            n = _run_length(s, j)
            end = s.find("`" * n, j + n)
            j = (end + n) if end >= 0 else j + n
            continue
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return None


def _split_cells(row: str) -> list[tuple[int, int]]:
    """(start, end) of each cell's text in a table row (| inside code or escaped is no border)."""
    bars, j = [], 0
    while j < len(row):
        c = row[j]
        if c == "\\":
            j += 2
            continue
        if c == "`":
            n = _run_length(row, j)
            end = row.find("`" * n, j + n)
            j = (end + n) if end >= 0 else j + n
            continue
        if c == "|":
            bars.append(j)
        j += 1
    edges = [-1, *bars, len(row)]
    cells = [(edges[k] + 1, edges[k + 1]) for k in range(len(edges) - 1)]
    if bars and not row[: bars[0]].strip():
        cells = cells[1:]
    if bars and not row[bars[-1] + 1 :].strip():
        cells = cells[:-1]
    return cells


class _Reader:
    def __init__(self, text: str):
        self.lines = split_lines(text)
        self.b = Builder()
        self.inline = _Inline(
            {m.group(1).strip().lower() for line, _ in self.lines if (m := _REFDEF.match(line))}
        )
        self.para: list[tuple[str, str, str]] = []  # (prefix, content, line ending)
        self.in_list = False

    def read(self) -> Builder:
        i = self._front_matter()
        while i < len(self.lines):
            i = self._line(i)
        self._flush()
        return self.b

    def _front_matter(self) -> int:
        if not self.lines or self.lines[0][0] not in ("---", "+++"):
            return 0
        fence = self.lines[0][0]
        ends = (fence, "...") if fence == "---" else (fence,)
        for k in range(1, len(self.lines)):
            if self.lines[k][0].rstrip() in ends:
                self.b.literal("".join(t + e for t, e in self.lines[: k + 1]))
                return k + 1
        return 0

    def _line(self, i: int) -> int:
        line, eol = self.lines[i]
        quote = _QUOTE.match(line).group()
        rest = line[len(quote) :]
        if not rest.strip():
            self._flush()
            self.b.literal(line + eol)
            return i + 1
        if self.para and not self._starts_block(rest):
            indent = rest[: len(rest) - len(rest.lstrip())]
            self.para.append((quote + indent, rest[len(indent) :], eol))
            return i + 1
        self._flush()
        if not rest[0].isspace() and not _ITEM.match(rest):
            self.in_list = False
        if m := _FENCE.match(rest):
            return self._fenced(i, quote, m.group(1))
        if _RULE.match(rest):
            self.b.literal(line + eol)
            return i + 1
        if m := _ATX.match(rest):
            self.b.literal(quote + m.group(1))
            self._paragraph([("", m.group(2), "")])
            self.b.literal(m.group(3) + eol)
            return i + 1
        if m := _ITEM.match(rest):
            self.in_list = True
            self.b.literal(quote + m.group())
            self.para = [("", rest[m.end() :], eol)]
            return i + 1
        if _HTML_BLOCK.match(rest):
            return self._html(i)
        if "|" in rest and i + 1 < len(self.lines) and _DELIM_ROW.match(self._rest(i + 1)):
            return self._table(i)
        if _REFDEF.match(rest) or (rest.startswith(("    ", "\t")) and not self.in_list):
            self.b.literal(line + eol)  # a reference definition, indented code
            return i + 1
        indent = rest[: len(rest) - len(rest.lstrip())]
        self.b.literal(quote + indent)
        self.para = [("", rest[len(indent) :], eol)]
        return i + 1

    def _rest(self, i: int) -> str:
        line = self.lines[i][0]
        return line[len(_QUOTE.match(line).group()) :]

    def _continues(self, k: int) -> bool:
        """Whether line k exists and is not blank (a blank line ends an HTML block)."""
        return k < len(self.lines) and bool(self.lines[k][0].strip())

    def _starts_block(self, rest: str) -> bool:
        return bool(
            _FENCE.match(rest)
            or _RULE.match(rest)
            or _ATX.match(rest)
            or _ITEM.match(rest)
            or _HTML_BLOCK.match(rest)
        )

    def _fenced(self, i: int, quote: str, fence: str) -> int:
        """A fenced code block, kept: up to the closing fence (same character, as long or
        longer), or the end of the file."""
        k = i + 1
        while k < len(self.lines):
            body = self._rest(k).strip()
            k += 1
            if body.startswith(fence[0] * len(fence)) and not body.strip(fence[0]):
                break
        self.b.literal("".join(t + e for t, e in self.lines[i:k]))
        return k

    def _html(self, i: int) -> int:
        """An HTML block: up to a blank line, or the end tag of script/pre/style/textarea or a
        comment's end; read by the HTML reader."""
        first = self._rest(i).lstrip()
        key = "!--" if first.startswith("<!--") else re.match(r"<(\w*)", first).group(1).lower()
        end = _HTML_END.get(key)
        k = i
        while k < len(self.lines):
            k += 1
            if end.search(self.lines[k - 1][0]) if end else not self._continues(k):
                break
        block = "".join(t + e for t, e in self.lines[i:k])
        body = block.rstrip("\r\n")
        HtmlWalker(self.b).feed(body)
        self.b.literal(block[len(body) :])
        return k

    def _table(self, i: int) -> int:
        k = i
        while k < len(self.lines) and "|" in self.lines[k][0] and self.lines[k][0].strip():
            line, eol = self.lines[k]
            if k == i + 1:
                self.b.literal(line + eol)
            else:
                start = 0
                for lo, hi in _split_cells(line):
                    cell = line[lo:hi]
                    content = cell.strip()
                    at = lo + len(cell) - len(cell.lstrip())
                    self.b.literal(line[start:at])
                    if content:
                        self._paragraph([("", content, "")], cell=True)
                    start = at + len(content)
                self.b.literal(line[start:] + eol)
            k += 1
        return k

    def _flush(self) -> None:
        if self.para:
            para, self.para = self.para, []
            self._paragraph(para)
            self.b.literal(para[-1][2])

    def _paragraph(self, lines: list[tuple[str, str, str]], cell: bool = False) -> None:
        """Lines (prefix, content, line ending) of one paragraph; the first prefix is already
        written, the last line ending is the caller's."""
        original = "".join(
            (p if k else "") + c + (e if k < len(lines) - 1 else "")
            for k, (p, c, e) in enumerate(lines)
        )
        joined = " ".join(c.strip() for _, c, _ in lines)
        trail = lines[-1][1][len(lines[-1][1].rstrip()) :]
        runs = merge(self.inline.runs(joined))
        self.b.paragraph(runs, _MdSlot(original[: len(original) - len(trail)], cell))
        self.b.literal(trail)


class MarkdownFormat(DocumentFormat):
    name = "md"
    extensions = (".md", ".markdown")
    media_type = "text/markdown; charset=utf-8"

    def parse(self, data: bytes):
        text, codec = decode(data, "Markdown")
        return _Reader(text).read().document(codec)
