"""docx, pptx, odt, odp and epub: parse -> render keeps structure, styles and every non-text
member; the outputs open in the formats' own libraries (and in LibreOffice, slow); bad files
(corrupt, encrypted, zip bombs, unsafe names, XML entities) raise DocumentError naming the
problem."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import zipfile

import pytest

from traductor.runtime.documents.base import DocumentError, Run
from traductor.runtime.documents.formats import get_format
from traductor.runtime.documents.formats._zipxml import Slot, interleave
from traductor.runtime.documents.safety import SafeZip, ZipLimits

from . import office_samples

FORMATS = ["docx", "pptx", "odt", "odp", "epub"]
MAIN_PART = {
    "docx": "word/document.xml",
    "pptx": "ppt/slides/slide1.xml",
    "odt": "content.xml",
    "odp": "content.xml",
    "epub": "EPUB/chap1.xhtml",
}


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("office")
    return {
        "docx": office_samples.make_docx(),
        "pptx": office_samples.make_pptx(),
        "odt": office_samples.make_odt(),
        "odp": office_samples.make_odp(),
        "epub": office_samples.make_epub(folder / "book.epub"),
    }


def upper(doc) -> list[list[Run]]:
    """A fake translation: every run upper-cased, kept runs as they are."""
    return [
        [Run(r.text if r.keep else r.text.upper(), r.style, r.keep) for r in p.runs]
        for p in doc.paragraphs
    ]


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def object_tags(doc) -> list[list[str]]:
    return [[str(el.tag) for _, el in p.ref.objects] for p in doc.paragraphs]


def rezip(data: bytes, replace: dict[str, bytes | None]) -> bytes:
    """A copy of a zip with some members replaced (None: removed)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            if info.filename in replace:
                if replace[info.filename] is not None:
                    zout.writestr(info, replace[info.filename])
            else:
                zout.writestr(info, zin.read(info))
        for name, content in replace.items():
            if name not in zin.NameToInfo and content is not None:
                zout.writestr(name, content)
    return out.getvalue()


# ---- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_identity_render_keeps_every_member_byte_identical(samples, fmt):
    data = samples[fmt]
    doc = get_format(fmt).parse(data)
    out = doc.render([list(p.runs) for p in doc.paragraphs])
    assert members(out) == members(data)
    with zipfile.ZipFile(io.BytesIO(data)) as a, zipfile.ZipFile(io.BytesIO(out)) as b:
        assert [(i.filename, i.compress_type) for i in a.infolist()] == [
            (i.filename, i.compress_type) for i in b.infolist()
        ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_rewritten_paragraphs_read_back_as_the_source(samples, fmt):
    """Every paragraph rewritten with its own runs (an empty run forces the rewrite): the text
    parts read back to the same runs, styles and objects; the other members are untouched."""
    data = samples[fmt]
    doc = get_format(fmt).parse(data)
    out = doc.render([[*p.runs, Run("")] for p in doc.paragraphs])
    again = get_format(fmt).parse(out)
    assert [p.runs for p in again.paragraphs] == [p.runs for p in doc.paragraphs]
    assert object_tags(again) == object_tags(doc)
    before, after = members(data), members(out)
    changed = {name for name in before if before[name] != after[name]}
    assert changed <= {p.ref.part for p in doc.paragraphs}


@pytest.mark.parametrize("fmt", FORMATS)
def test_fake_translation_keeps_structure_styles_and_non_text_members(samples, fmt):
    data = samples[fmt]
    doc = get_format(fmt).parse(data)
    expected = upper(doc)
    out = doc.render(expected)
    again = get_format(fmt).parse(out)
    assert [p.runs for p in again.paragraphs] == expected
    assert object_tags(again) == object_tags(doc)
    text_parts = {p.ref.part for p in doc.paragraphs}
    before, after = members(data), members(out)
    assert list(after) == list(before)
    assert {n: b for n, b in after.items() if n not in text_parts} == {
        n: b for n, b in before.items() if n not in text_parts
    }
    for part in text_parts:  # markup outside the paragraphs unchanged: same elements, same order
        tags = [re.findall(rb"<([\w:]+)", m[part]) for m in (before, after)]
        assert len(tags[1]) >= len(tags[0]) * 0.7


def test_docx_output_opens_in_python_docx_with_the_new_text(samples):
    import docx

    doc = get_format("docx").parse(samples["docx"])
    source = docx.Document(io.BytesIO(samples["docx"]))
    out = docx.Document(io.BytesIO(doc.render(upper(doc))))
    assert len(out.paragraphs) == len(source.paragraphs)
    assert [p.style.name for p in out.paragraphs] == [p.style.name for p in source.paragraphs]
    assert [p.text for p in out.paragraphs] == [p.text.upper() for p in source.paragraphs]
    assert [c.text for c in out.tables[0]._cells] == [
        c.text.upper() for c in source.tables[0]._cells
    ]
    assert [r.text for r in out.paragraphs[1].runs if r.bold] == ["DIOS"]
    assert [r.text for r in out.paragraphs[1].runs if r.italic] == ["CIELOS"]
    assert len(out.inline_shapes) == 1
    assert out.sections[0].header.paragraphs[0].text == "CABECERA DEL LIBRO"
    link = out.paragraphs[2].hyperlinks[0]
    assert (link.text, link.address) == ("LA PÁGINA DEL LIBRO", "https://example.org/libro")
    assert "\t" in out.paragraphs[4].text and "\n" in out.paragraphs[4].text


def test_docx_footnote_reference_and_fields_stay_in_place(samples):
    import docx
    from docx.oxml import parse_xml

    document = docx.Document(io.BytesIO(samples["docx"]))
    p = document.add_paragraph("Página ")
    ns = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    for xml in (
        '<w:r {}><w:fldChar w:fldCharType="begin"/></w:r>',
        '<w:r {}><w:instrText xml:space="preserve"> PAGE </w:instrText></w:r>',
        '<w:r {}><w:fldChar w:fldCharType="separate"/></w:r>',
        "<w:r {}><w:t>uno</w:t></w:r>",
        '<w:r {}><w:fldChar w:fldCharType="end"/></w:r>',
        '<w:r {}><w:t xml:space="preserve"> de la casa</w:t></w:r>',
    ):
        p._p.append(parse_xml(xml.format(ns)))
    buffer = io.BytesIO()
    document.save(buffer)
    doc = get_format("docx").parse(buffer.getvalue())
    assert [p.text for p in doc.paragraphs if p.text.startswith("Página")] == ["Página  de la casa"]
    out = members(doc.render(upper(doc)))
    body = out["word/document.xml"].decode()
    field = r"PÁGINA </w:t></w:r><w:r><w:fldChar.*?<w:t>uno</w:t>.*?end.*?DE LA CASA"
    assert re.search(field, body)  # the field and its result untouched, between the words
    note = r'COME PAN\.</w:t></w:r><w:r><w:footnoteReference w:id="1"/></w:r><w:r><w:t '
    assert re.search(note, body)
    assert "UNA NOTA AL PIE DE LA CASA" in out["word/footnotes.xml"].decode()


def test_pptx_output_opens_in_python_pptx_with_the_new_text(samples):
    from pptx import Presentation

    doc = get_format("pptx").parse(samples["pptx"])
    source = Presentation(io.BytesIO(samples["pptx"]))
    out = Presentation(io.BytesIO(doc.render(upper(doc))))
    assert len(out.slides) == len(source.slides) == 2
    for a, b in zip(source.slides, out.slides, strict=True):
        assert [s.shape_type for s in b.shapes] == [s.shape_type for s in a.shapes]
        assert [s.text_frame.text for s in b.shapes if s.has_text_frame] == [
            s.text_frame.text.upper() for s in a.shapes if s.has_text_frame
        ]
    body = out.slides[0].placeholders[1].text_frame.paragraphs
    assert [p.level for p in body] == [0, 1, 0]
    assert [r.text for r in body[2].runs if r.font.bold] == ["COME PAN"]
    box = out.slides[0].shapes[2].text_frame
    assert box.text == "VISITA LA PÁGINA DEL REINO HOY.\vY MAÑANA."
    linked = [r for r in box.paragraphs[0].runs if r.hyperlink.address]
    assert [(r.text, r.hyperlink.address) for r in linked] == [
        ("LA PÁGINA DEL REINO", "https://example.org/reino")
    ]
    table = [s for s in out.slides[1].shapes if s.has_table][0].table
    assert table.cell(1, 1).text == "CELDA 1 1 DEL PAN"
    assert out.slides[0].notes_slide.notes_text_frame.text == "NOTAS DEL ORADOR SOBRE EL MAR."


def _odf_texts(data: bytes):
    from odf import teletype
    from odf.opendocument import load
    from odf.text import H, P

    document = load(io.BytesIO(data))
    return document, [teletype.extractText(e) for e in document.getElementsByType(P)] + [
        teletype.extractText(e) for e in document.getElementsByType(H)
    ]


@pytest.mark.parametrize("fmt", ["odt", "odp"])
def test_odf_output_opens_in_odfpy_with_the_new_text(samples, fmt):
    from odf.draw import Frame
    from odf.table import TableCell
    from odf.text import Note, Span

    doc = get_format(fmt).parse(samples[fmt])
    source, before = _odf_texts(samples[fmt])
    out, after = _odf_texts(doc.render(upper(doc)))
    assert after == [t.upper() for t in before]
    for kind in (Frame, TableCell, Note, Span):
        assert len(out.getElementsByType(kind)) == len(source.getElementsByType(kind))
    if fmt == "odt":
        assert "DOS  ESPACIOS\tY UN TABULADOR" in after
        assert "PIE DE LA PÁGINA DEL LIBRO" in after  # the footer, in styles.xml


def test_epub_output_opens_in_ebooklib_and_keeps_code_and_notranslate(samples, tmp_path):
    import ebooklib
    from ebooklib import epub

    doc = get_format("epub").parse(samples["epub"])
    path = tmp_path / "out.epub"
    path.write_bytes(doc.render(upper(doc)))
    with zipfile.ZipFile(path) as z:
        first = z.infolist()[0]
        assert (first.filename, first.compress_type) == ("mimetype", zipfile.ZIP_STORED)
    book = epub.read_epub(str(path))
    assert book.get_metadata("DC", "title")[0][0] == "EL LIBRO DEL MAR"
    chapters = {
        i.get_name(): i.get_content().decode()
        for i in book.get_items_of_type(ebooklib.ITEM_DOCUMENT)
    }
    one, two = chapters["chap1.xhtml"], chapters["chap2.xhtml"]
    assert "EN EL PRINCIPIO <b>DIOS</b> CREÓ LOS <i>CIELOS</i> Y LA TIERRA." in one
    assert '<a href="https://example.org/libro">LA PÁGINA DEL LIBRO</a>' in one
    assert "<code>pan_del_rey()</code>" in one and '"notranslate">Rey Sol</span>' in one
    assert "<li>PRIMER PUNTO<ul><li>UN PUNTO DENTRO</li></ul></li>" in one
    assert 'alt="UN CUADRO ROJO"' in two and "<pre>codigo   sin traducir</pre>" in two


def test_objects_go_back_at_their_relative_place_on_a_word_boundary():
    slot = Slot("part", None, objects=[(0, "start"), (9, "middle"), (18, "end")], source_len=18)
    runs = [Run("The dog eats "), Run("bread", "b"), Run(" today")]  # 24 characters: 12 is half
    items = interleave(runs, slot)
    assert items[0] == "start" and items[-1] == "end"
    text = [i.text if isinstance(i, Run) else "|" for i in items[1:-1]]
    assert "".join(text) == "The dog eats| bread today"  # half way, moved to the word's end
    assert [i for i in items if not isinstance(i, Run)] == ["start", "middle", "end"]


# ---- bad files -------------------------------------------------------------------------------


def _bad(fmt, data, *words):
    with pytest.raises(DocumentError) as error:
        get_format(fmt).parse(data)
    message = str(error.value).lower()
    assert all(w.lower() in message for w in words), message


@pytest.mark.parametrize("fmt", FORMATS)
def test_not_a_zip_and_truncated_zip_raise_clear_errors(samples, fmt):
    _bad(fmt, b"just some text, not a document", "not a zip")
    _bad(fmt, samples[fmt][: len(samples[fmt]) // 2], "zip")


@pytest.mark.parametrize("fmt", FORMATS)
def test_malformed_xml_names_the_part(samples, fmt):
    part = MAIN_PART[fmt]
    _bad(fmt, rezip(samples[fmt], {part: b"<root><unclosed></root>"}), "malformed xml", part)


@pytest.mark.parametrize(
    ("fmt", "part", "words"),
    [
        ("docx", "word/document.xml", ("missing", "word/document.xml")),
        ("docx", "[Content_Types].xml", ("content_types",)),
        ("pptx", "ppt/presentation.xml", ("presentation part",)),
        ("odt", "content.xml", ("content.xml", "missing")),
        ("epub", "EPUB/content.opf", ("package document", "missing")),
        ("epub", "META-INF/container.xml", ("container.xml", "missing")),
    ],
)
def test_missing_main_part_is_named(samples, fmt, part, words):
    data = samples[fmt]
    if part == "ppt/presentation.xml":  # drop its content type, as a package without it has
        types = members(data)["[Content_Types].xml"]
        types = re.sub(rb'<Override PartName="/ppt/presentation.xml"[^>]*/>', b"", types)
        data = rezip(data, {"[Content_Types].xml": types})
    _bad(fmt, rezip(data, {part: None}), *words)


def test_odp_given_as_odt_says_what_it_is(samples):
    _bad("odt", samples["odp"], "mimetype", "presentation")


@pytest.mark.parametrize("fmt", ["docx", "pptx"])
def test_encrypted_ooxml_is_reported_password_protected(fmt):
    ole = office_samples_ole()
    _bad(fmt, ole, "password protected")


def office_samples_ole() -> bytes:
    """The start of an OLE compound file: what Office writes for a password-protected docx."""
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504


@pytest.mark.parametrize("fmt", FORMATS)
def test_encrypted_zip_member_is_reported_password_protected(samples, fmt):
    data = bytearray(samples[fmt])
    at = data.find(b"PK\x01\x02")  # first central directory entry: set "encrypted" (bit 0)
    data[at + 8] |= 1
    _bad(fmt, bytes(data), "password protected")


def test_encrypted_odf_is_reported_password_protected(samples):
    manifest = members(samples["odt"])["META-INF/manifest.xml"].replace(
        b'media-type="text/xml"/>',
        b'media-type="text/xml"><manifest:encryption-data/></manifest:file-entry>',
        1,
    )
    assert b"encryption-data" in manifest
    _bad("odt", rezip(samples["odt"], {"META-INF/manifest.xml": manifest}), "password protected")


@pytest.mark.parametrize("name", ["../evil.xml", "/etc/evil.xml", "word/../../evil.xml"])
def test_member_names_with_dotdot_or_absolute_paths_are_refused(samples, name):
    _bad("docx", rezip(samples["docx"], {name: b"<x/>"}), "unsafe member name")


def test_zip_bomb_with_too_many_members_is_refused(samples):
    many = {f"media/m{i}.bin": b"" for i in range(ZipLimits().max_members + 1)}
    _bad("docx", rezip(samples["docx"], many), "zip members", "zip bomb")


def test_zip_bomb_with_huge_uncompressed_size_is_refused(samples):
    out = io.BytesIO()  # 64 MiB of zeros: a ~64 KiB deflated member
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z, z.open("bomb.bin", "w") as f:
        block = bytes(1 << 20)
        for _ in range(64):
            f.write(block)
    assert len(out.getvalue()) < 1 << 20
    with pytest.raises(DocumentError, match="zip bomb"):
        SafeZip(out.getvalue(), "docx", ZipLimits(max_total_bytes=32 << 20))
    # The default limit, against a member whose declared size is over it (a lying header reads
    # no more than it declares, so the declared sizes are what bounds the reading).
    data = bytearray(rezip(samples["docx"], {"media/bomb.bin": b"0"}))
    at = data.rfind(b"PK\x01\x02")
    data[at + 24 : at + 28] = (0xFFFFFFF0).to_bytes(4, "little")
    _bad("docx", bytes(data), "over the limit", "zip bomb")


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    b"<w:body><w:p><w:r><w:t>&lol3;</w:t></w:r></w:p></w:body></w:document>"
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_entity_declarations_are_refused(samples, fmt):
    _bad(fmt, rezip(samples[fmt], {MAIN_PART[fmt]: BILLION_LAUGHS}), "entities")


def test_external_entities_and_dtds_are_never_resolved(samples, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    xxe = BILLION_LAUGHS.replace(
        BILLION_LAUGHS[BILLION_LAUGHS.index(b"[") : BILLION_LAUGHS.index(b"]>") + 1],
        f'[<!ENTITY xxe SYSTEM "file://{secret}">]'.encode(),
    ).replace(b"&lol3;", b"&xxe;")
    _bad("docx", rezip(samples["docx"], {"word/document.xml": xxe}), "entities")
    dtd = tmp_path / "x.dtd"
    dtd.write_text(f'<!ENTITY xxe SYSTEM "file://{secret}">')
    external = xxe.replace(
        xxe[xxe.index(b"<!DOCTYPE") : xxe.index(b"]>") + 2],
        f'<!DOCTYPE w:document SYSTEM "file://{dtd}">'.encode(),
    )
    try:
        doc = get_format("docx").parse(rezip(samples["docx"], {"word/document.xml": external}))
    except DocumentError:
        return  # refused: fine too
    assert all("TOPSECRET" not in p.text for p in doc.paragraphs)
    assert "TOPSECRET" not in members(doc.render(upper(doc)))["word/document.xml"].decode()


# ---- a real consumer: LibreOffice ------------------------------------------------------------

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


@pytest.mark.slow
@pytest.mark.skipif(
    SOFFICE is None,
    reason="LibreOffice (soffice) is not installed: apt-get "
    "install libreoffice-writer-nogui libreoffice-impress-nogui poppler-utils",
)
@pytest.mark.parametrize("fmt", ["docx", "odt", "pptx", "odp"])
def test_libreoffice_reads_the_translated_document(samples, fmt, tmp_path):
    doc = get_format(fmt).parse(samples[fmt])
    path = tmp_path / f"out.{fmt}"
    path.write_bytes(doc.render(upper(doc)))
    target = "txt:Text" if fmt in ("docx", "odt") else "pdf"
    run = subprocess.run(
        [
            SOFFICE,
            f"-env:UserInstallation=file://{tmp_path}/profile",
            "--headless",
            "--convert-to",
            target,
            "--outdir",
            str(tmp_path),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    converted = tmp_path / ("out.txt" if target.startswith("txt") else "out.pdf")
    assert converted.exists(), run.stdout + run.stderr
    if target == "pdf":
        if shutil.which("pdftotext") is None:
            pytest.skip("pdftotext (poppler-utils) is not installed")
        subprocess.run(["pdftotext", str(converted), str(tmp_path / "out.txt")], check=True)
    text = (tmp_path / "out.txt").read_text(encoding="utf-8-sig")
    wanted = {
        "docx": ["EN EL PRINCIPIO DIOS CREÓ LOS CIELOS", "CELDA 1 1 CON AGUA"],
        "odt": ["EN EL PRINCIPIO DIOS CREÓ LOS CIELOS", "CELDA 1 1 CON AGUA"],
        "pptx": ["EL PERRO COME PAN EN LA CASA.", "CELDA 1 1 DEL PAN"],
        "odp": ["EL PERRO COME PAN 1 EN LA CASA.", "VISITA LA PÁGINA DEL REINO"],
    }[fmt]
    for phrase in wanted:
        assert phrase in text, text


# ---- end to end, through the public API and the tiny model -----------------------------------


@pytest.fixture(scope="module")
def translator():
    from traductor.runtime.translator import Translator

    from ..conftest import TINY_MODEL

    return Translator(TINY_MODEL)


@pytest.mark.parametrize("fmt", FORMATS)
def test_translate_document_translates_each_paragraph_and_keeps_the_rest(samples, translator, fmt):
    from traductor.runtime.documents.api import translate_document

    data = samples[fmt]
    source = get_format(fmt).parse(data)
    out = translate_document(translator, data, fmt)
    result = get_format(fmt).parse(out)
    assert len(result.paragraphs) <= len(source.paragraphs)  # a paragraph may translate to ""
    # One-sentence paragraphs of one plain run come out as translate() of that sentence.
    single = [
        p.text.strip()
        for p in source.paragraphs
        if len(p.runs) == 1
        and p.runs[0].style is None
        and not p.ref.objects
        and re.fullmatch(r"[^.!?\t\n]+[.!?]?", p.text.strip())
    ]
    assert len(single) >= 2
    texts = {p.text for p in result.paragraphs}
    for sentence, expected in zip(single, translator.translate(single), strict=True):
        assert not expected.strip() or expected in texts, (sentence, expected)
    text_parts = {p.ref.part for p in source.paragraphs}
    before, after = members(data), members(out)
    assert list(after) == list(before)
    assert all(after[n] == before[n] for n in before if n not in text_parts)
