"""The languages the loaded packages offer: names, the directions (source, target) and which
batcher serves each, and source-language detection among them."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from .batcher import Batcher
from .errors import ApiError

log = logging.getLogger("traductor.serve")

# English names of the languages a package may declare (ISO 639-1, and OPUS-MT's 639-3 codes).
LANGUAGE_NAMES = {
    "ar": "Arabic",
    "bg": "Bulgarian",
    "ca": "Catalan",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "eo": "Esperanto",
    "es": "Spanish",
    "et": "Estonian",
    "eu": "Basque",
    "fa": "Persian",
    "fi": "Finnish",
    "fr": "French",
    "ga": "Irish",
    "gl": "Galician",
    "he": "Hebrew",
    "hi": "Hindi",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sv": "Swedish",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "vi": "Vietnamese",
    "zh": "Chinese",
}
ISO3_TO_1 = {
    "ara": "ar",
    "bul": "bg",
    "cat": "ca",
    "ces": "cs",
    "dan": "da",
    "deu": "de",
    "ell": "el",
    "eng": "en",
    "epo": "eo",
    "spa": "es",
    "est": "et",
    "eus": "eu",
    "fas": "fa",
    "fin": "fi",
    "fra": "fr",
    "gle": "ga",
    "glg": "gl",
    "heb": "he",
    "hin": "hi",
    "hun": "hu",
    "ind": "id",
    "ita": "it",
    "jpn": "ja",
    "kor": "ko",
    "lit": "lt",
    "lav": "lv",
    "nld": "nl",
    "nor": "no",
    "pol": "pl",
    "por": "pt",
    "ron": "ro",
    "rus": "ru",
    "slk": "sk",
    "slv": "sl",
    "swe": "sv",
    "tur": "tr",
    "ukr": "uk",
    "vie": "vi",
    "zho": "zh",
}


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code) or LANGUAGE_NAMES.get(ISO3_TO_1.get(code, ""), code)


@dataclass(frozen=True)
class Direction:
    batcher: Batcher
    target_language: str | None  # the option multi-target packages need, else None


class Languages:
    """The directions the loaded packages offer, and source-language detection among them."""

    def __init__(self, batchers: list[Batcher]):
        self.directions: dict[tuple[str, str], Direction] = {}
        for batcher in batchers:
            self._add(batcher)
        self.sources = sorted({s for s, _ in self.directions})
        self.targets = sorted({t for _, t in self.directions})
        self.detector = Detector(self.sources)

    def _add(self, batcher: Batcher) -> None:
        cfg = batcher.translator.config
        targets = sorted(cfg.language_tags) if cfg.language_tags else [cfg.target_language]
        for target in targets:
            key = (cfg.source_language, target)
            if key in self.directions:
                log.warning("%s -> %s is offered by two packages; keeping the first", *key)
                continue
            self.directions[key] = Direction(batcher, target if cfg.language_tags else None)

    def listing(self) -> list[dict]:
        """/languages: [{"code", "name", "targets"}] for each source language."""
        return [
            {
                "code": s,
                "name": language_name(s),
                "targets": sorted(t for src, t in self.directions if src == s),
            }
            for s in self.sources
        ]

    def detect(self, text: str) -> list[dict]:
        return self.detector.rank(text)

    def source_of(self, source: str, texts: list[str]) -> tuple[str, dict | None]:
        """The source to translate from, and the detection behind it when `source` is "auto"."""
        if source != "auto":
            return source, None
        detected = self.detect(" ".join(texts))[0]
        return detected["language"], detected

    def check_offered(self, source_code: str, source: str, target: str) -> None:
        """Each language on its own is among the loaded ones (`source` as the request gave it)."""
        if source_code not in self.sources:
            raise ApiError(400, f"{source} is not supported")
        if target not in self.targets:
            raise ApiError(400, f"{target} is not supported")

    def direction(self, source: str, target: str) -> Direction:
        """The package that translates source -> target; an ApiError when none does."""
        found = self.directions.get((source, target))
        if found is None:
            raise ApiError(
                400,
                f"{language_name(target)} ({target}) is not available as a target language from "
                f"{language_name(source)} ({source})",
            )
        return found


class Detector:
    """[{"confidence": 0..100, "language": code}] best first, among the loaded source languages.

    py3langid (a maintained fork of langid.py): offline, its model ships inside its 4.6 MB wheel,
    needs only numpy (already a runtime dependency), and can be restricted to a set of languages,
    which is what choosing among the loaded sources needs. It is loaded on first use."""

    def __init__(self, sources: list[str]):
        self.sources = sources
        self.known = {s: ISO3_TO_1.get(s, s) for s in sources}  # package code -> langid's code
        self._loaded = None  # (LanguageIdentifier, the langid codes it may answer)
        self._lock = threading.Lock()

    def rank(self, text: str) -> list[dict]:
        if len(self.sources) == 1:
            return [{"confidence": 100.0, "language": self.sources[0]}]
        with self._lock:
            ident, usable = self._load()
            ranked = ident.rank(text) if usable else []
        back = {v: k for k, v in self.known.items()}
        out = [
            {"confidence": round(100 * float(p), 2), "language": back[c]}
            for c, p in ranked
            if c in back
        ]
        missing = [s for s in self.sources if s not in {o["language"] for o in out}]
        return out + [{"confidence": 0.0, "language": s} for s in missing]

    def _load(self):
        if self._loaded is None:
            from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

            ident = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
            usable = sorted({c for c in self.known.values() if c in set(ident.labels)})
            if usable:
                ident.set_languages(usable)
            self._loaded = (ident, usable)
        return self._loaded
