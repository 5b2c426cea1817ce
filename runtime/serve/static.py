"""Static files: the browser pages (the one shipped in the package, web/ or --web) and the files
of the loaded packages the in-browser page fetches, with the headers that make it cross-origin
isolated."""

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
# The page shipped in the package: text and files through the HTTP API (no onnxruntime-web).
PAGE_DIR = Path(__file__).resolve().parent / "page"


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


def page_file(root: Path, rel: str) -> Path:
    """A file of a page under `root` (rel "" is index.html); never one outside it."""
    if rel in ("translate", "detect", "translate_file"):  # POST-only: a wrong method, not a page
        raise ApiError(405, "Method Not Allowed")
    rel = rel or "index.html"
    target = (root / rel).resolve()
    if root.resolve() not in target.parents or not target.is_file():
        raise ApiError(404, f"not found: /{rel}")
    return target
