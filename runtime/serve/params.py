"""Reading a request's fields as LibreTranslate does, and checking them, in LibreTranslate's order
and with its messages (the first problem found is the one answered)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from .errors import ApiError
from .settings import Settings

FORMATS = ("text", "html")


async def read_params(request) -> tuple[dict, bool]:
    """The request's fields -> (fields, whether they came as JSON): a JSON object, or form and
    query values (a repeated q in a form is a list)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        return _json_object(await request.body()), True
    values: dict = {k: request.query_params.get(k) for k in request.query_params}
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        body = await request.body()  # read once; the form parser reads it from the cache
        if ctype == "application/x-www-form-urlencoded":
            _check_urlencoded_utf8(body)
        values.update(await _form_values(request))
    return values, False


def _json_object(body: bytes) -> dict:
    try:
        data = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "Invalid JSON format") from None
    if not isinstance(data, dict):
        raise ApiError(400, "Invalid JSON format")
    return data


def _check_urlencoded_utf8(body: bytes) -> None:
    """The form parser would replace bytes that are not UTF-8; the request is refused instead."""
    for part in body.split(b"&"):
        raw = unquote_to_bytes(part.split(b"=", 1)[-1].replace(b"+", b" "))
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "Invalid request: the form body is not valid UTF-8") from None


async def _form_values(request) -> dict:
    try:
        form = await request.form()
    except Exception as e:  # malformed multipart
        raise ApiError(400, f"Invalid request: malformed form body ({type(e).__name__})") from None
    values: dict = {}
    for k in form:
        items = [v for v in form.getlist(k) if isinstance(v, str)]  # files are ignored
        if not items:
            continue
        values[k] = items if (k == "q" and len(items) > 1) else items[0]
    return values


@dataclass(frozen=True)
class TranslateRequest:
    """A /translate request whose fields passed the checks that need no model."""

    texts: list[str]
    batch: bool  # q was a list: so is the answer
    source: str  # a code, or "auto"
    target: str
    text_format: str  # checked against FORMATS later, after the languages (LibreTranslate's order)
    alternatives: int


def translate_request(params: dict, is_json: bool, settings: Settings) -> TranslateRequest:
    q, source, target = params.get("q"), params.get("source"), params.get("target")
    for name, value in (("q", q), ("source", source), ("target", target)):
        if not value:
            raise ApiError(400, f"Invalid request: missing {name} parameter")
    if not isinstance(q, (str, list)) or (
        isinstance(q, list) and not all(isinstance(t, str) for t in q)
    ):
        raise ApiError(400, "Invalid request: q must be a string or a list of strings")
    if not isinstance(source, str) or not isinstance(target, str):
        raise ApiError(400, "Invalid request: source and target must be language codes")
    alternatives = _alternatives(params.get("alternatives"), settings.alternatives_limit)
    batch = isinstance(q, list)
    texts = q if batch else [q]
    if not is_json:
        texts = ["\n".join(t.splitlines()) for t in texts]
    _check_sizes(texts, batch, settings)
    text_format = params.get("format") or "text"
    return TranslateRequest(texts, batch, source, target, text_format, alternatives)


def _alternatives(value, limit: int) -> int:
    try:
        alternatives = max(0, int(value or 0))
    except (TypeError, ValueError):
        raise ApiError(400, "Invalid request: alternatives parameter is not a number") from None
    if limit != -1 and alternatives > limit:
        raise ApiError(400, f"Invalid request: alternatives parameter must be <= {limit}")
    return alternatives


def _check_sizes(texts: list[str], batch: bool, settings: Settings) -> None:
    """--batch-limit texts per request and --char-limit characters per text."""
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
                    f"Invalid request: request ({len(t)}) exceeds text limit "
                    f"({settings.char_limit})",
                )


def check_format(text_format: str) -> None:
    if text_format not in FORMATS:
        raise ApiError(400, f"{text_format} format is not supported")


def detect_text(params: dict) -> str:
    """/detect's q: a string, or a list of strings read as one text."""
    q = params.get("q")
    if not q:
        raise ApiError(400, "Invalid request: missing q parameter")
    if isinstance(q, str):
        return q
    if isinstance(q, list) and all(isinstance(t, str) for t in q):
        return " ".join(q)
    raise ApiError(400, "Invalid request: q must be a string")
