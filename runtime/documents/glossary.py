"""Glossaries (source term -> required target term) and keep lists (terms left as they are).

    --glossary FILE   one `source<TAB>target` per line; blank lines and # comments skipped
    --keep TERM       repeatable; a value naming an existing file, or @FILE, reads one term a line

How a term reaches the translation (docs/glossary.md has the measurement that chose the default):
- "align": the term stays in the sentence the model translates; the target words the model aligned
  with it are replaced by the required term (the rest of the sentence is the model's own).
- "remove": the term's words are taken out of the sentence; the required term is put back after the
  target word aligned with the word before it (as keep runs and URLs are).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from .base import DocumentError

GLOSSARY_METHODS = ("align", "remove")
DEFAULT_METHOD = "align"
# A term matches whole words: not inside a word, nor next to a hyphen or apostrophe that joins one.
_EDGE_BEFORE = r"(?<![\w\-'’])"
_EDGE_AFTER = r"(?![\w\-'’])"


def load_glossary(path: str | Path) -> dict[str, str]:
    """A TSV glossary file -> {source term: target term}; a malformed line is a DocumentError
    naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DocumentError(f"glossary file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise DocumentError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return parse_glossary(text, str(path))


def parse_glossary(text: str, where: str = "glossary") -> dict[str, str]:
    """Glossary lines (the file's text, or a request field) -> {source term: target term}; a
    malformed line is a DocumentError naming `where` and the line."""
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise DocumentError(
                f"{where} line {n}: expected 'source term<TAB>target term', got {line!r}"
            )
        out[parts[0].strip()] = parts[1].strip()
    return out


def load_keep(values: Iterable[str]) -> list[str]:
    """--keep values -> terms: TERM as given; @FILE, or a value naming an existing file, reads one
    term a line (blank lines and # comments skipped)."""
    terms: list[str] = []
    for v in values:
        path = Path(v[1:]) if v.startswith("@") else Path(v)
        if v.startswith("@") or path.is_file():
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                raise DocumentError(f"keep-list file not found: {path}") from None
            except UnicodeDecodeError as e:
                raise DocumentError(f"{path}: not UTF-8 text ({e.reason})") from None
            terms += [t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#")]
        elif v.strip():
            terms.append(v.strip())
    return terms


def check_terms(glossary: Mapping[str, str] | None, keep: Iterable[str]) -> None:
    """Python callers' glossary and keep arguments: strings only, a clear error otherwise."""
    if isinstance(keep, str):
        raise DocumentError("keep must be a list of terms, not one string")
    for t in keep:
        if not isinstance(t, str):
            raise DocumentError(f"keep terms must be strings, got {type(t).__name__}")
    if glossary is not None:
        if not isinstance(glossary, Mapping):
            raise DocumentError("glossary must be a mapping of source term -> target term")
        for s, t in glossary.items():
            if not isinstance(s, str) or not isinstance(t, str):
                raise DocumentError(f"glossary entries must be strings: {s!r} -> {t!r}")


def term_spans(text: str, terms: Mapping[str, str]) -> list[tuple[int, int, str]]:
    """(start, end, target) of every whole-word occurrence of a term in text, case-insensitive,
    longest terms first, never overlapping."""
    if not terms:
        return []
    by_length = sorted(terms, key=len, reverse=True)
    lower = {t.lower(): terms[t] for t in by_length}
    pattern = re.compile(
        _EDGE_BEFORE + "(?:" + "|".join(re.escape(t) for t in by_length) + ")" + _EDGE_AFTER,
        re.I,
    )
    return [
        (m.start(), m.end(), lower.get(m.group().lower(), m.group()))
        for m in pattern.finditer(text)
    ]
