"""E-books (.epub): the XHTML documents of the manifest (chapters and the navigation page), the
table of contents (NCX) and the book's title (dc:title in the package document).

XHTML is read with the XML parser. A paragraph is a block element (p, h1-h6, li, td, ...) with
text of its own; its inline elements (b, i, a, span, ...) are the runs' styles (the chain of
tags and attributes around the text, so a link keeps its href on its words); code, kbd, samp
and elements marked translate="no" or class "notranslate" are kept verbatim; nested blocks,
images, pre, script, style, svg and math are objects (see _zipxml). alt and title attributes
are translated as paragraphs of their own. Whitespace collapses as in HTML.
"""

from __future__ import annotations

import posixpath
from html.entities import html5
from urllib.parse import unquote

from ..base import DocumentError, DocumentFormat, Paragraph, Run
from ..safety import SafeZip, etree
from ._zipxml import Pieces, Slot, ZipXmlDocument, emit_mixed, flatten_mixed

XHTML = "http://www.w3.org/1999/xhtml"
OPF = "http://www.idpf.org/2007/opf"
NCX = "http://www.daisy.org/z3986/2005/ncx/"
DC = "http://purl.org/dc/elements/1.1/"
CONTAINER = "urn:oasis:names:tc:opendocument:xmlns:container"
BLOCKS = set(
    "p h1 h2 h3 h4 h5 h6 li dt dd td th caption figcaption blockquote div section article aside "
    "header footer nav address title legend summary main body figure center".split()
)
INLINE = set(
    "a abbr acronym b bdi bdo big cite code data dfn em font i ins kbd label mark q rb rp rt "
    "ruby s samp small span strike strong sub sup time tt u var".split()
)
VERBATIM = {"code", "kbd", "samp", "tt"}
VOID = set("area base br col embed hr img input link meta param source track wbr".split())
ATTRIBUTES = ("alt", "title")


def _local(element) -> str | None:
    """The XHTML tag name without namespace, or None for other elements, comments, entities."""
    tag = element.tag
    if isinstance(tag, str) and tag.startswith(f"{{{XHTML}}}"):
        return tag[len(XHTML) + 2 :]
    return None


def _marked_no(element) -> bool:
    return element.get("translate") == "no" or "notranslate" in (element.get("class") or "").split()


def _untranslated(element) -> bool:
    """Inside an element marked not to translate, or inside pre, script, style, code."""
    for node in (element, *element.iterancestors()):
        if node.get("translate") == "yes":
            return False
        if _marked_no(node) or _local(node) in ("pre", "script", "style", "code", "svg", "math"):
            return True
    return False


def classify(child):
    name = _local(child)
    if name == "br":
        return ("text", "\n")
    if name in INLINE:
        return ("wrap", name in VERBATIM or _marked_no(child))
    if isinstance(child, etree()._Entity) and html5.get(child.name + ";"):
        return ("text", html5[child.name + ";"])  # &nbsp; from an XHTML DTD, not declared here
    return ("object",)


def text_nodes(text: str, previous: str) -> list:
    et = etree()
    nodes: list = []
    for i, line in enumerate(text.split("\n")):
        if i:
            nodes.append(et.Element(f"{{{XHTML}}}br"))
        if line:
            nodes.append(line)
    return nodes


def write_paragraph(slot: Slot, items: list) -> None:
    emit_mixed(slot.element, items, text_nodes)


def keep_end_tags(tree) -> None:
    """<script></script>, not <script/>: XHTML readers that fall back to HTML need the end tag."""
    for element in tree.getroot().iter(f"{{{XHTML}}}*"):
        if element.text is None and len(element) == 0 and _local(element) not in VOID:
            element.text = ""


def _read_xhtml(doc: ZipXmlDocument, part: str) -> None:
    root = doc.tree(part).getroot()
    for element in root.iter(f"{{{XHTML}}}*"):
        if _untranslated(element):
            continue
        if _local(element) in BLOCKS:
            pieces = Pieces()
            flatten_mixed(pieces, element, classify, collapse=True)
            doc.add(pieces.paragraph(part, element))
        for name in ATTRIBUTES:
            value = element.get(name)
            if value and value.strip():
                doc.add(Paragraph([Run(value)], ref=Slot(part, element, attribute=name)))


def _read_plain(doc: ZipXmlDocument, part: str, tag: str) -> None:
    """Elements with plain text (the NCX's <text>, dc:title)."""
    for element in doc.tree(part).getroot().iter(tag):
        pieces = Pieces()
        flatten_mixed(pieces, element, lambda child: ("object",), collapse=True)
        doc.add(pieces.paragraph(part, element))


def _rootfile(doc: ZipXmlDocument) -> str:
    if "META-INF/container.xml" not in doc.package:
        raise DocumentError("not a valid epub file: META-INF/container.xml is missing")
    container = doc.tree("META-INF/container.xml").getroot()
    for rootfile in container.iter(f"{{{CONTAINER}}}rootfile"):
        path = rootfile.get("full-path")
        if path:
            return unquote(path)
    raise DocumentError("not a valid epub file: container.xml names no package document")


class EpubFormat(DocumentFormat):
    name = "epub"
    extensions = (".epub",)
    media_type = "application/epub+zip"

    def parse(self, data: bytes) -> ZipXmlDocument:
        doc = ZipXmlDocument(SafeZip(data, "epub"), mimetype_first=True)
        doc.writer = write_paragraph
        doc.before_write = keep_end_tags
        opf = _rootfile(doc)
        if opf not in doc.package:
            raise DocumentError(f"not a valid epub file: its package document {opf!r} is missing")
        package = doc.tree(opf).getroot()
        _read_plain(doc, opf, f"{{{DC}}}title")
        folder = posixpath.dirname(opf)
        for item in package.iter(f"{{{OPF}}}item"):
            href = item.get("href")
            part = posixpath.normpath(posixpath.join(folder, unquote(href or "")))
            if not href or part not in doc.package:
                continue
            media = item.get("media-type")
            if media == "application/xhtml+xml":
                _read_xhtml(doc, part)
            elif media == "application/x-dtbncx+xml":
                _read_plain(doc, part, f"{{{NCX}}}text")
        return doc
