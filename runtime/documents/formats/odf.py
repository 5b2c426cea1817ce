"""OpenDocument text and presentations (.odt, .odp): every paragraph and heading (<text:p>,
<text:h>) of content.xml (body, tables, lists, frames, footnotes, speaker notes) and of the
headers and footers in styles.xml. Annotations (comments) are left as they are.

Paragraphs hold mixed content: text, <text:span text:style-name> and <text:a xlink:href> (a
run's style is the chain of these around it), <text:s/> (spaces), <text:tab/> and
<text:line-break/> (characters). Notes, frames, fields and bookmarks are objects (see _zipxml).
Whitespace in ODF text collapses as in HTML, so it is read collapsed and written back with
<text:s/> where a space would otherwise be lost.
"""

from __future__ import annotations

from ..base import DocumentError, DocumentFormat
from ..safety import SafeZip, etree
from ._zipxml import Pieces, Slot, ZipXmlDocument, emit_mixed, flatten_mixed

TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
STYLE = "urn:oasis:names:tc:opendocument:xmlns:style:1.0"
HEADERS = {
    f"{{{STYLE}}}{kind}{side}" for kind in ("header", "footer") for side in ("", "-left", "-first")
}


def t(tag: str) -> str:
    return f"{{{TEXT}}}{tag}"


def classify(child):
    if child.tag in (t("span"), t("a")):
        return ("wrap", False)
    if child.tag == t("s"):
        return ("text", " " * int(child.get(t("c"), "1") or 1))
    if child.tag == t("tab"):
        return ("text", "\t")
    if child.tag == t("line-break"):
        return ("text", "\n")
    return ("object",)


def text_nodes(text: str, previous: str) -> list:
    """Text as ODF content: tabs and breaks as elements, a space that would collapse (at the
    paragraph's start or after another space) as <text:s/>."""
    et = etree()
    nodes: list = []
    for ch in text:
        if ch in "\t\n":
            nodes.append(et.Element(t("tab" if ch == "\t" else "line-break")))
        elif ch == " " and previous in ("", " "):
            last = nodes[-1] if nodes else None
            if last is not None and not isinstance(last, str) and last.tag == t("s"):
                last.set(t("c"), str(int(last.get(t("c"), "1")) + 1))
            else:
                nodes.append(et.Element(t("s")))
        elif nodes and isinstance(nodes[-1], str):
            nodes[-1] += ch
        else:
            nodes.append(ch)
        previous = ch
    return nodes


def write_paragraph(slot: Slot, items: list) -> None:
    emit_mixed(slot.element, items, text_nodes)


def _in(element, tags) -> bool:
    return any(ancestor.tag in tags for ancestor in element.iterancestors())


class _OdfFormat(DocumentFormat):
    mimetype: str

    def parse(self, data: bytes) -> ZipXmlDocument:
        package = SafeZip(data, self.name)
        if "META-INF/manifest.xml" in package and b"encryption-data" in package.read(
            "META-INF/manifest.xml"
        ):
            raise DocumentError(f"this {self.name} is password protected (its parts are encrypted)")
        if "mimetype" in package:
            found = package.read("mimetype").decode("ascii", "replace").strip()
            if found != self.mimetype:
                raise DocumentError(f"not a valid {self.name} file: its mimetype is {found!r}")
        doc = ZipXmlDocument(package, mimetype_first=True)
        doc.writer = write_paragraph
        body = doc.tree("content.xml").getroot().find(f"{{{OFFICE}}}body")
        if body is None:
            raise DocumentError(f"not a valid {self.name} file: content.xml has no office:body")
        self._add(doc, "content.xml", body.iter(t("p"), t("h")))
        if "styles.xml" in package:
            masters = doc.tree("styles.xml").getroot().find(f"{{{OFFICE}}}master-styles")
            if masters is not None:
                found = (p for p in masters.iter(t("p"), t("h")) if _in(p, HEADERS))
                self._add(doc, "styles.xml", found)
        return doc

    @staticmethod
    def _add(doc: ZipXmlDocument, part: str, paragraphs) -> None:
        annotation = {f"{{{OFFICE}}}annotation"}
        for p in paragraphs:
            if _in(p, annotation):
                continue
            pieces = Pieces()
            flatten_mixed(pieces, p, classify, collapse=True)
            doc.add(pieces.paragraph(part, p))


class OdtFormat(_OdfFormat):
    name = "odt"
    extensions = (".odt",)
    media_type = mimetype = "application/vnd.oasis.opendocument.text"


class OdpFormat(_OdfFormat):
    name = "odp"
    extensions = (".odp",)
    media_type = mimetype = "application/vnd.oasis.opendocument.presentation"
