"""Parallel corpora: the Bible extraction, the book-level split, and reading TSV files."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from traductor.runtime.package import TraductorError

SWORD_DIR = Path("/usr/share/sword")
SOURCE_MODULE = "spaRV1909eb"  # Reina-Valera 1909, Debian package sword-text-sparv
TARGET_MODULE = "engWEB2015eb"  # World English Bible, Debian package sword-text-web
MODULE_PACKAGES = {SOURCE_MODULE: "sword-text-sparv", TARGET_MODULE: "sword-text-web"}

# Held-out books, as in ../shared/REFERENCE.md; every other book is training data.
TEST_BOOKS = ("Ruth", "Jonah", "Micah", "Philippians", "James", "I John")
DEV_BOOKS = ("Esther", "Titus", "Jude")

# Footnotes are commentary, not translation: drop them with their content.
_NOTE = re.compile(r"<note\b.*?</note>", re.DOTALL | re.IGNORECASE)
# Structural tags (poetry lines, paragraphs, milestones) separate words; inline tags (<w>) do not.
_STRUCTURAL = re.compile(r"</?(?:l|lg|div|p|br|milestone|q)\b[^>]*>", re.IGNORECASE)
_ANY_TAG = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r" +([,.;:!?)\]])")


class DataError(TraductorError):
    """A user-facing problem with a corpus: missing modules, unreadable or malformed files."""


@dataclass(frozen=True)
class Pair:
    source: str
    target: str
    ref: str = ""  # where the pair comes from, e.g. "Ruth 1:1" or "train.tsv:12"


def clean_osis(raw: str) -> str:
    """OSIS markup -> plain text, without gluing words where a note or tag was removed."""
    text = _NOTE.sub(" ", raw)
    text = _STRUCTURAL.sub(" ", text)
    text = _ANY_TAG.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


def split_of(book: str) -> str:
    if book in TEST_BOOKS:
        return "test"
    if book in DEV_BOOKS:
        return "dev"
    return "train"


def _open_bibles(sword_dir: Path):
    try:
        from pysword.modules import SwordModules
    except ImportError as e:
        raise DataError("pysword is not installed: pip install 'traductor[train]'") from e
    found = {}
    if (sword_dir / "mods.d").is_dir():
        found = SwordModules(str(sword_dir)).parse_modules()
    missing = [m for m in (SOURCE_MODULE, TARGET_MODULE) if m not in found]
    if missing:
        pkgs = " ".join(MODULE_PACKAGES[m] for m in missing)
        raise DataError(
            f"SWORD module(s) {', '.join(missing)} not found under {sword_dir}; "
            f"install them with: sudo apt-get install {pkgs}   (or: make data)"
        )
    modules = SwordModules(str(sword_dir))
    modules.parse_modules()
    return modules.get_bible_from_module(SOURCE_MODULE), modules.get_bible_from_module(
        TARGET_MODULE
    )


def extract_bible(
    sword_dir: Path = SWORD_DIR, books: list[str] | None = None
) -> dict[str, list[Pair]]:
    """Align the two Bibles verse by verse and group the pairs by split ('train', 'dev', 'test').

    Verses empty on either side (the WEB leaves a few out) are skipped.
    """
    from pysword.canons import canons

    source, target = _open_bibles(sword_dir)
    splits: dict[str, list[Pair]] = {"train": [], "dev": [], "test": []}
    canon = canons["kjv"]["ot"] + canons["kjv"]["nt"]
    for book, _osis, _short, verse_counts in canon:
        if books is not None and book not in books:
            continue
        for chapter, n_verses in enumerate(verse_counts, start=1):
            verses = list(range(1, n_verses + 1))
            src = source.get_iter(books=[book], chapters=[chapter], verses=verses, clean=False)
            tgt = target.get_iter(books=[book], chapters=[chapter], verses=verses, clean=False)
            for verse, s, t in zip(verses, src, tgt):
                s, t = clean_osis(s), clean_osis(t)
                if s and t:
                    splits[split_of(book)].append(Pair(s, t, f"{book} {chapter}:{verse}"))
    return splits


def write_split(splits: dict[str, list[Pair]], out: Path) -> dict[str, int]:
    """Write <split>.tsv (source TAB target) and <split>.ids (one verse id per line)."""
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, pairs in splits.items():
        with (
            open(out / f"{name}.tsv", "w", encoding="utf-8") as tsv,
            open(out / f"{name}.ids", "w", encoding="utf-8") as ids,
        ):
            for p in pairs:
                tsv.write(f"{_one_line(p.source)}\t{_one_line(p.target)}\n")
                ids.write(p.ref + "\n")
        counts[name] = len(pairs)
    return counts


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", text.replace("\t", " ")).strip()


@dataclass
class TsvReport:
    path: Path
    used: int = 0
    no_tab: int = 0
    empty_side: int = 0

    @property
    def skipped(self) -> int:
        return self.no_tab + self.empty_side

    def __str__(self) -> str:
        msg = f"{self.path}: {self.used} pairs"
        if self.skipped:
            msg += (
                f", skipped {self.skipped} malformed lines ({self.no_tab} without a tab, "
                f"{self.empty_side} with an empty side)"
            )
        return msg


def read_tsv(path: Path | str, limit: int | None = None) -> tuple[list[Pair], TsvReport]:
    """Read `source TAB target` lines; malformed lines are counted in the report, never used."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"corpus file not found: {path}")
    report = TsvReport(path)
    pairs: list[Pair] = []
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                line = line.rstrip("\n").rstrip("\r")
                if not line.strip():
                    continue
                if "\t" not in line:
                    report.no_tab += 1
                    continue
                source, target = line.split("\t", 1)
                source, target = source.strip(), target.strip()
                if not source or not target:
                    report.empty_side += 1
                    continue
                pairs.append(Pair(source, target, f"{path.name}:{lineno}"))
                report.used += 1
                if limit is not None and len(pairs) >= limit:
                    break
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not valid UTF-8 (byte {e.start}): convert it first") from e
    if not pairs:
        raise DataError(f"{path} holds no usable 'source<TAB>target' lines")
    return pairs, report


def main(args) -> int:
    out = Path(args.out)
    print(f"reading {SOURCE_MODULE} and {TARGET_MODULE} from {args.sword_dir} ...", file=sys.stderr)
    splits = extract_bible(Path(args.sword_dir))
    counts = write_split(splits, out)
    for name, n in counts.items():
        print(f"{name}: {n} verse pairs -> {out / (name + '.tsv')}")
    return 0
