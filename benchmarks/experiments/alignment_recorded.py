"""Greedy alignments read off the decoding against the alignment graph's: agreement and speed.

    .venv/bin/python benchmarks/experiments/alignment_recorded.py --model models/es-en \\
        --out benchmarks/results/alignment_recorded.md

Since format 7 the decoder graph outputs the alignment layer's cross-attention at every step, and a
greedy search keeps it (no second pass). The alignment graph computes the same attention
teacher-forced; in fp32 the two agree to float rounding, in int8 the two graphs quantize
differently. On the test books (greedy, one call over all verses), this compares the two ways:
verses whose word alignments are identical, alignment pairs shared (|A and B| / |A or B|), the Bible
names each links (the gold standard of alignment_names.py), and the time of translate_batch with
alignments each way against without (medians of --repeats interleaved runs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from alignment_names import NAMES, word  # noqa: E402

from traductor.runtime import Translator  # noqa: E402
from traductor.runtime.machine import cpu_summary  # noqa: E402


def names_linked(sources, results) -> tuple[int, int]:
    linked = eligible = 0
    for src, r in zip(sources, results):
        pairs = set(r.hypotheses[0].alignment)
        t_norm = [word(x) for x in r.text.split()]
        for si, sw in enumerate(src.split()):
            en = NAMES.get(word(sw))
            targets = [ti for ti, tw in enumerate(t_norm) if en is not None and tw == en]
            if targets:
                eligible += 1
                linked += any((si, ti) in pairs for ti in targets)
    return linked, eligible


def run(tr: Translator, sources: list[str], mode: str, recorded_attention: str | None):
    tr.model.step_attention = recorded_attention if mode == "recorded" else None
    start = time.perf_counter()
    out = tr.translate_batch(sources, beam_size=1, return_alignments=mode != "plain")
    return out, time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="models/es-en")
    p.add_argument("--variants", default="int8,fp32")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (every run)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", help="also write the markdown here")
    args = p.parse_args()
    sources = [v for v in (HERE.parent / "test-books.es.txt").read_text().splitlines() if v.strip()]
    lines = [
        f"{cpu_summary()}, {time.strftime('%Y-%m-%d')}, {args.model}, {len(sources)} test-book "
        f"verses, greedy, {args.threads} intra-op thread(s), medians of {args.repeats} "
        "interleaved runs.",
        "",
        "| variant | verses with identical alignments | pairs shared | names linked, recorded "
        "| names linked, graph | s without alignments | s recorded | s graph | recorded / graph "
        "time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant in args.variants.split(","):
        tr = Translator(args.model, variant=variant, intra_threads=args.threads)
        attention = tr.model.step_attention
        if attention is None:
            print(f"{variant}: this package's decoder records no attention (format < 7)")
            continue
        tr.translate_batch(sources[:16], return_alignments=True)  # warm-up, loads the graph
        times = {"plain": [], "recorded": [], "graph": []}
        outs = {}
        for rep in range(args.repeats):
            modes = list(times) if rep % 2 == 0 else list(times)[::-1]
            for mode in modes:
                outs[mode], t = run(tr, sources, mode, attention)
                times[mode].append(t)
        rec, graph = outs["recorded"], outs["graph"]
        assert [r.text for r in rec] == [r.text for r in graph] == [r.text for r in outs["plain"]]
        same = sum(
            a.hypotheses[0].alignment == b.hypotheses[0].alignment for a, b in zip(rec, graph)
        )
        inter = union = 0
        for a, b in zip(rec, graph):
            x, y = set(a.hypotheses[0].alignment), set(b.hypotheses[0].alignment)
            inter, union = inter + len(x & y), union + len(x | y)
        nr, ne = names_linked(sources, rec)
        ng, _ = names_linked(sources, graph)
        med = {m: statistics.median(t) for m, t in times.items()}
        lines.append(
            f"| {variant} | {same}/{len(sources)} ({same / len(sources):.1%}) | "
            f"{inter / union:.2%} | {nr}/{ne} ({nr / ne:.1%}) | {ng}/{ne} ({ng / ne:.1%}) | "
            f"{med['plain']:.2f} | {med['recorded']:.2f} | {med['graph']:.2f} | "
            f"{med['recorded'] / med['graph']:.3f} |"
        )
    lines += ["", f"Command: `.venv/bin/python {' '.join(sys.argv)}`"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
