"""Speed with and without a package's vocabulary shortlist, same package, one interleaved run.

    flock /tmp/bench.lock .venv/bin/python benchmarks/shortlist_speed.py MODEL_DIR \
        [--sentences 64] [--repeats 5] [--variants int8,fp32]

MODEL_DIR must hold a shortlist (`traductor shortlist MODEL_DIR --corpus data/bible/train.tsv`).
Sources: benchmarks/test-books.es.txt (the first --sentences lines). Workloads: greedy batch 1,
greedy batch 16, beam 4 batch 32, one thread. For each repeat, each workload and variant, the
shortlist on and off alternate (the order flips every repeat); the median of the repeats is
printed as target tokens/s and the ratio on / off.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from traductor.runtime import Translator

HERE = Path(__file__).resolve().parent
WORKLOADS = {"greedy b1": (1, 1), "greedy b16": (1, 16), "beam4 b32": (4, 32)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a package with a shortlist")
    p.add_argument("--sentences", type=int, default=64, help="test-book lines translated")
    p.add_argument("--b1-sentences", type=int, default=16, help="lines for greedy batch 1")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repeats (median printed)")
    p.add_argument("--variants", default="int8,fp32", help="variants, comma-separated")
    args = p.parse_args()
    lines = [x for x in (HERE / "test-books.es.txt").read_text().splitlines() if x.strip()]
    print("| variant | workload | tokens/s shortlist | tokens/s whole vocabulary | ratio |")
    print("|---|---|---|---|---|")
    for variant in args.variants.split(","):
        tr = Translator(args.model, variant=variant, intra_threads=1)
        assert tr.model.shortlist is not None, "the package has no shortlist"
        for name, (beam, batch) in WORKLOADS.items():
            texts = lines[: args.b1_sentences if batch == 1 else args.sentences]
            times = {True: [], False: []}
            tokens = {}
            for r in range(args.repeats + 1):  # the first round warms up
                for on in (True, False) if r % 2 else (False, True):
                    tr.use_shortlist = on
                    t0 = time.perf_counter()
                    out = tr.translate(texts, beam_size=beam, batch_size=batch, return_scores=True)
                    seconds = time.perf_counter() - t0
                    tokens[on] = sum(len(o.hypotheses[0].tokens) + 1 for o in out)
                    if r:
                        times[on].append(tokens[on] / seconds)
            on, off = statistics.median(times[True]), statistics.median(times[False])
            print(f"| {variant} | {name} | {on:.0f} | {off:.0f} | {on / off:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
