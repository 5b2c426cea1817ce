"""How much would copying only the moved rows save in the beam's cache reorder?

    .venv/bin/python benchmarks/experiments/beam_reorder.py --sentences 64

Beam search reorders its rows every step and OnnxStepDecoder.keep gathers every layer's
self-attention cache in the new order. This counts, over a beam-4 batch-32 translation of the first
--sentences test verses (int8, one thread), the share of rows whose source row differs from their
own (rows that a moved-rows-only copy would still copy), the steps that keep every row in place,
and the time spent in keep against the whole translate_batch call.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import traductor.runtime.decoder as decoder
from traductor.runtime import Translator


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="models/es-en")
    p.add_argument("--data", type=Path, default=Path("data/bible/test.tsv"))
    p.add_argument("--sentences", type=int, default=64)
    args = p.parse_args()
    counts = {"moved": 0, "rows": 0, "in_place": 0, "reorders": 0, "keep_s": 0.0}
    keep = decoder.OnnxStepDecoder.keep

    def counting_keep(self, rows):
        start = time.perf_counter()
        if rows.size == self.rows:  # a reorder (no sentence left the batch)
            moved = int((rows != np.arange(rows.size)).sum())
            counts["moved"] += moved
            counts["rows"] += rows.size
            counts["in_place"] += moved == 0
            counts["reorders"] += 1
        keep(self, rows)
        counts["keep_s"] += time.perf_counter() - start

    decoder.OnnxStepDecoder.keep = counting_keep
    tr = Translator(args.model, variant="int8", intra_threads=1)
    lines = args.data.read_text(encoding="utf-8").splitlines()[: args.sentences]
    src = [line.split("\t")[0] for line in lines]
    tr.translate_batch(src[:4], beam_size=4)  # warm-up
    counts.update(moved=0, rows=0, in_place=0, reorders=0, keep_s=0.0)
    start = time.perf_counter()
    tr.translate_batch(src, beam_size=4, batch_size=32)
    total = time.perf_counter() - start
    print(
        f"{len(src)} verses, beam 4, batch 32: {counts['reorders']} reorders, rows moved "
        f"{counts['moved'] / max(counts['rows'], 1):.1%}, reorders with every row in place "
        f"{counts['in_place']}; keep {counts['keep_s']:.2f} s of {total:.2f} s "
        f"({counts['keep_s'] / total:.1%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
