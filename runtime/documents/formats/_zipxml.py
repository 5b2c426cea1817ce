"""What docx, pptx, odt, odp and epub share: a zip of XML parts whose paragraphs are elements.

A paragraph element holds text runs and other things (a drawing, a footnote reference, a field, a
bookmark). Text runs become `Run`s; everything else is an *object*, remembered with its character
offset in the paragraph's text. On render the translated runs are written in place of the text
runs and each object goes back at the same relative position of the new text (snapped to a word
boundary): objects at the start or end stay there, and every object is kept, in its order.
Paragraphs whose runs come back unchanged are not touched, and a part with no changed paragraph
is copied as it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..base import DocumentError, Paragraph, ParsedDocument, Run
from ..safety import SafeZip, etree, parse_xml, serialize_xml


@dataclass
class Slot:
    """Where a paragraph lives and what besides text it holds (the Paragraph's ref)."""

    part: str  # zip member
    element: object  # the paragraph element
    objects: list[tuple[int, object]] = field(default_factory=list)  # (text offset, element)
    head: list = field(default_factory=list)  # kept first (w:pPr, a:pPr)
    tail: list = field(default_factory=list)  # kept last (a:endParaRPr)
    source_len: int = 0  # length of the source text, to place objects
    attribute: str | None = None  # the paragraph is this attribute's value (alt, title)


class Pieces:
    """Collects a paragraph's text pieces and objects while a format walks its element."""

    def __init__(self):
        self.runs: list[Run] = []
        self.objects: list[tuple[int, object]] = []
        self.length = 0

    def text(self, text: str, style=None, keep: bool = False) -> None:
        if not text:
            return
        style = style or None
        last = self.runs[-1] if self.runs else None
        if last is not None and last.style == style and last.keep == keep:
            self.runs[-1] = Run(last.text + text, style, keep)
        else:
            self.runs.append(Run(text, style, keep))
        self.length += len(text)

    def object(self, element) -> None:
        self.objects.append((self.length, element))

    def paragraph(self, part: str, element, head=(), tail=()) -> Paragraph | None:
        """The paragraph, or None when it has no text to translate."""
        if not "".join(r.text for r in self.runs).strip():
            return None
        slot = Slot(part, element, self.objects, list(head), list(tail), self.length)
        return Paragraph(self.runs, ref=slot)


def merge_runs(runs: list[Run]) -> list[Run]:
    merged: list[Run] = []
    for run in runs:
        if not run.text:
            continue
        if merged and merged[-1].style == run.style and merged[-1].keep == run.keep:
            merged[-1] = Run(merged[-1].text + run.text, run.style, run.keep)
        else:
            merged.append(run)
    return merged


def _snap(text: str, pos: int) -> int:
    """The word boundary (a whitespace or an end) nearest to pos."""
    for d in range(len(text) + 1):
        for j in (pos + d, pos - d):
            if 0 <= j <= len(text) and (j in (0, len(text)) or text[j].isspace()):
                return j
    return pos


def interleave(runs: list[Run], slot: Slot) -> list:
    """The translated runs with the paragraph's objects put back at their relative positions:
    a list of Run and object elements, in writing order."""
    runs = merge_runs(runs)
    text = "".join(r.text for r in runs)
    cuts, last = [], 0
    for offset, element in slot.objects:
        if offset <= 0:
            pos = 0
        elif offset >= slot.source_len:
            pos = len(text)
        else:
            pos = _snap(text, round(offset * len(text) / slot.source_len))
        last = max(pos, last)
        cuts.append((last, element))
    items, i, start = [], 0, 0
    for run in runs:
        end, piece = start + len(run.text), start
        while i < len(cuts) and cuts[i][0] < end:
            pos, element = cuts[i]
            if pos > piece:
                items.append(Run(run.text[piece - start : pos - start], run.style, run.keep))
                piece = pos
            items.append(element)
            i += 1
        if end > piece:
            items.append(Run(run.text[piece - start :], run.style, run.keep))
        start = end
    items.extend(element for _, element in cuts[i:])
    return items


def clear(element) -> None:
    element.text = None
    for child in list(element):
        element.remove(child)


def append_text(parent, text: str) -> None:
    """Add text at the end of parent's content (its text, or its last child's tail)."""
    if len(parent):
        parent[-1].tail = (parent[-1].tail or "") + text
    else:
        parent.text = (parent.text or "") + text


def append_nodes(parent, nodes: list) -> None:
    for node in nodes:
        if isinstance(node, str):
            append_text(parent, node)
        else:
            parent.append(node)


def element_key(element) -> tuple:
    """A hashable description of an inline element: its tag and attributes."""
    return (element.tag, tuple(sorted(element.attrib.items())))


def flatten_mixed(pieces: Pieces, element, classify, collapse: bool, chain=(), keep=False) -> None:
    """Walk an element with mixed content (ODF, XHTML): classify(child) says what a child is:
    ("wrap", keep) for inline formatting whose text is part of the paragraph, ("text", str) for
    an element that stands for characters (a tab, spaces), ("object",) for anything else."""

    def add(text, verbatim=False):
        if text and collapse and not verbatim:
            text = re.sub(r"[ \t\r\n]+", " ", text)
        pieces.text(text or "", chain, keep)

    add(element.text)
    for child in element:
        kind = classify(child)
        if kind[0] == "wrap":
            flatten_mixed(
                pieces, child, classify, collapse, chain + (element_key(child),), keep or kind[1]
            )
        elif kind[0] == "text":
            add(kind[1], verbatim=True)
        else:
            pieces.object(child)
        add(child.tail)


def emit_mixed(element, items: list, text_nodes: Callable[[str, str], list]) -> None:
    """Write items (Run | object) into element as mixed content; a Run's style is the chain of
    (tag, attributes) wrappers it sat in; text_nodes(text, previous_char) -> [str | element]."""
    et = etree()
    clear(element)
    previous = ""
    for item in items:
        if isinstance(item, Run):
            parent = element
            for tag, attrs in item.style or ():
                parent = et.SubElement(parent, tag, dict(attrs))
            append_nodes(parent, text_nodes(item.text, previous))
            previous = item.text[-1:] or previous
        else:
            item.tail = None
            element.append(item)
            previous = "\x00"


class ZipXmlDocument(ParsedDocument):
    """A parsed zip-of-XML document: the package, the parsed text parts and their paragraphs."""

    def __init__(self, package: SafeZip, mimetype_first: bool = False):
        self.package = package
        self.mimetype_first = mimetype_first
        self.paragraphs: list[Paragraph] = []
        self.trees: dict[str, tuple[object, bytes]] = {}  # part -> (tree, original bytes)
        self.writer: Callable[[Slot, list], None] | None = None
        self.before_write: Callable[[object], None] | None = None  # fix-ups on a changed tree
        self._rendered = False

    def tree(self, part: str):
        """A text part's tree, parsed once; a missing or malformed part raises DocumentError."""
        if part not in self.trees:
            data = self.package.read(part)
            self.trees[part] = (parse_xml(data, f"{self.package.kind} part {part}"), data)
        return self.trees[part][0]

    def add(self, paragraph: Paragraph | None) -> None:
        if paragraph is not None:
            self.paragraphs.append(paragraph)

    def render(self, translated: list[list[Run]]) -> bytes:
        if len(translated) != len(self.paragraphs):
            raise ValueError(
                f"render() got {len(translated)} paragraphs for a document of "
                f"{len(self.paragraphs)}"
            )
        if self._rendered:
            raise RuntimeError("a parsed document can be rendered once (parse it again)")
        self._rendered = True
        changed = set()
        for paragraph, runs in zip(self.paragraphs, translated, strict=True):
            if list(runs) == paragraph.runs:
                continue
            slot: Slot = paragraph.ref
            if slot.attribute:
                slot.element.set(slot.attribute, "".join(r.text for r in runs))
            else:
                self.writer(slot, interleave(list(runs), slot))
            changed.add(slot.part)
        replaced = {}
        for part in changed:
            tree, original = self.trees[part]
            if self.before_write is not None:
                self.before_write(tree)
            replaced[part] = serialize_xml(tree, original)
        return self.package.write(replaced, mimetype_first=self.mimetype_first)


def natural_key(name: str) -> list:
    """slide2.xml before slide10.xml."""
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name)]


def ooxml_parts(doc: ZipXmlDocument) -> dict[str, str]:
    """An OOXML package's parts by name -> content type, from [Content_Types].xml's overrides."""
    from urllib.parse import unquote

    if "[Content_Types].xml" not in doc.package:
        raise DocumentError(f"not a valid {doc.package.kind} file: [Content_Types].xml is missing")
    root = parse_xml(doc.package.read("[Content_Types].xml"), "[Content_Types].xml").getroot()
    parts = {}
    for override in root:
        if isinstance(override.tag, str) and override.tag.endswith("}Override"):
            name = unquote(override.get("PartName", "")).lstrip("/")
            parts[name] = override.get("ContentType", "")
    return parts
