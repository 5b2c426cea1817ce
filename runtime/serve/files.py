"""LibreTranslate's file translation: POST /translate_file translates an uploaded document with
traductor.runtime.documents (on a thread of its own, so other requests go on) and keeps the
result under a random name for --files-ttl seconds; GET /download_file/<name> serves it.

    POST /translate_file  multipart: file, source (code or "auto"), target, api_key; and, beyond
                          LibreTranslate, glossary (TSV text or file: source term<TAB>target
                          term a line) and keep (terms left as they are: one a line, or repeated)
                          -> {"translatedFileUrl": "<base url>/download_file/<name>"}
    GET  /download_file/<name>  the translated file, as an attachment named NAME.<target>.EXT

An upload goes through the same API keys and rate limit as a /translate request and counts as
one. Over --file-limit-mb: 413. Unsupported extension, corrupt or protected document: 400. Without
the documents extra (sentencex, lxml) /frontend/settings says filesTranslation false and
/translate_file answers 501 naming `pip install 'traductor[documents]'`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePath

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from ..documents.formats import EXTENSIONS, get_format, supported
from .errors import ApiError
from .settings import Settings

DOCUMENTS_EXTRA = ("sentencex", "lxml")  # what `traductor[documents]` adds to the serve extra
FORM_OVERHEAD = 64 * 1024  # bytes of a multipart body beyond the file: boundaries, other fields
# A download's name: secrets.token_urlsafe(16) (22 characters, no dot), a dot, the file's name
# reduced to these characters.
ISSUED_NAME = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_.-]+")
PARTIAL_PREFIX = ".partial-"  # a file being written; renamed once complete


def documents_missing() -> str | None:
    """The first module of the documents extra that is not installed, or None."""
    return next((m for m in DOCUMENTS_EXTRA if importlib.util.find_spec(m) is None), None)


def supported_files_format() -> list[str]:
    """/frontend/settings' supportedFilesFormat, LibreTranslate's way: [".txt", ".md", ...]."""
    return list(EXTENSIONS)


# -- the translated files -------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    path: Path
    download_name: str  # what the browser saves it as
    media_type: str
    expires: float  # time.monotonic()


class TranslatedFiles:
    """Translated files waiting for their download: written whole under a temporary name, then
    renamed; served only by a name this server issued; removed once older than the TTL (checked
    on every file request and by a timer thread), and all of them when the server stops."""

    def __init__(self, folder: Path | None, ttl: float):
        self.ttl = ttl
        self.own_folder = folder is None
        self.folder = (
            Path(tempfile.mkdtemp(prefix="traductor-files-")) if folder is None else folder
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        self.issued: dict[str, Issued] = {}
        self.lock = threading.Lock()
        self._remove_stale()
        self._closed = threading.Event()
        self._timer = threading.Thread(
            target=self._sweep_until_closed, name="traductor-files-sweeper", daemon=True
        )
        self._timer.start()

    def add(self, data: bytes, download_name: str, media_type: str) -> str:
        """Keep `data` for download -> the name it is issued under."""
        name = f"{secrets.token_urlsafe(16)}.{safe_name(download_name)}"
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=PARTIAL_PREFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self.folder / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self.lock:
            self.issued[name] = Issued(
                self.folder / name, download_name, media_type, time.monotonic() + self.ttl
            )
        return name

    def get(self, name: str) -> Issued:
        """An issued file that has not expired; anything else (a path, a guess) is a 404."""
        self.sweep()
        with self.lock:
            found = self.issued.get(name)
        if found is None or not found.path.is_file():
            raise ApiError(
                404,
                "no translated file of that name: it was never issued, or was removed "
                f"{self.ttl:g} s after translation",
            )
        return found

    def sweep(self) -> None:
        """Remove the files whose time is up."""
        now = time.monotonic()
        with self.lock:
            expired = [n for n, f in self.issued.items() if f.expires <= now]
            gone = [self.issued.pop(n) for n in expired]
        for f in gone:
            f.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop the timer and remove every file (their names die with the server)."""
        self._closed.set()
        self._timer.join()
        with self.lock:
            gone, self.issued = list(self.issued.values()), {}
        for f in gone:
            f.path.unlink(missing_ok=True)
        if self.own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _sweep_until_closed(self) -> None:
        while not self._closed.wait(min(self.ttl, 60.0)):
            self.sweep()

    def _remove_stale(self) -> None:
        """Files an earlier server left in --files-dir (it was killed) once older than the TTL;
        only names this module writes, never anything else in the folder."""
        cutoff = time.time() - self.ttl
        for p in self.folder.iterdir():
            ours = ISSUED_NAME.fullmatch(p.name) or p.name.startswith(PARTIAL_PREFIX)
            if ours and p.is_file() and p.stat().st_mtime < cutoff:
                p.unlink(missing_ok=True)


def safe_name(name: str) -> str:
    """A file name in ASCII letters, digits and ._- (no path, no '..'), at most 100 characters,
    keeping its end (the extension)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    safe = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.-]+", "_", ascii_name))
    return safe[-100:].strip("._") or "document"


def download_name(filename: str, target: str) -> str:
    """NAME.EXT uploaded -> NAME.<target>.EXT, as `traductor translate-file` names its output;
    the upload's folders (a browser may send C:\\...\\name) dropped, control characters too."""
    base = re.split(r"[/\\]", filename)[-1]
    suffix = PurePath(base).suffix
    stem = "".join(ch for ch in base[: len(base) - len(suffix)] if ch.isprintable()).strip()
    return f"{stem or 'document'}.{target}{suffix}"


# -- the endpoints --------------------------------------------------------------------------------


class FileTranslation:
    """What /translate_file and /download_file share: whether the documents extra is there, the
    translated files, and the threads documents are translated on (--workers of them)."""

    def __init__(self, settings: Settings):
        self.missing = documents_missing()
        mb = settings.file_limit_mb
        self.limit = None if mb == -1 else int(mb * 1024 * 1024)
        self.limit_mb = mb
        self.files = (
            None if self.missing else TranslatedFiles(settings.files_dir, settings.files_ttl)
        )
        self.pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="traductor-documents")

    @property
    def enabled(self) -> bool:
        return self.files is not None

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        if self.files is not None:
            self.files.close()

    async def run(self, fn, *args, **kwargs):
        """fn(*args, **kwargs) on a document thread, awaited without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, partial(fn, *args, **kwargs)
        )


async def translate_file(request, service) -> Response:
    if request.method == "OPTIONS":
        return Response(status_code=200)
    ft: FileTranslation = service.file_translation
    if ft.enabled:
        ft.files.sweep()
    params, upload = await read_upload(request, ft)
    service.access.check(request, params)
    if not ft.enabled:
        raise ApiError(
            501,
            "file translation is not installed on this server: "
            f"pip install 'traductor[documents]' ({ft.missing} is missing)",
        )
    filename, data = _checked_upload(upload, params)
    fmt = _format_name(filename)
    source, target = params["source"], params["target"]
    langs = service.languages
    text = await ft.run(_document_text, fmt, data) if _detects(source, langs) else ""
    source_code, _ = langs.source_of(source, [text])
    langs.check_offered(source_code, source, target)
    direction = langs.direction(source_code, target)
    options: dict = {"target_language": direction.target_language, **_terms(params)}
    if service.settings.beam_size:
        options["beam_size"] = service.settings.beam_size
    out = await ft.run(_translate, direction.batcher.translator, data, fmt, options)
    name = ft.files.add(out, download_name(filename, target), get_format(fmt).media_type)
    return JSONResponse({"translatedFileUrl": f"{request.base_url}download_file/{name}"})


async def download_file(request, service) -> Response:
    ft: FileTranslation = service.file_translation
    name = request.path_params["name"]
    if not ft.enabled or not ISSUED_NAME.fullmatch(name) or ".." in name:
        raise ApiError(404, "no translated file of that name")
    found = ft.files.get(name)
    return FileResponse(found.path, media_type=found.media_type, filename=found.download_name)


def _checked_upload(upload: tuple[str, bytes] | None, params: dict) -> tuple[str, bytes]:
    """The upload and the fields it needs, in LibreTranslate's order and with its messages."""
    for name, value in (
        ("file", upload),
        ("source", params.get("source")),
        ("target", params.get("target")),
    ):
        if not value:
            raise ApiError(400, f"Invalid request: missing {name} parameter")
    filename, data = upload
    if not filename:
        raise ApiError(400, "Invalid request: empty file")
    return filename, data


def _format_name(filename: str) -> str:
    suffix = PurePath(re.split(r"[/\\]", filename)[-1]).suffix.lower()
    if suffix not in EXTENSIONS:
        raise ApiError(
            400,
            f"Invalid request: file format not supported ({suffix or 'no extension'}); "
            f"supported: {supported()}",
        )
    return EXTENSIONS[suffix]


def _terms(params: dict) -> dict:
    """The glossary and keep fields -> translate_document's glossary= and keep= (only those
    given). A file's name is never opened here: the terms come in the request."""
    out: dict = {}
    if params.get("glossary"):
        from ..documents.base import DocumentError
        from ..documents.glossary import parse_glossary

        try:
            out["glossary"] = parse_glossary(params["glossary"])
        except DocumentError as e:
            raise ApiError(400, f"Invalid request: {e}") from None
    keep = [t.strip() for v in params.get("keep", []) for t in v.splitlines() if t.strip()]
    if keep:
        out["keep"] = keep
    return out


def _detects(source: str, langs) -> bool:
    """source=auto among several source languages: the document's text is needed."""
    return source == "auto" and len(langs.sources) > 1


def _document_text(fmt: str, data: bytes, most: int = 5000) -> str:
    """The first characters of a document's text, to detect its language."""
    paragraphs = get_format(fmt).parse(data).paragraphs
    return " ".join(p.text for p in paragraphs)[:most]


def _translate(translator, data: bytes, fmt: str, options: dict) -> bytes:
    from ..documents.api import translate_document

    return translate_document(translator, data, fmt, **options)


# -- reading the upload ---------------------------------------------------------------------------


async def read_upload(request, ft: FileTranslation) -> tuple[dict, tuple[str, bytes] | None]:
    """A multipart body -> (its text fields, (file name, bytes) of its `file` part or None).
    Over the size limit: 413, before more than the limit is read."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise ApiError(
            400, "Invalid request: /translate_file takes multipart/form-data (file, source, target)"
        )
    cap = None if ft.limit is None else ft.limit + FORM_OVERHEAD
    body = await _read_body(request, cap, ft.limit_mb)
    try:
        form = await Request(request.scope, _replay(body)).form()
    except Exception as e:  # malformed multipart
        raise ApiError(400, f"Invalid request: malformed form body ({type(e).__name__})") from None
    params: dict = {}
    upload = None
    try:
        for key, value in form.multi_items():
            if key == "file" and upload is None:
                # A part with no file name (a browser's empty file input) arrives as text.
                upload = (
                    ("", b"") if isinstance(value, str) else (value.filename, await value.read())
                )
            elif key == "keep":
                params.setdefault("keep", []).append(await _text(key, value))
            elif key == "glossary" or isinstance(value, str):
                params.setdefault(key, await _text(key, value))
    finally:
        await form.close()
    if upload is not None and ft.limit is not None and len(upload[1]) > ft.limit:
        raise _too_large(ft.limit_mb)
    return params, upload


async def _text(key: str, value) -> str:
    """A text field, or a text file sent in its place (a glossary file)."""
    if isinstance(value, str):
        return value
    try:
        return (await value.read()).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, f"Invalid request: {key} is not UTF-8 text") from None


async def _read_body(request, cap: int | None, limit_mb: float) -> bytes:
    length = request.headers.get("content-length", "")
    if cap is not None and length.isdigit() and int(length) > cap:
        raise _too_large(limit_mb)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if cap is not None and size > cap:
            raise _too_large(limit_mb)
        chunks.append(chunk)
    return b"".join(chunks)


def _replay(body: bytes):
    """An ASGI receive that hands the already read body to a second Request (the form parser)."""
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _too_large(limit_mb: float) -> ApiError:
    return ApiError(
        413, f"Invalid request: the file is over this server's limit of {limit_mb:g} MiB"
    )
