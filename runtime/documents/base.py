"""The contract between document formats and the translation core.

A format reads a file into paragraphs of runs and writes the file back from translated runs; it
knows nothing about the model. The core (translate.py) splits paragraphs into sentences, translates
every sentence of the document through one batched translate_batch (two: sentences with
formatting to place also ask for word alignments) and places each run's formatting on the words
the model aligned with it; it knows nothing about file formats.

    parsed = fmt.parse(data)                       # bytes -> ParsedDocument
    translated = core(parsed.paragraphs)           # list[Paragraph] -> list[list[Run]]
    data_out = parsed.render(translated)           # same structure, only the text changed
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, field

from ..package import InputError


class DocumentError(InputError):
    """A document that cannot be read or written as its format says (exit 2, HTTP 400)."""


@dataclass(frozen=True)
class Run:
    """A stretch of a paragraph's text with one formatting.

    style is opaque to the core: the format's own description of the run (a docx <w:rPr> as bytes,
    an HTML start tag, a Markdown delimiter, ...), compared only for equality. None means the
    paragraph's plain text. keep=True marks text that is not to be translated (a code span, a URL
    the format knows about, an element marked translate="no"): the core carries it over verbatim
    and places it where the model aligned its words.
    """

    text: str
    style: Hashable = None
    keep: bool = False


@dataclass
class Paragraph:
    """One unit of translation: a paragraph, heading, list item, table cell, text frame or cue.

    Sentences never cross paragraphs. Leading and trailing whitespace of the joined text is kept as
    it is; a paragraph with no letters to translate (empty, whitespace, numbers only) comes back
    unchanged.
    """

    runs: list[Run]
    # Where the paragraph came from, for the format's render() (an index, an XML element, ...).
    ref: object = field(default=None, compare=False)

    @property
    def text(self) -> str:
        return "".join(r.text for r in self.runs)


class ParsedDocument(ABC):
    """A document read by a format: its paragraphs, and how to write it back."""

    paragraphs: list[Paragraph]

    @abstractmethod
    def render(self, translated: list[list[Run]]) -> bytes:
        """The document with paragraph i's runs replaced by translated[i]; every byte that is not
        paragraph text (markup, styles, images, zip members without text) as it was read."""


class DocumentFormat(ABC):
    """A file format: its name, extensions and reader."""

    name: str  # "docx"
    extensions: tuple[str, ...]  # (".docx",)
    media_type: str  # what the server answers downloads with

    @abstractmethod
    def parse(self, data: bytes) -> ParsedDocument:
        """Read a document; a corrupt or unsupported one raises DocumentError naming what is
        wrong."""
