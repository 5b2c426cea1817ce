"""Static files: the browser page (--web) and the files of the loaded packages it fetches, with the
headers that make the page cross-origin isolated."""

from __future__ import annotations

import json
from pathlib import Path

from starlette.responses import FileResponse

from ..translator import Translator
from .errors import ApiError

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
NO_PAGE = (
    "no browser page here: run from a source checkout with web/ set up (make web-deps), "
    "or pass --web DIR"
)


def file_response(path: Path) -> FileResponse:
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        headers=ISOLATION_HEADERS,
    )


class ModelFiles:
    """/models/{name}/{file}: only the files a loaded package's manifest lists (and the manifest),
    under the name of the package's folder (the first package of a name wins)."""

    def __init__(self, translators: list[Translator]):
        self.packages: dict[str, tuple[Path, set[str]]] = {}
        for tr in translators:
            listed = json.loads((tr.model_dir / "manifest.json").read_text())["files"]
            self.packages.setdefault(
                tr.model_dir.resolve().name, (tr.model_dir, {"manifest.json", *listed})
            )

    def path(self, name: str, file: str) -> Path:
        folder, files = self.packages.get(name, (None, set()))
        if folder is None or file not in files or not (folder / file).is_file():
            raise ApiError(404, f"no file {file} in a loaded model named {name}")
        return folder / file


def page_file(root: Path | None, rel: str) -> Path:
    """A file of the browser page under `root` (rel "" is index.html); never one outside it."""
    rel = rel or "index.html"
    if rel in ("translate", "detect"):  # the API's POST-only paths: a wrong method, not a page
        raise ApiError(405, "Method Not Allowed")
    if root is None:
        raise ApiError(404, NO_PAGE)
    target = (root / rel).resolve()
    if root.resolve() not in target.parents or not target.is_file():
        raise ApiError(404, f"not found: /{rel}")
    return target
