"""The ASGI app: a list of routes over the handlers, each answered as JSON, errors included, with
CORS headers on every response."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..package import TraductorError
from ..translator import Translator
from . import files, handlers
from .errors import ApiError
from .handlers import Service
from .settings import Settings

log = logging.getLogger("traductor.serve")

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Expose-Headers": "Authorization",
    "Access-Control-Allow-Methods": "GET, POST",
    "Access-Control-Allow-Credentials": "true",
    "Access-Control-Max-Age": str(60 * 60 * 24 * 20),
}


def create_app(translators: list[Translator], settings: Settings) -> Starlette:
    """The server over loaded translators; their batchers start now and stop with the app."""
    service = Service.start(translators, settings)

    def route(path: str, handler, methods: list[str]) -> Route:
        return Route(path, _endpoint(handler, service), methods=methods)

    app = Starlette(
        routes=[
            route("/translate", handlers.translate, ["POST", "OPTIONS"]),
            route("/translate_file", files.translate_file, ["POST", "OPTIONS"]),
            route("/download_file/{name}", files.download_file, ["GET"]),
            route("/detect", handlers.detect, ["POST", "OPTIONS"]),
            route("/languages", handlers.languages, ["GET", "POST"]),
            route("/frontend/settings", handlers.frontend_settings, ["GET"]),
            route("/health", handlers.health, ["GET"]),
            route("/stats", handlers.stats, ["GET"]),
            route("/models/{name}/{file}", handlers.model_file, ["GET"]),
            route("/page/{path:path}", handlers.shipped_page, ["GET"]),
            route("/", handlers.page, ["GET"]),
            route("/{path:path}", handlers.page, ["GET"]),
        ],
        middleware=[Middleware(Cors)],
        exception_handlers={HTTPException: _http_error},
        lifespan=_lifespan,
    )
    app.state.service = service
    app.state.languages = service.languages
    return app


def _endpoint(handler, service: Service):
    """handler(request, service) as a Starlette endpoint that answers every error as JSON: a
    refused request with its status, a user mistake the translator caught with 400, and a bug
    with 500 (logged; the server goes on)."""

    async def endpoint(request):
        try:
            return await handler(request, service)
        except ApiError as e:
            return error_response(e.status, e.message)
        except TraductorError as e:
            return error_response(400, str(e))
        except Exception as e:
            log.exception("internal error")
            return error_response(500, f"Cannot translate text: {type(e).__name__}: {e}")

    return endpoint


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _http_error(request, exc: HTTPException) -> JSONResponse:
    """Starlette's own refusals (no such route, a wrong method) in the same {"error"} shape."""
    return error_response(exc.status_code, exc.detail)


@asynccontextmanager
async def _lifespan(app):
    yield
    app.state.service.close()  # after uvicorn has let the requests in flight finish


_CORS = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in CORS_HEADERS.items()]
_CORS_NAMES = {name for name, _ in _CORS}


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
                    (k, v) for k, v in message.get("headers", []) if k.lower() not in _CORS_NAMES
                ]
                message = {**message, "headers": headers + _CORS}
            await send(message)

        await self.app(scope, receive, send_with_cors)
