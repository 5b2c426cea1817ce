"""The timing loop the OPUS-MT-size experiments share: several translators over the same sources,
each workload in turn, the translators' order rotated each round (so none always runs first, on a
warm or a cold cache), tokens/s per round."""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# name -> (beam, batch size, sentences): marian_shortlist.py's workloads, on fewer sentences
WORKLOADS = {"greedy b1": (1, 1, 24), "greedy b16": (1, 16, 64), "beam4 b32": (4, 32, 64)}


def parser(doc: str) -> argparse.ArgumentParser:
    """The options these experiments share: marian_shortlist.py's --work folder, the variants and
    the rounds."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/marian-bench", help="marian_shortlist.py's --work")
    p.add_argument("--variants", default="int8,fp32")
    p.add_argument("--repeats", type=int, default=3)
    return p


def beam_parser(doc: str) -> argparse.ArgumentParser:
    """parser() plus the options of the beam experiments that also run on another package: the
    sentences, --package / --data, the batch size and --out."""
    p = parser(doc)
    p.add_argument("--sentences", type=int, default=64)
    p.add_argument("--package", help="a package instead of the --work folder's shortlisted ones")
    p.add_argument("--data", help="with --package: a TSV whose first column is the sources")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--out", help="also write the report to this markdown file")
    return p


def package_sources(args, variant: str):
    """-> (package path, a one-thread Translator of it, source ids): beam_parser's --package and
    --data (sources sorted by length) or the --work folder's shortlisted package and the benchmark
    sources."""
    from traductor.runtime import Translator

    pkg = Path(args.package) if args.package else shortlisted_packages(args.work)[variant]
    tr = Translator(pkg, variant=variant, intra_threads=1)
    eos = tr.config.special_tokens.eos_id
    if not args.data:
        return pkg, tr, benchmark_sources(tr.tokenizer, eos, args.sentences)
    texts = [
        x.split("\t")[0]
        for x in Path(args.data).read_text(encoding="utf-8").splitlines()
        if x.strip()
    ][: args.sentences]
    return pkg, tr, sorted((tr.tokenizer.encode(t).ids + [eos] for t in texts), key=len)


def shortlisted_packages(work) -> dict[str, Path]:
    """marian_shortlist.py's shortlisted packages in its --work folder, by variant."""
    work = Path(work)
    return {
        "int8": work / "traductor-pkg-int8-ungated-shortlist",
        "fp32": work / "traductor-pkg-shortlist",
    }


def emit(text: str, out: str | None) -> None:
    """Print an experiment's report, and write it to `out` (its --out) when given."""
    print(text, end="")
    if out:
        Path(out).write_text(text, encoding="utf-8")


def benchmark_sources(tokenizer, eos: int, count: int = 64, by_length=True) -> list[list[int]]:
    """The first `count` lines of benchmarks/test-books.es.txt as source ids, sorted by length
    (by_length=False: in the file's order, as marian_engines.py batches them)."""
    lines = [
        x
        for x in (REPO / "benchmarks/test-books.es.txt").read_text(encoding="utf-8").splitlines()
        if x.strip()
    ]
    ids = [tokenizer.encode(x).ids + [eos] for x in lines[:count]]
    return sorted(ids, key=len) if by_length else ids


def time_rotated(translators: dict, src: list[list[int]], repeats: int, workloads=WORKLOADS):
    """-> (speed {(name, workload): [tokens/s per round]}, tokens {(name, workload): [token
    lists of the last round]}), 32 tokens at most per sentence."""
    from traductor.runtime import TranslationOptions

    speed, tokens = collections.defaultdict(list), {}
    order = list(translators)
    for r in range(repeats):
        for w, (beam, size, count) in workloads.items():
            opts = TranslationOptions(beam_size=beam, batch_size=10_000, max_length=32)
            part = src[:count]
            for n in order[r % len(order) :] + order[: r % len(order)]:
                tr = translators[n]
                t0 = time.perf_counter()
                out = []
                for i in range(0, count, size):
                    out += tr.translate_ids(part[i : i + size], opts)
                elapsed = time.perf_counter() - t0
                tokens[(n, w)] = [h[0].tokens for h in out]
                speed[(n, w)].append(sum(len(t) for t in tokens[(n, w)]) / elapsed)
    return speed, tokens
