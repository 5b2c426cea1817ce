"""The server's file translation, LibreTranslate's way: POST /translate_file answers a download
URL, GET /download_file/<name> serves the translated document. Driven through Starlette's
TestClient (one event loop, as under uvicorn) and once through a real server and the
libretranslate-aio client."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
pytest.importorskip("sentencex")

from starlette.testclient import TestClient  # noqa: E402

from traductor.runtime import Translator  # noqa: E402
from traductor.runtime.documents import api  # noqa: E402
from traductor.runtime.documents.base import DocumentError  # noqa: E402
from traductor.runtime.documents.formats import EXTENSIONS, get_format  # noqa: E402
from traductor.runtime.serve import Settings  # noqa: E402
from traductor.runtime.serve import files as files_module  # noqa: E402
from traductor.runtime.serve.app import create_app  # noqa: E402

from .conftest import TINY_MODEL  # noqa: E402

TXT = b"El sol y la luna.\n\nLa casa del perro. El gato come pan.\n"
SRT = (
    b"1\n00:00:01,000 --> 00:00:02,500\nsol luna\n\n"
    b"2\n00:00:03,000 --> 00:00:04,000\ncasa perro\ngato agua\n"
)
LANGS = {"source": "es", "target": "en"}


@pytest.fixture(scope="module")
def translator():
    return Translator(TINY_MODEL)


def client(translator, **settings) -> TestClient:
    return TestClient(create_app([translator], Settings(**settings)))


def upload(c: TestClient, name: str, data: bytes, **fields):
    return c.post("/translate_file", data={**LANGS, **fields}, files={"file": (name, data)})


def download(c: TestClient, url: str):
    assert url.startswith("http://testserver/download_file/")
    return c.get(url.removeprefix("http://testserver"))


@pytest.mark.parametrize(
    "name, data, fmt, saved_as, media",
    [
        ("informe final.txt", TXT, "txt", "informe final.en.txt", "text/plain"),
        ("película.srt", SRT, "srt", "película.en.srt", "application/x-subrip"),
    ],
)
def test_an_upload_downloads_as_translate_document_writes_it(
    translator, tmp_path, name, data, fmt, saved_as, media
):
    with client(translator, files_dir=tmp_path) as c:
        r = upload(c, name, data)
        assert r.status_code == 200 and set(r.json()) == {"translatedFileUrl"}
        d = download(c, r.json()["translatedFileUrl"])
    assert d.status_code == 200
    assert d.content == api.translate_document(translator, data, fmt)
    assert d.content != data
    assert d.headers["content-type"].split(";")[0] == media
    disposition = d.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert urllib.parse.quote(saved_as) in disposition or f'"{saved_as}"' in disposition


def test_a_glossary_and_keep_terms_reach_the_translation(translator):
    data = b"El sol y la luna.\n"
    with client(translator) as c:
        as_text = upload(c, "a.txt", data, glossary="# terms\nsol\tSUN\n", keep="luna")
        as_files = c.post(
            "/translate_file",
            data={**LANGS, "keep": ["luna", "casa"]},
            files=[("file", ("a.txt", data)), ("glossary", ("terms.tsv", b"sol\tSUN\n"))],
        )
        got = [download(c, r.json()["translatedFileUrl"]).content for r in (as_text, as_files)]
        bad = upload(c, "a.txt", data, glossary="sol SUN")
    glossary = {"sol": "SUN"}
    assert got[0] == api.translate_document(
        translator, data, "txt", glossary=glossary, keep=["luna"]
    )
    assert got[1] == api.translate_document(
        translator, data, "txt", glossary=glossary, keep=["luna", "casa"]
    )
    assert b"SUN" in got[0] and b"luna" in got[0]
    assert got[0] != api.translate_document(translator, data, "txt")
    assert bad.status_code == 400 and "glossary line 1: expected" in bad.json()["error"]


def test_uploads_over_the_size_limit_are_413_and_nothing_is_kept(translator, tmp_path):
    limit_mb = 0.01  # 10,485 bytes
    with client(translator, file_limit_mb=limit_mb, files_dir=tmp_path) as c:
        big = upload(c, "big.txt", b"sol luna. " * 2000)  # 20 KB
        assert big.status_code == 413
        assert big.json() == {
            "error": "Invalid request: the file is over this server's limit of 0.01 MiB"
        }
        # Just over the limit, inside the multipart allowance: the file's own size decides.
        assert upload(c, "edge.txt", b"x" * (int(limit_mb * 2**20) + 1)).status_code == 413
        assert list(tmp_path.iterdir()) == []
        assert upload(c, "small.txt", b"sol luna.").status_code == 200


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("notes.pdf", b"%PDF-1.4", "file format not supported (.pdf); supported: .txt, "),
        ("README", b"sol", "file format not supported (no extension)"),
        ("", b"sol", "Invalid request: empty file"),
    ],
)
def test_unsupported_files_are_400_listing_the_formats(translator, name, data, message):
    with client(translator) as c:
        r = upload(c, name, data)
    assert r.status_code == 400 and message in r.json()["error"]
    if "supported:" in message:
        assert all(ext in r.json()["error"] for ext in EXTENSIONS)


def test_a_corrupt_document_is_400_with_the_formats_message(translator, tmp_path):
    bad = b"1\n00:00:01,000 -> soon\nsol luna\n"
    with pytest.raises(DocumentError) as expected:
        get_format("srt").parse(bad)
    with client(translator, files_dir=tmp_path) as c:
        r = upload(c, "broken.srt", bad)
        assert (r.status_code, r.json()) == (400, {"error": str(expected.value)})
        assert upload(c, "broken.docx", b"PK\x03\x04 not a zip").status_code == 400
        assert c.get("/health").json() == {"status": "ok"}
    assert list(tmp_path.iterdir()) == []


def test_missing_fields_and_other_bodies_are_400(translator):
    with client(translator) as c:
        no_file = c.post("/translate_file", data=LANGS, files={"other": ("a.txt", b"sol")})
        assert no_file.json() == {"error": "Invalid request: missing file parameter"}
        for field in ("source", "target"):
            fields = {k: v for k, v in LANGS.items() if k != field}
            r = c.post("/translate_file", data=fields, files={"file": ("a.txt", b"sol")})
            assert r.json() == {"error": f"Invalid request: missing {field} parameter"}
        assert upload(c, "a.txt", b"sol", target="zz").json() == {"error": "zz is not supported"}
        json_body = c.post("/translate_file", json={"q": "sol", **LANGS})
        assert json_body.status_code == 400 and "multipart/form-data" in json_body.json()["error"]
        assert c.get("/translate_file").status_code == 405
        assert c.options("/translate_file").status_code == 200


def test_uploads_need_an_api_key_and_count_against_the_rate_limit(translator):
    with client(translator, api_keys=frozenset({"secret-1"}), req_limit=3) as c:
        assert upload(c, "a.txt", b"sol").json() == {
            "error": "Please contact the server operator to get an API key"
        }
        assert upload(c, "a.txt", b"sol", api_key="nope").status_code == 403
        assert upload(c, "a.txt", b"sol", api_key="secret-1").status_code == 200
        ok = c.post("/translate", json={"q": "sol", "api_key": "secret-1", **LANGS})
        assert ok.status_code == 200
        assert upload(c, "a.txt", b"sol", api_key="secret-1").status_code == 200
        # Three requests this minute: an upload and a /translate alike are refused now.
        assert upload(c, "a.txt", b"sol", api_key="secret-1").json() == {
            "error": "Slowdown: 3 per 1 minute"
        }
        assert c.post("/translate", json={"q": "sol", "api_key": "secret-1", **LANGS}).status_code
        assert c.get("/frontend/settings").json()["keyRequired"] is True


def test_only_issued_names_download_never_a_path(translator, tmp_path):
    files_dir = tmp_path / "files"
    (tmp_path / "secret.txt").write_text("not for download")
    with client(translator, files_dir=files_dir) as c:
        url = upload(c, "a.txt", b"sol luna.").json()["translatedFileUrl"]
        name = url.rsplit("/", 1)[1]
        (files_dir / "planted.txt").write_text("planted, not for download")
        for path in (
            "/download_file/..%2Fsecret.txt",
            "/download_file/%2E%2E%2Fsecret.txt",
            "/download_file/../secret.txt",
            "/download_file/planted.txt",
            "/download_file/" + name.replace(".a.", "..a."),
            "/download_file/AAAAAAAAAAAAAAAAAAAAAA.a.en.txt",  # the shape of a name, not issued
            "/download_file/" + name + "%2F..%2F..%2Fsecret.txt",
        ):
            r = c.get(path)
            assert r.status_code == 404 and b"for download" not in r.content, path
            assert "content-disposition" not in r.headers
        assert c.get(f"/download_file/{name}").status_code == 200


def test_translated_files_are_removed_after_the_ttl(translator, tmp_path):
    with client(translator, files_dir=tmp_path, files_ttl=0.3) as c:
        first = upload(c, "a.txt", b"sol luna.").json()["translatedFileUrl"]
        assert download(c, first).status_code == 200
        assert len(list(tmp_path.iterdir())) == 1
        time.sleep(0.8)  # the timer sweeps without a request
        assert list(tmp_path.iterdir()) == []
        assert download(c, first).status_code == 404
        second = upload(c, "b.txt", b"casa.").json()["translatedFileUrl"]
        time.sleep(0.35)
        assert download(c, second).status_code == 404  # expired, whether swept yet or not
    with client(translator, files_dir=tmp_path, files_ttl=60) as c:
        upload(c, "c.txt", b"casa.")
        assert len(list(tmp_path.iterdir())) == 1
    assert list(tmp_path.iterdir()) == []  # a stopped server leaves no file behind


def test_the_default_folder_is_temporary_and_removed_at_exit(translator):
    with client(translator) as c:
        upload(c, "a.txt", b"sol.")
        folder = c.app.state.service.file_translation.files.folder
        assert len(list(folder.iterdir())) == 1
    assert not folder.exists()


def test_a_failed_translation_leaves_nothing_written(translator, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("decoder broke")

    monkeypatch.setattr(api, "translate_document", broken)
    with client(translator, files_dir=tmp_path) as c:
        r = upload(c, "a.txt", b"sol luna.")
        assert r.status_code == 500 and "decoder broke" in r.json()["error"]
        assert c.get("/health").status_code == 200
    assert list(tmp_path.iterdir()) == []


def test_a_document_is_translated_off_the_event_loop(translator, monkeypatch):
    """While a document translates, /translate and /health are answered (one event loop serves
    every request, as under uvicorn)."""
    started, release = threading.Event(), threading.Event()
    original = api.translate_document

    def slow(*args, **kwargs):
        started.set()
        assert release.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(api, "translate_document", slow)
    with client(translator) as c:
        answer = {}
        t = threading.Thread(target=lambda: answer.update(r=upload(c, "a.txt", b"sol luna.")))
        t.start()
        try:
            assert started.wait(30)
            assert c.get("/health").json() == {"status": "ok"}
            text = c.post("/translate", json={"q": "sol luna", **LANGS}).json()["translatedText"]
            assert text == translator.translate("sol luna")
            assert t.is_alive()  # the upload was still waiting all along
        finally:
            release.set()
            t.join(30)
    assert answer["r"].status_code == 200


def test_frontend_settings_report_file_translation(translator, monkeypatch):
    with client(translator) as c:
        settings = c.get("/frontend/settings").json()
    assert settings["filesTranslation"] is True
    assert settings["supportedFilesFormat"] == list(EXTENSIONS)
    assert {".txt", ".docx", ".pptx", ".odt", ".odp", ".epub", ".html", ".srt"} <= set(
        settings["supportedFilesFormat"]
    )
    # Without the documents extra: said in the settings, and /translate_file names the extra.
    monkeypatch.setattr(files_module, "documents_missing", lambda: "sentencex")
    with client(translator) as c:
        settings = c.get("/frontend/settings").json()
        r = upload(c, "a.txt", b"sol")
    assert settings["filesTranslation"] is False and settings["supportedFilesFormat"] == []
    assert r.status_code == 501
    assert "pip install 'traductor[documents]'" in r.json()["error"]


def test_source_auto_detects_the_documents_language(translator, tmp_path):
    """With es->en and en->es loaded, source=auto reads the document's text to choose."""
    from traductor.runtime.package import write_manifest

    en_es = tmp_path / "en-es"
    shutil.copytree(TINY_MODEL, en_es)
    cfg = json.loads((en_es / "config.json").read_text())
    cfg["source_language"], cfg["target_language"] = "en", "es"
    (en_es / "config.json").write_text(json.dumps(cfg))
    (en_es / "reference.json").unlink()
    write_manifest(en_es)
    text = "Esta es una frase escrita en español para probar la detección.\n".encode()
    with TestClient(create_app([translator, Translator(en_es)], Settings())) as c:
        r = c.post(
            "/translate_file",
            data={"source": "auto", "target": "en"},
            files={"file": ("a.txt", text)},
        )
        assert r.status_code == 200
        assert download(c, r.json()["translatedFileUrl"]).content == api.translate_document(
            translator, text, "txt"
        )


def test_serve_flags_reach_the_settings(tmp_path):
    from traductor.cli import build_parser
    from traductor.runtime.serve.main import settings_from_args

    args = ["serve", "--file-limit-mb", "2.5", "--files-ttl", "60", "--files-dir", str(tmp_path)]
    s = settings_from_args(build_parser().parse_args(args))
    assert (s.file_limit_mb, s.files_ttl, s.files_dir) == (2.5, 60.0, tmp_path)
    for bad in (Settings(file_limit_mb=0), Settings(files_ttl=0)):
        with pytest.raises(ValueError, match="--file"):
            bad.check()


def test_libretranslate_client_translates_a_file_on_a_real_server(translator, tmp_path):
    from libretranslate_aio import LibreTranslate

    from .test_server import Server

    doc = tmp_path / "carta.txt"
    doc.write_bytes(TXT)
    s = Server("--model", str(TINY_MODEL), "--files-dir", str(tmp_path / "files"))
    try:
        with LibreTranslate(base_url=s.url) as lt:
            assert ".txt" in lt.frontend_settings().supported_files_format
            url = lt.translate_file(doc, "es", "en").translated_file_url
        assert url.startswith(f"{s.url}/download_file/")
        with urllib.request.urlopen(url, timeout=60) as r:
            assert r.read() == api.translate_document(translator, TXT, "txt")
            assert 'filename="carta.en.txt"' in r.headers["Content-Disposition"]
    finally:
        assert s.stop()
    assert list((tmp_path / "files").iterdir()) == []


def test_the_server_imports_no_document_library_until_a_document_comes():
    """The serve extra alone must start: sentencex and lxml are imported only to translate."""
    code = (
        "import sys, traductor.runtime.serve.app, traductor.runtime.serve.files as f\n"
        "assert f.documents_missing() is None\n"
        "print(sorted(m for m in ('sentencex', 'lxml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout.strip()) == (0, "[]"), out.stderr
