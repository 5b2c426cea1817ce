"""The supported document formats, looked up by extension or name; each module is imported only
when its format is used (the format libraries come with `traductor[documents]`)."""

from __future__ import annotations

import importlib
from pathlib import Path

from ..base import DocumentError, DocumentFormat

# name -> (module in this package, class, extensions)
FORMATS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "txt": ("text", "TextFormat", (".txt",)),
    "md": ("markdown", "MarkdownFormat", (".md", ".markdown")),
    "html": ("html", "HtmlFormat", (".html", ".htm")),
    "srt": ("subtitles", "SrtFormat", (".srt",)),
    "vtt": ("subtitles", "VttFormat", (".vtt",)),
    "docx": ("docx", "DocxFormat", (".docx",)),
    "pptx": ("pptx", "PptxFormat", (".pptx",)),
    "odt": ("odf", "OdtFormat", (".odt",)),
    "odp": ("odf", "OdpFormat", (".odp",)),
    "epub": ("epub", "EpubFormat", (".epub",)),
}
EXTENSIONS = {ext: name for name, (_, _, exts) in FORMATS.items() for ext in exts}


def supported() -> str:
    """'.txt, .md, ...' for error messages and --help."""
    return ", ".join(EXTENSIONS)


def get_format(name: str) -> DocumentFormat:
    """A format by name ("docx") or extension (".docx")."""
    key = name.lower()
    key = EXTENSIONS.get(key if key.startswith(".") else "." + key, key)
    if key not in FORMATS:
        raise DocumentError(f"unsupported document format {name!r}; supported: {supported()}")
    module, cls, _ = FORMATS[key]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()


def format_of(path: str | Path, override: str | None = None) -> DocumentFormat:
    """The format of a file: `override` if given, else its extension."""
    if override:
        return get_format(override)
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise DocumentError(
            f"{Path(path).name}: unsupported file type {suffix or '(no extension)'!r}; "
            f"supported: {supported()}"
        )
    return get_format(suffix)
