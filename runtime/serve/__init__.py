"""`traductor serve`: a LibreTranslate-compatible HTTP API over the loaded packages.

Endpoints and messages follow LibreTranslate's app.py, so its clients (libretranslatepy,
libretranslate-aio, the Discourse plugin, browser add-ons, ...) work by changing a URL:

    POST /translate   q (string, or a list in JSON; repeated q fields in a form), source (code or
                      "auto"), target, format (text|html), alternatives, api_key
                      -> {"translatedText": str | [str], "detectedLanguage"?, "alternatives"?}
    POST /detect      q -> [{"confidence": 0..100, "language": code}, ...] among the loaded sources
    GET  /languages   [{"code", "name", "targets"}] for each source language of the loaded packages
    POST /translate_file  file, source, target, api_key (multipart) -> {"translatedFileUrl"}
    GET  /download_file/{name}  the translated document, kept --files-ttl seconds
    GET  /frontend/settings, GET /health, GET /stats
    GET  /            the in-browser page (web/ of a checkout, --web), and /models/{name}/{file}
                      the packages it loads; else the page shipped in the package (page/), which
                      translates text and files through this API; that page is also at /page/

Errors are always {"error": "..."}: 400 for a bad request, 403 for a bad API key, 429 over the
request limit, 405 for a wrong method, 413 for an upload over --file-limit-mb, 501 for a file
without the documents extra installed; a user mistake is never a 500 and never stops the server.

Concurrent requests for one package are gathered into decoder batches by a `Batcher` (batcher.py),
statically or, with --continuous, into a running beam search; every answer equals translating that
request alone.

The modules, one job each:
    settings.py    Settings: every option and its default (the CLI's defaults come from here)
    app.py         create_app: the list of routes, JSON errors, CORS          (needs starlette)
    handlers.py    the endpoints as plain functions of (request, service)     (needs starlette)
    params.py      reading and checking a request's fields, LibreTranslate's way
    batcher.py     Batcher and its two policies, StaticBatches and ContinuousBatches
    languages.py   language names, the directions offered, source-language detection
    html_text.py   format=html: translate the text nodes, keep the markup
    access.py      API keys and requests per client per minute
    files.py       /translate_file and /download_file: uploads, the translated files and their TTL
    static.py      the browser pages and the packages' files, cross-origin isolated
    page/          the shipped page: index.html, page.js, page.css (no build step)
    main.py        serve_main: flags -> Settings -> packages -> uvicorn

Needs the `serve` extra (starlette, uvicorn with httptools and uvloop, python-multipart, py3langid)
and, for /translate_file, `documents` (sentencex, lxml); the runtime core needs neither, and this
package imports starlette only in app.py and what it loads.
"""

from .batcher import Batcher
from .main import serve_main
from .settings import Settings

__all__ = ["Batcher", "Settings", "serve_main"]
