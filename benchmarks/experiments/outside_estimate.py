"""What does the shortlist head's outside-mass estimate cost? The same package and table with the
head of an earlier commit (normalizing over the list alone) and with this checkout's (adding the
estimate of the mass outside each row's list), timed alternately in one process: tokens/s, medians.

Made for the random-weight OPUS-MT-size Marian of benchmarks/marian_shortlist.py (its --work folder
holds the packages and the table), where the estimate's (d, d + 2) product per row is largest
against the rest of the head. Greedy must give the same tokens either way (a row's normalizer does
not change its argmax); beam search may not, which is the point of the estimate.

    .venv/bin/python benchmarks/experiments/outside_estimate.py --old a21436b
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = {"greedy b1": (1, 1, 24), "greedy b16": (1, 16, 64), "beam4 b32": (4, 32, 64)}


def old_module(commit: str):
    """export/shortlist.py as it was at `commit`, imported under another name."""
    text = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:export/shortlist.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_shortlist.py"
    path.write_text(text.replace("from .gates import", "from traductor.export.gates import"))
    spec = importlib.util.spec_from_file_location("old_shortlist", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def packages(base: Path, table_path: Path, work: Path, commit: str) -> dict[str, Path]:
    from traductor.export import shortlist as new
    from traductor.runtime.shortlist import Shortlist

    table = Shortlist.load(table_path)
    out = {}
    for name, module in (("list only", old_module(commit)), ("outside estimate", new)):
        pkg = work / f"{base.name}-{name.replace(' ', '-')}"
        shutil.rmtree(pkg, ignore_errors=True)
        shutil.copytree(base, pkg)
        module.install_table(pkg, table, 100, 100, "benchmark table")
        out[name] = pkg
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="/tmp/marian-bench", help="marian_shortlist.py's --work")
    p.add_argument("--variants", default="int8,fp32")
    p.add_argument("--old", default="a21436b", help="a commit with the list-only head")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    from traductor.runtime import TranslationOptions, Translator

    work = Path(args.work)
    bases = {"int8": work / "traductor-pkg-int8-ungated", "fp32": work / "traductor-pkg"}
    lines = [
        x
        for x in (REPO / "benchmarks/test-books.es.txt").read_text(encoding="utf-8").splitlines()
        if x.strip()
    ]
    scratch = Path(tempfile.mkdtemp(prefix="outside-"))
    rows = []
    for variant in args.variants.split(","):
        pkgs = packages(bases[variant], work / "shortlist-table.npz", scratch, args.old)
        trs = {n: Translator(p, variant=variant, intra_threads=1) for n, p in pkgs.items()}
        tok = next(iter(trs.values())).tokenizer
        eos = next(iter(trs.values())).config.special_tokens.eos_id
        src = sorted((tok.encode(x).ids + [eos] for x in lines[:64]), key=len)
        times = {(n, w): [] for n in trs for w in WORKLOADS}
        tokens = {}
        for _ in range(args.repeats):
            for w, (beam, size, count) in WORKLOADS.items():
                opts = TranslationOptions(beam_size=beam, batch_size=10_000, max_length=32)
                part = src[:count]
                for n, tr in trs.items():
                    t0 = time.perf_counter()
                    out = []
                    for i in range(0, count, size):
                        out += tr.translate_ids(part[i : i + size], opts)
                    times[(n, w)].append(time.perf_counter() - t0)
                    tokens[(n, w)] = [h[0].tokens for h in out]
                    n_tokens = sum(len(t) for t in tokens[(n, w)])
                    times[(n, w)][-1] = n_tokens / times[(n, w)][-1]
        for w in WORKLOADS:
            old, new = (statistics.median(times[(n, w)]) for n in trs)
            a, b = (tokens[(n, w)] for n in trs)
            same = sum(x == y for x, y in zip(a, b))
            rows.append(
                f"| {variant} | {w} | {old:.1f} | {new:.1f} | {new / old:.3f} | {same}/{len(a)} |"
            )
    print(
        "| variant | workload | tokens/s, list only | tokens/s, outside estimate | ratio"
        " | same tokens |"
    )
    print("|---|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
