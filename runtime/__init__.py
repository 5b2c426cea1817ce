"""The torch-free runtime: onnxruntime, numpy and tokenizers only.

from traductor.runtime import Translator
Translator("models/es-en").translate("En el principio crió Dios los cielos y la tierra.")
"""

from .onnx_model import PROVIDER_ALIASES
from .package import ModelError
from .translator import Candidate, TranslationOptions, TranslationResult, Translator

__all__ = [
    "Translator",
    "TranslationOptions",
    "TranslationResult",
    "Candidate",
    "ModelError",
    "PROVIDER_ALIASES",
]
