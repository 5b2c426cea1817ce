"""Word documents (.docx): paragraphs (<w:p>) of the body, tables, text boxes, headers, footers,
footnotes and endnotes. Comments are left as they are (they are the reviewers', not the text).

A run (<w:r>) that holds only text, tabs and line breaks is text; its <w:rPr> (serialized) is the
run's style, together with the attributes of the <w:hyperlink> around it, so a link follows its
words. Every other run (a drawing, a field and everything up to its end, a footnote reference, a
page break) and every other child (bookmarks, tracked changes, equations, content controls) is
kept as an object and goes back at its relative position (see _zipxml). Each translated run is
written as one <w:r> with a copy of its source run's <w:rPr>.
"""

from __future__ import annotations

import re

from ..base import DocumentError, DocumentFormat, Run
from ..safety import SafeZip, etree
from ._zipxml import Pieces, Slot, ZipXmlDocument, clear, natural_key, ooxml_parts

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
# Run children that stand for characters ('' = ignored: a soft hyphen, a layout cache).
CHARACTERS = {
    "tab": "\t",
    "br": "\n",
    "cr": "\n",
    "noBreakHyphen": "\u2011",
    "softHyphen": "",
    "lastRenderedPageBreak": "",
}
# Content types of the parts with text, after the main document part.
TEXT_PARTS = (
    "wordprocessingml.header+xml",
    "wordprocessingml.footer+xml",
    "wordprocessingml.footnotes+xml",
    "wordprocessingml.endnotes+xml",
)


def w(tag: str) -> str:
    return f"{{{W}}}{tag}"


def _is_main(content_type: str) -> bool:
    return content_type.endswith(".main+xml") and (
        "wordprocessingml" in content_type or "ms-word" in content_type
    )


def _run_text(run) -> str | None:
    """The text of a run that holds only text, tabs and line breaks; None for any other run."""
    parts = []
    for child in run:
        if not isinstance(child.tag, str) or not child.tag.startswith(f"{{{W}}}"):
            return None
        name = child.tag[len(W) + 2 :]
        if name == "rPr":
            continue
        if name == "t":
            parts.append(child.text or "")
        elif name == "br" and child.get(w("type")) not in (None, "textWrapping"):
            return None  # a page or column break
        elif name in CHARACTERS:
            parts.append(CHARACTERS[name])
        else:
            return None
    return "".join(parts)


def _field_depth(run, depth: int) -> int:
    for char in run.iter(w("fldChar")):
        kind = char.get(w("fldCharType"))
        depth += 1 if kind == "begin" else -1 if kind == "end" else 0
    return max(depth, 0)


def _style(run, link):
    rpr = run.find(w("rPr"))
    rpr = etree().tostring(rpr) if rpr is not None else None
    return None if rpr is None and link is None else (link, rpr)


def read_paragraph(part: str, p):
    pieces, head, depth = Pieces(), [], 0
    children = list(p)
    if children and children[0].tag == w("pPr"):
        head.append(children.pop(0))
    for child in children:
        inner, link = [child], None
        if child.tag == w("hyperlink"):
            inner, link = list(child), tuple(sorted(child.attrib.items()))
        for node in inner:
            text = _run_text(node) if node.tag == w("r") and depth == 0 else None
            if node.tag == w("r"):
                depth = _field_depth(node, depth)
            if text is None:
                pieces.object(node)
            else:
                pieces.text(text, _style(node, link))
    return pieces.paragraph(part, p, head)


def _make_run(text: str, rpr: bytes | None):
    et = etree()
    run = et.Element(w("r"))
    if rpr is not None:
        run.append(et.fromstring(rpr))
    for chunk in re.split(r"([\t\n\u2011])", text):
        if chunk == "\t":
            et.SubElement(run, w("tab"))
        elif chunk == "\n":
            et.SubElement(run, w("br"))
        elif chunk == "\u2011":
            et.SubElement(run, w("noBreakHyphen"))
        elif chunk:
            t = et.SubElement(run, w("t"))
            t.text = chunk
            if chunk != chunk.strip():
                t.set(XML_SPACE, "preserve")
    return run


def write_paragraph(slot: Slot, items: list) -> None:
    et = etree()
    p = slot.element
    clear(p)
    p.extend(slot.head)
    link, holder = None, None
    for item in items:
        if not isinstance(item, Run):
            link, holder = None, None
            p.append(item)
            continue
        item_link, rpr = item.style or (None, None)
        if item_link != link:
            link = item_link
            holder = et.SubElement(p, w("hyperlink"), dict(link)) if link else None
        (holder if holder is not None else p).append(_make_run(item.text, rpr))


class DocxFormat(DocumentFormat):
    name = "docx"
    extensions = (".docx",)
    media_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

    def parse(self, data: bytes) -> ZipXmlDocument:
        doc = ZipXmlDocument(SafeZip(data, "docx"))
        doc.writer = write_paragraph
        types = ooxml_parts(doc)
        main = [name for name, ct in types.items() if _is_main(ct)]
        if not main:
            raise DocumentError("not a valid docx file: it has no main document part")
        others = sorted((n for n, ct in types.items() if ct.endswith(TEXT_PARTS)), key=natural_key)
        for part in main[:1] + others:
            root = doc.tree(part).getroot()
            if main[0] == part and root.find(w("body")) is None:
                raise DocumentError(f"not a valid docx file: {part} has no <w:body>")
            for p in root.iter(w("p")):
                doc.add(read_paragraph(part, p))
        return doc
