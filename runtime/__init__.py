"""The torch-free runtime: onnxruntime, numpy and tokenizers only.

from traductor.runtime import Translator
Translator("models/es-en").translate("En el principio crió Dios los cielos y la tierra.")

The names below load on first use (PEP 562), so `traductor --help` and the CLI's error reporting
work before onnxruntime is imported: on a platform without its wheel the CLI can say so in one line.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Translator": ".translator",
    "TranslationOptions": ".translator",
    "TranslationResult": ".translator",
    "Candidate": ".translator",
    "ModelError": ".package",
    "PROVIDER_ALIASES": ".onnx_model",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
