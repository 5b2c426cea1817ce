"""What word alignments cost: translate_batch(..., return_alignments=True) against the same call
without them.

    .venv/bin/python benchmarks/alignment_batch.py --out benchmarks/results/alignment_batch.md

The first --verses test-book verses (test-books.es.txt) go through translate_batch with and without
return_alignments, alternating in every repeat (--repeats, medians reported), for each beam size
(--beams, 1 = greedy), on --threads intra-op threads. ratio = sentences/s with alignments over
sentences/s without (the alignment pass is the only difference: same translations).

Prints a markdown table; with --out also writes it there (and --label names the runtime measured,
e.g. "before" / "after", appended as a section when the file exists).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from pathlib import Path

from traductor.runtime import Translator
from traductor.runtime.machine import cpu_summary

HERE = Path(__file__).resolve().parent


def measure(tr: Translator, verses: list[str], beam: int, repeats: int) -> dict:
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for aligned in (False, True):
            start = time.perf_counter()
            tr.translate_batch(verses, beam_size=beam, return_alignments=aligned)
            times[aligned].append(time.perf_counter() - start)
    plain, aligned = statistics.median(times[False]), statistics.median(times[True])
    return {
        "beam": beam,
        "plain_s": plain,
        "aligned_s": aligned,
        "plain_rate": len(verses) / plain,
        "aligned_rate": len(verses) / aligned,
        "ratio": plain / aligned,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default=str(HERE.parent / "models" / "es-en"), help="model package")
    p.add_argument("--variant", default="int8", help="graph variant")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads")
    p.add_argument("--verses", type=int, default=200, help="test-book verses translated")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (medians)")
    p.add_argument("--beams", type=int, nargs="+", default=[1, 4], help="beam sizes (1 = greedy)")
    p.add_argument("--label", default="", help="what runtime this is (a section title)")
    p.add_argument("--out", type=Path, help="write (or append) the markdown table here")
    args = p.parse_args()

    verses = (HERE / "test-books.es.txt").read_text(encoding="utf-8").splitlines()[: args.verses]
    tr = Translator(args.model, variant=args.variant, intra_threads=args.threads)
    tr.translate_batch(verses[:8], beam_size=1, return_alignments=True)  # load the align graph
    rows = [measure(tr, verses, beam, args.repeats) for beam in args.beams]
    day = datetime.date.today().isoformat()
    title = f"### {args.label}\n\n" if args.label else ""
    lines = [
        f"{title}{cpu_summary()}, {day}, {Path(args.model).name} ({tr.variant}), "
        f"{args.threads} intra-op thread(s), {len(verses)} verses, medians of {args.repeats} "
        "interleaved repeats.",
        "",
        "| search | without alignments s | with alignments s | without sent/s | with sent/s "
        "| ratio |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = "greedy" if r["beam"] == 1 else f"beam {r['beam']}"
        lines.append(
            f"| {name} | {r['plain_s']:.2f} | {r['aligned_s']:.2f} | {r['plain_rate']:.1f} "
            f"| {r['aligned_rate']:.1f} | {r['ratio']:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        if args.out.exists():
            text = args.out.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + text
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
