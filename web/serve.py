#!/usr/bin/env python3
"""A tiny static server for the browser page (standard library only).

    python3 web/serve.py --port 8000          # then open http://127.0.0.1:8000/

Serves web/ at / (the page, traductor.js, src/, node_modules/...) and the repository's models/ at
/models/, with the headers that make the page cross-origin isolated (COOP same-origin, COEP
require-corp), so onnxruntime-web may run on several threads. `traductor serve` serves the same URL
layout.
"""

from __future__ import annotations

import argparse
import http.server
import os
import posixpath
import sys
import urllib.parse
from pathlib import Path

WEB = Path(__file__).resolve().parent
REPO = WEB.parent

TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css",
    ".map": "application/json",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
ISOLATION = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def resolve(url_path: str, web: Path, models: Path) -> Path | None:
    """URL path -> file: /models/<...> under `models`, everything else under `web`; None outside
    both."""
    path = posixpath.normpath(urllib.parse.unquote(url_path.split("?", 1)[0].split("#", 1)[0]))
    parts = [p for p in path.split("/") if p and p not in (".", "..")]
    if parts[:1] == ["models"]:
        root, parts = models, parts[1:]
    else:
        root = web
    if any(os.sep in p or (os.altsep and os.altsep in p) for p in parts):
        return None
    target = root.joinpath(*parts) if parts else root
    if target.is_dir():
        target = target / "index.html"
    try:
        target.resolve().relative_to(root.resolve())
    except ValueError:  # a symlink out of the root
        return None
    return target if target.is_file() else None


def make_handler(web: Path, models: Path, quiet: bool, isolation: bool = True):
    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **TYPES}

        def translate_path(self, path: str) -> str:
            target = resolve(path, web, models)
            # No such file: a path that does not exist, so that the stdlib answers 404.
            return str(target) if target else str(web / ".no-such-file" / "404")

        def list_directory(self, path):  # no listings
            self.send_error(404)
            return None

        def end_headers(self) -> None:
            for k, v in ISOLATION.items() if isolation else ():
                self.send_header(k, v)
            self.send_header("Cache-Control", "no-cache")  # revalidate (304 when unchanged)
            super().end_headers()

        def guess_type(self, path) -> str:
            return TYPES.get(Path(str(path)).suffix.lower(), "application/octet-stream")

        def log_message(self, fmt, *args) -> None:
            if not quiet:
                super().log_message(fmt, *args)

    return Handler


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed)")
    ap.add_argument(
        "--models",
        type=Path,
        default=REPO / "models",
        help="directory of model packages, served at /models/",
    )
    ap.add_argument("--quiet", action="store_true", help="no request log")
    ap.add_argument(
        "--no-isolation",
        action="store_true",
        help="leave out the COOP/COEP headers (the page then runs one thread)",
    )
    args = ap.parse_args(argv)
    server = http.server.ThreadingHTTPServer(
        (args.host, args.port),
        make_handler(WEB, args.models.resolve(), args.quiet, not args.no_isolation),
    )
    host, port = server.server_address[:2]
    print(f"serving http://{host}:{port}/ (web: {WEB}, models: {args.models})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
