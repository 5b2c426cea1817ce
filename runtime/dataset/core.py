"""One part, start to end: read its rows, check them, translate the good ones, write the part.

Both engines run exactly this (local: in the driver; ray: inside each actor), so their outputs
are the same bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .options import DatasetOptions
from .parts import Part, write_part
from .sources import check_text, read_rows


@dataclass(frozen=True)
class ModelSpec:
    """What a worker process or actor needs to build its Translator (the driver's checked flags)."""

    path: str
    variant: str | None
    providers: tuple[str, ...]
    fallback: tuple[str, ...]

    def load(self, threads: int | None):
        from ..translator import Translator

        return Translator(
            self.path,
            providers=list(self.providers),
            variant=self.variant,
            intra_threads=threads,
            fallback=self.fallback,
        )


@dataclass(frozen=True)
class PartStats:
    name: str
    rows: int
    errors: int
    seconds: float


def translate_part(translator, part: Part, opts: DatasetOptions, out: Path) -> PartStats:
    import pyarrow as pa

    t0 = time.perf_counter()
    table, values, errors = read_rows(part.file, part.start, part.end, part.offset, opts.column)
    texts, where = [], []
    for i, (value, error) in enumerate(zip(values, errors)):
        if error is None:
            text, errors[i] = check_text(value, opts.column, opts.max_chars)
            if text is not None:
                texts.append(text)
                where.append(i)
    translations: list[str | None] = [None] * part.rows
    scores: list[float | None] = [None] * part.rows
    for i, (text, score, error) in zip(where, _translate(translator, texts, opts)):
        translations[i], scores[i], errors[i] = text, score, error
    table = (
        table.append_column(
            "row_id", pa.array(range(part.row_id, part.row_id + part.rows), pa.int64())
        )
        .append_column("translation", pa.array(translations, pa.string()))
        .append_column("score", pa.array(scores, pa.float64()))
        .append_column("error", pa.array(errors, pa.string()))
    )
    write_part(out, part.name, table)
    n_errors = sum(e is not None for e in errors)
    return PartStats(part.name, part.rows, n_errors, time.perf_counter() - t0)


def _translate(translator, texts: list[str], opts: DatasetOptions):
    """texts -> (translation, score, error) each. One translate_batch over the whole part (it sorts
    by length and decodes batch_size at a time); should it fail, each text alone, so one bad text
    costs one row."""
    if not texts:
        return []
    options = opts.decoding()
    try:
        return [
            (r.text, r.hypotheses[0].score, None)
            for r in translator.translate_batch(texts, **options)
        ]
    except Exception:  # noqa: BLE001 - found again below, row by row, and kept in `error`
        pass
    out = []
    for text in texts:
        try:
            r = translator.translate_batch([text], **options)[0]
            out.append((r.text, r.hypotheses[0].score, None))
        except Exception as e:  # noqa: BLE001 - a row's failure is its error, not the job's
            out.append((None, None, f"translation failed: {type(e).__name__}: {e}"))
    return out
