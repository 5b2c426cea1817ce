"""Text hygiene and a small rule-based sentence splitter for Spanish and English."""

from __future__ import annotations

import re
import unicodedata

# Abbreviations after which a period does not end a sentence (lower-cased, without the period).
ABBREVIATIONS = frozenset(
    "sr sra srta dr dra ud uds vd vds etc pág cap vol núm art av mr mrs ms st jr vs prof gen "
    "lt col sgt no fig ch vv cf ca".split()
)
# A sentence ends at . ! ? … (plus closing quotes/brackets) followed by space and a capital or
# opening mark.
_BOUNDARY = re.compile(r"([.!?…]+[\"'”’»)\]]*)(\s+)(?=[¿¡\"'“‘«(\[]*[A-ZÁÉÍÓÚÑÜ0-9])")


def clean_text(text: str) -> str:
    """Drop control and format characters (tabs/newlines become spaces); NFC; collapse spaces."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\t\r\n\v\f":
            out.append(" ")
        elif cat in ("Cc", "Cs", "Co") or (cat == "Cf" and ch not in "\u200d"):
            continue  # control, lone surrogate, private use, invisible format characters
        else:
            out.append(ch)
    return " ".join(unicodedata.normalize("NFC", "".join(out)).split())


def split_sentences(text: str) -> list[str]:
    """Split at sentence-final punctuation before a capitalised word; abbreviations stay whole."""
    pieces, start = [], 0
    for m in _BOUNDARY.finditer(text):
        before = text[start : m.start(1)]
        last_word = before.rsplit(None, 1)[-1] if before.split() else ""
        if m.group(1) == "." and (
            last_word.lower().strip("¿¡\"'“‘«(") in ABBREVIATIONS or len(last_word) == 1
        ):
            continue  # "Sr. López", "J. R. R."
        pieces.append(text[start : m.end(1)].strip())
        start = m.end(2)
    tail = text[start:].strip()
    if tail:
        pieces.append(tail)
    return [p for p in pieces if p]
