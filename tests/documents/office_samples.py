"""Sample office documents and e-books, built with each format's own library (python-docx,
python-pptx, odfpy, ebooklib): headings, inline bold/italic runs, hyperlinks, nested lists,
tables, images, footnotes, headers, slides with several text frames, speaker notes."""

from __future__ import annotations

import io
import struct
import zlib


def png(width: int = 2, height: int = 2) -> bytes:
    """A small valid PNG (red pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


FOOTNOTES_XML = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<w:footnotes xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
    '<w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/>'
    "</w:r></w:p></w:footnote>"
    '<w:footnote w:id="1"><w:p><w:pPr><w:pStyle w:val="FootnoteText"/></w:pPr>'
    '<w:r><w:rPr><w:vertAlign w:val="superscript"/></w:rPr><w:footnoteRef/></w:r>'
    '<w:r><w:t xml:space="preserve"> Una nota al pie de la casa.</w:t></w:r></w:p></w:footnote>'
    "</w:footnotes>"
)


def _docx_hyperlink(paragraph, url: str, text: str) -> None:
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    r_id = paragraph.part.relate_to(url, RT.HYPERLINK, is_external=True)
    link = OxmlElement("w:hyperlink")
    link.set(qn("r:id"), r_id)
    run = OxmlElement("w:r")
    rpr = OxmlElement("w:rPr")
    style = OxmlElement("w:u")
    style.set(qn("w:val"), "single")
    rpr.append(style)
    run.append(rpr)
    t = OxmlElement("w:t")
    t.text = text
    run.append(t)
    link.append(run)
    paragraph._p.append(link)


def _docx_footnote(document, paragraph) -> None:
    from docx.opc.constants import CONTENT_TYPE as CT
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    part = Part(
        PackURI("/word/footnotes.xml"),
        CT.WML_FOOTNOTES,
        FOOTNOTES_XML.encode(),
        document.part.package,
    )
    document.part.relate_to(part, RT.FOOTNOTES)
    run = paragraph.add_run()
    ref = OxmlElement("w:footnoteReference")
    ref.set(qn("w:id"), "1")
    run._r.append(ref)


def make_docx() -> bytes:
    import docx

    document = docx.Document()
    document.sections[0].header.paragraphs[0].text = "Cabecera del libro"
    document.sections[0].footer.paragraphs[0].text = "Pie de página"
    document.add_heading("El libro de la casa", level=1)
    p = document.add_paragraph("En el principio ")
    p.add_run("Dios").bold = True
    p.add_run(" creó los ")
    p.add_run("cielos").italic = True
    p.add_run(" y la tierra.")
    p = document.add_paragraph("Lee más en ")
    _docx_hyperlink(p, "https://example.org/libro", "la página del libro")
    p.add_run(".")
    p = document.add_paragraph("El perro come pan.")
    _docx_footnote(document, p)
    p.add_run(" Y el gato bebe agua.")
    p = document.add_paragraph("Nombre:")
    run = p.add_run()
    run.add_tab()
    run.add_text("el rey")
    run.add_break()
    run.add_text("del monte")
    document.add_paragraph("Primer punto de la lista", style="List Bullet")
    document.add_paragraph("Un punto dentro del punto", style="List Bullet 2")
    document.add_paragraph("Segundo punto de la lista", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for i, row in enumerate(table.rows):
        for j, cell in enumerate(row.cells):
            cell.text = f"Celda {i} {j} con agua"
    table.rows[1].cells[1].paragraphs[0].runs[0].bold = True
    document.add_picture(io.BytesIO(png()))
    document.add_paragraph("La luna y el sol sobre el mar.")
    document.add_paragraph("")
    document.add_paragraph("   ")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pptx() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = "El reino del mar"
    body = slide.placeholders[1].text_frame
    body.text = "Primer punto del rey"
    p = body.add_paragraph()
    p.text = "Un punto más hondo"
    p.level = 1
    p = body.add_paragraph()
    r = p.add_run()
    r.text = "El perro "
    r = p.add_run()
    r.text = "come pan"
    r.font.bold = True
    r = p.add_run()
    r.text = " en la casa."
    box = slide.shapes.add_textbox(Inches(1), Inches(5), Inches(4), Inches(1)).text_frame
    box.text = "Visita "
    r = box.paragraphs[0].add_run()
    r.text = "la página del reino"
    r.hyperlink.address = "https://example.org/reino"
    r = box.paragraphs[0].add_run()
    r.text = " hoy."
    box.paragraphs[0].add_line_break()
    r = box.paragraphs[0].add_run()
    r.text = "Y mañana."
    slide.notes_slide.notes_text_frame.text = "Notas del orador sobre el mar."

    slide = prs.slides.add_slide(prs.slide_layouts[5])
    slide.shapes.title.text = "La tabla del pan"
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for i in range(2):
        for j in range(2):
            table.cell(i, j).text = f"Celda {i} {j} del pan"
    slide.shapes.add_picture(io.BytesIO(png()), Inches(1), Inches(5))
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()


def _odf_common(doc):
    from odf.style import ParagraphProperties, Style, TextProperties

    bold = Style(name="Bold", family="text")
    bold.addElement(TextProperties(fontweight="bold"))
    doc.automaticstyles.addElement(bold)
    heading = Style(name="Heading", family="paragraph")
    heading.addElement(ParagraphProperties(margintop="0.2cm"))
    doc.styles.addElement(heading)
    return bold


def make_odt() -> bytes:
    from odf import teletype
    from odf.draw import Frame, Image
    from odf.opendocument import OpenDocumentText
    from odf.style import Footer, MasterPage, PageLayout
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import A, H, List, ListItem, Note, NoteBody, NoteCitation, P, Span

    doc = OpenDocumentText()
    bold = _odf_common(doc)
    layout = PageLayout(name="Page")
    doc.automaticstyles.addElement(layout)
    master = MasterPage(name="Standard", pagelayoutname=layout)
    footer = Footer()
    footer.addElement(P(text="Pie de la página del libro"))
    master.addElement(footer)
    doc.masterstyles.addElement(master)

    doc.text.addElement(H(outlinelevel=1, text="El libro del mar"))
    p = P(text="En el principio ")
    p.addElement(Span(stylename=bold, text="Dios"))
    p.addText(" creó los cielos y la tierra.")
    doc.text.addElement(p)
    p = P(text="Lee más en ")
    p.addElement(A(href="https://example.org/libro", text="la página del libro"))
    p.addText(".")
    doc.text.addElement(p)
    p = P(text="El perro come pan.")
    note = Note(id="ftn1", noteclass="footnote")
    note.addElement(NoteCitation(text="1"))
    body = NoteBody()
    body.addElement(P(text="Una nota al pie de la casa."))
    note.addElement(body)
    p.addElement(note)
    p.addText(" Y el gato bebe agua.")
    doc.text.addElement(p)
    p = P()
    teletype.addTextToElement(p, "Dos  espacios\ty un tabulador")
    doc.text.addElement(p)
    outer = List()
    item = ListItem()
    item.addElement(P(text="Primer punto de la lista"))
    inner = List()
    sub = ListItem()
    sub.addElement(P(text="Un punto dentro del punto"))
    inner.addElement(sub)
    item.addElement(inner)
    outer.addElement(item)
    doc.text.addElement(outer)
    table = Table(name="Tabla")
    table.addElement(TableColumn(numbercolumnsrepeated=2))
    for i in range(2):
        row = TableRow()
        for j in range(2):
            cell = TableCell()
            cell.addElement(P(text=f"Celda {i} {j} con agua"))
            row.addElement(cell)
        table.addElement(row)
    doc.text.addElement(table)
    href = doc.addPicture("Pictures/red.png", "image/png", png())
    frame = Frame(width="1cm", height="1cm", anchortype="as-char")
    frame.addElement(Image(href=href))
    p = P(text="Una imagen ")
    p.addElement(frame)
    p.addText(" del sol.")
    doc.text.addElement(p)
    out = io.BytesIO()
    doc.write(out)
    return out.getvalue()


def make_odp() -> bytes:
    from odf.draw import Frame, Image, Page, TextBox
    from odf.opendocument import OpenDocumentPresentation
    from odf.presentation import Notes
    from odf.style import MasterPage, PageLayout, PageLayoutProperties
    from odf.text import A, P, Span

    doc = OpenDocumentPresentation()
    bold = _odf_common(doc)
    layout = PageLayout(name="Layout")
    layout.addElement(PageLayoutProperties(pagewidth="28cm", pageheight="21cm"))
    doc.automaticstyles.addElement(layout)
    master = MasterPage(name="Master", pagelayoutname=layout)
    doc.masterstyles.addElement(master)
    for n in range(2):
        page = Page(name=f"page{n}", masterpagename=master)
        for k, text in enumerate((f"El reino del mar {n}", f"El perro come pan {n}")):
            frame = Frame(width="20cm", height="3cm", x="2cm", y=f"{2 + 4 * k}cm")
            box = TextBox()
            p = P(text=text + " ")
            p.addElement(Span(stylename=bold, text="en la casa"))
            p.addText(".")
            box.addElement(p)
            frame.addElement(box)
            page.addElement(frame)
        frame = Frame(width="20cm", height="3cm", x="2cm", y="12cm")
        box = TextBox()
        p = P(text="Visita ")
        p.addElement(A(href="https://example.org/reino", text="la página del reino"))
        box.addElement(p)
        frame.addElement(box)
        page.addElement(frame)
        href = doc.addPicture(f"Pictures/red{n}.png", "image/png", png(n + 2, 2))
        frame = Frame(width="2cm", height="2cm", x="2cm", y="16cm")
        frame.addElement(Image(href=href))
        page.addElement(frame)
        notes = Notes()
        frame = Frame(width="20cm", height="3cm", x="2cm", y="2cm")
        box = TextBox()
        box.addElement(P(text="Notas del orador sobre el mar."))
        frame.addElement(box)
        notes.addElement(frame)
        page.addElement(notes)
        doc.presentation.addElement(page)
    out = io.BytesIO()
    doc.write(out)
    return out.getvalue()


def make_epub(path) -> bytes:
    """An epub written to path (ebooklib writes files) and returned as bytes."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("id-libro")
    book.set_title("El libro del mar")
    book.set_language("es")
    image = epub.EpubItem(
        uid="red", file_name="images/red.png", media_type="image/png", content=png()
    )
    book.add_item(image)
    chapters = []
    bodies = [
        "<h1>El reino del mar</h1>"
        "<p>En el principio <b>Dios</b> creó los <i>cielos</i> y la tierra.</p>"
        '<p>Lee más en <a href="https://example.org/libro">la página del libro</a>.</p>'
        "<p>Usa <code>pan_del_rey()</code> para comer.</p>"
        '<p>El perro <span class="notranslate">Rey Sol</span> come pan.</p>'
        "<ul><li>Primer punto<ul><li>Un punto dentro</li></ul></li><li>Segundo punto</li></ul>",
        "<h2>La tabla del pan</h2>"
        "<table><tr><td>Celda de agua</td><td><b>Celda</b> del sol</td></tr></table>"
        '<p><img src="images/red.png" alt="Un cuadro rojo"/> La luna sobre el mar.</p>'
        "<pre>codigo   sin traducir</pre>",
    ]
    for n, body in enumerate(bodies, 1):
        chapter = epub.EpubHtml(title=f"Capítulo {n}", file_name=f"chap{n}.xhtml", lang="es")
        head = f"<head><title>Capítulo {n}</title></head>"
        chapter.content = f"<html>{head}<body>{body}</body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)
    return path.read_bytes()
