"""Small datasets in each input format, the tiny model, and what one translate_batch gives."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from traductor.cli import main

pytest.importorskip("pyarrow")

TINY = str(Path(__file__).parents[1] / "assets" / "tiny-model")
WORDS = "casa perro gato sol luna agua fuego tierra cielo mar".split()


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8))) for _ in range(n)]


def write_dataset(folder: Path, n: int = 120, seed: int = 0) -> list[str]:
    """n sentences over three files, one per format (sorted by path: a.jsonl, b.csv, c.parquet);
    returns the sentences in input order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = sentences(n, seed)
    third = n // 3
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "a.jsonl", "w", encoding="utf-8") as f:
        for i, t in enumerate(texts[:third]):
            f.write(json.dumps({"id": i, "text": t, "meta": {"k": i}}) + "\n")
    with open(folder / "b.csv", "w", encoding="utf-8") as f:
        f.write("id,text\n")
        for i, t in enumerate(texts[third : 2 * third], start=third):
            f.write(f'{i},"{t}"\n')
    ids = list(range(2 * third, n))
    table = pa.table({"id": ids, "text": texts[2 * third :]})
    pq.write_table(table, folder / "c.parquet", row_group_size=17)  # parts cross row groups
    return texts


def read_output(out: Path) -> list[dict]:
    """Every part's rows, in input order (by row_id)."""
    import pyarrow.parquet as pq

    rows = []
    for p in sorted(out.iterdir()):
        if p.suffix == ".parquet":
            rows += pq.read_table(p).to_pylist()
        elif p.suffix == ".jsonl":
            rows += [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]
    return sorted(rows, key=lambda r: r["row_id"])


def run(*argv, model: str = TINY) -> int:
    return main(["translate-dataset", *map(str, argv), "--model", model])


@pytest.fixture(scope="session")
def tiny():
    from traductor.runtime import Translator

    return Translator(TINY)


def expected(tiny, texts: list[str], **options) -> list[tuple[str, float]]:
    """One translate_batch over every row: what each engine's output must equal."""
    return [(r.text, r.hypotheses[0].score) for r in tiny.translate_batch(texts, **options)]


def translations(rows: list[dict]) -> list[tuple[str, float]]:
    return [(r["translation"], r["score"]) for r in rows]
