"""`traductor serve`: a LibreTranslate-compatible HTTP API over the loaded packages.

Endpoints and messages follow LibreTranslate's app.py, so its clients (libretranslatepy,
libretranslate-aio, the Discourse plugin, browser add-ons, ...) work by changing a URL:

    POST /translate   q (string, or a list in JSON; repeated q fields in a form), source (code or
                      "auto"), target, format (text|html), alternatives, api_key
                      -> {"translatedText": str | [str], "detectedLanguage"?, "alternatives"?}
    POST /detect      q -> [{"confidence": 0..100, "language": code}, ...] among the loaded sources
    GET  /languages   [{"code", "name", "targets"}] for each source language of the loaded packages
    GET  /frontend/settings, GET /health

Errors are always {"error": "..."}: 400 for a bad request, 403 for a bad API key, 429 over the
request limit, 405 for a wrong method; a user mistake is never a 500 and never stops the server.

Concurrent requests for one package are gathered into decoder batches by a `Batcher`: the first
waiting request opens a batch, which takes whatever else arrives within a short wait, up to a number
of sentences, longest-waiting first; `--workers` batches are decoded at once. Because a sentence's
translation does not depend on what it is batched with (see Translator.translate_ids), every answer
equals translating that request alone.

Needs the `serve` extra (starlette, uvicorn with httptools and uvloop, python-multipart, py3langid);
the runtime core does not.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import html
import json
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from .continuous import supports_rows_at_different_steps
from .package import InputError, TraductorError
from .translator import Translator

log = logging.getLogger("traductor.serve")

# English names of the languages a package may declare (ISO 639-1, and the 639-3 codes OPUS-MT uses).
LANGUAGE_NAMES = {
    "ar": "Arabic",
    "bg": "Bulgarian",
    "ca": "Catalan",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "eo": "Esperanto",
    "es": "Spanish",
    "et": "Estonian",
    "eu": "Basque",
    "fa": "Persian",
    "fi": "Finnish",
    "fr": "French",
    "ga": "Irish",
    "gl": "Galician",
    "he": "Hebrew",
    "hi": "Hindi",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sv": "Swedish",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
    "zh": "Chinese",
}
ISO3_TO_1 = {
    "ara": "ar",
    "bul": "bg",
    "cat": "ca",
    "ces": "cs",
    "dan": "da",
    "deu": "de",
    "ell": "el",
    "eng": "en",
    "epo": "eo",
    "spa": "es",
    "est": "et",
    "eus": "eu",
    "fas": "fa",
    "fin": "fi",
    "fra": "fr",
    "gle": "ga",
    "glg": "gl",
    "heb": "he",
    "hin": "hi",
    "hun": "hu",
    "ind": "id",
    "ita": "it",
    "jpn": "ja",
    "kor": "ko",
    "lit": "lt",
    "lav": "lv",
    "nld": "nl",
    "nor": "no",
    "pol": "pl",
    "por": "pt",
    "ron": "ro",
    "rus": "ru",
    "slk": "sk",
    "slv": "sl",
    "swe": "sv",
    "tur": "tr",
    "ukr": "uk",
    "vie": "vi",
    "zho": "zh",
}
# The page runs onnxruntime-web with threads only when cross-origin isolated.
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
}
MEDIA_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css",
    ".md": "text/markdown",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".map": "application/json",
}
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Expose-Headers": "Authorization",
    "Access-Control-Allow-Methods": "GET, POST",
    "Access-Control-Allow-Credentials": "true",
    "Access-Control-Max-Age": str(60 * 60 * 24 * 20),
}


class ApiError(Exception):
    """An answer {"error": message} with an HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code) or LANGUAGE_NAMES.get(ISO3_TO_1.get(code, ""), code)


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 5000
    char_limit: int = -1  # per text; -1 = none
    batch_limit: int = -1  # texts per request; -1 = none
    req_limit: int = -1  # requests per client per minute; -1 = none
    alternatives_limit: int = 8
    api_keys: frozenset[str] = (
        frozenset()
    )  # non-empty: every /translate and /detect needs one of them
    batching: bool = True
    batch_wait_ms: float = 5.0  # how long an open batch waits for more requests
    max_batch_sentences: int | None = (
        None  # sentences decoded together: None = 32, or 16 running per worker when continuous
    )
    workers: int = 1  # batches decoded at once, per package
    continuous: bool = False  # beam search: requests join the running batch between steps (opt-in, see _run_continuous)
    frontend_timeout: int = 500
    trust_forwarded_for: bool = (
        False  # take the client address from X-Forwarded-For (behind a proxy)
    )
    web_dir: Path | None = None  # the browser page (web/ of a source checkout), served at /
    beam_size: int | None = None  # None: each package's default


# -- batching --------------------------------------------------------------------------------------

STATIC_SENTENCES = 32  # default --max-batch-sentences
CONTINUOUS_SENTENCES = 16  # default running sentences per worker with --continuous


@dataclass
class _Job:
    texts: list[str]
    options: dict
    future: concurrent.futures.Future
    queued: float = field(default_factory=time.perf_counter)

    @property
    def key(self) -> tuple:
        return tuple(sorted(self.options.items()))


class Batcher:
    """Worker threads for one package that turn waiting requests into decoder batches.

    submit() queues (texts, options) and returns a Future of their TranslationResults. A worker
    takes the longest-waiting job, then for up to `wait` seconds (or until `max_sentences`) adds
    jobs with the same options; jobs with other options wait for the next batch, first in line.
    It only waits while requests are on their way (announced by the server as they are parsed), so a
    lone client pays no wait. With batching off, each job is translated alone.

    `settings.workers` batches are decoded at once (each on `--threads` intra-op threads): one worker
    gathers the next batch while the others decode theirs. A batch takes only its worker's share of
    the requests in play (being decoded, waiting, arriving): with N workers, 1/N of them. Otherwise the
    worker that is free when a crowd of answered clients sends again takes them all, and the clients
    split into a large group and a small one that keep their sizes (measured before this rule: 32
    clients, beam 4, two workers: 30 batches of 4 requests against 5 of 28). Answers do not depend on
    how requests were grouped (batch invariance).
    """

    def __init__(self, translator: Translator, settings: Settings):
        self.translator = translator
        self.wait = settings.batch_wait_ms / 1000 if settings.batching else 0.0
        self.continuous = (
            settings.batching
            and settings.continuous
            and supports_rows_at_different_steps(translator.model)
        )
        # A running batch of 32 sentences (128 beam rows) measured slower than 16 (64 clients: 69 vs
        # 92 requests/s), while static batches of 32 do well.
        most = settings.max_batch_sentences or (
            CONTINUOUS_SENTENCES if self.continuous else STATIC_SENTENCES
        )
        self.max_sentences = most if settings.batching else 1  # gathered per batch
        self.decoder_batch = most  # sentences per decoder batch, either way
        self.queue: queue.Queue[_Job | None] = queue.Queue()
        self.held: collections.deque[_Job] = collections.deque()
        self.batches = 0
        self.jobs = 0  # requests translated (jobs / batches = the mean batch)
        self._last_jobs = 0
        self._arriving = 0
        self._decoding = 0  # requests in the batches being translated now
        self._stopping = False
        self._lock = threading.Lock()
        self._gathering = threading.Lock()  # one worker gathers at a time
        self.threads = [
            threading.Thread(
                target=self._run_continuous if self.continuous else self._run,
                name=f"traductor-batcher-{i}",
                daemon=True,
            )
            for i in range(settings.workers)
        ]
        for t in self.threads:
            t.start()

    def announce(self, n: int = 1) -> None:
        """A request for this package is being read (n=-1: it will not come after all)."""
        with self._lock:
            self._arriving += n

    def submit(
        self, texts: list[str], options: dict, announced: bool = False
    ) -> concurrent.futures.Future:
        job = _Job(texts, options, concurrent.futures.Future())
        if announced:  # no longer arriving before it is queued: never counted twice in play
            self.announce(-1)
        self.queue.put(job)
        return job.future

    def close(self) -> None:
        """Finish every queued job, then stop the workers."""
        self.queue.put(None)
        for t in self.threads:
            t.join()

    def _next(self, timeout: float | None) -> _Job | None | bool:
        """The next job (held ones first); False when none came within timeout."""
        if self.held:
            return self.held.popleft()
        try:
            return (
                self.queue.get(timeout=timeout)
                if timeout is None or timeout > 0
                else self.queue.get_nowait()
            )
        except queue.Empty:
            return False

    def _run(self) -> None:
        while True:
            with self._gathering:
                batch = self._gather()
            if batch is None:
                return
            self._translate(batch)

    def _gather(self) -> list[_Job] | None:
        """The next batch; None once closing and nothing is left."""
        while True:
            if self._stopping:
                if not self.held:
                    return None
                first = self.held.popleft()
            else:
                first = self._next(None)
                if first is None:  # close(): the queue holds nothing newer
                    self._stopping = True
                    continue
            batch, sentences = [first], len(first.texts)
            deadline = time.perf_counter() + self.wait
            skipped: list[_Job] = []
            while sentences < self.max_sentences and not self._stopping:
                if (
                    len(self.threads) > 1
                ):  # a batch takes its worker's share of the requests in play
                    in_play = (
                        self._decoding
                        + len(batch)
                        + self.queue.qsize()
                        + len(self.held)
                        + max(self._arriving, 0)
                    )
                    if len(batch) >= -(-in_play // len(self.threads)):
                        break
                # Under load (the last batch gathered several requests) clients answered a moment ago
                # are about to send again: wait for them. A lone client does not wait.
                waiting = (
                    self._arriving > 0
                    or not self.queue.empty()
                    or bool(self.held)
                    or self._last_jobs > 1
                )
                job = self._next(deadline - time.perf_counter() if waiting else 0)
                if job is False:
                    break
                if job is None:
                    self._stopping = True
                    break
                if job.key != first.key or sentences + len(job.texts) > max(
                    self.max_sentences, len(first.texts)
                ):
                    skipped.append(job)  # next batch, ahead of newer arrivals
                    continue
                batch.append(job)
                sentences += len(job.texts)
            self.held.extendleft(reversed(skipped))
            self._last_jobs = len(batch)
            self.jobs += len(batch)
            with self._lock:  # counted as decoding before the next worker gathers, so it sees them
                self._decoding += len(batch)
            return batch

    # -- continuous batching ------------------------------------------------------------------------

    def _run_continuous(self) -> None:
        """A worker that keeps one running beam-search batch (runtime.continuous): between decoder
        steps it takes waiting requests into it, up to `max_sentences` running sentences and its
        share of the requests in play, so a request starts at the next step instead of waiting for
        a batch to finish, and the batch does not thin out as its sentences finish. Requests with
        options it cannot run that way (greedy, alignments) are translated as a batch of their own;
        requests with other beam options wait until the running batch has drained."""
        engine = None  # ContinuousBeams for `key`
        key = None
        running: dict[int, list] = {}  # id(job) -> [job, plan, hyps, sentences left]
        sentences = 0
        while True:
            idle = not running
            if idle or self._gathering.acquire(
                blocking=False
            ):  # never stall the running batch for the lock
                if idle:
                    self._gathering.acquire()
                try:
                    admitted = self._admit(running, key, sentences, block=idle)
                finally:
                    self._gathering.release()
                if admitted is None:  # closing, nothing left to do
                    return
                if admitted and admitted[0][1] is not None:
                    with self._lock:
                        self.batches += (
                            1  # admissions: jobs / batches is the mean number admitted at once
                        )
                for job, plan in admitted:
                    if plan is None:  # options this batch cannot run: translated alone, at once
                        self._translate([job])
                        continue
                    if job.key != key or engine is None:
                        key, engine = job.key, self.translator.continuous_beams(**job.options)
                    items = [
                        ((id(job), i), src, limit)
                        for i, (src, limit) in enumerate(zip(plan.sources, plan.limits))
                    ]
                    running[id(job)] = [job, plan, {}, len(items)]
                    sentences += len(items)
                    if not items:
                        self._finish(running.pop(id(job)))
                        continue
                    try:
                        engine.add(items)
                    except Exception as e:  # noqa: BLE001 - handed to the request; the worker lives on
                        sentences -= len(items)
                        self._finish(running.pop(id(job)), e)
            if not running:
                continue
            try:
                done = engine.step()
            except Exception as e:  # noqa: BLE001 - every running request gets it; the worker lives on
                for entry in running.values():
                    self._finish(entry, e)
                running.clear()
                sentences, engine = 0, None
                continue
            for (job_id, i), hyps in done:
                entry = running[job_id]
                entry[2][i] = hyps
                entry[3] -= 1
                sentences -= 1
                if entry[3] == 0:
                    self._finish(running.pop(job_id))

    def _admit(self, running: dict, key, sentences: int, block: bool) -> list | None:
        """Waiting jobs for this worker's running batch -> [(job, plan)]; None once closing with
        nothing left. A job it cannot run continuously comes alone, as [(job, None)], once the
        running batch is empty."""
        admitted = []
        while True:
            if self._stopping and not self.held and self.queue.empty():
                return None if not running and not admitted else admitted
            if sentences >= self.max_sentences:
                return admitted
            if len(self.threads) > 1 and (
                running or admitted
            ):  # this worker's share of the requests in play
                in_play = (
                    self._decoding + self.queue.qsize() + len(self.held) + max(self._arriving, 0)
                )
                if len(running) + len(admitted) >= -(-in_play // len(self.threads)):
                    return admitted
            job = self._next(None if block and not admitted and not self._stopping else 0)
            if job is False:
                return admitted
            if job is None:  # close(): finish what is queued and running
                self._stopping = True
                continue
            try:
                plan = self.translator.plan(job.texts, **job.options)
            except Exception as e:  # noqa: BLE001 - a bad request fails alone
                job.future.set_exception(e)
                continue
            if plan.options.beam_size == 1 or plan.options.return_alignments:
                if running or admitted:  # a batch of its own once this one has drained
                    self.held.appendleft(job)
                    return admitted
                self._count(1)
                return [(job, None)]
            if (running or admitted) and job.key != (admitted[0][0].key if admitted else key):
                self.held.appendleft(job)  # other beam options: after the running batch drains
                return admitted
            if (running or admitted) and sentences + len(plan.sources) > self.max_sentences:
                self.held.appendleft(job)
                return admitted
            self._count(1)
            admitted.append((job, plan))
            sentences += len(plan.sources)

    def _count(self, n: int) -> None:
        with self._lock:
            self._decoding += n
            self.jobs += n

    def _finish(self, entry: list, error: Exception | None = None) -> None:
        job, plan, hyps, _ = entry
        with self._lock:
            self._decoding -= 1
        if error is not None:
            job.future.set_exception(error)
            return
        try:
            job.future.set_result(plan.results(hyps))
        except Exception as e:  # noqa: BLE001
            job.future.set_exception(e)

    def _translate(self, batch: list[_Job]) -> None:
        texts = [t for job in batch for t in job.texts]
        try:
            results = self.translator.translate_batch(
                texts, **batch[0].options, batch_size=self.decoder_batch
            )
        except Exception as e:  # handed to every waiting request; the worker lives on
            for job in batch:
                job.future.set_exception(e)
            return
        finally:
            with self._lock:
                self._decoding -= len(batch)
        with self._lock:
            self.batches += 1
        start = 0
        for job in batch:
            job.future.set_result(results[start : start + len(job.texts)])
            start += len(job.texts)


# -- languages ---------------------------------------------------------------------------------------


@dataclass
class Route:
    batcher: Batcher
    target_language: str | None  # the option multi-target packages need, else None


class Languages:
    """The directions the loaded packages offer, and source-language detection among them."""

    def __init__(self, translators: list[Translator], settings: Settings):
        self.routes: dict[tuple[str, str], Route] = {}
        self.batchers: list[Batcher] = []
        for tr in translators:
            batcher = Batcher(tr, settings)
            self.batchers.append(batcher)
            cfg = tr.config
            targets = sorted(cfg.language_tags) if cfg.language_tags else [cfg.target_language]
            for target in targets:
                key = (cfg.source_language, target)
                if key in self.routes:
                    log.warning("%s -> %s is offered by two packages; keeping the first", *key)
                    continue
                self.routes[key] = Route(batcher, target if cfg.language_tags else None)
        self.sources = sorted({s for s, _ in self.routes})
        self.targets = sorted({t for _, t in self.routes})
        self._detector = None
        self._detect_lock = threading.Lock()

    def listing(self) -> list[dict]:
        return [
            {
                "code": s,
                "name": language_name(s),
                "targets": sorted(t for src, t in self.routes if src == s),
            }
            for s in self.sources
        ]

    def detect(self, text: str) -> list[dict]:
        """[{"confidence": 0..100, "language": code}] best first, among the loaded source languages.

        py3langid (a maintained fork of langid.py): offline, its model ships inside its 4.6 MB wheel,
        needs only numpy (already a runtime dependency), and can be restricted to a set of
        languages, which is what choosing among the loaded sources needs."""
        known = {s: ISO3_TO_1.get(s, s) for s in self.sources}
        if len(self.sources) == 1:
            return [{"confidence": 100.0, "language": self.sources[0]}]
        with self._detect_lock:
            if self._detector is None:
                from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

                ident = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
                usable = sorted({c for c in known.values() if c in set(ident.labels)})
                if usable:
                    ident.set_languages(usable)
                self._detector = (ident, usable)
            ident, usable = self._detector
            ranked = ident.rank(text) if usable else []
        back = {v: k for k, v in known.items()}
        out = [
            {"confidence": round(100 * float(p), 2), "language": back[c]}
            for c, p in ranked
            if c in back
        ]
        missing = [s for s in self.sources if s not in {o["language"] for o in out}]
        return out + [{"confidence": 0.0, "language": s} for s in missing]

    def close(self) -> None:
        for b in self.batchers:
            b.close()


# -- HTML ------------------------------------------------------------------------------------------


class _HtmlPieces(HTMLParser):
    """Split a document into markup kept verbatim and text nodes to translate (script and style
    contents, comments, doctype and processing instructions stay as they are)."""

    RAW = {"script", "style"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.pieces: list[tuple[str, str]] = []  # ("markup", raw) or ("text", unescaped text)
        self._raw_depth = 0

    def handle_starttag(self, tag, attrs):
        self.pieces.append(("markup", self.get_starttag_text()))
        if tag in self.RAW:
            self._raw_depth += 1

    def handle_startendtag(self, tag, attrs):
        self.pieces.append(("markup", self.get_starttag_text()))

    def handle_endtag(self, tag):
        if tag in self.RAW and self._raw_depth:
            self._raw_depth -= 1
        self.pieces.append(("markup", f"</{tag}>"))

    def handle_data(self, data):
        self.pieces.append(("markup" if self._raw_depth else "text", data))

    def handle_comment(self, data):
        self.pieces.append(("markup", f"<!--{data}-->"))

    def handle_decl(self, decl):
        self.pieces.append(("markup", f"<!{decl}>"))

    def handle_pi(self, data):
        self.pieces.append(("markup", f"<?{data}>"))

    def unknown_decl(self, data):
        self.pieces.append(("markup", f"<![{data}]>"))


def html_pieces(document: str) -> list[tuple[str, str]]:
    parser = _HtmlPieces()
    parser.feed(document)
    parser.close()
    return parser.pieces


def html_join(pieces: list[tuple[str, str]], translated: dict[int, str]) -> str:
    """Markup as it was; each translated text node re-escaped, its surrounding whitespace kept."""
    out = []
    for i, (kind, value) in enumerate(pieces):
        if kind == "markup" or i not in translated:
            out.append(value if kind == "markup" else html.escape(value, quote=False))
            continue
        lead = value[: len(value) - len(value.lstrip())]
        trail = value[len(value.rstrip()) :]
        out.append(lead + html.escape(translated[i], quote=False) + trail)
    return "".join(out)


# -- the app -----------------------------------------------------------------------------------------


class RateLimiter:
    """Requests per client per minute, over a sliding window."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self.seen: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.lock = threading.Lock()

    def check(self, client: str) -> None:
        if self.per_minute < 0:
            return
        now = time.monotonic()
        with self.lock:
            q = self.seen[client]
            while q and now - q[0] > 60:
                q.popleft()
            if len(q) >= self.per_minute:
                raise ApiError(429, f"Slowdown: {self.per_minute} per 1 minute")
            q.append(now)


async def _params(request) -> tuple[dict, bool]:
    """The request's fields, as LibreTranslate reads them: a JSON object, or form/query values."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        body = await request.body()
        try:
            data = json.loads(body.decode("utf-8")) if body else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(400, "Invalid JSON format") from None
        if not isinstance(data, dict):
            raise ApiError(400, "Invalid JSON format")
        return data, True
    values: dict = {}
    for k in request.query_params:
        values[k] = request.query_params.get(k)
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        body = await request.body()
        if ctype == "application/x-www-form-urlencoded":
            from urllib.parse import unquote_to_bytes

            for part in body.split(b"&"):
                raw = unquote_to_bytes(part.split(b"=", 1)[-1].replace(b"+", b" "))
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise ApiError(
                        400, "Invalid request: the form body is not valid UTF-8"
                    ) from None
        try:
            form = await request.form()
        except Exception as e:  # malformed multipart
            raise ApiError(
                400, f"Invalid request: malformed form body ({type(e).__name__})"
            ) from None
        for k in form:
            items = [v for v in form.getlist(k) if isinstance(v, str)]
            if not items:
                continue
            values[k] = items if (k == "q" and len(items) > 1) else items[0]
    return values, False


def create_app(translators: list[Translator], settings: Settings):
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route as HttpRoute

    langs = Languages(translators, settings)
    limiter = RateLimiter(settings.req_limit)

    def client_of(request: Request) -> str:
        forwarded = request.headers.get("x-forwarded-for") if settings.trust_forwarded_for else None
        return (
            forwarded.split(",")[0].strip()
            if forwarded
            else (request.client.host if request.client else "127.0.0.1")
        )

    def access(request: Request, params: dict) -> None:
        if settings.api_keys:
            key = params.get("api_key")
            if not key:
                raise ApiError(400, "Please contact the server operator to get an API key")
            if key not in settings.api_keys:
                raise ApiError(403, "Invalid API key")
        limiter.check(client_of(request))

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def guarded(handler, request: Request):
        try:
            return await handler(request)
        except ApiError as e:
            return error(e.status, e.message)
        except TraductorError as e:  # a user mistake the translator caught
            return error(400, str(e))
        except Exception as e:  # a bug: answered, logged, and the server goes on
            log.exception("internal error")
            return error(500, f"Cannot translate text: {type(e).__name__}: {e}")

    async def translate(request: Request):
        if request.method == "OPTIONS":
            return Response(status_code=200)
        params, is_json = await _params(request)
        access(request, params)
        q, source, target = params.get("q"), params.get("source"), params.get("target")
        text_format = params.get("format") or "text"
        for name, value in (("q", q), ("source", source), ("target", target)):
            if not value:
                raise ApiError(400, f"Invalid request: missing {name} parameter")
        if not isinstance(q, (str, list)) or (
            isinstance(q, list) and not all(isinstance(t, str) for t in q)
        ):
            raise ApiError(400, "Invalid request: q must be a string or a list of strings")
        if not isinstance(source, str) or not isinstance(target, str):
            raise ApiError(400, "Invalid request: source and target must be language codes")
        try:
            alternatives = max(0, int(params.get("alternatives") or 0))
        except (TypeError, ValueError):
            raise ApiError(400, "Invalid request: alternatives parameter is not a number") from None
        if settings.alternatives_limit != -1 and alternatives > settings.alternatives_limit:
            raise ApiError(
                400,
                f"Invalid request: alternatives parameter must be <= {settings.alternatives_limit}",
            )
        batch = isinstance(q, list)
        texts = q if batch else [q]
        if not is_json:
            texts = ["\n".join(t.splitlines()) for t in texts]
        if batch and settings.batch_limit != -1 and len(texts) > settings.batch_limit:
            raise ApiError(
                400,
                f"Invalid request: request ({len(texts)}) exceeds text limit ({settings.batch_limit})",
            )
        if settings.char_limit != -1:
            for t in texts:
                if len(t) > settings.char_limit:
                    raise ApiError(
                        400,
                        f"Invalid request: request ({len(t)}) exceeds text limit ({settings.char_limit})",
                    )
        if source == "auto":
            detected = langs.detect(" ".join(texts))[0]
            source_code = detected["language"]
        else:
            detected, source_code = None, source
        if source_code not in langs.sources:
            raise ApiError(400, f"{source} is not supported")
        if target not in langs.targets:
            raise ApiError(400, f"{target} is not supported")
        if text_format not in ("text", "html"):
            raise ApiError(400, f"{text_format} format is not supported")
        route = langs.routes.get((source_code, target))
        if route is None:
            raise ApiError(
                400,
                f"{language_name(target)} ({target}) is not available as a target language from "
                f"{language_name(source_code)} ({source_code})",
            )
        tr = route.batcher.translator
        return await _translate(route, tr, texts, text_format, alternatives, batch, detected)

    async def _translate(route, tr, texts, text_format, alternatives, batch, detected):
        options = {"target_language": route.target_language}
        if settings.beam_size:
            options["beam_size"] = settings.beam_size
        route.batcher.announce()  # the batch being gathered may wait for this one
        pending = [True]

        def submit(items: list[str]):
            pending[0] = False
            return asyncio.wrap_future(route.batcher.submit(items, options, announced=True))

        try:
            return await _run(
                texts, text_format, alternatives, batch, detected, options, submit, tr
            )
        finally:
            if pending[0]:
                route.batcher.announce(-1)

    async def _run(texts, text_format, alternatives, batch, detected, options, submit, tr):
        if alternatives and text_format == "text":
            options.update(
                num_hypotheses=alternatives + 1,
                beam_size=max(settings.beam_size or tr.defaults.beam_size, alternatives + 1),
            )
        if text_format == "html":
            docs = [html_pieces(t) for t in texts]
            nodes = [
                (d, i)
                for d, pieces in enumerate(docs)
                for i, (kind, v) in enumerate(pieces)
                if kind == "text" and v.strip()
            ]
            results = await submit([docs[d][i][1].strip() for d, i in nodes]) if nodes else []
            done: list[dict[int, str]] = [{} for _ in docs]
            for (d, i), r in zip(nodes, results):
                done[d][i] = r.text
            out = [html_join(pieces, done[d]) for d, pieces in enumerate(docs)]
            alts = [[] for _ in texts]
        else:
            # Texts with no letter at all (emoji, numbers, punctuation) come back as they are.
            todo = [i for i, t in enumerate(texts) if any(ch.isalpha() for ch in t)]
            results = await submit([texts[i] for i in todo]) if todo else []
            out, alts = list(texts), [[] for _ in texts]
            for i, r in zip(todo, results):
                out[i] = r.text
                alts[i] = list(dict.fromkeys(c.text for c in r.hypotheses[1:] if c.text != r.text))
        body: dict = {"translatedText": out if batch else out[0]}
        if detected is not None:
            body["detectedLanguage"] = [detected] * len(texts) if batch else detected
        if alternatives:
            body["alternatives"] = alts if batch else alts[0]
        return JSONResponse(body)

    async def detect(request: Request):
        if request.method == "OPTIONS":
            return Response(status_code=200)
        params, _ = await _params(request)
        access(request, params)
        q = params.get("q")
        if not q:
            raise ApiError(400, "Invalid request: missing q parameter")
        if not isinstance(q, str):
            if isinstance(q, list) and all(isinstance(t, str) for t in q):
                q = " ".join(q)
            else:
                raise ApiError(400, "Invalid request: q must be a string")
        return JSONResponse(langs.detect(q))

    async def languages(request: Request):
        return JSONResponse(langs.listing())

    async def frontend_settings(request: Request):
        source = langs.sources[0]
        target = next(t for s, t in langs.routes if s == source)
        return JSONResponse(
            {
                "charLimit": settings.char_limit,
                "frontendTimeout": settings.frontend_timeout,
                "apiKeys": bool(settings.api_keys),
                "keyRequired": bool(settings.api_keys),
                "suggestions": False,
                "filesTranslation": False,
                "supportedFilesFormat": [],
                "language": {
                    "source": {"code": source, "name": language_name(source)},
                    "target": {"code": target, "name": language_name(target)},
                },
            }
        )

    async def health(request: Request):
        return JSONResponse({"status": "ok"})

    async def stats(request: Request):
        return JSONResponse([{"requests": b.jobs, "batches": b.batches} for b in langs.batchers])

    # The browser page and the packages it loads (only the files their manifests list).
    packages = {}
    for tr in translators:
        listed = json.loads((tr.model_dir / "manifest.json").read_text())["files"]
        packages.setdefault(tr.model_dir.resolve().name, (tr.model_dir, {"manifest.json", *listed}))

    def static(path: Path) -> Response:
        from starlette.responses import FileResponse

        return FileResponse(
            path,
            media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
            headers=ISOLATION_HEADERS,
        )

    async def model_file(request: Request):
        name, file = request.path_params["name"], request.path_params["file"]
        if (
            name not in packages
            or file not in packages[name][1]
            or not (packages[name][0] / file).is_file()
        ):
            raise ApiError(404, f"no file {file} in a loaded model named {name}")
        return static(packages[name][0] / file)

    async def page(request: Request):
        rel = request.path_params.get("path", "") or "index.html"
        if rel in ("translate", "detect"):  # the API's POST-only paths: a wrong method, not a page
            raise ApiError(405, "Method Not Allowed")
        root = settings.web_dir
        if root is None:
            raise ApiError(
                404,
                "no browser page here: run from a source checkout with web/ set up (make web-deps), or pass --web DIR",
            )
        target = (root / rel).resolve()
        if root.resolve() not in target.parents or not target.is_file():
            raise ApiError(404, f"not found: /{rel}")
        return static(target)

    def endpoint(handler):
        async def run(request: Request):
            return await guarded(handler, request)

        return run

    cors = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in CORS_HEADERS.items()]
    cors_names = {name for name, _ in cors}

    class Cors:
        """CORS headers on every response: a plain ASGI middleware that adds them to the response
        start message (Starlette's BaseHTTPMiddleware runs each request through an extra task and
        stream, a measurable share of a small request's cost)."""

        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.app(scope, receive, send)

            async def send_with_cors(message):
                if message["type"] == "http.response.start":
                    headers = [
                        (k, v) for k, v in message.get("headers", []) if k.lower() not in cors_names
                    ]
                    message = {**message, "headers": headers + cors}
                await send(message)

            await self.app(scope, receive, send_with_cors)

    async def http_error(request, exc: HTTPException):
        return error(exc.status_code, exc.detail)

    routes = [
        HttpRoute("/translate", endpoint(translate), methods=["POST", "OPTIONS"]),
        HttpRoute("/detect", endpoint(detect), methods=["POST", "OPTIONS"]),
        HttpRoute("/languages", endpoint(languages), methods=["GET", "POST"]),
        HttpRoute("/frontend/settings", endpoint(frontend_settings), methods=["GET"]),
        HttpRoute("/health", endpoint(health), methods=["GET"]),
        HttpRoute("/stats", endpoint(stats), methods=["GET"]),
        HttpRoute("/models/{name}/{file}", endpoint(model_file), methods=["GET"]),
        HttpRoute("/", endpoint(page), methods=["GET"]),
        HttpRoute("/{path:path}", endpoint(page), methods=["GET"]),
    ]

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        yield
        langs.close()  # after uvicorn has let the requests in flight finish

    app = Starlette(
        routes=routes,
        middleware=[Middleware(Cors)],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.languages = langs
    return app


def load_api_keys(path: str | None) -> frozenset[str]:
    if not path:
        return frozenset()
    p = Path(path)
    if not p.is_file():
        raise InputError(f"--api-keys: file not found: {p}")
    keys = frozenset(
        line.strip()
        for line in p.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    if not keys:
        raise InputError(f"--api-keys: {p} holds no key (one per line; # starts a comment)")
    return keys


def _web_dir(given: str | None) -> Path | None:
    """--web DIR, else the web/ folder of a source checkout when its dependencies are installed."""
    if given:
        path = Path(given)
        if not (path / "index.html").is_file():
            raise InputError(f"--web: {path} has no index.html")
        return path
    checkout = Path(__file__).resolve().parents[1] / "web"
    return (
        checkout
        if (checkout / "index.html").is_file() and (checkout / "node_modules").is_dir()
        else None
    )


def serve_main(args) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise InputError(
            f"`traductor serve` needs the serve extra: pip install 'traductor[serve]' ({e.name} is missing)"
        ) from None

    settings = Settings(
        host=args.host,
        port=args.port,
        char_limit=args.char_limit,
        batch_limit=args.batch_limit,
        req_limit=args.req_limit,
        alternatives_limit=args.alternatives_limit,
        api_keys=load_api_keys(args.api_keys),
        batching=not args.no_batching,
        trust_forwarded_for=args.trust_forwarded_for,
        web_dir=_web_dir(args.web),
        beam_size=args.beam,
        batch_wait_ms=args.batch_wait_ms,
        max_batch_sentences=args.max_batch_sentences,
        workers=args.workers,
        continuous=args.continuous,
    )
    for name in ("char_limit", "batch_limit", "req_limit"):
        v = getattr(settings, name)
        if v < -1 or v == 0:
            raise InputError(
                f"--{name.replace('_', '-')} must be -1 (no limit) or a positive number, got {v}"
            )
    if settings.workers < 1:
        raise InputError(f"--workers must be >= 1, got {settings.workers}")
    if (
        settings.max_batch_sentences is not None and settings.max_batch_sentences < 1
    ) or settings.batch_wait_ms < 0:
        raise InputError("--max-batch-sentences must be >= 1 and --batch-wait-ms >= 0")
    if args.beam is not None and not 1 <= args.beam <= 64:
        raise InputError(f"--beam must be between 1 and 64, got {args.beam}")
    # One intra-op thread per package by default: request batches leave no idle core, and under load
    # ORT's spinning worker threads lost to the HTTP side (32 clients: 48 req/s on 1 thread, 22 on "auto").
    translators = [
        Translator(m, variant=args.variant, intra_threads=args.threads)
        for m in (args.model or [None])
    ]
    app = create_app(translators, settings)
    pairs = ", ".join(f"{s}->{t}" for s, t in app.state.languages.routes)
    if settings.batching and settings.continuous:
        for tr in translators:
            if not supports_rows_at_different_steps(tr.model):
                print(
                    f"traductor serve: --continuous: {tr.model_dir} was exported before decoder graphs took one position per row; "
                    "its requests are batched statically (re-export it for continuous batching)",
                    file=sys.stderr,
                    flush=True,
                )
    modes = {r.batcher.continuous for r in app.state.languages.routes.values()}
    batching = (
        "off"
        if not settings.batching
        else "continuous"
        if modes == {True}
        else "static"
        if modes == {False}
        else "on"
    )
    print(
        f"traductor serve: {pairs} on http://{settings.host}:{settings.port} (batching {batching})",
        flush=True,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=None,
    )
    return 0
