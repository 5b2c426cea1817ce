"""Document translation that keeps the format (`traductor translate-file`, the server's
/translate_file): formats read files into paragraphs of runs, the core translates them.

    from traductor.runtime.documents import translate_file, translate_document

The names are resolved on first use, so importing this package loads no format library.
"""

from __future__ import annotations

import importlib

__all__ = [
    "translate_document",
    "translate_file",
    "load_glossary",
    "load_keep",
    "DocumentError",
    "supported",
]

_HOME = {
    "translate_document": "api",
    "translate_file": "api",
    "load_glossary": "glossary",
    "load_keep": "glossary",
    "DocumentError": "base",
    "supported": "formats",
}


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)


def __dir__():
    return sorted(list(globals()) + __all__)
