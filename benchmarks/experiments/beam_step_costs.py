"""Where beam 4 b32 spends its time against CTranslate2: runs to 1, 16 and 32 new tokens.

The same sources (marian_engines.py's length-sorted batches of 32), the same engines as
benchmarks/marian_shortlist.py (its --work folder: the OPUS-MT-size random-weight Marian, int8,
with and without the lists), each run to 1, 16 and 32 new tokens, one thread, in one process, 3
rounds, medians. The 1-token run is the encoder plus a first step; 16 minus 1 the steps 2-16;
32 minus 16 the steps 17-32, 64 steps of 128 rows over the two batches:

    .venv/bin/python benchmarks/experiments/beam_step_costs.py \\
        [--out benchmarks/results/beam_step_costs.md]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import marian_engines as me  # noqa: E402
from interleaved import emit  # noqa: E402

ENGINES = {
    "ct2-int8-vmap": lambda w: {"ct2_dir": {"ct2-int8-vmap": str(w / "ct2-int8")}},
    "traductor-int8-shortlist": lambda w: {
        "packages": {"traductor-int8-shortlist": str(w / "traductor-pkg-int8-ungated-shortlist")}
    },
    "ct2-int8": lambda w: {"ct2_dir": {"ct2-int8": str(w / "ct2-int8")}},
    "traductor-int8": lambda w: {
        "packages": {"traductor-int8": str(w / "traductor-pkg-int8-ungated")}
    },
}
LENGTHS = (1, 16, 32)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/marian-bench", help="marian_shortlist.py's --work")
    p.add_argument("--sentences", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", help="also write the table to this markdown file")
    args = p.parse_args()
    work = Path(args.work)
    paths = {"model_dir": str(work / "opus-size-es-en"), "package": str(work / "traductor-pkg")}
    src, pad, pieces = me._sources(paths, args.sentences, {})
    batches = me._batches(src, 32)
    seconds: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):
        for n in LENGTHS:
            me.NEW_TOKENS = n  # read by the runners when they are made
            for engine, extra in ENGINES.items():
                spec = {"engine": engine, "beam": 4, "pad": pad, "pieces": pieces, **extra(work)}
                run = me._runner(spec)
                run(batches[0])  # warm-up
                t0 = time.perf_counter()
                out = [h for b in batches for h in run(b)]
                seconds.setdefault((engine, n), []).append(time.perf_counter() - t0)
                if any(len(h) != n for h in out):
                    raise SystemExit(f"{engine}: not {n} tokens per sentence")
    nb = len(batches)  # each step below runs once per batch
    lines = [
        f"Beam 4, batches of 32, {len(src)} sources, one thread, medians of {args.repeats} "
        f"rounds; {platform.machine()}.",
        "",
        "| engine | encoder + step 1, s | steps 2-16, ms per step | steps 17-32, ms per step | "
        "32 tokens, s |",
        "|---|---:|---:|---:|---:|",
    ]
    for engine in ENGINES:
        m = {n: statistics.median(seconds[(engine, n)]) for n in LENGTHS}
        lines.append(
            f"| {engine} | {m[1]:.2f} | {(m[16] - m[1]) / (15 * nb) * 1e3:.1f} | "
            f"{(m[32] - m[16]) / (16 * nb) * 1e3:.1f} | {m[32]:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
