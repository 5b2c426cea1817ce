"""PowerPoint presentations (.pptx): every paragraph (<a:p>) of the slides (text frames, tables,
grouped shapes) and of the speaker notes. Layouts and masters (placeholder prompts), charts and
SmartArt are left as they are.

A run (<a:r>) is text with its <a:rPr> (serialized) as style; a hyperlink lives in the rPr
(<a:hlinkClick>), so it follows its words. A line break (<a:br>) is a "\\n" with the break's
rPr. Fields (slide numbers, dates) and anything else are objects (see _zipxml); <a:pPr> stays
first and <a:endParaRPr> last.
"""

from __future__ import annotations

from ..base import DocumentError, DocumentFormat, Run
from ..safety import SafeZip, etree
from ._zipxml import Pieces, Slot, ZipXmlDocument, clear, natural_key, ooxml_parts

A = "http://schemas.openxmlformats.org/drawingml/2006/main"
TEXT_PARTS = ("presentationml.slide+xml", "presentationml.notesSlide+xml")


def a(tag: str) -> str:
    return f"{{{A}}}{tag}"


def _is_main(content_type: str) -> bool:
    return content_type.endswith(".main+xml") and (
        "presentationml" in content_type or "ms-powerpoint" in content_type
    )


def _rpr(element) -> bytes | None:
    rpr = element.find(a("rPr"))
    return etree().tostring(rpr) if rpr is not None else None


def _text_run(run) -> str | None:
    """A plain run's text: only <a:rPr> and <a:t> inside; None for anything else."""
    text = None
    for child in run:
        if child.tag == a("t"):
            text = (text or "") + (child.text or "")
        elif child.tag != a("rPr"):
            return None
    return text or ""


def read_paragraph(part: str, p):
    pieces, head, tail = Pieces(), [], []
    children = list(p)
    if children and children[0].tag == a("pPr"):
        head.append(children.pop(0))
    if children and children[-1].tag == a("endParaRPr"):
        tail.append(children.pop())
    for child in children:
        text = _text_run(child) if child.tag == a("r") else None
        if child.tag == a("br"):
            pieces.text("\n", _rpr(child))
        elif text is None:
            pieces.object(child)
        else:
            pieces.text(text, _rpr(child))
    return pieces.paragraph(part, p, head, tail)


def write_paragraph(slot: Slot, items: list) -> None:
    et = etree()
    p = slot.element
    clear(p)
    p.extend(slot.head)
    for item in items:
        if not isinstance(item, Run):
            p.append(item)
            continue
        for i, line in enumerate(item.text.split("\n")):
            if i:
                br = et.SubElement(p, a("br"))
                if item.style is not None:
                    br.append(et.fromstring(item.style))
            if line:
                run = et.SubElement(p, a("r"))
                if item.style is not None:
                    run.append(et.fromstring(item.style))
                et.SubElement(run, a("t")).text = line
    p.extend(slot.tail)


class PptxFormat(DocumentFormat):
    name = "pptx"
    extensions = (".pptx",)
    media_type = "application/vnd.openxmlformats-officedocument.presentationml.presentation"

    def parse(self, data: bytes) -> ZipXmlDocument:
        doc = ZipXmlDocument(SafeZip(data, "pptx"))
        doc.writer = write_paragraph
        types = ooxml_parts(doc)
        if not any(_is_main(ct) for ct in types.values()):
            raise DocumentError("not a valid pptx file: it has no presentation part")
        parts = sorted((n for n, ct in types.items() if ct.endswith(TEXT_PARTS)), key=natural_key)
        # slides first, then notes, each in slide order
        for part in sorted(parts, key=lambda n: "notesSlide" in n):
            for p in doc.tree(part).getroot().iter(a("p")):
                doc.add(read_paragraph(part, p))
        return doc
