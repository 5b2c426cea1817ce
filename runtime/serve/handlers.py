"""The endpoints, as plain functions of (request, service). Each raises ApiError for a request it
refuses; app.py answers that as {"error": message}."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.responses import JSONResponse, Response

from ..translator import Translator
from .access import Access
from .batcher import Batcher
from .files import FileTranslation, supported_files_format
from .html_text import translate_documents
from .languages import Direction, Languages, language_name
from .params import (
    TranslateRequest,
    check_format,
    detect_text,
    read_params,
    translate_request,
)
from .settings import Settings
from .static import PAGE_DIR, ModelFiles, file_response, page_file


@dataclass
class Service:
    """What the handlers read: the settings, one batcher per package, the languages they offer,
    the access rules, the files the page may fetch and the file translation."""

    settings: Settings
    batchers: list[Batcher]
    languages: Languages
    access: Access
    model_files: ModelFiles
    file_translation: FileTranslation

    @classmethod
    def start(cls, translators: list[Translator], settings: Settings) -> Service:
        """Start a batcher (its worker threads) for each package."""
        batchers = [Batcher(tr, settings) for tr in translators]
        return cls(
            settings,
            batchers,
            Languages(batchers),
            Access(settings),
            ModelFiles(translators),
            FileTranslation(settings),
        )

    def close(self) -> None:
        """Answer every request already queued, then stop the workers."""
        self.file_translation.close()
        for b in self.batchers:
            b.close()


# -- the API --------------------------------------------------------------------------------------


async def translate(request, service: Service) -> Response:
    if request.method == "OPTIONS":
        return Response(status_code=200)
    params, is_json = await read_params(request)
    service.access.check(request, params)
    req = translate_request(params, is_json, service.settings)
    langs = service.languages
    source, detected = langs.source_of(req.source, req.texts)
    langs.check_offered(source, req.source, req.target)
    check_format(req.text_format)
    direction = langs.direction(source, req.target)
    options = _decode_options(req, direction, service.settings)
    with _Submission(direction.batcher, options) as submit:
        if req.text_format == "html":
            out = await translate_documents(req.texts, submit)
            alternatives: list[list[str]] = [[] for _ in req.texts]
        else:
            out, alternatives = await _translate_texts(req.texts, submit)
    return JSONResponse(_translation_body(req, out, alternatives, detected))


def _decode_options(req: TranslateRequest, direction: Direction, settings: Settings) -> dict:
    """The Translator options of a request: --beam, and a beam wide enough for its alternatives."""
    options: dict = {"target_language": direction.target_language}
    if settings.beam_size:
        options["beam_size"] = settings.beam_size
    if req.alternatives and req.text_format == "text":
        default_beam = settings.beam_size or direction.batcher.translator.defaults.beam_size
        options.update(
            num_hypotheses=req.alternatives + 1,
            beam_size=max(default_beam, req.alternatives + 1),
        )
    return options


class _Submission:
    """A request's way into its batcher: announced while it is prepared (a batch being gathered
    may wait for it), then submitted once, or withdrawn when it never is (nothing to translate,
    or an error)."""

    def __init__(self, batcher: Batcher, options: dict):
        self.batcher, self.options, self.pending = batcher, options, True

    def __enter__(self):
        self.batcher.announce()
        return self.submit

    def __exit__(self, *exc) -> None:
        if self.pending:
            self.batcher.announce(-1)

    def submit(self, texts: list[str]) -> asyncio.Future:
        self.pending = False
        return asyncio.wrap_future(self.batcher.submit(texts, self.options, announced=True))


async def _translate_texts(texts: list[str], submit) -> tuple[list[str], list[list[str]]]:
    """format=text -> (translations, alternatives of each)."""
    # Texts with no letter at all (emoji, numbers, punctuation) come back as they are.
    todo = [i for i, t in enumerate(texts) if any(ch.isalpha() for ch in t)]
    results = await submit([texts[i] for i in todo]) if todo else []
    out, alternatives = list(texts), [[] for _ in texts]
    for i, r in zip(todo, results):
        out[i] = r.text
        alternatives[i] = list(dict.fromkeys(c.text for c in r.hypotheses[1:] if c.text != r.text))
    return out, alternatives


def _translation_body(
    req: TranslateRequest, out: list[str], alternatives: list[list[str]], detected: dict | None
) -> dict:
    body: dict = {"translatedText": out if req.batch else out[0]}
    if detected is not None:
        body["detectedLanguage"] = [detected] * len(req.texts) if req.batch else detected
    if req.alternatives:
        body["alternatives"] = alternatives if req.batch else alternatives[0]
    return body


async def detect(request, service: Service) -> Response:
    if request.method == "OPTIONS":
        return Response(status_code=200)
    params, _ = await read_params(request)
    service.access.check(request, params)
    return JSONResponse(service.languages.detect(detect_text(params)))


async def languages(request, service: Service) -> Response:
    return JSONResponse(service.languages.listing())


async def frontend_settings(request, service: Service) -> Response:
    settings, langs = service.settings, service.languages
    source = langs.sources[0]
    target = next(t for s, t in langs.directions if s == source)
    return JSONResponse(
        {
            "charLimit": settings.char_limit,
            "frontendTimeout": settings.frontend_timeout,
            "apiKeys": bool(settings.api_keys),
            "keyRequired": bool(settings.api_keys),
            "suggestions": False,
            "filesTranslation": service.file_translation.enabled,
            "supportedFilesFormat": (
                supported_files_format() if service.file_translation.enabled else []
            ),
            "language": {
                "source": {"code": source, "name": language_name(source)},
                "target": {"code": target, "name": language_name(target)},
            },
        }
    )


async def health(request, service: Service) -> Response:
    return JSONResponse({"status": "ok"})


async def stats(request, service: Service) -> Response:
    """Requests and batches per package (requests / batches = the mean batch)."""
    return JSONResponse([{"requests": b.jobs, "batches": b.batches} for b in service.batchers])


# -- files ----------------------------------------------------------------------------------------


async def model_file(request, service: Service) -> Response:
    name, file = request.path_params["name"], request.path_params["file"]
    return file_response(service.model_files.path(name, file))


async def page(request, service: Service) -> Response:
    """The in-browser page (web/, --web) where there is one, else the page shipped in the
    package."""
    rel = request.path_params.get("path", "")
    return file_response(page_file(service.settings.web_dir or PAGE_DIR, rel))


async def shipped_page(request, service: Service) -> Response:
    """/page/: the shipped page (the HTTP API's), beside an in-browser page at /."""
    return file_response(page_file(PAGE_DIR, request.path_params.get("path", "")))
