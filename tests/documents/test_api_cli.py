"""translate_document / translate_file and `traductor translate-file`: default names, atomic
writes, refusing to overwrite, and one-line errors."""

from __future__ import annotations

import pytest

from traductor.runtime.documents import api
from traductor.runtime.documents.base import (
    DocumentError,
    DocumentFormat,
    Paragraph,
    ParsedDocument,
    Run,
)
from traductor.runtime.documents.formats import FORMATS
from traductor.runtime.translator import Translator

TINY = "tests/assets/tiny-model"


class _Lines(ParsedDocument):
    def __init__(self, data: bytes):
        self.paragraphs = [Paragraph([Run(line)]) for line in data.decode().split("\n")]

    def render(self, translated):
        return "\n".join("".join(r.text for r in runs) for runs in translated).encode()


class LinesFormat(DocumentFormat):
    """A test-only format: one paragraph per line."""

    name, extensions, media_type = "lines", (".lines",), "text/plain"

    def parse(self, data: bytes) -> ParsedDocument:
        if data.startswith(b"BAD"):
            raise DocumentError("bad lines file")
        return _Lines(data)


@pytest.fixture
def lines_format(monkeypatch):
    """Registers the test-only format under the name 'lines'."""
    import sys
    import types

    module = types.ModuleType("traductor.runtime.documents.formats._test_lines")
    module.LinesFormat = LinesFormat
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(FORMATS, "lines", ("_test_lines", "LinesFormat", (".lines",)))
    from traductor.runtime.documents import formats

    monkeypatch.setitem(formats.EXTENSIONS, ".lines", "lines")
    return LinesFormat


@pytest.fixture(scope="module")
def tiny():
    return Translator(TINY)


def test_translate_document_translates_each_line(tiny, lines_format):
    out = api.translate_document(tiny, b"casa perro gato\n\nsol luna", "lines", beam_size=1)
    assert out.decode().split("\n") == [
        tiny.translate("casa perro gato", beam_size=1),
        "",
        tiny.translate("sol luna", beam_size=1),
    ]


def test_translate_file_default_name_beside_input(tiny, lines_format, tmp_path):
    src = tmp_path / "notes.lines"
    src.write_bytes(b"casa perro")
    out = api.translate_file(tiny, src, beam_size=1)
    assert out == tmp_path / "notes.en.lines"
    assert out.read_text() == tiny.translate("casa perro", beam_size=1)


def test_translate_file_refuses_to_overwrite_without_force(tiny, lines_format, tmp_path):
    src = tmp_path / "a.lines"
    src.write_bytes(b"casa")
    dst = tmp_path / "b.lines"
    dst.write_bytes(b"old")
    with pytest.raises(DocumentError, match="exists.*force"):
        api.translate_file(tiny, src, dst)
    assert dst.read_bytes() == b"old"
    api.translate_file(tiny, src, dst, force=True)
    assert dst.read_text() == tiny.translate("casa")


def test_failed_translation_leaves_nothing_behind(tiny, lines_format, tmp_path):
    src = tmp_path / "a.lines"
    src.write_bytes(b"BAD file")
    with pytest.raises(DocumentError, match="bad lines file"):
        api.translate_file(tiny, src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.lines"]


def test_unsupported_extension_lists_formats(tiny, tmp_path):
    src = tmp_path / "sheet.xlsx"
    src.write_bytes(b"PK")
    with pytest.raises(DocumentError, match=r"unsupported file type '\.xlsx'.*\.docx"):
        api.translate_file(tiny, src)


def test_write_interrupted_before_rename_leaves_nothing(tiny, lines_format, tmp_path, monkeypatch):
    src = tmp_path / "a.lines"
    src.write_bytes(b"casa")

    def fail(*a):
        raise OSError("disk full")

    monkeypatch.setattr(api.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        api.translate_file(tiny, src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.lines"]


def test_cli_translates_a_file(tmp_path, capsys):
    from traductor.cli import main

    src = tmp_path / "notes.txt"
    src.write_text("casa perro gato\n", encoding="utf-8")
    assert main(["translate-file", str(src), "--model", TINY, "--beam", "1"]) == 0
    out = tmp_path / "notes.en.txt"
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text(encoding="utf-8").strip() == Translator(TINY).translate(
        "casa perro gato", beam_size=1
    )


@pytest.mark.parametrize(
    "name, extra, message",
    [
        ("sheet.xlsx", [], "unsupported file type '.xlsx'; supported: .txt"),
        ("a.txt", ["--glossary", "missing.tsv"], "glossary file not found"),
        ("a.txt", ["--output", "{dir}/a.txt"], "exists; pass --force"),
    ],
)
def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, name, extra, message):
    from traductor.cli import main

    src = tmp_path / name
    src.write_text("casa\n", encoding="utf-8")
    extra = [e.replace("{dir}", str(tmp_path)) for e in extra]
    assert main(["translate-file", str(src), "--model", TINY, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("traductor: error: ") and message in err
