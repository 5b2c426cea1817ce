"""`--engine local`: the parts one after another in this process, one Translator on every core."""

from __future__ import annotations

from pathlib import Path

from .core import translate_part
from .options import DatasetOptions
from .parts import Part
from .progress import progress_bar


def run_local(translator, parts: list[Part], opts: DatasetOptions, out: Path, progress: bool):
    """Each part is one translate_batch over its rows (length-sorted, batch_size at a time); the
    Translator's automatic threads put large batches on all cores."""
    bar = progress_bar(sum(p.rows for p in parts), progress)
    try:
        for part in parts:
            bar.update(translate_part(translator, part, opts, out).rows)
    finally:
        bar.close()
